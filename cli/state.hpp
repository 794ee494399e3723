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
  SecretBytes session;                 // Session::serialize()

  SecretBytes encode() const;
  static Result<StoredSession> decode(ByteView b);
};

}  // namespace esession::cli
