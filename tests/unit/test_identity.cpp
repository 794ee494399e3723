// Public-key identification: the three-message flow (SIGMA-I), 'key' and 'hash' modes in both
// flows, RSA and DSA, key pinning, identity protection, and the XEP-0217 renegotiation that
// stands in for re-keying there.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "helpers.hpp"

using namespace esession;
using namespace esession::test;

namespace {

const PrivateKey& rsa_key(int which) {
  static std::vector<PrivateKey> keys = [] {
    std::vector<PrivateKey> v;
    for (int i = 0; i < 3; ++i)
      v.push_back(PrivateKey::generate_rsa(2048).value());
    return v;
  }();
  return keys.at(static_cast<size_t>(which));
}

const PrivateKey& ed_key(int which) {
  static std::vector<PrivateKey> keys = [] {
    std::vector<PrivateKey> v;
    for (int i = 0; i < 2; ++i)
      v.push_back(PrivateKey::generate_ed25519().value());
    return v;
  }();
  return keys.at(static_cast<size_t>(which));
}

const PrivateKey& dsa_key() {
  static PrivateKey k = PrivateKey::generate_dsa(2048, 256).value();
  return k;
}

constexpr const char* kAlice = "alice@example.org/pda";
constexpr const char* kBob = "bob@example.com/laptop";

// keyed_parties returns Alice's and Bob's configurations for |flow|, each identifying by key
// only, with the given signers and verifiers.
std::pair<PartyConfig, PartyConfig> keyed_parties(Flow flow, const Signer& alice, const Signer& bob,
                                                  const Verifier& av, const Verifier& bv) {
  PartyConfig a = party(kAlice), b = party(kBob);
  a.policy.flow = flow;
  a.signer = &alice;
  b.signer = &bob;
  a.verifier = &av;
  b.verifier = &bv;
  a.policy.init_pubkey = b.policy.init_pubkey = {PubkeyMode::key};
  a.policy.resp_pubkey = b.policy.resp_pubkey = {PubkeyMode::key};
  return {std::move(a), std::move(b)};
}

struct Identities {
  KeySigner alice_signer{rsa_key(0)};
  KeySigner bob_signer{rsa_key(1)};
  KnownKeys alice_knows, bob_knows;
};

// keyed returns configurations for Alice and Bob with signing keys and verifiers.
std::pair<PartyConfig, PartyConfig> keyed(Identities& ids, Flow flow, PubkeyMode init,
                                          PubkeyMode resp) {
  auto [a, b] =
      keyed_parties(flow, ids.alice_signer, ids.bob_signer, ids.alice_knows, ids.bob_knows);
  a.policy.init_pubkey = b.policy.init_pubkey = {init};
  a.policy.resp_pubkey = b.policy.resp_pubkey = {resp};
  return {a, b};
}

// encodings lists every way a key may show up on the wire: its components in Base64 and hex,
// its DER and PEM, and its fingerprints.
std::vector<std::string> encodings(const PublicKey& k) {
  std::vector<std::string> out;
  const char* params[] = {OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_FFC_P, OSSL_PKEY_PARAM_PUB_KEY};
  for (const char* p : params) {
    BigNum v = k.component(p);
    if (v.bits() < 64)
      continue;
    Bytes b = v.mpi();
    // Any 12-byte window of the value is enough to give it away.
    Bytes mid(b.begin() + static_cast<long>(b.size() / 2),
              b.begin() + static_cast<long>(b.size() / 2 + 12));
    out.push_back(base64(b).substr(8, 40));
    out.push_back(hex(mid));
    out.push_back(base64(mid).substr(0, 12));
  }
  out.push_back(base64(k.der()).substr(40, 40));
  for (auto h : {HashAlg::sha256, HashAlg::sha512}) {
    out.push_back(base64(key_fingerprint(h, k)));
    out.push_back(hex(key_fingerprint(h, k)));
    out.push_back(hex(digest(HashAlg::sha256, k.der())));
  }
  return out;
}

bool appears(const std::vector<std::string>& wire, const PublicKey& k) {
  for (const auto& enc : encodings(k))
    for (const auto& w : wire)
      if (w.find(enc) != std::string::npos)
        return true;
  return false;
}

}  // namespace

