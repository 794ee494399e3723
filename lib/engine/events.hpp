// Events: what the engine tells its front end happened, as values.
//
// Each EventKind is one of the status keywords esession(1) documents for --status-fd; the
// command line renders an Event as its "[ESESSION:] KEYWORD field ..." line (status_fields
// gives the fields in the documented order) and as a sentence on stderr. A bridge or an
// embedding client renders the same events its own way. An event never carries a secret.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace esession {

enum class EventKind {
  // Negotiation.
  negotiation_started,  // peer thread: our offer is written
  negotiation_request,  // peer: a peer's offer arrived
  negotiation_failed,   // peer values={error name}
  pki,                  // peer(bare) fingerprint values={kind, status}; detail: why not valid
  key_other_jid,        // peer(bare) fingerprint values={the other JID that has this key}
  key_changed,          // peer(bare) fingerprint values={"accepted" or "refused"}
  key_unused,           // peer values={offered key types "a,b", our key type}; detail: why
  replaced,             // peer thread(the older session's): the new session ends it
  retained_mismatch,    // peer: our retained secret for the peer did not match
  peer_key,             // peer(bare) fingerprint values={how it identified: key or hash}
  established,          // peer thread values={flow "3"/"4", cipher, hash, group}; session_id
  trust,                // peer values={trust level, as session_trust names it}
  sas,                  // peer values={SAS}; sas_verified_before: the chain's SAS was compared
  attached,             // peer thread: our attached stanza went with our last message
  content,              // peer thread: a stanza that rode on the peer's last message
  // Sessions.
  rekeyed,      // peer thread: the peer re-keyed
  terminated,   // peer thread: the session has ended (one_shot: the peer asked for one stanza)
  rekey_sent,   // peer thread: our re-key stanza is in the output
  terminating,  // peer thread: our termination is in the output
};

struct Event {
  EventKind kind = EventKind::negotiation_started;
  std::string peer;                  // a full JID, or a bare one for the key events (see above)
  std::string thread;                // the session's thread, for the kinds that name one
  std::string fingerprint;           // the peer's key, for the key events
  std::vector<std::string> values;   // the kind's own values, in status-line order
  std::string detail;                // for people: a reason, a description
  int64_t session_id = 0;            // established: the stored session's number
  bool sas_verified_before = false;  // sas: this peer's SAS was compared in an earlier session
  bool one_shot = false;             // terminated: the session carried one stanza only
};

// event_keyword returns the status keyword of |k| ("ESTABLISHED").
std::string_view event_keyword(EventKind k);

// status_fields returns the fields of |e|'s status line after the keyword, in esession(1)'s
// order. They hold peer data as it came: a front end encodes them (the CLI percent-encodes).
std::vector<std::string> status_fields(const Event& e);

// Events is where an engine call appends what happened, in order.
using Events = std::vector<Event>;

}  // namespace esession
