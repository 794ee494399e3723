// esession terminate: the stanza that ends a session (XEP-0155 §7, XEP-0200).
#include "filter.hpp"

namespace esession::cli {

void add_terminate(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<FilterOpts>();
  auto* c = app.add_subcommand("terminate", "write the stanza that ends the session with a peer");
  c->add_option("--to", o->peer, "the peer's full JID")->required();
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_control(ctx, *o, true); }; });
}

}  // namespace esession::cli
