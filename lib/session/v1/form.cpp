// Profile 1.0's forms in its three dialects (spec, Gajim, XEP-0217): reading a negotiation
// message, the offer, the responder's choice and answer, and the initiator's check of it.
#include <algorithm>

#include "session/v1/profile.hpp"
#include "util/datetime.hpp"

namespace esession::v1 {

namespace {

constexpr std::string_view kRsaSha256 = "http://www.w3.org/2000/09/xmldsig#rsa-sha256";
constexpr std::string_view kMaxRekeyFreq = "4294967295";  // XEP-0217 and Gajim: never re-key

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
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

// refuse fails as not acceptable, naming |fields| in the error reply (formats §10).
Error refuse(Rejection& rej, std::vector<std::string> fields, std::string why) {
  rej.fields = std::move(fields);
  return fail(Errc::not_acceptable, why);
}

// parse_rekey_freq reads a rekey_freq value: a decimal from 1 to 2^32-1.
std::optional<uint32_t> parse_rekey_freq(std::string_view s) {
  Result<uint64_t> v = parse_decimal(s);
  if (!v || *v == 0)
    return std::nullopt;
  return static_cast<uint32_t>(*v);
}

// add_policy_fields appends logging, disclosure and security, as both dialects offer them.
void add_policy_fields(xml::Element& fx, const Policy& pol) {
  auto lf = xml::add_field(fx, "logging", "list-single");
  lf.required();
  for (const auto& l : pol.logging)
    lf.option(l);
  xml::add_field(fx, "disclosure", "list-single").required().option("never");
  xml::add_field(fx, "security", "list-single").required().option("e2e");
}

// add_fixed_algorithms appends the one cipher, hash and compression Gajim and XEP-0217 offer.
void add_fixed_algorithms(xml::Element& fx) {
  xml::add_field(fx, "crypt_algs", "hidden").value("aes128-ctr");
  xml::add_field(fx, "hash_algs", "hidden").value("sha256");
  xml::add_field(fx, "compress", "hidden").value("none");
}

void add_options(xml::Element& fx, std::string_view var, std::string_view type,
                 const std::vector<std::string>& options) {
  auto fl = xml::add_field(fx, var, type);
  for (const auto& o : options)
    fl.option(o);
}

void add_values(xml::Element& fx, std::string_view var, std::string_view type,
                const std::vector<Bytes>& values) {
  auto fl = xml::add_field(fx, var, type);
  for (const auto& v : values)
    fl.value(base64(v));
}

std::vector<std::string> names(const std::vector<PubkeyMode>& modes) {
  std::vector<std::string> out;
  for (auto m : modes)
    out.emplace_back(pubkey_name(m));
  return out;
}

// gajim_offer is Gajim's exact offer (R-conventions of the vector schema §3.3).
void gajim_offer(xml::Element& fx, const Offer& o) {
  using xml::add_field;
  add_field(fx, "FORM_TYPE", "hidden").value(kFormType);
  add_field(fx, "accept", "boolean").value("1").required();
  add_policy_fields(fx, *o.policy);
  add_fixed_algorithms(fx);
  add_options(fx, "stanzas", "list-multi", o.policy->stanzas);
  add_field(fx, "init_pubkey", "list-single").option("none").option("key").option("hash");
  add_field(fx, "resp_pubkey", "list-single").option("none").option("key");
  add_field(fx, "ver", "hidden").value("1.0");
  add_field(fx, "rekey_freq", "hidden").value(kMaxRekeyFreq);
  add_field(fx, "sas_algs", "hidden").value("sas28x5");
  add_field(fx, "sign_algs", "hidden").value(kRsaSha256);
  add_field(fx, "my_nonce", "hidden").value(base64(o.n_a));
  auto mf = add_field(fx, "modp", "list-single");
  for (int id : o.groups)
    mf.option(std::to_string(id), "None");
  add_values(fx, "dhhashes", "hidden", o.dh);
}

// spec_offer is the offer of formats §5, or with XEP-0217's fixed parameters.
void spec_offer(xml::Element& fx, const Offer& o) {
  using xml::add_field;
  const Policy& pol = *o.policy;
  bool fixed = o.dialect == Dialect::xep0217;
  add_field(fx, "FORM_TYPE", "hidden").value(kFormType);
  if (!o.offline)  // XEP-0187 §3.1: options omit 'accept' and the pubkey fields
    add_field(fx, "accept", "boolean").required().value("1");
  add_policy_fields(fx, pol);
  auto mf = add_field(fx, "modp", "list-single");
  for (int id : o.groups)
    mf.option(std::to_string(id));
  if (fixed) {
    add_fixed_algorithms(fx);
  } else {
    auto cf = add_field(fx, "crypt_algs", "list-single");
    for (auto c : pol.ciphers)
      cf.option(cipher_name(c));
    auto hf = add_field(fx, "hash_algs", "list-single");
    for (auto h : pol.hashes)
      hf.option(hash_name(h));
    // sign_algs after hash_algs, as in XEP-0116's offer example (formats §5).
    if (!o.sign.empty())
      add_options(fx, "sign_algs", "list-single", o.sign);
    add_field(fx, "compress", "list-single").option("none");
  }
  add_options(fx, "stanzas", "list-multi", o.offline ? o.stanzas : pol.stanzas);
  if (o.offline) {
  } else if (fixed) {
    add_field(fx, "init_pubkey", "hidden").value("none");
    add_field(fx, "resp_pubkey", "hidden").value("none");
  } else {
    add_options(fx, "init_pubkey", "list-single", names(o.init));
    add_options(fx, "resp_pubkey", "list-single", names(o.resp));
  }
  add_field(fx, "ver", "list-single").option("1.0");
  add_field(fx, "rekey_freq", fixed ? "hidden" : "text-single")
      .value(fixed ? std::string(kMaxRekeyFreq) : std::to_string(pol.rekey_freq));
  add_field(fx, "my_nonce", "hidden").value(base64(o.n_a));
  if (fixed)
    add_field(fx, "sas_algs", "hidden").value("sas28x5");
  else if (!o.three)
    add_field(fx, "sas_algs", "list-single").option("sas28x5");
  // Three-message: the public values themselves (XEP-0116 §4.3), no commitment, no SAS.
  add_values(fx, o.three ? "dhkeys" : "dhhashes", "hidden", o.dh);
  add_credentials_field(fx, "hidden", false, o.reads);
  if (o.offline) {
    add_field(fx, "expires", "hidden").value(format_datetime(o.offline->expires));
    if (!o.offline->match_resource.empty())
      add_field(fx, "match_resource", "hidden").value(o.offline->match_resource);
  }
}

}  // namespace

// ---- Reading a message --------------------------------------------------------------------

Result<Incoming> read_form(const xml::Element& stanza, Wrapper w, std::string_view type,
                           Rejection& rej) {
  std::string_view wrapper_name = w == Wrapper::feature ? "feature" : "init";
  Incoming in;
  in.wrapper =
      stanza.child(wrapper_name, w == Wrapper::feature ? xml::kNsFeatureNeg : xml::kNsInit);
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

Result<Incoming> open_message(const xml::Element& stanza, Wrapper w, std::string_view type,
                              bool accept, ByteView n, std::string_view what, Rejection& rej) {
  ES_ASSIGN(Incoming in, read_form(stanza, w, type, rej));
  if (accept)
    ES_TRY(check_accept(in.form, rej));
  // With not-acceptable (a response), a failure names the field (formats §10).
  bool name = rej.condition == "not-acceptable";
  auto echo = b64_field(in.form, "nonce");
  if (!echo || !std::equal(echo->begin(), echo->end(), n.begin(), n.end())) {
    if (name)
      rej.fields = {"nonce"};
    if (!echo)
      return echo.error();
    return fail(Errc::auth_failed, std::string(what) + " does not echo our nonce");
  }
  return in;
}

Result<Bytes> b64_field(const xml::Form& f, std::string_view var) {
  ES_ASSIGN(std::string v, f.value(var));
  auto b = unbase64(v);
  if (!b)
    return fail(Errc::malformed, "field '" + std::string(var) + "': " + b.error().detail);
  return std::move(b).value();
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

xml::Element new_form(std::string_view type) {
  xml::Element x("x", std::string(xml::kNsData));
  x.set_attr("type", type);
  return x;
}

void add_credentials_field(xml::Element& fx, std::string_view type, bool gajim,
                           const std::vector<CredentialKind>& reads) {
  if (gajim || reads.empty())
    return;
  auto cf = xml::add_field(fx, "credentials", type);
  for (auto kind : reads)
    cf.value(credential_kind_name(kind));
}

KeyUnused key_unused(const Signer& signer, const std::vector<std::string>& algs) {
  KeyUnused u{{}, signer.public_key().type()};
  for (const auto& v : algs)
    if (auto a = sign_alg_from_uri(v))
      if (!contains(u.offered, sign_alg_key_type(*a)))
        u.offered.push_back(sign_alg_key_type(*a));
  return u;
}

// ---- Message 1 -----------------------------------------------------------------------------

void fixed_identification(Dialect d, std::vector<PubkeyMode>& init, std::vector<PubkeyMode>& resp,
                          std::vector<std::string>& sign) {
  if (d == Dialect::gajim) {
    init = {PubkeyMode::none, PubkeyMode::key, PubkeyMode::hash};
    resp = {PubkeyMode::none, PubkeyMode::key};
    sign = {std::string(kRsaSha256)};
  } else if (d == Dialect::xep0217) {
    init = resp = {PubkeyMode::none};
    sign.clear();
  }
}

xml::Element offer_form(const Offer& o) {
  xml::Element fx = new_form("form");
  if (o.dialect == Dialect::gajim)
    gajim_offer(fx, o);
  else
    spec_offer(fx, o);
  return fx;
}

// ---- Message 2: the responder's choice ------------------------------------------------------

namespace {

// Chooser picks, for each field of an offer, the first option that passes a test, and collects
// the fields that had none.
struct Chooser {
  const xml::Form& f;
  std::vector<std::string> bad;
  bool malformed = false;  // a field is missing or not spelled as formats §1.3 says

  template <class Ok>
  std::string pick(std::string_view var, Ok&& ok) {
    for (const auto& c : f.choices(var))
      if (ok(c))
        return c;
    bad.push_back(std::string(var));
    return {};
  }
};

// choose_logging picks the logging value; A9: 'otr' (0200/0217) is accepted as a synonym of
// 'logging', and true ≙ mustnot there; in XEP-0116's own vocabulary false ≙ mustnot.
void choose_logging(Chooser& ch, const Policy& pol, Choice& c) {
  c.logging_var = ch.f.field("logging") || !ch.f.field("otr") ? "logging" : "otr";
  auto offered = ch.f.choices(c.logging_var);
  for (const auto& mine : pol.logging)
    for (const auto& o : offered) {
      std::string norm_o = o;
      if (c.logging_var == "otr")
        norm_o = o == "true" || o == "1" ? "mustnot" : "may";
      else if (o == "false" || o == "0")
        norm_o = "mustnot";
      else if (o == "true" || o == "1")
        norm_o = "may";
      if (norm_o == mine) {
        c.logging = o;
        return;
      }
    }
  ch.bad.push_back(c.logging_var);
}

void choose_algorithms(Chooser& ch, const Policy& pol, Choice& c) {
  c.disclosure = ch.pick("disclosure", [](auto& v) { return v == "never"; });
  c.security = ch.pick("security", [](auto& v) { return v == "e2e"; });
  c.modp = ch.pick("modp", [&](const std::string& v) {
    Result<uint64_t> n = parse_decimal(v, 1u << 16);
    if (!n)
      return false;
    int id = static_cast<int>(*n);
    const DhGroup* g = dh_group(id);
    if (!g || (g->weak && !pol.allow_weak_groups))
      return false;
    return contains(pol.groups, id) || (pol.compat == Compat::gajim);
  });
  c.crypt = ch.pick("crypt_algs", [&](const std::string& v) {
    auto a = cipher_from_name(v);
    return a && contains(pol.ciphers, *a);
  });
  c.hash = ch.pick("hash_algs", [&](const std::string& v) {
    auto h = hash_from_name(v);
    return h && contains(pol.hashes, *h);
  });
  c.compress = ch.pick("compress", [](auto& v) { return v == "none"; });
  for (const auto& s : ch.f.choices("stanzas"))
    if (contains(pol.stanzas, s) && !contains(c.stanzas, s))
      c.stanzas.push_back(s);
  if (c.stanzas.empty())
    ch.bad.push_back("stanzas");
}

// choose_identification picks what we require of Alice ('hash' only if we know a key of hers)
// and what we give ('key'/'hash' need our Signer); never 'none' in a three-message negotiation.
void choose_identification(Chooser& ch, const PartyConfig& cfg, std::string_view peer_jid,
                           bool three, Choice& c) {
  bool know_peer = cfg.verifier && !cfg.verifier->known_keys(bare_jid(peer_jid)).empty();
  auto pk_ok = [&](const std::vector<PubkeyMode>& mine, bool ours) {
    return [&, ours](const std::string& v) {
      auto p = pubkey_from_name(v);
      if (!p || !contains(mine, *p))
        return false;
      if (three && *p == PubkeyMode::none)
        return false;
      return ours ? (*p == PubkeyMode::none || cfg.signer != nullptr)
                  : (*p != PubkeyMode::hash || know_peer);
    };
  };
  c.init_pk = ch.pick("init_pubkey", pk_ok(cfg.policy.init_pubkey, false));
  c.resp_pk = ch.pick("resp_pubkey", pk_ok(cfg.policy.resp_pubkey, true));
}

// choose_signature picks sign_algs. One value serves both parties (formats §6): when our key
// cannot make any algorithm Alice offered (her key is of another type), we identify by the SAS
// alone if she accepts that (four-message flow), rather than fail the negotiation.
void choose_signature(Chooser& ch, const PartyConfig& cfg, bool three, Choice& c) {
  const Policy& pol = cfg.policy;
  if (!three && cfg.signer && (c.resp_pk == "key" || c.resp_pk == "hash")) {
    auto algs = ch.f.choices("sign_algs");
    bool can = std::any_of(algs.begin(), algs.end(), [&](const std::string& v) {
      auto a = sign_alg_from_uri(v);
      return a && cfg.signer->can_sign(*a);
    });
    if (!can && contains(ch.f.choices("resp_pubkey"), std::string("none")) &&
        contains(pol.resp_pubkey, PubkeyMode::none)) {
      c.resp_pk = "none";
      c.own_key_unused = key_unused(*cfg.signer, algs);
    }
  }
  if (c.init_pk == "none" && c.resp_pk == "none") {
    // Nothing is signed; Gajim's response echoes its offer anyway (R-conventions).
    if (auto sa = ch.f.choices("sign_algs"); !sa.empty() && pol.compat == Compat::gajim)
      c.sign_alg = sa.front();
  } else if (!c.init_pk.empty() && !c.resp_pk.empty()) {
    c.sign_alg = ch.pick("sign_algs", [&](const std::string& v) {
      auto a = sign_alg_from_uri(v);
      return a && (c.resp_pk == "none" || cfg.signer->can_sign(*a));
    });
  }
}

}  // namespace

Result<Choice> choose(const xml::Form& f, const PartyConfig& cfg, std::string_view peer_jid,
                      bool three, Rejection& rej, bool offline) {
  Chooser ch{f, {}};
  Choice c;
  auto accept_v = f.offered_single("accept");
  if (!offline && (!accept_v || xml::parse_bool(*accept_v) != true))
    ch.bad.push_back("accept");
  choose_logging(ch, cfg.policy, c);
  choose_algorithms(ch, cfg.policy, c);
  if (offline) {
    c.init_pk = c.resp_pk = "key";  // Alice signed her options; Bob must sign too
  } else {
    choose_identification(ch, cfg, peer_jid, three, c);
  }
  // A11: any offered 1.x is version 1.0 of this text.
  c.ver = ch.pick("ver", [](const std::string& v) { return v.rfind("1.", 0) == 0; });
  if (!three)
    c.sas_alg = ch.pick("sas_algs", [](auto& v) { return v == "sas28x5"; });
  c.rekey = cfg.policy.rekey_freq;
  if (auto rf = f.offered_single("rekey_freq")) {
    if (auto v = parse_rekey_freq(*rf)) {
      c.rekey = std::max(c.rekey, *v);
    } else {
      ch.bad.push_back("rekey_freq");
      ch.malformed = true;
    }
  } else {
    ch.bad.push_back("rekey_freq");
  }
  choose_signature(ch, cfg, three, c);
  if (ch.bad.empty())
    return c;
  // formats §10: the error names the fields either way; the class tells a missing or misspelled
  // field (malformed) from one whose options we cannot accept (a policy refusal).
  for (const auto& v : ch.bad)
    ch.malformed |= f.field(v) == nullptr;
  rej = {"not-acceptable", ch.bad};
  if (ch.malformed)
    return fail(Errc::malformed, "missing or malformed field among: " + join(ch.bad));
  std::string why;
  if (cfg.signer && contains(ch.bad, std::string("sign_algs")))
    why = " (" + key_unused(*cfg.signer, f.choices("sign_algs")).describe() + ")";
  return fail(Errc::not_acceptable, "no acceptable option for: " + join(ch.bad) + why);
}

namespace {

// gajim_response writes message 2 in Gajim's own order (R-conventions), byte for byte.
void gajim_response(xml::Element& fx, const Choice& c, const Response& r) {
  std::string_view t = "text-single";
  auto add = [&](std::string_view var, std::string_view v) { xml::add_field(fx, var, t).value(v); };
  add("FORM_TYPE", kFormType);
  add("accept", "true");
  add("logging", c.logging);
  add("disclosure", c.disclosure);
  add("security", c.security);
  add("crypt_algs", c.crypt);
  add("hash_algs", c.hash);
  add("compress", c.compress);
  auto sf = xml::add_field(fx, "stanzas", t);
  for (const auto& s : c.stanzas)
    sf.value(s);
  add("init_pubkey", c.init_pk);
  add("resp_pubkey", c.resp_pk);
  add("ver", c.ver);
  add("rekey_freq", std::to_string(c.rekey));
  add("sas_algs", c.sas_alg);
  if (!c.sign_alg.empty())
    add("sign_algs", c.sign_alg);
  add("modp", c.modp);
  add("my_nonce", base64(r.n_b));
  add("dhkeys", base64(r.d));
  add("counter", base64(r.c_a));
  add("nonce", base64(r.n_a));
}

// spec_response writes message 2 as formats §6 says: each answer in the position of the offer's
// field (XEP-0116's example of message 2 answers its offer that way), my_nonce with Bob's nonce,
// dhhashes/dhkeys with dhkeys; unknown offered fields are not answered. Then nonce and counter.
void spec_response(xml::Element& fx, const Choice& c, const Response& r) {
  std::string dh_var = r.three ? "dhkeys" : "dhhashes";
  // An offline request answers neither 'accept' nor the pubkey fields (XEP-0187 §3.3).
  auto online = [&](std::string v) {
    return r.offline ? std::vector<std::string>{} : std::vector<std::string>{std::move(v)};
  };
  std::vector<std::pair<std::string, std::vector<std::string>>> answers = {
      {"FORM_TYPE", {std::string(kFormType)}},
      {"accept", online("1")},
      {c.logging_var, {c.logging}},
      {"disclosure", {c.disclosure}},
      {"security", {c.security}},
      {"modp", {c.modp}},
      {"crypt_algs", {c.crypt}},
      {"hash_algs", {c.hash}},
      {"compress", {c.compress}},
      {"stanzas", c.stanzas},
      {"init_pubkey", online(c.init_pk)},
      {"resp_pubkey", online(c.resp_pk)},
      {"ver", {c.ver}},
      {"rekey_freq", {std::to_string(c.rekey)}},
      {"my_nonce", {base64(r.n_b)}},
      {dh_var, {base64(r.d)}}};
  if (!r.three)
    answers.push_back({"sas_algs", {c.sas_alg}});
  if (!c.sign_alg.empty())
    answers.push_back({"sign_algs", {c.sign_alg}});
  auto answer = [&](std::string_view var) {
    for (auto& [name, values] : answers)
      if (name == var && !values.empty()) {
        auto af = xml::add_field(fx, name == dh_var ? std::string_view("dhkeys") : name);
        for (const auto& v : values)
          af.value(v);
        values.clear();  // each field once, even if the offer repeats it
      }
  };
  for (const auto& field : r.offer_x->children)
    if (field.is("field", xml::kNsData))
      answer(field.attr_or("var"));
  for (const auto& [name, values] : answers)  // not offered: refused above, but keep all
    if (!values.empty())
      answer(name);
  xml::add_field(fx, "nonce").value(base64(r.n_a));
  xml::add_field(fx, "counter").value(base64(r.c_a));
}

}  // namespace

xml::Element response_form(const Choice& c, const Response& r) {
  xml::Element fx = new_form("submit");
  if (r.gajim)
    gajim_response(fx, c, r);
  else
    spec_response(fx, c, r);
  return fx;
}

// ---- Message 2 at the initiator: every choice must be one we offered -----------------------

Result<size_t> ProfileV1::check_algorithms(const xml::Form& f, Rejection& rej) {
  ES_ASSIGN(std::string modp, f.value("modp"));
  auto it = std::find_if(offered_groups.begin(), offered_groups.end(),
                         [&](int id) { return std::to_string(id) == modp; });
  if (it == offered_groups.end())
    return refuse(rej, {"modp"}, "the peer chose a group we did not offer");
  suite.modp = *it;
  ES_ASSIGN(std::string crypt, f.value("crypt_algs"));
  auto c = cipher_from_name(crypt);
  ES_ASSIGN(std::string hash_s, f.value("hash_algs"));
  auto h = hash_from_name(hash_s);
  const Policy& pol = cfg().policy;
  bool fixed = gajim() || pol.xep0217;
  if (!c || !h ||
      (fixed ? (*c != CipherAlg::aes128_ctr || *h != HashAlg::sha256)
             : (!contains(pol.ciphers, *c) || !contains(pol.hashes, *h))))
    return refuse(rej, {"crypt_algs", "hash_algs"},
                  "the peer chose a cipher or hash we did not offer");
  suite.cipher = *c;
  suite.hash = *h;
  return static_cast<size_t>(it - offered_groups.begin());
}

Status ProfileV1::check_identification(const xml::Form& f, Rejection& rej) {
  ES_ASSIGN(std::string ip, f.value("init_pubkey"));
  ES_ASSIGN(std::string rp, f.value("resp_pubkey"));
  auto ipm = pubkey_from_name(ip), rpm = pubkey_from_name(rp);
  if (!ipm || !rpm || !contains(offered_init, *ipm) || !contains(offered_resp, *rpm) ||
      (*ipm != PubkeyMode::none && !cfg().signer))
    return refuse(rej, {"init_pubkey", "resp_pubkey"},
                  "the peer chose an identification we did not offer");
  suite.init_pubkey = *ipm;
  suite.resp_pubkey = *rpm;
  if (*ipm != PubkeyMode::none || *rpm != PubkeyMode::none) {
    ES_ASSIGN(suite.sign_alg, f.value("sign_algs"));
    if (!sign_alg_from_uri(suite.sign_alg) || !contains(offered_sign, suite.sign_alg))
      return refuse(rej, {"sign_algs"}, "the peer chose a signature algorithm we did not offer");
  }
  peer_reads = f.choices("credentials");
  // Message 2 carries Bob's identity in the three-message flow, and only there.
  bool has_id = f.field("identity") || f.field("mac");
  if (has_id != three())
    return fail(Errc::malformed, three() ? "the response lacks the responder's identity"
                                         : "identity in a four-message response");
  return {};
}

Status ProfileV1::check_stanzas_rekey(const xml::Form& f, Rejection& rej) {
  const Policy& pol = cfg().policy;
  const xml::Field* sf = f.field("stanzas");
  if (!sf || sf->values.empty())
    return fail(Errc::malformed, "response without stanzas");
  for (const auto& s : sf->values)
    if (!contains(pol.stanzas, s))
      return refuse(rej, {"stanzas"}, "the peer chose stanza kinds we did not offer");
  suite.stanzas = sf->values;
  rej.fields = {"rekey_freq"};  // for each failure below
  auto rf = f.offered_single("rekey_freq");
  if (!rf)
    return fail(Errc::malformed, "response without rekey_freq");
  auto v = parse_rekey_freq(*rf);
  if (!v)
    return fail(Errc::malformed, "bad rekey_freq '" + rf->substr(0, 24) + "'");
  suite.rekey_freq = *v;
  uint32_t offered_rekey = gajim() || pol.xep0217 ? 0xffffffffU : pol.rekey_freq;
  if (suite.rekey_freq < offered_rekey)
    return fail(Errc::not_acceptable, "the peer chose a rekey_freq below the one we offered");
  rej.fields.clear();
  return {};
}

Status ProfileV1::check_sas_ver_answers(const xml::Form& f, Rejection& rej) {
  if (three()) {
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
      {"logging", cfg().policy.logging},
      {"disclosure", {"never"}},
      {"security", {"e2e"}},
      {"compress", {"none"}}};
  for (const auto& [var, ours] : fixed_answers) {
    if (!f.field(var))
      continue;
    auto v = f.offered_single(var);
    if (!v || !contains(ours, *v))
      return refuse(rej, {std::string(var)},
                    "the peer chose a " + std::string(var) + " value we did not offer");
    if (var == "logging")
      suite.logging = *v;
  }
  return {};
}

Result<size_t> ProfileV1::check_choice(const xml::Form& f, Rejection& rej) {
  ES_ASSIGN(size_t group, check_algorithms(f, rej));
  ES_TRY(check_identification(f, rej));
  ES_TRY(check_stanzas_rekey(f, rej));
  ES_TRY(check_sas_ver_answers(f, rej));
  return group;
}

}  // namespace esession::v1
