// esession respond: answer a negotiation request (the responder, XEP-0116 "Bob").
#include "negotiation.hpp"

namespace esession::cli {

namespace {

// thread_is_free refuses, before anything is written, a request on a thread that already names
// a session: another peer's (a thread names one session, and decrypt routes by it), or one
// with this peer that has not ended (storing the new session would fail after the answer).
Status thread_is_free(Context& ctx, const std::string& peer, const std::string& thread) {
  ES_ASSIGN(auto used, ctx.store().find_sessions_by_thread(ctx.account().id, thread));
  for (const auto& s : used) {
    if (s.peer_jid != peer)
      return fail(Errc::wrong_state,
                  "the negotiation request from " + peer +
                      " uses the thread of a session with another peer; refused");
    if (s.status != SessionStatus::ended)
      return fail(Errc::wrong_state, "the negotiation request from " + peer +
                                         " uses the thread of session " + std::to_string(s.id) +
                                         ", which is " +
                                         std::string(session_status_name(s.status)) + "; refused");
  }
  return {};
}

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
  ctx.status("NEGOTIATION_REQUEST", {peer});
  if (const xml::Element* th = offer->child("thread", xml::kNsClient))
    if (Status free = thread_is_free(ctx, peer, th->text_content()); !free) {
      ctx.status("NEGOTIATION_FAILED", {peer, errc_name(free.error().code)});
      throw Failure{free.error(), {}};
    }
  Prepared p = prepare(ctx, o, peer, false);
  SystemRandom rng;
  std::optional<xml::Element> reply;
  auto responded = Negotiation::respond(p.cfg, *offer, rng, peer, &reply);
  if (!responded) {
    if (reply)
      write_stanza(*reply, stdout, wire_style(p.cfg.policy.compat));
    ctx.status("NEGOTIATION_FAILED", {peer, errc_name(responded.error().code)});
    throw Failure{responded.error(), {}};
  }
  auto& [neg, step] = responded.value();
  return run_exchange(ctx, o, p, neg, std::move(step), peer, in);
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
