// RandomSource: the only way randomness reaches the protocol.
//
// The protocol asks for values by their meaning (a nonce, a DH exponent, an initial counter, a
// decoy), so a test or the vector replay tool can inject exactly the values a transcript used.
// SystemRandom draws them from OpenSSL's CSPRNG.
#pragma once

#include <vector>

#include "crypto/ctr.hpp"
#include "crypto/dh.hpp"

namespace esession {

class RandomSource {
 public:
  virtual ~RandomSource() = default;

  // fill writes |out.size()| random bytes.
  virtual void fill(std::span<uint8_t> out) = 0;

  // uniform returns a value uniformly distributed in [0, n), n > 0.
  virtual uint64_t uniform(uint64_t n);
  // nonce returns an ESession ID of |len| bytes whose first byte is non-zero (PROTOCOL-NOTES A6).
  virtual Bytes nonce(size_t len);
  // dh_private returns x with 2^255 < x < p-1, of the group's exponent size.
  virtual BigNum dh_private(const DhGroup& g);
  // initial_counter returns Bob's random C_A (XEP-0116 §4.5.1).
  virtual Counter128 initial_counter();
  // decoys returns |count| random values of |len| bytes for 'rshashes' (XEP-0116 §4.6.4).
  virtual std::vector<Bytes> decoys(size_t len, size_t count);
  // srshash_random returns the random 'srshash' sent when no retained secret is shared.
  virtual Bytes srshash_random(size_t len);
  // padding returns a number of spaces in [0, max] appended to a plaintext to hide its length.
  virtual size_t padding(size_t max);

 protected:
  Bytes draw(size_t len);
};

// SystemRandom is RandomSource over RAND_bytes; it aborts if the CSPRNG fails.
class SystemRandom final : public RandomSource {
 public:
  void fill(std::span<uint8_t> out) override;
};

// OsRandom is RandomSource over the kernel's CSPRNG (getrandom(2)), for a process that draws a
// few bytes once: it skips setting up OpenSSL's DRBGs, which costs more than half a
// millisecond, and each draw is a system call. It aborts if the kernel fails.
class OsRandom final : public RandomSource {
 public:
  void fill(std::span<uint8_t> out) override;
};

}  // namespace esession
