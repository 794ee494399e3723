// How the command line shows the engine's events: a status line on --status-fd and, for
// people, a sentence on stderr; and the advice that goes with a refusal.
#include "commands.hpp"

namespace esession::cli {

namespace {

std::string short_fpr(const std::string& fpr) {
  return group_hex(fpr.substr(0, 16)) + "…";
}

// say writes the sentence for |e|, if it has one.
void say(Context& ctx, const Event& e) {
  const std::string bare = bare_jid(e.peer);
  auto value = [&](size_t i) { return i < e.values.size() ? e.values[i] : std::string(); };
  switch (e.kind) {
    case EventKind::pki:
      if (!e.detail.empty())
        ctx.warn(e.peer + ": " + e.detail);
      break;
    case EventKind::key_other_jid:
      ctx.warn(e.peer + " identifies with a key we know as " + value(0) + "'s (" +
               short_fpr(e.fingerprint) + ")");
      break;
    case EventKind::key_changed:
      if (value(0) == "accepted")
        ctx.warn(e.peer + " now identifies with another key (" + short_fpr(e.fingerprint) +
                 "); compare the SAS or the fingerprint");
      break;
    case EventKind::replaced:
      ctx.info("the older session with " + e.peer + " (thread " + e.thread +
               ") has ended: the new one replaces it");
      break;
    case EventKind::retained_mismatch:
      ctx.warn("the secret retained from the last session with " + bare +
               " did not match: compare the SAS before trusting this session");
      break;
    case EventKind::key_unused:
      ctx.warn("our key does not identify us to " + e.peer + " in this session (" + e.detail +
               "): " + bare + " can authenticate us only by the SAS");
      break;
    case EventKind::established:
      ctx.info("encrypted session " + std::to_string(e.session_id) + " with " + e.peer +
               " established (" + value(0) + "-message, " + value(1) + ", " + value(2) + ", MODP " +
               value(3) + ")");
      break;
    case EventKind::sas:
      if (e.sas_verified_before)
        ctx.info("SAS " + value(0) + " (this peer's SAS was verified in an earlier session)");
      else
        ctx.info("SAS " + value(0) + ": compare it with " + bare +
                 " by voice or in person, then run: esession peer verify " + bare + " --sas " +
                 value(0));
      break;
    case EventKind::terminated:
      ctx.info("the session with " + e.peer + " has ended" +
               (e.one_shot ? " (the peer asked for one stanza only)" : ""));
      break;
    default:
      break;
  }
}

}  // namespace

void render(Context& ctx, const Event& e) {
  std::vector<std::string> fields = status_fields(e);
  std::vector<std::string_view> views(fields.begin(), fields.end());
  ctx.status(event_keyword(e.kind), views);
  say(ctx, e);
}

void render(Context& ctx, const Events& events) {
  for (const Event& e : events)
    render(ctx, e);
}

std::string hint_for(Refusal r, const std::string& peer) {
  switch (r) {
    case Refusal::no_sender:
      return "give the peer with --from";
    case Refusal::no_recipient:
      return "give the peer with --to";
    case Refusal::negotiation_request:
      return "answer it with: esession respond";
    case Refusal::not_for_us:
      return "decrypt stanzas with the home of the account they are addressed to";
    case Refusal::other_account:
      return "encrypt each account's stanzas in a run of their own";
    case Refusal::clear_stanza:
      return "the session with this peer is encrypted; clear stanzas are never accepted";
    case Refusal::session_ended:
      return "start a new one with: esession negotiate --to " + peer;
    case Refusal::no_session:
      return "start one with: esession negotiate --to " + peer;
    case Refusal::unknown_thread:
      return "list the sessions with: esession session list";
    case Refusal::foreign_thread:
      return "a stanza may only use a thread of its own sender's session";
    case Refusal::none:
    case Refusal::other:
      break;
  }
  return {};
}

Failure failure_of(const Outcome& o, const std::string& peer) {
  return Failure{o.error.value_or(Error{Errc::internal, "unknown failure"}),
                 hint_for(o.refusal, peer)};
}

}  // namespace esession::cli
