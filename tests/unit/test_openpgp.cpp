// OpenPGP identities: the v4 key packet parser against packets gpg made, and GnuPG through
// GPGME in throwaway homes: agent signatures (RSA, pure Ed25519 of the message, DSA) that our
// PublicKey verifies, key lookup by JID and fingerprint, and the keyring's view of validity.
//
// The GnuPG tests run gpg itself to make and certify keys, so their expectations come from gpg
// and not from the code under test. Without gpg they are skipped with a warning.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "crypto/hash.hpp"
#include "openpgp/openpgp.hpp"

using namespace esession;
using namespace esession::openpgp;

namespace {

// Packets gpg 2.2.40 made (`gpg --export-options export-minimal --export`, first packet), with
// the fingerprints and creation time gpg printed for them.
constexpr const char* kEdPacket =
    "9833046b084a3016092b06010401da470f01010740d3026a1f58edf51c2d5daa87581659c1c90847f8d96d11f3"
    "7a42b47a351f4e49";
constexpr const char* kEdFpr = "DF1341150A605611477E53D184128D404755C173";
constexpr const char* kRsaPacket =
    "99010d046b084a30010800ce4c1dc3ccc351c88fe720c034fc64cf85eef440f9837b29e2c282e52fac6dd9014f"
    "e1ae0ec209f170c6e284d915bf259dccdd490b6532df4b565df65f0d8b844f0a1ea205ac5250be3faf984a2ba5"
    "57d1c82393e6eb80775f3a1ec7105964127995280fe255455d9bdd32f7784198d2e8f300bf0fe1ea586af8dbe6"
    "7fcc7aa2c534c53938fb369b0bc02856a489cdd135fb08fd66b10b5fa5fab75c7f1e6c82e702900a1d2263a516"
    "1d68cc76f1cb5d2a60ee439030c765026da2ef90fe117ca0df06ac50838f1b2462573e4591ea1f316cdd31712f"
    "e73ccc9567b7170eb71577d57815e19d0027fc93048f563abc933554e66c1c25eccbb65e415ff0db8dc1001101"
    "0001";
constexpr const char* kRsaFpr = "E660ADD535B338059EA6075AFAD34510DF6B6126";
constexpr int64_t kCreated = 1795705392;

// Offsets in the Ed25519 body: version, created (4), algorithm, OID length, OID (9), MPI.
constexpr size_t kEdAlgo = 5, kEdOidLen = 6, kEdOidLast = 15, kEdMpiBits = 16, kEdPoint = 18;

Bytes from_hex(std::string_view h) {
  return unhex(h).value();
}

Bytes ed_body() {
  Bytes p = from_hex(kEdPacket);
  return Bytes(p.begin() + 2, p.end());
}

Bytes rsa_body() {
  Bytes p = from_hex(kRsaPacket);
  return Bytes(p.begin() + 3, p.end());
}

// old_packet wraps |body| in an old-format header (RFC 4880 §4.2.1) with a length of
// |len_octets| (1, 2 or 4).
Bytes old_packet(int tag, ByteView body, size_t len_octets = 2) {
  uint8_t type = len_octets == 1 ? 0 : len_octets == 2 ? 1 : 2;
  Bytes out = {static_cast<uint8_t>(0x80 | (tag << 2) | type)};
  for (size_t i = len_octets; i-- > 0;)
    out.push_back(static_cast<uint8_t>(body.size() >> (8 * i)));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// new_packet wraps |body| in a new-format header (§4.2.2), with the five-octet length if
// |long_length|.
Bytes new_packet(int tag, ByteView body, bool long_length = false) {
  Bytes out = {static_cast<uint8_t>(0xc0 | tag)};
  size_t n = body.size();
  if (long_length) {
    // One push_back each: GCC 12 at -O3 misreads an initializer-list insert here (-Warray-bounds).
    out.push_back(0xff);
    for (int shift = 24; shift >= 0; shift -= 8)
      out.push_back(static_cast<uint8_t>(n >> shift));
  } else if (n < 192) {
    out.push_back(static_cast<uint8_t>(n));
  } else {
    out.push_back(static_cast<uint8_t>(((n - 192) >> 8) + 192));
    out.push_back(static_cast<uint8_t>((n - 192) & 0xff));
  }
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Errc parse_error(ByteView data) {
  auto r = parse_key_packet(data);
  REQUIRE_FALSE(r);
  return r.error().code;
}

// ---- throwaway GnuPG homes ------------------------------------------------------------------

bool gpg_available() {
  static bool ok = std::system("gpg --version >/dev/null 2>&1") == 0 &&
                   std::system("gpgconf --version >/dev/null 2>&1") == 0;
  return ok;
}

#define NEED_GPG()                                    \
  do {                                                \
    if (!gpg_available()) {                           \
      WARN("gpg or gpgconf not found: test skipped"); \
      return;                                         \
    }                                                 \
  } while (0)

// run returns the standard output of a shell command, and fails the test if it fails.
std::string run(const std::string& cmd) {
  FILE* f = ::popen(cmd.c_str(), "r");
  REQUIRE(f != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    out.append(buf, n);
  int status = ::pclose(f);
  INFO(cmd);
  REQUIRE(status == 0);
  return out;
}

// KeyInfo is what gpg's colon listing says about a primary key.
struct KeyInfo {
  std::string fpr;
  int64_t created = 0;
};

// GpgHome is a fresh GnuPG home under /tmp (the agent's socket path must stay under about 100
// characters), created 0700 by mkdtemp. The destructor stops its agent and removes it.
struct GpgHome {
  std::string dir;

  GpgHome() {
    char tmpl[] = "/tmp/es-pgp-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
  }
  ~GpgHome() {
    std::string kill = "gpgconf --homedir '" + dir + "' --kill gpg-agent >/dev/null 2>&1";
    (void)std::system(kill.c_str());
    // The agent removes its sockets as it exits, after gpgconf returns; remove_all stops at
    // an entry that vanished under it, so try again until the directory is gone.
    for (int i = 0; i < 100 && std::filesystem::exists(dir); ++i) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      if (ec)
        ::usleep(10000);
    }
  }

  // gpg runs gpg in batch mode on this home, with an empty passphrase unless |args| sets one.
  std::string gpg(const std::string& args, const std::string& passphrase = "") const {
    return run("gpg --homedir '" + dir + "' --batch --no-tty --pinentry-mode loopback " +
               "--passphrase '" + passphrase + "' " + args + " 2>/dev/null");
  }

  // keys lists the primary keys gpg has (secret ones if |secret|), in listing order.
  std::vector<KeyInfo> keys(bool secret = false) const {
    std::istringstream in(
        gpg(std::string("--with-colons ") + (secret ? "--list-secret-keys" : "--list-keys")));
    std::vector<KeyInfo> out;
    bool want_fpr = false;
    for (std::string line; std::getline(in, line);) {
      std::vector<std::string> f;
      std::stringstream ss(line);
      for (std::string field; std::getline(ss, field, ':');)
        f.push_back(field);
      if (f.size() > 5 && (f[0] == "pub" || f[0] == "sec")) {
        out.push_back({"", std::stoll(f[5])});
        want_fpr = true;
      } else if (want_fpr && f.size() > 9 && f[0] == "fpr") {
        out.back().fpr = f[9];
        want_fpr = false;
      }
    }
    return out;
  }

  // gen makes a key with User ID |uid| and returns gpg's view of it.
  KeyInfo gen(const std::string& uid, const std::string& algo, const std::string& expire = "never",
              const std::string& extra = "", const std::string& passphrase = "") const {
    std::set<std::string> before;
    for (const auto& k : keys())
      before.insert(k.fpr);
    gpg(extra + " --quick-gen-key '" + uid + "' " + algo + " sign " + expire, passphrase);
    for (const auto& k : keys())
      if (!before.count(k.fpr))
        return k;
    FAIL("gpg made no key");
    return {};
  }

  // import_revocation imports the revocation certificate gpg made in |maker| for |fpr|.
  void import_revocation(const GpgHome& maker, const std::string& fpr) const {
    std::ifstream in(maker.dir + "/openpgp-revocs.d/" + fpr + ".rev");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string cert = ss.str();
    size_t armor = cert.find(":-----BEGIN");
    REQUIRE(armor != std::string::npos);
    cert.erase(armor, 1);  // gpg prefixes a colon so that it is not imported by accident
    std::string path = dir + "/import.rev";
    std::ofstream(path) << cert;
    gpg("--import '" + path + "'");
  }

  // import_key imports the public key |fpr| of |from|, exported by GnuPG::export_public_armored.
  void import_key(const GpgHome& from, const std::string& fpr) const {
    std::string path = dir + "/import.asc";
    std::ofstream(path) << from.open().export_public_armored(fpr).value();
    gpg("--import '" + path + "'");
  }

  GnuPG open() const {
    auto g = GnuPG::open(dir);
    INFO((g ? "" : g.error().detail));
    REQUIRE(g);
    return std::move(g).value();
  }
};

Bytes message(size_t n, uint8_t seed) {
  Bytes m(n);
  for (size_t i = 0; i < n; ++i)
    m[i] = static_cast<uint8_t>(seed + 37 * i);
  return m;
}

// check_signature requires |sig| to verify for |message| under |key| and to fail once any of
// a few bits of the signature or of the message is flipped.
void check_signature(const PublicKey& key, SignAlg a, ByteView msg, ByteView sig) {
  REQUIRE(key.verify(a, msg, sig));
  for (size_t bit : {size_t{0}, sig.size() * 4 + 3, sig.size() * 8 - 1}) {
    Bytes bad(sig.begin(), sig.end());
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    CHECK_FALSE(key.verify(a, msg, bad));
  }
  Bytes other(msg.begin(), msg.end());
  other[0] ^= 1;
  CHECK_FALSE(key.verify(a, other, sig));
}

}  // namespace

// ---- the packet parser ----------------------------------------------------------------------

TEST_CASE("OpenPGP: gpg's Ed25519 and RSA key packets parse to gpg's fingerprints", "[openpgp]") {
  Bytes ed = from_hex(kEdPacket);
  auto p = parse_key_packet(ed);
  REQUIRE(p);
  CHECK(fingerprint_hex(p->fingerprint) == kEdFpr);
  CHECK(p->created == kCreated);
  CHECK(p->packet == ed);
  REQUIRE(p->key.type() == KeyType::ed25519);
  CHECK(p->key.raw() == Bytes(ed.begin() + 2 + kEdPoint + 1, ed.end()));

  Bytes rsa = from_hex(kRsaPacket);
  auto q = parse_key_packet(rsa);
  REQUIRE(q);
  CHECK(fingerprint_hex(q->fingerprint) == kRsaFpr);
  CHECK(q->created == kCreated);
  REQUIRE(q->key.type() == KeyType::rsa);
  CHECK(q->key.bits() == 2048);
  CHECK(q->key.component("e") == BigNum::from_word(65537));

  // A transferable key: what follows the first packet (here a User ID packet) is not read.
  Bytes tpk = ed;
  Bytes uid = old_packet(13, view(std::string_view("xmpp:alice@example.org")), 1);
  tpk.insert(tpk.end(), uid.begin(), uid.end());
  auto t = parse_key_packet(tpk);
  REQUIRE(t);
  CHECK(t->packet == ed);
  CHECK(t->fingerprint == p->fingerprint);
}

TEST_CASE("OpenPGP: the header's length encoding changes neither key nor fingerprint",
          "[openpgp]") {
  Bytes body = rsa_body();
  for (const Bytes& packet : {old_packet(6, body, 2), old_packet(6, body, 4), new_packet(6, body),
                              new_packet(6, body, true)}) {
    auto p = parse_key_packet(packet);
    REQUIRE(p);
    CHECK(fingerprint_hex(p->fingerprint) == kRsaFpr);
    CHECK(p->packet == packet);
  }
  for (const Bytes& packet : {old_packet(6, ed_body(), 1), new_packet(6, ed_body())})
    CHECK(fingerprint_hex(parse_key_packet(packet)->fingerprint) == kEdFpr);
}

TEST_CASE("OpenPGP: every truncation of a key packet is refused", "[openpgp]") {
  for (const char* h : {kEdPacket, kRsaPacket}) {
    Bytes full = from_hex(h);
    for (size_t n = 0; n < full.size(); ++n) {
      INFO("prefix of " << n << " bytes");
      CHECK(parse_error(ByteView(full).first(n)) == Errc::malformed);
    }
    // The body cut short with a header that agrees with it.
    Bytes body = full[0] == 0x98 ? ed_body() : rsa_body();
    for (size_t n = 0; n < body.size(); ++n) {
      INFO("body of " << n << " bytes");
      CHECK(parse_error(old_packet(6, ByteView(body).first(n))) == Errc::malformed);
    }
  }
}

TEST_CASE("OpenPGP: packets other than a Public-Key packet are refused", "[openpgp]") {
  Bytes body = ed_body();
  for (int tag : {5, 7, 13, 14})
    CHECK(parse_error(old_packet(tag, body)) == Errc::malformed);
  CHECK(parse_error(new_packet(14, body)) == Errc::malformed);
  Bytes plain = old_packet(6, body);
  plain[0] &= 0x7f;  // bit 7 clear: not a packet at all
  CHECK(parse_error(plain) == Errc::malformed);
  CHECK(parse_error({}) == Errc::malformed);
}

TEST_CASE("OpenPGP: v3 and v5 keys and other algorithms are unsupported", "[openpgp]") {
  for (int version : {2, 3, 5}) {
    Bytes body = ed_body();
    body[0] = static_cast<uint8_t>(version);
    CHECK(parse_error(old_packet(6, body)) == Errc::unsupported);
  }
  for (int algo : {16, 18, 19, 20, 21, 99}) {
    Bytes body = ed_body();
    body[kEdAlgo] = static_cast<uint8_t>(algo);
    CHECK(parse_error(old_packet(6, body)) == Errc::unsupported);
  }
  // An RSA body read as DSA runs out of MPIs.
  Bytes rsa = rsa_body();
  rsa[kEdAlgo] = 17;
  CHECK(parse_error(old_packet(6, rsa)) == Errc::malformed);
}

TEST_CASE("OpenPGP: curve OIDs other than Ed25519's are refused", "[openpgp]") {
  Bytes other = ed_body();
  other[kEdOidLast] = 0x02;
  CHECK(parse_error(old_packet(6, other)) == Errc::unsupported);
  Bytes shorter = ed_body();
  shorter[kEdOidLen] = 8;
  CHECK(parse_error(old_packet(6, shorter)) == Errc::unsupported);
  for (int reserved : {0x00, 0xff}) {
    Bytes body = ed_body();
    body[kEdOidLen] = static_cast<uint8_t>(reserved);
    CHECK(parse_error(old_packet(6, body)) == Errc::malformed);
  }
}

TEST_CASE("OpenPGP: bad lengths and non-canonical MPIs are refused", "[openpgp]") {
  Bytes ed = ed_body();
  SECTION("MPI bit counts must be exact") {
    for (int bits : {0x06, 0x08}) {  // 262 and 264 bits: still 33 octets, but not 263
      Bytes body = ed;
      body[kEdMpiBits + 1] = static_cast<uint8_t>(bits);
      CHECK(parse_error(old_packet(6, body)) == Errc::malformed);
    }
    Bytes rsa = rsa_body();
    rsa[7] = 0x01;  // n claims 2049 bits
    CHECK(parse_error(old_packet(6, rsa)) == Errc::malformed);
  }
  SECTION("an Ed25519 point is 0x40 and 32 octets") {
    Bytes body = ed;
    body[kEdPoint] = 0x41;
    CHECK(parse_error(old_packet(6, body)) == Errc::malformed);
  }
  SECTION("the body ends with the key material") {
    Bytes body = ed;
    body.push_back(0);
    CHECK(parse_error(old_packet(6, body)) == Errc::malformed);
  }
  SECTION("the header's length must fit the data") {
    Bytes packet = old_packet(6, ed, 1);
    packet[1] += 1;
    CHECK(parse_error(packet) == Errc::malformed);
  }
  SECTION("indeterminate and partial lengths are for data packets") {
    Bytes indeterminate = {0x9b};
    indeterminate.insert(indeterminate.end(), ed.begin(), ed.end());
    CHECK(parse_error(indeterminate) == Errc::malformed);
    Bytes partial = {0xc6, 0xe5};  // a partial length of 32
    partial.insert(partial.end(), ed.begin(), ed.end());
    CHECK(parse_error(partial) == Errc::malformed);
  }
  SECTION("the v4 fingerprint hashes a 2-octet length") {
    Bytes body = ed;
    body.resize(0x10000);
    CHECK(parse_error(new_packet(6, body, true)) == Errc::malformed);
  }
}

TEST_CASE("OpenPGP: keys are validated like keys from the wire", "[openpgp]") {
  // A 1024-bit RSA modulus: the body of gpg's key with n cut to its first 128 octets.
  Bytes rsa = rsa_body();
  Bytes body(rsa.begin(), rsa.begin() + 6);
  body.insert(body.end(), {0x04, 0x00});
  body.insert(body.end(), rsa.begin() + 8, rsa.begin() + 8 + 128);
  body.insert(body.end(), rsa.end() - 5, rsa.end());
  CHECK(parse_error(old_packet(6, body)) == Errc::not_acceptable);
  // An even exponent.
  Bytes even = rsa_body();
  even.back() = 0x00;
  CHECK_FALSE(parse_key_packet(old_packet(6, even)));
}

TEST_CASE("OpenPGP: fingerprints as text and User IDs naming a JID", "[openpgp]") {
  CHECK(fingerprint_from_text("df13 4115 0a60 5611 477e  53d1 8412 8d40 4755 c173") == kEdFpr);
  CHECK(fingerprint_from_text(kEdFpr) == kEdFpr);
  CHECK_FALSE(fingerprint_from_text("DF1341150A605611477E53D184128D404755C17"));
  CHECK_FALSE(fingerprint_from_text("DF1341150A605611477E53D184128D404755C1733"));
  CHECK_FALSE(fingerprint_from_text("0xDF1341150A605611477E53D184128D404755C1"));
  CHECK_FALSE(fingerprint_from_text("alice@example.org"));
  CHECK(fingerprint_hex(from_hex("00ff10")) == "00FF10");

  CHECK(uid_names_jid("xmpp:alice@example.org", "alice@example.org"));
  CHECK(uid_names_jid("Alice <xmpp:alice@example.org>", "alice@example.org"));
  CHECK(uid_names_jid("<xmpp:alice@example.org>", "alice@example.org"));
  CHECK_FALSE(uid_names_jid("xmpp:alice@example.org.evil", "alice@example.org"));
  CHECK_FALSE(uid_names_jid("xmpp:malice@example.org", "alice@example.org"));
  CHECK_FALSE(uid_names_jid("Alice <alice@example.org>", "alice@example.org"));
  CHECK_FALSE(uid_names_jid("alice@example.org", "alice@example.org"));
  CHECK_FALSE(uid_names_jid("xmpp:Alice@example.org", "alice@example.org"));
  CHECK_FALSE(uid_names_jid("Alice <xmpp:alice@example.org> x", "alice@example.org"));
  CHECK_FALSE(uid_names_jid("xmpp:", ""));
}

// ---- GnuPG and gpg-agent --------------------------------------------------------------------

TEST_CASE("OpenPGP: gpg-agent's RSA signatures verify with the exported key", "[openpgp]") {
  NEED_GPG();
  GpgHome h;
  KeyInfo k = h.gen("xmpp:alice@example.org", "rsa2048");
  GnuPG g = h.open();

  auto fpr = g.find_secret_key("alice@example.org/laptop");
  REQUIRE(fpr);
  CHECK(*fpr == k.fpr);
  auto p = g.primary_key(k.fpr);
  REQUIRE(p);
  CHECK(fingerprint_hex(p->fingerprint) == k.fpr);
  CHECK(p->created == k.created);
  CHECK(p->key.type() == KeyType::rsa);
  // The packet is the first one of what gpg itself exports.
  std::string exported = h.gpg("--export-options export-minimal --export " + k.fpr);
  CHECK(p->packet == Bytes(exported.begin(), exported.begin() + p->packet.size()));

  for (size_t n : {32, 64, 5}) {
    Bytes msg = message(n, 1);
    auto sig = g.agent_sign(k.fpr, SignAlg::rsa_sha256, msg);
    INFO((sig ? "" : sig.error().detail));
    REQUIRE(sig);
    CHECK(sig->size() == 256);
    check_signature(p->key, SignAlg::rsa_sha256, msg, *sig);
  }
  auto wrong = g.agent_sign(k.fpr, SignAlg::ed25519, message(32, 1));
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code == Errc::unsupported);

  auto armored = g.export_public_armored(k.fpr);
  REQUIRE(armored);
  CHECK(armored->rfind("-----BEGIN PGP PUBLIC KEY BLOCK-----", 0) == 0);
}

TEST_CASE("OpenPGP: gpg-agent makes pure Ed25519 signatures of the message itself", "[openpgp]") {
  NEED_GPG();
  GpgHome h;
  KeyInfo k = h.gen("xmpp:alice@example.org", "ed25519");
  GnuPG g = h.open();
  auto p = g.primary_key(k.fpr);
  REQUIRE(p);
  REQUIRE(p->key.type() == KeyType::ed25519);
  // Verified with a key built from nothing but the packet's 32 bytes, by OpenSSL's pure
  // Ed25519 (RFC 8032, no prehash): the agent signed the MAC value itself.
  auto key = PublicKey::ed25519(p->key.raw());
  REQUIRE(key);
  for (size_t n : {32, 64}) {
    Bytes msg = message(n, 7);
    auto sig = g.agent_sign(k.fpr, SignAlg::ed25519, msg);
    INFO((sig ? "" : sig.error().detail));
    REQUIRE(sig);
    CHECK(sig->size() == 64);
    check_signature(*key, SignAlg::ed25519, msg, *sig);
    // Not a signature of a hash of the message.
    CHECK_FALSE(key->verify(SignAlg::ed25519, digest(HashAlg::sha256, msg), *sig));
    CHECK_FALSE(key->verify(SignAlg::ed25519, digest(HashAlg::sha512, msg), *sig));
    // Ed25519 is deterministic: the same message gives the same signature.
    CHECK(g.agent_sign(k.fpr, SignAlg::ed25519, msg).value() == *sig);
  }
  // A subkey's fingerprint names no primary key.
  h.gpg("--quick-add-key " + k.fpr + " cv25519 encr");
  std::string listing = h.gpg("--with-colons --list-keys " + k.fpr);
  size_t second = listing.find("\nfpr:", listing.find("\nfpr:") + 1);
  REQUIRE(second != std::string::npos);
  std::string sub = listing.substr(second + 13, 40);
  REQUIRE(sub != k.fpr);
  CHECK(g.primary_key(sub).error().code == Errc::not_acceptable);
  CHECK_FALSE(g.status(sub, "alice@example.org")->found);
  CHECK(g.find_secret_key(sub).error().code == Errc::not_acceptable);
  CHECK(g.agent_sign(sub, SignAlg::ed25519, message(32, 7)).error().code == Errc::not_acceptable);
  CHECK(g.primary_key(k.fpr).value().packet == p->packet);

  auto odd = g.agent_sign(k.fpr, SignAlg::ed25519, message(48, 7));
  REQUIRE_FALSE(odd);
  CHECK(odd.error().code == Errc::unsupported);
  CHECK_FALSE(g.agent_sign(k.fpr, SignAlg::rsa_sha256, message(32, 7)));
}

TEST_CASE("OpenPGP: gpg-agent's DSA signatures verify as r | s", "[openpgp]") {
  NEED_GPG();
  GpgHome h;
  KeyInfo k = h.gen("xmpp:alice@example.org", "dsa2048");
  GnuPG g = h.open();
  auto p = g.primary_key(k.fpr);
  REQUIRE(p);
  REQUIRE(p->key.type() == KeyType::dsa);
  size_t qlen = static_cast<size_t>(p->key.component("q").bits() + 7) / 8;
  for (uint8_t seed = 0; seed < 4; ++seed) {
    Bytes msg = message(32, seed);
    auto sig = g.agent_sign(k.fpr, SignAlg::dsa_sha256, msg);
    INFO((sig ? "" : sig.error().detail));
    REQUIRE(sig);
    CHECK(sig->size() == 2 * qlen);
    check_signature(p->key, SignAlg::dsa_sha256, msg, *sig);
  }
}

TEST_CASE("OpenPGP: OpenPgpSigner signs as the key it presents", "[openpgp]") {
  NEED_GPG();
  GpgHome h;
  KeyInfo k = h.gen("xmpp:alice@example.org", "ed25519");
  auto s = OpenPgpSigner::open(h.open(), k.fpr);
  REQUIRE(s);
  CHECK(s->fingerprint() == k.fpr);
  CHECK(s->can_sign(SignAlg::ed25519));
  CHECK_FALSE(s->can_sign(SignAlg::rsa_sha256));
  REQUIRE(s->credential() != nullptr);
  CHECK(s->credential()->kind == CredentialKind::openpgp);
  REQUIRE(s->credential()->items.size() == 1);
  CHECK(parse_key_packet(s->credential()->items[0])->key == s->public_key());
  Bytes msg = message(32, 3);
  auto sig = s->sign(SignAlg::ed25519, msg);
  REQUIRE(sig);
  check_signature(s->public_key(), SignAlg::ed25519, msg, *sig);

  // A public key without its secret part cannot make a signer.
  GpgHome other;
  other.import_key(h, k.fpr);
  auto no_secret = OpenPgpSigner::open(other.open(), k.fpr);
  REQUIRE_FALSE(no_secret);
  CHECK(no_secret.error().code == Errc::not_acceptable);
}

TEST_CASE("OpenPGP: find_secret_key by JID and by fingerprint", "[openpgp]") {
  NEED_GPG();
  GpgHome h;
  GnuPG g = h.open();
  auto none = g.find_secret_key("alice@example.org");
  REQUIRE_FALSE(none);
  CHECK(none.error().code == Errc::not_acceptable);

  KeyInfo alice = h.gen("Alice <xmpp:alice@example.org>", "ed25519");
  KeyInfo decoy = h.gen("xmpp:alice@example.org.evil", "ed25519");
  KeyInfo plain = h.gen("Alice <alice@example.org>", "ed25519");
  CHECK(g.find_secret_key("alice@example.org").value() == alice.fpr);
  CHECK(g.find_secret_key("alice@example.org/phone").value() == alice.fpr);
  CHECK(g.find_secret_key("alice@example.org.evil").value() == decoy.fpr);
  // By fingerprint, whatever its User IDs; spaces and lower case are fine.
  std::string spaced;
  for (size_t i = 0; i < plain.fpr.size(); i += 4)
    spaced += plain.fpr.substr(i, 4) + " ";
  for (char& c : spaced)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  CHECK(g.find_secret_key(spaced).value() == plain.fpr);
  auto unknown = g.find_secret_key("0000000000000000000000000000000000000000");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == Errc::not_acceptable);
  CHECK_FALSE(g.find_secret_key(""));

