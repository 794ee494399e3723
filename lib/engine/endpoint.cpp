#include "engine/endpoint.hpp"

#include <algorithm>
#include <ctime>

#include "engine/pep.hpp"
#include "engine/session_record.hpp"
#include "engine/trust.hpp"

namespace esession {

// Pending is a negotiation of ours in progress, with what its configuration points to.
struct Endpoint::Pending {
  std::string peer;  // full JID
  Events events;     // the trust policy's, moved into each step's Outcome
  std::unique_ptr<TrustPolicy> trust;
  std::vector<RetainedSecret> mine, others;
  PartyConfig cfg;
  std::optional<Negotiation> neg;
  std::optional<int64_t> saved_id;  // its record in the store (EngineConfig::save_negotiations)
};

namespace {

SessionStatus status_of(const Session& s) {
  if (s.active())
    return SessionStatus::active;
  return s.can_receive() ? SessionStatus::closing : SessionStatus::ended;
}

// with_session runs |fn| on session |id| inside the store's write transaction and writes the
// session back before returning: what fn produced may leave only then. The outer Result is the
// transaction's; the inner one fn's. A failed decryption destroys the session (XEP-0200 §8)
// and that state must be committed too, so fn's failure does not roll back.
template <class T, class F>
Result<Result<T>> with_session(Store& store, int64_t id, F&& fn) {
  return store.update_session(id,
                              [&](SecretBytes& blob, SessionStatus& status) -> Result<Result<T>> {
                                ES_ASSIGN(StoredSession ss, StoredSession::decode(view(blob)));
                                ES_ASSIGN(Session s, Session::deserialize(view(ss.session)));
                                Result<T> out = fn(s);
                                ss.session = s.serialize();
                                blob = ss.encode();
                                status = status_of(s);
                                return Result<Result<T>>(std::move(out));
                              });
}

// end_replaced ends session |id| because a newer one with the same peer replaces it: its keys
// are destroyed (the state is rewritten without them; the secure_delete pragma zeroes what
// the old state occupied) and its status becomes ended. What the record keeps beside the
// protocol state (SAS, the peer's identification) stays, for `session show`.
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

// thread_is_free refuses a request on a thread that already names a session: another peer's
// (a thread names one session, and incoming() routes by it), or one with this peer that has
// not ended (storing the new session would fail after the answer).
Status thread_is_free(Store& store, int64_t account, const std::string& peer,
                      const std::string& thread) {
  ES_ASSIGN(auto used, store.find_sessions_by_thread(account, thread));
  for (const auto& s : used) {
    if (s.peer_jid != peer)
      return fail(Errc::wrong_state,
                  "the negotiation request from " + peer +
                      " uses the thread of a session with another peer; refused");
    if (s.status != SessionStatus::ended)
      return fail(Errc::wrong_state, "the negotiation request from " + peer +
                                         " uses the thread of session " + std::to_string(s.id) +
                                         ", which is " +
                                         std::string(session_status_name(s.status)) + "; refused");
  }
  return {};
}

Event event(EventKind kind, std::string peer, std::string thread = {},
            std::vector<std::string> values = {}) {
  Event e;
  e.kind = kind;
  e.peer = std::move(peer);
  e.thread = std::move(thread);
  e.values = std::move(values);
  return e;
}

void refuse(Outcome& o, Errc code, std::string detail, Refusal why = Refusal::other) {
  o.error = Error{code, std::move(detail)};
  o.refusal = why;
}

// peer_of returns the peer of a stanza (|given|, else its 'from' when |incoming|, its 'to'
// otherwise), prepared; or refuses the stanza in |o|.
std::optional<std::string> peer_of(JidMemo& jids, const xml::Element& st, const std::string& given,
                                   bool incoming, Outcome& o) {
  std::string peer = given.empty() ? st.attr_or(incoming ? "from" : "to") : given;
  if (peer.empty()) {
    refuse(o, Errc::malformed,
           incoming ? "stanza without a 'from' attribute" : "stanza without a 'to' attribute",
           incoming ? Refusal::no_sender : Refusal::no_recipient);
    return std::nullopt;
  }
  auto prepped = jids.prep(peer);
  if (!prepped) {
    refuse(o, Errc::malformed,
           (incoming ? "the sender: " : "the recipient: ") + prepped.error().detail);
    return std::nullopt;
  }
  return std::move(prepped).value();
}

std::string thread_of(const xml::Element& st) {
  const xml::Element* th = st.child("thread", xml::kNsClient);
  return th ? th->text_content() : std::string();
}

}  // namespace

// Lookup finds the stored session a stanza belongs to, remembering within one batch which
// session each (peer, thread) uses.
struct Endpoint::Lookup {
  Store& store;
  int64_t account;
  std::map<std::string, SessionRecord> found;