TEST_CASE("signature keys: RSA and DSA sign and verify; bad keys and signatures are refused") {
  Bytes msg(32, 7);
  for (const PrivateKey* k : {&rsa_key(0), &dsa_key(), &ed_key(0)}) {
    SignAlg alg = k->type() == KeyType::rsa   ? SignAlg::rsa_sha256
                  : k->type() == KeyType::dsa ? SignAlg::dsa_sha256
                                              : SignAlg::ed25519;
    auto sig = k->sign(alg, msg);
    REQUIRE(sig);
    CHECK(k->public_key().verify(alg, msg, *sig));
    Bytes bad = *sig;
    bad[bad.size() / 2] ^= 1;
    CHECK(k->public_key().verify(alg, msg, bad).error().code == Errc::auth_failed);
    Bytes short_sig(sig->begin(), sig->end() - 1);
    CHECK_FALSE(k->public_key().verify(alg, msg, short_sig));
    Bytes other = msg;
    other[0] ^= 1;
    CHECK_FALSE(k->public_key().verify(alg, other, *sig));
    // Round trip through <KeyValue/> and PEM.
    auto kv = parse_key_value(key_value(k->public_key()));
    REQUIRE(kv);
    CHECK(*kv == k->public_key());
    auto pem = PublicKey::from_pem(k->public_key().pem());
    REQUIRE(pem);
    CHECK(*pem == k->public_key());
    auto priv = PrivateKey::from_pem(string_of(view(k->pem())));
    REQUIRE(priv);
    CHECK(priv->public_key() == k->public_key());
  }
  // Cross-type use fails.
  CHECK_FALSE(rsa_key(0).sign(SignAlg::dsa_sha256, msg));
  CHECK_FALSE(dsa_key().public_key().verify(SignAlg::rsa_sha256, msg, Bytes(256, 1)));
  // Small RSA moduli and broken components are refused.
  auto small = PrivateKey::generate_rsa(1024);
  REQUIRE_FALSE(small);
  CHECK(small.error().code == Errc::not_acceptable);
  const PublicKey& rk = rsa_key(0).public_key();
  BigNum n = rk.component(OSSL_PKEY_PARAM_RSA_N);
  CHECK_FALSE(PublicKey::rsa(n, BigNum::from_word(2)));  // even exponent
  CHECK_FALSE(PublicKey::rsa(n, BigNum::from_word(1)));
  const PublicKey& dk = dsa_key().public_key();
  BigNum p = dk.component(OSSL_PKEY_PARAM_FFC_P), q = dk.component(OSSL_PKEY_PARAM_FFC_Q),
         g = dk.component(OSSL_PKEY_PARAM_FFC_G), y = dk.component(OSSL_PKEY_PARAM_PUB_KEY);
  CHECK(PublicKey::dsa(p, q, g, y));
  CHECK_FALSE(PublicKey::dsa(p, q, g, BigNum::from_word(2)));  // y outside the subgroup
  CHECK_FALSE(PublicKey::dsa(p, q, BigNum::from_word(1), y));
  // URIs: every known spelling maps; unknown ones do not.
  CHECK(sign_alg_from_uri("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256") ==
        SignAlg::rsa_sha256);
  CHECK(sign_alg_from_uri("dsa") == SignAlg::dsa_sha256);
  CHECK_FALSE(sign_alg_from_uri("http://www.w3.org/2000/09/xmldsig#rsa-sha1"));
}

TEST_CASE("identity blocks: signature, normalization and fingerprint checks") {
  KeySigner signer(rsa_key(0));
  Bytes mac(32, 3);
  MacFn mac_for = [&](std::string_view pub) { return hmac(HashAlg::sha256, view(mac), view(pub)); };
  SecretBytes m = mac_for(normalized_key_value(signer.public_key()));
  auto plain =
      identity_plaintext(PubkeyMode::key, HashAlg::sha256, SignAlg::rsa_sha256, signer, view(m));
  REQUIRE(plain);
  KnownKeys none;
  auto ok = check_identity(PubkeyMode::key, HashAlg::sha256, SignAlg::rsa_sha256, view(*plain),
                           mac_for, &none, "alice@example.org");
  REQUIRE(ok);
  CHECK(*ok->key == signer.public_key());
  // A space anywhere makes it non-normalized; a changed mac makes the signature fail.
  std::string spaced = *plain;
  spaced.insert(spaced.find("<SignatureValue>"), " ");
  CHECK(check_identity(PubkeyMode::key, HashAlg::sha256, SignAlg::rsa_sha256, view(spaced), mac_for,
                       &none, "alice@example.org")
            .error()
            .code == Errc::malformed);
  MacFn other = [&](std::string_view pub) { return hmac(HashAlg::sha256, view(pub), view(mac)); };
  CHECK(check_identity(PubkeyMode::key, HashAlg::sha256, SignAlg::rsa_sha256, view(*plain), other,
                       &none, "alice@example.org")
            .error()
            .code == Errc::auth_failed);
  // A pinned different key is refused after a valid signature.
  KnownKeys pinned;
  pinned.add("alice@example.org", rsa_key(2).public_key());
  CHECK(check_identity(PubkeyMode::key, HashAlg::sha256, SignAlg::rsa_sha256, view(*plain), mac_for,
                       &pinned, "alice@example.org")
            .error()
            .code == Errc::auth_failed);
  // Hash mode needs a known key with that fingerprint.
  auto hplain =
      identity_plaintext(PubkeyMode::hash, HashAlg::sha256, SignAlg::rsa_sha256, signer, view(m));
  REQUIRE(hplain);
  CHECK(hplain->rfind("<fingerprint>", 0) == 0);
  CHECK_FALSE(check_identity(PubkeyMode::hash, HashAlg::sha256, SignAlg::rsa_sha256, view(*hplain),
                             mac_for, &pinned, "alice@example.org"));
  KnownKeys knows;
  knows.add("alice@example.org", rsa_key(2).public_key());
  knows.add("alice@example.org", signer.public_key());
  auto h = check_identity(PubkeyMode::hash, HashAlg::sha256, SignAlg::rsa_sha256, view(*hplain),
                          mac_for, &knows, "alice@example.org");
  REQUIRE(h);
  CHECK(*h->key == signer.public_key());
}

