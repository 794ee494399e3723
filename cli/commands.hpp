// The commands of the esession binary, one file each, and what they share.
#pragma once

#include "util/jid.hpp"

#include <functional>
#include <memory>

#include "context.hpp"
#include "engine/endpoint.hpp"
#include "engine/session_record.hpp"
#include "identity.hpp"
#include "io.hpp"
#include "session/negotiation.hpp"

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
void add_offline(CLI::App& app, Context& ctx, Action& action);

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

// open_stored decodes a stored session record (for `session show`, `peer verify`).
StoredSession open_stored(ByteView blob);

// engine_config is the engine configuration the options give (PKI anchors, GnuPG).
EngineConfig engine_config(Context& ctx);
// endpoint returns the engine for the run's account.
Endpoint endpoint(Context& ctx);

// render shows engine events: each as its status line and, for people, a sentence on stderr.
void render(Context& ctx, const Event& e);
void render(Context& ctx, const Events& events);
// hint_for is the advice for a refusal concerning |peer|; failure_of makes the Failure that
// reports a failed Outcome.
std::string hint_for(Refusal r, const std::string& peer);
Failure failure_of(const Outcome& o, const std::string& peer);

}  // namespace esession::cli
