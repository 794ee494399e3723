// Store: the durable state of one esession home directory.
//
// A home holds private key files (keys/, each 0600, created exclusively) and one SQLite
// database, esession.db (0600; WAL journal, synchronous=FULL, foreign keys on): accounts, key
// references, peers and their trust records, retained secrets, sessions and pending
// negotiations. Transactions and locking come from SQLite: every method below that changes
// anything runs in one BEGIN IMMEDIATE transaction and has committed (durably) when it returns,
// or has changed nothing. Several processes may use the same home at once; a writer finding the
// database locked waits for it (the busy timeout).
//
// update_session is the primitive that makes "no counter is ever used twice" hold across
// crashes and concurrent processes: see its comment.
//
// No SQL exists outside lib/store. Errors: Errc::io for storage failures (with the path or
// SQLite's message), Errc::malformed for bad arguments (a JID with a '/' where a bare JID is
// needed, an empty fingerprint), Errc::wrong_state for a conflict (the account already exists),
// Errc::no_session for an unknown session id.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "store/sqlite.hpp"
#include "util/bytes.hpp"
#include "util/jid.hpp"

namespace esession {

// StoreOptions adjusts Store::open; the defaults suit the CLI.
struct StoreOptions {
  // clock returns the current time in seconds since the epoch (injected by tests).
  std::function<int64_t()> clock;
  // busy_timeout_ms: how long a process waits for another one's write transaction.
  int busy_timeout_ms = 10000;
};

// Account is a local identity (the --account JID).
struct Account {
  int64_t id = 0;
  std::string jid;                     // the local JID as given to `init --jid`
  std::optional<int64_t> default_key;  // a KeyRecord id
  int64_t created = 0;
  bool is_default = false;  // the home's default account (at most one)
};

// match_account returns the account |jid| names among |all|: the one with that (prepared) full
// JID, or, for a bare |jid|, the only one with that bare JID. When a bare JID names several
// there is no match, and |*ambiguous| (if given) is set.
std::optional<Account> match_account(const std::vector<Account>& all, std::string_view jid,
                                     bool* ambiguous = nullptr);

// KeyKind is what a KeyRecord refers to.
enum class KeyKind { rsa, dsa, ed25519, x509, openpgp };
std::string_view key_kind_name(KeyKind k);  // "rsa", "dsa", "ed25519", "x509", "openpgp"
Result<KeyKind> key_kind_from_name(std::string_view s);

// KeyRecord is one of our keys. The private key itself is in a PEM file under <home>/keys (the
// |path|, relative to the home) or elsewhere (OpenPGP keys stay in GnuPG; |data| then holds
// whatever names the key there); |data| may also hold public material such as a certificate.
struct KeyRecord {
  int64_t id = 0;
  int64_t account_id = 0;
  KeyKind kind = KeyKind::ed25519;
  std::string fingerprint;
  std::optional<std::string> path;
  Bytes data;
  int64_t created = 0;
};

// PeerRecord is a correspondent, by bare JID, of one account.
struct PeerRecord {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string jid;  // bare JID
  int64_t first_seen = 0;
  std::string notes;
};

// TrustSource says how a peer's key became known or trusted.
enum class TrustSource { sas, pinned, x509, openpgp, tofu };
std::string_view trust_source_name(TrustSource s);  // "sas", "pinned", "x509", "openpgp", "tofu"
Result<TrustSource> trust_source_from_name(std::string_view s);

// TrustRecord is one fingerprint seen for a peer.
struct TrustRecord {
  int64_t id = 0;
  int64_t peer_id = 0;
  std::string fingerprint;
  TrustSource source = TrustSource::tofu;
  bool verified = false;
  int64_t first_seen = 0;
  int64_t last_seen = 0;
  std::string key_pem;  // the public key (PEM), when it is known, for 'hash' identification
  // What a PKI said when the key last came with a certificate or OpenPGP key (set_key_pki).
  std::string pki_kind;    // "x509", "openpgp" or ""
  std::string pki_status;  // "valid", "expired", "revoked", … (esession-peer(1))
  std::string pki_detail;  // subject and issuer, or the OpenPGP fingerprint
  int64_t pki_checked = 0;
};

// RetainedSecret is the most recent retained secret of one peer client (XEP-0116 §7.3,
// formats/esession-1.0.md §9).
struct RetainedSecret {
  int64_t id = 0;
  int64_t peer_id = 0;
  std::string peer_jid;  // bare JID of the peer it belongs to
  std::string client;    // the peer's resource or client id
  SecretBytes secret;
  int64_t created = 0;
  bool sas_verified = false;  // a user confirmed the SAS somewhere along this secret's chain
};

enum class SessionRole { initiator, responder };
enum class SessionFlow { four_message, three_message };
enum class SessionStatus { active, closing, ended };
std::string_view session_status_name(SessionStatus s);  // "active", "closing", "ended"

// SessionRecord describes a stored session; its state blob is read only by update_session.
struct SessionRecord {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string peer_jid;  // full JID
  std::string thread;
  SessionRole role = SessionRole::initiator;
  SessionFlow flow = SessionFlow::four_message;
  SessionStatus status = SessionStatus::active;
  int64_t created = 0;
  int64_t updated = 0;
};

// NewSession is what create_session needs besides the state.
struct NewSession {
  int64_t account_id = 0;
  std::string peer_jid;  // full JID
  std::string thread;
  SessionRole role = SessionRole::initiator;
  SessionFlow flow = SessionFlow::four_message;
};

// NegotiationRecord is a negotiation waiting for the peer across process runs (for example a
// XEP-0187 offline start). Its state blob is opaque to the store.
struct NegotiationRecord {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string peer_jid;  // full JID
  std::string thread;
  SecretBytes state;
  int64_t created = 0;
};

// OfflineAudience is who may use a set of offline options (XEP-0187 §3.1): presence
// subscribers (a fresh set every time we go offline, destroyed when we are back) or anyone (a
// long-lived set).
enum class OfflineAudience { subscribers, anyone };
std::string_view offline_audience_name(OfflineAudience a);  // "subscribers", "anyone"

// OfflineRecord is a set of offline options we published, with the secrets behind them
// (formats/offline.md §7). Its state blob (ENS1) is opaque to the store.
struct OfflineRecord {
  int64_t id = 0;
  int64_t account_id = 0;
  OfflineAudience audience = OfflineAudience::subscribers;
  Bytes n_a;  // N_A: the 'nonce' a request names the set by
  int64_t expires = 0;
  int64_t created = 0;
  SecretBytes state;
};

class Store {
 public:
  // kSchemaVersion is the schema version this code creates and understands.
  static constexpr int kSchemaVersion = 4;

