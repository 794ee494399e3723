// esession decrypt: XEP-0200 stanzas in, authentic stanzas out.
#include <cerrno>
#include <cstring>
#include <variant>

#include "filter.hpp"

namespace esession::cli {

namespace {

int run_decrypt(Context& ctx, const FilterOpts& o) {
  StanzaInput in;
  widen_pipe(1);
  FILE* replies = stdout;
  if (o.reply_fd != 1) {
    replies = ::fdopen(o.reply_fd, "w");
    if (!replies)
      fail_with(Errc::io, "--reply-fd " + std::to_string(o.reply_fd) + " is not open");
  }
  int worst = kExitOk;
  // After a session ends, every further stanza of that peer fails the same way: say it once
  // per peer, and count the rest.
  std::map<std::string, size_t> ended_repeats;
  auto report = [&](const Failure& f, const std::string& peer) {
    if (f.error.code == Errc::terminated) {
      auto [it, first] = ended_repeats.emplace(peer, 0);
      if (!first) {
        ++it->second;
        return;
      }
    }
    int rc = ctx.report(f, peer);
    if (worst == kExitOk)
      worst = rc;
  };
  SystemRandom rng;
  std::optional<Endpoint> ep;
  for (;;) {
    std::vector<xml::Element> batch = in.next_batch(kBatch);
    if (batch.empty())
      break;
    if (!ep) {
      // The first stanza's 'to' chooses the account when the home holds several.
      std::string to;
      for (const auto& st : batch)
        if (const std::string* t = st.attr("to")) {
          to = *t;
          break;
        }
      ep.emplace(Endpoint(ctx.store(), ctx.account(to), engine_config(ctx)));
    }
    Batch b = ep->incoming(batch, rng, o.peer);
    // Written in order: the stanzas and answers before a refusal leave before it is reported.
    std::string out, answers;
    auto write = [&] {
      write_text(out, stdout);
      write_text(answers, replies);
      out.clear();
      answers.clear();
    };
    for (size_t i = 0; i < b.results.size(); ++i) {
      Outcome& r = b.results[i];
      for (const auto& m : r.deliver) {
        xml::serialize_append(out, m);
        out += '\n';
      }
      for (const auto& m : r.send) {
        xml::serialize_append(answers, m, {}, r.style);
        answers += '\n';
      }
      render(ctx, r.events);
      if (r.error) {
        write();
        std::string peer = peer_of(o.peer, batch[i], "from");
        report(failure_of(r, peer), peer);
      }
    }
    write();
    if (b.fatal)
      throw Failure{*b.fatal, {}};
  }
  for (const auto& [peer, n] : ended_repeats)
    if (n > 0)
      std::fprintf(stderr, "esession: error: %zu more stanzas from %s refused (session ended)\n", n,
                   peer.c_str());
  return worst;
}

}  // namespace

void add_decrypt(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<FilterOpts>();
  auto* c = app.add_subcommand(
      "decrypt", "verify and decrypt stanzas from stdin; only authentic stanzas reach stdout");
  c->add_option("--from", o->peer, "treat every stanza as coming from this full JID");
  c->add_option("--reply-fd", o->reply_fd,
                "write answers for the peer (termination acknowledgements) here (default 1)");
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_decrypt(ctx, *o); }; });
}

}  // namespace esession::cli
