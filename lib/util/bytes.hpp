// Byte strings, secret byte strings and their encodings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.hpp"

namespace esession {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

// cleanse overwrites |n| bytes at |p| with zeros in a way the compiler may not elide.
void cleanse(void* p, size_t n);

// ZeroizingAllocator wipes memory before it is returned to the heap.
template <class T>
struct ZeroizingAllocator {
  using value_type = T;
  ZeroizingAllocator() = default;
  template <class U>
  ZeroizingAllocator(const ZeroizingAllocator<U>&) {}
  T* allocate(size_t n) { return std::allocator<T>{}.allocate(n); }
  void deallocate(T* p, size_t n) {
    cleanse(p, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
  template <class U>
  bool operator==(const ZeroizingAllocator<U>&) const {
    return true;
  }
};

// SecretBytes holds key material; its storage is wiped when freed or reallocated.
using SecretBytes = std::vector<uint8_t, ZeroizingAllocator<uint8_t>>;

inline ByteView view(const Bytes& b) {
  return {b.data(), b.size()};
}
inline ByteView view(const SecretBytes& b) {
  return {b.data(), b.size()};
}
inline ByteView view(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline SecretBytes secret(ByteView v) {
  return SecretBytes(v.begin(), v.end());
}
inline Bytes bytes_of(ByteView v) {
  return Bytes(v.begin(), v.end());
}
inline std::string string_of(ByteView v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

// ct_equal compares two byte strings in time independent of their contents. Different lengths
// compare unequal (the lengths themselves are not secret).
bool ct_equal(ByteView a, ByteView b);

// concat returns the concatenation of its arguments.
Bytes concat(std::initializer_list<ByteView> parts);

// hex encodes lowercase hex; unhex accepts upper or lower case and rejects odd lengths.
std::string hex(ByteView b);
Result<Bytes> unhex(std::string_view s);
// group_hex writes hex digits for people: upper case, in groups of four ("AB12 CD34 ...").
std::string group_hex(std::string_view hex);

// base64 encodes RFC 4648 §4 with padding and no line breaks.
std::string base64(ByteView b);

// unbase64 decodes strict RFC 4648 §4 (formats §1.3): the standard alphabet, required padding,
// no whitespace anywhere (not even around it), and zero bits in the unused part of the last
// symbol, so every byte string has exactly one accepted encoding. Any other spelling is
// Errc::malformed. Formats that allow line breaks (MIME, OX) remove them first, themselves.
Result<Bytes> unbase64(std::string_view s);

// is_mpi is true for the one spelling formats §1.3 allows an integer: at least one byte, and no
// leading zero byte unless the integer is zero.
inline bool is_mpi(ByteView b) {
  return !b.empty() && (b[0] != 0 || b.size() == 1);
}

// parse_decimal reads formats §1.3's decimals: ASCII digits only, no sign, no leading zeros
// ("0" itself excepted), at most |max|. Anything else is Errc::malformed.
Result<uint64_t> parse_decimal(std::string_view s, uint64_t max = UINT32_MAX);

}  // namespace esession
