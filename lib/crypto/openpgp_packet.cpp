// The OpenPGP packet layer we need: one v4 Public-Key packet (RFC 4880 §4.2, §5.5.2, §12.2).
//
// This is a parser for bytes from the network (a peer's credential), so it is written like the
// rest of lib/'s wire parsing: a cursor that cannot read past the end, a length check before
// every read, and one canonical encoding accepted for every value.
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

#include "crypto/openpgp_packet.hpp"

namespace esession::openpgp {

namespace {

constexpr uint8_t kTagPublicKey = 6;
constexpr uint8_t kVersion4 = 4;

// Public-key algorithm IDs (RFC 4880 §9.1, RFC 6637 §5, RFC 4880bis §9.1).
constexpr uint8_t kAlgRsa = 1;
constexpr uint8_t kAlgRsaEncrypt = 2;
constexpr uint8_t kAlgRsaSign = 3;
constexpr uint8_t kAlgElgamal = 16;
constexpr uint8_t kAlgDsa = 17;
constexpr uint8_t kAlgEcdh = 18;
constexpr uint8_t kAlgEcdsa = 19;
constexpr uint8_t kAlgElgamalSign = 20;
constexpr uint8_t kAlgEddsa = 22;

// The curve OID of Ed25519 for EdDSA, 1.3.6.1.4.1.11591.15.1, as its DER contents octets: the
// packet carries it without the DER tag and length (RFC 6637 §9, RFC 4880bis §9.2).
constexpr uint8_t kEd25519Oid[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01};
// An EdDSA point is an MPI of 0x40 followed by the 32-byte native encoding (RFC 4880bis
// §13.3): 33 octets, 263 bits since 0x40 has seven significant bits.
constexpr uint8_t kNativePointPrefix = 0x40;
constexpr size_t kEd25519PointBytes = 33;

// Reader is a cursor over a byte string. Every read checks the length first and fails,
// leaving the cursor where it was, if fewer bytes are left.
class Reader {
 public:
  explicit Reader(ByteView b) : m_b(b) {}

  size_t left() const { return m_b.size() - m_pos; }
  size_t pos() const { return m_pos; }

  bool u8(uint8_t& out) {
    if (left() < 1)
      return false;
    out = m_b[m_pos++];
    return true;
  }

  // be reads an |n|-byte big-endian number, n <= 4.
  bool be(size_t n, uint32_t& out) {
    if (n > 4 || left() < n)
      return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v = (v << 8) | m_b[m_pos + i];
    m_pos += n;
    out = v;
    return true;
  }

  bool bytes(size_t n, ByteView& out) {
    if (left() < n)
      return false;
    out = m_b.subspan(m_pos, n);
    m_pos += n;
    return true;
  }