  // open uses the home directory |home|: creates it (0700) or checks it is private, creates
  // esession.db (0600, exclusively) the first time or checks that the existing one (and its WAL
  // files) are private, and brings the schema up to date in one transaction. A database made
  // by a newer esession (a higher schema version), or a file that is not an esession database,
  // is refused with Errc::io and left untouched.
  static Result<Store> open(const std::string& home, StoreOptions opts = {});

  Store(Store&&) noexcept = default;
  Store& operator=(Store&&) noexcept = default;

  const std::string& home() const { return m_home; }
  std::string db_path() const;
  // schema_version returns the version recorded in the database.
  Result<int> schema_version();

  // atomically runs |fn| in one write transaction: every Store call inside it commits into it,
  // and nothing is kept if fn fails or throws.
  Status atomically(const std::function<Status()>& fn);

  // --- accounts ---
  // create_account adds a local account; Errc::wrong_state if |jid| already has one.
  Result<Account> create_account(const std::string& jid);
  Result<std::optional<Account>> get_account(const std::string& jid);
  Result<std::vector<Account>> list_accounts();
  // set_default_key makes |key_id| (a key of the account) its default; nullopt clears it.
  Status set_default_key(int64_t account_id, std::optional<int64_t> key_id);
  // set_default_account makes |account_id| the home's default account (the one used when a
  // home holds several and nothing selects one); nullopt clears it. Errc::wrong_state for an
  // unknown account.
  Status set_default_account(std::optional<int64_t> account_id);

