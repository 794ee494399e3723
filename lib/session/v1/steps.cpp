// Profile 1.0's steps (XEP-0116 §4.2-4.7): what each party sends and checks, in the four- and
// three-message flows. The forms come from v1/form.cpp, the keys from v1/schedule.cpp.
#include <algorithm>

#include "session/v1/profile.hpp"

namespace esession::v1 {

namespace {

// b64_named is b64_field; a failure names the field in |rej| (formats §10).
Result<Bytes> b64_named(const xml::Form& f, std::string_view var, Rejection& rej) {
  auto b = b64_field(f, var);
  if (!b)
    rej.fields = {std::string(var)};
  return b;
}

// read_my_nonce reads the peer's my_nonce: 8 to 64 bytes.
Result<Bytes> read_my_nonce(const xml::Form& f, Rejection& rej) {
  ES_ASSIGN(Bytes n, b64_named(f, "my_nonce", rej));
  if (n.size() < 8 || n.size() > 64) {
    rej.fields = {"my_nonce"};
    return fail(Errc::malformed, "bad my_nonce length");
  }
  return n;
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

// result_form starts a form of messages 3 and 4: FORM_TYPE, accept (when |accept|), nonce.
xml::Element result_form(std::string_view t, ByteView nonce, bool accept) {
  xml::Element x = new_form("result");
  xml::add_field(x, "FORM_TYPE", t).value(kFormType);
  if (accept)
    xml::add_field(x, "accept", t).value("1");
  xml::add_field(x, "nonce", t).value(base64(nonce));
  return x;
}

}  // namespace

Status read_content(const xml::Element& msg, Established& est, Step& step, RandomSource& rng) {
  if (!msg.child("c", xml::kNsC))
    return {};
  ES_ASSIGN(Received r, est.session->decrypt(msg, rng));
  step.content.push_back(std::move(r));
  return {};
}

Step sending(xml::Element m) {
  Step step;
  step.send.push_back(std::move(m));
  return step;
}

xml::Element ProfileV1::message(Wrapper w, xml::Element form) const {
  xml::Element m("message", std::string(xml::kNsClient));
  m.set_attr("to", m_party.peer_jid);
  xml::Element& wrapper =
      m.add(w == Wrapper::feature ? xml::Element("feature", std::string(xml::kNsFeatureNeg))
                                  : xml::Element("init", std::string(xml::kNsInit)));
  wrapper.add(std::move(form));
  m.add_text_child("thread", cfg().thread);
  return m;
}

std::string ProfileV1::normalized(const xml::Element& form, const std::string& name) {
  std::string out = xml::normalize_form_content(form, norm(), {"identity", "mac"});
  record(name, out);
  return out;
}

// ---- Alice: message 1 ----------------------------------------------------------------------

// offer_identification decides what identification we offer: what we can give (init; key and
// hash need our Signer) and accept (resp; 'hash' from Bob needs a key of his that we know), and
// the signature algorithms.
Status ProfileV1::offer_identification() {
  const PartyConfig& c = cfg();
  bool know_peer = c.verifier && !c.verifier->known_keys(bare_jid(m_party.peer_jid)).empty();
  for (auto m : c.policy.init_pubkey)
    if (!(three() && m == PubkeyMode::none) && (m == PubkeyMode::none || c.signer))
      offered_init.push_back(m);
  for (auto m : c.policy.resp_pubkey)
    if (!(three() && m == PubkeyMode::none) && (m != PubkeyMode::hash || know_peer))
      offered_resp.push_back(m);
  if (offered_init.empty() || offered_resp.empty())
    return fail(Errc::not_acceptable,
                three() ? "the three-message flow needs a signing key and public-key "
                          "identification of both parties"
                        : "no identification method to offer");
  auto any_key = [](const std::vector<PubkeyMode>& v) {
    return std::any_of(v.begin(), v.end(), [](PubkeyMode m) { return m != PubkeyMode::none; });
  };
  if (any_key(offered_init) || any_key(offered_resp)) {
    // One algorithm serves both parties: if we may sign, offer only what our key makes.
    for (SignAlg a : {SignAlg::rsa_sha256, SignAlg::dsa_sha256, SignAlg::ed25519})
      if (!any_key(offered_init) || c.signer->can_sign(a))
        offered_sign.emplace_back(sign_alg_uri(a));
  }
  return {};
}

Status ProfileV1::check_groups() const {
  const Policy& pol = cfg().policy;
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
  return {};
}

Result<Step> ProfileV1::offer(RandomSource& rng) {
  PartyConfig& c = m_party.cfg;
  const Policy& pol = c.policy;
  suite.compat = pol.compat;
  suite.conv = pol.conv ? *pol.conv : CryptoConv::for_compat(pol.compat);
  suite.flow = pol.flow;
  if (three() && (gajim() || pol.xep0217))
    return fail(Errc::not_acceptable,
                "the three-message flow is not part of Gajim's protocol or of XEP-0217");
  if (c.terminate_after_content && (!three() || !c.content))
    return fail(Errc::not_acceptable,
                "terminating after the first stanza needs the three-message flow and content");
  ES_TRY(offer_identification());
  ES_TRY(check_groups());
  if (c.thread.empty())
    c.thread = hex(rng.nonce(16));
  Offer o;
  ES_TRY(draw_offer_values(o, rng));
  return finish_offer(o);
}

// draw_offer_values draws N_A and, for each group of the policy, x, and puts e (three-message)
// or its commitment into |o|.
Status ProfileV1::draw_offer_values(Offer& o, RandomSource& rng) {
  n_a = rng.nonce(gajim() ? 8 : 16);
  record_hex("N_A", n_a);
  offered_groups = cfg().policy.groups;
  for (int id : offered_groups) {
    const DhGroup& g = *dh_group(id);
    BigNum xg = rng.dh_private(g);
    if (!dh_check_private(g, xg))
      return fail(Errc::internal, "DH private value out of range");
    BigNum eg = dh_public(g, xg);
    Bytes he = digest(HashAlg::sha256, eg.mpi());  // always SHA-256 (XEP-0116 §4.3)
    record("e_per_offered_group." + std::to_string(id), eg.hex());
    record_hex("He_per_offered_group." + std::to_string(id), he);
    o.dh.push_back(three() ? eg.mpi() : std::move(he));
    x_per_group.push_back(std::move(xg));
  }
  return {};
}

Result<Step> ProfileV1::finish_offer(Offer& o) {
  const PartyConfig& c = cfg();
  o.dialect = gajim() ? Dialect::gajim : c.policy.xep0217 ? Dialect::xep0217 : Dialect::spec;
  o.three = three();
  o.policy = &c.policy;
  fixed_identification(o.dialect, offered_init, offered_resp, offered_sign);
  o.init = offered_init;
  o.resp = offered_resp;
  o.sign = offered_sign;
  o.n_a = n_a;
  o.groups = offered_groups;
  o.reads = c.reads_credentials;
  xml::Element fx = offer_form(o);
  form_a = xml::normalize_form_content(fx, norm());
  xml::Element m = message(Wrapper::feature, std::move(fx));
  if (!gajim()) {
    // XEP-0116 §4.3: the request must not be stored offline.
    xml::Element& amp = m.add(xml::Element("amp", std::string(xml::kNsAmp)));
    amp.set_attr("per-hop", "true");
    xml::Element rule("rule", std::string(xml::kNsAmp));
    rule.set_attr("action", "drop").set_attr("condition", "deliver").set_attr("value", "stored");
    amp.add(std::move(rule));
  }
  record("form_A", form_a);
  return sending(std::move(m));
}

// ---- Bob: message 2 ------------------------------------------------------------------------

// read_offer takes the thread and the flow from an offer; returns true for three messages.
Result<bool> ProfileV1::read_offer(const xml::Element& offer, const xml::Form& f, Rejection& rej) {
  PartyConfig& c = m_party.cfg;
  const xml::Element* th = offer.child("thread", xml::kNsClient);
  if (!th || th->text_content().empty())
    return fail(Errc::malformed, "negotiation request without <thread/>");
  c.thread = th->text_content();
  // Refused before anything is answered: a thread no store could keep would fail only once
  // the session is established, after the initiator had been told it was.
  if (c.thread.size() > kMaxThreadBytes)
    return fail(Errc::malformed, "negotiation request with a <thread/> longer than " +
                                     std::to_string(kMaxThreadBytes) + " bytes");
  if (std::any_of(c.thread.begin(), c.thread.end(),
                  [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f; }))
    return fail(Errc::malformed, "negotiation request with control characters in <thread/>");
  bool has_hashes = f.field("dhhashes") != nullptr, has_keys = f.field("dhkeys") != nullptr;
  if (has_hashes == has_keys) {
    rej = {"not-acceptable", {"dhhashes"}};
    return fail(Errc::malformed, "offer must carry exactly one of dhhashes and dhkeys");
  }
  // A responder with content to send needs the four-message flow: it has no last message in
  // the three-message one.
  if (has_keys && (gajim() || !c.policy.accept_three_message || c.content)) {
    rej = {"feature-not-implemented", {"dhkeys"}};
    return fail(Errc::unsupported, "we do not accept three-message negotiations");
  }
  if (has_keys && f.field("sas_algs")) {
    rej = {"not-acceptable", {"sas_algs"}};
    return fail(Errc::malformed, "a three-message offer must not carry sas_algs");
  }
  return has_keys;
}

void ProfileV1::take_choice(const Choice& c) {
  suite.modp = static_cast<int>(parse_decimal(c.modp, 1u << 16).value());
  suite.cipher = *cipher_from_name(c.crypt);
  suite.hash = *hash_from_name(c.hash);
  suite.stanzas = c.stanzas;
  suite.init_pubkey = *pubkey_from_name(c.init_pk);
  suite.resp_pubkey = *pubkey_from_name(c.resp_pk);
  suite.rekey_freq = c.rekey;
  suite.logging = c.logging;
  suite.sign_alg = c.sign_alg;
  own_key_unused = c.own_key_unused;
}

// read_offer_values reads Alice's nonce and her value for the chosen group (same position as
// in 'modp', R1): e itself (three-message) or its commitment. A malformed field or a value
// count mismatch: not-acceptable, naming the field (§10).
Status ProfileV1::read_offer_values(const xml::Form& f, const Choice& c, Rejection& rej) {
  rej = {"not-acceptable", {}};
  ES_ASSIGN(n_a, read_my_nonce(f, rej));
  bool ok = false;
  std::string dh_var = three() ? "dhkeys" : "dhhashes";
  std::vector<Bytes> per_group = hidden_b64_values(f, dh_var, ok);
  auto groups = f.choices("modp");
  if (!ok || per_group.size() != groups.size()) {
    rej.fields = {dh_var};
    return fail(Errc::malformed, dh_var + " must hold one value per offered group");
  }
  size_t pos =
      static_cast<size_t>(std::find(groups.begin(), groups.end(), c.modp) - groups.begin());
  if (three()) {
    // XEP-0116 §4.5.1: feature-not-implemented unless 1 < e < p-1.
    auto ev = dh_parse_public(*dh_group(suite.modp), per_group[pos]);
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
  return {};
}

Status ProfileV1::draw_response_values(RandomSource& rng) {
  const DhGroup& g = *dh_group(suite.modp);
  n_b = rng.nonce(gajim() ? 8 : 16);
  y = rng.dh_private(g);
  if (!dh_check_private(g, y))
    return fail(Errc::internal, "DH private value out of range");
  d = dh_public(g, y);
  ES_ASSIGN(c_a, draw_counter(rng, gajim()));
  c_b = c_a.flip_top();
  record("d", d.hex());
  record("chosen_modp", std::to_string(suite.modp));
  return {};
}

Result<Step> ProfileV1::respond(const xml::Element& offer, RandomSource& rng, Rejection& rej) {
  const Policy& pol = cfg().policy;
  suite.compat = pol.compat;
  suite.conv = pol.conv ? *pol.conv : CryptoConv::for_compat(pol.compat);
  ES_ASSIGN(Incoming in, read_form(offer, Wrapper::feature, "form", rej));
  form_a = xml::normalize_form_content(*in.x, norm());
  record("form_A", form_a);
  ES_ASSIGN(bool three_msg, read_offer(offer, in.form, rej));
  suite.flow = three_msg ? Flow::three_message : Flow::four_message;
  ES_ASSIGN(Choice c, choose(in.form, cfg(), m_party.peer_jid, three_msg, rej));
  take_choice(c);
  ES_TRY(read_offer_values(in.form, c, rej));
  rej = {};  // below, only our own failures: nothing to tell the peer
  ES_TRY(draw_response_values(rng));
  return finish_response(in, c);
}

Result<xml::Element> ProfileV1::response_x(const xml::Element& offer_x, const xml::Form& offer,
                                           const Choice& c, bool offline,
                                           const std::function<void(xml::Element&)>& extra) {
  Response r;
  r.gajim = gajim();
  r.three = three();
  r.offer_x = &offer_x;
  r.n_a = n_a;
  r.n_b = n_b;
  r.d = d.mpi();
  r.c_a = c_a.mpi();
  r.offline = offline;
  xml::Element fx = response_form(c, r);
  std::string_view t = gajim() ? "text-single" : "";
  // The extension field is answered only to an initiator that sent it (formats §7.1).
  peer_reads = offer.choices("credentials");
  if (offer.field("credentials"))
    add_credentials_field(fx, t, gajim(), cfg().reads_credentials);
  if (extra)
    extra(fx);
  form_b = xml::normalize_form_content(fx, norm());
  record("form_B", form_b);
  if (three()) {
    // XEP-0116 §4.5.3-4.5.5: all six keys from K, then Bob's identity block in this message.
    agree(*dh_group(suite.modp), e, y, "final", true);
    ES_ASSIGN(Identity idb, own_identity(fx, t, prov, ""));
    c_b = idb.after;
  }
  return fx;
}

Result<Step> ProfileV1::finish_response(const Incoming& in, const Choice& c) {
  ES_ASSIGN(xml::Element fx, response_x(*in.x, in.form, c, false));
  return sending(message(Wrapper::feature, std::move(fx)));
}

// ---- Alice: message 3 ----------------------------------------------------------------------

// read_response_values reads Bob's nonce, d and C_A, and takes our x for the chosen group.
Status ProfileV1::read_response_values(const xml::Form& f, size_t group, Rejection& rej) {
  ES_ASSIGN(n_b, read_my_nonce(f, rej));
  ES_ASSIGN(Bytes d_bytes, b64_named(f, "dhkeys", rej));
  ES_ASSIGN(Bytes ctr_bytes, b64_named(f, "counter", rej));
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
  x = x_per_group[group];
  e = dh_public(g, x);
  c_a = Counter128::from_bytes(ctr_bytes);
  c_b = c_a.flip_top();
  record("d", d.hex());
  record("e", e.hex());
  return {};
}

Result<Step> ProfileV1::on_response(const xml::Element& msg, RandomSource& rng, Rejection& rej) {
  rej = {"not-acceptable", {}};
  ES_ASSIGN(Incoming in,
            open_message(msg, Wrapper::feature, "submit", true, n_a, "the response", rej));
  ES_ASSIGN(size_t group, check_choice(in.form, rej));
  ES_TRY(read_response_values(in.form, group, rej));
  agree(*dh_group(suite.modp), d, x, three() ? "final" : "provisional", three());
  form_b = xml::normalize_form_content(*in.x, norm(), {"identity", "mac"});
  record("form_B", form_b);
  if (three())
    return three_message(in.form, rng, rej);
  return message_3(rng);
}

// message_3 is Alice's message 3 of the four-message flow: e, her retained secrets hidden
// among decoys (rshashes, XEP-0116 §4.6.4) and her identity block with the provisional keys.
Result<Step> ProfileV1::message_3(RandomSource& rng) {
  std::vector<Bytes> rshashes = make_rshashes(rng);
  if (cfg().trace) {
    std::string all;
    for (const auto& r : rshashes)
      all += (all.empty() ? "" : ",") + hex(r);
    record("rshashes", all);
  }
  std::string_view t = gajim() ? "text-single" : "";
  xml::Element fx = result_form(t, n_b, true);
  // Gajim writes rshashes before dhkeys; formats §8 and XEP-0116's example, dhkeys first.
  if (!gajim())
    xml::add_field(fx, "dhkeys", t).value(base64(e.mpi()));
  auto rf = xml::add_field(fx, "rshashes", t);
  for (const auto& r : rshashes)
    rf.value(base64(r));
  if (gajim())
    xml::add_field(fx, "dhkeys", t).value(base64(e.mpi()));
  ES_ASSIGN(Identity ida, own_identity(fx, t, prov, normalized(fx, "form_A2")));
  M_A = ida.m;
  c_a = ida.after;  // Alice's sending counter continues after ID_A (A5)
  compute_sas();
  return sending(message(Wrapper::feature, std::move(fx)));
}

// three_message is Alice's message 3 of the three-message flow: Bob's identity first
// (XEP-0116 §4.6.2), then hers; the session is established.
Result<Step> ProfileV1::three_message(const xml::Form& f, RandomSource& rng, Rejection& rej) {
  rej = {"feature-not-implemented", {}};
  ES_ASSIGN(Block b, read_block(f));
  Counter128 recv_after;
  ES_ASSIGN(IdentityProof proof, open_peer_identity(b, prov, "", recv_after));
  xml::Element fx = result_form("", n_b, true);
  if (cfg().terminate_after_content)
    xml::add_field(fx, "terminate").value("1");
  ES_ASSIGN(Identity ida, own_identity(fx, "", prov, normalized(fx, "form_A2")));
  xml::Element m = message(Wrapper::feature, std::move(fx));
  Established est = establish(prov, ida.after, recv_after, std::move(proof));
  ES_TRY(attach_content(m, *est.session, rng));
  if (cfg().terminate_after_content) {
    est.session->destroy();
    est.terminated = true;
  }
  Step step = sending(std::move(m));
  step.established = std::move(est);
  return step;
}

// ---- Bob: completion of the three-message flow ---------------------------------------------

Result<Step> ProfileV1::on_accept3(const xml::Element& msg, const Incoming& in, RandomSource& rng) {
  const xml::Form& f = in.form;
  ES_ASSIGN(Block b, read_block(f));
  for (const char* var : {"dhkeys", "rshashes", "srshash"})
    if (f.field(var))
      return fail(Errc::malformed, std::string(var) + " in a three-message completion");
  bool terminate = false;
  if (auto t = f.offered_single("terminate")) {
    auto v = xml::parse_bool(*t);
    if (!v)
      return fail(Errc::malformed, "bad terminate value");
    terminate = *v;
  }
  Counter128 recv_after;
  ES_ASSIGN(IdentityProof proof,
            open_peer_identity(b, prov, normalized(*in.x, "form_A2"), recv_after));
  Established est = establish(prov, c_b, recv_after, std::move(proof));
  Step step;
  ES_TRY(read_content(msg, est, step, rng));
  if (terminate) {
    est.session->destroy();
    est.terminated = true;
  }
  step.established = std::move(est);
  return step;
}

// ---- Bob: message 4 ------------------------------------------------------------------------

Result<std::vector<Bytes>> ProfileV1::read_rshashes(const xml::Form& f) const {
  if (!f.field("rshashes"))
    return fail(Errc::malformed, "missing field 'rshashes'");
  bool ok = false;
  std::vector<Bytes> rshashes = hidden_b64_values(f, "rshashes", ok);
  if (!ok)
    return fail(Errc::malformed, "bad rshashes");
  for (const auto& r : rshashes)
    if (r.size() != hash_size(hash()))
      return fail(Errc::malformed, "an rshashes value is not as long as the hash (formats §15.2)");
  return rshashes;
}

Result<Step> ProfileV1::on_accept(const xml::Element& msg, RandomSource& rng, Rejection& rej) {
  rej = {"feature-not-implemented", {}};
  ES_ASSIGN(Incoming in,
            open_message(msg, Wrapper::feature, "result", true, n_b, "the accept", rej));
  const xml::Form& f = in.form;
  if (three())
    return on_accept3(msg, in, rng);
  if (f.field("terminate"))
    return fail(Errc::malformed, "terminate in a four-message completion");
  ES_ASSIGN(Bytes e_bytes, b64_field(f, "dhkeys"));
  if (!is_mpi(e_bytes))
    return fail(Errc::malformed, "dhkeys is not an MPI (empty, or a leading zero byte)");
  // Every field is decoded before anything is verified (formats §8 step 1), so that a
  // malformed one is reported as such and not as the MAC failure it would also cause.
  ES_ASSIGN(Block b, read_block(f));
  ES_ASSIGN(std::vector<Bytes> rshashes, read_rshashes(f));
  const DhGroup& g = *dh_group(suite.modp);
  // Hash commitment first: SHA256(e) must equal the He Alice committed to in message 1.
  if (!ct_equal(digest(HashAlg::sha256, BigNum::from_bytes(e_bytes).mpi()), he_per_group[0]))
    return fail(Errc::auth_failed, "Diffie-Hellman value does not match its hash commitment");
  ES_ASSIGN(e, dh_parse_public(g, e_bytes));
  record("e", e.hex());
  agree(g, e, y, "provisional", false);
  Counter128 recv_after;
  ES_ASSIGN(IdentityProof proof,
            open_peer_identity(b, prov, normalized(*in.x, "form_A2"), recv_after));
  M_A = b.m;
  compute_sas();
  return message_4(rshashes, std::move(proof), recv_after, rng);
}

// message_4 is Bob's message 4: the retained secret both hold, if any (XEP-0116 §4.7.3), and
// his identity block with the final keys; the session is established.
Result<Step> ProfileV1::message_4(const std::vector<Bytes>& rshashes, IdentityProof proof,
                                  const Counter128& recv_after, RandomSource& rng) {
  const SecretBytes* srs = nullptr;
  std::optional<size_t> srs_index;
  bool srs_from_other = false;
  for (const auto* list : {&cfg().retained, &cfg().retained_other}) {
    for (size_t i = 0; i < list->size() && !srs; ++i) {
      SecretBytes hs = hmac(hash(), n_a, view((*list)[i]));
      if (std::any_of(rshashes.begin(), rshashes.end(),
                      [&](const Bytes& r) { return ct_equal(view(hs), r); })) {
        srs = &(*list)[i];
        srs_index = i;
        srs_from_other = list == &cfg().retained_other;
      }
    }
  }
  Bytes srshash = srs ? bytes_of(view(hmac(hash(), view(*srs), view(kLabelSrs))))
                      : rng.srshash_random(hash_size(hash()));
  FinalKeys fin = final_keys(srs, srshash);
  std::string_view t = gajim() ? "text-single" : "";
  xml::Element fx = result_form(t, n_a, false);
  xml::add_field(fx, "srshash", t).value(base64(srshash));
  ES_ASSIGN(Identity idb, own_identity(fx, t, fin.keys, normalized(fx, "form_B2")));
  xml::Element m = message(Wrapper::init, std::move(fx));
  Established est = establish(fin.keys, idb.after, recv_after, std::move(proof));
  est.new_retained_secret = std::move(fin.new_retained);
  est.srs_index = srs_index;
  est.srs_from_other = srs_from_other;
  est.oss_used = cfg().oss.has_value();
  ES_TRY(attach_content(m, *est.session, rng));
  Step step = sending(std::move(m));
  step.established = std::move(est);
  return step;
}

// ---- Alice: completion ---------------------------------------------------------------------

Result<Step> ProfileV1::on_init(const xml::Element& msg, RandomSource& rng, Rejection& rej) {
  rej = {"feature-not-implemented", {}};
  ES_ASSIGN(Incoming in, open_message(msg, Wrapper::init, "result", false, n_a,
                                      "the responder's identity", rej));
  const xml::Form& f = in.form;
  ES_ASSIGN(Bytes srshash, b64_field(f, "srshash"));
  if (srshash.size() != hash_size(hash()))
    return fail(Errc::malformed, "srshash is not as long as the hash (formats §15.2)");
  const SecretBytes* srs = nullptr;
  std::optional<size_t> srs_index;
  for (size_t i = 0; i < cfg().retained.size() && !srs; ++i)
    if (ct_equal(view(hmac(hash(), view(cfg().retained[i]), view(kLabelSrs))), srshash)) {
      srs = &cfg().retained[i];
      srs_index = i;
    }
  FinalKeys fin = final_keys(srs, srshash);
  ES_ASSIGN(Block b, read_block(f));
  Counter128 recv_after;
  auto opened = open_peer_identity(b, fin.keys, normalized(*in.x, "form_B2"), recv_after);
  if (!opened) {
    if ((!cfg().oss && !srs) || opened.error().code != Errc::auth_failed)
      return opened.error();
    return fail(Errc::auth_failed,
                "the responder's identity does not verify (retained secret "
                "or other shared secret mismatch?)");
  }
  Established est = establish(fin.keys, c_a, recv_after, std::move(opened).value());
  est.new_retained_secret = std::move(fin.new_retained);
  est.srs_index = srs_index;
  est.oss_used = cfg().oss.has_value();
  Step step;
  // Bob MAY append encrypted content to message 4.
  ES_TRY(read_content(msg, est, step, rng));
  step.established = std::move(est);
  return step;
}

}  // namespace esession::v1
