// The database schema and its migrations.
//
// Migrations are applied in order, all pending ones in one transaction, and never edited once
// released: a change to the schema is a new entry at the end of kMigrations. The schema_version
// table records each applied version; the highest is the database's version.
#include "store/detail.hpp"

namespace esession {

namespace {

// 'ESES' in the database header (PRAGMA application_id) marks an esession database.
constexpr int64_t kApplicationId = 0x45534553;

struct Migration {
  int version;
  std::string_view sql;
};

// v1: the initial schema. JIDs are stored as given (the CLI normalizes them); times are seconds
// since the epoch; state and secret blobs are opaque here.
constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE accounts (
  id             INTEGER PRIMARY KEY,
  jid            TEXT NOT NULL UNIQUE CHECK (length(jid) > 0),
  default_key_id INTEGER REFERENCES keys(id) ON DELETE SET NULL,
  created        INTEGER NOT NULL
);

CREATE TABLE keys (
  id          INTEGER PRIMARY KEY,
  account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  kind        TEXT NOT NULL CHECK (kind IN ('rsa', 'dsa', 'ed25519', 'x509', 'openpgp')),
  fingerprint TEXT NOT NULL CHECK (length(fingerprint) > 0),
  path        TEXT,
  data        BLOB NOT NULL DEFAULT x'',
  created     INTEGER NOT NULL,
  UNIQUE (account_id, fingerprint)
);

CREATE TABLE peers (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  jid        TEXT NOT NULL CHECK (length(jid) > 0 AND instr(jid, '/') = 0),
  first_seen INTEGER NOT NULL,
  notes      TEXT NOT NULL DEFAULT '',
  UNIQUE (account_id, jid)
);

CREATE TABLE peer_keys (
  id          INTEGER PRIMARY KEY,
  peer_id     INTEGER NOT NULL REFERENCES peers(id) ON DELETE CASCADE,
  fingerprint TEXT NOT NULL CHECK (length(fingerprint) > 0),
  source      TEXT NOT NULL CHECK (source IN ('sas', 'pinned', 'x509', 'openpgp', 'tofu')),
  verified    INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
  first_seen  INTEGER NOT NULL,
  last_seen   INTEGER NOT NULL,
  key_pem     TEXT NOT NULL DEFAULT '',
  UNIQUE (peer_id, fingerprint)
);

CREATE TABLE retained_secrets (
  id           INTEGER PRIMARY KEY,
  peer_id      INTEGER NOT NULL REFERENCES peers(id) ON DELETE CASCADE,
  client       TEXT NOT NULL,
  secret       BLOB NOT NULL CHECK (length(secret) > 0),
  created      INTEGER NOT NULL,
  sas_verified INTEGER NOT NULL DEFAULT 0 CHECK (sas_verified IN (0, 1)),
  UNIQUE (peer_id, client)
);

CREATE TABLE sessions (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  peer_id    INTEGER NOT NULL REFERENCES peers(id) ON DELETE CASCADE,
  peer_jid   TEXT NOT NULL CHECK (length(peer_jid) > 0),
  thread     TEXT NOT NULL,
  role       TEXT NOT NULL CHECK (role IN ('initiator', 'responder')),
  flow       INTEGER NOT NULL CHECK (flow IN (3, 4)),
  state      BLOB NOT NULL,
  status     TEXT NOT NULL CHECK (status IN ('active', 'closing', 'ended')),
  created    INTEGER NOT NULL,
  updated    INTEGER NOT NULL,
  UNIQUE (account_id, peer_jid, thread)
);
CREATE INDEX sessions_by_peer ON sessions (account_id, peer_jid, status, updated);
CREATE INDEX sessions_by_peer_id ON sessions (peer_id);

CREATE TABLE negotiations (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  peer_id    INTEGER NOT NULL REFERENCES peers(id) ON DELETE CASCADE,
  peer_jid   TEXT NOT NULL CHECK (length(peer_jid) > 0),
  thread     TEXT NOT NULL,
  state      BLOB NOT NULL,
  created    INTEGER NOT NULL,
  UNIQUE (account_id, peer_jid, thread)
);
CREATE INDEX negotiations_by_peer_id ON negotiations (peer_id);
CREATE INDEX accounts_by_default_key ON accounts (default_key_id);
)sql";

// v2: what a PKI said about a peer's key when it last came with a credential (issue 4): the
// kind ('x509', 'openpgp' or ''), the verdict ('valid', 'expired', 'revoked', …), a line of
// detail (subject and issuer, or the OpenPGP fingerprint) and when it was checked.
constexpr std::string_view kSchemaV2 = R"sql(
ALTER TABLE peer_keys ADD COLUMN pki_kind TEXT NOT NULL DEFAULT ''
  CHECK (pki_kind IN ('', 'x509', 'openpgp'));
ALTER TABLE peer_keys ADD COLUMN pki_status TEXT NOT NULL DEFAULT '';
ALTER TABLE peer_keys ADD COLUMN pki_detail TEXT NOT NULL DEFAULT '';
ALTER TABLE peer_keys ADD COLUMN pki_checked INTEGER NOT NULL DEFAULT 0;
)sql";

