// esession negotiate: start an encrypted session (the initiator, XEP-0116 "Alice").
#include "negotiation.hpp"

namespace esession::cli {

namespace {

int run_negotiate(Context& ctx, const NegOpts& o) {
  const std::string to = prepared_jid(o.to, JidKind::full, "--to");
  Prepared p = prepare(ctx, o, to, true);
  Endpoint ep = endpoint(ctx);
  SystemRandom rng;
  Outcome out = ep.negotiate(to, std::move(p.opts), rng);
  StanzaInput in;
  return run_exchange(ctx, o, ep, std::move(out), to, in);
}

}  // namespace

void add_negotiate(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<NegOpts>();
  auto* c = app.add_subcommand(
      "negotiate", "start an encrypted session: write the offer, read the answers on stdin");
  c->add_option("--to", o->to, "the peer's full JID")->required();
  value_is(c->add_option("--flow", o->flow, "4 (SIGMA-R, SAS; default) or 3 (SIGMA-I, needs keys)"),
           ValueKind::choice, {"4", "3"});
  c->add_flag("--xep0217", o->xep0217, "offer the simplified XEP-0217 profile");
  c->add_flag("--one-shot", o->one_shot,
              "with --flow 3 --attach: end the session right after the attached stanza");
  add_common(c, *o);
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_negotiate(ctx, *o); }; });
}

}  // namespace esession::cli
