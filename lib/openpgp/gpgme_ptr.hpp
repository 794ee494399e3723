// RAII ownership of GPGME handles: GpgmePtr<gpgme_context>, GpgmePtr<gpgme_data>.
//
// The same idiom as crypto/ossl.hpp's UniquePtr, for the other C library of lib/: code never
// calls gpgme_release or gpgme_data_release by hand. This header names the handle types without
// including <gpgme.h>, so that openpgp.hpp, which holds a GpgmePtr member, does not expose
// GPGME; the deleters are defined in gnupg.cpp, the one file that calls GPGME.
#pragma once

#include <memory>

struct gpgme_context;  // gpgme.h: typedef struct gpgme_context *gpgme_ctx_t
struct gpgme_data;     // gpgme.h: typedef struct gpgme_data *gpgme_data_t

namespace esession::openpgp {

// GpgmeDeleter<T> releases a T; it is specialised once per handle type below.
template <class T>
struct GpgmeDeleter;

template <>
struct GpgmeDeleter<gpgme_context> {
  void operator()(gpgme_context* c) const noexcept;  // gpgme_release
};

template <>
struct GpgmeDeleter<gpgme_data> {
  void operator()(gpgme_data* d) const noexcept;  // gpgme_data_release
};

template <class T>
using GpgmePtr = std::unique_ptr<T, GpgmeDeleter<T>>;

}  // namespace esession::openpgp
