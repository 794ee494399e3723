#include "store/sqlite.hpp"

#include <sqlite3.h>

#include <limits>
#include <system_error>

namespace esession::sql {

namespace {

// sqlite_error describes the last error of |db| with what the system said, when SQLite's own
// text is a generic one ("disk I/O error", "unable to open database file"): the errno of the
// failed system call (No space left on device, Read-only file system, Permission denied...).
Error sqlite_error(sqlite3* db, std::string_view what) {
  if (!db)
    return fail(Errc::io, std::string(what) + ": out of memory");
  std::string msg = sqlite3_errmsg(db);
  int code = sqlite3_errcode(db) & 0xff;
  int e = sqlite3_system_errno(db);
  if (e != 0 && (code == SQLITE_IOERR || code == SQLITE_CANTOPEN || code == SQLITE_FULL ||
                 code == SQLITE_READONLY || code == SQLITE_PERM)) {
    std::string sys = std::generic_category().message(e);
    if (msg.find(sys) == std::string::npos)
      msg += " (" + sys + ")";
  }
  return fail(Errc::io, std::string(what) + ": " + msg);
}

int length_of(size_t n) {
  return n > static_cast<size_t>(std::numeric_limits<int>::max()) ? -1 : static_cast<int>(n);
}

}  // namespace

Db& Db::operator=(Db&& o) noexcept {
  if (this != &o) {
    sqlite3_close_v2(m_db);
    m_db = o.m_db;
    o.m_db = nullptr;
  }
  return *this;
}

Db::~Db() {
  sqlite3_close_v2(m_db);
}

Result<Db> Db::open(const std::string& path, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
                           nullptr);
  Db db(raw);
  if (rc != SQLITE_OK)
    return sqlite_error(raw, path);
  sqlite3_extended_result_codes(raw, 1);
  if (sqlite3_busy_timeout(raw, busy_timeout_ms) != SQLITE_OK)
    return sqlite_error(raw, path);
  return db;
}

Status Db::exec(std::string_view sql) {
  std::string s(sql);
  if (sqlite3_exec(m_db, s.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
    return error("database");
  return {};
}

Result<Stmt> Db::prepare(std::string_view sql) {
  sqlite3_stmt* st = nullptr;
  int n = length_of(sql.size());
  if (n < 0)
    return fail(Errc::internal, "SQL statement too long");
  if (sqlite3_prepare_v2(m_db, sql.data(), n, &st, nullptr) != SQLITE_OK)
    return error("database");
  return Stmt(m_db, st);
}

int64_t Db::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(m_db);
}

int64_t Db::changes() const {
  return sqlite3_changes64(m_db);
}

Error Db::error(std::string_view what) const {
  return sqlite_error(m_db, what);
}

bool Db::in_transaction() const {
  return sqlite3_get_autocommit(m_db) == 0;
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(m_st);
    m_db = o.m_db;
    m_st = o.m_st;
    o.m_st = nullptr;
  }
  return *this;
}

Stmt::~Stmt() {
  sqlite3_finalize(m_st);
}

Status Stmt::check_bind(int rc, int i) {
  if (rc != SQLITE_OK)
    return sqlite_error(m_db, "database: binding parameter " + std::to_string(i));
  return {};
}

Status Stmt::bind_int64(int i, int64_t v) {
  return check_bind(sqlite3_bind_int64(m_st, i, v), i);
}

Status Stmt::bind_text(int i, std::string_view v) {
  return check_bind(sqlite3_bind_text64(m_st, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
                    i);
}

Status Stmt::bind_blob(int i, ByteView v) {
  // A zero-length blob must not be bound from a null pointer: SQLite would store NULL.
  static const uint8_t kEmpty = 0;
  return check_bind(
      sqlite3_bind_blob64(m_st, i, v.empty() ? &kEmpty : v.data(), v.size(), SQLITE_TRANSIENT), i);
}

Status Stmt::bind_secret(int i, ByteView v) {
  static const uint8_t kEmpty = 0;
  return check_bind(
      sqlite3_bind_blob64(m_st, i, v.empty() ? &kEmpty : v.data(), v.size(), SQLITE_STATIC), i);
}

Status Stmt::bind_null(int i) {
  return check_bind(sqlite3_bind_null(m_st, i), i);
}

Status Stmt::bind_optional(int i, const std::optional<int64_t>& v) {
  return v ? bind_int64(i, *v) : bind_null(i);
}

Status Stmt::bind_optional(int i, const std::optional<std::string>& v) {
  return v ? bind_text(i, *v) : bind_null(i);
}

Result<bool> Stmt::step() {
  int rc = sqlite3_step(m_st);
  if (rc == SQLITE_ROW)
    return true;
  if (rc == SQLITE_DONE)
    return false;
  Error e = sqlite_error(m_db, "database");
  sqlite3_reset(m_st);
  return e;
}

Status Stmt::run() {
  ES_ASSIGN(bool row, step());
  if (row)
    return fail(Errc::internal, "database: statement unexpectedly returned a row");
  return {};
}

void Stmt::reset() {
  sqlite3_reset(m_st);
}

int64_t Stmt::column_int64(int i) const {
  return sqlite3_column_int64(m_st, i);
}

std::string Stmt::column_text(int i) const {
  const unsigned char* p = sqlite3_column_text(m_st, i);
  int n = sqlite3_column_bytes(m_st, i);
  if (!p || n <= 0)
    return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}

Bytes Stmt::column_blob(int i) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(m_st, i));
  int n = sqlite3_column_bytes(m_st, i);
  if (!p || n <= 0)
    return {};
  return Bytes(p, p + n);
}

SecretBytes Stmt::column_secret(int i) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(m_st, i));
  int n = sqlite3_column_bytes(m_st, i);
  if (!p || n <= 0)
    return {};
  return SecretBytes(p, p + n);
}

bool Stmt::column_is_null(int i) const {
  return sqlite3_column_type(m_st, i) == SQLITE_NULL;
}

Result<Transaction> Transaction::begin(Db& db) {
  if (db.in_transaction()) {
    ES_TRY(db.exec("SAVEPOINT esession_nested"));
    return Transaction(&db, true);
  }
  if (sqlite3_exec(db.handle(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    if ((sqlite3_errcode(db.handle()) & 0xff) == SQLITE_BUSY)
      return fail(Errc::io,
                  "database is locked: another esession process kept it busy for too long");
    return db.error("database");
  }
  return Transaction(&db, false);
}

Transaction::~Transaction() {
  if (!m_db || !m_db->in_transaction())
    return;
  if (m_nested)
    sqlite3_exec(m_db->handle(), "ROLLBACK TO esession_nested; RELEASE esession_nested", nullptr,
                 nullptr, nullptr);
  else
    sqlite3_exec(m_db->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

Status Transaction::commit() {
  if (!m_db)
    return fail(Errc::internal, "database: transaction already finished");
  if (m_nested) {
    Status st = m_db->exec("RELEASE esession_nested");
    if (!st)
      return st;  // the destructor rolls the savepoint back
    m_db = nullptr;
    return {};
  }
  Status st = m_db->exec("COMMIT");
  if (!st) {
    if (m_db->in_transaction())
      sqlite3_exec(m_db->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    m_db = nullptr;
    return st;
  }
  m_db = nullptr;
  return {};
}

}  // namespace esession::sql
