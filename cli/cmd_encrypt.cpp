// esession encrypt: stanzas in, XEP-0200 stanzas out.
#include <cerrno>
#include <cstring>
#include <variant>

#include "filter.hpp"

namespace esession::cli {

namespace {

struct Encrypted {
  std::vector<xml::Element> out;
  Compat compat = Compat::spec;  // how the session's stanzas are written (wire_style)
  std::optional<Error> error;    // the stanza after the last one in |out| failed
};

int run_encrypt(Context& ctx, const FilterOpts& o) {
  StanzaInput in;
  widen_pipe(1);
  SystemRandom rng;
  SessionCache cache(ctx);
  size_t n = 0;
  for (;;) {
    std::vector<xml::Element> batch = in.next_batch(kBatch);
    if (batch.empty())
      break;
    cache.clear();
    // Runs of consecutive stanzas for the same session are encrypted in one transaction.
    int64_t group_id = -1;
    std::string group_peer;
    std::vector<xml::Element*> group;
    auto flush = [&] {
      if (group.empty())
        return;
      Encrypted e = with_session<Encrypted>(ctx, group_id, [&](Session& s) -> Result<Encrypted> {
        Encrypted r;
        r.compat = s.suite().compat;
        for (xml::Element* st : group) {
          auto enc = s.encrypt(*st, rng);
          if (!enc) {
            r.error = enc.error();
            if (r.error->code == Errc::terminated)
              r.error->detail =
                  "the session with " + group_peer + " has ended; negotiate a new one";
            break;
          }
          r.out.push_back(std::move(enc).value());
        }
        return r;
      });
      write_all(e.out, stdout, wire_style(e.compat));
      n += e.out.size();
      group.clear();
      if (e.error)
        throw Failure{*e.error, {}};
    };
    try {
      for (auto& st : batch) {
        if (!is_stanza_kind(st.name) || st.ns != xml::kNsClient)
          fail_with(Errc::malformed, "<" + st.name + "/> is not a message, presence or iq stanza");
        std::string peer = o.peer.empty() ? st.attr_or("to") : o.peer;
        if (peer.empty())
          fail_with(Errc::malformed, "stanza without a 'to' attribute", "give the peer with --to");
        peer = prepared_jid(peer, JidKind::any, "the recipient");
        // The first stanza's 'from' chooses the account when the home holds several (and
        // --account does not); one run encrypts as one account.
        const Account& a = ctx.account(st.attr_or("from"));
        if (const std::string* from = st.attr("from"); from && !same_jid(*from, a.jid))
          if (std::optional<Account> other = ctx.account_named(*from); other && other->id != a.id)
            fail_with(
                Errc::malformed,
                "a stanza from the account " + other->jid + " in a run that encrypts as " + a.jid,
                "encrypt each account's stanzas in a run of their own");
        const SessionRecord& rec = cache.find(peer, st);
        st.set_attr("to", peer);
        // A stanza goes from the account's full JID: the session binds it (a bare 'from'
        // naming the account is completed, as a server would).
        if (const std::string* from = st.attr("from");
            !from || (bare_jid(*from) == *from && same_jid(*from, bare_jid(a.jid))))
          st.set_attr("from", a.jid);
        if (st.name == "message" && !st.child("thread", xml::kNsClient))
          st.add_text_child("thread", rec.thread);
        if (rec.id != group_id)
          flush();
        group_id = rec.id;
        group_peer = peer;
        group.push_back(&st);
      }
    } catch (const Failure&) {
      flush();  // what came before the bad stanza is still encrypted and written
      throw;
    }
    flush();
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
