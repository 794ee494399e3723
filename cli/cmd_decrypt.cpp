// esession decrypt: XEP-0200 stanzas in, authentic stanzas out.
#include <cerrno>
#include <cstring>
#include <variant>

#include "filter.hpp"

namespace esession::cli {

namespace {

struct Decrypted {
  std::vector<std::variant<Received, Error>> results;
  Compat compat = Compat::spec;  // how answers to the peer are written (wire_style)
};

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
  SessionCache cache(ctx);
  for (;;) {
    std::vector<xml::Element> batch = in.next_batch(kBatch);
    if (batch.empty())
      break;
    cache.clear();
    int64_t group_id = -1;
    std::string group_peer, group_thread;
    std::vector<const xml::Element*> group;
    auto flush = [&] {
      if (group.empty())
        return;
      Decrypted d = with_session<Decrypted>(ctx, group_id, [&](Session& s) -> Result<Decrypted> {
        Decrypted r;
        r.compat = s.suite().compat;
        for (const xml::Element* st : group) {
          auto dec = s.decrypt(*st);
          if (dec)
            r.results.emplace_back(std::move(dec).value());
          else
            r.results.emplace_back(dec.error());
        }
        return r;
      });
      std::vector<xml::Element> out, answers;
      for (auto& res : d.results) {
        if (auto* err = std::get_if<Error>(&res)) {
          // Written after the good stanzas before it, so the order of events is kept.
          write_all(out, stdout);
          write_all(answers, replies, wire_style(d.compat));
          out.clear();
          answers.clear();
          report(Failure{*err, {}}, group_peer);
          continue;
        }
        Received& r = std::get<Received>(res);
        // A re-key stanza without content is a control message, not data. (A termination stays
        // visible: it carries the XEP-0155 form the application may want to see.)
        bool control =
            r.rekeyed && std::none_of(r.stanza.children.begin(), r.stanza.children.end(),
                                      [](const xml::Element& c) {
                                        return !c.is_text() && !c.is("thread", xml::kNsClient);
                                      });
        if (!control)
          out.push_back(std::move(r.stanza));
        if (r.reply) {
          r.reply->set_attr("from", ctx.account().jid);
          answers.push_back(std::move(*r.reply));
        }
        if (r.rekeyed)
          ctx.status("REKEYED", {group_peer, group_thread});
        if (r.terminated) {
          ctx.status("TERMINATED", {group_peer, group_thread});
          ctx.info("the session with " + group_peer + " has ended");
        }
      }
      write_all(out, stdout);
      write_all(answers, replies, wire_style(d.compat));
      group.clear();
    };
    for (const auto& st : batch) {
      std::string peer = o.peer.empty() ? st.attr_or("from") : o.peer;
      try {
        if (peer.empty())
          fail_with(Errc::malformed, "stanza without a 'from' attribute",
                    "give the peer with --from");
        peer = prepared_jid(peer, JidKind::any, "the sender");
        if (is_negotiation_stanza(st)) {
          ctx.status("NEGOTIATION_REQUEST", {peer});
          fail_with(Errc::wrong_state, "a negotiation request from " + peer + " (not decrypted)",
                    "answer it with: esession respond");
        }
        // A stanza for someone else is not ours to decrypt (nor to let destroy a session).
        // The first stanza's 'to' chooses the account when the home holds several.
        if (const std::string* to = st.attr("to"); to && !same_jid(*to, ctx.account(*to).jid))
          fail_with(Errc::no_session,
                    "a stanza from " + peer + " addressed to " + printable(*to, 256) + ", not to " +
                        ctx.account().jid + "; refused",
                    "decrypt stanzas with the home of the account they are addressed to");
        const SessionRecord& rec = cache.find(peer, st);
        if (!st.child("c", xml::kNsC) && !st.child("feature", xml::kNsFeatureNeg))
          fail_with(Errc::auth_failed, "unencrypted stanza from " + peer + " refused",
                    "the session with this peer is encrypted; clear stanzas are never accepted");
        if (rec.id != group_id)
          flush();
        group_id = rec.id;
        group_peer = peer;
        group_thread = rec.thread;
        group.push_back(&st);
      } catch (const Failure& f) {
        flush();
        if (f.error.code == Errc::io)
          throw;
        report(f, peer);
      }
    }
    flush();
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
