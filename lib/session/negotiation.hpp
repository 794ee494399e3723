// Negotiation: the XEP-0116 (and XEP-0217) ESession negotiation, sans I/O.
//
// An Initiator (Alice) produces the offer with start(); each received stanza goes to
// receive(), which returns the stanzas to send and, once the session is established, the
// Session with its SAS and the retained secret to store. A Responder (Bob) is created from the
// offer. Every failure destroys all negotiation state (XEP-0116 §4.4, §4.6-4.8): the object then
// refuses everything, and error_reply() gives the error stanza the XEPs ask for, if any.
//
// A negotiation in progress can be saved (serialize) and taken up again (deserialize), by
// another process or after a restart. The flow lives in negotiation.cpp; what depends on the
// negotiated version (forms, keys, record layer) is a profile (profile.hpp, v1/).
#pragma once

#include <map>
#include <memory>
#include <optional>

#include "session/identity.hpp"
#include "session/session.hpp"

namespace esession {

// kMaxThreadBytes is the longest <thread/> a responder accepts in an offer (the store keeps no
// longer one).
constexpr size_t kMaxThreadBytes = 1024;

// ProfileId names a protocol profile: the 'ver' its forms carry, its form dialects, key
// agreement, key schedule, identity blocks and record layer (lib/session/profile.hpp).
enum class ProfileId {
  v1,  // 1.0, formats/esession-1.0.md: MODP groups, HASH/HMAC key schedule, AES-CTR + HMAC
};

// Policy is what one party offers (initiator) or accepts (responder), in preference order.
struct Policy {
  // profiles: initiator, the profile to run is the first; responder, the ones it accepts.
  std::vector<ProfileId> profiles = {ProfileId::v1};
  Compat compat = Compat::spec;
  std::optional<CryptoConv> conv;  // default: CryptoConv::for_compat(compat)
  bool xep0217 = false;            // initiator: offer the XEP-0217 fixed parameters
  Flow flow = Flow::four_message;  // initiator: the flow to start
  bool accept_three_message = true;
  std::vector<int> groups = {15, 16, 14};
  bool allow_weak_groups = false;
  std::vector<CipherAlg> ciphers = {CipherAlg::aes256_ctr, CipherAlg::aes128_ctr};
  std::vector<HashAlg> hashes = {HashAlg::sha256, HashAlg::sha512};
  std::vector<std::string> stanzas = {"message", "presence", "iq"};
  // Identification, in preference order. Initiator: init_pubkey is what she can give (key and
  // hash need a Signer), resp_pubkey what she accepts from the responder (hash is offered only
  // for a peer whose keys the Verifier knows). Responder: the reverse. 'none' is dropped from
  // both in a three-message negotiation (XEP-0116 §4.3).
  std::vector<PubkeyMode> init_pubkey = {PubkeyMode::none};
  std::vector<PubkeyMode> resp_pubkey = {PubkeyMode::none};
  uint32_t rekey_freq = 1;
  std::vector<std::string> logging = {"mustnot", "may"};
};

// PartyConfig is one party's identity, policy and secrets for a negotiation.
struct PartyConfig {
  std::string jid;  // our full JID
  Policy policy;
  std::vector<SecretBytes> retained;        // retained secrets held for this peer
  std::vector<SecretBytes> retained_other;  // responder: secrets held for other JIDs
  std::optional<SecretBytes> oss;           // other shared secret (XEP-0116 §4.7.3)
  std::string thread;                       // initiator: the <thread/> (random if empty)
  const Signer* signer = nullptr;           // our signing key, for key/hash identification
  const Verifier* verifier = nullptr;       // the peer keys we know and accept
  // reads_credentials: the credential kinds we evaluate and so ask the peer to attach to its
  // identity block (formats §7.1); empty leaves the extension out.
  std::vector<CredentialKind> reads_credentials = {CredentialKind::x509, CredentialKind::openpgp};
  // content: a stanza to encrypt and send with our last negotiation message (the initiator's
  // message 3 of the three-message flow; the responder's message 4 of the four-message flow,
  // so a responder with content refuses a three-message offer).
  std::optional<xml::Element> content;
  // terminate_after_content: three-message initiator only; message 3 carries terminate=1 and
  // the session ends at once (one stanza with forward secrecy, XEP-0116 §4.6.4).
  bool terminate_after_content = false;
  // trace, when set, receives every intermediate value under the names of the
  // esession-vector/1 schema (hex, or text for forms). Only the vector tool sets it.
  std::map<std::string, std::string>* trace = nullptr;
};

// KeyUnused: the key types whose algorithms the peer's offer allowed, and ours.
struct KeyUnused {
  std::vector<KeyType> offered;
  KeyType ours = KeyType::ed25519;
  // describe says it in words: "the offer allows only ed25519 signatures, and our key is rsa".
  std::string describe() const;
};

// Established is what a completed negotiation yields.
struct Established {
  std::unique_ptr<Session> session;
  std::string sas;  // sas28x5, padded (4-message flow only)
  std::string sas_unpadded;
  SecretBytes new_retained_secret;  // store for this peer, replacing the matched one
  std::optional<size_t> srs_index;  // index into retained (or retained_other, see below)
  bool srs_from_other = false;      // the match came from retained_other
  bool oss_used = false;
  Flow flow = Flow::four_message;
  PubkeyMode peer_mode = PubkeyMode::none;  // how the peer identified itself
  PubkeyMode own_mode = PubkeyMode::none;   // how we identified ourselves
  // own_key_unused is set when our signing key did not identify us although our policy would
  // have used it: one sign_algs value serves both parties (formats §6), and the offer allowed
  // only algorithms of other key types, so we fell back to the SAS.
  std::optional<KeyUnused> own_key_unused;
  std::optional<PublicKey> peer_key;          // its key, whose signature verified (key or hash)
  std::optional<Credential> peer_credential;  // the certificate or OpenPGP key it came with
  bool terminated = false;                    // three-message with terminate=1: already over
};

// OfflineOptions is what Alice publishes before going offline (XEP-0187 §3.1,
// formats/offline.md): options any one of her subscribers (or anyone, for a long-lived set)
// can start a session with while she is away.
struct OfflineOptions {
  int64_t expires = 0;  // seconds since the epoch: no request is accepted at or after it
  // match_resource: when set, only this resource of Alice's can accept (her x values stay on
  // that client), and the options offer <message/> only.
  std::string match_resource;
};

// OfflineRequest is the clear part of an offline request: which options it uses (N_A and the
// group) and the values that make it unique (N_B, d), so that the caller can find the options
// and refuse a replay (XEP-0187 §3.4 step 2) before accept_offline does any cryptography.
struct OfflineRequest {
  Bytes n_a, n_b, d;
  int modp = 0;
};
// read_offline_request reads them from a stanza carrying an offline request (<init/> with a
// submit form holding 'nonce'). Errc::malformed if it is not one.
Result<OfflineRequest> read_offline_request(const xml::Element& stanza);

// Step is the outcome of one negotiation step.
struct Step {
  std::vector<xml::Element> send;
  std::optional<Established> established;
  std::vector<Received> content;  // decrypted <c/> content piggy-backed on the last message
};

class Negotiation {
 public:
  ~Negotiation();
  Negotiation(Negotiation&&) noexcept;
  Negotiation& operator=(Negotiation&&) noexcept;

