// Two parties in one process: every flow end to end, stanzas, re-keys, termination, failures.
#include <catch2/catch.hpp>

#include "helpers.hpp"
#include "session/v1/record.hpp"

using namespace esession;
using namespace esession::test;

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
  st.add_text_child("body", "\xc3\xa9t\xc3\xa9");  // non-ASCII: padded to 16 bytes
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

  // A 3-message offer to a responder that only does 4 messages gets feature-not-implemented
  // naming dhkeys; one whose identification is 'none' is not acceptable.
  xml::Element offer =
      Negotiation::start(party("alice@example.org/pda"), b.jid, rng)->second.send.at(0);
  xml::Element* x = offer.child("feature", xml::kNsFeatureNeg)->child("x", xml::kNsData);
  for (auto& f : x->children)
    if (f.attr_or("var") == "dhhashes")
      f.set_attr("var", "dhkeys");
  x->children.erase(std::remove_if(x->children.begin(), x->children.end(),
                                   [](auto& f) { return f.attr_or("var") == "sas_algs"; }),
                    x->children.end());
  PartyConfig only4 = party("bob@example.com/laptop");
  only4.policy.accept_three_message = false;
  reply.reset();
  auto r3 = Negotiation::respond(only4, offer, rng, a.jid, &reply);
  REQUIRE_FALSE(r3);
  REQUIRE(reply);
  CHECK(xml::serialize(*reply).find("feature-not-implemented") != std::string::npos);
  CHECK(xml::serialize(*reply).find("var=\"dhkeys\"") != std::string::npos);
  reply.reset();
  r3 = Negotiation::respond(party("bob@example.com/laptop"), offer, rng, a.jid, &reply);
  REQUIRE_FALSE(r3);
  REQUIRE(reply);
  CHECK(xml::serialize(*reply).find("not-acceptable") != std::string::npos);
  CHECK(xml::serialize(*reply).find("var=\"init_pubkey\"") != std::string::npos);
}

TEST_CASE("crossing re-keys: both sides keep talking, and no live MAC key is ever published") {
  SystemRandom rng;
  auto p = negotiate(party("alice@example.org/pda"), party("bob@example.com/laptop"), rng);
  REQUIRE(p);
  Session& a = *p->alice.session;
  Session& b = *p->bob.session;
  // Every <old/> on the wire must differ from both sides' current sending MAC keys.
  int published = 0;
  auto check_old = [&](const xml::Element& st) {
    const xml::Element* c = st.child("c", xml::kNsC);
    REQUIRE(c);
    for (const auto* o : c->element_children()) {
      if (o->name != "old")
        continue;
      ++published;
      Bytes k = unbase64(o->text_content()).value();
      CHECK_FALSE(ct_equal(k, view(a.v1()->params().send.mac)));
      CHECK_FALSE(ct_equal(k, view(b.v1()->params().send.mac)));
    }
  };
  auto send = [&](Session& from, Session& to, int i) {
    auto enc = from.encrypt(make_stanza(i, "x@example.net/r", p->thread), rng);
    REQUIRE(enc);
    check_old(*enc);
    auto dec = to.decrypt(*enc);
    REQUIRE(dec);
  };
  for (int round = 0; round < 3; ++round) {
    send(a, b, 0);
    send(b, a, 1);
    // Both re-key before seeing the other's <key/>.
    auto ka = a.rekey(rng);
    auto kb = b.rekey(rng);
    REQUIRE(ka);
    REQUIRE(kb);
    auto rb = b.decrypt(*ka);
    REQUIRE(rb);
    CHECK(rb->rekeyed);
    auto ra = a.decrypt(*kb);
    REQUIRE(ra);
    CHECK(ra->rekeyed);
    CHECK(a.rekey_pending());
    // The next stanzas acknowledge (<new>1</new>) and run under the new keys both ways.
    for (int i = 0; i < 6; ++i) {
      send(a, b, 2 * i);
      send(b, a, 2 * i + 1);
    }
    CHECK_FALSE(a.rekey_pending());
    CHECK_FALSE(b.rekey_pending());
    // A sequential re-key still works afterwards.
    auto k2 = b.rekey(rng);
    REQUIRE(k2);
    REQUIRE(a.decrypt(*k2));
    send(a, b, 3);
    send(b, a, 4);
  }
  CHECK(published > 0);
  terminate_both(*p, rng);
}

