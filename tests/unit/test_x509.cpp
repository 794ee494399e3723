// X.509 identities: loading a certificate chain and key (PEM, PKCS#12), path validation against
// configured anchors, and the RFC 6120 / RFC 6125 name rules.
//
// The certificates are made here with the OpenSSL API, so every field a test depends on is
// visible in the test. All checks run at a fixed time, kNow.
#include <catch2/catch.hpp>

#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "crypto/random.hpp"
#include "crypto/x509.hpp"

using namespace esession;

namespace {

constexpr int64_t kDay = 86400;
constexpr int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z

UniquePtr<EVP_PKEY> new_ed25519() {
  UniquePtr<EVP_PKEY> k(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  REQUIRE(k);
  return k;
}

// rsa_key returns one of two RSA-2048 keys, made once: they are slow to make.
EVP_PKEY* rsa_key(int which) {
  static UniquePtr<EVP_PKEY> keys[2] = {UniquePtr<EVP_PKEY>(EVP_RSA_gen(2048)),
                                        UniquePtr<EVP_PKEY>(EVP_RSA_gen(2048))};
  REQUIRE(keys[which]);
  return keys[which].get();
}

EVP_PKEY* leaf_key() {
  static UniquePtr<EVP_PKEY> k = new_ed25519();
  return k.get();
}

// What a test certificate holds. |san| entries use OpenSSL's configuration syntax (see
// xmpp_addr, uri, dns below); |key_usage| is a keyUsage value, or empty for no extension.
struct Spec {
  std::string cn;
  std::vector<std::string> san;
  bool ca = false;
  bool basic_constraints = true;
  std::string key_usage = "critical,digitalSignature";
  int64_t not_before = kNow - 30 * kDay;
  int64_t not_after = kNow + 365 * kDay;
};

std::string xmpp_addr(const std::string& jid) {
  return "otherName:1.3.6.1.5.5.7.8.5;UTF8:" + jid;
}
std::string uri(const std::string& u) {
  return "URI:" + u;
}
std::string dns(const std::string& d) {
  return "DNS:" + d;
}

struct Ca {
  UniquePtr<EVP_PKEY> key;
  Certificate cert;
};

void add_ext(X509* x, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* e = X509V3_EXT_nconf_nid(nullptr, ctx, nid, value.c_str());
  REQUIRE(e);
  CHECK(X509_add_ext(x, e, -1) == 1);
  X509_EXTENSION_free(e);
}

// make_cert issues a certificate for |s| and |key|, signed by |issuer| (self-signed if null).
Certificate make_cert(const Spec& s, EVP_PKEY* key, const Ca* issuer) {
  static long serial = 1;
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  REQUIRE(x);
  X509_NAME* name = X509_get_subject_name(x.get());
  REQUIRE(X509_set_version(x.get(), X509_VERSION_3) == 1);
  REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++) == 1);
  REQUIRE(ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(s.not_before)));
  REQUIRE(ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(s.not_after)));
  REQUIRE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(s.cn.c_str()), -1, -1,
                                     0) == 1);
  REQUIRE(X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer->cert.get()) : name));
  REQUIRE(X509_set_pubkey(x.get(), key) == 1);

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer->cert.get() : x.get(), x.get(), nullptr, nullptr, 0);
  if (s.basic_constraints)
    add_ext(x.get(), &ctx, NID_basic_constraints, s.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x.get(), &ctx, NID_subject_key_identifier, "hash");
  if (issuer)
    add_ext(x.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (!s.key_usage.empty())
    add_ext(x.get(), &ctx, NID_key_usage, s.key_usage);
  if (!s.san.empty()) {
    std::string san;
    for (const auto& e : s.san)
      san += (san.empty() ? "" : ",") + e;
    add_ext(x.get(), &ctx, NID_subject_alt_name, san);
  }

  EVP_PKEY* signer = issuer ? issuer->key.get() : key;
  const EVP_MD* md = EVP_PKEY_is_a(signer, "ED25519") ? nullptr : EVP_sha256();
  REQUIRE(X509_sign(x.get(), signer, md) > 0);
  return Certificate::from_x509(x.get()).value();
}