  // start makes Alice's offer to |peer_jid| (a full JID). Its stanza is in Step::send.
  static Result<std::pair<Negotiation, Step>> start(PartyConfig cfg, std::string peer_jid,
                                                    RandomSource& rng);
  // respond makes Bob's answer to an offer. The peer's JID is taken from the offer's 'from'
  // attribute, or |peer_jid| when given. On failure the Error is returned and, when the XEPs
  // ask for one, the error stanza to send is stored in |*error_reply|.
  static Result<std::pair<Negotiation, Step>> respond(
      PartyConfig cfg, const xml::Element& offer, RandomSource& rng, std::string peer_jid = {},
      std::optional<xml::Element>* error_reply = nullptr);

  // receive processes the next negotiation stanza from the peer.
  Result<Step> receive(const xml::Element& stanza, RandomSource& rng);

  // ---- Offline sessions (XEP-0187) ----
  // publish_offline makes Alice's offline options: the signed <x type='form'/> to publish
  // (cfg.signer signs it), and the negotiation that waits for requests against it. Save that
  // (serialize) until she is back; each request is accepted against it with accept_offline,
  // which does not consume it. Its secrets (N_A, one x per group) are what a published set
  // risks: destroy the saved state when the options are retracted or expire.
  static Result<std::pair<Negotiation, xml::Element>> publish_offline(PartyConfig cfg,
                                                                      const OfflineOptions& opts,
                                                                      RandomSource& rng);
  // start_offline is Bob's side: from Alice's published options |options| (the <x/> of the
  // PEP item), after checking that a key of hers that cfg.verifier knows signed them and that
  // they have not expired at |now|, it makes the one offline request (Step::send, to
  // |alice_jid| or the resource the options name), carrying cfg.content encrypted, and
  // establishes the session at once (Step::established). cfg.signer identifies Bob: Alice,
  // offline, can check no SAS. Nothing is sent on a failure (XEP-0187 §3.2).
  static Result<Step> start_offline(PartyConfig cfg, const xml::Element& options,
                                    std::string alice_jid, int64_t now, RandomSource& rng);
  // accept_offline is Alice's side, back online: it takes Bob's offline request |request|
  // (from |bob_jid|) against her saved options |options_state|, refuses it at or after their
  // expiry without decrypting it, checks Bob's identity (his key, as XEP-0187 §3.4 says) and
  // establishes a session that only receives (Alice must not send in it, §4), with the
  // request's content decrypted (Step::content). Replays are the caller's to refuse first
  // (read_offline_request). Failures send nothing.
  static Result<Step> accept_offline(ByteView options_state, const PartyConfig& cfg,
                                     const xml::Element& request, std::string bob_jid, int64_t now,
                                     RandomSource& rng);
  // offline_options is what publish_offline was given, for a negotiation that holds options.
  const std::optional<OfflineOptions>& offline_options() const;

