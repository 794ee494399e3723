// What the XEP-0200 filters (encrypt, decrypt, rekey, terminate) share: stored sessions
// updated in one transaction, batches of stanzas, and the session lookup cache.
#pragma once

#include <map>

#include "commands.hpp"

namespace esession::cli {

inline SessionStatus status_of(const Session& s) {
  if (s.active())
    return SessionStatus::active;
  return s.can_receive() ? SessionStatus::closing : SessionStatus::ended;
}

// with_session runs |fn| on the deserialized session inside the store's write transaction and
// writes the session back before returning: what fn produced may be written out only then.
template <class T, class F>
T with_session(Context& ctx, int64_t id, F&& fn) {
  // The outer Result is the transaction's; the inner one is fn's. A failed decryption destroys
  // the session (XEP-0200 §8), and that state must be committed too, so fn's failure does not
  // roll back.
  Result<T> inner = check(ctx.store().update_session(
      id, [&](SecretBytes& blob, SessionStatus& status) -> Result<Result<T>> {
        ES_ASSIGN(StoredSession ss, StoredSession::decode(view(blob)));
        ES_ASSIGN(Session s, Session::deserialize(view(ss.session)));
        Result<T> out = fn(s);
        ss.session = s.serialize();
        blob = ss.encode();
        status = status_of(s);
        return Result<Result<T>>(std::move(out));
      }));
  return check(std::move(inner));
}

struct FilterOpts {
  std::string peer;  // --to / --from: overrides the stanza's attribute
  int reply_fd = 1;  // decrypt: where answers to the peer go (termination acknowledgements)
};

// Stanzas already waiting in the input are handled as one batch: one transaction per session
// and batch, committed before any output of the batch is written.
constexpr size_t kBatch = 512;

// write_all writes |out|, one stanza per line in |style|, and flushes. Throws Failure on an
// I/O error.
void write_all(const std::vector<xml::Element>& out, FILE* f, xml::SerializeStyle style = {});

// SessionCache remembers, within one batch, which session each (peer, thread) uses.
class SessionCache {
 public:
  explicit SessionCache(Context& ctx) : m_ctx(ctx) {}
  const SessionRecord& find(const std::string& peer, const xml::Element& st) {
    const xml::Element* th = st.child("thread", xml::kNsClient);
    std::string key = peer + '\0' + (th ? th->text_content() : std::string());
    auto it = m_map.find(key);
    if (it == m_map.end())
      it = m_map.emplace(key, find_session_for(m_ctx, peer, st)).first;
    return it->second;
  }
  void clear() { m_map.clear(); }

 private:
  Context& m_ctx;
  std::map<std::string, SessionRecord> m_map;
};

// run_control emits a control stanza (re-key or termination) for the session with a peer.
int run_control(Context& ctx, const FilterOpts& o, bool terminate);

}  // namespace esession::cli
