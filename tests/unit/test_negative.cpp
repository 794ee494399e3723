// Negative cases: one flipped bit in every field of every negotiation message, and in the
// <data/>, <mac/> and <key/> of stanzas; replayed, reordered and dropped stanzas.
#include <catch2/catch.hpp>

#include "session/negotiation.hpp"

using namespace esession;

namespace {

// flip changes one bit of a field value: inside the decoded bytes for Base64 values, else in
// the value's last character.
std::string flip(const std::string& v) {
  auto b = unbase64(v);
  if (b && b->size() >= 8) {
    Bytes x = b.value();
    x[x.size() / 2] ^= 0x01;
    return base64(x);
  }
  std::string out = v.empty() ? std::string("x") : v;
  out.back() = static_cast<char>(out.back() ^ 0x01);
  return out;
}

// vars lists the fields of the form inside a negotiation message.
std::vector<std::string> vars(const xml::Element& msg) {
  const xml::Element* w = msg.child("feature", xml::kNsFeatureNeg);
  if (!w)
    w = msg.child("init", xml::kNsInit);
  std::vector<std::string> out;
  for (const auto* f : w->child("x", xml::kNsData)->element_children())
    out.push_back(f->attr_or("var"));
  return out;
}

xml::Element tamper(xml::Element msg, const std::string& var) {
  xml::Element* w = msg.child("feature", xml::kNsFeatureNeg);
  if (!w)
    w = msg.child("init", xml::kNsInit);
  for (auto& f : w->child("x", xml::kNsData)->children) {
    if (f.attr_or("var") != var)
      continue;
    for (auto& c : f.children) {
      xml::Element* v = c.is("value", xml::kNsData) ? &c : nullptr;
      if (c.is("option", xml::kNsData))
        v = c.child("value", xml::kNsData);
      if (!v)
        continue;
      std::string t = v->text_content();
      v->children.clear();
      v->children.push_back(xml::Element::text_node(flip(t)));
      return msg;
    }
  }
  return msg;
}

// run negotiates, replacing message |k| (1..4) by its tampered form; returns true if both
// parties ended up established with the same SAS (which must never happen).
bool run_tampered(int k, const std::string& var, bool& failed_somewhere) {
  SystemRandom rng;
  PartyConfig a, b;
  a.jid = "alice@example.org/pda";
  b.jid = "bob@example.com/laptop";
  a.policy.groups = b.policy.groups = {14};
  auto t = [&](int n, xml::Element m) { return n == k ? tamper(std::move(m), var) : m; };
  auto s = Negotiation::start(a, b.jid, rng);
  REQUIRE(s);
  auto r = Negotiation::respond(b, t(1, s->second.send.at(0)), rng, a.jid);
  if (!r)
    return (failed_somewhere = true, false);
  auto m3 = s->first.receive(t(2, r->second.send.at(0)), rng);
  if (!m3)
    return (failed_somewhere = true, s->first.failed() ? false : true);
  auto m4 = r->first.receive(t(3, m3->send.at(0)), rng);
  if (!m4) {
    failed_somewhere = true;
    CHECK(r->first.failed());
    // Whatever comes next, a failed negotiation refuses it.
    CHECK_FALSE(r->first.receive(m3->send.at(0), rng));
    return false;
  }
  auto done = s->first.receive(t(4, m4->send.at(0)), rng);
  if (!done) {
    failed_somewhere = true;
    CHECK(s->first.failed());
    return false;
  }
  // Both established: only acceptable if the tampering could not matter, and then the SAS must
  // still agree; a changed form always changes mac_A/mac_B, so this is a test failure.
  return done->established->sas == m4->established->sas;
}

struct Live {
  std::unique_ptr<Session> a, b;
  std::string thread;
};

Live live_session(RandomSource& rng) {
  PartyConfig a, b;
  a.jid = "alice@example.org/pda";
  b.jid = "bob@example.com/laptop";
  a.policy.groups = b.policy.groups = {14};
  auto s = Negotiation::start(a, b.jid, rng);
  auto r = Negotiation::respond(b, s->second.send.at(0), rng, a.jid);
  auto m3 = s->first.receive(r->second.send.at(0), rng);
  auto m4 = r->first.receive(m3->send.at(0), rng);
  auto done = s->first.receive(m4->send.at(0), rng);
  return {std::move(done->established->session), std::move(m4->established->session),
          s->first.thread()};
}

xml::Element chat(const std::string& body, const std::string& thread) {
  xml::Element m("message", std::string(xml::kNsClient));
  m.set_attr("to", "bob@example.com/laptop");
  m.add_text_child("thread", thread);
  m.add_text_child("body", body);
  return m;
}

xml::Element flip_child(xml::Element st, const char* name) {
  xml::Element* v = st.child("c", xml::kNsC)->child(name, xml::kNsC);
  REQUIRE(v);
  std::string t = v->text_content();
  v->children.clear();
  v->children.push_back(xml::Element::text_node(flip(t)));
  return st;
}

}  // namespace

