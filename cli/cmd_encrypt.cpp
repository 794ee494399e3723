// esession encrypt: stanzas in, XEP-0200 stanzas out.
#include <cerrno>
#include <cstring>
#include <variant>

#include "filter.hpp"

namespace esession::cli {

namespace {

int run_encrypt(Context& ctx, const FilterOpts& o) {
  StanzaInput in;
  widen_pipe(1);
  SystemRandom rng;
  std::optional<Endpoint> ep;
  size_t n = 0;
  for (;;) {
    std::vector<xml::Element> batch = in.next_batch(kBatch);
    if (batch.empty())
      break;
    // The first stanza's 'from' chooses the account when the home holds several (and
    // --account does not); one run encrypts as one account.
    if (!ep)
      ep.emplace(
          Endpoint(ctx.store(), ctx.account(batch.front().attr_or("from")), engine_config(ctx)));
    Batch b = ep->outgoing(batch, rng, o.peer);
    // What was encrypted is written, even before a stanza that could not be.
    std::string out;
    for (const Outcome& r : b.results)
      for (const auto& m : r.send) {
        xml::serialize_append(out, m, {}, r.style);
        out += '\n';
        ++n;
      }
    write_text(out, stdout);
    if (b.fatal)
      throw Failure{*b.fatal, {}};
    if (!b.results.empty() && b.results.back().error)
      throw failure_of(b.results.back(), peer_of(o.peer, batch[b.results.size() - 1], "to"));
  }
  ctx.debug("encrypted " + std::to_string(n) + " stanzas");
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

}  // namespace esession::cli
