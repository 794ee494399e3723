#include "crypto/ctr.hpp"

#include <openssl/evp.h>

#include "crypto/ossl.hpp"

namespace esession {

Counter128 Counter128::add(uint64_t n) const {
  Counter128 r = *this;
  unsigned carry = 0;
  for (int i = 15; i >= 0; --i) {
    unsigned addend = (i >= 8) ? static_cast<unsigned>((n >> (8 * (15 - i))) & 0xff) : 0;
    unsigned s = r.b[i] + addend + carry;
    r.b[i] = static_cast<uint8_t>(s);
    carry = s >> 8;
  }
  return r;
}

Counter128 Counter128::flip_top() const {
  Counter128 r = *this;
  r.b[0] ^= 0x80;
  return r;
}

Bytes Counter128::mpi() const {
  size_t i = 0;
  while (i < 15 && b[i] == 0)
    ++i;
  return Bytes(b.begin() + static_cast<long>(i), b.end());
}

std::string Counter128::hex() const {
  return esession::hex(bytes());
}

Counter128 Counter128::from_bytes(ByteView v) {
  Counter128 c;
  size_t off = 16 - v.size();
  for (size_t i = 0; i < v.size(); ++i)
    c.b[off + i] = v[i];
  return c;
}

std::string_view cipher_name(CipherAlg c) {
  return c == CipherAlg::aes128_ctr ? "aes128-ctr" : "aes256-ctr";
}

Result<CipherAlg> cipher_from_name(std::string_view name) {
  if (name == "aes128-ctr")
    return CipherAlg::aes128_ctr;
  if (name == "aes256-ctr")
    return CipherAlg::aes256_ctr;
  return fail(Errc::unsupported, "unsupported cipher '" + std::string(name) + "'");
}

size_t cipher_key_size(CipherAlg c) {
  return c == CipherAlg::aes128_ctr ? 16 : 32;
}

uint64_t ctr_blocks(size_t len) {
  return (static_cast<uint64_t>(len) + 15) / 16;
}

bool ctr_xcrypt(ByteView key, const Counter128& first, ByteView in, uint8_t* out) {
  if (in.empty())
    return true;
  const EVP_CIPHER* cipher = nullptr;
  if (key.size() == 16)
    cipher = EVP_aes_128_ctr();
  else if (key.size() == 32)
    cipher = EVP_aes_256_ctr();
  else
    return false;
  UniquePtr<EVP_CIPHER_CTX> ctx = alloc_or_die(EVP_CIPHER_CTX_new(), "AES-CTR context");
  if (EVP_EncryptInit_ex(ctx.get(), cipher, nullptr, key.data(), first.b.data()) != 1)
    return false;
  // OpenSSL's CTR increments the whole 16-byte block big-endian, i.e. modulo 2^128, as we need.
  size_t done = 0;
  while (done < in.size()) {
    int chunk = static_cast<int>(std::min<size_t>(in.size() - done, 1 << 30));
    int outl = 0;
    if (EVP_EncryptUpdate(ctx.get(), out + done, &outl, in.data() + done, chunk) != 1)
      return false;
    done += static_cast<size_t>(outl);
  }
  return true;
}

}  // namespace esession
