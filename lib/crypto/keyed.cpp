#include "crypto/keyed.hpp"

#include <openssl/core_names.h>

namespace esession {

bool CtrKey::matches(ByteView key) const {
  return m_ctx && ct_equal(view(m_key), key);
}

void CtrKey::set(ByteView key) {
  const EVP_CIPHER* cipher = key.size() == 16 ? EVP_aes_128_ctr() : EVP_aes_256_ctr();
  m_ctx = alloc_or_die(EVP_CIPHER_CTX_new(), "AES-CTR context");
  uint8_t zero[16] = {};
  if ((key.size() != 16 && key.size() != 32) ||
      EVP_EncryptInit_ex(m_ctx.get(), cipher, nullptr, key.data(), zero) != 1)
    die_out_of_memory("AES-CTR key schedule");
  m_key = secret(key);
}

void CtrKey::xcrypt(const Counter128& first, ByteView in, uint8_t* out) {
  if (in.empty())
    return;
  // Only the IV changes: the key schedule stays.
  if (EVP_EncryptInit_ex(m_ctx.get(), nullptr, nullptr, nullptr, first.b.data()) != 1)
    die_out_of_memory("AES-CTR");
  size_t done = 0;
  while (done < in.size()) {
    int chunk = static_cast<int>(std::min<size_t>(in.size() - done, 1 << 30));
    int outl = 0;
    if (EVP_EncryptUpdate(m_ctx.get(), out + done, &outl, in.data() + done, chunk) != 1)
      die_out_of_memory("AES-CTR");
    done += static_cast<size_t>(outl);
  }
}

void CtrKey::clear() {
  m_ctx.reset();
  m_key = {};
}

bool HmacKey::matches(HashAlg h, ByteView key) const {
  return m_ctx && m_hash == h && ct_equal(view(m_key), key);
}

void HmacKey::set(HashAlg h, ByteView key) {
  static EVP_MAC* const kMac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (!kMac)
    die_out_of_memory("HMAC");
  m_ctx = alloc_or_die(EVP_MAC_CTX_new(kMac), "HMAC context");
  char digest_name[8];
  std::string_view n = hash_name(h);
  n.copy(digest_name, n.size());
  digest_name[n.size()] = 0;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest_name, 0),
                         OSSL_PARAM_construct_end()};
  static const uint8_t kEmpty = 0;
  if (EVP_MAC_init(m_ctx.get(), key.empty() ? &kEmpty : key.data(), key.size(), params) != 1)
    die_out_of_memory("HMAC key");
  m_hash = h;
  m_key = secret(key);
}

SecretBytes HmacKey::mac(std::initializer_list<ByteView> parts) const {
  UniquePtr<EVP_MAC_CTX> ctx = alloc_or_die(EVP_MAC_CTX_dup(m_ctx.get()), "HMAC context");
  for (auto p : parts)
    if (EVP_MAC_update(ctx.get(), p.data(), p.size()) != 1)
      die_out_of_memory("HMAC");
  SecretBytes out(hash_size(m_hash));
  size_t len = 0;
  if (EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1)
    die_out_of_memory("HMAC");
  return out;
}

void HmacKey::clear() {
  m_ctx.reset();
  m_key = {};
}

}  // namespace esession
