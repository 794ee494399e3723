#include "crypto/hash.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <cstdlib>

#include "crypto/ossl.hpp"

namespace esession {

std::string_view hash_name(HashAlg h) {
  return h == HashAlg::sha256 ? "sha256" : "sha512";
}

Result<HashAlg> hash_from_name(std::string_view name) {
  if (name == "sha256")
    return HashAlg::sha256;
  if (name == "sha512")
    return HashAlg::sha512;
  return fail(Errc::unsupported, "unsupported hash algorithm '" + std::string(name) + "'");
}

size_t hash_size(HashAlg h) {
  return h == HashAlg::sha256 ? 32 : 64;
}

static const EVP_MD* md_of(HashAlg h) {
  return h == HashAlg::sha256 ? EVP_sha256() : EVP_sha512();
}

// An OpenSSL failure in a hash or HMAC over memory means allocation failure; there is no
// meaningful way to continue a cryptographic protocol after it.
[[noreturn]] static void crypto_abort() {
  std::abort();
}

Bytes digest_parts(HashAlg h, std::initializer_list<ByteView> parts) {
  UniquePtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md_of(h), nullptr) != 1)
    crypto_abort();
  for (auto p : parts)
    if (EVP_DigestUpdate(ctx.get(), p.data(), p.size()) != 1)
      crypto_abort();
  Bytes out(hash_size(h));
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1)
    crypto_abort();
  return out;
}

Bytes digest(HashAlg h, ByteView data) {
  return digest_parts(h, {data});
}

SecretBytes hmac_parts(HashAlg h, ByteView key, std::initializer_list<ByteView> parts) {
  // The HMAC implementation is fetched once; a fetch per call would cost a provider lookup.
  static EVP_MAC* const kMac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (kMac == nullptr)
    crypto_abort();
  UniquePtr<EVP_MAC_CTX> ctx(EVP_MAC_CTX_new(kMac));
  if (!ctx)
    crypto_abort();
  char digest_name[8];
  std::string_view n = hash_name(h);
  n.copy(digest_name, n.size());
  digest_name[n.size()] = 0;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest_name, 0),
                         OSSL_PARAM_construct_end()};
  static const uint8_t kEmpty = 0;
  const uint8_t* k = key.empty() ? &kEmpty : key.data();
  if (EVP_MAC_init(ctx.get(), k, key.size(), params) != 1)
    crypto_abort();
  for (auto p : parts)
    if (EVP_MAC_update(ctx.get(), p.data(), p.size()) != 1)
      crypto_abort();
  SecretBytes out(hash_size(h));
  size_t len = 0;
  if (EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1)
    crypto_abort();
  return out;
}

SecretBytes hmac(HashAlg h, ByteView key, ByteView data) {
  return hmac_parts(h, key, {data});
}

}  // namespace esession
