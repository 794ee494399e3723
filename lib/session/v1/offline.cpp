// Profile 1.0's offline sessions (XEP-0187, formats/offline.md): Alice's signed options, Bob's
// one request established at once, and Alice's acceptance of it when she is back. The offline
// flow is the three-message flow with Alice's first message published in advance: the options
// are her offer without 'accept' and the pubkey fields, Bob's request is his message 2 in an
// <init/>, and Alice checks it as she would message 2 but sends no message 3. Both parties
// identify by key: Alice by the signature on her options, Bob by his identity block.
#include <algorithm>

#include "session/v1/profile.hpp"
#include "util/datetime.hpp"

namespace esession::v1 {

namespace {

// options_content is what a signature of the options covers: the normalized content of the
// form without 'signs' (PROTOCOL-NOTES A23).
std::string options_content(const xml::Element& fx) {
  return xml::normalize_form_content(fx, xml::NormStyle::spec, {"signs"});
}

// alg_for is the signature algorithm a key of type |t| makes.
SignAlg alg_for(KeyType t) {
  switch (t) {
    case KeyType::rsa:
      return SignAlg::rsa_sha256;
    case KeyType::dsa:
      return SignAlg::dsa_sha256;
    case KeyType::ed25519:
      break;
  }
  return SignAlg::ed25519;
}

// read_terminate reads an optional terminate field.
Result<bool> read_terminate(const xml::Form& f) {
  auto t = f.offered_single("terminate");
  if (!t)
    return f.field("terminate") ? Result<bool>(fail(Errc::malformed, "bad terminate value"))
                                : Result<bool>(false);
  auto v = xml::parse_bool(*t);
  if (!v)
    return fail(Errc::malformed, "bad terminate value");
  return *v;
}

}  // namespace

// offline_stanzas is what the options offer: the policy's kinds but iq (XEP-0187 §3.1), and
// only message when a resource must match.
Result<std::vector<std::string>> ProfileV1::offline_stanzas() const {
  std::vector<std::string> kinds;
  for (const auto& kind : cfg().policy.stanzas)
    if (kind == "message" || (kind == "presence" && m_party.offline->match_resource.empty()))
      kinds.push_back(kind);
  if (kinds.empty())
    return fail(Errc::not_acceptable,
                "offline options offer <message/> (or <presence/> without a resource to match) "
                "only, and the policy allows neither");
  return kinds;
}

Status ProfileV1::sign_options(xml::Element& fx) const {
  const Signer& signer = *cfg().signer;
  SignAlg alg = alg_for(signer.public_key().type());
  std::string content = options_content(fx);
  ES_ASSIGN(Bytes sig, signer.sign(alg, view(content)));
  xml::add_field(fx, "signs", "hidden").value(base64(sig));
  return {};
}

Result<xml::Element> ProfileV1::publish(RandomSource& rng) {
  PartyConfig& c = m_party.cfg;
  const Policy& pol = c.policy;
  if (pol.compat == Compat::gajim || pol.xep0217)
    return fail(Errc::not_acceptable,
                "offline sessions are not part of Gajim's protocol or of XEP-0217");
  if (!c.signer)
    return fail(Errc::not_acceptable,
                "offline options are signed (XEP-0187 §3.1): publishing them needs a signing key");
  suite.compat = pol.compat;
  suite.conv = pol.conv ? *pol.conv : CryptoConv::for_compat(pol.compat);
  suite.flow = Flow::three_message;
  ES_TRY(check_groups());
  Offer o;
  ES_ASSIGN(o.stanzas, offline_stanzas());
  // Alice verifies whatever key Bob signs with; she signs nothing in the session itself.
  offered_init = offered_resp = {PubkeyMode::key};
  for (SignAlg a : {SignAlg::rsa_sha256, SignAlg::dsa_sha256, SignAlg::ed25519})
    offered_sign.emplace_back(sign_alg_uri(a));
  // A name for the saved state; each request brings its own thread.
  c.thread = hex(rng.nonce(16));
  ES_TRY(draw_offer_values(o, rng));
  o.dialect = Dialect::spec;
  o.three = true;
  o.policy = &pol;
  o.sign = offered_sign;
  o.n_a = n_a;
  o.groups = offered_groups;
  o.reads = c.reads_credentials;
  o.offline = &*m_party.offline;
  xml::Element fx = offer_form(o);
  form_a = xml::normalize_form_content(fx, norm());
  record("form_A", form_a);
  ES_TRY(sign_options(fx));
  return fx;
}

// ---- Bob -----------------------------------------------------------------------------------

// verify_options returns the key of Alice's that signed her options: one that the Verifier
// knows for her and accepts. Nothing else of the options is read before (XEP-0187 §3.2).
Result<PublicKey> ProfileV1::verify_options(const xml::Element& options, const xml::Form& f) const {
  const std::string alice = bare_jid(m_party.peer_jid);
  std::vector<PublicKey> keys;
  if (cfg().verifier)
    keys = cfg().verifier->known_keys(alice);
  if (keys.empty())
    return fail(Errc::auth_failed, "no key of " + alice +
                                       " is known here, so her offline options cannot be "
                                       "checked: refused (verify or pin a key of hers first)");
  bool ok = false;
  std::vector<Bytes> sigs = hidden_b64_values(f, "signs", ok);
  if (!ok || sigs.empty())
    return fail(Errc::auth_failed, "the offline options of " + alice + " are not signed");
  std::string content = options_content(options);
  for (const PublicKey& key : keys)
    for (const Bytes& sig : sigs)
      if (key.verify(alg_for(key.type()), view(content), sig) &&
          cfg().verifier->accept(alice, key, nullptr))
        return key;
  return fail(Errc::auth_failed, "no signature on the offline options of " + alice +
                                     " verifies with a key of hers known here");
}

// read_options checks what only offline options carry: no 'accept' or pubkey fields, no iq,
// an expiry still ahead, and the resource to address if one must match.
Status ProfileV1::read_options(const xml::Element& options, const xml::Form& f, int64_t now) {
  if (!options.is("x", xml::kNsData) || f.form_type() != kFormType || f.type != "form")
    return fail(Errc::malformed, "not ESession options (a form of type 'form', urn:xmpp:ssn)");
  for (const char* var : {"accept", "init_pubkey", "resp_pubkey"})
    if (f.field(var))
      return fail(Errc::malformed,
                  std::string("offline options must not carry '") + var + "' (XEP-0187 §3.1)");
  if (contains(f.choices("stanzas"), std::string("iq")))
    return fail(Errc::malformed, "offline options must not offer <iq/> (XEP-0187 §3.1)");
  ES_ASSIGN(std::string exp_s, f.value("expires"));
  std::optional<int64_t> expires = parse_datetime(exp_s);
  if (!expires)
    return fail(Errc::malformed, "offline options: bad expires '" + printable(exp_s) + "'");
  if (now >= *expires)
    return fail(Errc::not_acceptable,
                "the offline options expired at " + format_datetime(*expires) + ": not used");
  if (const xml::Field* mr = f.field("match_resource")) {
    ES_ASSIGN(std::string res, f.value("match_resource"));
    (void)mr;
    if (res.empty() || res.size() > 1023)
      return fail(Errc::malformed, "offline options: bad match_resource");
    for (const auto& kind : f.choices("stanzas"))
      if (kind != "message")
        return fail(Errc::malformed, "offline options with match_resource offer <message/> only");
    m_party.peer_jid = bare_jid(m_party.peer_jid) + "/" + res;
  }
  return {};
}

Result<Step> ProfileV1::start_offline(const xml::Element& options, int64_t now, RandomSource& rng) {
  PartyConfig& c = m_party.cfg;
  const Policy& pol = c.policy;
  if (pol.compat == Compat::gajim)
    return fail(Errc::not_acceptable, "offline sessions are not part of Gajim's protocol");
  if (!c.signer)
    return fail(Errc::not_acceptable,
                "an offline session needs our signing key: Alice, offline, cannot check a SAS");
  if (c.terminate_after_content && !c.content)
    return fail(Errc::not_acceptable, "terminating after the first stanza needs content");
  suite.compat = pol.compat;
  suite.conv = pol.conv ? *pol.conv : CryptoConv::for_compat(pol.compat);
  suite.flow = Flow::three_message;
  ES_ASSIGN(xml::Form f, xml::parse_form(options));
  ES_ASSIGN(PublicKey alice_key, verify_options(options, f));
  ES_TRY(read_options(options, f, now));
  form_a = xml::normalize_form_content(options, norm());
  record("form_A", form_a);
  Rejection rej;  // nothing is answered
  ES_ASSIGN(Choice ch, choose(f, c, m_party.peer_jid, true, rej, true));
  take_choice(ch);
  ES_TRY(read_offer_values(f, ch, rej));
  ES_TRY(draw_response_values(rng));
  if (c.thread.empty())
    c.thread = hex(rng.nonce(16));
  const bool term = c.terminate_after_content;
  ES_ASSIGN(xml::Element fx, response_x(options, f, ch, true, [term](xml::Element& form) {
              if (term)
                xml::add_field(form, "terminate").value("1");
            }));
  xml::Element m = message(Wrapper::init, std::move(fx));
  m.set_attr("type", "chat");
  IdentityProof alice;
  alice.key = std::move(alice_key);
  alice.mode = PubkeyMode::key;
  Established est = establish(prov, c_b, c_a, std::move(alice));
  ES_TRY(attach_content(m, *est.session, rng));
  if (f.field("match_resource")) {
    // XEP-0187 §3.3 and A24: delivered to that resource or not at all.
    xml::Element& amp = m.add(xml::Element("amp", std::string(xml::kNsAmp)));
    xml::Element rule("rule", std::string(xml::kNsAmp));
    rule.set_attr("action", "error").set_attr("condition", "match-resource");
    rule.set_attr("value", "exact");
    amp.add(std::move(rule));
  }
  if (term) {
    est.session->destroy();
    est.terminated = true;
  }
  Step step = sending(std::move(m));
  step.established = std::move(est);
  return step;
}

// ---- Alice, back online --------------------------------------------------------------------

// check_offline_identification: both identify by key; Bob's signature algorithm must be one
// the options offered, and his identity block must be there.
Status ProfileV1::check_offline_identification(const xml::Form& f) {
  for (const char* var : {"init_pubkey", "resp_pubkey"})
    if (f.field(var) && f.offered_single(var) != std::optional<std::string>("key"))
      return fail(Errc::malformed,
                  std::string("an offline request with ") + var + " other than key");
  suite.init_pubkey = suite.resp_pubkey = PubkeyMode::key;
  ES_ASSIGN(suite.sign_alg, f.value("sign_algs"));
  if (!sign_alg_from_uri(suite.sign_alg) || !contains(offered_sign, suite.sign_alg))
    return fail(Errc::not_acceptable,
                "the offline request chose a signature algorithm we did not offer");
  peer_reads = f.choices("credentials");
  if (!f.field("identity") || !f.field("mac"))
    return fail(Errc::malformed, "the offline request lacks the sender's identity");
  return {};
}

Result<Step> ProfileV1::accept_offline(const xml::Element& request, int64_t now,
                                       RandomSource& rng) {
  const OfflineOptions& o = *m_party.offline;
  if (now >= o.expires)
    return fail(Errc::not_acceptable, "the offline options expired at " +
                                          format_datetime(o.expires) +
                                          ": the request is discarded without being decrypted");
  Rejection rej;  // nothing is answered (XEP-0187 §3.4)
  ES_ASSIGN(Incoming in,
            open_message(request, Wrapper::init, "submit", false, n_a, "the offline request", rej));
  const xml::Form& f = in.form;
  ES_ASSIGN(size_t group, check_algorithms(f, rej));
  ES_TRY(check_offline_identification(f));
  ES_TRY(check_stanzas_rekey(f, rej));
  for (const auto& kind : suite.stanzas)
    if (kind == "iq" || (kind != "message" && !o.match_resource.empty()))
      return fail(Errc::not_acceptable, "the offline request chose <" + kind + "/>, not offered");
  ES_TRY(check_sas_ver_answers(f, rej));
  ES_TRY(read_response_values(f, group, rej));
  ES_ASSIGN(bool terminate, read_terminate(f));
  agree(*dh_group(suite.modp), d, x, "final", true);
  form_b = xml::normalize_form_content(*in.x, norm(), {"identity", "mac"});
  record("form_B", form_b);
  ES_ASSIGN(Block b, read_block(f));
  Counter128 recv_after;
  ES_ASSIGN(IdentityProof proof, open_peer_identity(b, prov, "", recv_after));
  Established est = establish(prov, c_a, recv_after, std::move(proof), true);
  Step step;
  ES_TRY(read_content(request, est, step, rng));
  if (terminate) {
    est.session->destroy();
    est.terminated = true;
  }
  step.established = std::move(est);
  return step;
}

}  // namespace esession::v1
