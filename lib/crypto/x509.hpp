// X.509 identities: the certificate chain and private key a user identifies with, and the check
// a peer runs on a chain it receives.
//
// The check is RFC 5280 path validation by OpenSSL against trust anchors the user configured
// (never the system store), followed by the name rules of RFC 6120 §13.7.1.4 and RFC 6125: the
// certificate must name the peer's bare JID in a subjectAltName, never only in its CN.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/ossl.hpp"
#include "crypto/pubkey.hpp"
#include "util/bytes.hpp"

namespace esession {

// Certificate is an immutable, parsed X.509 certificate. Copies share the OpenSSL object.
class Certificate {
 public:
  // from_der parses exactly one DER certificate; trailing bytes give Errc::malformed.
  static Result<Certificate> from_der(ByteView der);
  // from_x509 takes a reference to an OpenSSL certificate (from a PKCS#12 file, say).
  static Result<Certificate> from_x509(X509* x);
  // all_from_pem returns every "CERTIFICATE" block of |pem| in order, skipping blocks of other
  // types (a private key, say). No certificate, or a block that does not parse, gives
  // Errc::malformed.
  static Result<std::vector<Certificate>> all_from_pem(std::string_view pem);

  // der returns the DER encoding; pem returns it as one "CERTIFICATE" PEM block.
  Bytes der() const;
  std::string pem() const;
  // public_key returns the subject's key, validated like a key from the wire. Keys other than
  // RSA, DSA and Ed25519 (EC keys, notably) give Errc::unsupported.
  Result<PublicKey> public_key() const;
  // subject and issuer return the names as one-line RFC 2253 strings ("CN=alice,O=Example"),
  // with non-ASCII characters left as UTF-8 and control characters escaped.
  std::string subject() const;
  std::string issuer() const;
  // not_before and not_after return the validity window in Unix seconds (0 if the field does
  // not parse; path validation rejects such certificates anyway).
  int64_t not_before() const;
  int64_t not_after() const;
  // xmpp_addrs returns the subjectAltName otherName entries of type id-on-xmppAddr
  // (1.3.6.1.5.5.7.8.5, a UTF8String; RFC 6120 §13.7.1.4). dns_names and uris return the
  // dNSName and uniformResourceIdentifier entries. Entries holding a NUL byte are left out.
  std::vector<std::string> xmpp_addrs() const;
  std::vector<std::string> dns_names() const;
  std::vector<std::string> uris() const;
  // sha256 returns SHA-256 of the DER encoding (the certificate's fingerprint).
  Bytes sha256() const;

  // get returns the OpenSSL object, owned by this Certificate and its copies.
  X509* get() const { return m_cert.get(); }

 private:
  explicit Certificate(std::shared_ptr<X509> c) : m_cert(std::move(c)) {}
  std::shared_ptr<X509> m_cert;
};

// X509Identity is what a user identifies with: the certificate chain, leaf first and then the
// intermediates in issuing order, and the private key of the leaf.
struct X509Identity {
  std::vector<Certificate> chain;
  PrivateKey key;
};

// load_x509_identity reads an identity from |data|, which is either
//   - PEM text holding the certificates (leaf first) and one private key, in any order; the key
//     may be encrypted (PKCS#8 or traditional), or
//   - a DER PKCS#12 file (.p12, .pfx) with the key, its certificate and optionally a chain.
// A PKCS#12 file is opened with |passphrase|, or without one (absent or empty) when |passphrase|
// is nullopt.
//
// Errors: Errc::not_acceptable when a passphrase is needed but none was given (ask the user and
// call again); Errc::auth_failed for a wrong passphrase; Errc::unsupported for a key other than
// RSA, DSA or Ed25519; Errc::malformed for anything else, including a key that does not belong
// to the leaf certificate.
Result<X509Identity> load_x509_identity(ByteView data, std::optional<ByteView> passphrase);

// private_key_block returns the one private key block of the PEM text |pem| ("PRIVATE KEY",
// "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", ...) with its BEGIN and END lines; none, more
// than one or one without its END line gives Errc::malformed.
Result<std::string_view> private_key_block(std::string_view pem);

// X509Verdict is the outcome of check_x509.
enum class X509Verdict {
  valid,          // the chain validates and the leaf names the JID
  untrusted,      // no path to a configured trust anchor (or none is configured)
  expired,        // a certificate in the path expired before |now|
  not_yet_valid,  // a certificate in the path is not valid until after |now|
  wrong_name,     // the path validates but the leaf does not name the JID
  invalid,        // anything else: bad signature, a CA without CA:TRUE, key usage, ...
};

// X509Check is a verdict and one line that explains it to the user ("the certificate expired
// on 2025-01-02", "no configured CA issued it (CN=Some CA)").
struct X509Check {
  X509Verdict verdict;
  std::string reason;
};

// check_x509 validates |chain| (the leaf, then untrusted intermediates in any order) against
// |anchors| at Unix time |now|, and then checks that the leaf names |bare_jid|.
//
// Every certificate in |anchors| is trusted as it is, whether a self-signed root or an
// intermediate the user configured (partial chains are accepted). No system store, CRL or OCSP
// is consulted. A leaf with a keyUsage extension must allow digitalSignature, since the leaf's
// key signs the negotiation. Empty |anchors| give X509Verdict::untrusted.
X509Check check_x509(const std::vector<Certificate>& chain, const std::vector<Certificate>& anchors,
                     std::string_view bare_jid, int64_t now);

// x509_names_jid tells whether |leaf| names |bare_jid| (a resource, if any, is ignored):
//   - an XmppAddr equal to the JID, the domain part compared ASCII case-insensitively and the
//     localpart exactly (RFC 6120 §13.7.1.4);
//   - a URI "xmpp:" followed by the JID, compared the same way (RFC 6125 URI-ID);
//   - only for a JID without a localpart (a server or component): a dNSName equal to the
//     domain, where a leading "*." matches exactly one label (RFC 6125 §6.4.3), and never a
//     wildcard directly above a single-label name ("*.org").
// The subject's CN never counts (RFC 6125 §6.4.4: we require subjectAltName).
bool x509_names_jid(const Certificate& leaf, std::string_view bare_jid);

}  // namespace esession