TEST_CASE("error stanzas: the defined condition stays clear, the other details go in <c/>",
          "[wire]") {
  SystemRandom rng;
  auto p = negotiate(party("alice@example.org/pda"), party("bob@example.com/laptop"), rng);
  REQUIRE(p);
  xml::Element st("message", std::string(xml::kNsClient));
  st.set_attr("to", "bob@example.com/laptop").set_attr("type", "error").set_attr("id", "e1");
  st.add_text_child("thread", p->thread);
  xml::Element& err = st.add(xml::Element("error", std::string(xml::kNsClient)));
  err.set_attr("type", "cancel");
  err.add(xml::Element("service-unavailable", std::string(xml::kNsStanzas)));
  xml::Element text("text", std::string(xml::kNsStanzas));
  text.add(xml::Element::text_node("private detail"));
  err.add(std::move(text));
  err.add(xml::Element("quota", "urn:example:app"));
  // Decrypted content takes the place of <c/>, after the children that stay in clear.
  st.add_text_child("body", "the message that bounced");
  for (int round = 0; round < 2; ++round) {
    auto enc = p->alice.session->encrypt(st, rng);
    REQUIRE(enc);
    dump_wire(*enc);
    std::string wire = xml::serialize(*enc);
    CHECK(wire.find("service-unavailable") != std::string::npos);
    CHECK(wire.find("private detail") == std::string::npos);
    CHECK(wire.find("urn:example:app") == std::string::npos);
    CHECK(wire.find("bounced") == std::string::npos);
    const xml::Element* e = enc->child("error", xml::kNsClient);
    REQUIRE(e);
    CHECK(e->count_children("c", xml::kNsC) == 1);
    auto dec = p->bob.session->decrypt(*enc);
    REQUIRE(dec);
    CHECK(xml::serialize(dec->stanza) == xml::serialize(st));
  }
  // The inner <c/> is authenticated like the outer one: a flipped bit ends the session.
  auto enc = p->alice.session->encrypt(st, rng);
  REQUIRE(enc);
  xml::Element* inner = enc->child("error", xml::kNsClient)->child("c", xml::kNsC);
  xml::Element* data = inner->child("data", xml::kNsC);
  Bytes d = unbase64(data->text_content()).value();
  d[0] ^= 1;
  data->children = {xml::Element::text_node(base64(d))};
  CHECK(p->bob.session->decrypt(*enc).error().code == Errc::auth_failed);
  CHECK_FALSE(p->bob.session->can_receive());
}

TEST_CASE("error stanzas: a condition alone stays in clear, in message, presence and iq errors",
          "[wire]") {
  // XEP-0200 §4 and RFC 6120 §8.3: the defined condition is never encrypted. An <error/> that
  // holds nothing else must come out of encrypt and decrypt exactly as it went in.
  SystemRandom rng;
  PartyConfig a = party("alice@example.org/pda"), b = party("bob@example.com/laptop");
  a.policy.stanzas = b.policy.stanzas = {"message", "presence", "iq"};
  auto p = negotiate(a, b, rng);
  REQUIRE(p);
  for (const char* kind : {"message", "presence", "iq"}) {
    for (bool with_body : {false, true}) {
      INFO(kind << (with_body ? " with other content" : " with the condition only"));
      xml::Element st(kind, std::string(xml::kNsClient));
      st.set_attr("to", "bob@example.com/laptop").set_attr("type", "error").set_attr("id", "e2");
      st.add_text_child("thread", p->thread);
      xml::Element& err = st.add(xml::Element("error", std::string(xml::kNsClient)));
      err.set_attr("type", "cancel");
      err.add(xml::Element("service-unavailable", std::string(xml::kNsStanzas)));
      const std::string clear_error = xml::serialize(err);
      if (with_body)
        st.add(xml::Element("query", "urn:example:q"));
      auto enc = p->alice.session->encrypt(st, rng);
      REQUIRE(enc);
      const xml::Element* e = enc->child("error", xml::kNsClient);
      REQUIRE(e);
      CHECK(xml::serialize(*e) == clear_error);
      CHECK(enc->count_children("c", xml::kNsC) == 1);
      auto dec = p->bob.session->decrypt(*enc);
      REQUIRE(dec);
      CHECK(xml::serialize(dec->stanza) == xml::serialize(st));
    }
  }
}
