#include "engine/events.hpp"

namespace esession {

namespace {

struct KindInfo {
  std::string_view keyword;
  bool thread;       // the status line names the thread after the peer
  bool fingerprint;  // ... or the key's fingerprint
};

KindInfo info(EventKind k) {
  switch (k) {
    case EventKind::negotiation_started:
      return {"NEGOTIATION_STARTED", true, false};
    case EventKind::negotiation_request:
      return {"NEGOTIATION_REQUEST", false, false};
    case EventKind::negotiation_failed:
      return {"NEGOTIATION_FAILED", false, false};
    case EventKind::pki:
      return {"PKI", false, true};
    case EventKind::key_other_jid:
      return {"KEY_OTHER_JID", false, true};
    case EventKind::key_changed:
      return {"KEY_CHANGED", false, true};
    case EventKind::key_unused:
      return {"KEY_UNUSED", false, false};
    case EventKind::replaced:
      return {"REPLACED", true, false};
    case EventKind::retained_mismatch:
      return {"RETAINED_MISMATCH", false, false};
    case EventKind::peer_key:
      return {"PEER_KEY", false, true};
    case EventKind::established:
      return {"ESTABLISHED", true, false};
    case EventKind::trust:
      return {"TRUST", false, false};
    case EventKind::sas:
      return {"SAS", false, false};
    case EventKind::attached:
      return {"ATTACHED", true, false};
    case EventKind::content:
      return {"CONTENT", true, false};
    case EventKind::rekeyed:
      return {"REKEYED", true, false};
    case EventKind::terminated:
      return {"TERMINATED", true, false};
    case EventKind::rekey_sent:
      return {"REKEY_SENT", true, false};
    case EventKind::terminating:
      return {"TERMINATING", true, false};
  }
  return {"EVENT", false, false};
}

}  // namespace

std::string_view event_keyword(EventKind k) {
  return info(k).keyword;
}

std::vector<std::string> status_fields(const Event& e) {
  KindInfo i = info(e.kind);
  std::vector<std::string> out{e.peer};
  if (i.thread)
    out.push_back(e.thread);
  if (i.fingerprint)
    out.push_back(e.fingerprint);
  out.insert(out.end(), e.values.begin(), e.values.end());
  return out;
}

}  // namespace esession