  // find returns the session with |peer| for |st|. A stanza with a <thread/> belongs to the
  // session on that thread, which must be |peer|'s and not ended: an unknown thread, another
  // peer's thread or an ended session's is refused, never routed to another session. A stanza
  // without a thread belongs to the active session with |peer| (at most one exists). On
  // failure |out| says why; nothing changes.
  const SessionRecord* find(const std::string& peer, const xml::Element& st, Outcome& out) {
    const xml::Element* th = st.child("thread", xml::kNsClient);
    std::string key = peer + '\0' + (th ? th->text_content() : std::string());
    auto it = found.find(key);
    if (it != found.end())
      return &it->second;
    Result<SessionRecord> r = th ? by_thread(peer, th->text_content(), out) : active(peer, out);
    if (!r) {
      if (!out.error)
        refuse(out, r.error().code, r.error().detail);
      return nullptr;
    }
    return &found.emplace(key, std::move(r).value()).first->second;
  }

 private:
  Result<SessionRecord> by_thread(const std::string& peer, const std::string& thread,
                                  Outcome& out) {
    ES_ASSIGN(auto rec, store.find_session(account, peer, thread));
    if (rec && rec->status == SessionStatus::ended)
      return refused(out, Errc::terminated,
                     "the session with " + peer + " on thread " + printable(thread) + " has ended",
                     Refusal::session_ended);
    if (rec)
      return *rec;
    ES_ASSIGN(auto others, store.find_sessions_by_thread(account, thread));
    if (!others.empty())
      return refused(out, Errc::no_session,
                     "thread " + printable(thread) +
                         " belongs to a session with another peer, not " + peer +
                         "; stanza refused",
                     Refusal::foreign_thread);
    return refused(
        out, Errc::no_session,
        "no session with " + peer + " on thread " + printable(thread) + "; stanza refused",
        Refusal::unknown_thread);
  }

  Result<SessionRecord> active(const std::string& peer, Outcome& out) {
    ES_ASSIGN(auto rec, store.find_active_session(account, peer));
    if (rec)
      return *rec;
    // A session that is closing or has ended is reported as such.
    ES_ASSIGN(auto all, store.list_sessions(account));
    for (const auto& other : all)
      if (other.peer_jid == peer && other.status != SessionStatus::active)
        return refused(out, Errc::terminated, "the session with " + peer + " has ended",
                       Refusal::session_ended);
    return refused(out, Errc::no_session, "no encrypted session with " + peer, Refusal::no_session);
  }

