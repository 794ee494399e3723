// esession peer: the trust database (fingerprints, SAS verification, retained secrets).
#include <ctime>

#include "commands.hpp"

namespace esession::cli {

namespace {

struct PeerOpts {
  std::string jid;
  std::string sas;
  std::string key;
};

PeerRecord need_peer(Context& ctx, const std::string& jid) {
  std::string bare = bare_jid(prepared_jid(jid, JidKind::any, "the peer"));
  auto p = check(ctx.store().get_peer(ctx.account().id, bare));
  if (!p)
    fail_with(Errc::malformed, "no peer " + bare, "list them with: esession peer list");
  return *p;
}

// latest_session returns the most recently negotiated session with the peer (any resource):
// the one whose SAS the user has just seen. Ids grow with every new session.
std::optional<SessionRecord> latest_session(Context& ctx, const std::string& bare) {
  std::optional<SessionRecord> best;
  for (auto& s : check(ctx.store().list_sessions(ctx.account().id)))
    if (bare_jid(s.peer_jid) == bare && (!best || s.id > best->id))
      best = s;
  return best;
}

// pki_json is what a PKI last said of a key, or null.
std::string pki_json(const TrustRecord& t) {
  if (t.pki_kind.empty())
    return "null";
  return "{\"kind\":" + json_escape(t.pki_kind) + ",\"status\":" + json_escape(t.pki_status) +
         ",\"detail\":" + json_escape(t.pki_detail) +
         ",\"checked\":" + std::to_string(t.pki_checked) + "}";
}

std::string trust_summary(Context& ctx, const PeerRecord& p) {
  bool key_verified = false, sas_verified = false;
  std::string pki;
  for (const auto& t : check(ctx.store().list_trust(p.id))) {
    key_verified |= t.verified;
    if (t.pki_status == "valid")
      pki = t.pki_kind + "-valid";
  }
  for (const auto& r : check(ctx.store().retained_for_peer(ctx.account().id, p.jid)))
    sas_verified |= r.sas_verified;
  if (key_verified)
    return "key-verified";
  if (sas_verified)
    return "sas-verified";
  if (!pki.empty())
    return pki;
  return "unverified";
}

int run_list(Context& ctx) {
  auto peers = check(ctx.store().list_peers(ctx.account().id));
  if (ctx.json()) {
    std::printf("[");
    for (size_t i = 0; i < peers.size(); ++i)
      std::printf("%s{\"jid\":%s,\"trust\":%s,\"first_seen\":%lld}", i ? "," : "",
                  json_escape(peers[i].jid).c_str(),
                  json_escape(trust_summary(ctx, peers[i])).c_str(),
                  static_cast<long long>(peers[i].first_seen));
    std::printf("]\n");
    return kExitOk;
  }
  for (const auto& p : peers)
    std::printf("%-40s %s\n", p.jid.c_str(), trust_summary(ctx, p).c_str());
  return kExitOk;
}

int run_show(Context& ctx, const PeerOpts& o) {
  PeerRecord p = need_peer(ctx, o.jid);
  auto trust = check(ctx.store().list_trust(p.id));
  auto secrets = check(ctx.store().retained_for_peer(ctx.account().id, p.jid));
  if (ctx.json()) {
    std::printf("{\"jid\":%s,\"trust\":%s,\"keys\":[", json_escape(p.jid).c_str(),
                json_escape(trust_summary(ctx, p)).c_str());
    for (size_t i = 0; i < trust.size(); ++i)
      std::printf(
          "%s{\"fingerprint\":%s,\"source\":%s,\"verified\":%s,\"first_seen\":%lld,"
          "\"last_seen\":%lld,\"pki\":%s}",
          i ? "," : "", json_escape(trust[i].fingerprint).c_str(),
          json_escape(trust_source_name(trust[i].source)).c_str(),
          trust[i].verified ? "true" : "false", static_cast<long long>(trust[i].first_seen),
          static_cast<long long>(trust[i].last_seen), pki_json(trust[i]).c_str());
    std::printf("],\"retained_secrets\":[");
    for (size_t i = 0; i < secrets.size(); ++i)
      std::printf("%s{\"client\":%s,\"created\":%lld,\"sas_verified\":%s}", i ? "," : "",
                  json_escape(secrets[i].client).c_str(),
                  static_cast<long long>(secrets[i].created),
                  secrets[i].sas_verified ? "true" : "false");
    std::printf("]}\n");
    return kExitOk;
  }
  std::printf("peer:  %s\ntrust: %s\n", p.jid.c_str(), trust_summary(ctx, p).c_str());
  for (const auto& t : trust) {
    std::printf("key:   %s  (%s%s)\n", group_hex(t.fingerprint).c_str(),
                std::string(trust_source_name(t.source)).c_str(), t.verified ? ", verified" : "");
    if (!t.pki_kind.empty())
      std::printf("       %s %s: %s (checked %s)\n", t.pki_kind == "x509" ? "X.509" : "OpenPGP",
                  t.pki_status.c_str(), t.pki_detail.c_str(), utc_time(t.pki_checked).c_str());
  }
  for (const auto& r : secrets)
    std::printf("retained secret with /%s%s\n", r.client.c_str(),
                r.sas_verified ? " (SAS verified)" : "");
  return kExitOk;
}

// same_sas compares SAS strings as users type them: case-insensitive, and Gajim's unpadded
// form (leading 'a' digits dropped, R3) equals the padded one.
bool same_sas(std::string a, std::string b) {
  for (auto* s : {&a, &b}) {
    for (char& c : *s)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while (s->size() < 5)
      s->insert(s->begin(), 'a');
  }
  return ct_equal(view(a), view(b));
}

int run_verify(Context& ctx, const PeerOpts& o) {
  std::string bare = bare_jid(prepared_jid(o.jid, JidKind::any, "the peer"));
  Store& s = ctx.store();
  if (!o.key.empty() && !o.sas.empty())
    fail_with(Errc::malformed, "give either --sas or --key, not both");
  if (!o.key.empty()) {
    // Pin a fingerprint compared out of band.
    std::string fpr;
    for (char c : o.key)
      if (c != ' ' && c != ':')
        fpr += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (fpr.size() != 64 || !unhex(fpr))
      fail_with(Errc::malformed, "--key needs the full SHA-256 fingerprint (64 hex digits)");
    check(s.record_peer_key(ctx.account().id, bare, fpr, TrustSource::pinned, true));
    ctx.status("KEY_PINNED", {bare, fpr});
    ctx.info("pinned key " + group_hex(fpr) + " for " + bare);
    return kExitOk;
  }
  auto rec = latest_session(ctx, bare);
  if (!rec)
    fail_with(Errc::no_session, "no session with " + bare + " to verify",
              "negotiate one first, then compare its SAS");
  StoredSession ss = open_stored(check(s.read_session_state(rec->id)));
  if (ss.sas.empty())
    fail_with(Errc::malformed, "that session has no SAS (three-message flow)",
              "verify the peer's key fingerprint instead: esession peer verify JID --key FPR");
  if (!o.sas.empty() && !same_sas(o.sas, ss.sas)) {
    ctx.status("SAS_MISMATCH", {bare});
    fail_with(Errc::auth_failed,
              "the SAS you compared (" + o.sas + ") is not this session's (" + ss.sas +
                  "): someone may be in the middle",
              "terminate the session and do not trust it");
  }
  if (ss.retained_id)
    check(s.mark_retained_verified(*ss.retained_id));
  if (!ss.peer_fingerprint.empty())
    check(s.record_peer_key(ctx.account().id, bare, ss.peer_fingerprint, TrustSource::sas, true));
  ctx.status("SAS_VERIFIED", {bare, ss.sas});
  ctx.info("recorded that the SAS " + ss.sas + " of the session with " + rec->peer_jid +
           " was verified");
  return kExitOk;
}

int run_forget(Context& ctx, const PeerOpts& o) {
  std::string bare = bare_jid(prepared_jid(o.jid, JidKind::any, "the peer"));
  if (!check(ctx.store().forget_peer(ctx.account().id, bare)))
    fail_with(Errc::malformed, "no peer " + bare);
  ctx.status("PEER_FORGOTTEN", {bare});
  ctx.info("forgot " + bare + ": its keys, retained secrets and sessions");
  return kExitOk;
}

}  // namespace

void add_peer(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<PeerOpts>();
  auto* peer = app.add_subcommand("peer", "the trust database: peers, keys, SAS verification");
  peer->require_subcommand(1);
  auto* list = peer->add_subcommand("list", "list peers and how far they are trusted");
  list->callback([&ctx, &action] { action = [&ctx] { return run_list(ctx); }; });
  auto* show = peer->add_subcommand("show", "show a peer's keys and retained secrets");
  show->add_option("jid", o->jid, "the peer's JID")->required();
  show->callback([&ctx, &action, o] { action = [&ctx, o] { return run_show(ctx, *o); }; });
  auto* verify = peer->add_subcommand(
      "verify", "record that the SAS of the latest session was compared (or pin a key)");
  verify->add_option("jid", o->jid, "the peer's JID")->required();
  verify->add_option("--sas", o->sas, "the SAS the peer read out: checked before recording");
  verify->add_option("--key", o->key, "pin this key fingerprint, compared out of band");
  verify->callback([&ctx, &action, o] { action = [&ctx, o] { return run_verify(ctx, *o); }; });
  auto* forget = peer->add_subcommand("forget", "delete a peer's keys, secrets and sessions");
  forget->add_option("jid", o->jid, "the peer's JID")->required();
  forget->callback([&ctx, &action, o] { action = [&ctx, o] { return run_forget(ctx, *o); }; });
}

}  // namespace esession::cli
