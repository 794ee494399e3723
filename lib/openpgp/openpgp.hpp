// OpenPGP identities for XEP-0116: keys kept in GnuPG, signatures made by gpg-agent.
//
// On the wire nothing changes: a party that identifies with an OpenPGP key still sends a plain
// XML-DSig <KeyValue/> and a raw signature of a MAC value (SignAlg). OpenPGP adds two things
// around it. The signer finds its key in a GnuPG home and has gpg-agent sign, so the private
// key never enters this process. The receiver reads the peer's v4 Public-Key packet (RFC 4880
// §5.5.2) to get the same PublicKey plus a fingerprint it can look up in its own keyring, where
// GnuPG's web of trust says how valid the key's `xmpp:` User ID is.
//
// The packet parser is pure (bytes in, values out) and strict, and lives below the session core
// in crypto/openpgp_packet.hpp (included here); everything that talks to GnuPG goes through the
// GnuPG class, which runs gpg itself (one process per operation, its status lines parsed) and
// reaches gpg-agent through GPGME's Assuan client, no GPGME type leaking out.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/openpgp_packet.hpp"
#include "crypto/pubkey.hpp"
#include "openpgp/gpgme_ptr.hpp"
#include "session/identity.hpp"
#include "util/bytes.hpp"

namespace esession::openpgp {

// Validity is GnuPG's validity of a User ID (gpgme_validity_t): how sure the web of trust (or
// the trust model in force) is that the User ID belongs to the key's owner.
enum class Validity { unknown, undefined, never, marginal, full, ultimate };

// KeyStatus is what the local keyring says about a key, for the receiver's trust decision.
struct KeyStatus {
  bool found = false;     // the keyring holds a key with this primary fingerprint
  bool revoked = false;   // the primary key is revoked
  bool expired = false;   // the primary key has expired
  bool disabled = false;  // the owner disabled it in GnuPG
  bool invalid = false;   // GnuPG considers it invalid (no valid self-signature, for example)
  bool has_uid = false;   // it has a User ID naming the JID (uid_names_jid) that is not revoked
  Validity uid_validity = Validity::unknown;  // the best validity among those User IDs
  std::string fingerprint;                    // the primary fingerprint, upper-case hex
};

// SignatureVerdict is what a decryption found about the message's signature.
enum class SignatureVerdict {
  none,     // the message is not signed
  good,     // a valid signature by a key in the keyring (not revoked, signature not expired)
  bad,      // a signature that does not verify, or by a revoked key, or expired
  unknown,  // signed by a key that is not in the keyring: it cannot be checked
};
// signature_verdict_name returns "none", "good", "bad" or "unknown".
const char* signature_verdict_name(SignatureVerdict v);

// CryptOptions are the details of a streaming encryption or decryption.
struct CryptOptions {
  // The passphrase of the secret key involved, handed to the agent in loopback mode; without
  // it the agent asks with its own pinentry (see GnuPG::agent_sign).
  std::optional<ByteView> passphrase;
  // progress is told how many input bytes have been read so far.
  std::function<void(uint64_t done)> progress;
  std::string in_name = "input";  // for messages
  std::string out_name = "output";
  // seal: encrypt to the signer's own key too (XEP-0373 §3.1), so that the sender can read
  // what it sent; when gpg cannot, |warn| is told and the message goes without it.
  bool to_self = false;
  std::function<void(const std::string&)> warn;
  // encrypt and seal: also encrypt to the key in each of these files (gpg --recipient-file,
  // binary or armored): the user named the file, so, as with age, GnuPG's trust model is not
  // asked about it; it need not be in the keyring.
  std::vector<std::string> recipient_files;
};

// Decrypted is the outcome of a decryption that succeeded (the message was decrypted and its
// integrity protection checked).
struct Decrypted {
  uint64_t bytes = 0;  // plaintext bytes written
  SignatureVerdict signature = SignatureVerdict::none;
  // The signer: the primary fingerprint of its key when it is in the keyring, else what gpg
  // reported (a fingerprint or key ID of the signing key); empty when unsigned.
  std::string signer;
};

// GnuPG is one GnuPG home directory, plus (once needed) a connection to the home's gpg-agent.
// Movable, not copyable; not for concurrent use from several threads.
//
// Every operation runs gpg (found in PATH, with --batch and the user's gpg.conf, never reaching
// the network) or talks to gpg-agent, as the user's gpg does, so it writes nothing but what gpg
// itself writes (the trust database, the agent's socket).
class GnuPG {
 public:
  // open names |home|; an empty |home| means $GNUPGHOME or gpg's default (~/.gnupg). Nothing
  // runs yet: an operation whose gpg is not installed fails with Errc::unsupported and a hint.
  static Result<GnuPG> open(const std::string& home);

