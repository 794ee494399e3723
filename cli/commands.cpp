#include "commands.hpp"

#include <map>

namespace esession::cli {

namespace {

std::map<const CLI::Option*, ValueHint>& value_hints() {
  static std::map<const CLI::Option*, ValueHint> hints;
  return hints;
}

}  // namespace

CLI::Option* value_is(CLI::Option* opt, ValueKind kind, std::vector<std::string> choices) {
  value_hints()[opt] = ValueHint{kind, std::move(choices)};
  return opt;
}

ValueHint value_hint(const CLI::Option* opt) {
  auto it = value_hints().find(opt);
  return it == value_hints().end() ? ValueHint{} : it->second;
}

const std::vector<Command>& command_table() {
  static const std::vector<Command> table = {
      {"init", add_init},           {"account", add_account},     {"key", add_key},
      {"peer", add_peer},           {"negotiate", add_negotiate}, {"respond", add_respond},
      {"encrypt", add_encrypt},     {"decrypt", add_decrypt},     {"rekey", add_rekey},
      {"terminate", add_terminate}, {"session", add_session},     {"demo", add_demo},
      {"seal", add_seal},           {"open", add_open},
  };
  return table;
}

namespace {

// prep_cached is prep_jid with a memory of the last JIDs prepared: a stream of stanzas names the
// same few JIDs again and again, and stringprep is a tenth of encrypt's time.
Result<std::string> prep_cached(std::string_view jid) {
  thread_local std::vector<std::pair<std::string, std::string>> memo;
  for (const auto& [in, out] : memo)
    if (in == jid)
      return out;
  Result<std::string> r = prep_jid(jid);
  if (r) {
    if (memo.size() >= 16)
      memo.erase(memo.begin());
    memo.emplace_back(std::string(jid), *r);
  }
  return r;
}

}  // namespace

std::string prepared_jid(std::string_view jid, JidKind kind, std::string_view what) {
  Result<std::string> r = prep_cached(jid);
  if (r && kind != JidKind::any) {
    bool has_resource = r->find('/') != std::string::npos;
    if (kind == JidKind::full && !has_resource)
      r = fail(Errc::malformed, "'" + std::string(jid) + "' is not a full JID (no /resource)");
    else if (kind == JidKind::bare && has_resource)
      r = fail(Errc::malformed,
               "'" + std::string(jid) + "' is a full JID: give it without its resource");
  }
  if (!r)
    fail_with(Errc::malformed, std::string(what) + ": " + r.error().detail,
              kind == JidKind::full ? "a full JID is user@domain/resource" : "");
  return std::move(r).value();
}

bool same_jid(std::string_view a, std::string_view b) {
  Result<std::string> pa = prep_cached(a), pb = prep_cached(b);
  return pa && pb && *pa == *pb;
}

std::vector<PublicKey> StoreVerifier::known_keys(std::string_view bare) const {
  std::vector<PublicKey> out;
  Store& s = m_ctx.store();
  auto peer = s.get_peer(m_ctx.account().id, std::string(bare));
  if (!peer || !*peer)
    return out;
  auto trust = s.list_trust((*peer)->id);
  if (!trust)
    return out;
  for (const auto& t : *trust)
    if (!t.key_pem.empty())
      if (auto k = PublicKey::from_pem(t.key_pem))
        out.push_back(std::move(k).value());
  return out;
}

const PkiVerdict* StoreVerifier::verdict(const std::string& fingerprint) const {
  auto it = m_verdicts.find(fingerprint);
  return it == m_verdicts.end() ? nullptr : &it->second;
}

Status StoreVerifier::accept(std::string_view bare, const PublicKey& key,
                             const Credential* cred) const {
  Store& s = m_ctx.store();
  std::string fpr = fingerprint_of(key);
  if (cred) {
    PkiVerdict v = evaluate_pki(m_ctx, bare, *cred);
    m_ctx.status("PKI", {bare, fpr, v.kind, v.status});
    if (v.refuse)
      return fail(Errc::auth_failed, std::string(bare) + ": " + v.reason);
    if (!v.valid)
      m_ctx.warn(std::string(bare) + ": " + v.reason);
    m_verdicts[fpr] = std::move(v);
  }
  // The same key under another JID of ours (XEP-0116 §7.4): one person with two JIDs, or one
  // impersonating another.
  ES_ASSIGN(auto peers, s.list_peers(m_ctx.account().id));
  std::vector<TrustRecord> trust;
  for (const auto& p : peers) {
    ES_ASSIGN(auto records, s.list_trust(p.id));
    if (p.jid == bare) {
      trust = std::move(records);
      continue;
    }
    for (const auto& t : records)
      if (t.fingerprint == fpr) {
        m_ctx.status("KEY_OTHER_JID", {bare, fpr, p.jid});
        m_ctx.warn(std::string(bare) + " identifies with a key we know as " + p.jid + "'s (" +
                   group_hex(fpr.substr(0, 16)) + "…)");
      }
  }
  bool known = false, other_verified = false;
  for (const auto& t : trust) {
    if (t.fingerprint == fpr)
      known = true;
    else if (t.verified)
      other_verified = true;
  }
  if (!known && other_verified) {
    m_ctx.status("KEY_CHANGED", {bare, fpr, "refused"});
    return fail(Errc::auth_failed, std::string(bare) +
                                       " presented a key other than the verified one (" +
                                       group_hex(fpr.substr(0, 16)) + "…)");
  }
  if (!known && !trust.empty()) {
    // Only unverified keys were seen before: accept, but say so loudly.
    m_ctx.status("KEY_CHANGED", {bare, fpr, "accepted"});
    m_ctx.warn(std::string(bare) + " now identifies with another key (" +
               group_hex(fpr.substr(0, 16)) + "…); compare the SAS or the fingerprint");
  }
  return {};
}

StoredSession open_stored(ByteView blob) {
  return check(StoredSession::decode(blob));
}

std::string printable(std::string_view s, size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  return "'" + out + (s.size() > max ? "…'" : "'");
}

SessionRecord find_session_for(Context& ctx, const std::string& peer_jid,
                               const xml::Element& stanza) {
  Store& s = ctx.store();
  const Account& a = ctx.account();
  if (const xml::Element* th = stanza.child("thread", xml::kNsClient)) {
    // A thread names one session, and only that session's peer may use it: no fallback to
    // another session, which would then decrypt (or be destroyed by) a stanza not its own.
    std::string thread = th->text_content();
    auto rec = check(s.find_session(a.id, peer_jid, thread));
    if (rec && rec->status == SessionStatus::ended)
      fail_with(Errc::terminated,
                "the session with " + peer_jid + " on thread " + printable(thread) + " has ended",
                "start a new one with: esession negotiate --to " + peer_jid);
    if (rec)
      return *rec;
    if (!check(s.find_sessions_by_thread(a.id, thread)).empty())
      fail_with(Errc::no_session,
                "thread " + printable(thread) + " belongs to a session with another peer, not " +
                    peer_jid + "; stanza refused",
                "a stanza may only use a thread of its own sender's session");
    fail_with(
        Errc::no_session,
        "no session with " + peer_jid + " on thread " + printable(thread) + "; stanza refused",
        "list the sessions with: esession session list");
  }
  auto rec = check(s.find_active_session(a.id, peer_jid));
  if (rec)
    return *rec;
  // A session that is closing or has ended is reported as such (exit status 4).
  for (const auto& other : check(s.list_sessions(a.id)))
    if (other.peer_jid == peer_jid && other.status != SessionStatus::active)
      fail_with(Errc::terminated, "the session with " + peer_jid + " has ended",
                "start a new one with: esession negotiate --to " + peer_jid);
  fail_with(Errc::no_session, "no encrypted session with " + peer_jid,
            "start one with: esession negotiate --to " + peer_jid);
}

}  // namespace esession::cli

