// Store: opening a home, validation helpers, accounts and keys.
#include "store/store.hpp"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "store/detail.hpp"
#include "util/fs.hpp"
#include "util/jid.hpp"

namespace esession {

using store_detail::exec_bound;
using store_detail::query;

namespace {

constexpr std::string_view kDbName = "esession.db";
constexpr std::string_view kKeysDir = "keys";

bool has_control(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      return true;
  }
  return false;
}

// set_pragma runs a PRAGMA assignment and checks the value it reports back, where it does.
Status set_pragma(sql::Db& db, const std::string& path, std::string_view name,
                  std::string_view value, std::string_view expect) {
  ES_ASSIGN(sql::Stmt st, db.prepare("PRAGMA " + std::string(name) + " = " + std::string(value)));
  ES_ASSIGN(bool row, st.step());
  if (!expect.empty()) {
    std::string got = row ? st.column_text(0) : std::string();
    if (got != expect)
      return fail(Errc::io, path + ": cannot set " + std::string(name) + " to " +
                                std::string(value) + " (got '" + got + "')");
  }
  return {};
}

Result<int64_t> read_int(sql::Db& db, std::string_view sqltext) {
  ES_ASSIGN(sql::Stmt st, db.prepare(sqltext));
  ES_ASSIGN(bool row, st.step());
  return row ? st.column_int64(0) : 0;
}

Account account_from(const sql::Stmt& st) {
  Account a;
  a.id = st.column_int64(0);
  a.jid = st.column_text(1);
  if (!st.column_is_null(2))
    a.default_key = st.column_int64(2);
  a.created = st.column_int64(3);
  a.is_default = st.column_int64(4) != 0;
  return a;
}

constexpr std::string_view kAccountCols = "id, jid, default_key_id, created, is_default";
constexpr std::string_view kKeyCols = "id, account_id, kind, fingerprint, path, data, created";

Result<KeyRecord> key_from(const sql::Stmt& st) {
  KeyRecord k;
  k.id = st.column_int64(0);
  k.account_id = st.column_int64(1);
  ES_ASSIGN(k.kind, key_kind_from_name(st.column_text(2)));
  k.fingerprint = st.column_text(3);
  if (!st.column_is_null(4))
    k.path = st.column_text(4);
  k.data = st.column_blob(5);
  k.created = st.column_int64(6);
  return k;
}

Result<std::vector<KeyRecord>> keys_from(sql::Stmt& st) {
  std::vector<KeyRecord> out;
  for (;;) {
    ES_ASSIGN(bool row, st.step());
    if (!row)
      return out;
    ES_ASSIGN(KeyRecord k, key_from(st));
    out.push_back(std::move(k));
  }
}

Status check_key_file_name(const std::string& name) {
  if (name.empty() || name.size() > 200 || name.front() == '.')
    return fail(Errc::malformed, "key file name '" + name + "' is empty, too long or hidden");
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
          c == '@' || c == '+'))
      return fail(Errc::malformed, "key file name '" + name +
                                       "' has characters outside "
                                       "[A-Za-z0-9._@+-]");
  return {};
}

// check_rel_path accepts a path below the home: relative, without "." or ".." components.
Status check_rel_path(const std::string& rel) {
  if (rel.empty() || rel.front() == '/' || has_control(rel))
    return fail(Errc::malformed, "key path '" + rel + "' is not a path inside the home");
  size_t start = 0;
  for (;;) {
    size_t slash = rel.find('/', start);
    std::string_view part(rel.data() + start,
                          (slash == std::string::npos ? rel.size() : slash) - start);
    if (part.empty() || part == "." || part == "..")
      return fail(Errc::malformed, "key path '" + rel + "' is not a path inside the home");
    if (slash == std::string::npos)
      return {};
    start = slash + 1;
  }
}

}  // namespace

