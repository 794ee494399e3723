// Helpers shared by the in-process two-party tests.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>

#include "session/negotiation.hpp"

namespace esession::test {

struct Pair {
  Established alice, bob;
  std::string thread;
};

inline PartyConfig party(const char* jid) {
  PartyConfig p;
  p.jid = jid;
  p.policy.groups = {14};
  return p;
}

// dump_wire appends |st| to the file named by ESESSION_WIRE_DUMP, if set (for the schema check).
inline void dump_wire(const xml::Element& st) {
  if (const char* path = std::getenv("ESESSION_WIRE_DUMP")) {
    std::ofstream out(path, std::ios::app);
    out << xml::serialize(st) << "\n";
  }
}

// negotiate runs a whole negotiation in the flow of a.policy.flow. |content| receives what the
// last message carried (a.content in the three-message flow, b.content in the four-message one).
// |wire|, when given, receives every negotiation stanza as serialized.
inline Result<Pair> negotiate(PartyConfig a, PartyConfig b, RandomSource& rng,
                              std::vector<Received>* content = nullptr,
                              std::vector<std::string>* wire = nullptr) {
  auto w = [&](const Step& s) {
    for (const auto& m : s.send) {
      if (wire)
        wire->push_back(xml::serialize(m));
      dump_wire(m);
    }
  };
  ES_ASSIGN(auto started, Negotiation::start(a, b.jid, rng));
  w(started.second);
  xml::Element offer = started.second.send.at(0);
  offer.set_attr("from", a.jid);
  ES_ASSIGN(auto responded, Negotiation::respond(b, offer, rng));
  w(responded.second);
  ES_ASSIGN(Step m3, started.first.receive(responded.second.send.at(0), rng));
  w(m3);
  if (a.policy.flow == Flow::three_message) {
    ES_ASSIGN(Step done, responded.first.receive(m3.send.at(0), rng));
    if (!m3.established || !done.established)
      return fail(Errc::internal, "not established");
    if (content)
      *content = std::move(done.content);
    return Pair{std::move(*m3.established), std::move(*done.established), started.first.thread()};
  }
  ES_ASSIGN(Step m4, responded.first.receive(m3.send.at(0), rng));
  w(m4);
  ES_ASSIGN(Step done, started.first.receive(m4.send.at(0), rng));
  if (!done.established || !m4.established)
    return fail(Errc::internal, "not established");
  if (content)
    *content = std::move(done.content);
  return Pair{std::move(*done.established), std::move(*m4.established), started.first.thread()};
}

inline xml::Element make_stanza(int i, const std::string& to, const std::string& thread) {
  const char* kinds[] = {"message", "presence", "iq"};
  xml::Element s(kinds[i % 3], std::string(xml::kNsClient));
  s.set_attr("to", to);
  s.set_attr("id", "s" + std::to_string(i));
  if (i % 3 == 0) {
    s.set_attr("type", "chat");
    s.add_text_child("thread", thread);
    s.add_text_child("body", "message number " + std::to_string(i) + " \xc3\xa9\xe2\x82\xac <&>");
  } else if (i % 3 == 1) {
    s.add_text_child("status", std::string(static_cast<size_t>(i % 40), 'x'));
  } else {
    s.set_attr("type", "get");
    xml::Element q("query", "jabber:iq:version");
    s.add(std::move(q));
  }
  return s;
}

// exchange sends |n| stanzas each way, alternating, re-keying every 10 stanzas from either side.
inline void exchange(Pair& p, int n, RandomSource& rng) {
  Session* sides[2] = {p.alice.session.get(), p.bob.session.get()};
  const char* jids[2] = {"bob@example.com/laptop", "alice@example.org/pda"};
  int rekeys = 0;
  for (int i = 0; i < 2 * n; ++i) {
    int from = i % 2;
    Session& snd = *sides[from];
    Session& rcv = *sides[1 - from];
    if (i % 10 == 9) {
      auto k = snd.rekey(rng);
      REQUIRE(k);
      auto r = rcv.decrypt(k.value());
      REQUIRE(r);
      CHECK(r->rekeyed);
      ++rekeys;
    }
    xml::Element st = make_stanza(i, jids[from], p.thread);
    auto enc = snd.encrypt(st, rng);
    REQUIRE(enc);
    // Nothing of the content is in clear.
    std::string wire = xml::serialize(enc.value());
    CHECK(wire.find("message number") == std::string::npos);
    CHECK(wire.find("jabber:iq:version") == std::string::npos);
    auto dec = rcv.decrypt(enc.value());
    REQUIRE(dec);
    CHECK(xml::serialize(dec->stanza) == xml::serialize(st));
  }
  CHECK(rekeys == 2 * n / 10);
}

inline void terminate_both(Pair& p, RandomSource& rng) {
  auto t = p.alice.session->terminate(rng);
  REQUIRE(t);
  CHECK_FALSE(p.alice.session->active());
  auto r = p.bob.session->decrypt(t.value());
  REQUIRE(r);
  CHECK(r->terminated);
  REQUIRE(r->reply);
  CHECK_FALSE(p.bob.session->can_receive());
  auto fin = p.alice.session->decrypt(*r->reply);
  REQUIRE(fin);
  CHECK(fin->terminated);
  CHECK_FALSE(p.alice.session->can_receive());
  xml::Element st = make_stanza(0, "bob@example.com/laptop", p.thread);
  CHECK(p.alice.session->encrypt(st, rng).error().code == Errc::terminated);
}

}  // namespace esession::test
