// esession session: the stored sessions.
#include "commands.hpp"

namespace esession::cli {

namespace {

struct SessionOpts {
  std::string which;  // a session id or a peer JID
};

const char* role_name(SessionRole r) {
  return r == SessionRole::initiator ? "initiator" : "responder";
}

int run_list(Context& ctx) {
  auto all = check(ctx.store().list_sessions(ctx.account().id));
  if (ctx.json()) {
    std::printf("[");
    for (size_t i = 0; i < all.size(); ++i) {
      const auto& s = all[i];
      std::printf(
          "%s{\"id\":%lld,\"peer\":%s,\"thread\":%s,\"status\":%s,\"role\":%s,"
          "\"flow\":%d,\"updated\":%lld}",
          i ? "," : "", static_cast<long long>(s.id), json_escape(s.peer_jid).c_str(),
          json_escape(s.thread).c_str(), json_escape(session_status_name(s.status)).c_str(),
          json_escape(role_name(s.role)).c_str(), s.flow == SessionFlow::three_message ? 3 : 4,
          static_cast<long long>(s.updated));
    }
    std::printf("]\n");
    return kExitOk;
  }
  for (const auto& s : all)
    std::printf("%-4lld %-8s %-40s %s\n", static_cast<long long>(s.id),
                std::string(session_status_name(s.status)).c_str(), s.peer_jid.c_str(),
                s.thread.c_str());
  return kExitOk;
}

// trust_level rates the session's peer (session_trust) with what the store knows now: a key
// verified or pinned since, a SAS confirmed since.
std::string trust_level(Context& ctx, const SessionRecord& rec, const StoredSession& ss) {
  Store& st = ctx.store();
  std::string bare = bare_jid(rec.peer_jid);
  bool key_verified = false, key_pinned = false, sas_verified = false;
  if (!ss.peer_fingerprint.empty())
    if (auto peer = check(st.get_peer(ctx.account().id, bare)))
      if (auto t = check(st.get_trust(peer->id, ss.peer_fingerprint)); t && t->verified) {
        key_verified = true;
        key_pinned = t->source == TrustSource::pinned;
      }
  if (ss.retained_id)
    for (const auto& r : check(st.retained_for_peer(ctx.account().id, bare)))
      if (r.id == *ss.retained_id && r.sas_verified)
        sas_verified = true;
  return session_trust(key_verified, key_pinned, sas_verified, ss);
}

int run_show(Context& ctx, const SessionOpts& o) {
  Store& st = ctx.store();
  std::optional<SessionRecord> rec;
  bool numeric = !o.which.empty() && o.which.find_first_not_of("0123456789") == std::string::npos;
  if (numeric) {
    rec = check(st.get_session(std::stoll(o.which)));
    if (rec && rec->account_id != ctx.account().id)
      rec.reset();
  } else {
    rec = check(st.find_active_session(ctx.account().id, o.which));
    if (!rec)  // else the newest one, whatever its status
      for (auto& s : check(st.list_sessions(ctx.account().id)))
        if (s.peer_jid == o.which && (!rec || s.id > rec->id))
          rec = s;
  }
  if (!rec)
    fail_with(Errc::no_session, "no session " + o.which, "list them with: esession session list");
  // Reading never writes: a write would move the session's |updated| time.
  StoredSession ss = open_stored(check(st.read_session_state(rec->id)));
  Session s = check(Session::deserialize(view(ss.session)));
  const Suite& su = s.suite();
  std::string trust = trust_level(ctx, *rec, ss);
  std::string kinds_json;
  for (const auto& k : su.stanzas)
    kinds_json += (kinds_json.empty() ? "" : ",") + json_escape(k);
  if (ctx.json()) {
    std::printf(
        "{\"id\":%lld,\"peer\":%s,\"thread\":%s,\"status\":%s,\"role\":%s,\"flow\":%d,"
        "\"cipher\":%s,\"hash\":%s,\"modp\":%d,\"stanzas\":[%s],\"sas\":%s,"
        "\"peer_identification\":%s,\"peer_fingerprint\":%s,\"own_identification\":%s,"
        "\"own_key_unused\":%s,\"continuity\":%s,\"trust\":%s}\n",
        static_cast<long long>(rec->id), json_escape(rec->peer_jid).c_str(),
        json_escape(rec->thread).c_str(), json_escape(session_status_name(rec->status)).c_str(),
        json_escape(role_name(rec->role)).c_str(), rec->flow == SessionFlow::three_message ? 3 : 4,
        json_escape(cipher_name(su.cipher)).c_str(), json_escape(hash_name(su.hash)).c_str(),
        su.modp, kinds_json.c_str(), json_escape(ss.sas).c_str(), json_escape(ss.peer_mode).c_str(),
        json_escape(ss.peer_fingerprint).c_str(), json_escape(ss.own_mode).c_str(),
        json_escape(ss.own_key_unused).c_str(), ss.continuity ? "true" : "false",
        json_escape(trust).c_str());
    return kExitOk;
  }
  std::string kinds;
  for (const auto& k : su.stanzas)
    kinds += (kinds.empty() ? "" : ", ") + k;
  std::printf("session:   %lld (%s, %s)\npeer:      %s\nthread:    %s\n",
              static_cast<long long>(rec->id),
              std::string(session_status_name(rec->status)).c_str(), role_name(rec->role),
              rec->peer_jid.c_str(), rec->thread.c_str());
  std::printf("suite:     %d-message, %s, %s, MODP %d%s\nstanzas:   %s\n",
              rec->flow == SessionFlow::three_message ? 3 : 4,
              std::string(cipher_name(su.cipher)).c_str(), std::string(hash_name(su.hash)).c_str(),
              su.modp, su.compat == Compat::gajim ? ", Gajim conventions" : "", kinds.c_str());
  if (!ss.sas.empty())
    std::printf("SAS:       %s\n", ss.sas.c_str());
  std::printf("peer key:  %s\ncontinuity: %s\n",
              ss.peer_fingerprint.empty() ? "none (SAS and retained secrets only)"
                                          : group_hex(ss.peer_fingerprint).c_str(),
              ss.continuity ? "yes (a retained secret matched)" : "no (first session)");
  if (ss.own_mode == "key" || ss.own_mode == "hash")
    std::printf("our key:   identified us (%s)\n", ss.own_mode.c_str());
  else if (!ss.own_key_unused.empty())
    std::printf("our key:   not used: %s (the SAS identifies us)\n", ss.own_key_unused.c_str());
  else if (ss.own_mode == "none")
    std::printf("our key:   not used (the SAS identifies us)\n");
  std::printf("trust:     %s\n", trust.c_str());
  return kExitOk;
}

}  // namespace

void add_session(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<SessionOpts>();
  auto* s = app.add_subcommand("session", "the stored sessions");
  s->require_subcommand(1);
  auto* list = s->add_subcommand("list", "list sessions");
  list->callback([&ctx, &action] { action = [&ctx] { return run_list(ctx); }; });
  auto* show = s->add_subcommand("show", "show a session's suite, SAS and peer identification");
  show->add_option("session", o->which, "session id, or the peer's full JID")->required();
  show->callback([&ctx, &action, o] { action = [&ctx, o] { return run_show(ctx, *o); }; });
}

}  // namespace esession::cli