  // --- keys ---
  // write_key_file creates <home>/keys/<name> (0600, exclusively: an existing file is an error)
  // and returns its path relative to the home, for add_key. |name| is a plain file name.
  Result<std::string> write_key_file(const std::string& name, ByteView pem);
  // read_key_file reads a key file named by a KeyRecord path, refusing one that others can
  // read.
  Result<SecretBytes> read_key_file(const std::string& rel_path);
  // add_key records a key; Errc::wrong_state if the account already has this fingerprint.
  Result<KeyRecord> add_key(int64_t account_id, KeyKind kind, const std::string& fingerprint,
                            std::optional<std::string> path, ByteView data = {});
  Result<std::vector<KeyRecord>> list_keys(int64_t account_id);
  Result<std::optional<KeyRecord>> get_key(int64_t account_id, const std::string& fingerprint);
  Result<std::optional<KeyRecord>> get_key_by_id(int64_t id);
  // delete_key removes the record (clearing it as default key) and then its key file, if any.
  // Errc::wrong_state if there is no such key.
  Status delete_key(int64_t id);

  // --- peers and trust ---
  // upsert_peer returns the peer |bare_jid| of the account, adding it (first seen now) if new.
  Result<PeerRecord> upsert_peer(int64_t account_id, const std::string& bare_jid);
  Status set_peer_notes(int64_t peer_id, const std::string& notes);
  Result<std::optional<PeerRecord>> get_peer(int64_t account_id, const std::string& bare_jid);
  Result<std::vector<PeerRecord>> list_peers(int64_t account_id);
  // record_peer_key notes that |fingerprint| was seen for the peer (added if new, last_seen set
  // to now). When |verified| is true it also marks the record verified with |source|; an
  // unverified sighting never lowers an existing record.
  Result<TrustRecord> record_peer_key(int64_t account_id, const std::string& bare_jid,
                                      const std::string& fingerprint, TrustSource source,
                                      bool verified, const std::string& key_pem = {});
  // set_trust overwrites the source and verified flag of a record (e.g. `peer pin`, or
  // withdrawing a verification). Errc::wrong_state if there is no such record.
  Status set_trust(int64_t trust_id, TrustSource source, bool verified);
  // set_key_pki records what a PKI said about a trust record's key, now.
  Status set_key_pki(int64_t trust_id, const std::string& kind, const std::string& status,
                     const std::string& detail);
  Result<std::vector<TrustRecord>> list_trust(int64_t peer_id);
  Result<std::optional<TrustRecord>> get_trust(int64_t peer_id, const std::string& fingerprint);
  // forget_peer deletes the peer with its trust records, retained secrets, sessions and
  // pending negotiations, in one transaction. Returns false if there was no such peer.
  Result<bool> forget_peer(int64_t account_id, const std::string& bare_jid);

  // --- retained secrets ---
  // retained_for_peer returns the secrets held for |bare_jid|, and retained_for_other_peers
  // those of every other peer of the account, each created at or after |not_before|, newest
  // first.
  Result<std::vector<RetainedSecret>> retained_for_peer(int64_t account_id,
                                                        const std::string& bare_jid,
                                                        int64_t not_before = 0);
  Result<std::vector<RetainedSecret>> retained_for_other_peers(int64_t account_id,
                                                               const std::string& bare_jid,
                                                               int64_t not_before = 0);
  // replace_retained atomically deletes the secret that matched in the negotiation (|matched|,
  // a RetainedSecret id, possibly of another peer) and stores |secret| as the one most recent
  // secret of (|bare_jid|, |client|), replacing any it had. The new secret inherits the
  // matched one's sas_verified flag.
  Result<RetainedSecret> replace_retained(int64_t account_id, const std::string& bare_jid,
                                          const std::string& client, const SecretBytes& secret,
                                          std::optional<int64_t> matched);
  // mark_retained_verified records that the user confirmed the SAS of the session that made
  // the secret.
  Status mark_retained_verified(int64_t retained_id);

  // --- sessions ---
  // create_session stores a new session with its initial serialized state (status active),
  // adding the peer (by bare JID) if new. An ended session with the same peer JID and thread
  // is replaced; an active or closing one is Errc::wrong_state.
  Result<SessionRecord> create_session(const NewSession& s, const SecretBytes& state);
  Result<std::optional<SessionRecord>> find_session(int64_t account_id, const std::string& peer_jid,
                                                    const std::string& thread);
  // find_active_session returns the active session with |peer_jid|: the CLI keeps at most one
  // per pair of full JIDs (formats/esession-1.0.md §3); should there be several (a database
  // written by an older esession), the newest (the highest id), never the one a timestamp
  // happens to favour.
  Result<std::optional<SessionRecord>> find_active_session(int64_t account_id,
                                                           const std::string& peer_jid);
  // find_sessions_by_thread returns every session of the account on |thread|, whatever its peer
  // or status, newest first.
  Result<std::vector<SessionRecord>> find_sessions_by_thread(int64_t account_id,
                                                             const std::string& thread);
  Result<std::optional<SessionRecord>> get_session(int64_t id);
  // list_sessions returns the account's sessions, newest (highest id) first.
  Result<std::vector<SessionRecord>> list_sessions(int64_t account_id);
  // read_session_state returns the state blob of session |id| without changing anything (no
  // write transaction, |updated| untouched): for commands that only look. Errc::no_session if
  // there is no such session.
  Result<SecretBytes> read_session_state(int64_t id);
  Status delete_session(int64_t id);
  Status set_session_status(int64_t id, SessionStatus status);

