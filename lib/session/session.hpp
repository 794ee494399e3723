// Session: an established ESession, whatever its profile.
//
// A Session encrypts outgoing one-to-one stanzas and decrypts incoming ones, re-keys and
// terminates, through the record layer (record.hpp) of the profile that was negotiated: today
// profile 1.0's v1::CtrHmacRecord (XEP-0200, AES-CTR and HMAC). Every operation works on a
// copy of the state and commits only on success. Any authentication or format failure of an
// incoming stanza that carries encrypted content destroys the session (XEP-0200 §8): its keys
// are wiped and every later call fails with Errc::terminated. A stanza with no encrypted
// content at all is refused without ending the session (formats §15.7).
//
// A Session is a value: copying it copies its state and keys.
#pragma once

#include <memory>

#include "session/record.hpp"

namespace esession {

namespace v1 {
class CtrHmacRecord;
}

class Session {
 public:
  explicit Session(std::unique_ptr<RecordLayer> layer);
  Session(const Session& other);
  Session& operator=(const Session& other);
  Session(Session&&) noexcept = default;
  Session& operator=(Session&&) noexcept = default;
  ~Session();

  // encrypt returns |stanza| with its content encrypted (XEP-0200: replaced by <c/>). Errors:
  // Errc::not_acceptable when the stanza kind was not negotiated; Errc::terminated after the
  // session ended.
  Result<xml::Element> encrypt(const xml::Element& stanza, RandomSource& rng,
                               const SendOptions& opts = {}) {
    return m_layer->encrypt(stanza, rng, opts);
  }
  // decrypt verifies and decrypts an incoming stanza. |rng| pads the encrypted acknowledgement
  // a termination request gets (Received::reply). The overload without it draws from
  // SystemRandom, for tools and tests; the engine passes its own.
  Result<Received> decrypt(const xml::Element& stanza, RandomSource& rng) {
    return m_layer->decrypt(stanza, rng);
  }
  Result<Received> decrypt(const xml::Element& stanza);
  // rekey returns a stanza (a <message/> without content) carrying fresh keys and switches
  // our sending keys (XEP-0200 §9). Errc::wrong_state while a previous re-key is unacknowledged
  // or fewer than rekey_freq stanzas were sent since it.
  Result<xml::Element> rekey(RandomSource& rng) { return m_layer->rekey(rng); }
  // terminate returns the termination stanza and ends the session for sending; the session
  // stays able to receive the acknowledgement.
  Result<xml::Element> terminate(RandomSource& rng) { return m_layer->terminate(rng); }

  bool active() const { return m_layer->active(); }
  bool can_receive() const { return m_layer->can_receive(); }
  bool rekey_pending() const { return m_layer->rekey_pending(); }
  const SessionInfo& info() const { return m_layer->info(); }
  const Suite& suite() const { return m_layer->suite(); }

  // destroy wipes every key; later calls fail with Errc::terminated.
  void destroy() { m_layer->destroy(); }

  // serialize returns the complete state in a zeroising buffer, for the store. Its first four
  // bytes name the record layer's format ("ESS1" for profile 1.0).
  SecretBytes serialize() const { return m_layer->serialize(); }
  // deserialize rebuilds a session from serialize()'s output, choosing the record layer by the
  // magic. Errc::malformed for an unknown magic or a truncated, corrupted or inconsistent
  // state, Errc::unsupported for an unknown version of a known format.
  static Result<Session> deserialize(ByteView state);

  // v1 is profile 1.0's record layer, for the vector tool and tests that look at its counters
  // and keys; nullptr for a session of another profile.
  const v1::CtrHmacRecord* v1() const;

 private:
  std::unique_ptr<RecordLayer> m_layer;
};

// is_stanza_kind returns true for message, presence and iq.
bool is_stanza_kind(std::string_view name);

// terminate_form builds the XEP-0155 §7 termination form (type submit or result); its fields
// carry |field_type| when given (Gajim writes type="text-single" on every submitted field).
xml::Element terminate_form(std::string_view type, std::string_view field_type = {});
// terminate_form_type recognises a <feature/> carrying terminate=1 and returns its form type.
std::optional<std::string> terminate_form_type(const xml::Element& e);

}  // namespace esession
