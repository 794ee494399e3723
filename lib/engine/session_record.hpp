// The record the engine stores for each session: the protocol state (ESS1) and what was learnt
// when it was established (the SAS, the peer's identification, the retained secret it made).
#pragma once

#include <optional>
#include <string>

#include "session/session.hpp"

namespace esession {

// StoredSession is one session's record, encoded as "ESC1" (formats/esession-1.0.md):
//   "ESC1" bytes:sas bytes:peer_mode bytes:peer_fingerprint bytes:retained_id (decimal, or
//   empty) bytes:continuity ("1" or "0") bytes:session (ESS1) [bytes:pki [bytes:own_mode
//   bytes:own_key_unused]]
// with util/wire.hpp's fields; records written before a field existed end before it.
struct StoredSession {
  std::string sas;                     // empty for the three-message flow
  std::string peer_mode;               // none, key or hash
  std::string peer_fingerprint;        // of the key the peer identified with, if any
  std::optional<int64_t> retained_id;  // the retained secret this session made
  bool continuity = false;             // a retained secret from an earlier session matched
  std::string pki;                     // "x509-valid", "openpgp-valid" or "" (at establishment)
  std::string own_mode;                // how we identified: none, key or hash ("" before 2026-12)
  std::string own_key_unused;          // Established::own_key_unused, described
  SecretBytes session;                 // Session::serialize()

  SecretBytes encode() const;
  // decode parses a record strictly (Errc::malformed when it is not one).
  static Result<StoredSession> decode(ByteView b);
};

// session_trust names how far a session's peer is authenticated, strongest first: a pinned
// key, a key a user verified, a retained-secret chain whose SAS a user verified, a credential
// a PKI vouches for (x509-valid, openpgp-valid), continuity with an earlier session, or
// nothing yet ("new").
std::string session_trust(bool key_verified, bool key_pinned, bool sas_verified,
                          const StoredSession& ss);

}  // namespace esession