  KeyInfo second = h.gen("xmpp:alice@example.org", "ed25519");
  auto two = g.find_secret_key("alice@example.org");
  REQUIRE_FALSE(two);
  CHECK(two.error().code == Errc::malformed);
  CHECK(two.error().detail.find(alice.fpr) != std::string::npos);
  CHECK(two.error().detail.find(second.fpr) != std::string::npos);
  CHECK(g.find_secret_key(second.fpr).value() == second.fpr);
}

TEST_CASE("OpenPGP: revoked and expired keys are not used, and status says why", "[openpgp]") {
  NEED_GPG();
  GpgHome h;
  GnuPG g = h.open();
  SECTION("expired") {
    // Made in 2020 with a lifetime of one day.
    KeyInfo k =
        h.gen("xmpp:alice@example.org", "ed25519", "1d", "--faked-system-time 20200101T000000");
    auto st = g.status(k.fpr, "alice@example.org");
    REQUIRE(st);
    CHECK(st->found);
    CHECK(st->expired);
    CHECK_FALSE(st->revoked);
    auto by_jid = g.find_secret_key("alice@example.org");
    REQUIRE_FALSE(by_jid);
    CHECK(by_jid.error().code == Errc::not_acceptable);
    CHECK(by_jid.error().detail.find("1 revoked, expired") != std::string::npos);
    auto by_fpr = g.find_secret_key(k.fpr);
    REQUIRE_FALSE(by_fpr);
    CHECK(by_fpr.error().detail.find("expired") != std::string::npos);
  }
  SECTION("revoked") {
    KeyInfo k = h.gen("xmpp:alice@example.org", "ed25519");
    REQUIRE(g.find_secret_key("alice@example.org"));
    h.import_revocation(h, k.fpr);  // the certificate gpg made with the key
    auto st = g.status(k.fpr, "alice@example.org");
    REQUIRE(st);
    CHECK(st->revoked);
    auto by_jid = g.find_secret_key("alice@example.org");
    REQUIRE_FALSE(by_jid);
    CHECK(by_jid.error().code == Errc::not_acceptable);
    auto by_fpr = g.find_secret_key(k.fpr);
    REQUIRE_FALSE(by_fpr);
    CHECK(by_fpr.error().detail.find("revoked") != std::string::npos);
  }
}

