// Signature keys for XEP-0116 identification: RSA (sign and verify) and DSA (verify; signing
// exists for tests and for peers that insist on it).
//
// Keys are OpenSSL EVP_PKEYs behind two value types. A PublicKey made from components received
// on the wire is checked before use (sizes, ranges, subgroup membership), so a verifier never
// runs on a degenerate key.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/dh.hpp"
#include "crypto/hash.hpp"
#include "crypto/ossl.hpp"

namespace esession {

enum class KeyType { rsa, dsa, ed25519 };

// SignAlg is a signature algorithm of the sign_algs field: the XML-DSig semantics of the named
// URI, applied to a message rather than to a <SignedInfo/> (XEP-0116 §4.5.4 step 4).
enum class SignAlg {
  rsa_sha256,  // RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2)
  dsa_sha256,  // DSA with SHA-256; the signature is r | s, each as long as q (XML-DSig 1.1)
  ed25519,     // pure Ed25519 (RFC 8032), 64-byte signatures: our extension (formats §7)
};

// sign_alg_uri returns the URI we send for |a| (the one XEP-0116 §8.2 names).
std::string_view sign_alg_uri(SignAlg a);
// sign_alg_from_uri maps every known spelling (XEP-0116, RFC 4051/9231, XML-DSig 1.1, the
// bare 'rsa'/'dsa' of XEP-0187) to an algorithm (PROTOCOL-NOTES A16).
std::optional<SignAlg> sign_alg_from_uri(std::string_view uri);
// sign_alg_key_type returns the key type that can make signatures of |a|.
KeyType sign_alg_key_type(SignAlg a);
// key_type_name returns "rsa", "dsa" or "ed25519".
std::string_view key_type_name(KeyType t);

// Limits on keys accepted from the wire.
inline constexpr int kMinRsaBits = 2048;
inline constexpr int kMaxRsaBits = 16384;
inline constexpr int kMinDsaBits = 2048;
inline constexpr int kMaxDsaBits = 3072;

class PublicKey {
 public:
  // rsa and dsa build a key from its components and validate it (Errc::bad_key... see .cpp).
  static Result<PublicKey> rsa(const BigNum& n, const BigNum& e);
  static Result<PublicKey> dsa(const BigNum& p, const BigNum& q, const BigNum& g, const BigNum& y);
  // ed25519 builds a key from its 32-byte encoding (RFC 8032 §5.1.5).
  static Result<PublicKey> ed25519(ByteView raw);
  // from_pem reads a SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----").
  static Result<PublicKey> from_pem(std::string_view pem);
  // from_der reads a DER SubjectPublicKeyInfo.
  static Result<PublicKey> from_der(ByteView der);
  // from_evp takes a reference to an OpenSSL key (a certificate's, say) and validates it like a
  // key from the wire. Unsupported types (EC, X448…) give Errc::unsupported.
  static Result<PublicKey> from_evp(EVP_PKEY* k);

  KeyType type() const { return m_type; }
  int bits() const;
  // Components: n, e for RSA; p, q, g, y for DSA.
  BigNum component(const char* ossl_param) const;
  // raw returns the 32-byte encoding of an Ed25519 key (empty for other types).
  Bytes raw() const;
  std::string pem() const;
  // der returns the DER SubjectPublicKeyInfo (what fingerprints of exported keys hash).
  Bytes der() const;
  bool can_verify(SignAlg a) const { return sign_alg_key_type(a) == m_type; }
  // verify returns ok iff |sig| is a valid signature of |message| under |a|. Signatures of the
  // wrong length or encoding fail like wrong signatures, with Errc::auth_failed.
  Status verify(SignAlg a, ByteView message, ByteView sig) const;
  bool operator==(const PublicKey& o) const;

  EVP_PKEY* get() const { return m_key.get(); }

 private:
  PublicKey(std::shared_ptr<EVP_PKEY> k, KeyType t) : m_key(std::move(k)), m_type(t) {}
  static Result<PublicKey> adopt(UniquePtr<EVP_PKEY> k);
  std::shared_ptr<EVP_PKEY> m_key;
  KeyType m_type;
};

class PrivateKey {
 public:
  static Result<PrivateKey> generate_rsa(int bits);
  // generate_dsa makes fresh domain parameters: slow (seconds) at 2048 bits.
  static Result<PrivateKey> generate_dsa(int pbits, int qbits);
  static Result<PrivateKey> generate_ed25519();
  // from_pem reads a PKCS#8 or traditional PEM private key. An encrypted one needs
  // |passphrase|; without it, Errc::not_acceptable ("needs a passphrase") tells the caller to
  // ask for one. A wrong passphrase gives Errc::auth_failed.
  static Result<PrivateKey> from_pem(std::string_view pem,
                                     std::optional<ByteView> passphrase = std::nullopt);
  // from_evp takes a reference to an OpenSSL private key (from a PKCS#12 file, say).
  static Result<PrivateKey> from_evp(EVP_PKEY* k);
  // is_encrypted_pem tells whether |pem| is an encrypted private key (PKCS#8 or traditional).
  static bool is_encrypted_pem(std::string_view pem);
  // pem returns the unencrypted PKCS#8 PEM encoding, in memory that is wiped when freed.
  SecretBytes pem() const;
  // pem_encrypted returns PKCS#8 PEM encrypted under |passphrase| with PBES2: scrypt
  // (N = 2^14, r = 8, p = 1: 16 MiB, within the 32 MiB OpenSSL allows scrypt by default; 16-byte
  // salt) and AES-256-CBC, which `openssl pkey` reads.
  Result<SecretBytes> pem_encrypted(ByteView passphrase) const;

  KeyType type() const { return m_type; }
  const PublicKey& public_key() const { return m_public; }
  // sign returns a signature of |message| in the encoding of |a| (see SignAlg).
  Result<Bytes> sign(SignAlg a, ByteView message) const;

 private:
  PrivateKey(std::shared_ptr<EVP_PKEY> k, KeyType t, PublicKey pub)
      : m_key(std::move(k)), m_type(t), m_public(std::move(pub)) {}
  static Result<PrivateKey> adopt(UniquePtr<EVP_PKEY> k);
  std::shared_ptr<EVP_PKEY> m_key;
  KeyType m_type;
  PublicKey m_public;
};

}  // namespace esession