  // serialize returns the state of the negotiation (format "ENS1", formats/negotiation-state.md)
  // in a zeroising buffer, so that it can be continued by another process or after a restart.
  // The PartyConfig is not in it, save the thread and our own JID: the caller keeps it (it holds
  // the Signer and Verifier) and gives it again to deserialize. The error reply is not kept.
  SecretBytes serialize() const;
  // deserialize restores a negotiation from serialize()'s output, with the configuration |cfg|
  // it was started with. Errc::malformed for a truncated, corrupted or inconsistent state (or
  // one made with another JID), Errc::unsupported for an unknown format version.
  static Result<Negotiation> deserialize(ByteView state, const PartyConfig& cfg);

  bool failed() const;
  bool initiator() const;
  const std::string& thread() const;
  // error_reply is the error stanza to send after the last failure, if the XEPs ask for one.
  const std::optional<xml::Element>& error_reply() const;

  struct Impl;

 private:
  explicit Negotiation(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

// is_negotiation_stanza returns true for a stanza carrying an ESession negotiation form
// (<feature/> or <init/> with FORM_TYPE urn:xmpp:ssn), other than a termination.
bool is_negotiation_stanza(const xml::Element& stanza);

// error_stanza builds the XEP-0116 §4.4 error reply to |request|: condition is
// "not-acceptable" or "feature-not-implemented", |fields| are named in the error's <feature/>.
xml::Element error_stanza(const xml::Element& request, std::string_view condition,
                          const std::vector<std::string>& fields, std::string_view to);

}  // namespace esession