TEST_CASE("OpenPGP: status follows the keyring's validity", "[openpgp]") {
  NEED_GPG();
  GpgHome alice_home, bob_home;
  KeyInfo alice = alice_home.gen("xmpp:alice@example.org", "ed25519");
  KeyInfo bob = bob_home.gen("Bob <xmpp:bob@example.com>", "rsa2048");
  GnuPG g = alice_home.open();

  auto own = g.status(alice.fpr, "alice@example.org");
  REQUIRE(own);
  CHECK(own->found);
  CHECK(own->has_uid);
  CHECK(own->uid_validity == Validity::ultimate);
  CHECK_FALSE((own->revoked || own->expired || own->disabled || own->invalid));
  CHECK(own->fingerprint == alice.fpr);
  auto other_jid = g.status(alice.fpr, "bob@example.com");
  REQUIRE(other_jid);
  CHECK(other_jid->found);
  CHECK_FALSE(other_jid->has_uid);

  auto absent = g.status(bob.fpr, "bob@example.com");
  REQUIRE(absent);
  CHECK_FALSE(absent->found);
  CHECK_FALSE(absent->has_uid);

  // Bob's key, imported: present, but nothing vouches for its User ID.
  alice_home.import_key(bob_home, bob.fpr);
  auto imported = g.status(bob.fpr, "bob@example.com");
  REQUIRE(imported);
  CHECK(imported->found);
  CHECK(imported->has_uid);
  CHECK(imported->uid_validity == Validity::unknown);
  // Alice, ultimately trusted, certifies it: fully valid.
  alice_home.gpg("--quick-sign-key " + bob.fpr);
  auto certified = g.status(bob.fpr, "bob@example.com");
  REQUIRE(certified);
  CHECK(certified->uid_validity == Validity::full);
  CHECK_FALSE(certified->revoked);

  // Bob revokes his key and Alice imports the revocation.
  alice_home.import_revocation(bob_home, bob.fpr);
  auto revoked = g.status(bob.fpr, "bob@example.com");
  REQUIRE(revoked);
  CHECK(revoked->found);
  CHECK(revoked->revoked);
}