Spec ca_spec(std::string cn) {
  Spec s;
  s.cn = std::move(cn);
  s.ca = true;
  s.key_usage = "critical,keyCertSign,cRLSign";
  s.not_before = kNow - 365 * kDay;
  s.not_after = kNow + 3650 * kDay;
  return s;
}

Ca make_ca(const Spec& s, UniquePtr<EVP_PKEY> key, const Ca* parent) {
  Certificate c = make_cert(s, key.get(), parent);
  return Ca{std::move(key), std::move(c)};
}

// The test PKI: an RSA root, an Ed25519 intermediate under it, and an unrelated root.
const Ca& root() {
  static Ca c = [] {
    UniquePtr<EVP_PKEY> k(rsa_key(0));
    EVP_PKEY_up_ref(k.get());
    return make_ca(ca_spec("Test Root CA"), std::move(k), nullptr);
  }();
  return c;
}
const Ca& inter() {
  static Ca c = make_ca(ca_spec("Test Intermediate CA"), new_ed25519(), &root());
  return c;
}
const Ca& other_root() {
  static Ca c = make_ca(ca_spec("Other Root CA"), new_ed25519(), nullptr);
  return c;
}

Spec leaf_spec(std::vector<std::string> san, std::string cn = "test leaf") {
  Spec s;
  s.cn = std::move(cn);
  s.san = std::move(san);
  return s;
}

Certificate leaf(const Spec& s, EVP_PKEY* key = leaf_key(), const Ca& issuer = inter()) {
  return make_cert(s, key, &issuer);
}

// check validates |leaf_cert| with the test intermediate against |anchors| at kNow.
X509Check check(const Certificate& leaf_cert, std::string_view jid,
                std::vector<Certificate> anchors = {root().cert}) {
  return check_x509({leaf_cert, inter().cert}, anchors, jid, kNow);
}

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// key_pem returns |k| as PKCS#8 PEM, encrypted (PBES2, AES-256-CBC) if |pass| is given.
std::string key_pem(EVP_PKEY* k, const char* pass = nullptr) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  REQUIRE(PEM_write_bio_PKCS8PrivateKey(bio.get(), k, pass ? EVP_aes_256_cbc() : nullptr, pass,
                                        pass ? static_cast<int>(std::strlen(pass)) : 0, nullptr,
                                        nullptr) == 1);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<X509Identity> load(std::string_view data, std::optional<std::string_view> pass = {}) {
  if (pass)
    return load_x509_identity(view(data), view(*pass));
  return load_x509_identity(view(data), std::nullopt);
}

// pkcs12 makes a DER PKCS#12 file with OpenSSL's defaults (PBES2, AES-256, SHA-256 MAC).
Bytes pkcs12(const char* pass, EVP_PKEY* key, const Certificate& cert,
             const std::vector<Certificate>& ca) {
  STACK_OF(X509)* stack = sk_X509_new_null();
  REQUIRE(stack);
  for (const auto& c : ca)
    REQUIRE(X509_add_cert(stack, c.get(), X509_ADD_FLAG_UP_REF) == 1);
  PKCS12* p12 = PKCS12_create(pass, "test", key, cert.get(), stack, 0, 0, 0, 0, 0);
  sk_X509_pop_free(stack, X509_free);
  REQUIRE(p12);
  int n = i2d_PKCS12(p12, nullptr);
  Bytes out(static_cast<size_t>(n));
  uint8_t* p = out.data();
  i2d_PKCS12(p12, &p);
  PKCS12_free(p12);
  return out;
}

std::string as_text(const Bytes& b) {
  return string_of(b);
}

}  // namespace

