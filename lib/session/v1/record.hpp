// CtrHmacRecord: profile 1.0's record layer, XEP-0200 with AES-CTR and HMAC.
//
// It encrypts outgoing one-to-one stanzas into <c/> and decrypts incoming ones, re-keys
// (<key/>, <new/>), publishes old MAC keys (<old/>) and terminates. Every operation works on a
// copy of the state and commits only on success. Any authentication or format failure of an
// incoming stanza destroys the session (XEP-0200 §8): its keys are wiped and every later call
// fails with Errc::terminated. Its state format is "ESS1" (v1/record_state.cpp).
//
// The rest of the library reaches it through Session (session.hpp); its own accessors
// (params, last_trace) are for the vector tool and tests of profile 1.0.
#pragma once

#include <array>

#include "session/record.hpp"

namespace esession::v1 {

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
struct SessionParams : SessionInfo {
  Suite suite;
  DirectionKeys send, recv;
  Counter128 send_ctr, recv_ctr;
  // G5b: unused bytes at the end of each direction's last keystream block (0-15), which start
  // the next stanza of that direction. Always 0 without G5b.
  uint8_t send_carry = 0, recv_carry = 0;
  BigNum my_private;   // our latest DH private value (x or y)
  BigNum peer_public;  // the peer's latest DH public value (d or e)
  // receive_only: the session starts closed for sending, its send keys and its private value
  // dropped (Alice's side of an offline session, XEP-0187 §4): it cannot follow a re-key. Not
  // stored: the state says "closing", the private value is 0.
  bool receive_only = false;
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

class CtrHmacRecord final : public RecordLayer {
 public:
  explicit CtrHmacRecord(SessionParams p);

  std::unique_ptr<RecordLayer> clone() const override;
  const SessionInfo& info() const override { return m_p; }
  const Suite& suite() const override { return m_p.suite; }

  // encrypt returns |stanza| with its content replaced by <c/>. Errors: Errc::not_acceptable
  // when the stanza kind was not negotiated; Errc::terminated after the session ended.
  Result<xml::Element> encrypt(const xml::Element& stanza, RandomSource& rng,
                               const SendOptions& opts) override;
  // decrypt verifies and decrypts an incoming stanza carrying <c/>. |rng| pads the encrypted
  // acknowledgement a termination request gets (Received::reply).
  Result<Received> decrypt(const xml::Element& stanza, RandomSource& rng) override;
  // rekey returns a stanza (a <message/> without content) carrying a fresh <key/> and switches
  // our sending keys (XEP-0200 §9). Errc::wrong_state while a previous re-key is unacknowledged
  // or fewer than rekey_freq stanzas were sent since it.
  Result<xml::Element> rekey(RandomSource& rng) override;
  // terminate returns the termination stanza and ends the session for sending; the session
  // stays able to receive the acknowledgement.
  Result<xml::Element> terminate(RandomSource& rng) override;

  bool active() const override { return m_state == State::active; }
  bool can_receive() const override {
    return m_state == State::active || m_state == State::closing;
  }
  bool rekey_pending() const override { return m_recv.size() > 1; }
  // destroy wipes every key; later calls fail with Errc::terminated.
  void destroy() override;

  // serialize returns the complete state (the "ESS1" format of v1/record_state.cpp) in a
  // zeroising buffer, for the store.
  SecretBytes serialize() const override;
  // deserialize rebuilds a record layer from serialize()'s output. Errc::malformed for a
  // truncated, corrupted or inconsistent state, Errc::unsupported for an unknown format version.
  static Result<CtrHmacRecord> deserialize(ByteView state);
  // kMagic starts every state serialize() writes.
  static constexpr std::string_view kMagic = "ESS1";

  const SessionParams& params() const { return m_p; }
  const CounterTrace& last_trace() const { return m_trace; }

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

}  // namespace esession::v1
