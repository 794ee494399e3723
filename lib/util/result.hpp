// Result<T>: the error-as-value type used across lib/.
//
// lib/ never throws across its API and never exits. Every fallible function returns a Result<T>
// (or Status for no value) carrying either the value or an Error: a coarse Errc that callers may
// branch on, plus a human-readable detail that they must not parse.
//
// Running out of memory is not an Error. When OpenSSL fails to allocate (a *_new() or *_dup()
// returns null, or a call that over memory and valid arguments can fail no other way: a hash,
// an HMAC, AES over a key of the right size, BIGNUM arithmetic), the process has no sane way
// on, so lib/ ends it through die_out_of_memory, as libsodium does; the system's CSPRNG failing
// is treated the same. That keeps functions whose only failure would be that (digest, BigNum,
// RandomSource) returning plain values. An OpenSSL operation that fails on its input (a key or
// certificate that does not parse, a signature that does not verify, a chain that does not
// lead to a CA) is an Error like any other, and so is a library call failing in a way it
// should not (Errc::internal).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace esession {

// Errc is the coarse class of a failure. The CLI maps each class to an exit status.
enum class Errc {
  malformed,       // input is not well-formed XML, base64, a number, or breaks a length limit
  unsupported,     // a feature or option we do not implement (XEP-0116 feature-not-implemented)
  not_acceptable,  // no acceptable option, or a policy refusal (XEP-0116 not-acceptable)
  auth_failed,     // a MAC, signature, hash commitment or identity check failed
  bad_dh_value,    // a Diffie-Hellman public value outside (1, p-1)
  replay,          // a stale counter, repeated nonce or repeated DH value
  wrong_state,     // the message does not fit the state of the session or negotiation
  no_session,      // no session or negotiation for this peer/thread
  terminated,      // the session has ended
  internal,        // a library call failed unexpectedly (e.g. OpenSSL allocation)
  io,              // storage or I/O failure (used by the store and the CLI)
};

// errc_name returns a stable lower-case name for |c|, used in status lines and vector output.
const char* errc_name(Errc c);

// printable quotes untrusted text (a thread, an address) for an error detail: at most |max|
// bytes, control characters replaced by '?'.
std::string printable(std::string_view s, size_t max = 48);

// Error is a failure: its class and a one-line description without a trailing period.
struct Error {
  Errc code;
  std::string detail;
};

// Result<T> holds a T or an Error. Its surface mirrors std::expected.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : m_v(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : m_v(std::in_place_index<1>, std::move(error)) {}

  bool has_value() const { return m_v.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(m_v); }
  const T& value() const& { return std::get<0>(m_v); }
  T&& value() && { return std::get<0>(std::move(m_v)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(m_v); }

 private:
  std::variant<T, Error> m_v;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : m_error(std::move(error)), m_ok(false) {}
  bool has_value() const { return m_ok; }
  explicit operator bool() const { return m_ok; }
  const Error& error() const { return m_error; }

 private:
  Error m_error{Errc::internal, {}};
  bool m_ok = true;
};

using Status = Result<void>;

// fail builds an Error; written `return fail(Errc::malformed, "...")`.
inline Error fail(Errc code, std::string detail) {
  return Error{code, std::move(detail)};
}

// die_out_of_memory writes "esession: out of memory: |what|" to stderr and aborts the process.
// It is the one way lib/ ends on an allocation (or CSPRNG) failure; see the top of this file.
[[noreturn]] void die_out_of_memory(const char* what);

}  // namespace esession

// ES_TRY evaluates a Result-returning expression and returns its error from the caller on failure.
#define ES_TRY(expr)            \
  do {                          \
    auto es_try_r_ = (expr);    \
    if (!es_try_r_)             \
      return es_try_r_.error(); \
  } while (0)

// ES_ASSIGN declares |decl| from the value of a Result, or returns its error.
#define ES_CONCAT_INNER(a, b) a##b
#define ES_CONCAT(a, b) ES_CONCAT_INNER(a, b)
#define ES_ASSIGN(decl, expr) ES_ASSIGN_IMPL(ES_CONCAT(es_assign_r_, __LINE__), decl, expr)
#define ES_ASSIGN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                    \
  if (!tmp)                             \
    return tmp.error();                 \
  decl = std::move(tmp).value()
