// What a PKI says about a peer's credential: an X.509 chain checked against CA anchors, an
// OpenPGP key checked against the validity GnuPG gives its User ID xmpp:<bare JID>. A PKI only
// ever raises trust (formats/esession-1.0.md §7); the one verdict that refuses is a revoked key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/x509.hpp"
#include "session/identity.hpp"

namespace esession {

// PkiOptions says where the anchors are.
struct PkiOptions {
  std::string ca_file;     // a PEM bundle of CA certificates; empty: no X.509 anchors
  std::string gnupg_home;  // the GnuPG home; empty: $GNUPGHOME or gpg's default
};

// PkiVerdict is what a PKI says about a peer's credential.
struct PkiVerdict {
  std::string kind;     // "x509" or "openpgp"
  std::string status;   // x509: valid, untrusted, expired, not-yet-valid, wrong-name, invalid;
                        // openpgp: valid, marginal, unknown, never, not-in-keyring, no-xmpp-uid,
                        // expired, disabled, revoked; either: unchecked (the check itself
                        // failed: no gpg, an unreadable CA bundle...)
  std::string detail;   // x509: subject and issuer; openpgp: the OpenPGP fingerprint
  std::string reason;   // one line for the user when it is not valid
  bool valid = false;   // raises the session's trust (x509-valid, openpgp-valid)
  bool refuse = false;  // the key's owner revoked it: the negotiation is refused
};

// evaluate_pki checks |cred| for |bare_jid| at time |now| (seconds since the epoch). It never
// fails: when the check itself cannot be made the verdict is "unchecked", with the reason.
PkiVerdict evaluate_pki(const PkiOptions& opts, std::string_view bare_jid, const Credential& cred,
                        int64_t now);

// read_ca_bundle reads the CA certificates of a PEM file.
Result<std::vector<Certificate>> read_ca_bundle(const std::string& path);

}  // namespace esession
