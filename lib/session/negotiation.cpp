#include "session/negotiation.hpp"

#include <algorithm>

namespace esession {

namespace {

constexpr std::string_view kFormType = "urn:xmpp:ssn";
constexpr std::string_view kRsaSha256 = "http://www.w3.org/2000/09/xmldsig#rsa-sha256";

enum class State { offered, responded, accepted, established, failed };

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Decoded negotiation form of a received stanza.
struct Incoming {
  const xml::Element* wrapper = nullptr;  // <feature/> or <init/>
  const xml::Element* x = nullptr;
  xml::Form form;
};

// Rejection carries the XEP-0116 §4.4 condition and fields of a failed step.
struct Rejection {
  std::string condition;  // not-acceptable, feature-not-implemented, or empty (send nothing)
  std::vector<std::string> fields;
};

}  // namespace

struct Negotiation::Impl {
  PartyConfig cfg;
  std::string peer_jid;
  bool initiator = true;
  State state = State::offered;
  Suite suite;
  std::optional<xml::Element> error_reply;

  // Negotiation values (wiped with the object).
  Bytes n_a, n_b;
  std::vector<int> offered_groups;
  std::vector<BigNum> x_per_group;  // Alice: one per offered group
  std::vector<Bytes> he_per_group;  // Bob: Alice's commitments
  BigNum x, y, e, d;
  Counter128 c_a, c_b;
  std::string form_a, form_b;
  SecretBytes k;
  KeySet prov;
  Bytes m_a;
  std::string sas, sas_unpadded;
  // Alice: what she offered, to check Bob's choices against.
  std::vector<PubkeyMode> offered_init, offered_resp;
  std::vector<std::string> offered_sign;
  std::vector<std::string> peer_reads;      // the credential kinds the peer said it reads (§7.1)
  std::optional<IdentityProof> peer_proof;  // three-message Alice: Bob's verified identity
  bool terminate_requested = false;         // three-message: terminate=1 in message 3
  std::optional<KeyUnused> own_key_unused;  // Established::own_key_unused

  // key_unused: the key types of the offered signature algorithms |algs|, and ours.
  KeyUnused key_unused(const std::vector<std::string>& algs) const {
    KeyUnused u{{}, cfg.signer->public_key().type()};
    for (const auto& v : algs)
      if (auto a = sign_alg_from_uri(v))
        if (std::find(u.offered.begin(), u.offered.end(), sign_alg_key_type(*a)) == u.offered.end())
          u.offered.push_back(sign_alg_key_type(*a));
    return u;
  }

  void record(const std::string& name, const std::string& v) {
    if (cfg.trace)
      (*cfg.trace)[name] = v;
  }
  void record_hex(const std::string& name, ByteView v) { record(name, hex(v)); }

  bool gajim() const { return suite.compat == Compat::gajim; }
  xml::NormStyle norm() const { return norm_style(suite.conv); }
  HashAlg hash() const { return suite.hash; }

  xml::Element stanza_to_peer() const {
    xml::Element m("message", std::string(xml::kNsClient));
    m.set_attr("to", peer_jid);
    return m;
  }
  void add_thread(xml::Element& m) const { m.add_text_child("thread", cfg.thread); }

  // fail_with destroys every secret and records the error reply.
  Error fail_with(Error err, const xml::Element* request, Rejection rej) {
    state = State::failed;
    k = {};
    prov = {};
    x_per_group.clear();
    x = BigNum();
    y = BigNum();
    if (request && !rej.condition.empty())
      error_reply = error_stanza(*request, rej.condition, rej.fields, peer_jid);
    return err;
  }

  Result<Step> alice_start(RandomSource& rng);
  Result<Step> bob_respond(const xml::Element& offer, RandomSource& rng, Rejection& rej);
  Result<Step> alice_on_response(const xml::Element& msg, RandomSource& rng, Rejection& rej);
  Result<Step> bob_on_accept(const xml::Element& msg, RandomSource& rng, Rejection& rej);
  Result<Step> alice_on_init(const xml::Element& msg, Rejection& rej);

  Result<Step> bob_on_accept3(const xml::Element& msg, const Incoming& in, RandomSource& rng);
  Result<Step> alice_three_message(const xml::Form& f, RandomSource& rng, Rejection& rej);

  // mac_A = HMAC(K_SA, N_B | N_A | e | pubKey_A | form_A | form_A2) (provisional K_SA in the
  // four-message flow); mac_B = HMAC(K_SB, N_A | N_B | d | pubKey_B | form_B [| form_B2]).
  MacFn mac_a_fn(std::string form_a2) const {
    return [this, form_a2 = std::move(form_a2)](std::string_view pub) {
      Bytes e_mpi = e.mpi();
      return hmac_parts(
          hash(), prov.sa,
          {view(n_b), view(n_a), view(e_mpi), view(pub), view(form_a), view(form_a2)});
    };
  }
  MacFn mac_b_fn(ByteView k_sb, std::string form_b2) const {
    return [this, k_sb, form_b2 = std::move(form_b2)](std::string_view pub) {
      Bytes d_mpi = d.mpi();
      return hmac_parts(
          hash(), k_sb,
          {view(n_a), view(n_b), view(d_mpi), view(pub), view(form_b), view(form_b2)});
    };
  }

  // Identity blocks (XEP-0116 §4.5.4, §4.6.3; formats §7).
  struct Identity {
    Bytes id, m;
    SecretBytes mac;
    Counter128 after;
  };
  std::optional<SignAlg> sign_alg() const { return sign_alg_from_uri(suite.sign_alg); }
  std::string own_pubkey(PubkeyMode mode) const {
    return mode == PubkeyMode::none ? std::string()
                                    : normalized_key_value(cfg.signer->public_key());
  }
  Result<Identity> make_identity(ByteView k_c, ByteView k_m, const Counter128& c, PubkeyMode mode,
                                 const MacFn& mac_for) const;
  Result<IdentityProof> open_identity(ByteView k_c, ByteView k_m, const Counter128& c, ByteView id,
                                      ByteView m, PubkeyMode mode, const MacFn& mac_for,
                                      Counter128& after) const;
  // alice_identity appends Alice's identity block (ID_A, M_A) to her completion form |xe|, whose
  // other fields form_A2 are (field type |t|), with the keys derived from K.
  Result<Identity> alice_identity(xml::Element& xe, std::string_view t) {
    std::string form_a2 = xml::normalize_form_content(xe, norm());
    record("form_A2", form_a2);
    SecretBytes kca = cipher_key(suite.conv, suite.cipher, prov.ca);
    ES_ASSIGN(Identity ida, make_identity(kca, prov.ma, c_a, suite.init_pubkey, mac_a_fn(form_a2)));
    record_hex("mac_A", ida.mac);
    record_hex("ID_A", ida.id);
    record_hex("M_A", ida.m);
    xml::add_field(xe, "identity", t).value(base64(ida.id));
    xml::add_field(xe, "mac", t).value(base64(ida.m));
    return ida;
  }
  // add_credentials_field appends the extension field listing the credential kinds we read
  // (formats §7.1), unless we read none or speak Gajim's protocol.
  void add_credentials_field(xml::Element& fx, std::string_view type) const {
    if (gajim() || cfg.reads_credentials.empty())
      return;
    auto cf = xml::add_field(fx, "credentials", type);
    for (auto kind : cfg.reads_credentials)
      cf.value(credential_kind_name(kind));
  }
  // finish builds the Session of an established negotiation.
  Established establish(const DirectionKeys& send, const DirectionKeys& recv,
                        const Counter128& send_ctr, const Counter128& recv_ctr);
  // attach_content encrypts cfg.content with |s| and appends its <c/> to |msg|.
  Status attach_content(xml::Element& msg, Session& s, RandomSource& rng);

