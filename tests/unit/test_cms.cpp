// CMS files (lib/object/cms.hpp): the streaming BER reader, and round trips through seal and
// open.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <openssl/cms.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "object/cms.hpp"
#include "util/output_file.hpp"

using namespace esession;
using esession::fs::UniqueFd;

namespace {

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

// tlv encodes a definite-length element, indef an indefinite-length one.
Bytes tlv(uint8_t tag, const Bytes& body) {
  Bytes out{tag};
  if (body.size() < 0x80) {
    out.push_back(static_cast<uint8_t>(body.size()));
  } else if (body.size() < 0x100) {
    out.push_back(0x81);
    out.push_back(static_cast<uint8_t>(body.size()));
  } else {
    out.push_back(0x82);
    out.push_back(static_cast<uint8_t>(body.size() >> 8));
    out.push_back(static_cast<uint8_t>(body.size()));
  }
  return cat({out, body});
}

Bytes indef(uint8_t tag, const Bytes& body) {
  return cat({{tag, 0x80}, body, {0, 0}});
}

const Bytes kEnvOid = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03};
const Bytes kDataOid = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};
const Bytes kVersion = {0x02, 0x01, 0x00};
const Bytes kRecipients = {0x31, 0x03, 0x04, 0x01, 0x55};
const Bytes kAlg = {0x30, 0x03, 0x06, 0x01, 0x01};

// enveloped builds an EnvelopedData around |content| (the encoded [0] element), with
// definite or indefinite lengths for the structure.
Bytes enveloped(const Bytes& content, bool definite, const Bytes& trailer = {}) {
  auto wrap = definite ? tlv : indef;
  Bytes eci = wrap(0x30, cat({kDataOid, kAlg, content}));
  Bytes ed = wrap(0x30, cat({kVersion, kRecipients, eci, trailer}));
  return wrap(0x30, cat({kEnvOid, wrap(0xa0, ed)}));
}

// MemSource hands out |data| |step| bytes at a time.
cms::Source mem_source(const Bytes& data, size_t step) {
  auto pos = std::make_shared<size_t>(0);
  return [&data, step, pos](std::span<uint8_t> out) -> Result<size_t> {
    size_t k = std::min({step, out.size(), data.size() - *pos});
    if (k)
      std::memcpy(out.data(), data.data() + *pos, k);
    *pos += k;
    return k;
  };
}

// read_all parses |data| and returns the content, or the error.
Result<Bytes> read_all(const Bytes& data, size_t step, Bytes* detached = nullptr) {
  cms::ContentReader r(mem_source(data, step), cms::Kind::enveloped);
  ES_TRY(r.start());
  if (detached)
    *detached = r.detached();
  Bytes out;
  uint8_t buf[7];
  for (;;) {
    ES_ASSIGN(size_t n, r.read(buf));
    if (n == 0)
      break;
    out.insert(out.end(), buf, buf + n);
  }
  if (!r.done())
    return fail(Errc::internal, "not done");
  return out;
}

const Bytes kPlain = {'h', 'e', 'l', 'l', 'o', ',', ' ', 'w', 'o', 'r', 'l', 'd', '!'};

std::vector<Bytes> contents_of_every_kind() {
  Bytes a(kPlain.begin(), kPlain.begin() + 5), b(kPlain.begin() + 5, kPlain.end());
  return {
      tlv(0x80, kPlain),                                              // primitive
      tlv(0x80, {}),                                                  // empty
      indef(0xa0, cat({tlv(0x04, a), tlv(0x04, {}), tlv(0x04, b)})),  // chunks
      tlv(0xa0, cat({tlv(0x04, a), tlv(0x04, b)})),                   // definite chunks
      indef(0xa0, cat({tlv(0x24, cat({tlv(0x04, a)})), indef(0x24, tlv(0x04, b))})),  // nested
  };
}

UniqueFd mem_file(ByteView data = {}) {
  UniqueFd fd(::memfd_create("cms-test", MFD_CLOEXEC));
  REQUIRE(fd);
  REQUIRE(fs::write_all(fd.get(), data, "memfd"));
  REQUIRE(::lseek(fd.get(), 0, SEEK_SET) == 0);
  return fd;
}

