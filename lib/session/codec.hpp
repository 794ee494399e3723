// Writer and Reader: the binary codec of the states lib/session stores, the session state
// ("ESS1", session_state.cpp) and the negotiation state ("ENS1", formats/negotiation-state.md).
//
// All integers are big-endian. A field is one of
//   u8, u32, u64       fixed-size integers; bool is a u8 that must be 0 or 1
//   ctr                16 bytes (a Counter128)
//   bytes              u32 length, then that many bytes (at most kMaxField)
//   mpi                bytes holding a non-negative integer, big-endian, at least one byte and
//                      no leading zero byte (zero is the single byte 00)
//   list<T>            u32 count, then the elements
// Enumerations are written as explicit codes (the tables below), not as C++ enumerator values,
// so that reordering an enum never changes a format. The Reader checks every length against
// what remains and every code against its range, so that no input makes it read out of bounds.
#pragma once

#include "session/suite.hpp"

namespace esession::codec {

constexpr size_t kMaxField = 65536;

class Writer {
 public:
  Writer() { m_out.reserve(1024); }
  void u8(uint8_t v) { m_out.push_back(v); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void u32(uint32_t v) {
    for (int s = 24; s >= 0; s -= 8)
      u8(static_cast<uint8_t>(v >> s));
  }
  void u64(uint64_t v) {
    for (int s = 56; s >= 0; s -= 8)
      u8(static_cast<uint8_t>(v >> s));
  }
  void raw(ByteView v) { m_out.insert(m_out.end(), v.begin(), v.end()); }
  void bytes(ByteView v) {
    u32(static_cast<uint32_t>(v.size()));
    raw(v);
  }
  void str(std::string_view s) { bytes(view(s)); }
  SecretBytes take() { return std::move(m_out); }

 private:
  SecretBytes m_out;
};

class Reader {
 public:
  // |format| starts every error message ("session state", "negotiation state").
  Reader(ByteView in, std::string_view format) : m_in(in), m_format(format) {}
  bool done() const { return m_pos == m_in.size(); }

  // bad returns the Errc::malformed error for field |what|.
  Error bad(std::string_view what, std::string_view why) const {
    return fail(Errc::malformed,
                std::string(m_format) + ": " + std::string(what) + ": " + std::string(why));
  }

  Result<ByteView> fixed(size_t n, std::string_view what) {
    if (m_in.size() - m_pos < n)
      return bad(what, "truncated");
    ByteView v = m_in.subspan(m_pos, n);
    m_pos += n;
    return v;
  }
  Result<uint8_t> u8(std::string_view what) {
    ES_ASSIGN(ByteView v, fixed(1, what));
    return v[0];
  }
  Result<bool> boolean(std::string_view what) {
    ES_ASSIGN(uint8_t v, u8(what));
    if (v > 1)
      return bad(what, "not a boolean");
    return v == 1;
  }
  Result<uint32_t> u32(std::string_view what) {
    ES_ASSIGN(ByteView v, fixed(4, what));
    uint32_t out = 0;
    for (uint8_t c : v)
      out = out << 8 | c;
    return out;
  }
  Result<uint64_t> u64(std::string_view what) {
    ES_ASSIGN(ByteView v, fixed(8, what));
    uint64_t out = 0;
    for (uint8_t c : v)
      out = out << 8 | c;
    return out;
  }
  Result<ByteView> bytes(std::string_view what) {
    ES_ASSIGN(uint32_t n, u32(what));
    if (n > kMaxField)
      return bad(what, "too long");
    return fixed(n, what);
  }
  Result<std::string> str(std::string_view what) {
    ES_ASSIGN(ByteView v, bytes(what));
    return string_of(v);
  }
  Result<SecretBytes> secret_bytes(std::string_view what) {
    ES_ASSIGN(ByteView v, bytes(what));
    return secret(v);
  }
  // count reads a list length, refusing more than |max| or more than could possibly fit.
  Result<uint32_t> count(std::string_view what, uint32_t max) {
    ES_ASSIGN(uint32_t n, u32(what));
    if (n > max || n > m_in.size() - m_pos)
      return bad(what, "too many elements");
    return n;
  }
  Result<ByteView> mpi(std::string_view what) {
    ES_ASSIGN(ByteView v, bytes(what));
    if (v.empty() || (v.size() > 1 && v[0] == 0))
      return bad(what, "not a canonical integer");
    return v;
  }
  Result<BigNum> integer(std::string_view what) {
    ES_ASSIGN(ByteView v, mpi(what));
    return BigNum::from_bytes(v);
  }
  // private_value reads an integer flagged for constant-time use (a private exponent).
  Result<BigNum> private_value(std::string_view what) {
    ES_ASSIGN(BigNum x, integer(what));
    BN_set_flags(x.get(), BN_FLG_CONSTTIME);
    return x;
  }
  Result<Counter128> counter(std::string_view what) {
    ES_ASSIGN(ByteView v, fixed(16, what));
    return Counter128::from_bytes(v);
  }

 private:
  ByteView m_in;
  size_t m_pos = 0;
  std::string_view m_format;
};

// decode reads a u8 code and returns its enumerator in |codes| (the enumerators in code order).
template <class E, size_t N>
Result<E> decode(Reader& r, const E (&codes)[N], std::string_view what) {
  ES_ASSIGN(uint8_t v, r.u8(what));
  if (v >= N)
    return r.bad(what, "unknown value " + std::to_string(v));
  return codes[v];
}

// encode returns the code of |e| in |codes|.
template <class E, size_t N>
uint8_t encode(E e, const E (&codes)[N]) {
  for (size_t i = 0; i < N; ++i)
    if (codes[i] == e)
      return static_cast<uint8_t>(i);
  return 0xff;  // unreachable for a valid enumerator; refused by the parser
}

inline constexpr Compat kCompatCodes[] = {Compat::spec, Compat::gajim};
inline constexpr Flow kFlowCodes[] = {Flow::four_message, Flow::three_message};
inline constexpr CipherAlg kCipherCodes[] = {CipherAlg::aes128_ctr, CipherAlg::aes256_ctr};
inline constexpr HashAlg kHashCodes[] = {HashAlg::sha256, HashAlg::sha512};
inline constexpr PubkeyMode kPubkeyCodes[] = {PubkeyMode::none, PubkeyMode::key, PubkeyMode::hash};

// write_suite writes the suite fields of ESS1:
//   u8:compat(0 spec, 1 gajim) bool:g1 bool:g2 bool:g4 bool:g5a bool:g5b
//   u8:flow(0 4-msg, 1 3-msg)
//   u32:modp u8:cipher(0 aes128-ctr, 1 aes256-ctr) u8:hash(0 sha256, 1 sha512)
//   list<bytes>:stanzas u8:init_pubkey u8:resp_pubkey (0 none, 1 key, 2 hash)
//   bytes:sign_alg u32:rekey_freq bytes:logging bytes:ver
void write_suite(Writer& w, const Suite& s);
// read_suite reads them back, checking the group and the stanza kinds. Without |with_g5b| (ESS1
// version 1) the g5b flag is absent and follows the compat mode.
Result<Suite> read_suite(Reader& r, bool with_g5b = true);

}  // namespace esession::codec
