// ProfileV1: profile 1.0 of the negotiation (XEP-0116 with XEP-0217 and Gajim's dialect, keys
// from MODP Diffie-Hellman, the record layer of XEP-0200). Internal to lib/session.
//
// The values below are what the steps of v1/steps.cpp carry from one message to the next; they
// are named as in XEP-0116 (N_A, x, e, C_A, form_A, K, ...). v1/form.cpp makes and reads the
// forms, v1/schedule.cpp does the key agreement, key schedule and identity blocks, v1/state.cpp
// saves and restores the values.
#pragma once

#include <algorithm>
#include <functional>

#include "session/profile.hpp"

namespace esession::v1 {

// contains: is |x| in |v|?
template <class T>
bool contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Dialect is the form dialect an initiator speaks: XEP-0116 as formats/esession-1.0.md reads
// it, Gajim's, or XEP-0217's fixed parameters.
enum class Dialect { spec, gajim, xep0217 };

// Wrapper is the element a negotiation form comes in: <feature/> (messages 1-3) or <init/>
// (message 4).
enum class Wrapper { feature, init };

// Incoming is the decoded form of a received negotiation message.
struct Incoming {
  const xml::Element* wrapper = nullptr;
  const xml::Element* x = nullptr;
  xml::Form form;
};

// read_form finds and parses the form of a negotiation message. A malformed form is refused as
// |rej| says; with not-acceptable (an offer, a response), naming the field at fault (§10).
Result<Incoming> read_form(const xml::Element& stanza, Wrapper w, std::string_view type,
                           Rejection& rej);
// open_message is read_form, then the 'accept' check when |accept|, then the echo of our nonce
// |n|: a message that does not echo it fails with "|what| does not echo our nonce".
Result<Incoming> open_message(const xml::Element& stanza, Wrapper w, std::string_view type,
                              bool accept, ByteView n, std::string_view what, Rejection& rej);
Result<Bytes> b64_field(const xml::Form& f, std::string_view var);
// hidden_b64_values decodes every value of |var|; |ok| is false if it is missing or one fails.
std::vector<Bytes> hidden_b64_values(const xml::Form& f, std::string_view var, bool& ok);
// new_form returns an empty <x xmlns='jabber:x:data' type=|type|/>.
xml::Element new_form(std::string_view type);
// add_credentials_field appends the extension field listing the credential kinds we read
// (formats §7.1), unless we read none or speak Gajim's protocol.
void add_credentials_field(xml::Element& fx, std::string_view type, bool gajim,
                           const std::vector<CredentialKind>& reads);

// Offer is what goes into message 1.
struct Offer {
  Dialect dialect = Dialect::spec;
  bool three = false;
  const Policy* policy = nullptr;
  std::vector<PubkeyMode> init, resp;  // identification offered (ignored by fixed dialects)
  std::vector<std::string> sign;       // sign_algs offered
  Bytes n_a;
  std::vector<int> groups;
  std::vector<Bytes> dh;  // per group: He (four-message) or e (three-message)
  std::vector<CredentialKind> reads;
  // offline: Alice's published options (XEP-0187 §3.1), a three-message offer without
  // 'accept' and the pubkey fields, with 'expires' (and 'match_resource') after the rest.
  const OfflineOptions* offline = nullptr;
  std::vector<std::string> stanzas;  // the stanza kinds offered
};
// fixed_identification replaces what a fixed dialect offers whatever the policy: Gajim's
// none/key/hash and none/key with RSA, XEP-0217's none.
void fixed_identification(Dialect d, std::vector<PubkeyMode>& init, std::vector<PubkeyMode>& resp,
                          std::vector<std::string>& sign);
// offer_form returns the form of message 1 in the offer's dialect.
xml::Element offer_form(const Offer& o);

// Choice is the responder's answer to each field of an offer.
struct Choice {
  std::string logging_var;  // "logging", or its synonym "otr" when the offer uses that
  std::string logging, disclosure, security, modp, crypt, hash, compress;
  std::vector<std::string> stanzas;
  std::string init_pk, resp_pk, ver, sas_alg, sign_alg;
  uint32_t rekey = 1;
  std::optional<KeyUnused> own_key_unused;
};
// choose picks, for each field of the offer |f|, the first option our policy accepts (formats
// §6). Fails naming the fields with no acceptable option. Offline options (|offline|) have no
// 'accept' and no pubkey fields: both parties identify by key (XEP-0187 §3.3).
Result<Choice> choose(const xml::Form& f, const PartyConfig& cfg, std::string_view peer_jid,
                      bool three, Rejection& rej, bool offline = false);

// Response is what goes into message 2 besides the choice.
struct Response {
  bool gajim = false, three = false;
  const xml::Element* offer_x = nullptr;  // the offer's form: the answers follow its order
  Bytes n_a, n_b, d, c_a;                 // d and C_A as MPIs
  bool offline = false;                   // an offline request: no 'accept', no pubkey fields
};
// response_form returns the form of message 2.
xml::Element response_form(const Choice& c, const Response& r);

// read_content decrypts the <c/> content a last negotiation message may carry into |step|.
Status read_content(const xml::Element& msg, Established& est, Step& step, RandomSource& rng);
// sending returns a Step that sends |m|.
Step sending(xml::Element m);

// key_unused returns the key types of the offered signature algorithms |algs|, and ours.
KeyUnused key_unused(const Signer& signer, const std::vector<std::string>& algs);

class ProfileV1 final : public Profile {
 public:
  explicit ProfileV1(Party& party) : m_party(party) {}