TEST_CASE("3-message session (SIGMA-I) with RSA keys: 100+ stanzas each way, re-keys, termination",
          "[wire]") {
  SystemRandom rng;
  Identities ids;
  auto [a, b] = keyed(ids, Flow::three_message, PubkeyMode::key, PubkeyMode::key);
  std::vector<std::string> wire;
  auto p = negotiate(a, b, rng, nullptr, &wire);
  REQUIRE(p);
  REQUIRE(wire.size() == 3);
  CHECK(p->alice.flow == Flow::three_message);
  CHECK(p->alice.sas.empty());
  CHECK(p->alice.new_retained_secret.empty());
  REQUIRE(p->alice.peer_key);
  REQUIRE(p->bob.peer_key);
  CHECK(*p->alice.peer_key == ids.bob_signer.public_key());
  CHECK(*p->bob.peer_key == ids.alice_signer.public_key());
  CHECK(p->alice.peer_mode == PubkeyMode::key);
  // SIGMA-I protects the initiator's identity: none of Alice's key is on the wire.
  CHECK_FALSE(appears(wire, ids.alice_signer.public_key()));
  CHECK_FALSE(appears(wire, ids.bob_signer.public_key()));  // encrypted too, though only passively
  CHECK(wire[0].find("dhkeys") != std::string::npos);
  CHECK(wire[0].find("sas_algs") == std::string::npos);
  exchange(*p, 110, rng);
  terminate_both(*p, rng);
}

TEST_CASE("3-message flow with 'hash' identification, and a fingerprint we cannot resolve") {
  SystemRandom rng;
  Identities ids;
  ids.alice_knows.add("bob@example.com", ids.bob_signer.public_key());
  ids.bob_knows.add("alice@example.org", ids.alice_signer.public_key());
  auto [a, b] = keyed(ids, Flow::three_message, PubkeyMode::hash, PubkeyMode::hash);
  auto p = negotiate(a, b, rng);
  REQUIRE(p);
  CHECK(p->alice.peer_mode == PubkeyMode::hash);
  CHECK(p->bob.peer_mode == PubkeyMode::hash);
  CHECK(*p->bob.peer_key == ids.alice_signer.public_key());
  exchange(*p, 10, rng);

  // Alice believes she knows Bob's key, but Bob signs with another: no key matches his
  // fingerprint and Alice refuses (she may retry asking for the key itself).
  Identities wrong;
  wrong.alice_knows.add("bob@example.com", rsa_key(2).public_key());
  wrong.bob_knows.add("alice@example.org", wrong.alice_signer.public_key());
  auto [c, d] = keyed(wrong, Flow::three_message, PubkeyMode::hash, PubkeyMode::hash);
  auto bad = negotiate(c, d, rng);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::auth_failed);
  // Asking for the key itself works, and then the pinned key is what refuses it.
  c.policy.resp_pubkey = d.policy.resp_pubkey = {PubkeyMode::key};
  bad = negotiate(c, d, rng);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().detail.find("other than the one we know") != std::string::npos);
}

TEST_CASE("3-message flow: a first stanza rides on message 3, and terminate=1 ends it at once",
          "[wire]") {
  SystemRandom rng;
  Identities ids;
  auto [a, b] = keyed(ids, Flow::three_message, PubkeyMode::key, PubkeyMode::key);
  xml::Element first("message", std::string(xml::kNsClient));
  first.set_attr("to", kBob);
  first.add_text_child("body", "one stanza, forward secret");
  a.content = first;
  std::vector<Received> content;
  auto p = negotiate(a, b, rng, &content);
  REQUIRE(p);
  REQUIRE(content.size() == 1);
  CHECK(content[0].stanza.child("body", xml::kNsClient)->text_content() ==
        "one stanza, forward secret");
  exchange(*p, 10, rng);  // the session goes on after it

  a.terminate_after_content = true;
  content.clear();
  auto once = negotiate(a, b, rng, &content);
  REQUIRE(once);
  REQUIRE(content.size() == 1);
  CHECK(once->alice.terminated);
  CHECK(once->bob.terminated);
  CHECK_FALSE(once->alice.session->active());
  CHECK_FALSE(once->bob.session->can_receive());

  // terminate=1 needs the three-message flow and content.
  a.content.reset();
  CHECK(Negotiation::start(a, kBob, rng).error().code == Errc::not_acceptable);
}

