// esession encrypt / decrypt / rekey / terminate: the XEP-0200 filters.
#include <cerrno>
#include <cstring>
#include <map>
#include <variant>

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

// Stanzas already waiting in the input are handled as one batch: one transaction per session
// and batch, committed before any output of the batch is written.
constexpr size_t kBatch = 512;

void write_all(const std::vector<xml::Element>& out, FILE* f) {
  std::string buf;
  for (const auto& e : out) {
    buf += xml::serialize(e);
    buf += '\n';
  }
  if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size() || std::fflush(f) != 0)
    fail_with(Errc::io, std::string("writing output: ") + std::strerror(errno));
}

// SessionCache remembers, within one batch, which session each (peer, thread) uses.
class SessionCache {
 public:
  explicit SessionCache(Context& ctx) : m_ctx(ctx) {}
  const SessionRecord& find(const std::string& peer, const xml::Element& st) {
    const xml::Element* th = st.child("thread", xml::kNsClient);
    std::string key = peer + '\0' + (th ? th->text_content() : std::string());
    auto it = m_map.find(key);
    if (it == m_map.end())
      it = m_map.emplace(key, find_session_for(m_ctx, peer, st)).first;
    return it->second;
  }
  void clear() { m_map.clear(); }

 private:
  Context& m_ctx;
  std::map<std::string, SessionRecord> m_map;
};

struct Encrypted {
  std::vector<xml::Element> out;
  std::optional<Error> error;  // the stanza after the last one in |out| failed
};

int run_encrypt(Context& ctx, const FilterOpts& o) {
  StanzaInput in;
  widen_pipe(1);
  SystemRandom rng;
  const Account& a = ctx.account();
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
      write_all(e.out, stdout);
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
        const SessionRecord& rec = cache.find(peer, st);
        st.set_attr("to", peer);
        if (!st.attr("from"))
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

struct Decrypted {
  std::vector<std::variant<Received, Error>> results;
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
    std::fprintf(stderr, "esession: error: %s\n", f.error.detail.c_str());
    if (!f.hint.empty())
      std::fprintf(stderr, "esession: hint: %s\n", f.hint.c_str());
    ctx.status("ERROR", std::string(errc_name(f.error.code)) + (peer.empty() ? "" : " " + peer));
    if (worst == kExitOk)
      worst = exit_for(f.error.code);
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
          write_all(answers, replies);
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
          ctx.status("REKEYED", group_peer + " " + group_thread);
        if (r.terminated) {
          ctx.status("TERMINATED", group_peer + " " + group_thread);
          ctx.info("the session with " + group_peer + " has ended");
        }
      }
      write_all(out, stdout);
      write_all(answers, replies);
      group.clear();
    };
    for (const auto& st : batch) {
      std::string peer = o.peer.empty() ? st.attr_or("from") : o.peer;
      try {
        if (peer.empty())
          fail_with(Errc::malformed, "stanza without a 'from' attribute",
                    "give the peer with --from");
        if (is_negotiation_stanza(st)) {
          ctx.status("NEGOTIATION_REQUEST", peer);
          fail_with(Errc::wrong_state, "a negotiation request from " + peer + " (not decrypted)",
                    "answer it with: esession respond");
        }
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
