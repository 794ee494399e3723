// RecordLayer: what a protocol profile's stanza layer provides once a session is established.
//
// A record layer encrypts outgoing one-to-one stanzas and decrypts incoming ones, re-keys,
// terminates, and writes its whole state to a blob that starts with a four-byte magic naming
// its format. Session (session.hpp) is the one type the rest of the library uses: it owns a
// record layer and picks the right one when a state is read back, by that magic.
//
// Profile 1.0's record layer is v1::CtrHmacRecord (v1/record.hpp): XEP-0200 with AES-CTR and
// HMAC, state format "ESS1". A profile 2.0 would add a class implementing this interface (an
// AEAD with explicit sequence numbers, its own state format, say "ESS2") and a line in
// session.cpp's table of formats.
//
// Every implementation keeps the rules Session documents: an operation works on a copy of the
// state and commits only on success, and an authentication or format failure of an incoming
// stanza that carries encrypted content destroys the session.
#pragma once

#include <memory>
#include <optional>

#include "crypto/random.hpp"
#include "session/suite.hpp"

namespace esession {

// Received is the result of decrypting one stanza.
struct Received {
  xml::Element stanza;                // the stanza with its decrypted content in place of <c/>
  SecretBytes plaintext;              // the decrypted bytes (padding included)
  bool rekeyed = false;               // it carried a <key/> and both directions now use new keys
  bool terminated = false;            // it ended the session (a termination or its acknowledgement)
  std::optional<xml::Element> reply;  // a stanza to send back (termination acknowledgement)
};

// SendOptions adjusts one encryption.
struct SendOptions {
  // plaintext_override: encrypt exactly these bytes instead of the stanza's serialized content
  // (used by the vector replay tool; the caller is responsible for their meaning).
  std::optional<Bytes> plaintext_override;
};

// SessionInfo is what every record layer knows about its session, whatever the profile.
struct SessionInfo {
  bool initiator = true;  // we are Alice
  std::string local_jid;
  std::string peer_jid;
  std::string thread;
};

class RecordLayer {
 public:
  virtual ~RecordLayer() = default;

  // clone returns an independent copy (state and keys; no cached contexts are shared).
  virtual std::unique_ptr<RecordLayer> clone() const = 0;

  // info names the two parties and the thread.
  virtual const SessionInfo& info() const = 0;
  // suite is what the negotiation agreed on (its 'ver' names the profile).
  virtual const Suite& suite() const = 0;

  virtual Result<xml::Element> encrypt(const xml::Element& stanza, RandomSource& rng,
                                       const SendOptions& opts) = 0;
  virtual Result<Received> decrypt(const xml::Element& stanza, RandomSource& rng) = 0;
  virtual Result<xml::Element> rekey(RandomSource& rng) = 0;
  virtual Result<xml::Element> terminate(RandomSource& rng) = 0;

  virtual bool active() const = 0;
  virtual bool can_receive() const = 0;
  virtual bool rekey_pending() const = 0;
  virtual void destroy() = 0;

  // serialize returns the complete state, starting with the layer's four-byte magic.
  virtual SecretBytes serialize() const = 0;
};

}  // namespace esession
