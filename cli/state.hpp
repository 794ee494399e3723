// What the command line stores per session besides the protocol state: the SAS, the peer's
// identification, and the retained secret the session created (for `peer verify`).
#pragma once

#include <optional>
#include <string>

#include "session/session.hpp"

namespace esession::cli {

struct StoredSession {
  std::string sas;                     // empty for the three-message flow
  std::string peer_mode;               // none, key or hash
  std::string peer_fingerprint;        // of the key the peer identified with, if any
  std::optional<int64_t> retained_id;  // the retained secret this session made
  bool continuity = false;             // a retained secret from an earlier session matched
  std::string pki;                     // "x509-valid", "openpgp-valid" or "" (at establishment)
  std::string own_mode;                // how we identified: none, key or hash ("" before 2026-12)
  std::string own_key_unused;          // Established::own_key_unused
  SecretBytes session;                 // Session::serialize()

  SecretBytes encode() const;
  static Result<StoredSession> decode(ByteView b);
};

// session_trust names how far a session's peer is authenticated, strongest first: a pinned
// key, a key a user verified, a retained-secret chain whose SAS a user verified, a credential
// a PKI vouches for (x509-valid, openpgp-valid), continuity with an earlier session, or
// nothing yet ("new").
std::string session_trust(bool key_verified, bool key_pinned, bool sas_verified,
                          const StoredSession& ss);

}  // namespace esession::cli
