// esession init: create a home and an account.
#include "commands.hpp"

namespace esession::cli {

namespace {

struct InitOpts {
  std::string jid;
  bool make_default = false;
};

int run_init(Context& ctx, const InitOpts& o) {
  std::string jid = prepared_jid(o.jid, JidKind::full, "--jid");
  Store& s = ctx.store(/*create=*/true);
  Account a = check(s.create_account(jid), "list the accounts with: esession key list");
  ctx.info("created account " + a.jid + " in " + s.home());
  ctx.status("ACCOUNT_CREATED", {a.jid});
  if (o.make_default) {
    check(s.set_default_account(a.id));
    ctx.status("ACCOUNT_DEFAULT", {a.jid});
  } else if (check(s.list_accounts()).size() == 2) {
    ctx.info(
        "the home now holds two accounts: commands choose one by --account, by the stanza, or "
        "by the default (esession account default JID)");
  }
  if (ctx.json())
    std::printf("{\"account\":%s,\"home\":%s}\n", json_escape(a.jid).c_str(),
                json_escape(s.home()).c_str());
  return kExitOk;
}

}  // namespace

void add_init(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<InitOpts>();
  auto* c = app.add_subcommand("init", "create the home directory and an account");
  c->add_option("--jid", o->jid, "the account's full JID (user@domain/resource)")->required();
  c->add_flag("--default", o->make_default,
              "make it the default account (used when nothing else selects one)");
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_init(ctx, *o); }; });
}

}  // namespace esession::cli