TEST_CASE("a flipped bit in any field of any negotiation message is detected") {
  SystemRandom rng;
  PartyConfig a, b;
  a.jid = "alice@example.org/pda";
  b.jid = "bob@example.com/laptop";
  a.policy.groups = b.policy.groups = {14};
  auto s = Negotiation::start(a, b.jid, rng);
  auto r = Negotiation::respond(b, s->second.send.at(0), rng, a.jid);
  auto m3 = s->first.receive(r->second.send.at(0), rng);
  auto m4 = r->first.receive(m3->send.at(0), rng);
  const xml::Element* msgs[] = {&s->second.send.at(0), &r->second.send.at(0), &m3->send.at(0),
                                &m4->send.at(0)};
  int cases = 0;
  for (int k = 1; k <= 4; ++k) {
    for (const auto& var : vars(*msgs[k - 1])) {
      DYNAMIC_SECTION("message " << k << " field " << var) {
        bool failed = false;
        bool agreed = run_tampered(k, var, failed);
        // Tampering either makes the negotiation fail, or (for a field whose flipped value is
        // still an acceptable choice) is caught by the form MACs; never silently established.
        CHECK(failed);
        CHECK_FALSE(agreed);
      }
      ++cases;
    }
  }
  CHECK(cases >= 40);
}

TEST_CASE("stanza tampering, replay, reordering and loss destroy the session") {
  SystemRandom rng;
  for (const char* part : {"data", "mac"}) {
    DYNAMIC_SECTION("flipped <" << part << "/>") {
      Live l = live_session(rng);
      auto e = l.a->encrypt(chat("hi", l.thread), rng);
      auto r = l.b->decrypt(flip_child(e.value(), part));
      REQUIRE_FALSE(r);
      CHECK(r.error().code == Errc::auth_failed);
      CHECK_FALSE(l.b->can_receive());
      // The genuine stanza is refused too: the state is gone, not half-updated.
      CHECK(l.b->decrypt(e.value()).error().code == Errc::terminated);
    }
  }
  for (const char* spelling : {" ", "\t", "\n"}) {
    DYNAMIC_SECTION("<data/> with whitespace around its Base64 (" << int(spelling[0]) << ")") {
      // formats §1.3: any other spelling is malformed input, found before the MAC is checked
      // (it used to be trimmed away, or to fail as a MAC mismatch).
      Live l = live_session(rng);
      xml::Element st = l.a->encrypt(chat("hi", l.thread), rng).value();
      xml::Element* data = st.child("c", xml::kNsC)->child("data", xml::kNsC);
      data->children.front().text = spelling + data->children.front().text;
      auto r = l.b->decrypt(st);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == Errc::malformed);
    }
  }
  SECTION("flipped <key/>") {
    Live l = live_session(rng);
    auto k = l.a->rekey(rng);
    REQUIRE(k);
    auto r = l.b->decrypt(flip_child(k.value(), "key"));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::auth_failed);
  }
  SECTION("replayed stanza") {
    Live l = live_session(rng);
    auto e = l.a->encrypt(chat("once", l.thread), rng);
    REQUIRE(l.b->decrypt(e.value()));
    auto again = l.b->decrypt(e.value());
    REQUIRE_FALSE(again);
    CHECK(again.error().code == Errc::auth_failed);
  }
  SECTION("reordered stanzas") {
    Live l = live_session(rng);
    auto e1 = l.a->encrypt(chat("one", l.thread), rng);
    auto e2 = l.a->encrypt(chat("two", l.thread), rng);
    CHECK_FALSE(l.b->decrypt(e2.value()));
    CHECK_FALSE(l.b->decrypt(e1.value()));
  }
  SECTION("dropped stanza") {
    Live l = live_session(rng);
    auto e1 = l.a->encrypt(chat("one", l.thread), rng);
    auto e2 = l.a->encrypt(chat("two", l.thread), rng);
    (void)e1;
    CHECK_FALSE(l.b->decrypt(e2.value()));
  }
  SECTION("content outside <c/> is not trusted") {
    Live l = live_session(rng);
    auto e = l.a->encrypt(chat("real", l.thread), rng);
    xml::Element st = e.value();
    st.add_text_child("body", "injected");
    auto r = l.b->decrypt(st);
    REQUIRE(r);
    auto* body = r->stanza.child("body", xml::kNsClient);
    REQUIRE(body);
    CHECK(body->text_content() == "real");
    CHECK(r->stanza.count_children("body", xml::kNsClient) == 1);
  }
  SECTION("unencrypted termination is refused in spec mode") {
    Live l = live_session(rng);
    xml::Element t("message", std::string(xml::kNsClient));
    t.add_text_child("thread", l.thread);
    t.add(terminate_form("submit"));
    CHECK(l.b->decrypt(t).error().code == Errc::auth_failed);
    // Unauthenticated, it does not end the session (formats §15.7): a real stanza still opens.
    auto enc = l.a->encrypt(chat("still here", l.thread), rng);
    REQUIRE(enc);
    auto r = l.b->decrypt(*enc);
    REQUIRE(r);
    CHECK(r->stanza.child("body", xml::kNsClient)->text_content() == "still here");
  }
}