  ProfileId id() const override { return ProfileId::v1; }
  Result<Step> offer(RandomSource& rng) override;
  Result<Step> respond(const xml::Element& offer, RandomSource& rng, Rejection& rej) override;
  Result<Step> on_response(const xml::Element& msg, RandomSource& rng, Rejection& rej) override;
  Result<Step> on_accept(const xml::Element& msg, RandomSource& rng, Rejection& rej) override;
  Result<Step> on_init(const xml::Element& msg, RandomSource& rng, Rejection& rej) override;
  Result<xml::Element> publish(RandomSource& rng) override;
  Result<Step> start_offline(const xml::Element& options, int64_t now, RandomSource& rng) override;
  Result<Step> accept_offline(const xml::Element& request, int64_t now, RandomSource& rng) override;
  void wipe() override;
  void save(codec::Writer& w) const override;
  Status restore(codec::Reader& r, Stage stage) override;

 private:
  // An identity block as made: ID, M, the mac inside, and the counter after ID.
  struct Identity {
    Bytes id, m;
    SecretBytes mac;
    Counter128 after;
  };
  // A received identity block: the 'identity' and 'mac' fields, decoded.
  struct Block {
    Bytes id, m;
  };
  // The final keys of the four-message flow (XEP-0116 §4.7.3).
  struct FinalKeys {
    SecretBytes k;  // K' = HASH(K | SRS | OSS)
    KeySet keys;
    SecretBytes new_retained;
  };

  const PartyConfig& cfg() const { return m_party.cfg; }
  bool gajim() const { return suite.compat == Compat::gajim; }
  bool three() const { return suite.flow == Flow::three_message; }
  HashAlg hash() const { return suite.hash; }
  xml::NormStyle norm() const { return norm_style(suite.conv); }
  void record(const std::string& name, const std::string& v) { m_party.record(name, v); }
  void record_hex(const std::string& name, ByteView v) { m_party.record_hex(name, v); }
  // message returns the stanza to the peer carrying |form| in |w|, with the thread.
  xml::Element message(Wrapper w, xml::Element form) const;
  // normalized returns |form|'s normalized content without the identity block, recorded as
  // |name| (form_A2, form_B2).
  std::string normalized(const xml::Element& form, const std::string& name);

  // state.cpp: refuses restored values the steps of |stage| could not use.
  Status check_stage(const codec::Reader& r, Stage stage) const;

  // steps.cpp
  Status offer_identification();
  Status check_groups() const;
  Result<Step> finish_offer(Offer& o);
  Status draw_offer_values(Offer& o, RandomSource& rng);
  Result<bool> read_offer(const xml::Element& offer, const xml::Form& f, Rejection& rej);
  void take_choice(const Choice& c);
  Status read_offer_values(const xml::Form& f, const Choice& c, Rejection& rej);
  Status draw_response_values(RandomSource& rng);
  Result<Step> finish_response(const Incoming& in, const Choice& c);
  // response_x makes Bob's form of message 2 (or of an offline request): the answers, the
  // credentials field, form_B, and in the three-message flow his identity block. |extra|
  // adds fields that form_B must cover (an offline request's 'terminate').
  Result<xml::Element> response_x(const xml::Element& offer_x, const xml::Form& offer,
                                  const Choice& c, bool offline,
                                  const std::function<void(xml::Element&)>& extra = {});
  Status read_response_values(const xml::Form& f, size_t group, Rejection& rej);
  Result<Step> message_3(RandomSource& rng);
  Result<Step> three_message(const xml::Form& f, RandomSource& rng, Rejection& rej);
  Result<Step> on_accept3(const xml::Element& msg, const Incoming& in, RandomSource& rng);
  Result<std::vector<Bytes>> read_rshashes(const xml::Form& f) const;
  Result<Step> message_4(const std::vector<Bytes>& rshashes, IdentityProof proof,
                         const Counter128& recv_after, RandomSource& rng);

