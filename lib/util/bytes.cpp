#include "util/bytes.hpp"

#include <openssl/crypto.h>

#include <array>
#include <cctype>

namespace esession {

void cleanse(void* p, size_t n) {
  if (p != nullptr && n != 0)
    OPENSSL_cleanse(p, n);
}

bool ct_equal(ByteView a, ByteView b) {
  if (a.size() != b.size())
    return false;
  if (a.empty())
    return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Bytes concat(std::initializer_list<ByteView> parts) {
  size_t n = 0;
  for (auto p : parts)
    n += p.size();
  Bytes out;
  out.reserve(n);
  for (auto p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::string group_hex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i < h.size(); ++i) {
    if (i && i % 4 == 0)
      out += ' ';
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(h[i])));
  }
  return out;
}

std::string hex(ByteView b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (uint8_t c : b) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

Result<Bytes> unhex(std::string_view s) {
  if (s.size() % 2 != 0)
    return fail(Errc::malformed, "hex string has an odd length");
  Bytes out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return fail(Errc::malformed, "invalid hex digit");
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

static constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(ByteView b) {
  std::string out((b.size() + 2) / 3 * 4, '=');
  char* o = out.data();
  size_t i = 0;
  for (; i + 3 <= b.size(); i += 3) {
    uint32_t v = uint32_t(b[i]) << 16 | uint32_t(b[i + 1]) << 8 | b[i + 2];
    *o++ = kB64[v >> 18];
    *o++ = kB64[(v >> 12) & 63];
    *o++ = kB64[(v >> 6) & 63];
    *o++ = kB64[v & 63];
  }
  if (b.size() - i == 1) {
    uint32_t v = uint32_t(b[i]) << 16;
    *o++ = kB64[v >> 18];
    *o++ = kB64[(v >> 12) & 63];
  } else if (b.size() - i == 2) {
    uint32_t v = uint32_t(b[i]) << 16 | uint32_t(b[i + 1]) << 8;
    *o++ = kB64[v >> 18];
    *o++ = kB64[(v >> 12) & 63];
    *o++ = kB64[(v >> 6) & 63];
  }
  return out;
}

static std::array<int8_t, 256> b64_table() {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  for (int i = 0; i < 64; ++i)
    t[static_cast<uint8_t>(kB64[i])] = static_cast<int8_t>(i);
  return t;
}

Result<uint64_t> parse_decimal(std::string_view s, uint64_t max) {
  if (s.empty() || (s.size() > 1 && s[0] == '0'))
    return fail(Errc::malformed, "'" + std::string(s.substr(0, 24)) +
                                     "' is not a decimal without sign or leading zeros");
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return fail(Errc::malformed, "'" + std::string(s.substr(0, 24)) + "' is not a decimal");
    if (v > (max - static_cast<uint64_t>(c - '0')) / 10)
      return fail(Errc::malformed, "decimal larger than " + std::to_string(max));
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

Result<Bytes> unbase64(std::string_view s) {
  static const std::array<int8_t, 256> kTable = b64_table();
  if (s.size() % 4 != 0)
    return fail(Errc::malformed, "base64 length is not a multiple of 4");
  size_t pad = 0;
  if (!s.empty() && s.back() == '=')
    pad = (s.size() >= 2 && s[s.size() - 2] == '=') ? 2 : 1;
  Bytes out(s.size() / 4 * 3);
  uint8_t* o = out.data();
  // Full groups before the last one: no padding possible, so a plain table lookup; a negative
  // entry (not in the alphabet, '=' included) anywhere makes the OR negative.
  size_t full = s.empty() ? 0 : s.size() - 4;
  for (size_t i = 0; i < full; i += 4) {
    int a = kTable[static_cast<uint8_t>(s[i])], b = kTable[static_cast<uint8_t>(s[i + 1])],
        c = kTable[static_cast<uint8_t>(s[i + 2])], d = kTable[static_cast<uint8_t>(s[i + 3])];
    if ((a | b | c | d) < 0)
      return fail(Errc::malformed, "invalid base64 character");
    uint32_t v = static_cast<uint32_t>(a << 18 | b << 12 | c << 6 | d);
    *o++ = static_cast<uint8_t>(v >> 16);
    *o++ = static_cast<uint8_t>(v >> 8);
    *o++ = static_cast<uint8_t>(v);
  }
  for (size_t i = full; i < s.size(); i += 4) {
    uint32_t v = 0;
    for (size_t j = 0; j < 4; ++j) {
      char c = s[i + j];
      int d;
      if (c == '=' && j >= 4 - pad) {
        d = 0;
      } else {
        d = kTable[static_cast<uint8_t>(c)];
        if (d < 0)
          return fail(Errc::malformed, "invalid base64 character");
      }
      v = v << 6 | static_cast<uint32_t>(d);
    }
    *o++ = static_cast<uint8_t>(v >> 16);
    if (pad < 2)
      *o++ = static_cast<uint8_t>(v >> 8);
    if (pad < 1)
      *o++ = static_cast<uint8_t>(v);
    if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0))
      return fail(Errc::malformed, "non-canonical base64 (non-zero padding bits)");
  }
  out.resize(static_cast<size_t>(o - out.data()));
  return out;
}

}  // namespace esession