  static Error refused(Outcome& out, Errc code, std::string detail, Refusal why) {
    refuse(out, code, detail, why);
    return Error{code, std::move(detail)};
  }
};

Endpoint::Endpoint(Store& store, Account account, EngineConfig cfg)
    : m_store(store), m_account(std::move(account)), m_cfg(std::move(cfg)) {}
Endpoint::~Endpoint() = default;
Endpoint::Endpoint(Endpoint&&) noexcept = default;

int64_t Endpoint::now() const {
  return m_cfg.clock ? m_cfg.clock() : static_cast<int64_t>(std::time(nullptr));
}

bool Endpoint::negotiating(std::string_view thread) const {
  return m_pending.find(thread) != m_pending.end();
}

// start builds our side's configuration for a negotiation with |peer|: the policy and identity
// given, the trust policy, and the retained secrets we hold (formats §9: none older than the
// expiry).
Outcome Endpoint::start(const std::string& peer, NegotiationOptions opts, bool initiator,
                        std::unique_ptr<Pending>& pending) {
  Outcome out;
  auto p = std::make_unique<Pending>();
  p->peer = peer;
  p->trust = std::make_unique<TrustPolicy>(m_store, m_account.id, m_cfg.pki, now(), p->events);
  const std::string peer_bare = bare_jid(peer);
  const int64_t not_before = opts.retain_days > 0 ? now() - int64_t{86400} * opts.retain_days : 0;
  auto mine = m_store.retained_for_peer(m_account.id, peer_bare, not_before);
  if (!mine) {
    out.error = mine.error();
    return out;
  }
  p->mine = std::move(mine).value();
  PartyConfig& c = p->cfg;
  for (const auto& r : p->mine)
    c.retained.push_back(r.secret);
  if (!initiator) {
    auto others = m_store.retained_for_other_peers(m_account.id, peer_bare, not_before);
    if (!others) {
      out.error = others.error();
      return out;
    }
    p->others = std::move(others).value();
    for (const auto& r : p->others)
      c.retained_other.push_back(r.secret);
  }
  c.jid = m_account.jid;
  c.policy = std::move(opts.policy);
  c.signer = opts.signer;
  c.verifier = p->trust.get();
  c.content = std::move(opts.content);
  c.terminate_after_content = opts.terminate_after_content;
  c.oss = std::move(opts.oss);
  out.style = wire_style(c.policy.compat);
  pending = std::move(p);
  return out;
}

Outcome Endpoint::negotiate(const std::string& peer, NegotiationOptions opts, RandomSource& rng) {
  std::unique_ptr<Pending> p;
  Outcome out = start(peer, std::move(opts), true, p);
  if (out.error)
    return out;
  auto started = Negotiation::start(p->cfg, peer, rng);
  if (!started) {
    out.error = started.error();
    return out;
  }
  auto& [neg, step] = started.value();
  for (auto& m : step.send)
    m.set_attr("from", m_account.jid);
  out.events.push_back(event(EventKind::negotiation_started, peer, neg.thread()));
  p->neg.emplace(std::move(neg));
  advance(std::move(p), std::move(step), out);
  return out;
}

Outcome Endpoint::respond(const xml::Element& offer, const std::string& peer,
                          NegotiationOptions opts, RandomSource& rng) {
  Outcome out;
  out.style = wire_style(opts.policy.compat);
  out.events.push_back(event(EventKind::negotiation_request, peer));
  auto failed = [&](const Error& e) {
    out.events.push_back(event(EventKind::negotiation_failed, peer, {}, {errc_name(e.code)}));
    out.error = e;
  };
  if (const xml::Element* th = offer.child("thread", xml::kNsClient))
    if (Status free = thread_is_free(m_store, m_account.id, peer, th->text_content()); !free) {
      failed(free.error());
      return out;
    }
  std::unique_ptr<Pending> p;
  Outcome prepared = start(peer, std::move(opts), false, p);
  if (prepared.error) {
    out.error = prepared.error;
    return out;
  }
  std::optional<xml::Element> reply;
  auto responded = Negotiation::respond(p->cfg, offer, rng, peer, &reply);
  std::move(p->events.begin(), p->events.end(), std::back_inserter(out.events));
  p->events.clear();
  if (!responded) {
    if (reply)
      out.send.push_back(std::move(*reply));
    failed(responded.error());
    return out;
  }
  auto& [neg, step] = responded.value();
  p->neg.emplace(std::move(neg));
  advance(std::move(p), std::move(step), out);
  return out;
}

// advance completes a step of negotiation |p|: a step that establishes the session commits it
// before its messages are handed out (the peer is established only when it gets them);
// otherwise the negotiation waits for the peer's next message.
void Endpoint::advance(std::unique_ptr<Pending> p, Step step, Outcome& out) {
  std::move(p->events.begin(), p->events.end(), std::back_inserter(out.events));
  p->events.clear();
  const std::string thread = p->neg->thread();
  out.thread = thread;
  if (!step.established) {
    // Saved before the message leaves: a restart after it can take the peer's answer.
    if (m_cfg.save_negotiations) {
      auto id = m_store.put_negotiation(m_account.id, p->peer, thread, p->neg->serialize());
      if (!id) {
        out.error = id.error();  // nothing leaves; the negotiation ends here
        forget_saved(*p);
        m_pending.erase(thread);
        return;
      }
      p->saved_id = *id;
    }
    out.send = std::move(step.send);
    m_pending[thread] = std::move(p);
    return;
  }
  m_pending.erase(thread);
  Events events;
  if (Status st = commit(*p, *step.established, thread, p->neg->initiator(), events); !st) {
    out.error = st.error();  // nothing leaves: neither side has the session
    return;
  }
  out.send = std::move(step.send);
  std::move(events.begin(), events.end(), std::back_inserter(out.events));
  if (p->cfg.content)
    out.events.push_back(event(EventKind::attached, p->peer, thread));
  // The peer's stanzas on its last message are authentic now that the session is stored
  // (XEP-0116 §4.5, §4.6.4).
  for (auto& r : step.content) {
    out.events.push_back(event(EventKind::content, p->peer, thread));
    out.deliver.push_back(std::move(r.stanza));
  }
  if (!step.content.empty() && step.established->terminated) {
    Event e = event(EventKind::terminated, p->peer, thread);
    e.one_shot = true;
    out.events.push_back(std::move(e));
  }
}

// commit stores a new session and everything the negotiation produced: the rotated retained
// secret, the peer's key and what a PKI said of it, and ends the older sessions with the same
// full JID (their keys destroyed), all in one transaction; then it reports what was stored.
Status Endpoint::commit(Pending& p, Established& est, const std::string& thread, bool initiator,
                        Events& events) {
  const std::string& peer = p.peer;
  const std::string peer_bare = bare_jid(peer);
  // An offline session may be with a bare JID (options that name no resource).
  const std::string client =
      peer.size() > peer_bare.size() ? peer.substr(peer_bare.size() + 1) : std::string();
  StoredSession ss;
  ss.sas = est.sas;
  ss.peer_mode = std::string(pubkey_name(est.peer_mode));
  ss.own_mode = std::string(pubkey_name(est.own_mode));
  ss.own_key_unused = est.own_key_unused ? est.own_key_unused->describe() : "";
  bool verified_chain = false, key_verified = false, key_pinned = false;
  SessionRecord rec;
  std::vector<std::string> replaced;  // the threads of the sessions the new one ends
  Status stored = m_store.atomically([&]() -> Status {
    // The saved negotiation goes with the session it made: one resumed elsewhere and
    // completed there has no record left, and this commit fails rather than store it twice.
    if (p.saved_id)
      ES_TRY(m_store.delete_negotiation(*p.saved_id));
    if (!est.new_retained_secret.empty()) {
      std::optional<int64_t> matched;
      if (est.srs_index) {
        const auto& list = est.srs_from_other ? p.others : p.mine;
        if (*est.srs_index < list.size())
          matched = list[*est.srs_index].id;
      }
      ES_ASSIGN(RetainedSecret rs, m_store.replace_retained(m_account.id, peer_bare, client,
                                                            est.new_retained_secret, matched));
      ss.retained_id = rs.id;
      ss.continuity = matched.has_value();
      verified_chain = rs.sas_verified;
    }
    if (est.peer_key) {
      ss.peer_fingerprint = key_fingerprint(*est.peer_key);
      ES_ASSIGN(TrustRecord t,
                m_store.record_peer_key(m_account.id, peer_bare, ss.peer_fingerprint,
                                        TrustSource::tofu, false, est.peer_key->pem()));
      key_verified = t.verified;
      key_pinned = t.source == TrustSource::pinned;
      if (const PkiVerdict* v = p.trust->verdict(ss.peer_fingerprint)) {
        ES_TRY(m_store.set_key_pki(t.id, v->kind, v->status, v->detail));
        if (v->valid)
          ss.pki = v->kind + "-valid";
      }
    } else {
      ES_TRY(m_store.upsert_peer(m_account.id, peer_bare));
    }
    ss.session = est.session->serialize();
    NewSession ns;
    ns.account_id = m_account.id;
    ns.peer_jid = peer;
    ns.thread = thread;
    ns.role = initiator ? SessionRole::initiator : SessionRole::responder;
    ns.flow =
        est.flow == Flow::three_message ? SessionFlow::three_message : SessionFlow::four_message;
    ES_ASSIGN(rec, m_store.create_session(ns, ss.encode()));
    if (est.terminated) {
      // Three-message with terminate=1: over at once; it replaces nothing.
      ES_TRY(m_store.set_session_status(rec.id, SessionStatus::ended));
      return {};
    }
    // At most one active session per pair of full JIDs (formats/esession-1.0.md §3): the new
    // one ends the older ones, in this transaction. An offline session we started with the
    // peer's bare JID ends too: the peer is reachable now (XEP-0187 §5).
    replaced.clear();
    ES_ASSIGN(auto all, m_store.list_sessions(m_account.id));
    for (const auto& old : all)
      if (old.id != rec.id && (old.peer_jid == peer || old.peer_jid == peer_bare) &&
          old.status != SessionStatus::ended) {
        ES_TRY(end_replaced(m_store, old.id));
        replaced.push_back(old.thread);
      }
    return {};
  });
  if (!stored)
    return stored.error();
  for (const auto& old : replaced)
    events.push_back(event(EventKind::replaced, peer, old));
  // We held a secret for this peer and it did not match: the peer lost its state, or someone
  // is in the middle (XEP-0116 §7.3). Only the SAS can tell.
  if (!est.new_retained_secret.empty() && !p.mine.empty() && !ss.continuity)
    events.push_back(event(EventKind::retained_mismatch, peer));
  if (const auto& u = est.own_key_unused) {
    // One sign_algs value serves both parties (formats §6): with keys of two types, one side
    // identifies by the SAS alone. Say so, rather than drop our key identification silently.
    std::string offered;
    for (KeyType kt : u->offered)
      offered += (offered.empty() ? "" : ",") + std::string(key_type_name(kt));
    Event e =
        event(EventKind::key_unused, peer, {}, {offered, std::string(key_type_name(u->ours))});
    e.detail = u->describe();
    events.push_back(std::move(e));
  }
  if (est.peer_key) {
    Event e = event(EventKind::peer_key, peer_bare, {}, {ss.peer_mode});
    e.fingerprint = ss.peer_fingerprint;
    events.push_back(std::move(e));
  }
  const Suite& su = est.session->suite();
  Event established =
      event(EventKind::established, peer, rec.thread,
            {est.flow == Flow::three_message ? "3" : "4", std::string(cipher_name(su.cipher)),
             std::string(hash_name(su.hash)), std::to_string(su.modp)});
  established.session_id = rec.id;
  events.push_back(std::move(established));
  events.push_back(
      event(EventKind::trust, peer, {},
            {session_trust(key_verified, key_pinned, verified_chain && ss.continuity, ss)}));
  if (!ss.sas.empty()) {
    Event e = event(EventKind::sas, peer, {}, {ss.sas});
    e.sas_verified_before = verified_chain;
    events.push_back(std::move(e));
  }
  return {};
}

// receive hands the next message of a negotiation in progress to it.
void Endpoint::receive(const xml::Element& st, RandomSource& rng, Outcome& out) {
  auto it = m_pending.find(thread_of(st));
  std::unique_ptr<Pending> p = std::move(it->second);
  m_pending.erase(it);
  out.style = wire_style(p->cfg.policy.compat);
  auto r = p->neg->receive(st, rng);
  if (!r) {
    std::move(p->events.begin(), p->events.end(), std::back_inserter(out.events));
    if (p->neg->error_reply())
      out.send.push_back(*p->neg->error_reply());
    out.events.push_back(
        event(EventKind::negotiation_failed, p->peer, {}, {errc_name(r.error().code)}));
    out.error = r.error();
    forget_saved(*p);
    return;  // every failure ends the negotiation (XEP-0116 §4.4)
  }
  advance(std::move(p), std::move(r).value(), out);
}

// forget_saved deletes |p|'s saved state, if any. A failure leaves the record (its secrets
// with it) for abandon() or a later resume(), which the negotiation's end makes useless.
void Endpoint::forget_saved(Pending& p) {
  if (p.saved_id)
    (void)m_store.delete_negotiation(*p.saved_id);
  p.saved_id.reset();
}

Result<std::vector<SavedNegotiation>> Endpoint::saved_negotiations() {
  ES_ASSIGN(std::vector<NegotiationRecord> recs, m_store.list_negotiations(m_account.id));
  std::vector<SavedNegotiation> out;
  for (const auto& r : recs)
    out.push_back(SavedNegotiation{r.peer_jid, r.thread, r.created});
  return out;
}

Outcome Endpoint::resume(const std::string& peer, const std::string& thread,
                         NegotiationOptions opts) {
  Outcome out;
  out.thread = thread;
  out.style = wire_style(opts.policy.compat);
  const std::string which = " with " + peer + " on thread " + printable(thread);
  if (negotiating(thread)) {
    refuse(out, Errc::wrong_state,
           "a negotiation on thread " + printable(thread) + " is already running here");
    return out;
  }
  auto rec = m_store.get_negotiation(m_account.id, peer, thread);
  if (!rec || !*rec) {
    out.error = rec ? Error{Errc::no_session, "no saved negotiation" + which} : rec.error();
    return out;
  }
  std::unique_ptr<Pending> p;
  // Resumed as a responder would be (with the secrets held for other peers too) until the
  // state says which role it is.
  Outcome prepared = start(peer, std::move(opts), false, p);
  if (prepared.error) {
    out.error = prepared.error;
    return out;
  }
  auto neg = Negotiation::deserialize(view((*rec)->state), p->cfg);
  if (neg && neg->failed())
    neg = fail(Errc::malformed, "it had failed");
  if (!neg) {
    // A state of a newer esession stays for it; a damaged or finished one goes.
    if (neg.error().code != Errc::unsupported)
      (void)m_store.delete_negotiation((*rec)->id);
    out.error = Error{neg.error().code, "the saved negotiation" + which +
                                            " cannot be resumed: " + neg.error().detail};
    return out;
  }
  if (neg->initiator()) {
    p->others.clear();
    p->cfg.retained_other.clear();
  }
  std::move(p->events.begin(), p->events.end(), std::back_inserter(out.events));
  p->events.clear();
  p->saved_id = (*rec)->id;
  p->neg.emplace(std::move(neg).value());
  m_pending[thread] = std::move(p);
  return out;
}

Status Endpoint::abandon(const std::string& peer, const std::string& thread) {
  bool found = false;
  if (auto it = m_pending.find(thread); it != m_pending.end() && it->second->peer == peer) {
    m_pending.erase(it);  // its destructor wipes the secrets
    found = true;
  }
  ES_ASSIGN(auto rec, m_store.get_negotiation(m_account.id, peer, thread));
  if (rec) {
    ES_TRY(m_store.delete_negotiation(rec->id));
    found = true;
  }
  if (!found)
    return fail(Errc::no_session,
                "no negotiation with " + peer + " on thread " + printable(thread));
  return {};
}

Batch Endpoint::incoming(std::span<const xml::Element> stanzas, RandomSource& rng,
                         const std::string& sender) {
  Batch b;
  b.results.reserve(stanzas.size());
  Lookup lookup{m_store, m_account.id, {}};
  // Runs of consecutive stanzas of one session are decrypted in one transaction.
  int64_t group_id = -1;
  std::string group_peer, group_thread;
  std::vector<size_t> group;  // indices into stanzas and b.results
  auto flush = [&]() -> bool {
    if (group.empty())
      return true;
    auto done = with_session<bool>(m_store, group_id, [&](Session& s) -> Result<bool> {
      for (size_t i : group) {
        Outcome& o = b.results[i];
        o.style = wire_style(s.suite().compat);
        auto dec = s.decrypt(stanzas[i], rng);
        if (!dec) {
          o.error = dec.error();
          continue;
        }
        Received& r = *dec;
        // A re-key stanza without content is a control message, not data. (A termination
        // stays visible: it carries the XEP-0155 form the application may want to see.)
        bool control =
            r.rekeyed && std::none_of(r.stanza.children.begin(), r.stanza.children.end(),
                                      [](const xml::Element& c) {
                                        return !c.is_text() && !c.is("thread", xml::kNsClient);
                                      });
        if (!control)
          o.deliver.push_back(std::move(r.stanza));
        if (r.reply) {
          r.reply->set_attr("from", m_account.jid);
          o.send.push_back(std::move(*r.reply));
        }
        if (r.rekeyed)
          o.events.push_back(event(EventKind::rekeyed, group_peer, group_thread));
        if (r.terminated)
          o.events.push_back(event(EventKind::terminated, group_peer, group_thread));
      }
      return true;
    });
    group.clear();
    if (!done) {
      b.fatal = done.error();
      return false;
    }
    return true;
  };
  for (const xml::Element& st : stanzas) {
    const size_t i = b.results.size();
    Outcome& o = b.results.emplace_back();
    if (!m_pending.empty() && negotiating(thread_of(st))) {
      if (!flush())
        break;
      receive(st, rng, o);
      continue;
    }
    std::optional<std::string> from = peer_of(m_jids, st, sender, true, o);
    if (!from)
      continue;
    const std::string& peer = *from;
    if (auto req = read_offline_request(st)) {
      if (!flush())
        break;
      accept_offline(st, peer, *req, rng, o);
      continue;
    }
    if (is_negotiation_stanza(st)) {
      o.events.push_back(event(EventKind::negotiation_request, peer));
      refuse(o, Errc::wrong_state, "a negotiation request from " + peer + " (not decrypted)",
             Refusal::negotiation_request);
      continue;
    }
    // A stanza for someone else is not ours to decrypt (nor to let destroy a session). One to
    // our bare JID is ours (an offline session's peer addresses no resource).
    if (const std::string* to = st.attr("to");
        to && !m_jids.same(*to, m_account.jid) && !m_jids.same(*to, bare_jid(m_account.jid))) {
      refuse(o, Errc::no_session,
             "a stanza from " + peer + " addressed to " + printable(*to, 256) + ", not to " +
                 m_account.jid + "; refused",
             Refusal::not_for_us);
      continue;
    }
    const SessionRecord* rec = lookup.find(peer, st, o);
    if (!rec) {
      if (o.error->code == Errc::io) {  // the store failed: what precedes still counts
        Error e = *o.error;
        b.results.pop_back();
        if (flush())
          b.fatal = std::move(e);
        return b;
      }
      continue;
    }
    if (!st.child("c", xml::kNsC) && !st.child("feature", xml::kNsFeatureNeg)) {
      refuse(o, Errc::auth_failed, "unencrypted stanza from " + peer + " refused",
             Refusal::clear_stanza);
      continue;
    }
    if (rec->id != group_id && !flush())
      break;
    group_id = rec->id;
    group_peer = peer;
    group_thread = rec->thread;
    group.push_back(i);
  }
  if (!b.fatal)
    flush();
  return b;
}

Batch Endpoint::outgoing(std::span<xml::Element> stanzas, RandomSource& rng,
                         const std::string& recipient) {
  Batch b;
  b.results.reserve(stanzas.size());
  Lookup lookup{m_store, m_account.id, {}};
  std::optional<std::vector<Account>> accounts;  // read when a 'from' names another JID
  int64_t group_id = -1;
  std::string group_peer;
  std::vector<size_t> group;
  // flush encrypts the group; false when a stanza could not be encrypted (that Outcome says
  // why, and the ones after it in the group are dropped unhandled) or the store failed.
  auto flush = [&]() -> bool {
    if (group.empty())
      return true;
    size_t handled = 0;
    auto done = with_session<bool>(m_store, group_id, [&](Session& s) -> Result<bool> {
      const xml::SerializeStyle style = wire_style(s.suite().compat);
      for (size_t i : group) {
        Outcome& o = b.results[i];
        o.style = style;
        ++handled;
        auto enc = s.encrypt(stanzas[i], rng);
        if (!enc) {
          o.error = enc.error();
          if (o.error->code == Errc::terminated)
            o.error->detail = "the session with " + group_peer + " has ended; negotiate a new one";
          return false;
        }
        o.send.push_back(std::move(enc).value());
      }
      return true;
    });
    const size_t first = group.front();
    group.clear();
    if (!done) {
      b.results.resize(first);
      b.fatal = done.error();
      return false;
    }
    if (!*done) {
      b.results.resize(first + handled);
      return false;
    }
    return true;
  };
  for (xml::Element& st : stanzas) {
    const size_t i = b.results.size();
    Outcome& o = b.results.emplace_back();
    if (!is_stanza_kind(st.name) || st.ns != xml::kNsClient) {
      refuse(o, Errc::malformed, "<" + st.name + "/> is not a message, presence or iq stanza");
      break;
    }
    std::optional<std::string> to = peer_of(m_jids, st, recipient, false, o);
    if (!to)
      break;
    const std::string& peer = *to;
    if (const std::string* from = st.attr("from"); from && !m_jids.same(*from, m_account.jid)) {
      if (!accounts) {
        auto all = m_store.list_accounts();
        if (!all) {
          b.results.pop_back();
          b.fatal = all.error();
          break;
        }
        accounts = std::move(all).value();
      }
      if (std::optional<Account> other = match_account(*accounts, *from);
          other && other->id != m_account.id) {
        refuse(o, Errc::malformed,
               "a stanza from the account " + other->jid + " in a run that encrypts as " +
                   m_account.jid,
               Refusal::other_account);
        break;
      }
    }
    const SessionRecord* rec = lookup.find(peer, st, o);
    if (!rec)
      break;
    st.set_attr("to", peer);
    // A stanza goes from the account's full JID: the session binds it (a bare 'from' naming
    // the account is completed, as a server would).
    if (const std::string* from = st.attr("from");
        !from || (bare_jid(*from) == *from && m_jids.same(*from, bare_jid(m_account.jid))))
      st.set_attr("from", m_account.jid);
    if (st.name == "message" && !st.child("thread", xml::kNsClient))
      st.add_text_child("thread", rec->thread);
    if (rec->id != group_id && !flush())
      return b;
    group_id = rec->id;
    group_peer = peer;
    group.push_back(i);
  }
  // The stanza that stopped the loop, if any, is the last result; what came before it is
  // still encrypted.
  const bool stopped = !b.results.empty() && b.results.back().error;
  std::optional<Outcome> last;
  if (stopped) {
    last = std::move(b.results.back());
    b.results.pop_back();
  }
  if (flush() && last)
    b.results.push_back(std::move(*last));
  return b;
}

Outcome Endpoint::control(const std::string& peer, bool terminate, RandomSource& rng) {
  Outcome out;
  Lookup lookup{m_store, m_account.id, {}};
  xml::Element probe("message", std::string(xml::kNsClient));
  const SessionRecord* rec = lookup.find(peer, probe, out);
  if (!rec)
    return out;
  auto done = with_session<xml::Element>(m_store, rec->id, [&](Session& s) -> Result<xml::Element> {
    out.style = wire_style(s.suite().compat);
    return terminate ? s.terminate(rng) : s.rekey(rng);
  });
  if (!done) {
    out.error = done.error();
    return out;
  }
  if (!*done) {
    out.error = done->error();
    return out;
  }
  xml::Element m = std::move(*done).value();
  m.set_attr("from", m_account.jid);
  out.send.push_back(std::move(m));
  out.events.push_back(
      event(terminate ? EventKind::terminating : EventKind::rekey_sent, peer, rec->thread));
  return out;
}

Outcome Endpoint::rekey(const std::string& peer, RandomSource& rng) {
  return control(peer, false, rng);
}

Outcome Endpoint::terminate(const std::string& peer, RandomSource& rng) {
  return control(peer, true, rng);
}

// ---- Offline sessions (XEP-0187) ------------------------------------------------------------

namespace {

// offline_config is our side of offline options: the account, the offline policy, our key.
PartyConfig offline_config(const Account& account, const EngineConfig& cfg) {
  PartyConfig c;
  c.jid = account.jid;
  c.policy = cfg.offline_policy;
  return c;
}

std::string iq_id(RandomSource& rng) {
  return "esession-" + hex(rng.nonce(8));
}

}  // namespace

Outcome Endpoint::publish_offline(OfflineAudience audience, const OfflineOptions& o,
                                  const Signer& signer, RandomSource& rng) {
  Outcome out;
  PartyConfig c = offline_config(m_account, m_cfg);
  c.signer = &signer;
  auto published = Negotiation::publish_offline(std::move(c), o, rng);
  if (!published) {
    out.error = published.error();
    return out;
  }
  auto& [neg, form] = published.value();
  const Bytes n_a = unbase64(xml::parse_form(form)->value("my_nonce").value()).value();
  auto old = m_store.list_offline(m_account.id);
  auto id = old ? m_store.put_offline(m_account.id, audience, n_a, o.expires, neg.serialize())
                : Result<int64_t>(old.error());
  if (!id) {
    out.error = id.error();  // nothing is published without its secrets stored
    return out;
  }
  // The new item replaces the old one in the node: the old set's secrets have no further use.
  for (const auto& r : *old)
    if (r.audience == OfflineAudience::subscribers && audience == OfflineAudience::subscribers)
      if (Status st = m_store.destroy_offline(r.id); !st) {
        out.error = st.error();
        return out;
      }
  out.send.push_back(pep_create_node(audience, iq_id(rng)));
  out.send.push_back(pep_publish(audience, iq_id(rng), std::move(form)));
  return out;
}

Outcome Endpoint::retract_offline(RandomSource& rng) {
  Outcome out;
  auto sets = m_store.list_offline(m_account.id);
  if (!sets) {
    out.error = sets.error();
    return out;
  }
  // Withdrawn first: a request that still arrives finds no secrets and is refused.
  out.send.push_back(pep_publish(OfflineAudience::subscribers, iq_id(rng), std::nullopt));
  for (const auto& r : *sets)
    if (r.audience == OfflineAudience::subscribers || r.expires <= now())
      if (Status st = m_store.destroy_offline(r.id); !st) {
        out.error = st.error();
        return out;
      }
  return out;
}

Outcome Endpoint::start_offline(const std::string& peer, const xml::Element& published,
                                NegotiationOptions opts, RandomSource& rng) {
  Outcome out;
  const xml::Element* options = find_options(published);
  if (!options) {
    out.error = Error{Errc::malformed, "no ESession options in what was given for " + peer};
    return out;
  }
  auto sessions = m_store.list_sessions(m_account.id);
  if (!sessions) {
    out.error = sessions.error();
    return out;
  }
  // A one-shot object is over as it is made and replaces nothing: it may go beside a session.
  for (const auto& s : *sessions)
    if (!opts.terminate_after_content && s.status == SessionStatus::active &&
        bare_jid(s.peer_jid) == bare_jid(peer)) {
      out.error = Error{Errc::wrong_state, "a session with " + s.peer_jid +
                                               " is active: use it (XEP-0187 §3 forbids "
                                               "starting an offline one beside it)"};
      return out;
    }
  std::unique_ptr<Pending> p;
  Outcome prepared = start(peer, std::move(opts), true, p);
  if (prepared.error) {
    out.error = prepared.error;
    return out;
  }
  out.style = prepared.style;
  auto step = Negotiation::start_offline(p->cfg, *options, peer, now(), rng);
  std::move(p->events.begin(), p->events.end(), std::back_inserter(out.events));
  if (!step) {
    out.error = step.error();
    return out;
  }
  xml::Element& request = step->send.at(0);
  request.set_attr("from", m_account.jid);
  p->peer = request.attr_or("to");  // the resource the options name, if any
  out.thread = thread_of(request);
  Events events;
  // Bob answers options: the responder's role, as in a three-message negotiation.
  if (Status st = commit(*p, *step->established, out.thread, false, events); !st) {
    out.error = st.error();  // nothing leaves: the session is not stored
    return out;
  }
  out.send = std::move(step->send);
  std::move(events.begin(), events.end(), std::back_inserter(out.events));
  out.events.push_back(event(EventKind::attached, p->peer, out.thread));
  return out;
}

// accept_offline takes an offline request: the options it names, its expiry, a replay of its
// N_B or d, then the request itself; the replay record, the session and the content's release
// are one transaction. A failure answers nothing (XEP-0187 §3.4).
void Endpoint::accept_offline(const xml::Element& st, const std::string& peer,
                              const OfflineRequest& req, RandomSource& rng, Outcome& out) {
  if (const std::string* to = st.attr("to"); to && bare_jid(*to) != bare_jid(m_account.jid)) {
    refuse(out, Errc::no_session,
           "an offline request from " + peer + " addressed to " + printable(*to, 256) +
               ", not to " + m_account.jid + "; refused",
           Refusal::not_for_us);
    return;
  }
  out.events.push_back(event(EventKind::negotiation_request, peer));
  auto failed = [&](Error e) {
    out.events.push_back(event(EventKind::negotiation_failed, peer, {}, {errc_name(e.code)}));
    out.error = std::move(e);
  };
  auto set = m_store.find_offline(m_account.id, req.n_a);
  if (!set || !*set) {
    failed(set ? Error{Errc::no_session, "an offline request from " + peer +
                                             " names options we do not hold (withdrawn, or "
                                             "published by another client)"}
               : set.error());
    return;
  }
  if (now() >= (*set)->expires) {
    failed(Error{Errc::not_acceptable, "an offline request from " + peer +
                                           " came after its options expired: discarded unread"});
    return;
  }
  std::unique_ptr<Pending> p;
  NegotiationOptions opts;
  opts.policy = m_cfg.offline_policy;
  Outcome prepared = start(peer, std::move(opts), true, p);
  if (prepared.error) {
    failed(*prepared.error);
    return;
  }
  const std::string thread = thread_of(st);
  std::optional<Step> step;
  Events events;
  Status stored = m_store.atomically([&]() -> Status {
    ES_ASSIGN(bool fresh, m_store.note_offline_request((*set)->id, req.n_b, req.d));
    if (!fresh)
      return fail(Errc::replay, "an offline request from " + peer +
                                    " repeats one already accepted: refused as a replay");
    ES_ASSIGN(Step s,
              Negotiation::accept_offline(view((*set)->state), p->cfg, st, peer, now(), rng));
    step.emplace(std::move(s));
    return commit(*p, *step->established, thread, true, events);
  });
  std::move(p->events.begin(), p->events.end(), std::back_inserter(out.events));
  if (!stored) {
    failed(stored.error());
    return;
  }
  out.thread = thread;
  std::move(events.begin(), events.end(), std::back_inserter(out.events));
  for (auto& r : step->content) {
    out.events.push_back(event(EventKind::content, peer, thread));
    out.deliver.push_back(std::move(r.stanza));
  }
  if (step->established->terminated) {
    Event e = event(EventKind::terminated, peer, thread);
    e.one_shot = true;
    out.events.push_back(std::move(e));
  }
}

}  // namespace esession