TEST_CASE("4-message flow with key identification: RSA initiator, DSA responder", "[wire]") {
  SystemRandom rng;
  Identities ids;
  KeySigner bob_dsa(dsa_key());
  auto [a, b] = keyed(ids, Flow::four_message, PubkeyMode::key, PubkeyMode::key);
  b.signer = &bob_dsa;
  // One algorithm serves both parties, so a DSA responder and an RSA initiator who both sign
  // cannot agree: the responder names sign_algs.
  std::optional<xml::Element> reply;
  auto s = Negotiation::start(a, kBob, rng);
  REQUIRE(s);
  auto r = Negotiation::respond(b, s->second.send.at(0), rng, kAlice, &reply);
  REQUIRE_FALSE(r);
  REQUIRE(reply);
  CHECK(xml::serialize(*reply).find("var=\"sign_algs\"") != std::string::npos);

  // Alice not identifying by key (SAS instead), Bob by his DSA key.
  a.policy.init_pubkey = b.policy.init_pubkey = {PubkeyMode::none};
  std::vector<std::string> wire;
  auto p = negotiate(a, b, rng, nullptr, &wire);
  REQUIRE(p);
  CHECK(p->alice.sas == p->bob.sas);
  REQUIRE(p->alice.peer_key);
  CHECK(*p->alice.peer_key == bob_dsa.public_key());
  CHECK_FALSE(p->bob.peer_key);
  CHECK(p->alice.session->suite().sign_alg == "http://www.w3.org/2000/09/xmldsig#dsa-sha256");
  CHECK_FALSE(appears(wire, bob_dsa.public_key()));

  // Both RSA, both by key: neither key appears in clear in any of the four messages.
  auto [c, d] = keyed(ids, Flow::four_message, PubkeyMode::key, PubkeyMode::key);
  wire.clear();
  auto q = negotiate(c, d, rng, nullptr, &wire);
  REQUIRE(q);
  CHECK(*q->alice.peer_key == ids.bob_signer.public_key());
  CHECK(*q->bob.peer_key == ids.alice_signer.public_key());
  CHECK_FALSE(appears(wire, ids.alice_signer.public_key()));
  CHECK_FALSE(appears(wire, ids.bob_signer.public_key()));
  exchange(*q, 100, rng);
  terminate_both(*q, rng);

  // A responder holding a pinned key for Alice refuses a different one.
  Identities pinned;
  pinned.bob_knows.add("alice@example.org", rsa_key(2).public_key());
  auto [e, f] = keyed(pinned, Flow::four_message, PubkeyMode::key, PubkeyMode::none);
  auto refused = negotiate(e, f, rng);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == Errc::auth_failed);
}

TEST_CASE("3-message negotiation: one flipped bit in any field of any message fails it") {
  SystemRandom rng;
  Identities ids;
  auto [a, b] = keyed(ids, Flow::three_message, PubkeyMode::key, PubkeyMode::key);
  auto flip_field = [](xml::Element msg, const std::string& var) {
    xml::Element* x = msg.child("feature", xml::kNsFeatureNeg)->child("x", xml::kNsData);
    for (auto& f : x->children) {
      if (f.attr_or("var") != var)
        continue;
      xml::Element* v = f.child("value", xml::kNsData);
      if (!v)
        if (xml::Element* o = f.child("option", xml::kNsData))
          v = o->child("value", xml::kNsData);
      if (!v)
        continue;
      std::string t = v->text_content();
      auto dec = unbase64(t);
      if (dec && dec->size() >= 8) {
        (*dec)[dec->size() / 2] ^= 1;
        t = base64(*dec);
      } else {
        t.back() = static_cast<char>(t.back() ^ 1);
      }
      v->children = {xml::Element::text_node(t)};
      break;
    }
    return msg;
  };
  auto form_vars = [](const xml::Element& msg) {
    std::vector<std::string> out;
    for (const auto* f :
         msg.child("feature", xml::kNsFeatureNeg)->child("x", xml::kNsData)->element_children())
      out.push_back(f->attr_or("var"));
    return out;
  };
  // A clean run, to collect the messages' fields.
  auto s = Negotiation::start(a, kBob, rng);
  REQUIRE(s);
  auto r = Negotiation::respond(b, s->second.send.at(0), rng, kAlice);
  REQUIRE(r);
  auto m3 = s->first.receive(r->second.send.at(0), rng);
  REQUIRE(m3);
  int cases = 0;
  for (int k = 1; k <= 3; ++k) {
    const xml::Element& sample = k == 1   ? s->second.send.at(0)
                                 : k == 2 ? r->second.send.at(0)
                                          : m3->send.at(0);
    for (const auto& var : form_vars(sample)) {
      if (var == "FORM_TYPE" && k != 1)
        continue;  // a changed FORM_TYPE is simply not a negotiation (tested elsewhere)
      ++cases;
      auto t = [&](int n, xml::Element m) { return n == k ? flip_field(std::move(m), var) : m; };
      auto s2 = Negotiation::start(a, kBob, rng);
      REQUIRE(s2);
      auto r2 = Negotiation::respond(b, t(1, s2->second.send.at(0)), rng, kAlice);
      if (!r2)
        continue;
      auto m32 = s2->first.receive(t(2, r2->second.send.at(0)), rng);
      if (!m32) {
        CHECK(s2->first.failed());
        continue;
      }
      auto done = r2->first.receive(t(3, m32->send.at(0)), rng);
      INFO("message " << k << " field " << var);
      // Only a change that cannot matter may pass; then both sides still agree on the keys.
      if (done) {
        auto enc =
            m32->established->session->encrypt(make_stanza(0, kBob, s2->first.thread()), rng);
        REQUIRE(enc);
        bool agree = static_cast<bool>(done->established->session->decrypt(*enc));
        CHECK_FALSE(agree);  // every field is covered by mac_A/mac_B or the DH values
      } else {
        CHECK(r2->first.failed());
      }
    }
  }
  CHECK(cases >= 30);
}