Bytes contents(int fd) {
  REQUIRE(::lseek(fd, 0, SEEK_SET) == 0);
  Bytes out;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    REQUIRE(n >= 0);
    if (n == 0)
      break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

// identity makes a self-signed RSA-2048 certificate and key named |cn|.
X509Identity identity(const char* cn) {
  UniquePtr<EVP_PKEY> key(EVP_RSA_gen(2048));
  REQUIRE(key);
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const uint8_t*>(cn), -1, -1,
                             0);
  X509_set_issuer_name(x.get(), name);
  X509_set_pubkey(x.get(), key.get());
  REQUIRE(X509_sign(x.get(), key.get(), EVP_sha256()) > 0);
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x.get());
  PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  Bytes pem(p, p + n);
  BIO_free(b);
  return load_x509_identity(pem, std::nullopt).value();
}

struct Opened {
  Result<uint64_t> r;
  cms::Verdict verdict;
  Bytes plain;
};

Opened open_bytes(const X509Identity& me, const cms::Trust& t, const Bytes& sealed) {
  UniqueFd in = mem_file(sealed);
  UniqueFd out = mem_file();
  int out_fd = out.get();
  cms::Verdict v;
  auto reread = [out_fd]() -> Result<int> {
    return ::open(("/proc/self/fd/" + std::to_string(out_fd)).c_str(), O_RDONLY);
  };
  Result<uint64_t> r = cms::open(me, t, in.get(), out_fd, reread, v);
  return {std::move(r), v, contents(out_fd)};
}

Bytes seal_bytes(const std::vector<Certificate>& to, const X509Identity* signer, const Bytes& p) {
  UniqueFd in = mem_file(p);
  UniqueFd out = mem_file();
  Result<uint64_t> r = cms::seal(to, signer, in.get(), out.get());
  REQUIRE(r);
  REQUIRE(*r == p.size());
  return contents(out.get());
}

}  // namespace

TEST_CASE("cms: the reader finds the content of every encoding", "[cms]") {
  for (bool definite : {false, true})
    for (const Bytes& c : contents_of_every_kind())
      for (size_t step : {size_t{1}, size_t{3}, size_t{1} << 20}) {
        Bytes whole = enveloped(c, definite);
        Bytes detached;
        Result<Bytes> got = read_all(whole, step, &detached);
        INFO("definite " << definite << " step " << step << " content " << c.size());
        REQUIRE(got);
        bool empty = c == tlv(0x80, {});
        CHECK(*got == (empty ? Bytes{} : kPlain));
        // The detached form is DER with the content left out.
        CHECK(detached ==
              tlv(0x30,
                  cat({kEnvOid, tlv(0xa0, tlv(0x30, cat({kVersion, kRecipients,
                                                         tlv(0x30, cat({kDataOid, kAlg}))})))})));
      }
}

TEST_CASE("cms: every truncation is refused", "[cms]") {
  for (bool definite : {false, true})
    for (const Bytes& c : contents_of_every_kind()) {
      Bytes whole = enveloped(c, definite);
      for (size_t n = 0; n < whole.size(); ++n) {
        Bytes cut(whole.begin(), whole.begin() + static_cast<ptrdiff_t>(n));
        Result<Bytes> got = read_all(cut, 5);
        INFO("definite " << definite << " cut at " << n << " of " << whole.size());
        REQUIRE_FALSE(got);
        CHECK(got.error().code == Errc::malformed);
      }
    }
}