  // form.cpp: the initiator's check of the responder's choices (formats §6, §15.3).
  Result<size_t> check_algorithms(const xml::Form& f, Rejection& rej);
  Status check_identification(const xml::Form& f, Rejection& rej);
  Status check_stanzas_rekey(const xml::Form& f, Rejection& rej);
  Status check_sas_ver_answers(const xml::Form& f, Rejection& rej);
  Result<size_t> check_choice(const xml::Form& f, Rejection& rej);

  // offline.cpp (XEP-0187)
  Result<std::vector<std::string>> offline_stanzas() const;
  Status sign_options(xml::Element& fx) const;
  Result<PublicKey> verify_options(const xml::Element& options, const xml::Form& f) const;
  Status read_options(const xml::Element& options, const xml::Form& f, int64_t now);
  Status check_offline_identification(const xml::Form& f);

  // schedule.cpp
  void trace_keys(const std::string& prefix, const KeySet& ks, bool all);
  void agree(const DhGroup& g, const BigNum& peer, const BigNum& priv, const std::string& trace,
             bool all);
  void compute_sas();
  MacFn mac_a_fn(ByteView k_sa, std::string form_a2) const;
  MacFn mac_b_fn(ByteView k_sb, std::string form_b2) const;
  std::optional<SignAlg> sign_alg() const { return sign_alg_from_uri(suite.sign_alg); }
  Result<Identity> make_identity(ByteView k_c, ByteView k_m, const Counter128& c, PubkeyMode mode,
                                 const MacFn& mac_for) const;
  Result<IdentityProof> open_identity(ByteView k_c, ByteView k_m, const Counter128& c, ByteView id,
                                      ByteView m, PubkeyMode mode, const MacFn& mac_for,
                                      Counter128& after) const;
  Result<Identity> own_identity(xml::Element& xe, std::string_view t, const KeySet& ks,
                                const std::string& form2);
  static Result<Block> read_block(const xml::Form& f);
  Result<IdentityProof> open_peer_identity(const Block& b, const KeySet& ks,
                                           const std::string& form2, Counter128& after);
  std::vector<Bytes> make_rshashes(RandomSource& rng) const;
  FinalKeys final_keys(const SecretBytes* srs, ByteView srshash);
  // establish hands out the session; |receive_only| for Alice's side of an offline session,
  // in which she must not send (XEP-0187 §4).
  Established establish(const KeySet& ks, const Counter128& send_ctr, const Counter128& recv_ctr,
                        IdentityProof peer, bool receive_only = false);
  Status attach_content(xml::Element& msg, Session& s, RandomSource& rng);

  Party& m_party;

  // The negotiation values (wiped with the object).
  Suite suite;
  Bytes n_a, n_b;
  std::vector<int> offered_groups;
  std::vector<BigNum> x_per_group;  // Alice: one per offered group
  std::vector<Bytes> he_per_group;  // Bob: Alice's commitment for the chosen group
  BigNum x, y, e, d;
  Counter128 c_a, c_b;
  std::string form_a, form_b;
  SecretBytes k;
  KeySet prov;  // from K: provisional in the four-message flow, final in the three-message one
  Bytes M_A;    // Alice's identity-block MAC, an input of the SAS
  std::string sas, sas_unpadded;
  // Alice: what she offered, to check Bob's choices against.
  std::vector<PubkeyMode> offered_init, offered_resp;
  std::vector<std::string> offered_sign;
  std::vector<std::string> peer_reads;      // the credential kinds the peer said it reads (§7.1)
  std::optional<KeyUnused> own_key_unused;  // Established::own_key_unused
};

}  // namespace esession::v1