TEST_CASE("XEP-0217 sessions 're-key' by renegotiating every 10 stanzas (A31), from either side") {
  SystemRandom rng;
  PartyConfig alice = party(kAlice), bob = party(kBob);
  alice.policy.xep0217 = bob.policy.xep0217 = true;
  int sent = 0, renegotiations = 0;
  bool alice_starts = true;
  std::optional<Pair> current;
  while (sent < 100) {
    // Either side starts the next session; each carries the retained secret of the last.
    PartyConfig& ini = alice_starts ? alice : bob;
    PartyConfig& res = alice_starts ? bob : alice;
    auto p = negotiate(ini, res, rng);
    REQUIRE(p);
    CHECK(p->alice.session->suite().rekey_freq == 4294967295u);
    if (current) {
      REQUIRE(p->alice.srs_index);  // continuity: the previous session's secret matched
      REQUIRE(p->bob.srs_index);
      terminate_both(*current, rng);
    }
    ini.retained = {p->alice.new_retained_secret};
    res.retained = {p->bob.new_retained_secret};
    // Ten stanzas each way, message, presence and iq; XEP-0217 itself refuses <key/>.
    CHECK(p->alice.session->rekey(rng).error().code == Errc::wrong_state);
    for (int i = 0; i < 10; ++i) {
      for (int dir = 0; dir < 2; ++dir) {
        Session& snd = dir == 0 ? *p->alice.session : *p->bob.session;
        Session& rcv = dir == 0 ? *p->bob.session : *p->alice.session;
        xml::Element st = make_stanza(sent * 2 + dir, dir == 0 ? kBob : kAlice, p->thread);
        auto enc = snd.encrypt(st, rng);
        REQUIRE(enc);
        auto dec = rcv.decrypt(*enc);
        REQUIRE(dec);
        CHECK(xml::serialize(dec->stanza) == xml::serialize(st));
      }
      ++sent;
    }
    current = std::move(p).value();
    alice_starts = !alice_starts;
    ++renegotiations;
  }
  terminate_both(*current, rng);
  CHECK(renegotiations == 10);
}

TEST_CASE("Ed25519 identification (our extension) in both flows", "[wire]") {
  SystemRandom rng;
  KeySigner alice(ed_key(0)), bob(ed_key(1));
  for (Flow flow : {Flow::three_message, Flow::four_message}) {
    KnownKeys ak, bk;
    auto [a, b] = keyed_parties(flow, alice, bob, ak, bk);
    std::vector<std::string> wire;
    auto p = negotiate(a, b, rng, nullptr, &wire);
    REQUIRE(p);
    CHECK(p->alice.session->suite().sign_alg ==
          "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed25519");
    CHECK(*p->alice.peer_key == bob.public_key());
    CHECK(*p->bob.peer_key == alice.public_key());
    for (const auto& w : wire) {
      CHECK(w.find(base64(alice.public_key().raw())) == std::string::npos);
      CHECK(w.find(base64(bob.public_key().raw())) == std::string::npos);
    }
    exchange(*p, 10, rng);
    // A responder with an RSA key cannot answer an Ed25519 signer: one algorithm serves both.
    KeySigner rsa_bob(rsa_key(1));
    b.signer = &rsa_bob;
    auto refused = negotiate(a, b, rng);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::not_acceptable);
  }
}