TEST_CASE("x509: a chain through an intermediate validates", "[x509]") {
  SECTION("RSA-2048 leaf") {
    Certificate c = leaf(leaf_spec({xmpp_addr("alice@example.org")}), rsa_key(1));
    X509Check r = check(c, "alice@example.org");
    CHECK(r.verdict == X509Verdict::valid);
    CHECK(r.reason == "issued under CN=Test Root CA");
    REQUIRE(c.public_key());
    CHECK(c.public_key()->type() == KeyType::rsa);
  }
  SECTION("Ed25519 leaf") {
    Certificate c = leaf(leaf_spec({xmpp_addr("alice@example.org")}));
    CHECK(check(c, "alice@example.org").verdict == X509Verdict::valid);
    REQUIRE(c.public_key());
    CHECK(c.public_key()->type() == KeyType::ed25519);
  }
  SECTION("the intermediate is needed") {
    Certificate c = leaf(leaf_spec({xmpp_addr("alice@example.org")}));
    X509Check r = check_x509({c}, {root().cert}, "alice@example.org", kNow);
    CHECK(r.verdict == X509Verdict::untrusted);
    CHECK(r.reason == "no configured CA issued it (issuer: CN=Test Intermediate CA)");
  }
}

TEST_CASE("x509: certificate fields", "[x509]") {
  Spec s = leaf_spec({xmpp_addr("alice@example.org"), uri("xmpp:alice@example.org"),
                      dns("example.org"), "email:alice@example.org"},
                     "Zoë, \"A\"");
  Certificate c = leaf(s);
  CHECK(c.subject() == "CN=Zoë\\, \\\"A\\\"");
  CHECK(c.issuer() == "CN=Test Intermediate CA");
  CHECK(c.not_before() == s.not_before);
  CHECK(c.not_after() == s.not_after);
  CHECK(c.xmpp_addrs() == std::vector<std::string>{"alice@example.org"});
  CHECK(c.uris() == std::vector<std::string>{"xmpp:alice@example.org"});
  CHECK(c.dns_names() == std::vector<std::string>{"example.org"});
  CHECK(c.public_key().value() == PublicKey::from_evp(leaf_key()).value());

  Bytes der = c.der();
  CHECK(Certificate::from_der(der)->sha256() == c.sha256());
  CHECK(hex(c.sha256()) == hex(digest(HashAlg::sha256, der)));
  Bytes longer = der;
  longer.push_back(0);
  CHECK(Certificate::from_der(longer).error().code == Errc::malformed);
  CHECK(Certificate::from_der(ByteView(der).first(der.size() - 1)).error().code == Errc::malformed);

  auto both = Certificate::all_from_pem("junk before\n" + c.pem() + key_pem(leaf_key()) +
                                        inter().cert.pem());
  REQUIRE(both);
  REQUIRE(both->size() == 2);
  CHECK((*both)[0].sha256() == c.sha256());
  CHECK((*both)[1].sha256() == inter().cert.sha256());
  CHECK(Certificate::all_from_pem("").error().code == Errc::malformed);
  CHECK(Certificate::all_from_pem(key_pem(leaf_key())).error().code == Errc::malformed);
  std::string damaged = c.pem();
  damaged.replace(damaged.find('\n') + 10, 4, "!!!!");
  CHECK(Certificate::all_from_pem(damaged).error().code == Errc::malformed);
}

TEST_CASE("x509: a name with a NUL byte is ignored", "[x509]") {
  Certificate c = leaf(leaf_spec({xmpp_addr("alice@example.org"), dns("example.org")}));
  // Rewrite the XmppAddr in the DER to "alice@example\0org": same length, signature now broken,
  // but the name parsing is what is under test.
  Bytes der = c.der();
  std::string text = string_of(der);
  size_t at = text.find("alice@example.org");
  REQUIRE(at != std::string::npos);
  der[at + 13] = 0;
  Certificate bad = Certificate::from_der(der).value();
  CHECK(bad.xmpp_addrs().empty());
  CHECK(bad.dns_names() == std::vector<std::string>{"example.org"});
}

