// Public-key identification in a negotiation (XEP-0116 §4.5.4, §4.6.3; formats §7): the
// <KeyValue/> encoding of keys, and the Signer/Verifier interface through which a negotiation
// reaches the caller's keys.
//
// A Signer makes our signatures (a native key here; other backends implement the same
// interface). A Verifier answers two questions about the peer: which keys we already know for a
// JID (for 'hash' identification), and whether a key that has proved possession may identify
// that JID. Whether it is *trusted* beyond that is the caller's business, after the session.
#pragma once

#include <functional>
#include <map>
#include <vector>

#include "crypto/pubkey.hpp"
#include "session/suite.hpp"
#include "util/jid.hpp"
#include "xml/element.hpp"

namespace esession {

// key_value returns <KeyValue xmlns='…xmldsig#'> with an <RSAKeyValue/> or <DSAKeyValue/>.
xml::Element key_value(const PublicKey& k);
// parse_key_value reads a <KeyValue/> (in the XML-DSig namespace or none) and validates the key.
Result<PublicKey> parse_key_value(const xml::Element& kv);
// normalized_key_value returns pubKey: the normalized <KeyValue/>, without any xmlns.
std::string normalized_key_value(const PublicKey& k);
// key_fingerprint returns HASH(pubKey), the value 'hash' identification sends.
Bytes key_fingerprint(HashAlg h, const PublicKey& k);

// Credential is what binds a signing key to a name through a PKI: an X.509 certificate chain
// or an OpenPGP key (formats §7.1, our extension). It rides, encrypted, after the signature of
// an identity block, and only to a peer that said it reads that kind. It raises trust; it is
// never needed to authenticate.
enum class CredentialKind { x509, openpgp };
std::string_view credential_kind_name(CredentialKind k);  // "x509", "openpgp"
std::optional<CredentialKind> credential_kind_from_name(std::string_view s);

struct Credential {
  CredentialKind kind = CredentialKind::x509;
  // x509: DER certificates, the one holding the signing key first, then intermediates.
  // openpgp: one OpenPGP Public-Key packet (RFC 4880 §5.5.2), header included.
  std::vector<Bytes> items;
};

// Limits on credentials from the wire.
inline constexpr size_t kMaxCredentialItems = 8;
inline constexpr size_t kMaxCredentialItemBytes = 16384;

// credential_element returns <X509Data/> or <PGPData/> (XML-DSig §4.4.4, §4.4.6) for |c|.
xml::Element credential_element(const Credential& c);
// parse_credential reads one; limits and Base64 are checked, the contents are not.
Result<Credential> parse_credential(const xml::Element& e);
// credential_key returns the public key |c| is about: the first certificate's, or the OpenPGP
// key packet's. Errc::malformed or unsupported when it holds none we can use.
Result<PublicKey> credential_key(const Credential& c);

class Signer {
 public:
  virtual ~Signer() = default;
  virtual const PublicKey& public_key() const = 0;
  virtual bool can_sign(SignAlg a) const = 0;
  virtual Result<Bytes> sign(SignAlg a, ByteView message) const = 0;
  // credential returns the certificate chain or OpenPGP key of public_key(), if there is one.
  virtual const Credential* credential() const { return nullptr; }
};

class Verifier {
 public:
  virtual ~Verifier() = default;
  // known_keys returns the keys we hold for |bare_jid| (for 'hash' identification).
  virtual std::vector<PublicKey> known_keys(std::string_view bare_jid) const = 0;
  // accept returns ok if |key|, whose signature verified, may identify |bare_jid|. |cred| is
  // the credential that came with it (already checked to be about |key|), or null.
  virtual Status accept(std::string_view bare_jid, const PublicKey& key,
                        const Credential* cred) const = 0;
};

// KeySigner signs with a private key held in memory.
class KeySigner : public Signer {
 public:
  explicit KeySigner(PrivateKey k) : m_key(std::move(k)) {}
  const PublicKey& public_key() const override { return m_key.public_key(); }
  bool can_sign(SignAlg a) const override { return sign_alg_key_type(a) == m_key.type(); }
  Result<Bytes> sign(SignAlg a, ByteView message) const override { return m_key.sign(a, message); }

 private:
  PrivateKey m_key;
};

// KnownKeys is a Verifier over an in-memory list of keys per bare JID. With |pin| set, a JID
// with known keys is accepted only with one of them; JIDs without known keys are accepted on
// first use (their key is reported in Established for the caller to record).
class KnownKeys : public Verifier {
 public:
  explicit KnownKeys(bool pin = true) : m_pin(pin) {}
  void add(std::string bare_jid, PublicKey k) { m_keys[std::move(bare_jid)].push_back(k); }
  std::vector<PublicKey> known_keys(std::string_view bare_jid) const override;
  Status accept(std::string_view bare_jid, const PublicKey& key,
                const Credential* cred) const override;

 private:
  bool m_pin;
  std::map<std::string, std::vector<PublicKey>, std::less<>> m_keys;
};

// IdentityProof is what an identity block carries once decrypted (formats §7).
struct IdentityProof {
  std::optional<PublicKey> key;  // the key the signature verified with (key or hash mode)
  PubkeyMode mode = PubkeyMode::none;
  std::optional<Credential> credential;  // the credential that came with it, about |key|
};

// identity_plaintext builds pubKey' | sign for |mode| key or hash, signing |mac| with |signer|,
// followed by the signer's credential when |with_credential| is set and it has one.
Result<std::string> identity_plaintext(PubkeyMode mode, HashAlg h, SignAlg alg,
                                       const Signer& signer, ByteView mac,
                                       bool with_credential = false);

// MacFn recomputes the sender's mac for a candidate pubKey ("" for none).
using MacFn = std::function<SecretBytes(std::string_view pub_key)>;

// check_identity verifies a decrypted identity block of |mode|: for none, |plain| must equal
// the recomputed mac; otherwise it must be a normalized pubKey' | sign whose signature of the
// recomputed mac verifies with the key (in hash mode, a known key of |bare_jid| whose
// fingerprint matches), a credential after it must be about that key, and the Verifier must
// accept the key for |bare_jid|.
Result<IdentityProof> check_identity(PubkeyMode mode, HashAlg h, std::optional<SignAlg> alg,
                                     ByteView plain, const MacFn& mac_for, const Verifier* verifier,
                                     std::string_view bare_jid);

}  // namespace esession