 private:
  ByteView m_b;
  size_t m_pos = 0;
};

Error truncated(const char* what) {
  return fail(Errc::malformed, std::string("OpenPGP key packet truncated in ") + what);
}

struct Header {
  uint8_t tag = 0;
  size_t header_len = 0;
  size_t body_len = 0;
};

// read_header reads a packet header (RFC 4880 §4.2) and checks that the body is all there.
Result<Header> read_header(ByteView data) {
  Reader r(data);
  uint8_t ctb = 0;
  if (!r.u8(ctb))
    return fail(Errc::malformed, "empty OpenPGP data");
  if (!(ctb & 0x80))
    return fail(Errc::malformed, "not an OpenPGP packet (bit 7 of its first octet is clear)");
  Header h;
  uint32_t len = 0;
  if (ctb & 0x40) {
    // New format (§4.2.2): tag in bits 5-0, then a 1-, 2- or 5-octet length.
    h.tag = ctb & 0x3f;
    uint8_t o1 = 0;
    if (!r.u8(o1))
      return truncated("the packet header");
    if (o1 < 192) {
      len = o1;
    } else if (o1 < 224) {
      uint8_t o2 = 0;
      if (!r.u8(o2))
        return truncated("the packet header");
      len = ((uint32_t{o1} - 192) << 8) + o2 + 192;
    } else if (o1 == 255) {
      if (!r.be(4, len))
        return truncated("the packet header");
    } else {
      // §4.2.2.4: partial body lengths are for data packets only.
      return fail(Errc::malformed, "a partial body length in a key packet");
    }
  } else {
    // Old format (§4.2.1): tag in bits 5-2, length type in bits 1-0.
    h.tag = (ctb >> 2) & 0x0f;
    size_t n = ctb & 0x03;
    if (n == 3)
      return fail(Errc::malformed, "an indeterminate length in a key packet");
    if (!r.be(n == 2 ? 4 : n + 1, len))
      return truncated("the packet header");
  }
  h.header_len = r.pos();
  h.body_len = len;
  if (r.left() < h.body_len)
    return truncated("the packet body");
  return h;
}

// bit_length returns the number of significant bits of |b| (0 for 0).
int bit_length(uint8_t b) {
  int n = 0;
  for (; b; b >>= 1)
    ++n;
  return n;
}

// read_mpi reads a multiprecision integer (§3.2): a 2-octet bit count, then the big-endian
// value in (bits + 7) / 8 octets. The bit count must be exact (no leading zero bits), so each
// value has one encoding.
bool read_mpi(Reader& r, ByteView& out) {
  uint32_t bits = 0;
  if (!r.be(2, bits) || !r.bytes((bits + 7) / 8, out))
    return false;
  if (out.empty())
    return true;
  return bit_length(out[0]) == static_cast<int>(bits - 8 * (out.size() - 1));
}

// read_mpis reads |n| MPIs into big numbers.
Result<std::vector<BigNum>> read_mpis(Reader& r, size_t n) {
  std::vector<BigNum> out;
  for (size_t i = 0; i < n; ++i) {
    ByteView v;
    if (!read_mpi(r, v))
      return fail(Errc::malformed, "a truncated or non-canonical MPI in a key packet");
    out.push_back(BigNum::from_bytes(v));
  }
  return out;
}

// read_ed25519 reads the rest of an EdDSA key (§5.5.2 as extended by RFC 4880bis §5.5.5.5):
// the curve OID, then the point.
Result<PublicKey> read_ed25519(Reader& r) {
  uint8_t oid_len = 0;
  ByteView oid;
  if (!r.u8(oid_len) || !r.bytes(oid_len, oid))
    return truncated("the curve OID");
  // RFC 6637 §9: 0 and 0xFF are reserved for future extensions.
  if (oid_len == 0 || oid_len == 0xff)
    return fail(Errc::malformed, "a reserved curve OID length in a key packet");
  if (!std::equal(oid.begin(), oid.end(), std::begin(kEd25519Oid), std::end(kEd25519Oid)))
    return fail(Errc::unsupported, "an EdDSA key on a curve other than Ed25519");
  ByteView point;
  if (!read_mpi(r, point))
    return fail(Errc::malformed, "a truncated or non-canonical EdDSA point");
  if (point.size() != kEd25519PointBytes || point[0] != kNativePointPrefix)
    return fail(Errc::malformed, "an Ed25519 point that is not 0x40 followed by 32 octets");
  return PublicKey::ed25519(point.subspan(1));
}

// read_key reads the algorithm-specific fields of a v4 key.
Result<PublicKey> read_key(Reader& r, uint8_t algo) {
  switch (algo) {
    case kAlgRsa:
    case kAlgRsaEncrypt:
    case kAlgRsaSign: {
      ES_ASSIGN(auto v, read_mpis(r, 2));  // n, e
      return PublicKey::rsa(v[0], v[1]);
    }
    case kAlgDsa: {
      ES_ASSIGN(auto v, read_mpis(r, 4));  // p, q, g, y
      return PublicKey::dsa(v[0], v[1], v[2], v[3]);
    }
    case kAlgEddsa:
      return read_ed25519(r);
    case kAlgElgamal:
    case kAlgElgamalSign:
      return fail(Errc::unsupported, "Elgamal keys cannot sign for XEP-0116");
    case kAlgEcdh:
    case kAlgEcdsa:
      return fail(Errc::unsupported, "ECDH and ECDSA keys are not supported");
    default:
      return fail(Errc::unsupported,
                  "OpenPGP public-key algorithm " + std::to_string(algo) + " is not supported");
  }
}

// v4_fingerprint returns SHA-1(0x99 | 2-octet length | body) (§12.2).
Bytes v4_fingerprint(ByteView body) {
  const uint8_t prefix[3] = {0x99, static_cast<uint8_t>(body.size() >> 8),
                             static_cast<uint8_t>(body.size() & 0xff)};
  Bytes in = concat({ByteView(prefix), body});
  Bytes out(kFingerprintBytes);
  unsigned int len = 0;
  if (EVP_Digest(in.data(), in.size(), out.data(), &len, EVP_sha1(), nullptr) != 1 ||
      len != out.size())
    return {};
  return out;
}

}  // namespace

Result<KeyPacket> parse_key_packet(ByteView data) {
  ES_ASSIGN(Header h, read_header(data));
  if (h.tag != kTagPublicKey)
    return fail(Errc::malformed, "OpenPGP packet of tag " + std::to_string(h.tag) +
                                     ", not a Public-Key packet (tag 6)");
  // The v4 fingerprint hashes the body length in two octets: a longer body has none.
  if (h.body_len > 0xffff)
    return fail(Errc::malformed, "an OpenPGP key packet over 65535 octets");
  ByteView body = data.subspan(h.header_len, h.body_len);
  Reader r(body);
  uint8_t version = 0, algo = 0;
  uint32_t created = 0;
  if (!r.u8(version))
    return truncated("the version");
  if (version != kVersion4)
    return fail(Errc::unsupported,
                "OpenPGP v" + std::to_string(version) + " key packets are not supported (only v4)");
  if (!r.be(4, created) || !r.u8(algo))
    return truncated("the creation time and algorithm");
  ES_ASSIGN(PublicKey key, read_key(r, algo));
  if (r.left() != 0)
    return fail(Errc::malformed, "trailing octets after the key material of a key packet");
  Bytes fpr = v4_fingerprint(body);
  if (fpr.empty())
    return fail(Errc::internal, "SHA-1 is not available for the OpenPGP fingerprint");
  ByteView whole = data.first(h.header_len + h.body_len);
  return KeyPacket{std::move(fpr), int64_t{created}, std::move(key), bytes_of(whole)};
}

std::string fingerprint_hex(ByteView fpr) {
  std::string s = hex(fpr);
  for (char& c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::optional<std::string> fingerprint_from_text(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ' ')
      continue;
    if (!std::isxdigit(static_cast<unsigned char>(c)))
      return std::nullopt;
    out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  if (out.size() != 2 * kFingerprintBytes)
    return std::nullopt;
  return out;
}

bool uid_names_jid(std::string_view uid, std::string_view bare_jid) {
  if (bare_jid.empty())
    return false;
  std::string want = "xmpp:" + std::string(bare_jid);
  if (uid == want)
    return true;
  // "Name <address>": the address is what the last angle brackets hold.
  if (uid.size() < want.size() + 2 || uid.back() != '>')
    return false;
  size_t lt = uid.rfind('<');
  return lt != std::string_view::npos && uid.substr(lt + 1, uid.size() - lt - 2) == want;
}

}  // namespace esession::openpgp