namespace {

// self_signed returns the DER of a minimal self-signed certificate for |key|.
Bytes self_signed(const PrivateKey& key) {
  X509* x = X509_new();
  REQUIRE(x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME* n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("t"), -1,
                             -1, 0);
  X509_set_issuer_name(x, n);
  // The public half goes in through its DER: PrivateKey does not expose its EVP_PKEY.
  Bytes spki = key.public_key().der();
  const unsigned char* p = spki.data();
  EVP_PKEY* pub = d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size()));
  REQUIRE(pub);
  X509_set_pubkey(x, pub);
  EVP_PKEY_free(pub);
  // A signature is not needed here (the negotiation only matches keys); sign with a throwaway
  // Ed25519 key so that the DER is complete.
  EVP_PKEY* signer = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  REQUIRE(X509_sign(x, signer, nullptr) > 0);
  EVP_PKEY_free(signer);
  int len = i2d_X509(x, nullptr);
  Bytes der(static_cast<size_t>(len));
  unsigned char* q = der.data();
  i2d_X509(x, &q);
  X509_free(x);
  return der;
}

// CredSigner is a KeySigner that presents a credential.
class CredSigner : public KeySigner {
 public:
  CredSigner(PrivateKey k, Credential c) : KeySigner(std::move(k)), m_cred(std::move(c)) {}
  const Credential* credential() const override { return &m_cred; }

 private:
  Credential m_cred;
};

// CountingVerifier accepts every key and counts the credentials it was shown.
class CountingVerifier : public KnownKeys {
 public:
  Status accept(std::string_view bare, const PublicKey& key,
                const Credential* cred) const override {
    if (cred)
      ++creds;
    return KnownKeys::accept(bare, key, cred);
  }
  mutable int creds = 0;
};

Credential x509_cred(const Bytes& der) {
  Credential c;
  c.kind = CredentialKind::x509;
  c.items = {der};
  return c;
}

}  // namespace

TEST_CASE("credentials (formats §7.1): sent encrypted to a peer that reads them, bound to the key",
          "[wire]") {
  SystemRandom rng;
  Bytes cert_a = self_signed(ed_key(0)), cert_b = self_signed(ed_key(1));
  CredSigner alice(ed_key(0), x509_cred(cert_a)), bob(ed_key(1), x509_cred(cert_b));
  for (Flow flow : {Flow::three_message, Flow::four_message}) {
    CountingVerifier av, bv;
    auto [a, b] = keyed_parties(flow, alice, bob, av, bv);
    std::vector<std::string> wire;
    auto p = negotiate(a, b, rng, nullptr, &wire);
    REQUIRE(p);
    REQUIRE(p->bob.peer_credential);
    REQUIRE(p->alice.peer_credential);
    CHECK(p->bob.peer_credential->items == std::vector<Bytes>{cert_a});
    CHECK(p->alice.peer_credential->items == std::vector<Bytes>{cert_b});
    CHECK(av.creds == 1);
    CHECK(bv.creds == 1);
    // Offered in the forms, never in clear.
    CHECK(wire.at(0).find("credentials") != std::string::npos);
    for (const auto& w : wire)
      for (const Bytes* c : {&cert_a, &cert_b})
        CHECK(w.find(base64(ByteView(*c).subspan(0, 48))) == std::string::npos);
    exchange(*p, 5, rng);

    // Bob reads none: Alice sends hers to nobody; Bob still sends his (she asked).
    b.reads_credentials.clear();
    p = negotiate(a, b, rng);
    REQUIRE(p);
    CHECK_FALSE(p->bob.peer_credential);
    CHECK(p->alice.peer_credential);
    // Alice reads none: no field in the offer, so Bob neither answers it nor sends his.
    a.reads_credentials.clear();
    b.reads_credentials = {CredentialKind::x509};
    wire.clear();
    p = negotiate(a, b, rng, nullptr, &wire);
    REQUIRE(p);
    CHECK_FALSE(p->alice.peer_credential);
    CHECK_FALSE(p->bob.peer_credential);
    for (const auto& w : wire)
      CHECK(w.find("credentials") == std::string::npos);

    // A certificate of another key would lend its name to this one: refused.
    CredSigner liar(ed_key(0), x509_cred(cert_b));
    a = keyed_parties(flow, liar, bob, av, bv).first;
    b.reads_credentials = {CredentialKind::x509};
    auto refused = negotiate(a, b, rng);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::auth_failed);
    CHECK(refused.error().detail.find("certificate") != std::string::npos);
  }
}