TEST_CASE("x509: trust anchors", "[x509]") {
  Certificate c = leaf(leaf_spec({xmpp_addr("alice@example.org")}));
  SECTION("a chain under another CA is untrusted") {
    X509Check r = check(c, "alice@example.org", {other_root().cert});
    CHECK(r.verdict == X509Verdict::untrusted);
    CHECK(r.reason == "no configured CA issued it (issuer: CN=Test Root CA)");
  }
  SECTION("a chain under a CA with the same name but another key is untrusted") {
    Ca impostor = make_ca(ca_spec("Test Root CA"), new_ed25519(), nullptr);
    CHECK(check(c, "alice@example.org", {impostor.cert}).verdict == X509Verdict::untrusted);
  }
  SECTION("no anchors") {
    X509Check r = check(c, "alice@example.org", {});
    CHECK(r.verdict == X509Verdict::untrusted);
    CHECK(r.reason == "no CA bundle is configured");
  }
  SECTION("an intermediate may be the anchor") {
    X509Check r = check_x509({c}, {inter().cert}, "alice@example.org", kNow);
    CHECK(r.verdict == X509Verdict::valid);
    CHECK(r.reason == "issued under CN=Test Intermediate CA");
  }
  SECTION("one of several anchors") {
    CHECK(check(c, "alice@example.org", {other_root().cert, root().cert}).verdict ==
          X509Verdict::valid);
  }
  SECTION("a self-signed leaf is untrusted") {
    UniquePtr<EVP_PKEY> k = new_ed25519();
    Certificate self = make_cert(leaf_spec({xmpp_addr("alice@example.org")}), k.get(), nullptr);
    CHECK(check_x509({self}, {root().cert}, "alice@example.org", kNow).verdict ==
          X509Verdict::untrusted);
  }
}

TEST_CASE("x509: validity windows", "[x509]") {
  Spec s = leaf_spec({xmpp_addr("alice@example.org")});
  SECTION("expired leaf") {
    s.not_after = kNow - kDay;
    X509Check r = check(leaf(s), "alice@example.org");
    CHECK(r.verdict == X509Verdict::expired);
    CHECK(r.reason == "the certificate expired on 2025-12-31");
    // The same certificate was fine while it was current.
    CHECK(check_x509({leaf(s), inter().cert}, {root().cert}, "alice@example.org", kNow - 2 * kDay)
              .verdict == X509Verdict::valid);
  }
  SECTION("leaf not yet valid") {
    s.not_before = kNow + 10 * kDay;
    X509Check r = check(leaf(s), "alice@example.org");
    CHECK(r.verdict == X509Verdict::not_yet_valid);
    CHECK(r.reason == "the certificate is not valid before 2026-01-11");
  }
  SECTION("expired intermediate") {
    Spec is = ca_spec("Old Intermediate CA");
    is.not_after = kNow - 40 * kDay;
    Ca old = make_ca(is, new_ed25519(), &root());
    s.not_before = kNow - 50 * kDay;
    Certificate c = leaf(s, leaf_key(), old);
    X509Check r = check_x509({c, old.cert}, {root().cert}, "alice@example.org", kNow);
    CHECK(r.verdict == X509Verdict::expired);
    CHECK(r.reason == "the CA certificate CN=Old Intermediate CA expired on 2025-11-22");
  }
  SECTION("not yet valid root") {
    Spec rs = ca_spec("Future Root CA");
    rs.not_before = kNow + kDay;
    Ca future = make_ca(rs, new_ed25519(), nullptr);
    Certificate c = leaf(s, leaf_key(), future);
    CHECK(check_x509({c}, {future.cert}, "alice@example.org", kNow).verdict ==
          X509Verdict::not_yet_valid);
  }
}

