#include "crypto/hash.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "crypto/keyed.hpp"
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

Bytes digest_parts(HashAlg h, std::initializer_list<ByteView> parts) {
  // A hash over memory fails only for lack of memory (util/result.hpp).
  UniquePtr<EVP_MD_CTX> ctx = alloc_or_die(EVP_MD_CTX_new(), "digest context");
  if (EVP_DigestInit_ex(ctx.get(), md_of(h), nullptr) != 1)
    die_out_of_memory("digest");
  for (auto p : parts)
    if (EVP_DigestUpdate(ctx.get(), p.data(), p.size()) != 1)
      die_out_of_memory("digest");
  Bytes out(hash_size(h));
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1)
    die_out_of_memory("digest");
  return out;
}

Bytes digest(HashAlg h, ByteView data) {
  return digest_parts(h, {data});
}

SecretBytes hmac_parts(HashAlg h, ByteView key, std::initializer_list<ByteView> parts) {
  HmacKey k;
  k.set(h, key);
  return k.mac(parts);
}

SecretBytes hmac(HashAlg h, ByteView key, ByteView data) {
  return hmac_parts(h, key, {data});
}

}  // namespace esession
