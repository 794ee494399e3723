// Block ciphers in counter mode (XEP-0116 §4.5.4, XEP-0200 §6): AES-128/256-CTR from an arbitrary
// 128-bit initial counter block, with the counter arithmetic modulo 2^128 done here rather than
// by OpenSSL (whose CTR mode also wraps modulo 2^128, but hides how many blocks it consumed).
#pragma once

#include <array>

#include "util/bytes.hpp"

namespace esession {

// Counter128 is a 128-bit big-endian counter block.
struct Counter128 {
  std::array<uint8_t, 16> b{};

  // add returns this + n modulo 2^128.
  Counter128 add(uint64_t n) const;
  // flip_top returns this XOR 2^127 (C_B = C_A XOR 2^(n-1), XEP-0116 §4.5.1).
  Counter128 flip_top() const;
  // mpi returns the XEP-0116 §6.1 encoding: big-endian without leading zero octets, at least one.
  Bytes mpi() const;
  ByteView bytes() const { return {b.data(), b.size()}; }
  std::string hex() const;
  bool operator==(const Counter128&) const = default;

  static Counter128 from_bytes(ByteView v);  // v.size() <= 16, big-endian
};

// CipherAlg is a negotiated crypt_algs value.
enum class CipherAlg { aes128_ctr, aes256_ctr };

std::string_view cipher_name(CipherAlg c);
Result<CipherAlg> cipher_from_name(std::string_view name);
// cipher_key_size returns the AES key length in bytes (16 or 32).
size_t cipher_key_size(CipherAlg c);

// ctr_blocks returns how many counter values an encryption of |len| bytes consumes (one per full
// or partial block; zero for an empty message).
uint64_t ctr_blocks(size_t len);

// ctr_xcrypt encrypts or decrypts |in| with AES (key length from |key|: 16 or 32 bytes), the
// first block's keystream being AES(key, first). |out| may alias |in|. Returns false only on an
// OpenSSL failure.
bool ctr_xcrypt(ByteView key, const Counter128& first, ByteView in, uint8_t* out);

}  // namespace esession
