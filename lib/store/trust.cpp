// Store: peers, trust records and retained secrets.
#include "store/detail.hpp"

namespace esession {

using store_detail::check_jid;
using store_detail::exec_bound;
using store_detail::query;

namespace {

constexpr std::string_view kPeerCols = "id, account_id, jid, first_seen, notes";
constexpr std::string_view kTrustCols =
    "id, peer_id, fingerprint, source, verified, first_seen, last_seen, key_pem, pki_kind, "
    "pki_status, pki_detail, pki_checked";
constexpr std::string_view kRetainedCols =
    "r.id, r.peer_id, p.jid, r.client, r.secret, r.created, r.sas_verified";

PeerRecord peer_from(const sql::Stmt& st) {
  return PeerRecord{st.column_int64(0), st.column_int64(1), st.column_text(2), st.column_int64(3),
                    st.column_text(4)};
}

Result<std::vector<TrustRecord>> trust_from(sql::Stmt& st) {
  std::vector<TrustRecord> out;
  for (;;) {
    ES_ASSIGN(bool row, st.step());
    if (!row)
      return out;
    TrustRecord t;
    t.id = st.column_int64(0);
    t.peer_id = st.column_int64(1);
    t.fingerprint = st.column_text(2);
    ES_ASSIGN(t.source, trust_source_from_name(st.column_text(3)));
    t.verified = st.column_int64(4) != 0;
    t.first_seen = st.column_int64(5);
    t.last_seen = st.column_int64(6);
    t.key_pem = st.column_text(7);
    t.pki_kind = st.column_text(8);
    t.pki_status = st.column_text(9);
    t.pki_detail = st.column_text(10);
    t.pki_checked = st.column_int64(11);
    out.push_back(std::move(t));
  }
}

Result<std::vector<RetainedSecret>> retained_from(sql::Stmt& st) {
  std::vector<RetainedSecret> out;
  for (;;) {
    ES_ASSIGN(bool row, st.step());
    if (!row)
      return out;
    RetainedSecret r;
    r.id = st.column_int64(0);
    r.peer_id = st.column_int64(1);
    r.peer_jid = st.column_text(2);
    r.client = st.column_text(3);
    r.secret = st.column_secret(4);
    r.created = st.column_int64(5);
    r.sas_verified = st.column_int64(6) != 0;
    out.push_back(std::move(r));
  }
}

Result<std::optional<TrustRecord>> one_trust(sql::Stmt& st) {
  ES_ASSIGN(std::vector<TrustRecord> v, trust_from(st));
  if (v.empty())
    return std::optional<TrustRecord>();
  return std::optional<TrustRecord>(std::move(v.front()));
}

}  // namespace

std::string_view trust_source_name(TrustSource s) {
  switch (s) {
    case TrustSource::sas:
      return "sas";
    case TrustSource::pinned:
      return "pinned";
    case TrustSource::x509:
      return "x509";
    case TrustSource::openpgp:
      return "openpgp";
    case TrustSource::tofu:
      return "tofu";
  }
  return "?";
}

Result<TrustSource> trust_source_from_name(std::string_view s) {
  for (TrustSource t : {TrustSource::sas, TrustSource::pinned, TrustSource::x509,
                        TrustSource::openpgp, TrustSource::tofu})
    if (trust_source_name(t) == s)
      return t;
  return fail(Errc::malformed, "unknown trust source '" + std::string(s) + "'");
}

// --- peers ---

Result<PeerRecord> Store::upsert_peer(int64_t account_id, const std::string& bare_jid) {
  ES_TRY(check_jid(bare_jid, "peer", true));
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_ASSIGN(int64_t id, store_detail::upsert_peer_id(m_db, account_id, bare_jid, now()));
  ES_ASSIGN(sql::Stmt st,
            query(m_db, "SELECT " + std::string(kPeerCols) + " FROM peers WHERE id = ?", id));
  ES_ASSIGN(bool row, st.step());
  if (!row)
    return fail(Errc::internal, "peer vanished inside a transaction");
  PeerRecord p = peer_from(st);
  ES_TRY(tx.commit());
  return p;
}

Status Store::set_peer_notes(int64_t peer_id, const std::string& notes) {
  ES_TRY(store_detail::check_label(notes, "notes", 4096));
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_TRY(exec_bound(m_db, "UPDATE peers SET notes = ? WHERE id = ?", notes, peer_id));
  if (m_db.changes() != 1)
    return fail(Errc::wrong_state, "no peer with id " + std::to_string(peer_id));
  return tx.commit();
}

Result<std::optional<PeerRecord>> Store::get_peer(int64_t account_id, const std::string& bare_jid) {
  ES_TRY(check_jid(bare_jid, "peer", true));
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kPeerCols) +
                                    " FROM peers WHERE account_id = ? AND jid = ?",
                                account_id, bare_jid));
  ES_ASSIGN(bool row, st.step());
  if (!row)
    return std::optional<PeerRecord>();
  return std::optional<PeerRecord>(peer_from(st));
}