TEST_CASE("cms: the reader refuses what is not an EnvelopedData with content", "[cms]") {
  Bytes good = enveloped(tlv(0x80, kPlain), false);
  auto refused = [](const Bytes& b) {
    Result<Bytes> r = read_all(b, 4);
    return !r && (r.error().code == Errc::malformed || r.error().code == Errc::unsupported);
  };
  SECTION("trailing bytes") {
    CHECK(refused(cat({good, {0x00}})));
  }
  SECTION("another content type") {
    Bytes b = good;
    b[12] = 0x02;  // the last octet of the OID: signedData
    CHECK(refused(b));
  }
  SECTION("a high tag number") {
    CHECK(refused(cat({{0x1f, 0x81, 0x01, 0x00}, good})));
  }
  SECTION("no content (detached)") {
    Bytes eci = indef(0x30, cat({kDataOid, kAlg}));
    Bytes b =
        indef(0x30, cat({kEnvOid, indef(0xa0, indef(0x30, cat({kVersion, kRecipients, eci})))}));
    Result<Bytes> r = read_all(b, 4);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::unsupported);
  }
  SECTION("a chunk that is not an OCTET STRING") {
    CHECK(refused(enveloped(indef(0xa0, tlv(0x02, kPlain)), false)));
  }
  SECTION("a chunk longer than its parent") {
    CHECK(refused(enveloped(tlv(0xa0, cat({{0x04, 0x20}, kPlain})), true)));
  }
  SECTION("a primitive with an indefinite length") {
    CHECK(refused(enveloped(cat({{0x80, 0x80}, kPlain, {0, 0}}), false)));
  }
  SECTION("an element after the content info is kept out of the way") {
    Result<Bytes> r = read_all(enveloped(tlv(0x80, kPlain), false, tlv(0xa1, {0x05, 0x00})), 2);
    REQUIRE(r);
    CHECK(*r == kPlain);
  }
  SECTION("garbage") {
    Bytes g(300);
    for (size_t i = 0; i < g.size(); ++i)
      g[i] = static_cast<uint8_t>(i * 131 + 7);
    CHECK(refused(g));
    CHECK(refused({}));
    CHECK(refused({0x30, 0x80, 0x30, 0x80}));
  }
  SECTION("a length beyond the header bound") {
    Bytes b =
        cat({{0x30, 0x80}, kEnvOid, {0xa0, 0x80, 0x30, 0x80, 0x31, 0x84, 0x7f, 0xff, 0xff, 0xff}});
    CHECK(refused(b));
  }
}

TEST_CASE("cms: seal and open round trips", "[cms]") {
  static const X509Identity alice = identity("alice");
  static const X509Identity bob = identity("bob");
  static const X509Identity eve = identity("eve");
  Bytes big(300000);
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<uint8_t>(i * 7);

  SECTION("signed: good with the signer as anchor or as the expected signer") {
    for (const Bytes& p : {Bytes{}, kPlain, big}) {
      Bytes sealed = seal_bytes({bob.chain.front()}, &alice, p);
      cms::Trust t;
      t.anchors = {alice.chain.front()};
      Opened o = open_bytes(bob, t, sealed);
      REQUIRE(o.r);
      CHECK(*o.r == p.size());
      CHECK(o.plain == p);
      CHECK(o.verdict.state == cms::Verdict::State::good);
      CHECK(o.verdict.signer == "CN=alice");
      cms::Trust pinned;
      pinned.expected = alice.chain.front();
      CHECK(open_bytes(bob, pinned, sealed).r);
    }
  }
  SECTION("wrong signer, untrusted signer, no CA") {
    Bytes sealed = seal_bytes({bob.chain.front()}, &eve, kPlain);
    cms::Trust pinned;
    pinned.expected = alice.chain.front();
    Opened o = open_bytes(bob, pinned, sealed);
    REQUIRE_FALSE(o.r);
    CHECK(o.r.error().code == Errc::auth_failed);
    CHECK(o.verdict.state == cms::Verdict::State::bad);
    cms::Trust anchors;
    anchors.anchors = {alice.chain.front()};
    CHECK(open_bytes(bob, anchors, sealed).verdict.state == cms::Verdict::State::bad);
    CHECK(open_bytes(bob, cms::Trust{}, sealed).verdict.state == cms::Verdict::State::bad);
  }
  SECTION("unsigned: refused unless allowed") {
    Bytes sealed = seal_bytes({bob.chain.front(), alice.chain.front()}, nullptr, big);
    Opened o = open_bytes(bob, cms::Trust{}, sealed);
    REQUIRE_FALSE(o.r);
    CHECK(o.r.error().code == Errc::auth_failed);
    CHECK(o.verdict.state == cms::Verdict::State::none);
    CHECK(o.plain.empty());
    cms::Trust t;
    t.allow_unsigned = true;
    Opened a = open_bytes(alice, t, sealed);
    REQUIRE(a.r);
    CHECK(a.plain == big);
  }
  SECTION("not a recipient") {
    Bytes sealed = seal_bytes({bob.chain.front()}, &alice, kPlain);
    cms::Trust t;
    t.allow_unsigned = true;
    Opened o = open_bytes(eve, t, sealed);
    REQUIRE_FALSE(o.r);
    CHECK(o.r.error().code == Errc::auth_failed);
    CHECK(o.plain.empty());
  }
  SECTION("tampered or truncated") {
    Bytes sealed = seal_bytes({bob.chain.front()}, &alice, big);
    cms::Trust t;
    t.anchors = {alice.chain.front()};
    for (size_t at : {sealed.size() / 2, sealed.size() - 40, sealed.size() - 3}) {
      Bytes bad = sealed;
      bad[at] ^= 0x01;
      CHECK_FALSE(open_bytes(bob, t, bad).r);
    }
    for (size_t n : {size_t{100}, sealed.size() / 2, sealed.size() - 1}) {
      Bytes cut(sealed.begin(), sealed.begin() + static_cast<ptrdiff_t>(n));
      CHECK_FALSE(open_bytes(bob, t, cut).r);
    }
  }
}

