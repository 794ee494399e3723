#include "negotiation.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "util/fs.hpp"

namespace esession::cli {

namespace {

std::vector<PubkeyMode> modes(const std::string& list, std::vector<PubkeyMode> dflt) {
  if (list.empty())
    return dflt;
  std::vector<PubkeyMode> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    std::string item =
        list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    out.push_back(check(pubkey_from_name(item), "identification is none, key or hash"));
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return out;
}

SecretBytes read_oss(const NegOpts& o) {
  return read_secret(o.oss_fd, "esession: other shared secret: ", "other shared secret",
                     "use --oss-fd N");
}

// read_attachment reads the one <message/> of |path| that --attach names: it rides, encrypted,
// on our last negotiation message, so it must be addressed to the peer (or to no one).
xml::Element read_attachment(const std::string& path, const std::string& peer_jid) {
  std::vector<xml::Element> all = read_stanza_file(path, "--attach", 2);
  if (all.size() != 1)
    fail_with(Errc::malformed, "--attach " + path + " must hold exactly one <message/> stanza");
  std::optional<xml::Element> m = std::move(all.front());
  if (m->name != "message")
    fail_with(Errc::malformed, "--attach " + path + " holds a <" + m->name +
                                   "/>; only a <message/> can ride on a "
                                   "negotiation message (XEP-0116)");
  if (const std::string* to = m->attr("to"); to && !same_jid(*to, peer_jid))
    fail_with(Errc::malformed, "--attach " + path + " is addressed to " + printable(*to, 256) +
                                   ", not to " + peer_jid);
  if (m->child("c", xml::kNsC))
    fail_with(Errc::malformed, "--attach " + path + " is already encrypted");
  return *std::move(m);
}

}  // namespace

Prepared prepare(Context& ctx, const NegOpts& o, const std::string& peer_jid, bool initiator) {
  Prepared p;
  Policy& pol = p.opts.policy;
  if (o.gajim) {
    pol.compat = Compat::gajim;
    pol.stanzas = {"message"};
    pol.logging = {"may", "mustnot"};
  }
  if (o.flow != 3 && o.flow != 4)
    fail_with(Errc::malformed, "--flow is 3 or 4");
  pol.flow = o.flow == 3 ? Flow::three_message : Flow::four_message;
  pol.accept_three_message = !o.only_four;
  pol.xep0217 = o.xep0217;
  pol.allow_weak_groups = o.allow_weak;
  if (!o.groups.empty())
    pol.groups = o.groups;
  if (!o.ciphers.empty()) {
    pol.ciphers.clear();
    for (const auto& n : o.ciphers)
      pol.ciphers.push_back(check(cipher_from_name(n), "ciphers: aes256-ctr, aes128-ctr"));
  }
  if (!o.hashes.empty()) {
    pol.hashes.clear();
    for (const auto& n : o.hashes)
      pol.hashes.push_back(check(hash_from_name(n), "hashes: sha256, sha512"));
  }
  if (!o.stanzas.empty())
    pol.stanzas = o.stanzas;
  pol.rekey_freq = o.rekey_freq;
  p.signer = default_signer(ctx);
  p.opts.signer = p.signer.get();
  // Identification: by default, with a key if we have one, and SAS otherwise; the peer may
  // identify any way (three-message: never none).
  std::vector<PubkeyMode> ours = p.signer
                                     ? std::vector<PubkeyMode>{PubkeyMode::key, PubkeyMode::none}
                                     : std::vector<PubkeyMode>{PubkeyMode::none};
  std::vector<PubkeyMode> theirs = {PubkeyMode::hash, PubkeyMode::key, PubkeyMode::none};
  ours = modes(o.identify, ours);
  theirs = modes(o.require, theirs);
  if (std::find(ours.begin(), ours.end(), PubkeyMode::none) == ours.end() && !p.signer)
    fail_with(Errc::unsupported, "identification by key needs a key",
              "make one with: esession key generate");
  pol.init_pubkey = initiator ? ours : theirs;
  pol.resp_pubkey = initiator ? theirs : ours;
  if (pol.flow == Flow::three_message && !p.signer)
    fail_with(Errc::unsupported, "the three-message flow needs a signing key",
              "make one with: esession key generate, or use --flow 4");
  p.opts.retain_days = o.retain_days;
  if (o.one_shot && (!initiator || o.flow != 3 || o.attach.empty()))
    fail_with(Errc::malformed, "--one-shot ends the session after the stanza --attach names",
              "it needs negotiate --flow 3 --attach FILE");
  if (!o.attach.empty()) {
    if (initiator && o.flow != 3)
      fail_with(Errc::malformed,
                "--attach: in the four-message flow the responder sends the last message",
                "use --flow 3, or let the responder attach with: esession respond --attach FILE");
    p.opts.content = read_attachment(o.attach, peer_jid);
    p.opts.terminate_after_content = o.one_shot;
  }
  if (o.oss_fd >= 0 || o.oss_prompt)
    p.opts.oss = read_oss(o);
  return p;
}

// deliver_content writes the stanzas the peer sent, encrypted, on its last negotiation message
// to --content-fd (standard output by default, after our own negotiation messages), each after
// its CONTENT event.
void deliver_content(Context& ctx, const NegOpts& o, Outcome& out) {
  FILE* file = nullptr;
  size_t next = 0;
  for (const Event& e : out.events) {
    if (e.kind == EventKind::content && !file) {
      file = stdout;
      if (o.content_fd != 1) {
        file = ::fdopen(o.content_fd, "w");
        if (!file)
          fail_with(Errc::io, "--content-fd " + std::to_string(o.content_fd) + " is not open");
      } else {
        ctx.info(
            "the peer sent a stanza with its last negotiation message; it is written to "
            "standard output (--content-fd N writes it elsewhere)");
      }
    }
    render(ctx, e);
    if (e.kind == EventKind::content && next < out.deliver.size())
      write_stanza(out.deliver[next++], file);
  }
  if (file && file != stdout)
    std::fflush(file);
}

int run_exchange(Context& ctx, const NegOpts& o, Endpoint& ep, Outcome out,
                 const std::string& peer_jid, StanzaInput& in) {
  SystemRandom rng;
  const std::string thread = out.thread;
  for (;;) {
    // What the engine returns is committed: the message that establishes the peer (Bob's
    // fourth, Alice's third in the three-message flow) leaves only once our session is
    // durable (DESIGN §4).
    for (const auto& m : out.send)
      write_stanza(m, stdout, out.style);
    if (out.error) {
      render(ctx, out.events);
      throw failure_of(out, peer_jid);
    }
    if (!ep.negotiating(thread)) {
      // The peer's stanzas on its last message are delivered as decrypt delivers (XEP-0116
      // §4.5, §4.6.4).
      deliver_content(ctx, o, out);
      return kExitOk;
    }
    render(ctx, out.events);
    std::optional<xml::Element> st;
    for (;;) {
      st = in.next(o.timeout * 1000);
      if (!st)
        fail_with(Errc::io, "the peer's input ended before the session was established",
                  "check that the peer's output reaches our input");
      const xml::Element* th = st->child("thread", xml::kNsClient);
      if (th && th->text_content() == thread)
        break;
      ctx.debug("ignoring a stanza of another conversation");
    }
    Batch b = ep.incoming(std::span<const xml::Element>(&*st, 1), rng);
    if (b.fatal)
      throw Failure{*b.fatal, {}};
    out = std::move(b.results.front());
  }
}

void add_common(CLI::App* c, NegOpts& o) {
  c->add_option("--groups", o.groups, "MODP groups in preference order (default 15,16,14)")
      ->delimiter(',');
  c->add_option("--ciphers", o.ciphers, "ciphers in preference order: aes256-ctr, aes128-ctr")
      ->delimiter(',');
  c->add_option("--hashes", o.hashes, "hashes in preference order: sha256, sha512")->delimiter(',');
  c->add_option("--stanzas", o.stanzas, "stanza kinds to encrypt: message, presence, iq")
      ->delimiter(',');
  c->add_option("--identify", o.identify,
                "how we identify, in preference order: key, hash, none (default: key if we "
                "have one, else none)");
  c->add_option("--require", o.require,
                "what we accept from the peer, in preference order (default hash,key,none)");
  c->add_flag("--gajim", o.gajim, "Gajim-compatible conventions (G1-G4, G5b, R1-R4, T1)");
  c->add_flag("--allow-weak-groups", o.allow_weak, "accept MODP groups 1, 2 and 5");
  c->add_option("--oss-fd", o.oss_fd, "read an other shared secret (a password) from this fd");
  c->add_flag("--oss-prompt", o.oss_prompt, "ask for an other shared secret on the terminal");
  c->add_option("--timeout", o.timeout, "seconds to wait for each answer (default 120)");
  c->add_option("--rekey-freq", o.rekey_freq, "minimum stanzas between re-keys (default 1)");
  c->add_option("--retain-days", o.retain_days,
                "use no retained secret older than this many days (default 90; 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  value_is(c->add_option("--attach", o.attach,
                         "a file holding one <message/> to send encrypted on our last "
                         "negotiation message"),
           ValueKind::file);
  c->add_option("--content-fd", o.content_fd,
                "write the stanza the peer sends on its last negotiation message here (default 1)");
}

}  // namespace esession::cli