Result<std::vector<PeerRecord>> Store::list_peers(int64_t account_id) {
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kPeerCols) +
                                    " FROM peers WHERE account_id = ? ORDER BY jid",
                                account_id));
  std::vector<PeerRecord> out;
  for (;;) {
    ES_ASSIGN(bool row, st.step());
    if (!row)
      return out;
    out.push_back(peer_from(st));
  }
}

Result<bool> Store::forget_peer(int64_t account_id, const std::string& bare_jid) {
  ES_TRY(check_jid(bare_jid, "peer", true));
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  // ON DELETE CASCADE removes the peer's trust records, retained secrets, sessions and
  // negotiations with it; foreign_keys=ON is checked when the store is opened.
  ES_TRY(
      exec_bound(m_db, "DELETE FROM peers WHERE account_id = ? AND jid = ?", account_id, bare_jid));
  bool existed = m_db.changes() == 1;
  ES_TRY(tx.commit());
  return existed;
}

// --- trust ---

Result<TrustRecord> Store::record_peer_key(int64_t account_id, const std::string& bare_jid,
                                           const std::string& fingerprint, TrustSource source,
                                           bool verified, const std::string& key_pem) {
  ES_TRY(check_jid(bare_jid, "peer", true));
  ES_TRY(store_detail::check_fingerprint(fingerprint));
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  const int64_t t = now();
  ES_ASSIGN(int64_t peer_id, store_detail::upsert_peer_id(m_db, account_id, bare_jid, t));
  ES_TRY(exec_bound(
      m_db,
      "INSERT INTO peer_keys (peer_id, fingerprint, source, verified, first_seen, "
      "last_seen, key_pem) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) "
      "ON CONFLICT (peer_id, fingerprint) DO UPDATE SET last_seen = excluded.last_seen, "
      "key_pem = CASE WHEN excluded.key_pem != '' THEN excluded.key_pem ELSE key_pem END, "
      "source = CASE WHEN excluded.verified = 1 THEN excluded.source ELSE source END, "
      "verified = max(verified, excluded.verified)",
      peer_id, fingerprint, trust_source_name(source), verified, t, key_pem));
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kTrustCols) +
                                    " FROM peer_keys WHERE peer_id = ? AND fingerprint = ?",
                                peer_id, fingerprint));
  ES_ASSIGN(std::optional<TrustRecord> rec, one_trust(st));
  if (!rec)
    return fail(Errc::internal, "trust record vanished inside a transaction");
  ES_TRY(tx.commit());
  return std::move(*rec);
}

Status Store::set_trust(int64_t trust_id, TrustSource source, bool verified) {
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_TRY(exec_bound(m_db, "UPDATE peer_keys SET source = ?, verified = ? WHERE id = ?",
                    trust_source_name(source), verified, trust_id));
  if (m_db.changes() != 1)
    return fail(Errc::wrong_state, "no trust record with id " + std::to_string(trust_id));
  return tx.commit();
}

Status Store::set_key_pki(int64_t trust_id, const std::string& kind, const std::string& status,
                          const std::string& detail) {
  if (kind != "" && kind != "x509" && kind != "openpgp")
    return fail(Errc::malformed, "unknown PKI kind '" + kind + "'");
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_TRY(exec_bound(m_db,
                    "UPDATE peer_keys SET pki_kind = ?, pki_status = ?, pki_detail = ?, "
                    "pki_checked = ? WHERE id = ?",
                    kind, status, detail, now(), trust_id));
  if (m_db.changes() != 1)
    return fail(Errc::wrong_state, "no trust record with id " + std::to_string(trust_id));
  return tx.commit();
}

