// GPGME plumbing shared by gnupg.cpp and crypt.cpp: owning pointers for GPGME objects, error
// wrapping and key listing. Internal to lib/openpgp: nothing outside includes GPGME.
#pragma once

#include <gpgme.h>

#include <memory>
#include <string>
#include <vector>

#include "util/result.hpp"

namespace esession::openpgp::detail {

template <class T>
struct GpgmeFree;
template <>
struct GpgmeFree<gpgme_context> {
  void operator()(gpgme_context* c) const noexcept { gpgme_release(c); }
};
template <>
struct GpgmeFree<gpgme_data> {
  void operator()(gpgme_data* d) const noexcept { gpgme_data_release(d); }
};
template <>
struct GpgmeFree<_gpgme_key> {
  void operator()(_gpgme_key* k) const noexcept { gpgme_key_unref(k); }
};
template <class T>
using GpgmePtr = std::unique_ptr<T, GpgmeFree<T>>;
using Context = GpgmePtr<gpgme_context>;
using Data = GpgmePtr<gpgme_data>;
using Key = GpgmePtr<_gpgme_key>;

// gpg_fail wraps a GPGME error: "|what|: <gpgme_strerror>".
Error gpg_fail(Errc c, const std::string& what, gpgme_error_t err);

// list_keys lists the keys matching |pattern| (gpg's user-ID syntax: a fingerprint, or a
// substring of a User ID), with their keygrips; |secret| lists only keys with a secret part.
Result<std::vector<Key>> list_keys(gpgme_ctx_t ctx, const std::string& pattern, bool secret);

// key_state_problem names what makes |k| unusable as a whole (revoked, expired, disabled,
// invalid), or returns nullptr.
inline const char* key_state_problem(const _gpgme_key* k) {
  if (k->revoked)
    return "revoked";
  if (k->expired)
    return "expired";
  if (k->disabled)
    return "disabled";
  if (k->invalid)
    return "invalid";
  return nullptr;
}

}  // namespace esession::openpgp::detail