  // update_session runs |fn| on the state of session |id| inside one write transaction:
  // BEGIN IMMEDIATE, load the state blob, call fn(state) — or fn(state, status), which may
  // also change the session's status — and, if fn succeeds, write the state back and COMMIT
  // before returning fn's value. If fn fails, nothing is written and its error is returned.
  // A caller encrypting a stanza produces the ciphertext inside fn and writes it out only
  // after update_session has returned successfully: the counters it used are then on disk,
  // so no crash (even SIGKILL) or concurrent process can make them be used again.
  // fn returns a Result<T> (or Status). Errc::no_session if there is no session |id|.
  template <class F>
  auto update_session(int64_t id, F&& fn);

  // --- pending negotiations ---
  // put_negotiation stores (or replaces) the negotiation state for (peer_jid, thread).
  Result<int64_t> put_negotiation(int64_t account_id, const std::string& peer_jid,
                                  const std::string& thread, const SecretBytes& state);
  Result<std::optional<NegotiationRecord>> get_negotiation(int64_t account_id,
                                                           const std::string& peer_jid,
                                                           const std::string& thread);
  Result<std::vector<NegotiationRecord>> list_negotiations(int64_t account_id);
  Status delete_negotiation(int64_t id);

  // --- offline options (XEP-0187) ---
  // put_offline stores a set of offline options: its N_A (unique per account), expiry and state.
  Result<int64_t> put_offline(int64_t account_id, OfflineAudience audience, ByteView n_a,
                              int64_t expires, const SecretBytes& state);
  // find_offline returns the set a request names by |n_a|.
  Result<std::optional<OfflineRecord>> find_offline(int64_t account_id, ByteView n_a);
  Result<std::vector<OfflineRecord>> list_offline(int64_t account_id);
  // note_offline_request records the N_B and d of a request accepted against set |id|, and
  // returns false (recording nothing) if either was seen with that set before: a replay.
  Result<bool> note_offline_request(int64_t id, ByteView n_b, ByteView d);
  // destroy_offline deletes set |id| with its replay record, then checkpoints the WAL into the
  // database and truncates it: with secure_delete on, the secrets are then gone from both
  // files, not only from the tables (formats/offline.md §7). Errc::no_session if there is no
  // such set.
  Status destroy_offline(int64_t id);

 private:
  Store(std::string home, sql::Db db, StoreOptions opts);
  int64_t now() const;
  Status migrate();
  Result<std::vector<RetainedSecret>> retained_query(int64_t account_id,
                                                     const std::string& bare_jid,
                                                     int64_t not_before, bool others);
  Status update_session_impl(int64_t id,
                             const std::function<Status(SecretBytes&, SessionStatus&)>& fn);

  std::string m_home;
  sql::Db m_db;
  StoreOptions m_opts;
};

template <class F>
auto Store::update_session(int64_t id, F&& fn) {
  constexpr bool kWithStatus = std::is_invocable_v<F&, SecretBytes&, SessionStatus&>;
  using R =
      typename std::conditional_t<kWithStatus, std::invoke_result<F&, SecretBytes&, SessionStatus&>,
                                  std::invoke_result<F&, SecretBytes&>>::type;
  std::optional<R> out;
  Status st = update_session_impl(id, [&](SecretBytes& state, SessionStatus& status) -> Status {
    if constexpr (kWithStatus)
      out.emplace(fn(state, status));
    else
      out.emplace(fn(state));
    if (!*out)
      return out->error();
    return {};
  });
  if (!st && !(out && !*out))
    return R(st.error());  // a storage failure, not fn's own
  return std::move(*out);
}

}  // namespace esession
