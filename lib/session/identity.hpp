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

class Signer {
 public:
  virtual ~Signer() = default;
  virtual const PublicKey& public_key() const = 0;
  virtual bool can_sign(SignAlg a) const = 0;
  virtual Result<Bytes> sign(SignAlg a, ByteView message) const = 0;
};

class Verifier {
 public:
  virtual ~Verifier() = default;
  // known_keys returns the keys we hold for |bare_jid| (for 'hash' identification).
  virtual std::vector<PublicKey> known_keys(std::string_view bare_jid) const = 0;
  // accept returns ok if |key|, whose signature verified, may identify |bare_jid|.
  virtual Status accept(std::string_view bare_jid, const PublicKey& key) const = 0;
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
  Status accept(std::string_view bare_jid, const PublicKey& key) const override;

 private:
  bool m_pin;
  std::map<std::string, std::vector<PublicKey>, std::less<>> m_keys;
};

// IdentityProof is what an identity block carries once decrypted (formats §7).
struct IdentityProof {
  std::optional<PublicKey> key;  // the key the signature verified with (key or hash mode)
  PubkeyMode mode = PubkeyMode::none;
};

// identity_plaintext builds pubKey' | sign for |mode| key or hash, signing |mac| with |signer|.
Result<std::string> identity_plaintext(PubkeyMode mode, HashAlg h, SignAlg alg,
                                       const Signer& signer, ByteView mac);

// MacFn recomputes the sender's mac for a candidate pubKey ("" for none).
using MacFn = std::function<SecretBytes(std::string_view pub_key)>;

// check_identity verifies a decrypted identity block of |mode|: for none, |plain| must equal
// the recomputed mac; otherwise it must be a normalized pubKey' | sign whose signature of the
// recomputed mac verifies with the key (in hash mode, a known key of |bare_jid| whose
// fingerprint matches), and the Verifier must accept the key for |bare_jid|.
Result<IdentityProof> check_identity(PubkeyMode mode, HashAlg h, std::optional<SignAlg> alg,
                                     ByteView plain, const MacFn& mac_for, const Verifier* verifier,
                                     std::string_view bare_jid);

}  // namespace esession
