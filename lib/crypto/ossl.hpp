// RAII ownership of OpenSSL handles: UniquePtr<EVP_PKEY>, UniquePtr<BIGNUM>, ...
//
// Feature code never calls a *_free function by hand; every handle lives in a UniquePtr.
#pragma once

#include <openssl/bn.h>
#include <openssl/evp.h>

#include <memory>

namespace esession {

template <class T>
struct OsslDeleter;

#define ES_OSSL_DELETER(type, fn)                      \
  template <>                                          \
  struct OsslDeleter<type> {                           \
    void operator()(type* p) const noexcept { fn(p); } \
  }

ES_OSSL_DELETER(BIGNUM, BN_clear_free);
ES_OSSL_DELETER(BN_CTX, BN_CTX_free);
ES_OSSL_DELETER(BN_MONT_CTX, BN_MONT_CTX_free);
ES_OSSL_DELETER(EVP_CIPHER_CTX, EVP_CIPHER_CTX_free);
ES_OSSL_DELETER(EVP_CIPHER, EVP_CIPHER_free);
ES_OSSL_DELETER(EVP_MD_CTX, EVP_MD_CTX_free);
ES_OSSL_DELETER(EVP_MD, EVP_MD_free);
ES_OSSL_DELETER(EVP_MAC, EVP_MAC_free);
ES_OSSL_DELETER(EVP_MAC_CTX, EVP_MAC_CTX_free);
ES_OSSL_DELETER(EVP_PKEY, EVP_PKEY_free);
ES_OSSL_DELETER(EVP_PKEY_CTX, EVP_PKEY_CTX_free);

#undef ES_OSSL_DELETER

template <class T>
using UniquePtr = std::unique_ptr<T, OsslDeleter<T>>;

}  // namespace esession
