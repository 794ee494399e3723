// Writer and Reader: the binary codec of the states lib/session stores, the session state
// ("ESS1", v1/record_state.cpp) and the negotiation state ("ENS1", formats/negotiation-state.md).
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
#include "util/wire.hpp"

namespace esession::codec {

constexpr size_t kMaxField = 65536;

// The fields are util/wire.hpp's, the one codec of everything esession stores; a session
// state adds integers and counters to them, and no field longer than kMaxField.
using Writer = wire::Writer;

class Reader : public wire::Reader {
 public:
  // |format| starts every error message ("session state", "negotiation state").
  Reader(ByteView in, std::string_view format) : wire::Reader(in, format, kMaxField) {}

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
