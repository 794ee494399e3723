// The commands of the esession binary, one file each, and what they share.
#pragma once

#include "util/jid.hpp"

#include <functional>
#include <memory>

#include "context.hpp"
#include "identity.hpp"
#include "io.hpp"
#include "session/negotiation.hpp"
#include "state.hpp"

namespace esession::cli {

void add_init(CLI::App& app, Context& ctx, Action& action);
void add_key(CLI::App& app, Context& ctx, Action& action);
void add_account(CLI::App& app, Context& ctx, Action& action);
void add_peer(CLI::App& app, Context& ctx, Action& action);
void add_negotiate(CLI::App& app, Context& ctx, Action& action);
void add_respond(CLI::App& app, Context& ctx, Action& action);
void add_encrypt(CLI::App& app, Context& ctx, Action& action);
void add_decrypt(CLI::App& app, Context& ctx, Action& action);
void add_rekey(CLI::App& app, Context& ctx, Action& action);
void add_terminate(CLI::App& app, Context& ctx, Action& action);
void add_session(CLI::App& app, Context& ctx, Action& action);
void add_demo(CLI::App& app, Context& ctx, Action& action);
void add_seal(CLI::App& app, Context& ctx, Action& action);
void add_open(CLI::App& app, Context& ctx, Action& action);

// What an option's (or a positional's) value is, for `esession --dump-cli` and so for the shell
// completions (scripts/gen-completions): a file, a directory, or one of a fixed set of words.
// It is a hint only: the commands check their values themselves.
enum class ValueKind { text, file, dir, choice };
struct ValueHint {
  ValueKind kind = ValueKind::text;
  std::vector<std::string> choices;
};
// value_is records the hint for |opt| and returns it, to chain.
CLI::Option* value_is(CLI::Option* opt, ValueKind kind, std::vector<std::string> choices = {});
// value_hint returns what value_is recorded for |opt| (text when nothing).
ValueHint value_hint(const CLI::Option* opt);

// prepared_jid returns |jid| prepared as RFC 7622 says (util/jid: localpart and domain
// case-folded, each part checked), so that one entity has one spelling everywhere: in the store,
// in lookups and in status lines. Throws Failure naming |what| when it is not a JID of |kind|.
enum class JidKind { any, full, bare };
std::string prepared_jid(std::string_view jid, JidKind kind, std::string_view what = "JID");
// same_jid: do |a| and |b| name the same entity (false when either is not a JID)?
bool same_jid(std::string_view a, std::string_view b);

// printable quotes untrusted text (a thread, an address) for an error line: at most |max|
// bytes, control characters replaced by '?'.
std::string printable(std::string_view s, size_t max = 48);

// StoreVerifier answers the negotiation's questions from the trust database: the keys we hold
// for a JID, and whether a key may identify it (a different key than a verified or pinned one
// is refused; an unknown JID is accepted on first use and reported). A credential that came
// with the key is evaluated (evaluate_pki): a revoked OpenPGP key is refused; the verdict is
// kept for persist_established.
class StoreVerifier : public Verifier {
 public:
  explicit StoreVerifier(Context& ctx) : m_ctx(ctx) {}
  std::vector<PublicKey> known_keys(std::string_view bare_jid) const override;
  Status accept(std::string_view bare_jid, const PublicKey& key,
                const Credential* cred) const override;
  // verdict returns what the PKI said about the credential of the key with |fingerprint|.
  const PkiVerdict* verdict(const std::string& fingerprint) const;

 private:
  Context& m_ctx;
  mutable std::map<std::string, PkiVerdict> m_verdicts;
};

// persist_established stores a new session and everything the negotiation produced: the
// rotated retained secret, the peer's key and what a PKI said of it, and ends the older
// sessions with the same full JID (their keys destroyed), all in one transaction. Once that
// has committed it calls |after_commit| (which writes the last negotiation message, if any:
// nothing that establishes the peer may leave before our side is durable), then reports
// REPLACED, ESTABLISHED, PKI, SAS and TRUST events. Throws Failure, having written nothing,
// when the session cannot be stored.
void persist_established(Context& ctx, const std::string& peer_jid, const std::string& thread,
                         bool initiator, Established& est, const std::vector<RetainedSecret>& mine,
                         const std::vector<RetainedSecret>& others, const StoreVerifier* verifier,
                         const std::function<void()>& after_commit = {});

// open_session loads a stored session for an update; save_session writes it back.
StoredSession open_stored(ByteView blob);

// find_session_for returns the stored session with |peer_jid| for |stanza|. A stanza with a
// <thread/> belongs to the session on that thread, which must be |peer_jid|'s and not ended:
// an unknown thread, another peer's thread (Errc::no_session) or an ended session's
// (Errc::terminated) is refused, never routed to another session. A stanza without a thread
// belongs to the active session with |peer_jid| (at most one exists). Throws Failure with a
// hint; changes nothing.
SessionRecord find_session_for(Context& ctx, const std::string& peer_jid,
                               const xml::Element& stanza);

}  // namespace esession::cli