namespace store_detail {

Status check_jid(std::string_view jid, std::string_view what, bool bare) {
  if (jid.empty())
    return fail(Errc::malformed, std::string(what) + ": empty JID");
  if (jid.size() > 3071 || has_control(jid) || jid.front() == ' ' || jid.back() == ' ')
    return fail(Errc::malformed, std::string(what) + ": not a valid JID");
  if (bare && jid.find('/') != std::string_view::npos)
    return fail(Errc::malformed,
                std::string(what) + ": '" + std::string(jid) + "' is not a bare JID");
  return {};
}

Status check_fingerprint(std::string_view fp) {
  if (fp.empty() || fp.size() > 512)
    return fail(Errc::malformed, "fingerprint: empty or longer than 512 characters");
  for (char c : fp)
    if (c < 0x21 || c > 0x7e)
      return fail(Errc::malformed, "fingerprint: only printable ASCII is allowed");
  return {};
}

Status check_label(std::string_view s, std::string_view what, size_t max) {
  if (s.size() > max || has_control(s))
    return fail(Errc::malformed, std::string(what) + ": longer than " + std::to_string(max) +
                                     " bytes or has control characters");
  return {};
}

Result<int64_t> upsert_peer_id(sql::Db& db, int64_t account_id, const std::string& bare_jid,
                               int64_t now) {
  ES_TRY(check_jid(bare_jid, "peer", true));
  ES_TRY(exec_bound(db,
                    "INSERT INTO peers (account_id, jid, first_seen) VALUES (?, ?, ?) "
                    "ON CONFLICT (account_id, jid) DO NOTHING",
                    account_id, bare_jid, now));
  ES_ASSIGN(sql::Stmt st, query(db, "SELECT id FROM peers WHERE account_id = ? AND jid = ?",
                                account_id, bare_jid));
  ES_ASSIGN(bool row, st.step());
  if (!row)
    return fail(Errc::wrong_state, "no account with id " + std::to_string(account_id));
  return st.column_int64(0);
}

}  // namespace store_detail

std::string_view key_kind_name(KeyKind k) {
  switch (k) {
    case KeyKind::rsa:
      return "rsa";
    case KeyKind::dsa:
      return "dsa";
    case KeyKind::ed25519:
      return "ed25519";
    case KeyKind::x509:
      return "x509";
    case KeyKind::openpgp:
      return "openpgp";
  }
  return "?";
}

Result<KeyKind> key_kind_from_name(std::string_view s) {
  for (KeyKind k : {KeyKind::rsa, KeyKind::dsa, KeyKind::ed25519, KeyKind::x509, KeyKind::openpgp})
    if (key_kind_name(k) == s)
      return k;
  return fail(Errc::malformed, "unknown key kind '" + std::string(s) + "'");
}

Store::Store(std::string home, sql::Db db, StoreOptions opts)
    : m_home(std::move(home)), m_db(std::move(db)), m_opts(std::move(opts)) {}

std::string Store::db_path() const {
  return fs::join(m_home, kDbName);
}

int64_t Store::now() const {
  return m_opts.clock ? m_opts.clock() : static_cast<int64_t>(std::time(nullptr));
}

namespace {

// open_failure is the error for database |path| in directory |dir| that SQLite could not open
// or read (|e|). SQLite's own words can mislead: on a read-only file system it says "unable to
// open database file" with the errno of its last try (ENOENT, for a -shm file it could not
// create), on a full one "disk I/O error"; the state of the file system, when it explains the
// failure, comes first.
Error open_failure(const std::string& path, const std::string& dir, const Error& e) {
  std::string detail = e.detail;
  for (const std::string& pre :
       {std::string("database: "), path + ": ", fs::join(dir, kDbName) + ": "})
    if (detail.compare(0, pre.size(), pre) == 0)
      detail.erase(0, pre.size());
  std::string cause;
  struct statvfs vfs;
  if (::statvfs(dir.c_str(), &vfs) == 0) {
    if (vfs.f_flag & ST_RDONLY)
      cause = std::strerror(EROFS);
    else if (vfs.f_bfree == 0 || (::geteuid() != 0 && vfs.f_bavail == 0) ||
             (vfs.f_files != 0 && vfs.f_ffree == 0))
      cause = std::strerror(ENOSPC);
  }
  if (cause.empty() && ::access(dir.c_str(), W_OK) != 0 && errno == EACCES)
    cause = std::strerror(EACCES);
  std::string msg = path + ": cannot open the database: ";
  if (cause.empty() || detail.find(cause) != std::string::npos) {
    msg += detail;
  } else {
    // SQLite's errno is that of its last try, not the cause: keep only its words.
    size_t paren = detail.rfind(" (");
    if (paren != std::string::npos && detail.back() == ')')
      detail.erase(paren);
    msg += cause + " (SQLite: " + detail + ")";
  }
  return fail(Errc::io, msg);
}

}  // namespace

