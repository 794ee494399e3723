// Hash functions and HMAC (RFC 2104) over SHA-256 and SHA-512.
#pragma once

#include <string_view>

#include "util/bytes.hpp"

namespace esession {

// HashAlg is a negotiated ESession HASH (XEP-0116 hash_algs).
enum class HashAlg { sha256, sha512 };

// hash_name returns the hash_algs token ("sha256", "sha512").
std::string_view hash_name(HashAlg h);
// hash_from_name parses a hash_algs token; unknown names give Errc::unsupported.
Result<HashAlg> hash_from_name(std::string_view name);
// hash_size returns the digest length in bytes.
size_t hash_size(HashAlg h);

// digest returns HASH(data).
Bytes digest(HashAlg h, ByteView data);
// digest_parts returns HASH of the concatenation of |parts| without copying them together.
Bytes digest_parts(HashAlg h, std::initializer_list<ByteView> parts);

// hmac returns HMAC(h, key, data). The result is secret when the key is.
SecretBytes hmac(HashAlg h, ByteView key, ByteView data);
// hmac_parts returns HMAC(h, key, concatenation of |parts|).
SecretBytes hmac_parts(HashAlg h, ByteView key, std::initializer_list<ByteView> parts);

}  // namespace esession
