// The one binary codec of the state esession stores: big-endian integers and u32-length-prefixed
// byte strings, written into a SecretBytes (stored state holds keys) and read back strictly.
//
// Every stored format is built from these fields: the session state (ESS1,
// session/v1/record_state.cpp), the session record around it (ESC1, engine/session_record.cpp)
// and a negotiation in progress. A Reader checks every length against what remains and against
// the format's largest field before it takes anything, and names the field in its errors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/bytes.hpp"
#include "util/result.hpp"

namespace esession::wire {

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
  // bytes writes a u32 length, then |v|.
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
  // |format| prefixes every error ("session state: send_mac: truncated"); no bytes field may be
  // longer than |max_field|.
  Reader(ByteView in, std::string_view format, size_t max_field)
      : m_in(in), m_format(format), m_max_field(max_field) {}

  bool done() const { return m_pos == m_in.size(); }
  size_t remaining() const { return m_in.size() - m_pos; }

  // bad returns the malformed-input error for |what|, as this reader names it.
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
    if (n > m_max_field)
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

 private:
  ByteView m_in;
  size_t m_pos = 0;
  std::string_view m_format;
  size_t m_max_field;
};

}  // namespace esession::wire
