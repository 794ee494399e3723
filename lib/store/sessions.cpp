// Store: sessions, the update_session primitive, and pending negotiations.
#include "store/detail.hpp"

namespace esession {

using store_detail::check_jid;
using store_detail::exec_bound;
using store_detail::query;

namespace {

constexpr std::string_view kSessionCols =
    "id, account_id, peer_jid, thread, role, flow, status, created, updated";
constexpr std::string_view kNegotiationCols = "id, account_id, peer_jid, thread, state, created";

std::string_view role_name(SessionRole r) {
  return r == SessionRole::initiator ? "initiator" : "responder";
}

int flow_number(SessionFlow f) {
  return f == SessionFlow::four_message ? 4 : 3;
}

Result<SessionStatus> status_from_name(std::string_view s) {
  for (SessionStatus v : {SessionStatus::active, SessionStatus::closing, SessionStatus::ended})
    if (session_status_name(v) == s)
      return v;
  return fail(Errc::io, "database: unknown session status '" + std::string(s) + "'");
}

Result<std::vector<SessionRecord>> sessions_from(sql::Stmt& st) {
  std::vector<SessionRecord> out;
  for (;;) {
    ES_ASSIGN(bool row, st.step());
    if (!row)
      return out;
    SessionRecord r;
    r.id = st.column_int64(0);
    r.account_id = st.column_int64(1);
    r.peer_jid = st.column_text(2);
    r.thread = st.column_text(3);
    r.role = st.column_text(4) == "initiator" ? SessionRole::initiator : SessionRole::responder;
    r.flow = st.column_int64(5) == 4 ? SessionFlow::four_message : SessionFlow::three_message;
    ES_ASSIGN(r.status, status_from_name(st.column_text(6)));
    r.created = st.column_int64(7);
    r.updated = st.column_int64(8);
    out.push_back(std::move(r));
  }
}

Result<std::optional<SessionRecord>> one_session(sql::Stmt& st) {
  ES_ASSIGN(std::vector<SessionRecord> v, sessions_from(st));
  if (v.empty())
    return std::optional<SessionRecord>();
  return std::optional<SessionRecord>(std::move(v.front()));
}

Result<std::vector<NegotiationRecord>> negotiations_from(sql::Stmt& st) {
  std::vector<NegotiationRecord> out;
  for (;;) {
    ES_ASSIGN(bool row, st.step());
    if (!row)
      return out;
    NegotiationRecord r;
    r.id = st.column_int64(0);
    r.account_id = st.column_int64(1);
    r.peer_jid = st.column_text(2);
    r.thread = st.column_text(3);
    r.state = st.column_secret(4);
    r.created = st.column_int64(5);
    out.push_back(std::move(r));
  }
}

Status check_peer_thread(const std::string& peer_jid, const std::string& thread) {
  ES_TRY(check_jid(peer_jid, "peer", false));
  return store_detail::check_label(thread, "thread", 1024);
}

}  // namespace

std::string_view session_status_name(SessionStatus s) {
  switch (s) {
    case SessionStatus::active:
      return "active";
    case SessionStatus::closing:
      return "closing";
    case SessionStatus::ended:
      return "ended";
  }
  return "?";
}

Result<SessionRecord> Store::create_session(const NewSession& s, const SecretBytes& state) {
  ES_TRY(check_peer_thread(s.peer_jid, s.thread));
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  const int64_t t = now();
  ES_ASSIGN(auto existing, find_session(s.account_id, s.peer_jid, s.thread));
  if (existing) {
    if (existing->status != SessionStatus::ended)
      return fail(Errc::wrong_state, "a session with " + s.peer_jid + " on thread '" + s.thread +
                                         "' is already " +
                                         std::string(session_status_name(existing->status)));
    ES_TRY(exec_bound(m_db, "DELETE FROM sessions WHERE id = ?", existing->id));
  }
  ES_ASSIGN(int64_t peer_id,
            store_detail::upsert_peer_id(m_db, s.account_id, bare_jid(s.peer_jid), t));
  ES_ASSIGN(sql::Stmt ins, query(m_db,
                                 "INSERT INTO sessions (account_id, peer_id, peer_jid, thread, "
                                 "role, flow, status, created, updated, state) "
                                 "VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)",
                                 s.account_id, peer_id, s.peer_jid, s.thread, role_name(s.role),
                                 flow_number(s.flow), t, t));
  ES_TRY(ins.bind_secret(9, view(state)));
  ES_TRY(ins.run());
  SessionRecord r{m_db.last_insert_rowid(),
                  s.account_id,
                  s.peer_jid,
                  s.thread,
                  s.role,
                  s.flow,
                  SessionStatus::active,
                  t,
                  t};
  ES_TRY(tx.commit());
  return r;
}

Result<std::optional<SessionRecord>> Store::find_session(int64_t account_id,
                                                         const std::string& peer_jid,
                                                         const std::string& thread) {
  ES_ASSIGN(sql::Stmt st,
            query(m_db,
                  "SELECT " + std::string(kSessionCols) +
                      " FROM sessions WHERE account_id = ? AND peer_jid = ? AND thread = ?",
                  account_id, peer_jid, thread));
  return one_session(st);
}

Result<std::optional<SessionRecord>> Store::find_active_session(int64_t account_id,
                                                                const std::string& peer_jid) {
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kSessionCols) +
                                    " FROM sessions WHERE account_id = ? AND peer_jid = ? AND "
                                    "status = 'active' ORDER BY id DESC LIMIT 1",
                                account_id, peer_jid));
  return one_session(st);
}