Result<std::vector<TrustRecord>> Store::list_trust(int64_t peer_id) {
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kTrustCols) +
                                    " FROM peer_keys WHERE peer_id = ? ORDER BY first_seen, id",
                                peer_id));
  return trust_from(st);
}

Result<std::optional<TrustRecord>> Store::get_trust(int64_t peer_id,
                                                    const std::string& fingerprint) {
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kTrustCols) +
                                    " FROM peer_keys WHERE peer_id = ? AND fingerprint = ?",
                                peer_id, fingerprint));
  return one_trust(st);
}

// --- retained secrets ---

Result<std::vector<RetainedSecret>> Store::retained_query(int64_t account_id,
                                                          const std::string& bare_jid,
                                                          int64_t not_before, bool others) {
  ES_TRY(check_jid(bare_jid, "peer", true));
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kRetainedCols) +
                                    " FROM retained_secrets r JOIN peers p ON r.peer_id = p.id "
                                    "WHERE p.account_id = ? AND p.jid " +
                                    std::string(others ? "<>" : "=") +
                                    " ? AND r.created >= ? ORDER BY r.created DESC, r.id DESC",
                                account_id, bare_jid, not_before));
  return retained_from(st);
}

Result<std::vector<RetainedSecret>> Store::retained_for_peer(int64_t account_id,
                                                             const std::string& bare_jid,
                                                             int64_t not_before) {
  return retained_query(account_id, bare_jid, not_before, false);
}

Result<std::vector<RetainedSecret>> Store::retained_for_other_peers(int64_t account_id,
                                                                    const std::string& bare_jid,
                                                                    int64_t not_before) {
  return retained_query(account_id, bare_jid, not_before, true);
}

Result<RetainedSecret> Store::replace_retained(int64_t account_id, const std::string& bare_jid,
                                               const std::string& client, const SecretBytes& secret,
                                               std::optional<int64_t> matched) {
  ES_TRY(check_jid(bare_jid, "peer", true));
  ES_TRY(store_detail::check_label(client, "peer client", 1023));
  if (secret.empty())
    return fail(Errc::malformed, "empty retained secret");
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  const int64_t t = now();
  bool verified = false;
  if (matched) {
    // The matched secret may already be gone (a concurrent negotiation consumed it): the new
    // secret is stored all the same, without inheriting anything.
    ES_ASSIGN(sql::Stmt st, query(m_db,
                                  "SELECT r.sas_verified FROM retained_secrets r JOIN peers p "
                                  "ON r.peer_id = p.id WHERE r.id = ? AND p.account_id = ?",
                                  *matched, account_id));
    ES_ASSIGN(bool row, st.step());
    verified = row && st.column_int64(0) != 0;
    ES_TRY(exec_bound(m_db,
                      "DELETE FROM retained_secrets WHERE id = ? AND peer_id IN "
                      "(SELECT id FROM peers WHERE account_id = ?)",
                      *matched, account_id));
  }
  ES_ASSIGN(int64_t peer_id, store_detail::upsert_peer_id(m_db, account_id, bare_jid, t));
  ES_ASSIGN(sql::Stmt ins, query(m_db,
                                 "INSERT INTO retained_secrets (peer_id, client, created, "
                                 "sas_verified, secret) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (peer_id, client) DO UPDATE SET "
                                 "secret = excluded.secret, created = excluded.created, "
                                 "sas_verified = excluded.sas_verified",
                                 peer_id, client, t, verified));
  ES_TRY(ins.bind_secret(5, view(secret)));
  ES_TRY(ins.run());
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kRetainedCols) +
                                    " FROM retained_secrets r JOIN peers p ON r.peer_id = p.id "
                                    "WHERE r.peer_id = ? AND r.client = ?",
                                peer_id, client));
  ES_ASSIGN(std::vector<RetainedSecret> v, retained_from(st));
  if (v.size() != 1)
    return fail(Errc::internal, "retained secret vanished inside a transaction");
  ES_TRY(tx.commit());
  return std::move(v.front());
}

Status Store::mark_retained_verified(int64_t retained_id) {
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_TRY(
      exec_bound(m_db, "UPDATE retained_secrets SET sas_verified = 1 WHERE id = ?", retained_id));
  if (m_db.changes() != 1)
    return fail(Errc::wrong_state, "no retained secret with id " + std::to_string(retained_id));
  return tx.commit();
}

}  // namespace esession