namespace esession::cli {

namespace {

// end_replaced ends session |id| because a newer one with the same peer replaces it: its keys
// are destroyed (the state is rewritten without them; the secure_delete pragma zeroes what
// the old state occupied) and its status becomes ended. What the CLI keeps beside the protocol
// state (SAS, the peer's identification) stays, for `session show`.
Status end_replaced(Store& s, int64_t id) {
  return s.update_session(id, [](SecretBytes& blob, SessionStatus& status) -> Status {
    status = SessionStatus::ended;
    auto ss = StoredSession::decode(view(blob));
    if (!ss) {  // unreadable: nothing of it is worth keeping
      blob = SecretBytes();
      return {};
    }
    auto sess = Session::deserialize(view(ss->session));
    if (sess) {
      sess->destroy();
      ss->session = sess->serialize();
    } else {
      ss->session = SecretBytes();
    }
    blob = ss->encode();
    return {};
  });
}

}  // namespace

void persist_established(Context& ctx, const std::string& peer_jid, const std::string& thread,
                         bool initiator, Established& est, const std::vector<RetainedSecret>& mine,
                         const std::vector<RetainedSecret>& others, const StoreVerifier* verifier,
                         const std::function<void()>& after_commit) {
  Store& s = ctx.store();
  const Account& a = ctx.account();
  std::string peer_bare = bare_jid(peer_jid);
  std::string client = peer_jid.substr(peer_bare.size() + 1);
  StoredSession ss;
  ss.sas = est.sas;
  ss.peer_mode = std::string(pubkey_name(est.peer_mode));
  ss.own_mode = std::string(pubkey_name(est.own_mode));
  ss.own_key_unused = est.own_key_unused ? est.own_key_unused->describe() : "";
  bool verified_chain = false;
  bool key_verified = false, key_pinned = false;
  SessionRecord rec;
  std::vector<std::string> replaced;  // the threads of the sessions the new one ends
  // The new retained secret, the peer's key and the session are stored together or not at all.
  check(s.atomically([&]() -> Status {
    if (!est.new_retained_secret.empty()) {
      std::optional<int64_t> matched;
      if (est.srs_index) {
        const auto& list = est.srs_from_other ? others : mine;
        if (*est.srs_index < list.size())
          matched = list[*est.srs_index].id;
      }
      ES_ASSIGN(RetainedSecret rs,
                s.replace_retained(a.id, peer_bare, client, est.new_retained_secret, matched));
      ss.retained_id = rs.id;
      ss.continuity = matched.has_value();
      verified_chain = rs.sas_verified;
    }
    if (est.peer_key) {
      ss.peer_fingerprint = fingerprint_of(*est.peer_key);
      ES_ASSIGN(TrustRecord t, s.record_peer_key(a.id, peer_bare, ss.peer_fingerprint,
                                                 TrustSource::tofu, false, est.peer_key->pem()));
      key_verified = t.verified;
      key_pinned = t.source == TrustSource::pinned;
      if (const PkiVerdict* v = verifier ? verifier->verdict(ss.peer_fingerprint) : nullptr) {
        ES_TRY(s.set_key_pki(t.id, v->kind, v->status, v->detail));
        if (v->valid)
          ss.pki = v->kind + "-valid";
      }
    } else {
      ES_TRY(s.upsert_peer(a.id, peer_bare));
    }
    ss.session = est.session->serialize();
    NewSession ns;
    ns.account_id = a.id;
    ns.peer_jid = peer_jid;
    ns.thread = thread;
    ns.role = initiator ? SessionRole::initiator : SessionRole::responder;
    ns.flow =
        est.flow == Flow::three_message ? SessionFlow::three_message : SessionFlow::four_message;
    ES_ASSIGN(rec, s.create_session(ns, ss.encode()));
    if (est.terminated) {
      // Three-message with terminate=1: over at once; it replaces nothing.
      ES_TRY(s.set_session_status(rec.id, SessionStatus::ended));
      return {};
    }
    // At most one active session per pair of full JIDs (formats/esession-1.0.md §3): the new
    // one ends the older ones, in this transaction.
    replaced.clear();
    ES_ASSIGN(auto all, s.list_sessions(a.id));
    for (const auto& old : all)
      if (old.id != rec.id && old.peer_jid == peer_jid && old.status != SessionStatus::ended) {
        ES_TRY(end_replaced(s, old.id));
        replaced.push_back(old.thread);
      }
    return {};
  }));
  // Committed: now the last negotiation message may go out (the peer is established only when
  // it gets it, and we are too, durably, whatever happens from here on).
  if (after_commit)
    after_commit();
  for (const auto& old : replaced) {
    ctx.status("REPLACED", {peer_jid, old});
    ctx.info("the older session with " + peer_jid + " (thread " + old +
             ") has ended: the new one replaces it");
  }
  if (!est.new_retained_secret.empty() && !mine.empty() && !ss.continuity) {
    // We held a secret for this peer and it did not match: the peer lost its state, or someone
    // is in the middle (XEP-0116 §7.3). Only the SAS can tell.
    ctx.status("RETAINED_MISMATCH", {peer_jid});
    ctx.warn("the secret retained from the last session with " + peer_bare +
             " did not match: compare the SAS before trusting this session");
  }
  if (const auto& u = est.own_key_unused) {
    // One sign_algs value serves both parties (formats §6): with keys of two types, one side
    // identifies by the SAS alone. Say so, rather than drop our key identification silently.
    std::string offered;
    for (KeyType kt : u->offered)
      offered += (offered.empty() ? "" : ",") + std::string(key_type_name(kt));
    ctx.status("KEY_UNUSED", {peer_jid, offered, std::string(key_type_name(u->ours))});
    ctx.warn("our key does not identify us to " + peer_jid + " in this session (" + u->describe() +
             "): " + peer_bare + " can authenticate us only by the SAS");
  }
  std::string trust = session_trust(key_verified, key_pinned, verified_chain && ss.continuity, ss);
  if (est.peer_key)
    ctx.status("PEER_KEY", {peer_bare, ss.peer_fingerprint, ss.peer_mode});
  const Suite& su = est.session->suite();
  ctx.status("ESTABLISHED", {peer_jid, thread, est.flow == Flow::three_message ? "3" : "4",
                             cipher_name(su.cipher), hash_name(su.hash), std::to_string(su.modp)});
  ctx.status("TRUST", {peer_jid, trust});
  ctx.info("encrypted session " + std::to_string(rec.id) + " with " + peer_jid + " established (" +
           (est.flow == Flow::three_message ? "3" : "4") + "-message, " +
           std::string(cipher_name(su.cipher)) + ", " + std::string(hash_name(su.hash)) +
           ", MODP " + std::to_string(su.modp) + ")");
  if (!ss.sas.empty()) {
    ctx.status("SAS", {peer_jid, ss.sas});
    if (verified_chain) {
      ctx.info("SAS " + ss.sas + " (this peer's SAS was verified in an earlier session)");
    } else {
      ctx.info("SAS " + ss.sas + ": compare it with " + peer_bare +
               " by voice or in person, then run: esession peer verify " + peer_bare + " --sas " +
               ss.sas);
    }
  }
}

}  // namespace esession::cli