  void trace_keys(const std::string& prefix, const KeySet& ks, bool all);
};

namespace {

// read_form finds and parses the form of a negotiation message. A malformed form is refused as
// |rej| says; with not-acceptable (an offer, a response), naming the field at fault (§10).
Result<Incoming> read_form(const xml::Element& stanza, std::string_view wrapper_name,
                           std::string_view wrapper_ns, std::string_view type, Rejection& rej) {
  Incoming in;
  in.wrapper = stanza.child(wrapper_name, wrapper_ns);
  if (!in.wrapper)
    return fail(Errc::wrong_state, "expected <" + std::string(wrapper_name) + "/> negotiation");
  in.x = xml::find_form(*in.wrapper);
  if (!in.x)
    return fail(Errc::malformed, "negotiation without a data form");
  std::string bad;
  auto form = xml::parse_form(*in.x, &bad);
  if (!form) {
    if (rej.condition.empty())
      rej.condition = "not-acceptable";
    if (rej.condition == "not-acceptable" && !bad.empty())
      rej.fields = {bad};
    return form.error();
  }
  in.form = std::move(form).value();
  if (in.form.form_type() != kFormType)
    return fail(Errc::malformed, "form is not of FORM_TYPE urn:xmpp:ssn");
  if (in.form.type != type)
    return fail(Errc::wrong_state,
                "expected a form of type '" + std::string(type) + "', got '" + in.form.type + "'");
  return in;
}

Result<Bytes> b64_field(const xml::Form& f, std::string_view var) {
  ES_ASSIGN(std::string v, f.value(var));
  auto b = unbase64(v);
  if (!b)
    return fail(Errc::malformed, "field '" + std::string(var) + "': " + b.error().detail);
  return std::move(b).value();
}

// check_accept: 'accept' must be present (else malformed) and true (else the peer declined).
Status check_accept(const xml::Form& f, Rejection& rej) {
  if (!f.field("accept")) {
    rej.fields = {"accept"};
    return fail(Errc::malformed, "missing field 'accept'");
  }
  auto v = f.offered_single("accept");
  if (!v || xml::parse_bool(*v) != true)
    return fail(Errc::not_acceptable, "the peer declined the encrypted session");
  return {};
}

// b64_field_or_name is b64_field; a failure names the field in |rej| (formats §10).
Result<Bytes> b64_field_or_name(const xml::Form& f, std::string_view var, Rejection& rej) {
  auto b = b64_field(f, var);
  if (!b)
    rej.fields = {std::string(var)};
  return b;
}

std::vector<Bytes> hidden_b64_values(const xml::Form& f, std::string_view var, bool& ok) {
  std::vector<Bytes> out;
  ok = true;
  const xml::Field* fl = f.field(var);
  if (!fl) {
    ok = false;
    return out;
  }
  for (const auto& v : fl->values) {
    auto b = unbase64(v);
    if (!b) {
      ok = false;
      return {};
    }
    out.push_back(std::move(b).value());
  }
  return out;
}

std::string rekey_freq_text(uint32_t v) {
  return std::to_string(v);
}

// draw_counter draws C_A. For a Gajim peer it draws again while the first byte of C_A or of
// C_B = C_A XOR 2^127 is zero (0x00 or 0x80): Gajim's code fails on a counter below 2^120,
// that is 1 session in 128 (formats §18). Both then stay above 2^120 until they wrap.
Result<Counter128> draw_counter(RandomSource& rng, bool gajim) {
  for (int i = 0; i < 64; ++i) {
    Counter128 c = rng.initial_counter();
    if (!gajim || (c.b[0] & 0x7f) != 0)
      return c;
  }
  // 64 draws in a row at 1 in 128 each: not a working random source.
  return fail(Errc::internal, "the random source keeps drawing counters Gajim cannot use");
}

}  // namespace

void Negotiation::Impl::trace_keys(const std::string& prefix, const KeySet& ks, bool all) {
  if (!cfg.trace)
    return;
  record_hex(prefix + ".K_CA", ks.ca);
  record_hex(prefix + ".K_MA", ks.ma);
  record_hex(prefix + ".K_SA", ks.sa);
  if (all) {
    record_hex(prefix + ".K_CB", ks.cb);
    record_hex(prefix + ".K_MB", ks.mb);
    record_hex(prefix + ".K_SB", ks.sb);
  }
}

Result<Negotiation::Impl::Identity> Negotiation::Impl::make_identity(ByteView k_c, ByteView k_m,
                                                                     const Counter128& c,
                                                                     PubkeyMode mode,
                                                                     const MacFn& mac_for) const {
  Identity out;
  if (mode != PubkeyMode::none && !cfg.signer)
    return fail(Errc::internal, "key or hash identification without a signing key");
  out.mac = mac_for(own_pubkey(mode));
  SecretBytes plain = out.mac;
  if (mode != PubkeyMode::none) {
    auto alg = sign_alg();
    if (!alg)
      return fail(Errc::internal, "no signature algorithm was negotiated");
    const Credential* cred = cfg.signer->credential();
    bool with_cred = cred && std::find(peer_reads.begin(), peer_reads.end(),
                                       credential_kind_name(cred->kind)) != peer_reads.end();
    ES_ASSIGN(std::string p,
              identity_plaintext(mode, hash(), *alg, *cfg.signer, view(out.mac), with_cred));
    plain = secret(view(p));
  }
  out.id.resize(plain.size());
  out.after = ctr_encrypt(suite.conv, k_c, c, view(plain), out.id.data());
  Bytes c_mpi = c.mpi();
  out.m = bytes_of(view(hmac_parts(hash(), k_m, {view(c_mpi), view(out.id)})));
  return out;
}

Result<IdentityProof> Negotiation::Impl::open_identity(ByteView k_c, ByteView k_m,
                                                       const Counter128& c, ByteView id, ByteView m,
                                                       PubkeyMode mode, const MacFn& mac_for,
                                                       Counter128& after) const {
  if (m.size() != hash_size(hash()) ||
      (mode == PubkeyMode::none ? id.size() != hash_size(hash()) : id.empty()))
    return fail(Errc::auth_failed, "identity or mac has the wrong length");
  Bytes c_mpi = c.mpi();
  SecretBytes expect = hmac_parts(hash(), k_m, {view(c_mpi), id});
  if (!ct_equal(view(expect), m))
    return fail(Errc::auth_failed, "identity MAC (M_A/M_B) does not verify");
  SecretBytes plain(id.size());
  after = ctr_encrypt(suite.conv, k_c, c, id, plain.data());
  return check_identity(mode, hash(), sign_alg(), view(plain), mac_for, cfg.verifier,
                        bare_jid(peer_jid));
}

Established Negotiation::Impl::establish(const DirectionKeys& send, const DirectionKeys& recv,
                                         const Counter128& send_ctr, const Counter128& recv_ctr) {
  SessionParams sp;
  sp.suite = suite;
  sp.initiator = initiator;
  sp.local_jid = cfg.jid;
  sp.peer_jid = peer_jid;
  sp.thread = cfg.thread;
  sp.send = send;
  sp.recv = recv;
  sp.send_ctr = send_ctr;
  sp.recv_ctr = recv_ctr;
  sp.my_private = initiator ? x : y;
  sp.peer_public = initiator ? d : e;
  std::string who = initiator ? "alice" : "bob";
  record("counters_after_negotiation." + who + "_send", send_ctr.hex());
  record("counters_after_negotiation." + who + "_receive", recv_ctr.hex());
  Established est;
  est.session = std::make_unique<Session>(std::move(sp));
  est.flow = suite.flow;
  est.sas = sas;
  est.sas_unpadded = sas_unpadded;
  est.own_mode = initiator ? suite.init_pubkey : suite.resp_pubkey;
  est.own_key_unused = own_key_unused;
  state = State::established;
  k = {};
  prov = {};
  x = BigNum();
  y = BigNum();
  x_per_group.clear();
  return est;
}

Status Negotiation::Impl::attach_content(xml::Element& msg, Session& s, RandomSource& rng) {
  if (!cfg.content)
    return {};
  if (cfg.content->name != "message")
    return fail(Errc::not_acceptable, "only a <message/> can ride on a negotiation message");
  ES_ASSIGN(xml::Element enc, s.encrypt(*cfg.content, rng));
  for (auto& c : enc.children)
    if (c.is("c", xml::kNsC))
      msg.children.push_back(std::move(c));
  return {};
}

// ---- Alice: message 1 ----------------------------------------------------------------------

std::string KeyUnused::describe() const {
  std::string types;
  for (KeyType t : offered)
    types += (types.empty() ? "" : ", ") + std::string(key_type_name(t));
  return "the offer allows only " + (types.empty() ? std::string("unknown") : types) +
         " signatures, and our key is " + std::string(key_type_name(ours));
}

Result<Step> Negotiation::Impl::alice_start(RandomSource& rng) {
  const Policy& pol = cfg.policy;
  suite.compat = pol.compat;
  suite.conv = pol.conv ? *pol.conv : CryptoConv::for_compat(pol.compat);
  suite.flow = pol.flow;
  bool three = pol.flow == Flow::three_message;
  if (three && (gajim() || pol.xep0217))
    return fail(Errc::not_acceptable,
                "the three-message flow is not part of Gajim's protocol or of XEP-0217");
  if (cfg.terminate_after_content && (!three || !cfg.content))
    return fail(Errc::not_acceptable,
                "terminating after the first stanza needs the three-message flow and content");
  // Identification we can give (init) and accept (resp); key and hash need our Signer, 'hash'
  // from Bob needs a key of his that we know.
  bool know_peer = cfg.verifier && !cfg.verifier->known_keys(bare_jid(peer_jid)).empty();
  for (auto m : pol.init_pubkey)
    if (!(three && m == PubkeyMode::none) && (m == PubkeyMode::none || cfg.signer))
      offered_init.push_back(m);
  for (auto m : pol.resp_pubkey)
    if (!(three && m == PubkeyMode::none) && (m != PubkeyMode::hash || know_peer))
      offered_resp.push_back(m);
  if (offered_init.empty() || offered_resp.empty())
    return fail(Errc::not_acceptable,
                three ? "the three-message flow needs a signing key and public-key "
                        "identification of both parties"
                      : "no identification method to offer");
  auto any_key = [](const std::vector<PubkeyMode>& v) {
    return std::any_of(v.begin(), v.end(), [](PubkeyMode m) { return m != PubkeyMode::none; });
  };
  if (any_key(offered_init) || any_key(offered_resp)) {
    // One algorithm serves both parties: if we may sign, offer only what our key makes.
    for (SignAlg a : {SignAlg::rsa_sha256, SignAlg::dsa_sha256, SignAlg::ed25519})
      if (!any_key(offered_init) || cfg.signer->can_sign(a))
        offered_sign.emplace_back(sign_alg_uri(a));
  }
  if (pol.groups.empty())
    return fail(Errc::not_acceptable, "no Diffie-Hellman group to offer");
  for (int id : pol.groups) {
    const DhGroup* g = dh_group(id);
    if (!g)
      return fail(Errc::unsupported, "unknown MODP group " + std::to_string(id));
    if (g->weak && !pol.allow_weak_groups)
      return fail(Errc::not_acceptable, "MODP group " + std::to_string(id) +
                                            " is too weak (allow weak groups to use it)");
  }
  if (cfg.thread.empty())
    cfg.thread = hex(rng.nonce(16));
  n_a = rng.nonce(gajim() ? 8 : 16);
  record_hex("N_A", n_a);
  offered_groups = pol.groups;
  std::vector<Bytes> hes, es;
  for (int id : offered_groups) {
    const DhGroup& g = *dh_group(id);
    BigNum xg = rng.dh_private(g);
    if (!dh_check_private(g, xg))
      return fail(Errc::internal, "DH private value out of range");
    BigNum eg = dh_public(g, xg);
    Bytes he = digest(HashAlg::sha256, eg.mpi());  // always SHA-256 (XEP-0116 §4.3)
    record("e_per_offered_group." + std::to_string(id), eg.hex());
    record_hex("He_per_offered_group." + std::to_string(id), he);
    hes.push_back(std::move(he));
    es.push_back(eg.mpi());
    x_per_group.push_back(std::move(xg));
  }

  xml::Element m = stanza_to_peer();
  xml::Element& feature = m.add(xml::Element("feature", std::string(xml::kNsFeatureNeg)));
  xml::Element& fx = feature.add(xml::Element("x", std::string(xml::kNsData)));
  fx.set_attr("type", "form");
  using xml::add_field;
  if (gajim()) {
    // Gajim's exact offer (R-conventions of the vector schema §3.3).
    add_field(fx, "FORM_TYPE", "hidden").value(kFormType);
    add_field(fx, "accept", "boolean").value("1").required();
    auto lf = add_field(fx, "logging", "list-single");
    lf.required();
    for (const auto& l : pol.logging)
      lf.option(l);
    add_field(fx, "disclosure", "list-single").required().option("never");
    add_field(fx, "security", "list-single").required().option("e2e");
    add_field(fx, "crypt_algs", "hidden").value("aes128-ctr");
    add_field(fx, "hash_algs", "hidden").value("sha256");
    add_field(fx, "compress", "hidden").value("none");
    auto sf = add_field(fx, "stanzas", "list-multi");
    for (const auto& s : pol.stanzas)
      sf.option(s);
    add_field(fx, "init_pubkey", "list-single").option("none").option("key").option("hash");
    add_field(fx, "resp_pubkey", "list-single").option("none").option("key");
    add_field(fx, "ver", "hidden").value("1.0");
    add_field(fx, "rekey_freq", "hidden").value("4294967295");
    add_field(fx, "sas_algs", "hidden").value("sas28x5");
    add_field(fx, "sign_algs", "hidden").value(kRsaSha256);
    offered_init = {PubkeyMode::none, PubkeyMode::key, PubkeyMode::hash};
    offered_resp = {PubkeyMode::none, PubkeyMode::key};
    offered_sign = {std::string(kRsaSha256)};
    add_field(fx, "my_nonce", "hidden").value(base64(n_a));
    auto mf = add_field(fx, "modp", "list-single");
    for (int id : offered_groups)
      mf.option(std::to_string(id), "None");
    auto hf = add_field(fx, "dhhashes", "hidden");
    for (const auto& he : hes)
      hf.value(base64(he));
  } else {
    bool fixed = pol.xep0217;
    add_field(fx, "FORM_TYPE", "hidden").value(kFormType);
    add_field(fx, "accept", "boolean").required().value("1");
    auto lf = add_field(fx, "logging", "list-single");
    lf.required();
    for (const auto& l : pol.logging)
      lf.option(l);
    add_field(fx, "disclosure", "list-single").required().option("never");
    add_field(fx, "security", "list-single").required().option("e2e");
    auto mf = add_field(fx, "modp", "list-single");
    for (int id : offered_groups)
      mf.option(std::to_string(id));
    if (fixed) {
      add_field(fx, "crypt_algs", "hidden").value("aes128-ctr");
      add_field(fx, "hash_algs", "hidden").value("sha256");
      add_field(fx, "compress", "hidden").value("none");
    } else {
      auto cf = add_field(fx, "crypt_algs", "list-single");
      for (auto c : pol.ciphers)
        cf.option(cipher_name(c));
      auto hf = add_field(fx, "hash_algs", "list-single");
      for (auto h : pol.hashes)
        hf.option(hash_name(h));
      // sign_algs after hash_algs, as in XEP-0116's offer example (formats §5).
      if (!offered_sign.empty()) {
        auto sa = add_field(fx, "sign_algs", "list-single");
        for (const auto& a : offered_sign)
          sa.option(a);
      }
      add_field(fx, "compress", "list-single").option("none");
    }
    auto sf = add_field(fx, "stanzas", "list-multi");
    for (const auto& s : pol.stanzas)
      sf.option(s);
    if (fixed) {
      add_field(fx, "init_pubkey", "hidden").value("none");
      add_field(fx, "resp_pubkey", "hidden").value("none");
      offered_init = offered_resp = {PubkeyMode::none};
      offered_sign.clear();
    } else {
      auto ip = add_field(fx, "init_pubkey", "list-single");
      for (auto p : offered_init)
        ip.option(pubkey_name(p));
      auto rp = add_field(fx, "resp_pubkey", "list-single");
      for (auto p : offered_resp)
        rp.option(pubkey_name(p));
    }
    add_field(fx, "ver", "list-single").option("1.0");
    if (fixed)
      add_field(fx, "rekey_freq", "hidden").value("4294967295");
    else
      add_field(fx, "rekey_freq", "text-single").value(rekey_freq_text(pol.rekey_freq));
    add_field(fx, "my_nonce", "hidden").value(base64(n_a));
    if (fixed)
      add_field(fx, "sas_algs", "hidden").value("sas28x5");
    else if (!three)
      add_field(fx, "sas_algs", "list-single").option("sas28x5");
    if (three) {
      // Three-message: the public values themselves (XEP-0116 §4.3), no commitment, no SAS.
      auto kf = add_field(fx, "dhkeys", "hidden");
      for (const auto& ev : es)
        kf.value(base64(ev));
    } else {
      auto hf = add_field(fx, "dhhashes", "hidden");
      for (const auto& he : hes)
        hf.value(base64(he));
    }
    add_credentials_field(fx, "hidden");
  }
  add_thread(m);
  if (!gajim()) {
    // XEP-0116 §4.3: the request must not be stored offline.
    xml::Element& amp = m.add(xml::Element("amp", std::string(xml::kNsAmp)));
    amp.set_attr("per-hop", "true");
    xml::Element rule("rule", std::string(xml::kNsAmp));
    rule.set_attr("action", "drop").set_attr("condition", "deliver").set_attr("value", "stored");
    amp.add(std::move(rule));
  }
  form_a = xml::normalize_form_content(fx, norm());
  record("form_A", form_a);
  state = State::offered;
  Step step;
  step.send.push_back(std::move(m));
  return step;
}

// ---- Bob: message 2 ------------------------------------------------------------------------

Result<Step> Negotiation::Impl::bob_respond(const xml::Element& offer, RandomSource& rng,
                                            Rejection& rej) {
  const Policy& pol = cfg.policy;
  suite.compat = pol.compat;
  suite.conv = pol.conv ? *pol.conv : CryptoConv::for_compat(pol.compat);
  ES_ASSIGN(Incoming in, read_form(offer, "feature", xml::kNsFeatureNeg, "form", rej));
  const xml::Form& f = in.form;
  form_a = xml::normalize_form_content(*in.x, norm());
  record("form_A", form_a);
  const xml::Element* th = offer.child("thread", xml::kNsClient);
  if (!th || th->text_content().empty())
    return fail(Errc::malformed, "negotiation request without <thread/>");
  cfg.thread = th->text_content();
  // Refused before anything is answered: a thread no store could keep would fail only once
  // the session is established, after the initiator had been told it was.
  if (cfg.thread.size() > kMaxThreadBytes)
    return fail(Errc::malformed, "negotiation request with a <thread/> longer than " +
                                     std::to_string(kMaxThreadBytes) + " bytes");
  if (std::any_of(cfg.thread.begin(), cfg.thread.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    return fail(Errc::malformed, "negotiation request with control characters in <thread/>");

  bool has_hashes = f.field("dhhashes") != nullptr, has_keys = f.field("dhkeys") != nullptr;
  if (has_hashes == has_keys) {
    rej = {"not-acceptable", {"dhhashes"}};
    return fail(Errc::malformed, "offer must carry exactly one of dhhashes and dhkeys");
  }
  bool three = has_keys;
  // A responder with content to send needs the four-message flow: it has no last message in
  // the three-message one.
  if (three && (gajim() || !pol.accept_three_message || cfg.content)) {
    rej = {"feature-not-implemented", {"dhkeys"}};
    return fail(Errc::unsupported, "we do not accept three-message negotiations");
  }
  if (three && f.field("sas_algs")) {
    rej = {"not-acceptable", {"sas_algs"}};
    return fail(Errc::malformed, "a three-message offer must not carry sas_algs");
  }
  suite.flow = three ? Flow::three_message : Flow::four_message;

  std::vector<std::string> bad;
  auto accept_v = f.offered_single("accept");
  if (!accept_v || xml::parse_bool(*accept_v) != true)
    bad.push_back("accept");

  // Choose, for each field, the first of Alice's options that we accept.
  auto pick = [&](std::string_view var, auto&& ok) -> std::string {
    for (const auto& c : f.choices(var))
      if (ok(c))
        return c;
    bad.push_back(std::string(var));
    return {};
  };
  std::string logging = [&] {
    // A9: 'otr' (0200/0217) is accepted as a synonym of 'logging'.
    std::string var = f.field("logging") || !f.field("otr") ? "logging" : "otr";
    auto offered = f.choices(var);
    for (const auto& mine : pol.logging)
      for (const auto& o : offered) {
        // otr: true ≙ mustnot; XEP-0116's own logging vocabulary: false ≙ mustnot (A9).
        std::string norm_o = o;
        if (var == "otr")
          norm_o = o == "true" || o == "1" ? "mustnot" : "may";
        else if (o == "false" || o == "0")
          norm_o = "mustnot";
        else if (o == "true" || o == "1")
          norm_o = "may";
        if (norm_o == mine)
          return o;
      }
    bad.push_back(var);
    return std::string();
  }();
  std::string disclosure = pick("disclosure", [](auto& v) { return v == "never"; });
  std::string security = pick("security", [](auto& v) { return v == "e2e"; });
  std::string modp = pick("modp", [&](const std::string& v) {
    Result<uint64_t> n = parse_decimal(v, 1u << 16);
    if (!n)
      return false;
    int id = static_cast<int>(*n);
    const DhGroup* g = dh_group(id);
    if (!g || (g->weak && !pol.allow_weak_groups))
      return false;
    return std::find(pol.groups.begin(), pol.groups.end(), id) != pol.groups.end() ||
           (pol.compat == Compat::gajim);
  });
  std::string crypt = pick("crypt_algs", [&](const std::string& v) {
    auto c = cipher_from_name(v);
    return c && std::find(pol.ciphers.begin(), pol.ciphers.end(), *c) != pol.ciphers.end();
  });
  std::string hash_s = pick("hash_algs", [&](const std::string& v) {
    auto h = hash_from_name(v);
    return h && std::find(pol.hashes.begin(), pol.hashes.end(), *h) != pol.hashes.end();
  });
  std::string compress = pick("compress", [](auto& v) { return v == "none"; });
  std::vector<std::string> stanzas;
  for (const auto& s : f.choices("stanzas"))
    if (std::find(pol.stanzas.begin(), pol.stanzas.end(), s) != pol.stanzas.end() &&
        std::find(stanzas.begin(), stanzas.end(), s) == stanzas.end())
      stanzas.push_back(s);
  if (stanzas.empty())
    bad.push_back("stanzas");
  // Identification: what we require of Alice ('hash' only if we know a key of hers) and what we
  // give ('key'/'hash' need our Signer); never 'none' in a three-message negotiation.
  bool know_peer = cfg.verifier && !cfg.verifier->known_keys(bare_jid(peer_jid)).empty();
  auto pk_ok = [&](const std::vector<PubkeyMode>& mine, bool ours) {
    return [&, ours](const std::string& v) {
      auto p = pubkey_from_name(v);
      if (!p || std::find(mine.begin(), mine.end(), *p) == mine.end())
        return false;
      if (three && *p == PubkeyMode::none)
        return false;
      return ours ? (*p == PubkeyMode::none || cfg.signer != nullptr)
                  : (*p != PubkeyMode::hash || know_peer);
    };
  };
  std::string init_pk = pick("init_pubkey", pk_ok(pol.init_pubkey, false));
  std::string resp_pk = pick("resp_pubkey", pk_ok(pol.resp_pubkey, true));
  // A11: any offered 1.x is version 1.0 of this text.
  std::string ver = pick("ver", [](const std::string& v) { return v.rfind("1.", 0) == 0; });
  std::string sas_alg =
      three ? std::string() : pick("sas_algs", [](auto& v) { return v == "sas28x5"; });
  uint32_t rekey = pol.rekey_freq;
  bool malformed = false;  // a field is missing or not spelled as formats §1.3 says
  if (auto rf = f.offered_single("rekey_freq")) {
    Result<uint64_t> v = parse_decimal(*rf);
    if (v && *v != 0) {
      rekey = std::max<uint32_t>(rekey, static_cast<uint32_t>(*v));
    } else {
      bad.push_back("rekey_freq");
      malformed = true;
    }
  } else {
    bad.push_back("rekey_freq");
  }
  // One sign_algs value serves both parties (formats §6). When our key cannot make any algorithm
  // Alice offered (her key is of another type), we identify by the SAS alone if she accepts
  // that (four-message flow), rather than fail the negotiation.
  if (!three && cfg.signer && (resp_pk == "key" || resp_pk == "hash")) {
    auto algs = f.choices("sign_algs");
    bool can = std::any_of(algs.begin(), algs.end(), [&](const std::string& v) {
      auto a = sign_alg_from_uri(v);
      return a && cfg.signer->can_sign(*a);
    });
    auto offered = f.choices("resp_pubkey");
    if (!can && std::find(offered.begin(), offered.end(), "none") != offered.end() &&
        std::find(pol.resp_pubkey.begin(), pol.resp_pubkey.end(), PubkeyMode::none) !=
            pol.resp_pubkey.end()) {
      resp_pk = "none";
      own_key_unused = key_unused(algs);
    }
  }
  std::string sign_alg;
  if (init_pk == "none" && resp_pk == "none") {
    // Nothing is signed; Gajim's response echoes its offer anyway (R-conventions).
    if (auto sa = f.choices("sign_algs"); !sa.empty() && gajim())
      sign_alg = sa.front();
  } else if (!init_pk.empty() && !resp_pk.empty()) {
    sign_alg = pick("sign_algs", [&](const std::string& v) {
      auto a = sign_alg_from_uri(v);
      return a && (resp_pk == "none" || cfg.signer->can_sign(*a));
    });
  }
  if (!bad.empty()) {
    // formats §10: the error names the fields either way; the class tells a missing or
    // misspelled field (malformed) from one whose options we cannot accept (a policy refusal).
    for (const auto& v : bad)
      malformed |= f.field(v) == nullptr;
    rej = {"not-acceptable", bad};
    if (malformed)
      return fail(Errc::malformed, "missing or malformed field among: " + join(bad));
    std::string why;
    if (cfg.signer && std::find(bad.begin(), bad.end(), "sign_algs") != bad.end())
      why = " (" + key_unused(f.choices("sign_algs")).describe() + ")";
    return fail(Errc::not_acceptable, "no acceptable option for: " + join(bad) + why);
  }
  suite.modp = static_cast<int>(parse_decimal(modp, 1u << 16).value());
  suite.cipher = *cipher_from_name(crypt);
  suite.hash = *hash_from_name(hash_s);
  suite.stanzas = stanzas;
  suite.init_pubkey = *pubkey_from_name(init_pk);
  suite.resp_pubkey = *pubkey_from_name(resp_pk);
  suite.rekey_freq = rekey;
  suite.logging = logging;
  suite.sign_alg = sign_alg;

  // Alice's nonce and the commitment for the chosen group (same position as in 'modp', R1).
  // A malformed field or a value count mismatch: not-acceptable, naming the field (§10).
  rej = {"not-acceptable", {}};
  ES_ASSIGN(n_a, b64_field_or_name(f, "my_nonce", rej));
  if (n_a.size() < 8 || n_a.size() > 64) {
    rej.fields = {"my_nonce"};
    return fail(Errc::malformed, "bad my_nonce length");
  }
  bool ok = false;
  std::string_view dh_var = three ? "dhkeys" : "dhhashes";
  std::vector<Bytes> per_group = hidden_b64_values(f, dh_var, ok);
  auto groups = f.choices("modp");
  if (!ok || per_group.size() != groups.size()) {
    rej.fields = {std::string(dh_var)};
    return fail(Errc::malformed, std::string(dh_var) + " must hold one value per offered group");
  }
  size_t pos = static_cast<size_t>(std::find(groups.begin(), groups.end(), modp) - groups.begin());
  const DhGroup& g = *dh_group(suite.modp);
  if (three) {
    // XEP-0116 §4.5.1: feature-not-implemented unless 1 < e < p-1.
    auto ev = dh_parse_public(g, per_group[pos]);
    if (!ev) {
      rej = {"feature-not-implemented", {"dhkeys"}};
      return ev.error();
    }
    e = std::move(ev).value();
    record("e", e.hex());
  } else {
    he_per_group = {per_group[pos]};
    if (he_per_group[0].size() != 32) {
      rej.fields = {"dhhashes"};
      return fail(Errc::malformed, "dhhashes value is not SHA-256");
    }
  }
  rej = {};  // below, only our own failures: nothing to tell the peer

  n_b = rng.nonce(gajim() ? 8 : 16);
  y = rng.dh_private(g);
  if (!dh_check_private(g, y))
    return fail(Errc::internal, "DH private value out of range");
  d = dh_public(g, y);
  ES_ASSIGN(c_a, draw_counter(rng, gajim()));
  c_b = c_a.flip_top();
  record("d", d.hex());
  record("chosen_modp", std::to_string(suite.modp));

  xml::Element m = stanza_to_peer();
  xml::Element& feature = m.add(xml::Element("feature", std::string(xml::kNsFeatureNeg)));
  xml::Element& fx = feature.add(xml::Element("x", std::string(xml::kNsData)));
  fx.set_attr("type", "submit");
  std::string_view t = gajim() ? "text-single" : "";
  using xml::add_field;
  if (gajim()) {
    // Gajim's own order (R-conventions), byte for byte.
    add_field(fx, "FORM_TYPE", t).value(kFormType);
    add_field(fx, "accept", t).value("true");
    add_field(fx, "logging", t).value(logging);
    add_field(fx, "disclosure", t).value(disclosure);
    add_field(fx, "security", t).value(security);
    add_field(fx, "crypt_algs", t).value(crypt);
    add_field(fx, "hash_algs", t).value(hash_s);
    add_field(fx, "compress", t).value(compress);
    auto sf = add_field(fx, "stanzas", t);
    for (const auto& s : stanzas)
      sf.value(s);
    add_field(fx, "init_pubkey", t).value(init_pk);
    add_field(fx, "resp_pubkey", t).value(resp_pk);
    add_field(fx, "ver", t).value(ver);
    add_field(fx, "rekey_freq", t).value(rekey_freq_text(rekey));
    add_field(fx, "sas_algs", t).value(sas_alg);
    if (!sign_alg.empty())
      add_field(fx, "sign_algs", t).value(sign_alg);
    add_field(fx, "modp", t).value(modp);
    add_field(fx, "my_nonce", t).value(base64(n_b));
    add_field(fx, "dhkeys", t).value(base64(d.mpi()));
    add_field(fx, "counter", t).value(base64(c_a.mpi()));
    add_field(fx, "nonce", t).value(base64(n_a));
  } else {
    // formats §6: each answer in the position of the offer's field (XEP-0116's example of
    // message 2 answers its offer that way): my_nonce with Bob's nonce, dhhashes/dhkeys with
    // dhkeys; unknown offered fields are not answered. Then nonce and counter.
    std::vector<std::pair<std::string, std::vector<std::string>>> answers = {
        {"FORM_TYPE", {std::string(kFormType)}},
        {"accept", {"1"}},
        {f.field("logging") ? "logging" : "otr", {logging}},
        {"disclosure", {disclosure}},
        {"security", {security}},
        {"modp", {modp}},
        {"crypt_algs", {crypt}},
        {"hash_algs", {hash_s}},
        {"compress", {compress}},
        {"stanzas", stanzas},
        {"init_pubkey", {init_pk}},
        {"resp_pubkey", {resp_pk}},
        {"ver", {ver}},
        {"rekey_freq", {rekey_freq_text(rekey)}},
        {"my_nonce", {base64(n_b)}},
        {std::string(dh_var), {base64(d.mpi())}}};
    if (!three)
      answers.push_back({"sas_algs", {sas_alg}});
    if (!sign_alg.empty())
      answers.push_back({"sign_algs", {sign_alg}});
    auto answer = [&](std::string_view var) {
      for (auto& [name, values] : answers)
        if (name == var && !values.empty()) {
          auto af = add_field(fx, name == dh_var ? std::string_view("dhkeys") : name, t);
          for (const auto& v : values)
            af.value(v);
          values.clear();  // each field once, even if the offer repeats it
        }
    };
    for (const auto& field : in.x->children)
      if (field.is("field", xml::kNsData))
        answer(field.attr_or("var"));
    for (const auto& [name, values] : answers)  // not offered: refused above, but keep all
      if (!values.empty())
        answer(name);
    add_field(fx, "nonce", t).value(base64(n_a));
    add_field(fx, "counter", t).value(base64(c_a.mpi()));
  }
  // The extension field is answered only to an initiator that sent it (formats §7.1).
  peer_reads = f.choices("credentials");
  if (f.field("credentials"))
    add_credentials_field(fx, t);
  form_b = xml::normalize_form_content(fx, norm());
  record("form_B", form_b);
  if (three) {
    // XEP-0116 §4.5.3-4.5.5: all six keys from K, then Bob's identity block in this message.
    SecretBytes shared = dh_shared(g, e, y);
    k = secret(digest(hash(), view(shared)));
    prov = derive_keys(hash(), view(k));
    record_hex("K", k);
    trace_keys("final", prov, true);
    Bytes d_mpi = d.mpi();
    ES_ASSIGN(Identity idb, make_identity(cipher_key(suite.conv, suite.cipher, prov.cb), prov.mb,
                                          c_b, suite.resp_pubkey, [&](std::string_view pub) {
                                            return hmac_parts(hash(), prov.sb,
                                                              {view(n_a), view(n_b), view(d_mpi),
                                                               view(pub), view(form_b)});
                                          }));
    record_hex("mac_B", idb.mac);
    record_hex("ID_B", idb.id);
    record_hex("M_B", idb.m);
    add_field(fx, "identity", t).value(base64(idb.id));
    add_field(fx, "mac", t).value(base64(idb.m));
    c_b = idb.after;
  }
  add_thread(m);
  state = State::responded;
  Step step;
  step.send.push_back(std::move(m));
  return step;
}

// ---- Alice: message 3 ----------------------------------------------------------------------

Result<Step> Negotiation::Impl::alice_on_response(const xml::Element& msg, RandomSource& rng,
                                                  Rejection& rej) {
  rej = {"not-acceptable", {}};
  ES_ASSIGN(Incoming in, read_form(msg, "feature", xml::kNsFeatureNeg, "submit", rej));
  const xml::Form& f = in.form;
  ES_TRY(check_accept(f, rej));
  ES_ASSIGN(Bytes echo, b64_field_or_name(f, "nonce", rej));
  if (echo != n_a) {
    rej.fields = {"nonce"};
    return fail(Errc::auth_failed, "the response does not echo our nonce");
  }

  // Every choice must be one we offered.
  ES_ASSIGN(std::string modp, f.value("modp"));
  auto it = std::find_if(offered_groups.begin(), offered_groups.end(),
                         [&](int id) { return std::to_string(id) == modp; });
  if (it == offered_groups.end()) {
    rej.fields = {"modp"};
    return fail(Errc::not_acceptable, "the peer chose a group we did not offer");
  }
  size_t gi = static_cast<size_t>(it - offered_groups.begin());
  suite.modp = *it;
  ES_ASSIGN(std::string crypt, f.value("crypt_algs"));
  ES_ASSIGN(std::string hash_s, f.value("hash_algs"));
  const Policy& pol = cfg.policy;
  auto c = cipher_from_name(crypt);
  auto h = hash_from_name(hash_s);
  bool fixed = gajim() || pol.xep0217;
  if (!c || !h ||
      (fixed ? (*c != CipherAlg::aes128_ctr || *h != HashAlg::sha256)
             : (std::find(pol.ciphers.begin(), pol.ciphers.end(), *c) == pol.ciphers.end() ||
                std::find(pol.hashes.begin(), pol.hashes.end(), *h) == pol.hashes.end()))) {
    rej.fields = {"crypt_algs", "hash_algs"};
    return fail(Errc::not_acceptable, "the peer chose a cipher or hash we did not offer");
  }
  suite.cipher = *c;
  suite.hash = *h;
  bool three = suite.flow == Flow::three_message;
  ES_ASSIGN(std::string ip, f.value("init_pubkey"));
  ES_ASSIGN(std::string rp, f.value("resp_pubkey"));
  auto ipm = pubkey_from_name(ip), rpm = pubkey_from_name(rp);
  auto offered = [](const std::vector<PubkeyMode>& v, PubkeyMode m) {
    return std::find(v.begin(), v.end(), m) != v.end();
  };
  if (!ipm || !rpm || !offered(offered_init, *ipm) || !offered(offered_resp, *rpm) ||
      (*ipm != PubkeyMode::none && !cfg.signer)) {
    rej.fields = {"init_pubkey", "resp_pubkey"};
    return fail(Errc::not_acceptable, "the peer chose an identification we did not offer");
  }
  suite.init_pubkey = *ipm;
  suite.resp_pubkey = *rpm;
  if (*ipm != PubkeyMode::none || *rpm != PubkeyMode::none) {
    ES_ASSIGN(suite.sign_alg, f.value("sign_algs"));
    auto a = sign_alg_from_uri(suite.sign_alg);
    if (!a ||
        std::find(offered_sign.begin(), offered_sign.end(), suite.sign_alg) == offered_sign.end()) {
      rej.fields = {"sign_algs"};
      return fail(Errc::not_acceptable, "the peer chose a signature algorithm we did not offer");
    }
  }
  peer_reads = f.choices("credentials");
  // Message 2 carries Bob's identity in the three-message flow, and only there.
  bool has_id = f.field("identity") || f.field("mac");
  if (has_id != three)
    return fail(Errc::malformed, three ? "the response lacks the responder's identity"
                                       : "identity in a four-message response");
  const xml::Field* sf = f.field("stanzas");
  if (!sf || sf->values.empty())
    return fail(Errc::malformed, "response without stanzas");
  for (const auto& s : sf->values)
    if (std::find(pol.stanzas.begin(), pol.stanzas.end(), s) == pol.stanzas.end()) {
      rej.fields = {"stanzas"};
      return fail(Errc::not_acceptable, "the peer chose stanza kinds we did not offer");
    }
  suite.stanzas = sf->values;
  if (auto rf = f.offered_single("rekey_freq")) {
    Result<uint64_t> v = parse_decimal(*rf);
    if (!v || *v == 0) {
      rej.fields = {"rekey_freq"};
      return fail(Errc::malformed, "bad rekey_freq '" + rf->substr(0, 24) + "'");
    }
    suite.rekey_freq = static_cast<uint32_t>(*v);
  } else {
    rej.fields = {"rekey_freq"};
    return fail(Errc::malformed, "response without rekey_freq");
  }
  uint32_t offered_rekey = fixed ? 0xffffffffU : pol.rekey_freq;
  if (suite.rekey_freq < offered_rekey) {
    rej.fields = {"rekey_freq"};
    return fail(Errc::not_acceptable, "the peer chose a rekey_freq below the one we offered");
  }
  if (three) {
    if (f.field("sas_algs"))
      return fail(Errc::malformed, "sas_algs in a three-message response");
  } else if (auto sas_v = f.offered_single("sas_algs"); !sas_v || *sas_v != "sas28x5") {
    rej.fields = {"sas_algs"};
    if (!f.field("sas_algs"))
      return fail(Errc::malformed, "the response has no sas_algs");
    return fail(Errc::not_acceptable, "the peer chose no SAS algorithm we know");
  }
  // We offered version 1.0; a 1.x answer runs this profile (A11).
  if (auto ver = f.offered_single("ver"); !ver || ver->rfind("1.", 0) != 0) {
    rej.fields = {"ver"};
    if (!f.field("ver"))
      return fail(Errc::malformed, "the response has no ver");
    return fail(Errc::not_acceptable, "the peer chose a version we did not offer");
  }
  // Every answered value must be one we offered (formats §6, §15.3); these four fields are
  // not used further, but a peer that answers what was not offered is not running our profile.
  const std::vector<std::pair<std::string_view, std::vector<std::string>>> fixed_answers = {
      {"logging", pol.logging},
      {"disclosure", {"never"}},
      {"security", {"e2e"}},
      {"compress", {"none"}}};
  for (const auto& [var, ours] : fixed_answers) {
    if (!f.field(var))
      continue;
    auto v = f.offered_single(var);
    if (!v || std::find(ours.begin(), ours.end(), *v) == ours.end()) {
      rej.fields = {std::string(var)};
      return fail(Errc::not_acceptable,
                  "the peer chose a " + std::string(var) + " value we did not offer");
    }
    if (var == "logging")
      suite.logging = *v;
  }

  ES_ASSIGN(n_b, b64_field_or_name(f, "my_nonce", rej));
  if (n_b.size() < 8 || n_b.size() > 64) {
    rej.fields = {"my_nonce"};
    return fail(Errc::malformed, "bad my_nonce length");
  }
  ES_ASSIGN(Bytes d_bytes, b64_field_or_name(f, "dhkeys", rej));
  ES_ASSIGN(Bytes ctr_bytes, b64_field_or_name(f, "counter", rej));
  if (!is_mpi(ctr_bytes) || ctr_bytes.size() > 16) {
    rej.fields = {"counter"};
    return fail(Errc::malformed, "counter must be an MPI of 1 to 16 bytes");
  }
  const DhGroup& g = *dh_group(suite.modp);
  auto dv = dh_parse_public(g, d_bytes);
  if (!dv) {
    rej.fields = {"dhkeys"};
    return dv.error();
  }
  d = std::move(dv).value();
  x = x_per_group[gi];
  e = dh_public(g, x);
  c_a = Counter128::from_bytes(ctr_bytes);
  c_b = c_a.flip_top();
  record("d", d.hex());
  record("e", e.hex());

  SecretBytes shared = dh_shared(g, d, x);
  k = secret(digest(hash(), view(shared)));
  prov = derive_keys(hash(), view(k));
  record_hex("K", k);
  trace_keys(three ? "final" : "provisional", prov, three);
  form_b = xml::normalize_form_content(*in.x, norm(), {"identity", "mac"});
  record("form_B", form_b);
  if (three)
    return alice_three_message(f, rng, rej);

  // rshashes: our retained secrets for Bob, hidden among decoys (XEP-0116 §4.6.4).
  size_t hl = hash_size(hash());
  std::vector<Bytes> rshashes;
  for (const auto& rs : cfg.retained)
    rshashes.push_back(bytes_of(view(hmac(hash(), n_a, view(rs)))));
  size_t ndecoys = gajim() ? (cfg.retained.empty() ? 1 : 0) : 2 + rng.uniform(3);
  for (auto& dcy : rng.decoys(hl, ndecoys))
    rshashes.push_back(std::move(dcy));
  if (!gajim())
    for (size_t i = rshashes.size(); i > 1; --i)
      std::swap(rshashes[i - 1], rshashes[rng.uniform(i)]);
  if (cfg.trace) {
    std::string all;
    for (const auto& r : rshashes)
      all += (all.empty() ? "" : ",") + hex(r);
    record("rshashes", all);
  }

  xml::Element m = stanza_to_peer();
  xml::Element& feature = m.add(xml::Element("feature", std::string(xml::kNsFeatureNeg)));
  xml::Element& xe = feature.add(xml::Element("x", std::string(xml::kNsData)));
  xe.set_attr("type", "result");
  std::string_view t = gajim() ? "text-single" : "";
  using xml::add_field;
  add_field(xe, "FORM_TYPE", t).value(kFormType);
  add_field(xe, "accept", t).value("1");
  add_field(xe, "nonce", t).value(base64(n_b));
  // Gajim writes rshashes before dhkeys; formats §8 and XEP-0116's example, dhkeys first.
  if (!gajim())
    add_field(xe, "dhkeys", t).value(base64(e.mpi()));
  auto rf = add_field(xe, "rshashes", t);
  for (const auto& r : rshashes)
    rf.value(base64(r));
  if (gajim())
    add_field(xe, "dhkeys", t).value(base64(e.mpi()));
  ES_ASSIGN(Identity ida, alice_identity(xe, t));
  add_thread(m);
  m_a = ida.m;
  c_a = ida.after;  // Alice's sending counter continues after ID_A (A5)
  sas_unpadded = sas28x5(hash(), m_a, form_b, false);
  sas = sas28x5(hash(), m_a, form_b, true);
  record("SAS", sas_unpadded);
  record("SAS_padded", sas);
  state = State::accepted;
  Step step;
  step.send.push_back(std::move(m));
  return step;
}

// ---- Alice: message 3 of the three-message flow -----------------------------------------------

Result<Step> Negotiation::Impl::alice_three_message(const xml::Form& f, RandomSource& rng,
                                                    Rejection& rej) {
  // Bob's identity first (XEP-0116 §4.6.2): M_B, then ID_B, then mac_B or his signature.
  rej = {"feature-not-implemented", {}};
  ES_ASSIGN(Bytes id_b, b64_field(f, "identity"));
  ES_ASSIGN(Bytes mm_b, b64_field(f, "mac"));
  SecretBytes kcb = cipher_key(suite.conv, suite.cipher, prov.cb);
  Counter128 recv_after;
  ES_ASSIGN(IdentityProof proof, open_identity(kcb, prov.mb, c_b, id_b, mm_b, suite.resp_pubkey,
                                               mac_b_fn(view(prov.sb), ""), recv_after));
  record_hex("ID_B", id_b);
  record_hex("M_B", mm_b);

  xml::Element m = stanza_to_peer();
  xml::Element& feature = m.add(xml::Element("feature", std::string(xml::kNsFeatureNeg)));
  xml::Element& xe = feature.add(xml::Element("x", std::string(xml::kNsData)));
  xe.set_attr("type", "result");
  using xml::add_field;
  add_field(xe, "FORM_TYPE").value(kFormType);
  add_field(xe, "accept").value("1");
  add_field(xe, "nonce").value(base64(n_b));
  if (cfg.terminate_after_content)
    add_field(xe, "terminate").value("1");
  ES_ASSIGN(Identity ida, alice_identity(xe, ""));
  SecretBytes kca = cipher_key(suite.conv, suite.cipher, prov.ca);
  add_thread(m);

  Established est = establish({kca, prov.ma}, {kcb, prov.mb}, ida.after, recv_after);
  est.peer_mode = proof.mode;
  est.peer_key = std::move(proof.key);
  est.peer_credential = std::move(proof.credential);
  ES_TRY(attach_content(m, *est.session, rng));
  if (cfg.terminate_after_content) {
    est.session->destroy();
    est.terminated = true;
  }
  Step step;
  step.send.push_back(std::move(m));
  step.established = std::move(est);
  return step;
}

// ---- Bob: completion of the three-message flow ---------------------------------------------

Result<Step> Negotiation::Impl::bob_on_accept3(const xml::Element& msg, const Incoming& in,
                                               RandomSource& rng) {
  (void)rng;
  const xml::Form& f = in.form;
  ES_ASSIGN(Bytes id_a, b64_field(f, "identity"));
  ES_ASSIGN(Bytes mm_a, b64_field(f, "mac"));
  for (const char* var : {"dhkeys", "rshashes", "srshash"})
    if (f.field(var))
      return fail(Errc::malformed, std::string(var) + " in a three-message completion");
  bool terminate = false;
  if (auto t = f.offered_single("terminate")) {
    auto b = xml::parse_bool(*t);
    if (!b)
      return fail(Errc::malformed, "bad terminate value");
    terminate = *b;
  }
  std::string form_a2 = xml::normalize_form_content(*in.x, norm(), {"identity", "mac"});
  record("form_A2", form_a2);
  SecretBytes kca = cipher_key(suite.conv, suite.cipher, prov.ca);
  Counter128 recv_after;
  ES_ASSIGN(IdentityProof proof, open_identity(kca, prov.ma, c_a, id_a, mm_a, suite.init_pubkey,
                                               mac_a_fn(form_a2), recv_after));
  record_hex("ID_A", id_a);
  record_hex("M_A", mm_a);
  SecretBytes kcb = cipher_key(suite.conv, suite.cipher, prov.cb);
  Established est = establish({kcb, prov.mb}, {kca, prov.ma}, c_b, recv_after);
  est.peer_mode = proof.mode;
  est.peer_key = std::move(proof.key);
  est.peer_credential = std::move(proof.credential);
  Step step;
  if (msg.child("c", xml::kNsC)) {
    ES_ASSIGN(Received r, est.session->decrypt(msg));
    step.content.push_back(std::move(r));
  }
  if (terminate) {
    est.session->destroy();
    est.terminated = true;
  }
  step.established = std::move(est);
  return step;
}

// ---- Bob: message 4 ------------------------------------------------------------------------

Result<Step> Negotiation::Impl::bob_on_accept(const xml::Element& msg, RandomSource& rng,
                                              Rejection& rej) {
  rej = {"feature-not-implemented", {}};
  ES_ASSIGN(Incoming in, read_form(msg, "feature", xml::kNsFeatureNeg, "result", rej));
  const xml::Form& f = in.form;
  ES_TRY(check_accept(f, rej));
  ES_ASSIGN(Bytes echo, b64_field(f, "nonce"));
  if (echo != n_b)
    return fail(Errc::auth_failed, "the accept does not echo our nonce");
  if (suite.flow == Flow::three_message)
    return bob_on_accept3(msg, in, rng);
  if (f.field("terminate"))
    return fail(Errc::malformed, "terminate in a four-message completion");
  ES_ASSIGN(Bytes e_bytes, b64_field(f, "dhkeys"));
  if (!is_mpi(e_bytes))
    return fail(Errc::malformed, "dhkeys is not an MPI (empty, or a leading zero byte)");
  // Every field is decoded before anything is verified (formats §8 step 1), so that a
  // malformed one is reported as such and not as the MAC failure it would also cause.
  ES_ASSIGN(Bytes id_a, b64_field(f, "identity"));
  ES_ASSIGN(Bytes mm_a, b64_field(f, "mac"));
  if (!f.field("rshashes"))
    return fail(Errc::malformed, "missing field 'rshashes'");
  bool rs_ok = false;
  std::vector<Bytes> rshashes = hidden_b64_values(f, "rshashes", rs_ok);
  if (!rs_ok)
    return fail(Errc::malformed, "bad rshashes");
  for (const auto& r : rshashes)
    if (r.size() != hash_size(hash()))
      return fail(Errc::malformed, "an rshashes value is not as long as the hash (formats §15.2)");
  const DhGroup& g = *dh_group(suite.modp);
  // Hash commitment first: SHA256(e) must equal the He Alice committed to in message 1.
  if (!ct_equal(digest(HashAlg::sha256, BigNum::from_bytes(e_bytes).mpi()), he_per_group[0]))
    return fail(Errc::auth_failed, "Diffie-Hellman value does not match its hash commitment");
  ES_ASSIGN(e, dh_parse_public(g, e_bytes));
  record("e", e.hex());
  SecretBytes shared = dh_shared(g, e, y);
  k = secret(digest(hash(), view(shared)));
  prov = derive_keys(hash(), view(k));
  record_hex("K", k);
  trace_keys("provisional", prov, false);

  std::string form_a2 = xml::normalize_form_content(*in.x, norm(), {"identity", "mac"});
  record("form_A2", form_a2);
  SecretBytes kca_prov = cipher_key(suite.conv, suite.cipher, prov.ca);
  Counter128 recv_after;
  MacFn mac_a = mac_a_fn(form_a2);
  ES_ASSIGN(IdentityProof proof, open_identity(
                                     kca_prov, prov.ma, c_a, id_a, mm_a, suite.init_pubkey,
                                     [&](std::string_view pub) {
                                       SecretBytes v = mac_a(pub);
                                       record_hex("mac_A", v);
                                       return v;
                                     },
                                     recv_after));
  m_a = mm_a;
  sas_unpadded = sas28x5(hash(), m_a, form_b, false);
  sas = sas28x5(hash(), m_a, form_b, true);
  record("SAS", sas_unpadded);
  record("SAS_padded", sas);

  // Retained secrets: find the one Alice holds too (XEP-0116 §4.7.3).
  std::optional<SecretBytes> srs;
  std::optional<size_t> srs_index;
  bool srs_from_other = false;
  auto search = [&](const std::vector<SecretBytes>& list, bool other) {
    for (size_t i = 0; i < list.size() && !srs; ++i) {
      SecretBytes hs = hmac(hash(), n_a, view(list[i]));
      for (const auto& r : rshashes)
        if (ct_equal(view(hs), r)) {
          srs = list[i];
          srs_index = i;
          srs_from_other = other;
          break;
        }
    }
  };
  search(cfg.retained, false);
  if (!srs)
    search(cfg.retained_other, true);
  Bytes srshash = srs ? bytes_of(view(hmac(hash(), view(*srs), view(kLabelSrs))))
                      : rng.srshash_random(hash_size(hash()));
  record("SRS", srs ? hex(view(*srs)) : "");
  record_hex("srshash", srshash);

  // Final keys from K' = HASH(K | SRS | OSS).
  SecretBytes kp = secret(digest_parts(
      hash(), {view(k), srs ? view(*srs) : ByteView{}, cfg.oss ? view(*cfg.oss) : ByteView{}}));
  KeySet fin = derive_keys(hash(), view(kp));
  SecretBytes new_rs = hmac(hash(), view(kp), view(kLabelNewRs));
  record_hex("K_final", kp);
  trace_keys("final", fin, true);
  record_hex("new_retained_secret", new_rs);

  xml::Element m = stanza_to_peer();
  xml::Element& init = m.add(xml::Element("init", std::string(xml::kNsInit)));
  xml::Element& xe = init.add(xml::Element("x", std::string(xml::kNsData)));
  xe.set_attr("type", "result");
  std::string_view t = gajim() ? "text-single" : "";
  using xml::add_field;
  add_field(xe, "FORM_TYPE", t).value(kFormType);
  add_field(xe, "nonce", t).value(base64(n_a));
  add_field(xe, "srshash", t).value(base64(srshash));
  std::string form_b2 = xml::normalize_form_content(xe, norm());
  record("form_B2", form_b2);
  SecretBytes kcb = cipher_key(suite.conv, suite.cipher, fin.cb);
  ES_ASSIGN(Identity idb,
            make_identity(kcb, fin.mb, c_b, suite.resp_pubkey, mac_b_fn(view(fin.sb), form_b2)));
  record_hex("mac_B", idb.mac);
  record_hex("ID_B", idb.id);
  record_hex("M_B", idb.m);
  add_field(xe, "identity", t).value(base64(idb.id));
  add_field(xe, "mac", t).value(base64(idb.m));
  add_thread(m);

  Established est = establish({kcb, fin.mb}, {cipher_key(suite.conv, suite.cipher, fin.ca), fin.ma},
                              idb.after, recv_after);
  est.new_retained_secret = std::move(new_rs);
  est.srs_index = srs_index;
  est.srs_from_other = srs_from_other;
  est.oss_used = cfg.oss.has_value();
  est.peer_mode = proof.mode;
  est.peer_key = std::move(proof.key);
  est.peer_credential = std::move(proof.credential);
  ES_TRY(attach_content(m, *est.session, rng));
  Step step;
  step.send.push_back(std::move(m));
  step.established = std::move(est);
  return step;
}

// ---- Alice: completion ---------------------------------------------------------------------

Result<Step> Negotiation::Impl::alice_on_init(const xml::Element& msg, Rejection& rej) {
  rej = {"feature-not-implemented", {}};
  ES_ASSIGN(Incoming in, read_form(msg, "init", xml::kNsInit, "result", rej));
  const xml::Form& f = in.form;
  ES_ASSIGN(Bytes echo, b64_field(f, "nonce"));
  if (echo != n_a)
    return fail(Errc::auth_failed, "the responder's identity does not echo our nonce");
  ES_ASSIGN(Bytes srshash, b64_field(f, "srshash"));
  if (srshash.size() != hash_size(hash()))
    return fail(Errc::malformed, "srshash is not as long as the hash (formats §15.2)");
  Established est;
  std::optional<SecretBytes> srs;
  for (size_t i = 0; i < cfg.retained.size(); ++i) {
    SecretBytes hs = hmac(hash(), view(cfg.retained[i]), view(kLabelSrs));
    if (ct_equal(view(hs), srshash)) {
      srs = cfg.retained[i];
      est.srs_index = i;
      break;
    }
  }
  record("SRS", srs ? hex(view(*srs)) : "");
  record_hex("srshash", srshash);
  SecretBytes kp = secret(digest_parts(
      hash(), {view(k), srs ? view(*srs) : ByteView{}, cfg.oss ? view(*cfg.oss) : ByteView{}}));
  KeySet fin = derive_keys(hash(), view(kp));
  est.new_retained_secret = hmac(hash(), view(kp), view(kLabelNewRs));
  est.oss_used = cfg.oss.has_value();
  record_hex("K_final", kp);
  trace_keys("final", fin, true);
  record_hex("new_retained_secret", est.new_retained_secret);

  ES_ASSIGN(Bytes id_b, b64_field(f, "identity"));
  ES_ASSIGN(Bytes mm_b, b64_field(f, "mac"));
  std::string form_b2 = xml::normalize_form_content(*in.x, norm(), {"identity", "mac"});
  record("form_B2", form_b2);
  SecretBytes kcb = cipher_key(suite.conv, suite.cipher, fin.cb);
  Counter128 recv_after;
  MacFn mac_b = mac_b_fn(view(fin.sb), form_b2);
  auto opened = open_identity(
      kcb, fin.mb, c_b, id_b, mm_b, suite.resp_pubkey,
      [&](std::string_view pub) {
        SecretBytes v = mac_b(pub);
        record_hex("mac_B", v);
        return v;
      },
      recv_after);
  if (!opened) {
    if ((!cfg.oss && !srs) || opened.error().code != Errc::auth_failed)
      return opened.error();
    return fail(Errc::auth_failed,
                "the responder's identity does not verify (retained secret "
                "or other shared secret mismatch?)");
  }

  Established fin_est = establish({cipher_key(suite.conv, suite.cipher, fin.ca), fin.ma},
                                  {kcb, fin.mb}, c_a, recv_after);
  fin_est.new_retained_secret = std::move(est.new_retained_secret);
  fin_est.srs_index = est.srs_index;
  fin_est.oss_used = est.oss_used;
  fin_est.peer_mode = opened->mode;
  fin_est.peer_key = std::move(opened->key);
  fin_est.peer_credential = std::move(opened->credential);
  Step step;
  // Bob MAY append encrypted content to message 4.
  if (msg.child("c", xml::kNsC)) {
    ES_ASSIGN(Received r, fin_est.session->decrypt(msg));
    step.content.push_back(std::move(r));
  }
  step.established = std::move(fin_est);
  return step;
}

// ---- Public interface ----------------------------------------------------------------------

Negotiation::Negotiation(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Negotiation::~Negotiation() = default;
Negotiation::Negotiation(Negotiation&&) noexcept = default;
Negotiation& Negotiation::operator=(Negotiation&&) noexcept = default;

bool Negotiation::failed() const {
  return m_impl->state == State::failed;
}
bool Negotiation::initiator() const {
  return m_impl->initiator;
}
const std::string& Negotiation::thread() const {
  return m_impl->cfg.thread;
}
const std::optional<xml::Element>& Negotiation::error_reply() const {
  return m_impl->error_reply;
}

Result<std::pair<Negotiation, Step>> Negotiation::start(PartyConfig cfg, std::string peer_jid,
                                                        RandomSource& rng) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = std::move(cfg);
  impl->peer_jid = std::move(peer_jid);
  impl->initiator = true;
  auto step = impl->alice_start(rng);
  if (!step)
    return step.error();
  return std::pair<Negotiation, Step>(Negotiation(std::move(impl)), std::move(step).value());
}

Result<std::pair<Negotiation, Step>> Negotiation::respond(
    PartyConfig cfg, const xml::Element& offer, RandomSource& rng, std::string peer_jid,
    std::optional<xml::Element>* error_reply) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = std::move(cfg);
  impl->peer_jid = peer_jid.empty() ? offer.attr_or("from") : std::move(peer_jid);
  impl->initiator = false;
  Rejection rej;
  auto step = impl->bob_respond(offer, rng, rej);
  if (!step) {
    Error err = impl->fail_with(step.error(), &offer, rej);
    if (error_reply)
      *error_reply = impl->error_reply;
    return err;
  }
  return std::pair<Negotiation, Step>(Negotiation(std::move(impl)), std::move(step).value());
}

Result<Step> Negotiation::receive(const xml::Element& stanza, RandomSource& rng) {
  Impl& im = *m_impl;
  if (im.state == State::failed)
    return fail(Errc::terminated, "the negotiation has failed");
  if (im.state == State::established)
    return fail(Errc::wrong_state, "the negotiation is already complete");
  // A peer's error reply ends the negotiation.
  if (stanza.attr_or("type") == "error") {
    const xml::Element* err = stanza.child("error", xml::kNsClient);
    std::string cond = "unknown";
    if (err)
      for (const auto* c : err->element_children())
        if (c->ns == xml::kNsStanzas)
          cond = c->name;
    return im.fail_with(fail(Errc::not_acceptable, "the peer refused the negotiation: " + cond),
                        nullptr, {});
  }
  const xml::Element* th = stanza.child("thread", xml::kNsClient);
  if (!th || th->text_content() != im.cfg.thread)
    return fail(Errc::no_session, "stanza does not belong to this negotiation's thread");
  // A message that does not fit the state is rejected like a bad one (formats §10).
  Rejection rej{"not-acceptable", {}};
  Result<Step> r = fail(Errc::wrong_state, "unexpected negotiation message");
  if (im.initiator && im.state == State::offered)
    r = im.alice_on_response(stanza, rng, rej);
  else if (im.initiator && im.state == State::accepted)
    r = im.alice_on_init(stanza, rej);
  else if (!im.initiator && im.state == State::responded)
    r = im.bob_on_accept(stanza, rng, rej);
  if (!r)
    return im.fail_with(r.error(), &stanza, rej);
  return r;
}

bool is_negotiation_stanza(const xml::Element& stanza) {
  for (const auto* w :
       {stanza.child("feature", xml::kNsFeatureNeg), stanza.child("init", xml::kNsInit)}) {
    if (!w)
      continue;
    const xml::Element* x = xml::find_form(*w);
    if (!x)
      continue;
    auto f = xml::parse_form(*x);
    if (f && f->form_type() == kFormType && !terminate_form_type(*w))
      return true;
  }
  return false;
}

xml::Element error_stanza(const xml::Element& request, std::string_view condition,
                          const std::vector<std::string>& fields, std::string_view to) {
  xml::Element m("message", std::string(xml::kNsClient));
  m.set_attr("type", "error");
  if (!to.empty())
    m.set_attr("to", to);
  for (const auto& c : request.children)
    if (c.is("thread", xml::kNsClient) || c.is("feature", xml::kNsFeatureNeg) ||
        c.is("init", xml::kNsInit))
      m.children.push_back(c);
  xml::Element& err = m.add(xml::Element("error", std::string(xml::kNsClient)));
  err.set_attr("type", "cancel");
  err.add(xml::Element(std::string(condition), std::string(xml::kNsStanzas)));
  if (!fields.empty()) {
    xml::Element& feat = err.add(xml::Element("feature", std::string(xml::kNsFeatureNeg)));
    for (const auto& fl : fields) {
      xml::Element fe("field", std::string(xml::kNsFeatureNeg));
      fe.set_attr("var", fl);
      feat.add(std::move(fe));
    }
  }
  return m;
}

}  // namespace esession