// v3: the default account (issue: friction), used when a home holds several accounts and
// nothing else selects one. At most one account is the default.
constexpr std::string_view kSchemaV3 = R"sql(
ALTER TABLE accounts ADD COLUMN is_default INTEGER NOT NULL DEFAULT 0
  CHECK (is_default IN (0, 1));
CREATE UNIQUE INDEX accounts_one_default ON accounts (is_default) WHERE is_default = 1;
)sql";

// v4: offline options we published (XEP-0187, formats/offline.md §7) and the N_B and d of the
// requests accepted against each set, to refuse replays.
constexpr std::string_view kSchemaV4 = R"sql(
CREATE TABLE offline_sets (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  audience   TEXT NOT NULL CHECK (audience IN ('subscribers', 'anyone')),
  n_a        BLOB NOT NULL CHECK (length(n_a) BETWEEN 8 AND 64),
  expires    INTEGER NOT NULL,
  created    INTEGER NOT NULL,
  state      BLOB NOT NULL,
  UNIQUE (account_id, n_a)
);

CREATE TABLE offline_seen (
  set_id INTEGER NOT NULL REFERENCES offline_sets(id) ON DELETE CASCADE,
  kind   TEXT NOT NULL CHECK (kind IN ('n_b', 'd')),
  value  BLOB NOT NULL,
  PRIMARY KEY (set_id, kind, value)
);
)sql";

constexpr Migration kMigrations[] = {
    {1, kSchemaV1},
    {2, kSchemaV2},
    {3, kSchemaV3},
    {4, kSchemaV4},
};
static_assert(std::size(kMigrations) == Store::kSchemaVersion,
              "every schema version needs exactly one migration");

Result<int64_t> pragma_int(sql::Db& db, std::string_view pragma) {
  ES_ASSIGN(sql::Stmt st, db.prepare("PRAGMA " + std::string(pragma)));
  ES_ASSIGN(bool row, st.step());
  if (!row)
    return fail(Errc::io, "database: PRAGMA " + std::string(pragma) + " returned nothing");
  return st.column_int64(0);
}

// read_version returns the highest applied version, 0 for a database without the table.
Result<int> read_version(sql::Db& db) {
  ES_ASSIGN(sql::Stmt t, db.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                    "name = 'schema_version'"));
  ES_ASSIGN(bool row, t.step());
  if (!row || t.column_int64(0) == 0)
    return 0;
  ES_ASSIGN(sql::Stmt v, db.prepare("SELECT coalesce(max(version), 0) FROM schema_version"));
  ES_ASSIGN(row, v.step());
  if (!row)
    return 0;
  return static_cast<int>(v.column_int64(0));
}

// check_identity refuses a database that belongs to something else, or to a newer esession.
Status check_identity(sql::Db& db, const std::string& path, int version) {
  ES_ASSIGN(int64_t app, pragma_int(db, "application_id"));
  if (app != 0 && app != kApplicationId)
    return fail(Errc::io, path + ": not an esession database (application_id " +
                              std::to_string(app) + "); refusing to use it");
  if (version > Store::kSchemaVersion)
    return fail(Errc::io, path + ": database schema version " + std::to_string(version) +
                              " is newer than this esession understands (" +
                              std::to_string(Store::kSchemaVersion) +
                              "); upgrade esession or use another --home");
  if (version == 0) {
    ES_ASSIGN(sql::Stmt st, db.prepare("SELECT count(*) FROM sqlite_schema WHERE name NOT IN "
                                       "('schema_version') AND name NOT LIKE 'sqlite_%'"));
    ES_ASSIGN(bool row, st.step());
    if (row && st.column_int64(0) != 0)
      return fail(Errc::io, path +
                                ": not an esession database (it holds other tables); "
                                "refusing to use it");
  }
  return {};
}

}  // namespace

Status Store::migrate() {
  const std::string path = db_path();
  // Most opens find the schema current and need no write lock.
  ES_ASSIGN(int version, read_version(m_db));
  ES_TRY(check_identity(m_db, path, version));
  if (version == kSchemaVersion)
    return {};

  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_ASSIGN(version, read_version(m_db));  // another process may have migrated meanwhile
  ES_TRY(check_identity(m_db, path, version));
  ES_TRY(
      m_db.exec("CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)"));
  for (const Migration& m : kMigrations) {
    if (m.version <= version)
      continue;
    Status st = m_db.exec(m.sql);
    if (!st)
      return fail(Errc::io, path + ": migrating to schema version " + std::to_string(m.version) +
                                " failed: " + st.error().detail);
    ES_TRY(store_detail::exec_bound(
        m_db, "INSERT INTO schema_version (version, applied) VALUES (?, ?)", m.version, now()));
  }
  ES_TRY(m_db.exec("PRAGMA application_id = " + std::to_string(kApplicationId)));
  return tx.commit();
}

Result<int> Store::schema_version() {
  return read_version(m_db);
}

}  // namespace esession