Result<Store> Store::open(const std::string& home, StoreOptions opts) {
  // The home itself must not be a symbolic link (ensure_private_dir refuses one); the
  // directories above it may be (a symlinked $HOME or /home).
  ES_TRY(fs::ensure_private_dir(home));
  const std::string path = fs::join(home, kDbName);
  // SQLite, told not to follow symbolic links, refuses them in every component of the name:
  // it gets the home's canonical name, which has none. (The database itself may still not be
  // one: check_private_file and SQLITE_OPEN_NOFOLLOW refuse that.)
  ES_ASSIGN(const std::string real_home, fs::real_path(home));
  if (!fs::exists(path)) {
    // An empty file is an empty SQLite database; creating it ourselves gives it mode 0600
    // without depending on the umask (SQLite gives its -wal and -shm files the same mode).
    Status created = fs::write_file_exclusive(path, {}, 0600);
    if (!created && !fs::exists(path))
      return created.error();
  }
  ES_TRY(fs::check_private_file(path));
  for (std::string_view suffix : {"-wal", "-shm"}) {
    std::string aux = path + std::string(suffix);
    if (fs::exists(aux))
      ES_TRY(fs::check_private_file(aux));
  }
  Result<sql::Db> opened = sql::Db::open(fs::join(real_home, kDbName), opts.busy_timeout_ms);
  if (!opened)
    return open_failure(path, real_home, opened.error());
  sql::Db db = std::move(opened).value();
  // Fail early and clearly on a file that is not a database at all, or one that cannot be
  // opened (the error says why).
  if (auto probe = read_int(db, "SELECT count(*) FROM sqlite_schema"); !probe)
    return open_failure(path, real_home, probe.error());
  ES_TRY(set_pragma(db, path, "journal_mode", "WAL", "wal"));
  ES_TRY(set_pragma(db, path, "synchronous", "FULL", ""));
  ES_TRY(set_pragma(db, path, "foreign_keys", "ON", ""));
  // Deleted rows (old session states, replaced secrets) are overwritten, not left in free pages.
  ES_TRY(set_pragma(db, path, "secure_delete", "ON", ""));
  ES_ASSIGN(int64_t fk, read_int(db, "PRAGMA foreign_keys"));
  ES_ASSIGN(int64_t sync, read_int(db, "PRAGMA synchronous"));
  if (fk != 1 || sync != 2)
    return fail(Errc::io, path + ": SQLite refused foreign_keys=ON or synchronous=FULL");
  Store store(home, std::move(db), std::move(opts));
  ES_TRY(store.migrate());
  return store;
}

// --- accounts ---

Result<Account> Store::create_account(const std::string& jid) {
  ES_TRY(store_detail::check_jid(jid, "account", false));
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_ASSIGN(sql::Stmt st, query(m_db, "SELECT count(*) FROM accounts WHERE jid = ?", jid));
  ES_ASSIGN(bool row, st.step());
  if (row && st.column_int64(0) != 0)
    return fail(Errc::wrong_state, "account " + jid + " already exists");
  Account a{0, jid, std::nullopt, now(), false};
  ES_TRY(exec_bound(m_db, "INSERT INTO accounts (jid, created) VALUES (?, ?)", jid, a.created));
  a.id = m_db.last_insert_rowid();
  ES_TRY(tx.commit());
  return a;
}

Result<std::optional<Account>> Store::get_account(const std::string& jid) {
  ES_ASSIGN(
      sql::Stmt st,
      query(m_db, "SELECT " + std::string(kAccountCols) + " FROM accounts WHERE jid = ?", jid));
  ES_ASSIGN(bool row, st.step());
  if (!row)
    return std::optional<Account>();
  return std::optional<Account>(account_from(st));
}

Result<std::vector<Account>> Store::list_accounts() {
  ES_ASSIGN(sql::Stmt st,
            m_db.prepare("SELECT " + std::string(kAccountCols) + " FROM accounts ORDER BY id"));
  std::vector<Account> out;
  for (;;) {
    ES_ASSIGN(bool row, st.step());
    if (!row)
      return out;
    out.push_back(account_from(st));
  }
}

Status Store::set_default_account(std::optional<int64_t> account_id) {
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_TRY(m_db.exec("UPDATE accounts SET is_default = 0 WHERE is_default = 1"));
  if (account_id) {
    ES_TRY(exec_bound(m_db, "UPDATE accounts SET is_default = 1 WHERE id = ?", *account_id));
    if (m_db.changes() != 1)
      return fail(Errc::wrong_state, "no account with id " + std::to_string(*account_id));
  }
  return tx.commit();
}

Status Store::set_default_key(int64_t account_id, std::optional<int64_t> key_id) {
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  if (key_id) {
    ES_ASSIGN(sql::Stmt st, query(m_db, "SELECT count(*) FROM keys WHERE id = ? AND account_id = ?",
                                  *key_id, account_id));
    ES_ASSIGN(bool row, st.step());
    if (!row || st.column_int64(0) == 0)
      return fail(Errc::wrong_state, "key " + std::to_string(*key_id) +
                                         " does not belong to account " +
                                         std::to_string(account_id));
  }
  ES_TRY(
      exec_bound(m_db, "UPDATE accounts SET default_key_id = ? WHERE id = ?", key_id, account_id));
  if (m_db.changes() != 1)
    return fail(Errc::wrong_state, "no account with id " + std::to_string(account_id));
  return tx.commit();
}