TEST_CASE("cms: in memory (seal_bytes, open_bytes), and with the files' format", "[cms]") {
  static const X509Identity alice = identity("alice");
  static const X509Identity bob = identity("bob");
  static const X509Identity eve = identity("eve");
  static const cms::KeyedIdentity kalice = cms::keyed(alice).value();
  static const cms::KeyedIdentity kbob = cms::keyed(bob).value();
  static const cms::KeyedIdentity keve = cms::keyed(eve).value();
  cms::Trust t;
  t.anchors = {alice.chain.front()};
  Bytes big(70000);
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<uint8_t>(i * 13);

  SECTION("round trips, both ways across the file functions") {
    for (const Bytes& p : {Bytes{}, kPlain, big}) {
      Bytes sealed = cms::seal_bytes({bob.chain.front()}, &kalice, p).value();
      cms::Verdict v;
      Result<Bytes> o = cms::open_bytes(kbob, t, sealed, v);
      REQUIRE(o);
      CHECK(*o == p);
      CHECK(v.state == cms::Verdict::State::good);
      CHECK(v.signer == "CN=alice");
      REQUIRE(v.signer_cert);
      Opened f = open_bytes(bob, t, sealed);  // the file functions read it
      REQUIRE(f.r);
      CHECK(f.plain == p);
      cms::Verdict v2;
      Result<Bytes> o2 = cms::open_bytes(kbob, t, seal_bytes({bob.chain.front()}, &alice, p), v2);
      REQUIRE(o2);
      CHECK(*o2 == p);
    }
  }
  SECTION("the size bound") {
    Bytes sealed = cms::seal_bytes({bob.chain.front()}, &kalice, kPlain).value();
    cms::Verdict v;
    CHECK(cms::open_bytes(kbob, t, sealed, v, kPlain.size()));
    cms::Verdict v2;
    Result<Bytes> o = cms::open_bytes(kbob, t, sealed, v2, kPlain.size() - 1);
    REQUIRE_FALSE(o);
    CHECK(o.error().code == Errc::malformed);
    CHECK(v2.state != cms::Verdict::State::good);
  }
  SECTION("the refusals of open") {
    cms::Verdict v;
    Result<Bytes> o =
        cms::open_bytes(keve, t, cms::seal_bytes({bob.chain.front()}, &kalice, kPlain).value(), v);
    REQUIRE_FALSE(o);
    CHECK(o.error().code == Errc::auth_failed);  // not a recipient
    Bytes unsigned_ = cms::seal_bytes({bob.chain.front()}, nullptr, kPlain).value();
    cms::Verdict vu;
    o = cms::open_bytes(kbob, t, unsigned_, vu);
    REQUIRE_FALSE(o);
    CHECK(o.error().code == Errc::auth_failed);
    CHECK(vu.state == cms::Verdict::State::none);
    cms::Verdict ve;
    o = cms::open_bytes(kbob, t, cms::seal_bytes({bob.chain.front()}, &keve, kPlain).value(), ve);
    REQUIRE_FALSE(o);
    CHECK(ve.state == cms::Verdict::State::bad);  // eve does not lead to the anchor
    Bytes sealed = cms::seal_bytes({bob.chain.front()}, &kalice, big).value();
    for (size_t at : {sealed.size() / 2, sealed.size() - 40, sealed.size() - 3}) {
      Bytes bad = sealed;
      bad[at] ^= 0x01;
      cms::Verdict vb;
      CHECK_FALSE(cms::open_bytes(kbob, t, bad, vb));
    }
    for (size_t n : {size_t{100}, sealed.size() / 2, sealed.size() - 1}) {
      cms::Verdict vc;
      CHECK_FALSE(cms::open_bytes(kbob, t, ByteView(sealed.data(), n), vc));
    }
  }
  SECTION("a signer without a key is refused") {
    cms::KeyedIdentity nokey{alice.chain, nullptr};
    Result<Bytes> r = cms::seal_bytes({bob.chain.front()}, &nokey, kPlain);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::malformed);
  }
}

