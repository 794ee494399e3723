#include "commands.hpp"

#include <map>

namespace esession::cli {

namespace {

std::map<const CLI::Option*, ValueHint>& value_hints() {
  static std::map<const CLI::Option*, ValueHint> hints;
  return hints;
}

}  // namespace

CLI::Option* value_is(CLI::Option* opt, ValueKind kind, std::vector<std::string> choices) {
  value_hints()[opt] = ValueHint{kind, std::move(choices)};
  return opt;
}

ValueHint value_hint(const CLI::Option* opt) {
  auto it = value_hints().find(opt);
  return it == value_hints().end() ? ValueHint{} : it->second;
}

const std::vector<Command>& command_table() {
  static const std::vector<Command> table = {
      {"init", add_init},           {"account", add_account},     {"key", add_key},
      {"peer", add_peer},           {"negotiate", add_negotiate}, {"respond", add_respond},
      {"encrypt", add_encrypt},     {"decrypt", add_decrypt},     {"rekey", add_rekey},
      {"terminate", add_terminate}, {"session", add_session},     {"demo", add_demo},
      {"seal", add_seal},           {"open", add_open},           {"offline", add_offline},
  };
  return table;
}

namespace {

// The JIDs this run has prepared (a stream of stanzas names the same few again and again).
JidMemo& jid_memo() {
  thread_local JidMemo memo;
  return memo;
}

}  // namespace

std::string prepared_jid(std::string_view jid, JidKind kind, std::string_view what) {
  Result<std::string> r = jid_memo().prep_kind(jid, kind == JidKind::full   ? JidMemo::Kind::full
                                                    : kind == JidKind::bare ? JidMemo::Kind::bare
                                                                            : JidMemo::Kind::any);
  if (!r)
    fail_with(Errc::malformed, std::string(what) + ": " + r.error().detail,
              kind == JidKind::full ? "a full JID is user@domain/resource" : "");
  return std::move(r).value();
}

bool same_jid(std::string_view a, std::string_view b) {
  return jid_memo().same(a, b);
}

StoredSession open_stored(ByteView blob) {
  return check(StoredSession::decode(blob));
}

EngineConfig engine_config(Context& ctx) {
  EngineConfig cfg;
  cfg.pki = pki_options(ctx);
  return cfg;
}

Endpoint endpoint(Context& ctx) {
  return Endpoint(ctx.store(), ctx.account(), engine_config(ctx));
}

}  // namespace esession::cli
