// Internal helpers shared by the lib/store implementation files. Not part of the API.
#pragma once

#include <string>
#include <string_view>

#include "store/store.hpp"

namespace esession::store_detail {

// check_jid refuses an empty, overlong or control-character JID; |bare| also refuses a
// resource. |what| names the argument in the message.
Status check_jid(std::string_view jid, std::string_view what, bool bare);
// check_fingerprint accepts 1-512 printable ASCII characters.
Status check_fingerprint(std::string_view fp);
// check_label accepts up to |max| bytes without control characters (resources, threads,
// notes).
Status check_label(std::string_view s, std::string_view what, size_t max);

// upsert_peer_id returns the id of the peer row, adding it if needed; call inside a
// transaction.
Result<int64_t> upsert_peer_id(sql::Db& db, int64_t account_id, const std::string& bare_jid,
                               int64_t now);

// bind_all binds |args| to parameters 1, 2, ... of |st|.
inline Status bind_one(sql::Stmt& st, int i, int64_t v) {
  return st.bind_int64(i, v);
}
inline Status bind_one(sql::Stmt& st, int i, int v) {
  return st.bind_int64(i, v);
}
inline Status bind_one(sql::Stmt& st, int i, std::string_view v) {
  return st.bind_text(i, v);
}
inline Status bind_one(sql::Stmt& st, int i, const std::string& v) {
  return st.bind_text(i, v);
}
inline Status bind_one(sql::Stmt& st, int i, const char* v) {
  return st.bind_text(i, v);
}
inline Status bind_one(sql::Stmt& st, int i, bool v) {
  return st.bind_int64(i, v ? 1 : 0);
}
inline Status bind_one(sql::Stmt& st, int i, ByteView v) {
  return st.bind_blob(i, v);
}
inline Status bind_one(sql::Stmt& st, int i, const Bytes& v) {
  return st.bind_blob(i, view(v));
}
template <class T>
Status bind_one(sql::Stmt& st, int i, const std::optional<T>& v) {
  return st.bind_optional(i, v);
}

template <class... Args>
Result<sql::Stmt> query(sql::Db& db, std::string_view sqltext, const Args&... args) {
  ES_ASSIGN(sql::Stmt st, db.prepare(sqltext));
  int i = 0;
  Status ok;
  ((ok ? (ok = bind_one(st, ++i, args), 0) : 0), ...);
  if (!ok)
    return ok.error();
  return st;
}

// exec_bound runs a statement that returns no rows.
template <class... Args>
Status exec_bound(sql::Db& db, std::string_view sqltext, const Args&... args) {
  ES_ASSIGN(sql::Stmt st, query(db, sqltext, args...));
  return st.run();
}

}  // namespace esession::store_detail
