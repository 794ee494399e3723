// Two parties in one process: every flow end to end, stanzas, re-keys, termination, failures.
#include <catch2/catch.hpp>

#include "session/negotiation.hpp"

using namespace esession;

namespace {

struct Pair {
  Established alice, bob;
  std::string thread;
};

PartyConfig party(const char* jid) {
  PartyConfig p;
  p.jid = jid;
  p.policy.groups = {14};
  return p;
}

Result<Pair> negotiate(PartyConfig a, PartyConfig b, RandomSource& rng) {
  ES_ASSIGN(auto started, Negotiation::start(a, b.jid, rng));
  xml::Element offer = started.second.send.at(0);
  offer.set_attr("from", a.jid);
  ES_ASSIGN(auto responded, Negotiation::respond(b, offer, rng));
  ES_ASSIGN(Step m3, started.first.receive(responded.second.send.at(0), rng));
  ES_ASSIGN(Step m4, responded.first.receive(m3.send.at(0), rng));
  ES_ASSIGN(Step done, started.first.receive(m4.send.at(0), rng));
  if (!done.established || !m4.established)
    return fail(Errc::internal, "not established");
  return Pair{std::move(*done.established), std::move(*m4.established), started.first.thread()};
}

xml::Element make_stanza(int i, const std::string& to, const std::string& thread) {
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
void exchange(Pair& p, int n, RandomSource& rng) {
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

void terminate_both(Pair& p, RandomSource& rng) {
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

}  // namespace

TEST_CASE("4-message XEP-0116 session: 100+ stanzas each way, re-keys, termination") {
  SystemRandom rng;
  auto p = negotiate(party("alice@example.org/pda"), party("bob@example.com/laptop"), rng);
  REQUIRE(p);
  CHECK(p->alice.sas == p->bob.sas);
  CHECK(p->alice.sas.size() == 5);
  CHECK(ct_equal(view(p->alice.new_retained_secret), view(p->bob.new_retained_secret)));
  CHECK(p->alice.session->suite().cipher == CipherAlg::aes256_ctr);
  exchange(*p, 110, rng);
  terminate_both(*p, rng);
}

TEST_CASE("XEP-0217 profile and sha512/aes128 choices negotiate") {
  SystemRandom rng;
  PartyConfig a = party("alice@example.org/pda"), b = party("bob@example.com/laptop");
  a.policy.xep0217 = true;
  a.policy.stanzas = b.policy.stanzas = {"message", "presence", "iq"};
  auto p = negotiate(a, b, rng);
  REQUIRE(p);
  CHECK(p->alice.session->suite().cipher == CipherAlg::aes128_ctr);
  CHECK(p->alice.session->suite().rekey_freq == 4294967295u);
  // XEP-0217 fixes rekey_freq to 2^32-1: re-keying is refused, stanzas still flow.
  CHECK(p->alice.session->rekey(rng).error().code == Errc::wrong_state);

  PartyConfig c = party("alice@example.org/pda"), d = party("bob@example.com/laptop");
  c.policy.hashes = {HashAlg::sha512};
  c.policy.ciphers = {CipherAlg::aes128_ctr};
  auto q = negotiate(c, d, rng);
  REQUIRE(q);
  CHECK(q->bob.session->suite().hash == HashAlg::sha512);
  exchange(*q, 100, rng);
  terminate_both(*q, rng);
}

TEST_CASE("Gajim-compatible mode talks to itself") {
  SystemRandom rng;
  PartyConfig a = party("alice@example.org/pda"), b = party("bob@example.com/laptop");
  a.policy.compat = b.policy.compat = Compat::gajim;
  a.policy.stanzas = b.policy.stanzas = {"message"};
  auto p = negotiate(a, b, rng);
  REQUIRE(p);
  xml::Element st("message", std::string(xml::kNsClient));
  st.add_text_child("body", "\xc3\xa9t\xc3\xa9");  // G5a: padded by characters
  auto enc = p->alice.session->encrypt(st, rng);
  REQUIRE(enc);
  auto dec = p->bob.session->decrypt(enc.value());
  REQUIRE(dec);
  CHECK(dec->stanza.child("body", xml::kNsClient)->text_content() == "\xc3\xa9t\xc3\xa9");
  auto t = p->alice.session->terminate(rng);  // T1: in clear, no acknowledgement
  REQUIRE(t);
  CHECK_FALSE(t->child("c", xml::kNsC));
  auto r = p->bob.session->decrypt(t.value());
  REQUIRE(r);
  CHECK(r->terminated);
  CHECK_FALSE(r->reply);
}

TEST_CASE("retained secrets carry into the next session; OSS mismatch is detected") {
  SystemRandom rng;
  PartyConfig a = party("alice@example.org/pda"), b = party("bob@example.com/laptop");
  auto first = negotiate(a, b, rng);
  REQUIRE(first);
  CHECK_FALSE(first->alice.srs_index);
  CHECK_FALSE(first->bob.srs_index);
  a.retained = {SecretBytes(32, 9), first->alice.new_retained_secret};
  b.retained = {first->bob.new_retained_secret};
  auto second = negotiate(a, b, rng);
  REQUIRE(second);
  REQUIRE(second->alice.srs_index);
  CHECK(*second->alice.srs_index == 1);
  REQUIRE(second->bob.srs_index);
  CHECK(*second->bob.srs_index == 0);
  CHECK_FALSE(
      ct_equal(view(second->alice.new_retained_secret), view(first->alice.new_retained_secret)));
  exchange(*second, 10, rng);

  // The secret held for another JID is found too (XEP-0116 §4.7.3).
  PartyConfig b2 = party("bob@example.com/laptop");
  b2.retained_other = {second->bob.new_retained_secret};
  a.retained = {second->alice.new_retained_secret};
  auto third = negotiate(a, b2, rng);
  REQUIRE(third);
  CHECK(third->bob.srs_from_other);

  // Same OSS: fine. Different OSS: Alice's check of Bob's identity fails.
  PartyConfig c = party("alice@example.org/pda"), d = party("bob@example.com/laptop");
  c.oss = secret(view(std::string_view("correct horse")));
  d.oss = secret(view(std::string_view("correct horse")));
  REQUIRE(negotiate(c, d, rng));
  d.oss = secret(view(std::string_view("battery staple")));
  auto bad = negotiate(c, d, rng);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::auth_failed);
}

TEST_CASE("a mismatched retained secret is detected only as no continuity") {
  SystemRandom rng;
  PartyConfig a = party("alice@example.org/pda"), b = party("bob@example.com/laptop");
  a.retained = {SecretBytes(32, 1)};
  b.retained = {SecretBytes(32, 2)};
  auto p = negotiate(a, b, rng);
  REQUIRE(p);
  CHECK_FALSE(p->alice.srs_index);
  CHECK_FALSE(p->bob.srs_index);
}

TEST_CASE("option selection and rejection") {
  SystemRandom rng;
  PartyConfig a = party("alice@example.org/pda"), b = party("bob@example.com/laptop");
  a.policy.groups = {16, 15, 14};
  b.policy.groups = {14, 15};
  auto p = negotiate(a, b, rng);
  REQUIRE(p);
  CHECK(p->alice.session->suite().modp == 15);  // Alice's preference among Bob's

  // No common group: not-acceptable naming modp, all state gone.
  b.policy.groups = {18};
  auto started = Negotiation::start(a, b.jid, rng);
  REQUIRE(started);
  std::optional<xml::Element> reply;
  auto r = Negotiation::respond(b, started->second.send.at(0), rng, a.jid, &reply);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::not_acceptable);
  REQUIRE(reply);
  std::string w = xml::serialize(*reply);
  CHECK(w.find("<not-acceptable xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"/>") !=
        std::string::npos);
  CHECK(w.find("var=\"modp\"") != std::string::npos);
  // Alice learns of the refusal and is done.
  auto back = started->first.receive(*reply, rng);
  REQUIRE_FALSE(back);
  CHECK(started->first.failed());

  // Weak groups are refused unless allowed.
  a.policy.groups = {5};
  CHECK(Negotiation::start(a, b.jid, rng).error().code == Errc::not_acceptable);
  a.policy.allow_weak_groups = b.policy.allow_weak_groups = true;
  b.policy.groups = {5};
  REQUIRE(negotiate(a, b, rng));

  // A 3-message offer gets feature-not-implemented naming dhkeys.
  xml::Element offer =
      Negotiation::start(party("alice@example.org/pda"), b.jid, rng)->second.send.at(0);
  xml::Element* x = offer.child("feature", xml::kNsFeatureNeg)->child("x", xml::kNsData);
  for (auto& f : x->children)
    if (f.attr_or("var") == "dhhashes")
      f.set_attr("var", "dhkeys");
  reply.reset();
  auto r3 = Negotiation::respond(party("bob@example.com/laptop"), offer, rng, a.jid, &reply);
  REQUIRE_FALSE(r3);
  REQUIRE(reply);
  CHECK(xml::serialize(*reply).find("feature-not-implemented") != std::string::npos);
}
