// esession rekey: the stanza that re-keys a session (XEP-0200 §9).
#include "filter.hpp"

namespace esession::cli {

void add_rekey(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<FilterOpts>();
  auto* c = app.add_subcommand("rekey", "write a stanza that re-keys the session with a peer");
  c->add_option("--to", o->peer, "the peer's full JID")->required();
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_control(ctx, *o, false); }; });
}

}  // namespace esession::cli