TEST_CASE("keys of different types: the four-message responder falls back to SAS only") {
  SystemRandom rng;
  KeySigner alice(ed_key(0)), bob(rsa_key(1));
  PartyConfig a = party(kAlice), b = party(kBob);
  KnownKeys ak, bk;
  a.signer = &alice;
  b.signer = &bob;
  a.verifier = &ak;
  b.verifier = &bk;
  a.policy.init_pubkey = {PubkeyMode::key};
  a.policy.resp_pubkey = {PubkeyMode::key, PubkeyMode::none};
  b.policy.init_pubkey = {PubkeyMode::key};
  b.policy.resp_pubkey = {PubkeyMode::key, PubkeyMode::none};
  auto p = negotiate(a, b, rng);
  REQUIRE(p);
  CHECK(p->bob.peer_key);
  CHECK_FALSE(p->alice.peer_key);
  CHECK(p->alice.peer_mode == PubkeyMode::none);
  CHECK_FALSE(p->alice.sas.empty());
}

namespace {

// form_vars lists the 'var' of every field of a negotiation message's form, in document order,
// without the credentials extension (formats §7.1), which XEP-0116's examples do not show.
std::vector<std::string> form_vars(const xml::Element& msg) {
  const xml::Element* w = msg.child("feature", xml::kNsFeatureNeg);
  if (!w)
    w = msg.child("init", xml::kNsInit);
  std::vector<std::string> out;
  if (!w || !w->child("x", xml::kNsData))
    return out;
  for (const auto* f : w->child("x", xml::kNsData)->element_children())
    if (f->name == "field" && f->attr_or("var") != "credentials")
      out.push_back(f->attr_or("var"));
  return out;
}

// set_field_value replaces the text of the first <value/> of field |var| in |msg|'s form.
void set_field_value(xml::Element& msg, std::string_view var, const std::string& value) {
  auto& x = *const_cast<xml::Element*>(
      msg.child("feature", xml::kNsFeatureNeg)->child("x", xml::kNsData));
  for (auto& f : x.children)
    if (f.name == "field" && f.attr_or("var") == var)
      for (auto& v : f.children)
        if (v.name == "value") {
          v.children = {xml::Element::text_node(value)};
          return;
        }
  FAIL("no field " << var);
}

}  // namespace

TEST_CASE("spec-mode negotiation fields are in the order of XEP-0116's examples", "[wire]") {
  // formats §5, §6, §8: the offer as XEP-0116 Example 3 (sign_algs after hash_algs); the
  // response answers each field in the offer's position, then nonce and counter (Example 9);
  // message 3 puts dhkeys before rshashes (Example 12).
  SystemRandom rng;
  Identities ids;
  auto [a, b] = keyed(ids, Flow::four_message, PubkeyMode::key, PubkeyMode::key);
  std::vector<std::string> wire;
  REQUIRE(negotiate(a, b, rng, nullptr, &wire));
  REQUIRE(wire.size() == 4);
  std::vector<std::string> common = {
      "FORM_TYPE",   "accept",    "logging",    "disclosure", "security", "modp",
      "crypt_algs",  "hash_algs", "sign_algs",  "compress",   "stanzas",  "init_pubkey",
      "resp_pubkey", "ver",       "rekey_freq", "my_nonce",   "sas_algs"};
  auto offer = common, response = common;
  offer.push_back("dhhashes");
  for (const char* v : {"dhkeys", "nonce", "counter"})
    response.push_back(v);
  CHECK(form_vars(xml::parse(wire[0]).value()) == offer);
  CHECK(form_vars(xml::parse(wire[1]).value()) == response);
  CHECK(form_vars(xml::parse(wire[2]).value()) ==
        std::vector<std::string>{"FORM_TYPE", "accept", "nonce", "dhkeys", "rshashes", "identity",
                                 "mac"});
  CHECK(form_vars(xml::parse(wire[3]).value()) ==
        std::vector<std::string>{"FORM_TYPE", "nonce", "srshash", "identity", "mac"});
}

TEST_CASE("the initiator's not-acceptable names the field it refuses (formats §10)", "[wire]") {
  SystemRandom rng;
  PartyConfig a = party(kAlice), b = party(kBob);
  struct Tamper {
    const char* var;
    std::string value;
  };
  for (const Tamper& t : {Tamper{"nonce", base64(Bytes(16, 7))}, Tamper{"nonce", " AAAA"},
                          Tamper{"counter", base64(Bytes(17, 1))}, Tamper{"dhkeys", "AQ=="},
                          Tamper{"my_nonce", base64(Bytes(4, 1))}, Tamper{"rekey_freq", "0"}}) {
    INFO(t.var << " = '" << t.value << "'");
    auto started = Negotiation::start(a, b.jid, rng);
    REQUIRE(started);
    xml::Element offer = started->second.send.at(0);
    offer.set_attr("from", a.jid);
    auto responded = Negotiation::respond(b, offer, rng);
    REQUIRE(responded);
    xml::Element m2 = responded->second.send.at(0);
    m2.set_attr("from", b.jid);
    set_field_value(m2, t.var, t.value);
    Negotiation& alice = started->first;
    REQUIRE_FALSE(alice.receive(m2, rng));
    REQUIRE(alice.error_reply());
    std::string reply = xml::serialize(*alice.error_reply());
    CHECK(reply.find("<not-acceptable") != std::string::npos);
    CHECK(reply.find("<field var=\"" + std::string(t.var) + "\"/>") != std::string::npos);
  }
}

