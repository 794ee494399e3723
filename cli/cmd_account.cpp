// esession account: the home's accounts, and which one is the default.
//
// A home may hold several accounts (one per `init --jid`). Commands use the one --account
// names; encrypt, decrypt and respond otherwise the one their stanza names; then the default
// account set here (or by `init --default`); then the only one (Context::account).
#include "commands.hpp"

namespace esession::cli {

namespace {

struct AccountOpts {
  std::string jid;
  bool clear = false;
};

int run_list(Context& ctx) {
  auto all = check(ctx.store().list_accounts());
  if (ctx.json()) {
    std::printf("[");
    for (size_t i = 0; i < all.size(); ++i)
      std::printf("%s{\"jid\":%s,\"default\":%s,\"created\":%lld}", i ? "," : "",
                  json_escape(all[i].jid).c_str(), all[i].is_default ? "true" : "false",
                  static_cast<long long>(all[i].created));
    std::printf("]\n");
    return kExitOk;
  }
  for (const auto& a : all)
    std::printf("%s%s\n", a.jid.c_str(), a.is_default ? "  (default)" : "");
  return kExitOk;
}

int run_default(Context& ctx, const AccountOpts& o) {
  Store& s = ctx.store();
  if (o.clear == !o.jid.empty())
    fail_with(Errc::malformed, "give the account's JID, or --clear",
              "esession account default JID; see esession-account(1)");
  if (o.clear) {
    check(s.set_default_account(std::nullopt));
    ctx.info("no default account in " + s.home());
    ctx.status("ACCOUNT_DEFAULT", {});
    return kExitOk;
  }
  std::string jid = prepared_jid(o.jid, JidKind::any, "the account");
  auto all = check(s.list_accounts());
  const Account* match = nullptr;
  for (const auto& a : all)
    if (a.jid == jid)
      match = &a;
  if (!match) {
    // A bare JID names the account with that bare JID when there is only one.
    for (const auto& a : all)
      if (bare_jid(jid) == jid && same_jid(bare_jid(a.jid), jid)) {
        if (match)
          fail_with(Errc::malformed, "several accounts match " + jid, "give the full JID");
        match = &a;
      }
  }
  if (!match) {
    std::string names;
    for (const auto& a : all)
      names += (names.empty() ? "" : ", ") + a.jid;
    fail_with(Errc::malformed, "no account " + jid + " in " + s.home(),
              names.empty() ? "create one with: esession init --jid " + jid + " --default"
                            : "the accounts: " + names);
  }
  check(s.set_default_account(match->id));
  ctx.info("the default account of " + s.home() + " is " + match->jid);
  ctx.status("ACCOUNT_DEFAULT", {match->jid});
  return kExitOk;
}

}  // namespace

void add_account(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<AccountOpts>();
  auto* acc = app.add_subcommand("account", "the home's accounts and the default one");
  acc->require_subcommand(1);
  auto* list = acc->add_subcommand("list", "list the accounts, marking the default");
  list->callback([&ctx, &action] { action = [&ctx] { return run_list(ctx); }; });
  auto* dflt = acc->add_subcommand(
      "default", "make an account the default (used when nothing else selects one)");
  auto* jid = dflt->add_option("jid", o->jid, "the account's JID (bare when it names one)");
  auto* clear = dflt->add_flag("--clear", o->clear, "have no default account");
  jid->excludes(clear);
  dflt->callback([&ctx, &action, o] { action = [&ctx, o] { return run_default(ctx, *o); }; });
}

}  // namespace esession::cli
