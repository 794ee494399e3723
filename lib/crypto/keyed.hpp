// Keyed primitives that keep their OpenSSL context between messages: an AES-CTR key schedule
// and an HMAC state after the key is absorbed. A session encrypts and MACs every stanza under
// the same keys; setting them up once per key instead of per stanza saves most of the fixed
// cost of short messages. Freeing a context cleanses its key material.
#pragma once

#include "crypto/ctr.hpp"
#include "crypto/hash.hpp"
#include "crypto/ossl.hpp"

namespace esession {

class CtrKey {
 public:
  // matches returns true if this context holds |key|.
  bool matches(ByteView key) const;
  // set installs |key| (16 or 32 bytes). Aborts on an OpenSSL allocation failure.
  void set(ByteView key);
  // xcrypt is ctr_xcrypt with the installed key.
  void xcrypt(const Counter128& first, ByteView in, uint8_t* out);
  void clear();

 private:
  SecretBytes m_key;
  UniquePtr<EVP_CIPHER_CTX> m_ctx;
};

class HmacKey {
 public:
  bool matches(HashAlg h, ByteView key) const;
  void set(HashAlg h, ByteView key);
  // mac returns HMAC(key, concatenation of |parts|), like hmac_parts.
  SecretBytes mac(std::initializer_list<ByteView> parts) const;
  void clear();

 private:
  HashAlg m_hash = HashAlg::sha256;
  SecretBytes m_key;
  UniquePtr<EVP_MAC_CTX> m_ctx;  // initialized with the key, never finalized: duplicated per use
};

}  // namespace esession
