// RAII ownership of OpenSSL handles: UniquePtr<EVP_PKEY>, UniquePtr<BIO>, UniquePtr<X509>, ...
//
// This is the one way lib/ and cli/ own an OpenSSL object. Code never calls a *_free function by
// hand, on the success path or an error path: a handle goes into a UniquePtr the moment a
// function returns it, and leaves it only through release() when an OpenSSL call documented to
// take ownership ("set0", "push", a BIO chain) has succeeded. A shared handle is a
// std::shared_ptr made from a UniquePtr, so that it keeps the same deleter.
//
// Each type has one meaning: UniquePtr<BIO> frees the whole chain below it (BIO_free_all, which
// is BIO_free for a lone BIO); UniquePtr<STACK_OF(X509)> owns a reference to each certificate
// (sk_X509_pop_free), so certificates are pushed with X509_add_cert(..., X509_ADD_FLAG_UP_REF);
// UniquePtr<uint8_t> and UniquePtr<char> hold a buffer OpenSSL allocated and returned, such as
// the output of an i2d_* call (OPENSSL_free). BIGNUMs are cleared when freed: they may be secret.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/dsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <memory>

#include "util/result.hpp"

namespace esession {

// OsslDeleter<T> frees a T; it is specialised once per handle type below.
template <class T>
struct OsslDeleter;

#define ES_OSSL_DELETER(type, fn)                      \
  template <>                                          \
  struct OsslDeleter<type> {                           \
    void operator()(type* p) const noexcept { fn(p); } \
  }

ES_OSSL_DELETER(uint8_t, OPENSSL_free);
ES_OSSL_DELETER(char, OPENSSL_free);
ES_OSSL_DELETER(BIGNUM, BN_clear_free);
ES_OSSL_DELETER(BN_CTX, BN_CTX_free);
ES_OSSL_DELETER(BN_MONT_CTX, BN_MONT_CTX_free);
ES_OSSL_DELETER(BIO, BIO_free_all);
ES_OSSL_DELETER(CMS_ContentInfo, CMS_ContentInfo_free);
ES_OSSL_DELETER(DSA_SIG, DSA_SIG_free);
ES_OSSL_DELETER(EVP_CIPHER_CTX, EVP_CIPHER_CTX_free);
ES_OSSL_DELETER(EVP_CIPHER, EVP_CIPHER_free);
ES_OSSL_DELETER(EVP_MD_CTX, EVP_MD_CTX_free);
ES_OSSL_DELETER(EVP_MD, EVP_MD_free);
ES_OSSL_DELETER(EVP_MAC, EVP_MAC_free);
ES_OSSL_DELETER(EVP_MAC_CTX, EVP_MAC_CTX_free);
ES_OSSL_DELETER(EVP_PKEY, EVP_PKEY_free);
ES_OSSL_DELETER(EVP_PKEY_CTX, EVP_PKEY_CTX_free);
ES_OSSL_DELETER(GENERAL_NAMES, GENERAL_NAMES_free);
ES_OSSL_DELETER(OSSL_PARAM, OSSL_PARAM_free);
ES_OSSL_DELETER(OSSL_PARAM_BLD, OSSL_PARAM_BLD_free);
ES_OSSL_DELETER(PKCS12, PKCS12_free);
ES_OSSL_DELETER(PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free);
ES_OSSL_DELETER(X509, X509_free);
ES_OSSL_DELETER(X509_ALGOR, X509_ALGOR_free);
ES_OSSL_DELETER(X509_SIG, X509_SIG_free);
ES_OSSL_DELETER(X509_STORE, X509_STORE_free);
ES_OSSL_DELETER(X509_STORE_CTX, X509_STORE_CTX_free);

#undef ES_OSSL_DELETER

template <>
struct OsslDeleter<STACK_OF(X509)> {
  void operator()(STACK_OF(X509) * p) const noexcept { sk_X509_pop_free(p, X509_free); }
};

template <class T>
using UniquePtr = std::unique_ptr<T, OsslDeleter<T>>;

// alloc_or_die takes a handle an OpenSSL allocator (*_new, *_dup) just returned. Null means the
// allocation failed, and ends the process through die_out_of_memory (util/result.hpp says why);
// so the result is never null. Not for a constructor that also fails on its input, such as
// BIO_new_mem_buf on a null buffer or a d2i_* function.
template <class T>
UniquePtr<T> alloc_or_die(T* p, const char* what) {
  if (!p)
    die_out_of_memory(what);
  return UniquePtr<T>(p);
}

}  // namespace esession
