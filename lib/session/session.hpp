// Session: an established ESession and its XEP-0200 stanza layer.
//
// A Session encrypts outgoing one-to-one stanzas into <c/> and decrypts incoming ones, re-keys
// (<key/>, <new/>), publishes old MAC keys (<old/>) and terminates. Every operation works on a
// copy of the state and commits only on success. Any authentication or format failure of an
// incoming stanza destroys the session (XEP-0200 §8): its keys are wiped and every later call
// fails with Errc::terminated.
#pragma once

#include <array>
#include <optional>

#include "crypto/random.hpp"
#include "session/suite.hpp"

namespace esession {

// DirectionKeys are the cipher key (already cut to the AES key length) and MAC key of one
// direction.
struct DirectionKeys {
  SecretBytes cipher;
  SecretBytes mac;
};

// kMaxBlocksPerKey: a sender re-keys (or ends the session) before encrypting more than 2^32
// blocks under one key (formats §12).
inline constexpr uint64_t kMaxBlocksPerKey = uint64_t{1} << 32;

// SessionParams is everything a negotiation hands to a new Session.
struct SessionParams {
  Suite suite;
  bool initiator = true;  // we are Alice
  std::string local_jid;
  std::string peer_jid;
  std::string thread;
  DirectionKeys send, recv;
  Counter128 send_ctr, recv_ctr;
  // G5b: unused bytes at the end of each direction's last keystream block (0-15), which start
  // the next stanza of that direction. Always 0 without G5b.
  uint8_t send_carry = 0, recv_carry = 0;
  BigNum my_private;   // our latest DH private value (x or y)
  BigNum peer_public;  // the peer's latest DH public value (d or e)
};

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

// CounterTrace reports the counters one encryption or decryption used (for vectors and tests).
struct CounterTrace {
  Counter128 before, after;
  uint64_t blocks = 0;                      // fresh keystream blocks generated
  uint8_t carried_in = 0, carried_out = 0;  // G5b: keystream bytes taken over and left over
  Bytes m_final;
  std::string m_content;
  Bytes a_mac;
};

// KeyCache keeps the OpenSSL contexts of the keys a session uses (slot 0: sending, 1 and 2:
// the receive sets). A copy starts empty: contexts are never shared.
class KeyCache {
 public:
  KeyCache() = default;
  KeyCache(const KeyCache&) {}
  KeyCache& operator=(const KeyCache&) {
    clear();
    return *this;
  }
  KeyCache(KeyCache&&) noexcept = default;
  KeyCache& operator=(KeyCache&&) noexcept = default;

  CtrKey& cipher(size_t slot, ByteView key);
  HmacKey& mac(size_t slot, HashAlg h, ByteView key);
  void clear();

 private:
  std::array<CtrKey, 3> m_ctr;
  std::array<HmacKey, 3> m_mac;
};

class Session {
 public:
  explicit Session(SessionParams p);

  // encrypt returns |stanza| with its content replaced by <c/>. Errors: Errc::not_acceptable
  // when the stanza kind was not negotiated; Errc::terminated after the session ended.
  Result<xml::Element> encrypt(const xml::Element& stanza, RandomSource& rng,
                               const SendOptions& opts = {});
  // decrypt verifies and decrypts an incoming stanza carrying <c/>. |rng| pads the encrypted
  // acknowledgement a termination request gets (Received::reply). The overload without it
  // draws from SystemRandom, for tools and tests; the engine passes its own.
  Result<Received> decrypt(const xml::Element& stanza, RandomSource& rng);
  Result<Received> decrypt(const xml::Element& stanza);
  // rekey returns a stanza (a <message/> without content) carrying a fresh <key/> and switches
  // our sending keys (XEP-0200 §9). Errc::wrong_state while a previous re-key is unacknowledged
  // or fewer than rekey_freq stanzas were sent since it.
  Result<xml::Element> rekey(RandomSource& rng);
  // terminate returns the termination stanza and ends the session for sending; the session
  // stays able to receive the acknowledgement.
  Result<xml::Element> terminate(RandomSource& rng);

  bool active() const { return m_state == State::active; }
  bool can_receive() const { return m_state == State::active || m_state == State::closing; }
  const Suite& suite() const { return m_p.suite; }
  const SessionParams& params() const { return m_p; }
  bool rekey_pending() const { return m_recv.size() > 1; }
  const CounterTrace& last_trace() const { return m_trace; }

  // destroy wipes every key; later calls fail with Errc::terminated.
  void destroy();

  // serialize returns the complete state (the "ESS1" format of session_state.cpp) in a
  // zeroising buffer, for the store.
  SecretBytes serialize() const;
  // deserialize rebuilds a session from serialize()'s output. Errc::malformed for a truncated,
  // corrupted or inconsistent state, Errc::unsupported for an unknown format version.
  static Result<Session> deserialize(ByteView state);

 private:
  enum class State { active, closing, ended };

  Result<xml::Element> seal(const xml::Element& envelope, ByteView plaintext, bool has_content,
                            std::optional<std::string> key_b64);
  Result<xml::Element> seal_c(ByteView plaintext, bool has_content,
                              std::optional<std::string> key_b64);
  Status seal_error_details(xml::Element& out, RandomSource& rng);
  // check_wire_size refuses, before a counter is spent, a stanza whose encrypted form could
  // exceed xml::kMaxStanza, what every receiver reads.
  Status check_wire_size(const xml::Element& stanza, size_t plaintext_size) const;
  Status open_error_details(xml::Element& stanza, RandomSource& rng);
  Result<Received> open(const xml::Element& stanza, RandomSource& rng);
  // take_acknowledgement commits the peer's use of key set |set| (> 0): our re-key is done.
  void take_acknowledgement(size_t set);
  std::optional<Result<Received>> clear_terminate(const xml::Element& stanza);
  // unencrypted: |stanza| carries no <c/>, neither itself nor in its <error/>.
  static bool unencrypted(const xml::Element& stanza);
  Bytes pad(std::string content, RandomSource& rng) const;

  SessionParams m_p;
  State m_state = State::active;
  std::vector<DirectionKeys> m_recv;        // [0] current; [1] after our unacknowledged re-key
  std::optional<BigNum> m_pending_private;  // our re-key private value until acknowledged
  uint32_t m_keys_received = 0;             // <key/>s received since we last sent (for <new/>)
  uint64_t m_sent_since_rekey = 0;
  uint64_t m_send_blocks = 0;  // counter values spent under the current send key (formats §12)
  std::vector<SecretBytes> m_old_mac_keys;  // to publish in <old/> with the next stanza
  SecretBytes m_prev_send_mac;              // our sending MAC key before our last re-key
  CounterTrace m_trace;
  KeyCache m_cache;
};

// is_encryptable_kind returns true for message, presence and iq.
bool is_stanza_kind(std::string_view name);

// terminate_form builds the XEP-0155 §7 termination form (type submit or result); its fields
// carry |field_type| when given (Gajim writes type="text-single" on every submitted field).
xml::Element terminate_form(std::string_view type, std::string_view field_type = {});
// is_terminate_form recognises a <feature/> carrying terminate=1 and returns its form type.
std::optional<std::string> terminate_form_type(const xml::Element& e);

}  // namespace esession