TEST_CASE("x509: XmppAddr names the JID", "[x509]") {
  Certificate c = leaf(leaf_spec({xmpp_addr("alice@Example.ORG")}));
  CHECK(x509_names_jid(c, "alice@example.org"));  // the domain part ignores case
  CHECK(x509_names_jid(c, "alice@EXAMPLE.org"));
  CHECK(x509_names_jid(c, "alice@example.org/phone"));  // a resource does not matter
  CHECK_FALSE(x509_names_jid(c, "Alice@example.org"));  // the localpart does not
  CHECK_FALSE(x509_names_jid(c, "bob@example.org"));
  CHECK_FALSE(x509_names_jid(c, "alice@example.com"));
  CHECK_FALSE(x509_names_jid(c, "example.org"));
  CHECK_FALSE(x509_names_jid(c, "alice@example.org.evil"));

  X509Check r = check(c, "bob@example.org");
  CHECK(r.verdict == X509Verdict::wrong_name);
  CHECK(r.reason == "the certificate is for alice@Example.ORG, not bob@example.org");

  Certificate server = leaf(leaf_spec({xmpp_addr("example.org")}));
  CHECK(x509_names_jid(server, "example.org"));
  CHECK_FALSE(x509_names_jid(server, "alice@example.org"));
  CHECK_FALSE(x509_names_jid(server, "@example.org"));
}

TEST_CASE("x509: an xmpp: URI names the JID", "[x509]") {
  Certificate c = leaf(leaf_spec({uri("xmpp:alice@example.org"), uri("https://example.org/bob"),
                                  uri("xmpp:carol@example.org?message")}));
  CHECK(x509_names_jid(c, "alice@example.org"));
  CHECK(x509_names_jid(c, "alice@EXAMPLE.ORG"));
  CHECK(check(c, "alice@example.org").verdict == X509Verdict::valid);
  CHECK_FALSE(x509_names_jid(c, "bob@example.org"));
  CHECK_FALSE(x509_names_jid(c, "carol@example.org"));
  CHECK_FALSE(x509_names_jid(c, "example.org"));
}

TEST_CASE("x509: a DNS name counts only for a domain JID", "[x509]") {
  Certificate c = leaf(leaf_spec({dns("example.org")}));
  CHECK(x509_names_jid(c, "example.org"));
  CHECK(x509_names_jid(c, "EXAMPLE.org"));
  CHECK(check(c, "example.org").verdict == X509Verdict::valid);
  CHECK_FALSE(x509_names_jid(c, "alice@example.org"));
  CHECK(check(c, "alice@example.org").verdict == X509Verdict::wrong_name);
  CHECK_FALSE(x509_names_jid(c, "conference.example.org"));

  Certificate wild = leaf(leaf_spec({dns("*.example.org")}));
  CHECK(x509_names_jid(wild, "conference.example.org"));
  CHECK(x509_names_jid(wild, "Conference.Example.org"));
  CHECK_FALSE(x509_names_jid(wild, "a.b.example.org"));  // one label only
  CHECK_FALSE(x509_names_jid(wild, "example.org"));
  CHECK_FALSE(x509_names_jid(wild, "room@conference.example.org"));

  Certificate tld = leaf(leaf_spec({dns("*.org")}));
  CHECK_FALSE(x509_names_jid(tld, "example.org"));
}

TEST_CASE("x509: the CN alone never names the JID", "[x509]") {
  Certificate user = leaf(leaf_spec({}, "alice@example.org"));
  X509Check r = check(user, "alice@example.org");
  CHECK(r.verdict == X509Verdict::wrong_name);
  CHECK(r.reason ==
        "the certificate names no XMPP address (its CN=alice@example.org does not count)");
  Certificate server = leaf(leaf_spec({"email:example.org"}, "example.org"));
  CHECK(check(server, "example.org").verdict == X509Verdict::wrong_name);
}