  GnuPG(GnuPG&&) noexcept;
  GnuPG& operator=(GnuPG&&) noexcept;
  ~GnuPG();

  const std::string& home() const { return m_home; }

  // find_secret_key returns the primary fingerprint of the secret key named by |which_or_jid|:
  // when it reads as a fingerprint (fingerprint_from_text), that key; otherwise it is a JID
  // (its resource is dropped) and the key is the one usable secret key with a User ID naming
  // it. Usable means not revoked, expired, disabled or invalid, with a primary key that can
  // sign and whose secret part is available to the agent (not a stub). No such key gives
  // Errc::not_acceptable; several give Errc::malformed naming their fingerprints, so that the
  // user can pick one.
  Result<std::string> find_secret_key(std::string_view which_or_jid);

  // find_recipient returns the primary fingerprint of the public key named by |which_or_jid|,
  // to encrypt to: when it reads as a fingerprint, that key; otherwise a JID (its resource is
  // dropped) and the one key with a User ID naming it (uid_names_jid). The key must be usable
  // for encryption (not revoked, expired, disabled or invalid, with a subkey that can
  // encrypt), and, as gpg insists in batch mode, valid: the User ID naming the JID, or for a
  // fingerprint any User ID, must have full or ultimate validity in GnuPG's trust model.
  // Errc::not_acceptable otherwise, saying why; Errc::malformed for several keys naming the JID.
  Result<std::string> find_recipient(std::string_view which_or_jid);

  // encrypt reads |in_fd| to its end and writes to |out_fd| a binary, uncompressed OpenPGP
  // message (as `gpg -z 0 --encrypt` makes it, integrity-protected) encrypted to the keys
  // |recipients| (primary fingerprints, checked with find_recipient), and signed by the secret
  // key |signer| if it is not empty. gpg reads and writes the descriptors itself, so memory
  // use is constant whatever the length of the input. Returns the number of plaintext bytes
  // read. Errc::io for read and write errors, Errc::not_acceptable when gpg refuses a key or
  // the passphrase is not given, Errc::auth_failed for a wrong passphrase.
  Result<uint64_t> encrypt(const std::vector<std::string>& recipients, const std::string& signer,
                           int in_fd, int out_fd, const CryptOptions& opts);

  // decrypt reads an OpenPGP message from |in_fd|, decrypts it with a secret key of this home
  // and writes the plaintext to |out_fd| as it goes, so the caller must keep what was written
  // from the world until decrypt succeeds (an OutputFile, a spool file). It fails with
  // Errc::auth_failed when the message is not encrypted to a public key, not for any secret
  // key here, is damaged, truncated or modified, or has no integrity protection (no MDC:
  // refused, unlike old gpg); a bad signature is not an error here but a verdict for the
  // caller to judge. Decrypted::bytes counts what reached |out_fd| when it is a regular file.
  Result<Decrypted> decrypt(int in_fd, int out_fd, const CryptOptions& opts);

  // In-memory variants for small messages (XEP-0373 stanzas), one gpg run each.
  //
  // seal encrypts |plain| to |recipients| (none: only signs, as `gpg --sign`) and signs it
  // with |signer| (empty: not signed), both named by fingerprint or JID: gpg itself finds
  // the key with the User ID "xmpp:JID" exactly (XEP-0373 §8.5); if it finds none usable, the
  // keyring is searched as find_recipient and find_secret_key do and gpg runs again with
  // their fingerprints, or their error is returned. Several keys with that exact User ID:
  // gpg's choice (the most valid, then the newest). Errors as for encrypt.
  Result<Bytes> seal(const std::vector<std::string>& recipients, const std::string& signer,
                     ByteView plain, const CryptOptions& opts);
  // decrypt behaves as the descriptor version above (same checks, same errors); verify reads
  // a signed, not encrypted, message and returns its signed data in |plain| and the verdict:
  // a message that is not a signed OpenPGP message gives Errc::auth_failed. Only what
  // succeeds reaches |plain|.
  Result<Decrypted> decrypt(ByteView message, Bytes& plain, const CryptOptions& opts);
  Result<Decrypted> verify(ByteView message, Bytes& plain);

  // primary_key exports the key whose primary fingerprint is |fpr| (minimal export) and parses
  // its first packet. The parsed fingerprint must equal |fpr| (a subkey's fingerprint does not
  // name its primary key here). A key not in the keyring gives Errc::not_acceptable.
  Result<KeyPacket> primary_key(std::string_view fpr);

  // export_public_armored returns the ASCII-armored public key |fpr|, as `gpg --armor --export`
  // writes it (certifications included), for the user to publish or give to a peer.
  Result<std::string> export_public_armored(std::string_view fpr);

  // status reports what the keyring says about the key |fpr| and its User IDs naming
  // |bare_jid|. A key absent from the keyring is not an error: found is false.
  Result<KeyStatus> status(std::string_view fpr, std::string_view bare_jid);

