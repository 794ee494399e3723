// esession encrypt / decrypt / rekey / terminate: the XEP-0200 filters.
#include "commands.hpp"

namespace esession::cli {

namespace {

SessionStatus status_of(const Session& s) {
  if (s.active())
    return SessionStatus::active;
  return s.can_receive() ? SessionStatus::closing : SessionStatus::ended;
}

// with_session runs |fn| on the deserialized session inside the store's write transaction and
// writes the session back before returning: what fn produced may be written out only then.
template <class T, class F>
T with_session(Context& ctx, int64_t id, F&& fn) {
  // The outer Result is the transaction's; the inner one is fn's. A failed decryption destroys
  // the session (XEP-0200 §8), and that state must be committed too, so fn's failure does not
  // roll back.
  Result<T> inner = check(ctx.store().update_session(
      id, [&](SecretBytes& blob, SessionStatus& status) -> Result<Result<T>> {
        ES_ASSIGN(StoredSession ss, StoredSession::decode(view(blob)));
        ES_ASSIGN(Session s, Session::deserialize(view(ss.session)));
        Result<T> out = fn(s);
        ss.session = s.serialize();
        blob = ss.encode();
        status = status_of(s);
        return Result<Result<T>>(std::move(out));
      }));
  return check(std::move(inner));
}

struct FilterOpts {
  std::string peer;  // --to / --from: overrides the stanza's attribute
  int reply_fd = 1;  // decrypt: where answers to the peer go (termination acknowledgements)
};

int run_encrypt(Context& ctx, const FilterOpts& o) {
  StanzaInput in;
  SystemRandom rng;
  const Account& a = ctx.account();
  size_t n = 0;
  while (auto st = in.next()) {
    if (!is_stanza_kind(st->name) || st->ns != xml::kNsClient)
      fail_with(Errc::malformed, "<" + st->name + "/> is not a message, presence or iq stanza");
    std::string peer = o.peer.empty() ? st->attr_or("to") : o.peer;
    if (peer.empty())
      fail_with(Errc::malformed, "stanza without a 'to' attribute", "give the peer with --to");
    SessionRecord rec = find_session_for(ctx, peer, *st);
    if (!st->attr("to"))
      st->set_attr("to", peer);
    if (!st->attr("from"))
      st->set_attr("from", a.jid);
    if (st->name == "message" && !st->child("thread", xml::kNsClient))
      st->add_text_child("thread", rec.thread);
    // The counters this stanza uses are committed before it is written (DESIGN §4).
    xml::Element out =
        with_session<xml::Element>(ctx, rec.id, [&](Session& s) -> Result<xml::Element> {
          auto r = s.encrypt(*st, rng);
          if (!r && r.error().code == Errc::terminated)
            return fail(Errc::terminated,
                        "the session with " + peer + " has ended; negotiate a new one");
          return r;
        });
    write_stanza(out);
    ++n;
  }
  ctx.debug("encrypted " + std::to_string(n) + " stanzas");
  return kExitOk;
}

int run_decrypt(Context& ctx, const FilterOpts& o) {
  StanzaInput in;
  FILE* replies = stdout;
  if (o.reply_fd != 1) {
    replies = ::fdopen(o.reply_fd, "w");
    if (!replies)
      fail_with(Errc::io, "--reply-fd " + std::to_string(o.reply_fd) + " is not open");
  }
  int worst = kExitOk;
  while (auto st = in.next()) {
    std::string peer = o.peer.empty() ? st->attr_or("from") : o.peer;
    try {
      if (peer.empty())
        fail_with(Errc::malformed, "stanza without a 'from' attribute",
                  "give the peer with --from");
      if (is_negotiation_stanza(*st)) {
        ctx.status("NEGOTIATION_REQUEST", peer);
        fail_with(Errc::wrong_state, "a negotiation request from " + peer + " (not decrypted)",
                  "answer it with: esession respond");
      }
      SessionRecord rec = find_session_for(ctx, peer, *st);
      if (!st->child("c", xml::kNsC) && !st->child("feature", xml::kNsFeatureNeg))
        fail_with(Errc::auth_failed, "unencrypted stanza from " + peer + " refused",
                  "the session with this peer is encrypted; clear stanzas are never accepted");
      Received r = with_session<Received>(ctx, rec.id, [&](Session& s) { return s.decrypt(*st); });
      write_stanza(r.stanza);
      if (r.reply)
        write_stanza(*r.reply, replies);
      if (r.rekeyed)
        ctx.status("REKEYED", peer + " " + rec.thread);
      if (r.terminated) {
        ctx.status("TERMINATED", peer + " " + rec.thread);
        ctx.info("the session with " + peer + " has ended");
      }
    } catch (const Failure& f) {
      std::fprintf(stderr, "esession: error: %s\n", f.error.detail.c_str());
      if (!f.hint.empty())
        std::fprintf(stderr, "esession: hint: %s\n", f.hint.c_str());
      ctx.status("ERROR", std::string(errc_name(f.error.code)) + " " + peer);
      if (f.error.code == Errc::io)
        throw;
      if (worst == kExitOk)
        worst = exit_for(f.error.code);
    }
  }
  return worst;
}

// run_control emits a control stanza (re-key or termination) for the session with a peer.
int run_control(Context& ctx, const FilterOpts& o, bool terminate) {
  check(validate_full_jid(o.peer));
  xml::Element probe("message", std::string(xml::kNsClient));
  SessionRecord rec = find_session_for(ctx, o.peer, probe);
  SystemRandom rng;
  xml::Element out =
      with_session<xml::Element>(ctx, rec.id, [&](Session& s) -> Result<xml::Element> {
        return terminate ? s.terminate(rng) : s.rekey(rng);
      });
  out.set_attr("from", ctx.account().jid);
  write_stanza(out);
  ctx.status(terminate ? "TERMINATING" : "REKEY_SENT", o.peer + " " + rec.thread);
  return kExitOk;
}

}  // namespace

void add_encrypt(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<FilterOpts>();
  auto* c = app.add_subcommand(
      "encrypt", "encrypt stanzas from stdin for their peers' sessions, one per line on stdout");
  c->add_option("--to", o->peer, "encrypt every stanza for this full JID's session");
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_encrypt(ctx, *o); }; });
}

void add_decrypt(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<FilterOpts>();
  auto* c = app.add_subcommand(
      "decrypt", "verify and decrypt stanzas from stdin; only authentic stanzas reach stdout");
  c->add_option("--from", o->peer, "treat every stanza as coming from this full JID");
  c->add_option("--reply-fd", o->reply_fd,
                "write answers for the peer (termination acknowledgements) here (default 1)");
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_decrypt(ctx, *o); }; });
}

void add_rekey(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<FilterOpts>();
  auto* c = app.add_subcommand("rekey", "write a stanza that re-keys the session with a peer");
  c->add_option("--to", o->peer, "the peer's full JID")->required();
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_control(ctx, *o, false); }; });
}

void add_terminate(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<FilterOpts>();
  auto* c = app.add_subcommand("terminate", "write the stanza that ends the session with a peer");
  c->add_option("--to", o->peer, "the peer's full JID")->required();
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_control(ctx, *o, true); }; });
}

}  // namespace esession::cli
