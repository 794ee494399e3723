// esession offline: sessions with a peer who is offline (XEP-0187, formats/offline.md).
#include <ctime>

#include "engine/pep.hpp"
#include "filter.hpp"
#include "identity.hpp"
#include "util/datetime.hpp"

namespace esession::cli {

namespace {

struct OfflineOpts {
  std::string audience = "subscribers";  // subscribers or anyone
  std::string expires = "24h";           // a DateTime, or a duration from now: 90m, 24h, 7d
  bool match_resource = false;
  std::string to;       // start: the peer's bare JID
  std::string options;  // start: the file holding the peer's published options
  bool one_shot = false;
};

OfflineAudience audience_of(const std::string& s) {
  if (s == "anyone")
    return OfflineAudience::anyone;
  if (s != "subscribers")
    fail_with(Errc::malformed, "--for is subscribers or anyone");
  return OfflineAudience::subscribers;
}

// expiry_of reads --expires: a XEP-0082 DateTime, or a number of minutes, hours or days.
int64_t expiry_of(const std::string& s, int64_t now) {
  if (auto t = parse_datetime(s))
    return *t;
  static const std::pair<char, int64_t> kUnits[] = {{'m', 60}, {'h', 3600}, {'d', 86400}};
  if (s.size() >= 2)
    for (auto [unit, seconds] : kUnits)
      if (s.back() == unit)
        if (auto n = parse_decimal(std::string_view(s).substr(0, s.size() - 1), 3650); n && *n > 0)
          return now + static_cast<int64_t>(*n) * seconds;
  fail_with(Errc::malformed, "--expires " + printable(s) + ": not a DateTime or a duration",
            "say 2026-12-24T18:00:00Z, or 90m, 24h, 7d");
}

void write_all(const Outcome& out) {
  std::string text;
  for (const auto& m : out.send) {
    xml::serialize_append(text, m, {}, out.style);
    text += '\n';
  }
  write_text(text, stdout);
}

int run_publish(Context& ctx, const OfflineOpts& o) {
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  OfflineOptions opts{expiry_of(o.expires, now), {}};
  if (opts.expires <= now)
    fail_with(Errc::malformed, "--expires is in the past");
  if (o.match_resource) {
    const std::string& jid = ctx.account().jid;
    opts.match_resource = jid.substr(bare_jid(jid).size() + 1);
  }
  std::unique_ptr<Signer> signer =
      required_signer(ctx, "offline options are signed, and the account has no key");
  Endpoint ep = endpoint(ctx);
  SystemRandom rng;
  Outcome out = ep.publish_offline(audience_of(o.audience), opts, *signer, rng);
  render(ctx, out.events);
  if (out.error)
    throw failure_of(out, {});
  write_all(out);
  return kExitOk;
}

int run_retract(Context& ctx) {
  Endpoint ep = endpoint(ctx);
  SystemRandom rng;
  Outcome out = ep.retract_offline(rng);
  render(ctx, out.events);
  if (out.error)
    throw failure_of(out, {});
  write_all(out);
  return kExitOk;
}

// run_fetch writes the iq that asks the peer's server for its options (XEP-0187 §3.2).
int run_fetch(const OfflineOpts& o) {
  const std::string to = prepared_jid(o.to, JidKind::bare, "--to");
  SystemRandom rng;
  write_stanza(pep_items_request(audience_of(o.audience), to, "esession-" + hex(rng.nonce(8))));
  return kExitOk;
}

int run_list(Context& ctx) {
  for (const auto& r : check(ctx.store().list_offline(ctx.account().id)))
    std::printf("%-4lld %-12s expires %s\n", static_cast<long long>(r.id),
                std::string(offline_audience_name(r.audience)).c_str(),
                format_datetime(r.expires).c_str());
  return kExitOk;
}

// run_start sends the first stanza from stdin in the offline request, and encrypts the rest
// in the session it establishes.
int run_start(Context& ctx, const OfflineOpts& o) {
  const std::string to = prepared_jid(o.to, JidKind::bare, "--to");
  xml::Element published = read_published(o.options);
  StanzaInput in;
  std::optional<xml::Element> first = in.next();
  if (!first || first->name != "message")
    fail_with(Errc::malformed, "offline start sends the <message/> stanzas on stdin",
              "the first one rides in the request (XEP-0187 §3.3)");
  NegotiationOptions opts;
  std::unique_ptr<Signer> signer = required_signer(
      ctx, "an offline session needs our key: the peer, offline, cannot compare a SAS");
  opts.signer = signer.get();
  opts.content = std::move(first);
  opts.terminate_after_content = o.one_shot;
  Endpoint ep = endpoint(ctx);
  SystemRandom rng;
  Outcome out = ep.start_offline(to, published, std::move(opts), rng);
  render(ctx, out.events);
  if (out.error)
    throw failure_of(out, to);
  write_all(out);
  if (o.one_shot)
    return kExitOk;
  for (;;) {
    std::vector<xml::Element> batch = in.next_batch(kBatch);
    if (batch.empty())
      break;
    for (auto& st : batch)
      if (!st.child("thread", xml::kNsClient))
        st.add_text_child("thread", out.thread);
    Batch b = ep.outgoing(batch, rng);
    std::string text;
    for (const Outcome& r : b.results)
      for (const auto& m : r.send) {
        xml::serialize_append(text, m, {}, r.style);
        text += '\n';
      }
    write_text(text, stdout);
    if (b.fatal)
      throw Failure{*b.fatal, {}};
    if (!b.results.empty() && b.results.back().error)
      throw failure_of(b.results.back(), to);
  }
  return kExitOk;
}

}  // namespace

void add_offline(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<OfflineOpts>();
  auto* c = app.add_subcommand("offline", "sessions with a peer who is offline (XEP-0187)");
  c->require_subcommand(1);
  auto* pub = c->add_subcommand(
      "publish", "make signed offline options and write the PEP stanzas that publish them");
  value_is(pub->add_option("--for", o->audience, "subscribers (default) or anyone"),
           ValueKind::choice, {"subscribers", "anyone"});
  pub->add_option("--expires", o->expires, "a DateTime, or 90m, 24h (default), 7d from now");
  pub->add_flag("--match-resource", o->match_resource,
                "only this client (the account's resource) can accept; messages only");
  pub->callback([&ctx, &action, o] { action = [&ctx, o] { return run_publish(ctx, *o); }; });
  auto* fetch = c->add_subcommand(
      "fetch", "write the PEP request for a peer's published options (its server answers)");
  fetch->add_option("--to", o->to, "the peer's bare JID")->required();
  value_is(fetch->add_option("--for", o->audience,
                             "subscribers (default: we see the peer's presence) or anyone"),
           ValueKind::choice, {"subscribers", "anyone"});
  fetch->callback([&action, o] { action = [o] { return run_fetch(*o); }; });
  auto* start = c->add_subcommand(
      "start", "start a session from a peer's published options; stanzas from stdin");
  start->add_option("--to", o->to, "the peer's bare JID")->required();
  value_is(start->add_option("--options", o->options, "the peer's published options (a file)")
               ->required(),
           ValueKind::file);
  start->add_flag("--one-shot", o->one_shot,
                  "send the first stanza only, and end the session with it");
  start->callback([&ctx, &action, o] { action = [&ctx, o] { return run_start(ctx, *o); }; });
  auto* retract = c->add_subcommand(
      "retract", "back online: write the PEP stanza that withdraws the options, destroy them");
  retract->callback([&ctx, &action] { action = [&ctx] { return run_retract(ctx); }; });
  auto* list = c->add_subcommand("list", "list the offline options we published");
  list->callback([&ctx, &action] { action = [&ctx] { return run_list(ctx); }; });
}

}  // namespace esession::cli
