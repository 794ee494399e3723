// Finite-field Diffie-Hellman over the MODP groups of RFC 2409 and RFC 3526 (XEP-0116 §4.3 'modp').
#pragma once

#include <openssl/bn.h>

#include <string>

#include "crypto/ossl.hpp"
#include "util/bytes.hpp"

namespace esession {

// BigNum is an owned OpenSSL BIGNUM, cleared when freed.
class BigNum {
 public:
  BigNum();
  explicit BigNum(UniquePtr<BIGNUM> bn) : m_bn(std::move(bn)) {}
  BigNum(const BigNum& o);
  BigNum& operator=(const BigNum& o);
  BigNum(BigNum&&) noexcept = default;
  BigNum& operator=(BigNum&&) noexcept = default;

  // from_bytes reads a big-endian unsigned integer (leading zeros allowed).
  static BigNum from_bytes(ByteView b);
  // from_hex reads lowercase or uppercase hex without prefix; fails on anything else.
  static Result<BigNum> from_hex(std::string_view h);
  static BigNum from_word(unsigned long w);

  // mpi returns the XEP-0116 §6.1 encoding: big-endian, no leading zero octets, >= 1 octet.
  Bytes mpi() const;
  SecretBytes mpi_secret() const;
  // padded returns the big-endian encoding left-padded with zeros to |len| bytes.
  Bytes padded(size_t len) const;
  std::string hex() const;  // lowercase, no leading zeros, "0" for zero
  int bits() const { return BN_num_bits(m_bn.get()); }
  int cmp(const BigNum& o) const { return BN_cmp(m_bn.get(), o.m_bn.get()); }
  bool operator==(const BigNum& o) const { return cmp(o) == 0; }

  BIGNUM* get() const { return m_bn.get(); }

 private:
  UniquePtr<BIGNUM> m_bn;
};

// DhGroup is one MODP group: its XEP-0116 number, prime p and generator g = 2.
struct DhGroup {
  int id;             // the 'modp' value: 1, 2, 5, 14..18
  int bits;           // bit length of p
  bool weak;          // 1, 2 and 5: refused unless weak groups are explicitly allowed
  int exponent_bits;  // size of the private exponents we draw (RFC 3526 §8 guidance, >= 320)
  BigNum p;
  BigNum p_minus_1;
};

// dh_group returns the group for a 'modp' value, or nullptr for unknown values (3 and 4 are EC2N
// groups of RFC 2409, not MODP, and are unknown here: PROTOCOL-NOTES A14).
const DhGroup* dh_group(int id);

// dh_public returns g^x mod p.
BigNum dh_public(const DhGroup& g, const BigNum& x);

// dh_check_public returns ok iff 1 < v < p-1 (XEP-0116 §4.5.1, §4.6.1).
bool dh_check_public(const DhGroup& g, const BigNum& v);

// dh_parse_public decodes a public value from its bytes (an MPI: no leading zero byte) and
// checks its range. Errc::bad_dh_value if outside (1, p-1), Errc::malformed if longer than p.
Result<BigNum> dh_parse_public(const DhGroup& g, ByteView b);

// dh_shared returns mpi(peer^x mod p), a secret. The exponentiation runs in constant time.
SecretBytes dh_shared(const DhGroup& g, const BigNum& peer, const BigNum& x);

// dh_check_private returns true iff 2^255 < x < p-1, the range XEP-0116 §4.3 requires for AES
// (2^(2n-1) < x < p-1 with n = 128).
bool dh_check_private(const DhGroup& g, const BigNum& x);

}  // namespace esession