TEST_CASE("x509: CA and key usage constraints", "[x509]") {
  Spec s = leaf_spec({xmpp_addr("alice@example.org")});
  SECTION("an intermediate with CA:FALSE cannot issue") {
    Spec is = ca_spec("Not A CA");
    is.ca = false;
    Ca fake = make_ca(is, new_ed25519(), &root());
    X509Check r = check_x509({leaf(s, leaf_key(), fake), fake.cert}, {root().cert},
                             "alice@example.org", kNow);
    CHECK(r.verdict == X509Verdict::invalid);
    CHECK(r.reason == "invalid CA certificate (the CA certificate CN=Not A CA)");
  }
  SECTION("an intermediate without basicConstraints cannot issue") {
    Spec is = ca_spec("No Constraints");
    is.basic_constraints = false;
    Ca fake = make_ca(is, new_ed25519(), &root());
    CHECK(
        check_x509({leaf(s, leaf_key(), fake), fake.cert}, {root().cert}, "alice@example.org", kNow)
            .verdict == X509Verdict::invalid);
  }
  SECTION("a leaf whose key usage excludes digitalSignature") {
    s.key_usage = "critical,keyEncipherment";
    X509Check r = check(leaf(s), "alice@example.org");
    CHECK(r.verdict == X509Verdict::invalid);
    CHECK(r.reason == "the certificate's key usage does not allow signatures");
  }
  SECTION("a leaf without keyUsage may sign") {
    s.key_usage.clear();
    CHECK(check(leaf(s), "alice@example.org").verdict == X509Verdict::valid);
  }
  SECTION("a leaf with digitalSignature among other usages") {
    s.key_usage = "digitalSignature,keyEncipherment";
    CHECK(check(leaf(s), "alice@example.org").verdict == X509Verdict::valid);
  }
  SECTION("a bad signature") {
    Bytes der = leaf(s).der();
    der[der.size() - 5] ^= 1;  // inside the signature value
    Certificate broken = Certificate::from_der(der).value();
    X509Check r = check(broken, "alice@example.org");
    CHECK(r.verdict == X509Verdict::invalid);
    CHECK(contains(r.reason, "signature"));
  }
}

TEST_CASE("x509: loading a PEM identity", "[x509]") {
  Certificate c = leaf(leaf_spec({xmpp_addr("alice@example.org")}));
  std::string key = key_pem(leaf_key());
  auto expect_identity = [&](const Result<X509Identity>& id, size_t chain_len) {
    REQUIRE(id);
    REQUIRE(id->chain.size() == chain_len);
    CHECK(id->chain[0].sha256() == c.sha256());
    CHECK(id->key.public_key() == c.public_key().value());
  };
  SECTION("certificate, then key") {
    expect_identity(load(c.pem() + key), 1);
  }
  SECTION("key, then certificate and intermediate") {
    auto id = load(key + c.pem() + inter().cert.pem());
    expect_identity(id, 2);
    CHECK(id->chain[1].sha256() == inter().cert.sha256());
  }
  SECTION("RSA key in the traditional format, plain and encrypted") {
    Certificate rc = leaf(leaf_spec({xmpp_addr("alice@example.org")}), rsa_key(1));
    auto traditional = [](const EVP_CIPHER* cipher, const char* pass) {
      std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
      REQUIRE(PEM_write_bio_PrivateKey_traditional(
                  bio.get(), rsa_key(1), cipher, reinterpret_cast<const unsigned char*>(pass),
                  pass ? static_cast<int>(std::strlen(pass)) : 0, nullptr, nullptr) == 1);
      char* data = nullptr;
      long n = BIO_get_mem_data(bio.get(), &data);
      return std::string(data, static_cast<size_t>(n));
    };
    std::string plain = traditional(nullptr, nullptr);
    REQUIRE(contains(plain, "BEGIN RSA PRIVATE KEY"));
    auto id = load(rc.pem() + plain);
    REQUIRE(id);
    CHECK(id->key.type() == KeyType::rsa);

    std::string enc = traditional(EVP_aes_256_cbc(), "hunter2");
    REQUIRE(contains(enc, "Proc-Type: 4,ENCRYPTED"));
    CHECK(load(rc.pem() + enc).error().code == Errc::not_acceptable);
    CHECK(load(rc.pem() + enc, "hunter3").error().code == Errc::auth_failed);
    CHECK(load(enc + rc.pem(), "hunter2").has_value());
  }
  SECTION("encrypted key") {
    std::string pem = c.pem() + key_pem(leaf_key(), "hunter2");
    REQUIRE(contains(pem, "BEGIN ENCRYPTED PRIVATE KEY"));
    auto none = load(pem);
    CHECK(none.error().code == Errc::not_acceptable);
    CHECK(contains(none.error().detail, "needs a passphrase"));
    CHECK(load(pem, "hunter3").error().code == Errc::auth_failed);
    expect_identity(load(pem, "hunter2"), 1);
  }
  SECTION("the key of another certificate") {
    UniquePtr<EVP_PKEY> other = new_ed25519();
    auto id = load(c.pem() + key_pem(other.get()));
    CHECK(id.error().code == Errc::malformed);
    CHECK(id.error().detail == "the key does not belong to the certificate");
    // Nor may the leaf come after the certificate of another key.
    CHECK(load(inter().cert.pem() + c.pem() + key).error().code == Errc::malformed);
  }
  SECTION("a certificate or key missing, or two keys") {
    CHECK(load(c.pem()).error().code == Errc::malformed);
    CHECK(load(key).error().code == Errc::malformed);
    CHECK(load(c.pem() + key + key).error().code == Errc::malformed);
  }
}