namespace {

// form_of returns the parsed form of a negotiation message.
xml::Form form_of(const xml::Element& msg) {
  auto f = xml::parse_form(*msg.child("feature", xml::kNsFeatureNeg)->child("x", xml::kNsData));
  REQUIRE(f);
  return *f;
}

// set_options replaces the options of field |var| in |msg|'s form.
void set_options(xml::Element& msg, std::string_view var, std::vector<std::string> values) {
  auto& x = *const_cast<xml::Element*>(
      msg.child("feature", xml::kNsFeatureNeg)->child("x", xml::kNsData));
  for (auto& f : x.children)
    if (f.name == "field" && f.attr_or("var") == var) {
      std::erase_if(f.children, [](const xml::Element& c) { return c.name == "option"; });
      for (const auto& v : values) {
        xml::Element o("option", std::string(xml::kNsData));
        o.add_text_child("value", v);
        f.add(std::move(o));
      }
      return;
    }
  FAIL("no field " << var);
}

}  // namespace

TEST_CASE("the responder reads XEP-0116's logging vocabulary and echoes the ver it chose",
          "[wire]") {
  SystemRandom rng;
  PartyConfig a = party(kAlice), b = party(kBob);
  for (const auto& [offered, want] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"false", "true"}, "false"},
           {{"true", "false"}, "false"},
           {{"true"}, "true"},
           {{"mustnot", "may"}, "mustnot"}}) {
    INFO(offered.front());
    auto started = Negotiation::start(a, b.jid, rng);
    REQUIRE(started);
    xml::Element offer = started->second.send.at(0);
    offer.set_attr("from", a.jid);
    set_options(offer, "logging", offered);
    set_options(offer, "ver", {"1.3", "1.0"});
    auto responded = Negotiation::respond(b, offer, rng);
    REQUIRE(responded);
    xml::Form f = form_of(responded->second.send.at(0));
    CHECK(f.value("logging").value() == want);
    CHECK(f.value("ver").value() == "1.3");  // any 1.x runs this profile and is echoed (A11)
  }
}

TEST_CASE("a malformed form, or a message out of its state, is refused naming the field",
          "[wire]") {
  SystemRandom rng;
  PartyConfig a = party(kAlice), b = party(kBob);
  auto started = Negotiation::start(a, b.jid, rng);
  REQUIRE(started);
  xml::Element offer = started->second.send.at(0);
  offer.set_attr("from", a.jid);
  // A duplicate field and a namespace-qualified attribute: not-acceptable naming the field.
  for (int variant = 0; variant < 2; ++variant) {
    xml::Element bad = offer;
    auto& x = *const_cast<xml::Element*>(
        bad.child("feature", xml::kNsFeatureNeg)->child("x", xml::kNsData));
    for (auto& f : x.children)
      if (f.name == "field" && f.attr_or("var") == "modp") {
        if (variant == 0) {
          xml::Element copy = f;
          x.add(std::move(copy));
        } else {
          f.set_attr("p:a", "1");
          f.prefixes.emplace_back("p", "urn:example:p");
        }
        break;
      }
    std::optional<xml::Element> reply;
    auto responded = Negotiation::respond(b, bad, rng, {}, &reply);
    REQUIRE_FALSE(responded);
    CHECK(responded.error().code == Errc::malformed);
    REQUIRE(reply);
    std::string r = xml::serialize(*reply);
    CHECK(r.find("<not-acceptable") != std::string::npos);
    CHECK(r.find("<field var=\"modp\"/>") != std::string::npos);
  }
  // Message 2 twice: the second does not fit Alice's state and is refused the same way.
  auto responded = Negotiation::respond(b, offer, rng);
  REQUIRE(responded);
  xml::Element m2 = responded->second.send.at(0);
  m2.set_attr("from", b.jid);
  Negotiation& alice = started->first;
  REQUIRE(alice.receive(m2, rng));
  REQUIRE_FALSE(alice.receive(m2, rng));
  REQUIRE(alice.error_reply());
  // Alice now waits for message 4, whose failures are feature-not-implemented (formats §10).
  CHECK(xml::serialize(*alice.error_reply()).find("<feature-not-implemented") != std::string::npos);
  // Message 4 offered to Bob before message 3: refused with an error too.
  auto responded2 = Negotiation::respond(b, offer, rng);
  REQUIRE(responded2);
  xml::Element again = offer;
  REQUIRE_FALSE(responded2->first.receive(again, rng));
  REQUIRE(responded2->first.error_reply());
}