  // agent_sign has gpg-agent sign |message| with the primary secret key |fpr| and returns the
  // signature in the encoding of |a| (SignAlg): PKCS#1 v1.5 over SHA-256 left-padded to the
  // modulus length; DSA over SHA-256 as r | s, each as long as q; pure Ed25519 of |message|
  // itself, which the agent can do for messages of 32 or 64 bytes only (the MAC sizes of
  // XEP-0116; other lengths give Errc::unsupported).
  //
  // The agent is started if it is not running. If the key is passphrase-protected and not
  // cached, the agent's own pinentry asks the user (on $DISPLAY, or on the terminal GPG_TTY
  // names, or on standard output if that is a terminal: as for gpg, set GPG_TTY=$(tty) when
  // standard output is a pipe), unless |passphrase| is given: then the agent is put in
  // loopback mode (it must allow it, as it does by default) and is given the passphrase; a
  // wrong one gives Errc::auth_failed. A key without the secret part, no way to ask for the
  // passphrase, or a refusal by the user gives Errc::not_acceptable.
  Result<Bytes> agent_sign(std::string_view fpr, SignAlg a, ByteView message,
                           std::optional<ByteView> passphrase = std::nullopt);

 private:
  explicit GnuPG(std::string home) : m_home(std::move(home)) {}
  Status agent_command(const std::string& command, Bytes* out, std::optional<ByteView> pass);
  Status agent_connect();

  std::string m_home;               // empty: gpg's default
  GpgmePtr<gpgme_context> m_agent;  // the Assuan connection to gpg-agent, made on first use
};

// keys_naming lists, for the keys in |home| with a User ID naming |bare_jid| (uid_names_jid),
// what the keyring says about each (KeyStatus, found is true). One gpg run, and no GnuPG
// object: it may run on a thread of its own beside another operation.
Result<std::vector<KeyStatus>> keys_naming(const std::string& home, std::string_view bare_jid);

// keyring_state describes the files of |home| (empty: $GNUPGHOME or ~/.gnupg) that a key
// listing depends on: the public keyring, the trust databases (trustdb.gpg, tofu.db) and the
// configuration (gpg.conf, common.conf), each by inode, size and modification time. While it stays
// the same, a listing made under it still holds, except for what the clock changes (key expiry): a
// cache of listings keys on it and on time.
std::string keyring_state(const std::string& home);

// key_file_fingerprints returns the primary fingerprints of the public keys in the file |path|
// (binary or armored), as `gpg --show-keys` reads it, without importing anything. A file that
// holds no key gives Errc::malformed.
Result<std::vector<std::string>> key_file_fingerprints(const std::string& home,
                                                       const std::string& path);

// OpenPgpSigner is a Signer whose key is an OpenPGP primary key in GnuPG: public_key() is the
// key of its Public-Key packet, credential() presents that packet, and sign() goes to
// gpg-agent. It owns its GnuPG context.
class OpenPgpSigner : public Signer {
 public:
  // open finds the secret key |which| in |gpg| (a fingerprint or a JID, as find_secret_key
  // takes them, so a missing or unusable key fails here and not in a negotiation) and reads
  // its public key (primary_key). |passphrase|, if given, is handed to the agent in loopback
  // mode whenever it asks (see GnuPG::agent_sign).
  static Result<OpenPgpSigner> open(GnuPG gpg, std::string_view which,
                                    std::optional<SecretBytes> passphrase = std::nullopt);

  const PublicKey& public_key() const override { return m_packet.key; }
  bool can_sign(SignAlg a) const override { return m_packet.key.can_verify(a); }
  // sign has the agent sign and checks the signature against public_key() before returning
  // it, so that a signature the peer would reject never leaves (a key changed in GnuPG behind
  // our back, an agent that signs differently); such a mismatch gives Errc::internal.
  Result<Bytes> sign(SignAlg a, ByteView message) const override;

  const Credential* credential() const override { return &m_cred; }

  const KeyPacket& packet() const { return m_packet; }
  const std::string& fingerprint() const { return m_fpr; }

 private:
  OpenPgpSigner(GnuPG gpg, std::string fpr, KeyPacket packet, std::optional<SecretBytes> pass)
      : m_gpg(std::move(gpg)),
        m_fpr(std::move(fpr)),
        m_packet(std::move(packet)),
        m_passphrase(std::move(pass)) {
    m_cred.kind = CredentialKind::openpgp;
    m_cred.items.push_back(m_packet.packet);
  }

  // Signing changes the context's state (its agent connection), not the signer's.
  mutable GnuPG m_gpg;
  std::string m_fpr;
  KeyPacket m_packet;
  std::optional<SecretBytes> m_passphrase;
  Credential m_cred;
};

}  // namespace esession::openpgp