TEST_CASE("cms: S/MIME's signed layers (sign_detached, verify_detached, open_signed_bytes)",
          "[cms]") {
  static const X509Identity alice = identity("alice");
  static const X509Identity eve = identity("eve");
  static const cms::KeyedIdentity kalice = cms::keyed(alice).value();
  static const cms::KeyedIdentity keve = cms::keyed(eve).value();
  cms::Trust t;
  t.anchors = {alice.chain.front()};
  const std::string content = "Content-Type: Message/CPIM\r\n\r\nFrom: <im:a@example.com>\r\n";

  SECTION("a detached signature covers the content exactly") {
    Bytes sig = cms::sign_detached(kalice, view(content)).value();
    cms::Verdict v;
    REQUIRE(cms::verify_detached(sig, view(content), t, v));
    CHECK(v.state == cms::Verdict::State::good);
    CHECK(v.signer == "CN=alice");
    // Detached: the content is not in it.
    CHECK(string_of(view(sig)).find("im:a@example.com") == std::string::npos);
    std::string changed = content;
    changed.back() = ' ';
    cms::Verdict vb;
    Status bad = cms::verify_detached(sig, view(changed), t, vb);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == Errc::auth_failed);
    CHECK(vb.state == cms::Verdict::State::bad);
    cms::Verdict vn;
    CHECK_FALSE(cms::verify_detached(view(content), view(content), t, vn));
    CHECK(vn.state == cms::Verdict::State::bad);
  }
  SECTION("the signer must lead to the anchors") {
    Bytes sig = cms::sign_detached(keve, view(content)).value();
    cms::Verdict v;
    CHECK_FALSE(cms::verify_detached(sig, view(content), t, v));
    CHECK(v.state == cms::Verdict::State::bad);
    CHECK(v.signer == "CN=eve");
  }
  SECTION("a SignedData carrying its content (smime-type=signed-data)") {
    BIO* in = BIO_new_mem_buf(content.data(), static_cast<int>(content.size()));
    CMS_ContentInfo* cms =
        CMS_sign(alice.chain.front().get(), kalice.key.get(), nullptr, in, CMS_BINARY);
    unsigned char* der = nullptr;
    int len = cms ? i2d_CMS_ContentInfo(cms, &der) : 0;
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    REQUIRE(len > 0);
    Bytes attached(der, der + len);
    OPENSSL_free(der);
    cms::Verdict v;
    Result<Bytes> o = cms::open_signed_bytes(t, attached, v);
    REQUIRE(o);
    CHECK(string_of(view(*o)) == content);
    CHECK(v.state == cms::Verdict::State::good);
    cms::Verdict vs;
    CHECK_FALSE(cms::open_signed_bytes(t, attached, vs, content.size() - 1));
    Bytes sig = cms::sign_detached(kalice, view(content)).value();
    cms::Verdict vd;
    Result<Bytes> r = cms::open_signed_bytes(t, sig, vd);  // detached: no content
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::unsupported);
  }
}
