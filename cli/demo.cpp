#include "demo.hpp"

#include <cstdio>
#include <string>

#include "session/negotiation.hpp"

namespace esession::cli {

namespace {

// show prints a stanza as it goes on the wire (in Gajim mode as Gajim writes it).
void show(const char* who, const char* what, const xml::Element& e, bool gajim) {
  std::printf("%s %s\n  %s\n", who, what,
              xml::serialize(e, {}, wire_style(gajim ? Compat::gajim : Compat::spec)).c_str());
}

int die(const Error& e) {
  std::fprintf(stderr, "esession: error: %s (%s)\n", e.detail.c_str(), errc_name(e.code));
  return 1;
}

}  // namespace

int run_demo(bool gajim) {
  SystemRandom rng;
  PartyConfig alice, bob;
  alice.jid = "alice@example.org/pda";
  bob.jid = "bob@example.com/laptop";
  if (gajim) {
    alice.policy.compat = bob.policy.compat = Compat::gajim;
    alice.policy.groups = bob.policy.groups = {14};
    alice.policy.stanzas = bob.policy.stanzas = {"message"};
    alice.policy.logging = bob.policy.logging = {"may", "mustnot"};
  }
  std::printf("== XEP-0116 4-message negotiation (%s mode)\n", gajim ? "Gajim" : "spec");
  auto a = Negotiation::start(alice, bob.jid, rng);
  if (!a)
    return die(a.error());
  xml::Element m1 = a->second.send.at(0);
  m1.set_attr("from", alice.jid);
  show("alice -> bob", "(1) offer", m1, gajim);
  auto b = Negotiation::respond(bob, m1, rng);
  if (!b)
    return die(b.error());
  show("bob -> alice", "(2) response", b->second.send.at(0), gajim);
  auto m3 = a->first.receive(b->second.send.at(0), rng);
  if (!m3)
    return die(m3.error());
  show("alice -> bob", "(3) accept + identity", m3->send.at(0), gajim);
  auto m4 = b->first.receive(m3->send.at(0), rng);
  if (!m4)
    return die(m4.error());
  show("bob -> alice", "(4) identity", m4->send.at(0), gajim);
  auto done = a->first.receive(m4->send.at(0), rng);
  if (!done)
    return die(done.error());
  Established& ea = *done->established;
  Established& eb = *m4->established;
  std::printf("\nalice SAS: %s    bob SAS: %s    (compare them by voice once)\n\n", ea.sas.c_str(),
              eb.sas.c_str());

  std::printf("== XEP-0200 encrypted stanzas\n");
  struct Line {
    bool from_alice;
    const char* kind;
    const char* text;
  };
  const Line lines[] = {{true, "message", "Hello, Bob!"},
                        {false, "message", "Hi Alice. The SAS matches."},
                        {true, "presence", "away"}};
  for (const Line& l : lines) {
    if (gajim && std::string(l.kind) != "message")
      continue;  // Gajim encrypts messages only
    Session& snd = l.from_alice ? *ea.session : *eb.session;
    Session& rcv = l.from_alice ? *eb.session : *ea.session;
    xml::Element st(l.kind, std::string(xml::kNsClient));
    st.set_attr("to", l.from_alice ? bob.jid : alice.jid);
    if (std::string(l.kind) == "message") {
      st.set_attr("type", "chat");
      st.add_text_child("thread", a->first.thread());
      st.add_text_child("body", l.text);
    } else {
      st.add_text_child("show", l.text);
    }
    auto enc = snd.encrypt(st, rng);
    if (!enc)
      return die(enc.error());
    show(l.from_alice ? "alice -> bob" : "bob -> alice", "encrypted", enc.value(), gajim);
    auto dec = rcv.decrypt(enc.value());
    if (!dec)
      return die(dec.error());
    std::printf("  decrypted by %s: %s\n", l.from_alice ? "bob" : "alice",
                xml::serialize(dec->stanza).c_str());
  }
  std::printf("\n== termination\n");
  auto t = ea.session->terminate(rng);
  if (!t)
    return die(t.error());
  show("alice -> bob", "terminate", t.value(), gajim);
  auto ack = eb.session->decrypt(t.value());
  if (!ack)
    return die(ack.error());
  if (ack->reply) {
    show("bob -> alice", "acknowledge", *ack->reply, gajim);
    auto fin = ea.session->decrypt(*ack->reply);
    if (!fin)
      return die(fin.error());
  }
  std::printf("session ended on both sides\n");
  return 0;
}

}  // namespace esession::cli

#include "commands.hpp"

namespace esession::cli {

void add_demo(CLI::App& app, Context&, Action& action) {
  auto gajim = std::make_shared<bool>(false);
  auto* c = app.add_subcommand(
      "demo", "negotiate between two in-process parties and print every stanza (no home used)");
  c->add_flag("--gajim", *gajim, "use the Gajim-compatible conventions");
  c->callback([&action, gajim] { action = [gajim] { return run_demo(*gajim); }; });
}

}  // namespace esession::cli
