// esession respond: answer a negotiation request (the responder, XEP-0116 "Bob").
#include "negotiation.hpp"

namespace esession::cli {

namespace {

int run_respond(Context& ctx, const NegOpts& o) {
  StanzaInput in;
  std::optional<xml::Element> offer;
  for (;;) {
    offer = in.next(o.timeout * 1000);
    if (!offer)
      fail_with(Errc::io, "the input ended without a negotiation request");
    if (is_negotiation_stanza(*offer))
      break;
    ctx.debug("ignoring a stanza that is not a negotiation request");
  }
  std::string peer = offer->attr_or("from");
  if (!o.to.empty())
    peer = o.to;
  if (peer.empty())
    fail_with(Errc::malformed, "the negotiation request has no 'from'",
              "name the peer with --from FULLJID");
  peer = prepared_jid(peer, JidKind::full, "the peer");
  // The request's 'to' chooses the account when the home holds several.
  (void)ctx.account(offer->attr_or("to"));
  Prepared p = prepare(ctx, o, peer, false);
  Endpoint ep = endpoint(ctx);
  SystemRandom rng;
  Outcome out = ep.respond(*offer, peer, std::move(p.opts), rng);
  return run_exchange(ctx, o, ep, std::move(out), peer, in);
}

}  // namespace

void add_respond(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<NegOpts>();
  auto* c = app.add_subcommand(
      "respond", "answer an encrypted-session request read on stdin, until established");
  c->add_option("--from", o->to, "the peer's full JID (default: the request's 'from')");
  c->add_flag("--only-four", o->only_four, "refuse the three-message flow");
  add_common(c, *o);
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_respond(ctx, *o); }; });
}

}  // namespace esession::cli