TEST_CASE("x509: loading a PKCS#12 identity", "[x509]") {
  Certificate c = leaf(leaf_spec({xmpp_addr("alice@example.org")}));
  // The root comes before the intermediate: the chain must still come out in issuing order.
  Bytes p12 = pkcs12("s3cret", leaf_key(), c, {root().cert, inter().cert});
  SECTION("with the passphrase") {
    auto id = load(as_text(p12), "s3cret");
    REQUIRE(id);
    REQUIRE(id->chain.size() == 3);
    CHECK(id->chain[0].sha256() == c.sha256());
    CHECK(id->chain[1].sha256() == inter().cert.sha256());
    CHECK(id->chain[2].sha256() == root().cert.sha256());
    CHECK(id->key.public_key() == c.public_key().value());
    CHECK(check_x509(id->chain, {root().cert}, "alice@example.org", kNow).verdict ==
          X509Verdict::valid);
  }
  SECTION("wrong or missing passphrase") {
    CHECK(load(as_text(p12), "s3cret!").error().code == Errc::auth_failed);
    CHECK(load(as_text(p12), "").error().code == Errc::auth_failed);
    auto none = load(as_text(p12));
    CHECK(none.error().code == Errc::not_acceptable);
    CHECK(contains(none.error().detail, "needs a passphrase"));
  }
  SECTION("an empty passphrase is tried when none is given") {
    Bytes open = pkcs12("", leaf_key(), c, {});
    auto id = load(as_text(open));
    REQUIRE(id);
    CHECK(id->chain.size() == 1);
    CHECK(load(as_text(open), "x").error().code == Errc::auth_failed);
  }
  SECTION("trailing bytes") {
    Bytes longer = p12;
    longer.push_back(0);
    CHECK(load(as_text(longer), "s3cret").error().code == Errc::malformed);
  }
}

TEST_CASE("x509: unusable input", "[x509]") {
  SECTION("garbage") {
    CHECK(load("").error().code == Errc::malformed);
    CHECK(load("hello, world").error().code == Errc::malformed);
    Bytes noise(300);
    SystemRandom().fill(noise);
    noise[0] = 0x30;  // looks like a DER SEQUENCE
    CHECK(load(as_text(noise)).error().code == Errc::malformed);
    CHECK(load("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").error().code ==
          Errc::malformed);
  }
  SECTION("an EC certificate") {
    UniquePtr<EVP_PKEY> ec(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    REQUIRE(ec);
    Certificate c = leaf(leaf_spec({xmpp_addr("alice@example.org")}), ec.get());
    auto pk = c.public_key();
    CHECK(pk.error().code == Errc::unsupported);
    CHECK(pk.error().detail ==
          "the certificate has a key of type EC: esession identities are RSA, DSA or Ed25519");
    CHECK(load(c.pem() + key_pem(ec.get())).error().code == Errc::unsupported);
    CHECK(load(as_text(pkcs12("p", ec.get(), c, {})), "p").error().code == Errc::unsupported);
  }
}
