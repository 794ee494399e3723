// The genuine traffic fuzz_session mutates: two in-process sessions (spec and Gajim mode)
// established with a deterministic RandomSource, and for each stanza one party sent, a copy of
// the receiving session as it was just before the stanza arrived.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.hpp"

namespace esession::fuzz {

struct DecryptCase {
  std::string label;                // names the seed files
  std::shared_ptr<Session> before;  // the receiver before the stanza (copied for each run)
  xml::Element stanza;              // the genuine stanza
  std::string wire;                 // serialize(stanza)
  Bytes plaintext;                  // what the genuine decryption yielded
  bool rekeyed = false;
  bool terminated = false;
};

namespace detail {

struct Pair {
  std::unique_ptr<Session> alice, bob;
  std::string thread;
};

inline Pair establish(Compat compat, RandomSource& rng) {
  PartyConfig a, b;
  a.jid = kAliceJid;
  b.jid = kBobJid;
  for (PartyConfig* p : {&a, &b}) {
    p->policy.compat = compat;
    p->policy.groups = {14};
    if (compat == Compat::gajim) {
      p->policy.stanzas = {"message"};
      p->policy.logging = {"may", "mustnot"};
    }
  }
  auto started = Negotiation::start(a, b.jid, rng);
  check(started.has_value(), "fixture: start failed");
  xml::Element offer = started->second.send.at(0);
  offer.set_attr("from", a.jid);
  auto responded = Negotiation::respond(b, offer, rng);
  check(responded.has_value(), "fixture: respond failed");
  auto m3 = started->first.receive(responded->second.send.at(0), rng);
  check(m3.has_value(), "fixture: message 3 failed");
  auto m4 = responded->first.receive(m3->send.at(0), rng);
  check(m4.has_value() && m4->established.has_value(), "fixture: message 4 failed");
  auto done = started->first.receive(m4->send.at(0), rng);
  check(done.has_value() && done->established.has_value(), "fixture: completion failed");
  return Pair{std::move(done->established->session), std::move(m4->established->session),
              started->first.thread()};
}

inline xml::Element chat(const char* to, const std::string& thread, const char* body) {
  xml::Element m("message", std::string(xml::kNsClient));
  m.set_attr("to", to);
  m.set_attr("type", "chat");
  m.add_text_child("thread", thread);
  m.add_text_child("body", body);
  return m;
}

// deliver records a case for |stanza| arriving at |rcv| and then delivers it.
inline Received deliver(std::vector<DecryptCase>& cases, std::string label, Session& rcv,
                        const xml::Element& stanza) {
  DecryptCase c;
  c.label = std::move(label);
  c.before = std::make_shared<Session>(rcv);
  c.stanza = stanza;
  c.wire = xml::serialize(stanza);
  auto r = rcv.decrypt(stanza);
  check(r.has_value(), "fixture: genuine stanza does not decrypt");
  c.plaintext.assign(r->plaintext.begin(), r->plaintext.end());
  c.rekeyed = r->rekeyed;
  c.terminated = r->terminated;
  cases.push_back(std::move(c));
  return std::move(r).value();
}

inline xml::Element must(Result<xml::Element> r, const char* what) {
  check(r.has_value(), what);
  return std::move(r).value();
}

}  // namespace detail

// make_decrypt_cases builds every case; deterministic, so seed files made from it stay valid
// for the fuzz target built from the same sources.
inline std::vector<DecryptCase> make_decrypt_cases() {
  using detail::chat;
  using detail::deliver;
  using detail::must;
  std::vector<DecryptCase> cases;
  SeededRandom rng(0x5e55105);

  detail::Pair s = detail::establish(Compat::spec, rng);
  Session& alice = *s.alice;
  Session& bob = *s.bob;
  deliver(cases, "spec-message", bob,
          must(alice.encrypt(chat(kBobJid, s.thread, "Hello, Bob! <&> \xc3\xa9"), rng), "enc 1"));
  deliver(cases, "spec-reply", alice,
          must(bob.encrypt(chat(kAliceJid, s.thread, "Hi Alice."), rng), "enc 2"));
  xml::Element presence("presence", std::string(xml::kNsClient));
  presence.set_attr("to", kBobJid);
  presence.add_text_child("show", "away");
  presence.add_text_child("status", "out for lunch");
  deliver(cases, "spec-presence", bob, must(alice.encrypt(presence, rng), "enc 3"));
  xml::Element iq("iq", std::string(xml::kNsClient));
  iq.set_attr("to", kBobJid);
  iq.set_attr("type", "get");
  iq.set_attr("id", "v1");
  iq.add(xml::Element("query", "jabber:iq:version"));
  deliver(cases, "spec-iq", bob, must(alice.encrypt(iq, rng), "enc 4"));
  deliver(cases, "spec-rekey", bob, must(alice.rekey(rng), "rekey A"));
  // Bob's next stanza acknowledges the re-key with <new/>; Alice's next one publishes <old/>.
  deliver(cases, "spec-new", alice,
          must(bob.encrypt(chat(kAliceJid, s.thread, "new keys"), rng), "enc 5"));
  deliver(cases, "spec-old", bob,
          must(alice.encrypt(chat(kBobJid, s.thread, "old keys out"), rng), "enc 6"));
  deliver(cases, "spec-rekey-bob", alice, must(bob.rekey(rng), "rekey B"));
  Received t = deliver(cases, "spec-terminate", bob, must(alice.terminate(rng), "terminate"));
  check(t.reply.has_value(), "fixture: no termination acknowledgement");
  deliver(cases, "spec-terminate-ack", alice, *t.reply);

  detail::Pair g = detail::establish(Compat::gajim, rng);
  deliver(cases, "gajim-message", *g.bob,
          must(g.alice->encrypt(chat(kBobJid, g.thread, "\xc3\xa9t\xc3\xa9 (G5a)"), rng), "g1"));
  deliver(cases, "gajim-reply", *g.alice,
          must(g.bob->encrypt(chat(kAliceJid, g.thread, "reply"), rng), "g2"));
  deliver(cases, "gajim-terminate", *g.bob, must(g.alice->terminate(rng), "g3"));
  return cases;
}

}  // namespace esession::fuzz