TEST_CASE("OpenPGP: a passphrase given by the caller reaches the agent in loopback mode",
          "[openpgp]") {
  NEED_GPG();
  GpgHome h;
  // No pinentry can run here: without a passphrase from us, the agent cannot unlock the key.
  std::ofstream(h.dir + "/gpg-agent.conf") << "pinentry-program /bin/false\n";
  KeyInfo k = h.gen("xmpp:alice@example.org", "ed25519", "never", "", "correct horse");
  // A fresh agent, so that nothing is cached from the key generation.
  run("gpgconf --homedir '" + h.dir + "' --kill gpg-agent");
  GnuPG g = h.open();
  auto p = g.primary_key(k.fpr);
  REQUIRE(p);
  Bytes msg = message(32, 9);

  auto no_pass = g.agent_sign(k.fpr, SignAlg::ed25519, msg);
  REQUIRE_FALSE(no_pass);
  INFO(no_pass.error().detail);
  CHECK(no_pass.error().code == Errc::not_acceptable);

  std::string wrong = "wrong horse", right = "correct horse";
  auto bad = g.agent_sign(k.fpr, SignAlg::ed25519, msg, view(wrong));
  REQUIRE_FALSE(bad);
  INFO(bad.error().detail);
  CHECK(bad.error().code == Errc::auth_failed);

  auto sig = g.agent_sign(k.fpr, SignAlg::ed25519, msg, view(right));
  INFO((sig ? "" : sig.error().detail));
  REQUIRE(sig);
  check_signature(p->key, SignAlg::ed25519, msg, *sig);
}
