// Store: the offline options we published (XEP-0187) and their replay record.
#include "store/detail.hpp"

namespace esession {

using store_detail::exec_bound;
using store_detail::query;

namespace {

constexpr std::string_view kOfflineCols = "id, account_id, audience, n_a, expires, created, state";

Result<std::vector<OfflineRecord>> offline_from(sql::Stmt& st) {
  std::vector<OfflineRecord> out;
  for (;;) {
    ES_ASSIGN(bool row, st.step());
    if (!row)
      return out;
    OfflineRecord r;
    r.id = st.column_int64(0);
    r.account_id = st.column_int64(1);
    r.audience =
        st.column_text(2) == "anyone" ? OfflineAudience::anyone : OfflineAudience::subscribers;
    r.n_a = st.column_blob(3);
    r.expires = st.column_int64(4);
    r.created = st.column_int64(5);
    r.state = st.column_secret(6);
    out.push_back(std::move(r));
  }
}

}  // namespace

std::string_view offline_audience_name(OfflineAudience a) {
  return a == OfflineAudience::anyone ? "anyone" : "subscribers";
}

Result<int64_t> Store::put_offline(int64_t account_id, OfflineAudience audience, ByteView n_a,
                                   int64_t expires, const SecretBytes& state) {
  if (n_a.size() < 8 || n_a.size() > 64)
    return fail(Errc::malformed, "offline options: N_A must be 8 to 64 bytes");
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_ASSIGN(sql::Stmt ins, query(m_db,
                                 "INSERT INTO offline_sets (account_id, audience, n_a, expires, "
                                 "created, state) VALUES (?, ?, ?, ?, ?, ?)",
                                 account_id, offline_audience_name(audience), n_a, expires, now()));
  ES_TRY(ins.bind_secret(6, view(state)));
  ES_TRY(ins.run());
  const int64_t id = m_db.last_insert_rowid();
  ES_TRY(tx.commit());
  return id;
}

Result<std::optional<OfflineRecord>> Store::find_offline(int64_t account_id, ByteView n_a) {
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kOfflineCols) +
                                    " FROM offline_sets WHERE account_id = ? AND n_a = ?",
                                account_id, n_a));
  ES_ASSIGN(std::vector<OfflineRecord> v, offline_from(st));
  if (v.empty())
    return std::optional<OfflineRecord>();
  return std::optional<OfflineRecord>(std::move(v.front()));
}

Result<std::vector<OfflineRecord>> Store::list_offline(int64_t account_id) {
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kOfflineCols) +
                                    " FROM offline_sets WHERE account_id = ? ORDER BY id",
                                account_id));
  return offline_from(st);
}

Result<bool> Store::note_offline_request(int64_t id, ByteView n_b, ByteView d) {
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_ASSIGN(sql::Stmt seen, query(m_db,
                                  "SELECT count(*) FROM offline_seen WHERE set_id = ? AND "
                                  "((kind = 'n_b' AND value = ?) OR (kind = 'd' AND value = ?))",
                                  id, n_b, d));
  ES_ASSIGN(bool row, seen.step());
  if (row && seen.column_int64(0) != 0)
    return false;
  ES_TRY(exec_bound(m_db, "INSERT INTO offline_seen (set_id, kind, value) VALUES (?, 'n_b', ?)", id,
                    n_b));
  ES_TRY(
      exec_bound(m_db, "INSERT INTO offline_seen (set_id, kind, value) VALUES (?, 'd', ?)", id, d));
  ES_TRY(tx.commit());
  return true;
}

Status Store::destroy_offline(int64_t id) {
  if (m_db.in_transaction())
    return fail(Errc::internal, "destroy_offline inside a transaction cannot checkpoint");
  {
    ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
    ES_TRY(exec_bound(m_db, "DELETE FROM offline_sets WHERE id = ?", id));
    if (m_db.changes() != 1)
      return fail(Errc::no_session, "no offline options with id " + std::to_string(id));
    ES_TRY(tx.commit());
  }
  // The deleted pages were zeroed (secure_delete) in the WAL; the checkpoint writes them over
  // the database's copies, and TRUNCATE empties the WAL that held the old images. Another
  // process reading at this moment can keep the checkpoint from finishing (busy = 1).
  ES_ASSIGN(sql::Stmt cp, m_db.prepare("PRAGMA wal_checkpoint(TRUNCATE)"));
  ES_ASSIGN(bool row, cp.step());
  if (!row || cp.column_int64(0) != 0)
    return fail(Errc::io,
                "the offline options were deleted, but another process kept the database's "
                "log from being emptied: their old copies stay in esession.db-wal until the "
                "next checkpoint");
  return {};
}

}  // namespace esession
