#include "crypto/random.hpp"

#include <openssl/rand.h>
#include <sys/random.h>

#include <cerrno>

#include <limits>

namespace esession {

Bytes RandomSource::draw(size_t len) {
  Bytes b(len);
  fill(b);
  return b;
}

uint64_t RandomSource::uniform(uint64_t n) {
  // Rejection sampling removes the modulo bias.
  uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  for (;;) {
    Bytes b = draw(8);
    uint64_t v = 0;
    for (uint8_t c : b)
      v = v << 8 | c;
    if (v < limit)
      return v % n;
  }
}

Bytes RandomSource::nonce(size_t len) {
  Bytes b = draw(len);
  while (!b.empty() && b[0] == 0)
    fill(std::span<uint8_t>(b.data(), 1));
  return b;
}

BigNum RandomSource::dh_private(const DhGroup& g) {
  // x = 2^(bits-1) + random(bits-1 bits): always above 2^255 and far below p-1.
  size_t nbytes = static_cast<size_t>(g.exponent_bits + 7) / 8;
  for (;;) {
    SecretBytes raw(nbytes);
    fill(raw);
    int excess = static_cast<int>(nbytes * 8) - g.exponent_bits;
    raw[0] &= static_cast<uint8_t>(0xff >> excess);
    raw[0] |= static_cast<uint8_t>(0x80 >> excess);
    BigNum x = BigNum::from_bytes(view(raw));
    BN_set_flags(x.get(), BN_FLG_CONSTTIME);
    if (dh_check_private(g, x))
      return x;
  }
}

Counter128 RandomSource::initial_counter() {
  Counter128 c;
  fill(c.b);
  return c;
}

std::vector<Bytes> RandomSource::decoys(size_t len, size_t count) {
  std::vector<Bytes> out;
  for (size_t i = 0; i < count; ++i)
    out.push_back(draw(len));
  return out;
}

Bytes RandomSource::srshash_random(size_t len) {
  return draw(len);
}

size_t RandomSource::padding(size_t max) {
  return static_cast<size_t>(uniform(max + 1));
}

void SystemRandom::fill(std::span<uint8_t> out) {
  if (out.empty())
    return;
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1)
    die_out_of_memory("OpenSSL's CSPRNG failed");
}

void OsRandom::fill(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      die_out_of_memory("getrandom failed");
    done += static_cast<size_t>(n);
  }
}

}  // namespace esession