Result<std::vector<SessionRecord>> Store::find_sessions_by_thread(int64_t account_id,
                                                                  const std::string& thread) {
  ES_ASSIGN(sql::Stmt st,
            query(m_db,
                  "SELECT " + std::string(kSessionCols) +
                      " FROM sessions WHERE account_id = ? AND thread = ? ORDER BY id DESC",
                  account_id, thread));
  return sessions_from(st);
}

Result<std::optional<SessionRecord>> Store::get_session(int64_t id) {
  ES_ASSIGN(sql::Stmt st,
            query(m_db, "SELECT " + std::string(kSessionCols) + " FROM sessions WHERE id = ?", id));
  return one_session(st);
}

Result<std::vector<SessionRecord>> Store::list_sessions(int64_t account_id) {
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kSessionCols) +
                                    " FROM sessions WHERE account_id = ? ORDER BY id DESC",
                                account_id));
  return sessions_from(st);
}

Result<SecretBytes> Store::read_session_state(int64_t id) {
  ES_ASSIGN(sql::Stmt st, query(m_db, "SELECT state FROM sessions WHERE id = ?", id));
  ES_ASSIGN(bool row, st.step());
  if (!row)
    return fail(Errc::no_session, "no session with id " + std::to_string(id));
  return st.column_secret(0);
}

Status Store::delete_session(int64_t id) {
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_TRY(exec_bound(m_db, "DELETE FROM sessions WHERE id = ?", id));
  if (m_db.changes() != 1)
    return fail(Errc::no_session, "no session with id " + std::to_string(id));
  return tx.commit();
}

Status Store::set_session_status(int64_t id, SessionStatus status) {
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_TRY(exec_bound(m_db, "UPDATE sessions SET status = ?, updated = ? WHERE id = ?",
                    session_status_name(status), now(), id));
  if (m_db.changes() != 1)
    return fail(Errc::no_session, "no session with id " + std::to_string(id));
  return tx.commit();
}

Status Store::update_session_impl(int64_t id,
                                  const std::function<Status(SecretBytes&, SessionStatus&)>& fn) {
  // BEGIN IMMEDIATE: the write lock is ours before the state is read, so no other process can
  // read the same counters until we commit or roll back.
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_ASSIGN(sql::Stmt sel, query(m_db, "SELECT state, status FROM sessions WHERE id = ?", id));
  ES_ASSIGN(bool row, sel.step());
  if (!row)
    return fail(Errc::no_session, "no session with id " + std::to_string(id));
  SecretBytes state = sel.column_secret(0);
  ES_ASSIGN(SessionStatus status, status_from_name(sel.column_text(1)));
  sel.reset();
  ES_TRY(fn(state, status));  // on failure |tx| rolls back: nothing was written
  ES_ASSIGN(sql::Stmt upd, query(m_db,
                                 "UPDATE sessions SET status = ?, updated = ?, state = ? "
                                 "WHERE id = ?",
                                 session_status_name(status), now()));
  ES_TRY(upd.bind_secret(3, view(state)));
  ES_TRY(upd.bind_int64(4, id));
  ES_TRY(upd.run());
  return tx.commit();
}

// --- pending negotiations ---

Result<int64_t> Store::put_negotiation(int64_t account_id, const std::string& peer_jid,
                                       const std::string& thread, const SecretBytes& state) {
  ES_TRY(check_peer_thread(peer_jid, thread));
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  const int64_t t = now();
  ES_ASSIGN(int64_t peer_id, store_detail::upsert_peer_id(m_db, account_id, bare_jid(peer_jid), t));
  ES_ASSIGN(
      sql::Stmt ins,
      query(m_db,
            "INSERT INTO negotiations (account_id, peer_id, peer_jid, thread, created, state) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, peer_jid, thread) DO UPDATE "
            "SET state = excluded.state, created = excluded.created",
            account_id, peer_id, peer_jid, thread, t));
  ES_TRY(ins.bind_secret(6, view(state)));
  ES_TRY(ins.run());
  ES_ASSIGN(sql::Stmt id, query(m_db,
                                "SELECT id FROM negotiations WHERE account_id = ? AND "
                                "peer_jid = ? AND thread = ?",
                                account_id, peer_jid, thread));
  ES_ASSIGN(bool row, id.step());
  if (!row)
    return fail(Errc::internal, "negotiation vanished inside a transaction");
  int64_t out = id.column_int64(0);
  ES_TRY(tx.commit());
  return out;
}

Result<std::optional<NegotiationRecord>> Store::get_negotiation(int64_t account_id,
                                                                const std::string& peer_jid,
                                                                const std::string& thread) {
  ES_ASSIGN(sql::Stmt st,
            query(m_db,
                  "SELECT " + std::string(kNegotiationCols) +
                      " FROM negotiations WHERE account_id = ? AND peer_jid = ? AND thread = ?",
                  account_id, peer_jid, thread));
  ES_ASSIGN(std::vector<NegotiationRecord> v, negotiations_from(st));
  if (v.empty())
    return std::optional<NegotiationRecord>();
  return std::optional<NegotiationRecord>(std::move(v.front()));
}

Result<std::vector<NegotiationRecord>> Store::list_negotiations(int64_t account_id) {
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kNegotiationCols) +
                                    " FROM negotiations WHERE account_id = ? ORDER BY id",
                                account_id));
  return negotiations_from(st);
}

Status Store::delete_negotiation(int64_t id) {
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_TRY(exec_bound(m_db, "DELETE FROM negotiations WHERE id = ?", id));
  if (m_db.changes() != 1)
    return fail(Errc::wrong_state, "no pending negotiation with id " + std::to_string(id));
  return tx.commit();
}

}  // namespace esession