// --- keys ---

Result<std::string> Store::write_key_file(const std::string& name, ByteView pem) {
  ES_TRY(check_key_file_name(name));
  const std::string dir = fs::join(m_home, kKeysDir);
  ES_TRY(fs::ensure_private_dir(dir));
  ES_TRY(fs::write_file_exclusive(fs::join(dir, name), pem, 0600));
  return fs::join(kKeysDir, name);
}

Result<SecretBytes> Store::read_key_file(const std::string& rel_path) {
  ES_TRY(check_rel_path(rel_path));
  return fs::read_private_file(fs::join(m_home, rel_path));
}

Result<KeyRecord> Store::add_key(int64_t account_id, KeyKind kind, const std::string& fingerprint,
                                 std::optional<std::string> path, ByteView data) {
  ES_TRY(store_detail::check_fingerprint(fingerprint));
  if (path)
    ES_TRY(check_rel_path(*path));
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_ASSIGN(sql::Stmt dup,
            query(m_db, "SELECT count(*) FROM keys WHERE account_id = ? AND fingerprint = ?",
                  account_id, fingerprint));
  ES_ASSIGN(bool row, dup.step());
  if (row && dup.column_int64(0) != 0)
    return fail(Errc::wrong_state, "the account already has a key with fingerprint " + fingerprint);
  KeyRecord k{0, account_id, kind, fingerprint, path, bytes_of(data), now()};
  ES_TRY(exec_bound(m_db,
                    "INSERT INTO keys (account_id, kind, fingerprint, path, data, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    account_id, key_kind_name(kind), fingerprint, path, data, k.created));
  k.id = m_db.last_insert_rowid();
  ES_TRY(tx.commit());
  return k;
}

Result<std::vector<KeyRecord>> Store::list_keys(int64_t account_id) {
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kKeyCols) +
                                    " FROM keys WHERE account_id = ? "
                                    "ORDER BY id",
                                account_id));
  return keys_from(st);
}

Result<std::optional<KeyRecord>> Store::get_key(int64_t account_id,
                                                const std::string& fingerprint) {
  ES_ASSIGN(sql::Stmt st, query(m_db,
                                "SELECT " + std::string(kKeyCols) +
                                    " FROM keys WHERE account_id = ? AND fingerprint = ?",
                                account_id, fingerprint));
  ES_ASSIGN(std::vector<KeyRecord> v, keys_from(st));
  if (v.empty())
    return std::optional<KeyRecord>();
  return std::optional<KeyRecord>(std::move(v.front()));
}

Result<std::optional<KeyRecord>> Store::get_key_by_id(int64_t id) {
  ES_ASSIGN(sql::Stmt st,
            query(m_db, "SELECT " + std::string(kKeyCols) + " FROM keys WHERE id = ?", id));
  ES_ASSIGN(std::vector<KeyRecord> v, keys_from(st));
  if (v.empty())
    return std::optional<KeyRecord>();
  return std::optional<KeyRecord>(std::move(v.front()));
}

Status Store::delete_key(int64_t id) {
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_ASSIGN(sql::Stmt st, query(m_db, "SELECT path FROM keys WHERE id = ?", id));
  ES_ASSIGN(bool row, st.step());
  if (!row)
    return fail(Errc::wrong_state, "no key with id " + std::to_string(id));
  std::optional<std::string> path;
  if (!st.column_is_null(0))
    path = st.column_text(0);
  ES_TRY(exec_bound(m_db, "DELETE FROM keys WHERE id = ?", id));
  ES_TRY(tx.commit());
  // The record is gone first: a crash in between leaves an unreferenced file, never a record
  // naming a missing key.
  if (path && check_rel_path(*path))
    ES_TRY(fs::remove_file(fs::join(m_home, *path)));
  return {};
}

Status Store::atomically(const std::function<Status()>& fn) {
  ES_ASSIGN(sql::Transaction tx, sql::Transaction::begin(m_db));
  ES_TRY(fn());
  return tx.commit();
}

std::optional<Account> match_account(const std::vector<Account>& all, std::string_view jid,
                                     bool* ambiguous) {
  JidMemo memo;
  Result<std::string> prepped = memo.prep(jid);
  const std::string want = prepped ? *prepped : std::string(jid);
  for (const auto& acc : all)
    if (acc.jid == want)
      return acc;
  std::string want_bare = bare_jid(want);
  if (want_bare != want)
    return std::nullopt;
  std::optional<Account> match;
  for (const auto& acc : all)
    if (memo.same(bare_jid(acc.jid), want_bare)) {
      if (match) {
        if (ambiguous)
          *ambiguous = true;
        return std::nullopt;
      }
      match = acc;
    }
  return match;
}

}  // namespace esession
