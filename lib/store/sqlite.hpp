// A small RAII layer over SQLite: a connection, prepared statements and write transactions.
//
// Only lib/store uses it (no SQL elsewhere). Every failure becomes an Errc::io Error carrying
// SQLite's message. Secret blobs are bound without copying (bind_secret) and read straight
// into SecretBytes (column_secret), so no secret passes through a std::string or an
// unwiped vector of ours; SQLite's own page cache is outside our control.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/bytes.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace esession::sql {

class Stmt;

// Db is an open connection. Move-only; closed by the destructor.
class Db {
 public:
  Db() = default;
  Db(Db&& o) noexcept : m_db(o.m_db) { o.m_db = nullptr; }
  Db& operator=(Db&& o) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // open opens an existing database file read-write (never creating it, never following a
  // symbolic link) and sets a busy timeout of |busy_timeout_ms|, so that a process finding the
  // database locked by another waits for it instead of failing.
  static Result<Db> open(const std::string& path, int busy_timeout_ms);

  // exec runs one or more statements that return no rows.
  Status exec(std::string_view sql);
  // prepare compiles one statement.
  Result<Stmt> prepare(std::string_view sql);

  int64_t last_insert_rowid() const;
  // changes returns the number of rows changed by the last INSERT, UPDATE or DELETE.
  int64_t changes() const;
  // error returns an Errc::io Error from the connection's last error, prefixed with |what|.
  Error error(std::string_view what) const;
  bool in_transaction() const;

  sqlite3* handle() const { return m_db; }

 private:
  explicit Db(sqlite3* db) : m_db(db) {}
  sqlite3* m_db = nullptr;
};

// Stmt is a prepared statement. Parameter and column indexes follow SQLite: parameters from 1,
// columns from 0. Move-only; finalized by the destructor.
class Stmt {
 public:
  Stmt(Stmt&& o) noexcept : m_db(o.m_db), m_st(o.m_st) { o.m_st = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  // bind_* set parameter |i|. Text and public blobs are copied by SQLite; bind_secret is not,
  // so |v| must stay alive and unchanged until the statement is reset or destroyed.
  Status bind_int64(int i, int64_t v);
  Status bind_text(int i, std::string_view v);
  Status bind_blob(int i, ByteView v);
  Status bind_secret(int i, ByteView v);
  Status bind_null(int i);
  // bind_optional binds NULL for an empty optional.
  Status bind_optional(int i, const std::optional<int64_t>& v);
  Status bind_optional(int i, const std::optional<std::string>& v);

  // step runs the statement to its next row: true when a row is available, false when done.
  Result<bool> step();
  // run steps a statement that returns no rows (an error if it returns one).
  Status run();
  // reset makes the statement ready to run again; bindings are kept.
  void reset();

  // column_* read column |i| of the current row. A NULL reads as 0, "" or empty.
  int64_t column_int64(int i) const;
  std::string column_text(int i) const;
  Bytes column_blob(int i) const;
  // column_secret copies the blob straight into a zeroising buffer.
  SecretBytes column_secret(int i) const;
  bool column_is_null(int i) const;

 private:
  friend class Db;
  Stmt(sqlite3* db, sqlite3_stmt* st) : m_db(db), m_st(st) {}
  Status check_bind(int rc, int i);
  sqlite3* m_db;
  sqlite3_stmt* m_st;
};

// Transaction is a write transaction begun with BEGIN IMMEDIATE: it takes the database's write
// lock at once (waiting up to the busy timeout), so two processes never interleave their
// read-modify-write sequences. The destructor rolls back unless commit() succeeded.
class Transaction {
 public:
  // begin starts a write transaction (BEGIN IMMEDIATE), or, inside one, a savepoint: a nested
  // transaction commits into the outer one and rolls back only its own changes.
  static Result<Transaction> begin(Db& db);
  Transaction(Transaction&& o) noexcept : m_db(o.m_db), m_nested(o.m_nested) { o.m_db = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // commit makes the changes durable (with synchronous=FULL, on disk) before returning. On
  // failure the transaction is rolled back.
  Status commit();

 private:
  Transaction(Db* db, bool nested) : m_db(db), m_nested(nested) {}
  Db* m_db;
  bool m_nested;
};

}  // namespace esession::sql
