// Offline sessions (XEP-0187) in the protocol core: Alice publishes signed options and saves
// the negotiation behind them; Bob starts a session from the options with one request that
// carries a stanza; Alice, back, accepts that request against her saved state.
#include <catch2/catch.hpp>

#include "session/negotiation.hpp"
#include "session/v1/record.hpp"
#include "util/datetime.hpp"

using namespace esession;

namespace {

constexpr const char* kAlice = "alice@example.org/pda";
constexpr const char* kAliceBare = "alice@example.org";
constexpr const char* kBob = "bob@example.com/laptop";
constexpr int64_t kNow = 1'800'000'000;
constexpr int64_t kExpires = kNow + 3600;

xml::Element chat(const char* to, const char* body) {
  xml::Element m("message", std::string(xml::kNsClient));
  m.set_attr("to", to);
  m.set_attr("type", "chat");
  m.add_text_child("body", body);
  return m;
}

const PrivateKey& key(int i) {
  static PrivateKey keys[3] = {PrivateKey::generate_ed25519().value(),
                               PrivateKey::generate_ed25519().value(),
                               PrivateKey::generate_ed25519().value()};
  return keys[i];
}

// World holds both parties' keys and what each knows of the other: Bob knows Alice's key (he
// must, to trust her options); Alice learns Bob's from his request.
struct World {
  KeySigner alice_key{key(0)};
  KeySigner bob_key{key(1)};
  KnownKeys bob_knows, alice_knows;
  SystemRandom rng;
  World() { bob_knows.add(kAliceBare, alice_key.public_key()); }

  PartyConfig alice() {
    PartyConfig c;
    c.jid = kAlice;
    c.policy.groups = {14, 15};
    c.signer = &alice_key;
    c.verifier = &alice_knows;
    return c;
  }
  PartyConfig bob(const char* body = "hello") {
    PartyConfig c;
    c.jid = kBob;
    c.policy.groups = {15, 14};
    c.signer = &bob_key;
    c.verifier = &bob_knows;
    c.content = chat(kAlice, body);
    return c;
  }
  // publish returns the options to publish and Alice's saved state.
  std::pair<xml::Element, SecretBytes> publish(OfflineOptions o = {kExpires, ""}) {
    auto p = Negotiation::publish_offline(alice(), o, rng);
    REQUIRE(p);
    return {p->second, p->first.serialize()};
  }
};

const xml::Field* field(const xml::Form& f, const char* var) {
  return f.field(var);
}

std::string body_of(const xml::Element& st) {
  const xml::Element* b = st.child("body", xml::kNsClient);
  return b ? b->text_content() : std::string();
}

}  // namespace

TEST_CASE("offline: Bob starts a session from Alice's options and she accepts it when back",
          "[offline]") {
  World w;
  auto [options, saved] = w.publish();
  auto form = xml::parse_form(options);
  REQUIRE(form);
  // XEP-0187 §3.1: an online three-message offer without accept and pubkey fields, no iq,
  // with expires and signatures.
  for (const char* absent : {"accept", "init_pubkey", "resp_pubkey", "dhhashes", "sas_algs"})
    CHECK_FALSE(field(*form, absent));
  for (const char* present : {"dhkeys", "my_nonce", "modp", "expires", "signs"})
    CHECK(field(*form, present));
  CHECK(form->choices("stanzas") == std::vector<std::string>{"message", "presence"});
  CHECK(form->value("expires").value() == format_datetime(kExpires));

  auto started = Negotiation::start_offline(w.bob("hello"), options, kAliceBare, kNow, w.rng);
  REQUIRE(started);
  REQUIRE(started->send.size() == 1);
  REQUIRE(started->established);
  const xml::Element& request = started->send[0];
  CHECK(request.attr_or("type") == "chat");
  CHECK(request.attr_or("to") == kAliceBare);
  CHECK(request.child("init", xml::kNsInit));
  CHECK(request.child("c", xml::kNsC));
  CHECK_FALSE(request.child("body", xml::kNsClient));  // the content rides encrypted only
  Established& bob = *started->established;
  CHECK(bob.session->active());
  CHECK(bob.peer_mode == PubkeyMode::key);
  REQUIRE(bob.peer_key);
  CHECK(*bob.peer_key == w.alice_key.public_key());
  CHECK(bob.sas.empty());  // no SAS: nobody could compare it

  auto ids = read_offline_request(request);
  REQUIRE(ids);
  CHECK(base64(ids->n_a) == form->value("my_nonce").value());

  auto accepted =
      Negotiation::accept_offline(view(saved), w.alice(), request, kBob, kNow + 600, w.rng);
  REQUIRE(accepted);
  REQUIRE(accepted->established);
  REQUIRE(accepted->content.size() == 1);
  CHECK(body_of(accepted->content[0].stanza) == "hello");
  CHECK(accepted->send.empty());  // Alice sends nothing back
  Session& alice = *accepted->established->session;
  CHECK(accepted->established->peer_mode == PubkeyMode::key);
  CHECK(*accepted->established->peer_key == w.bob_key.public_key());
  // Alice only receives (XEP-0187 §4); Bob keeps sending, and ends it.
  CHECK_FALSE(alice.active());
  CHECK(alice.can_receive());
  CHECK_FALSE(alice.encrypt(chat(kBob, "no"), w.rng));
  auto second = bob.session->encrypt(chat(kAlice, "second"), w.rng);
  REQUIRE(second);
  auto got = alice.decrypt(*second, w.rng);
  REQUIRE(got);
  CHECK(body_of(got->stanza) == "second");
  // Alice's side keeps no private value: the options' x goes with them, so a re-key from Bob
  // cannot be followed and ends the session.
  REQUIRE(alice.v1());
  CHECK(alice.v1()->params().my_private.bits() == 0);
  {
    Session a2 = alice, b2 = *bob.session;
    auto rk = b2.rekey(w.rng);
    REQUIRE(rk);
    auto r = a2.decrypt(*rk, w.rng);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::unsupported);
    CHECK_FALSE(a2.can_receive());
  }
  auto end = bob.session->terminate(w.rng);
  REQUIRE(end);
  auto ended = alice.decrypt(*end, w.rng);
  REQUIRE(ended);
  CHECK(ended->terminated);
  CHECK_FALSE(ended->reply);  // she does not acknowledge an offline termination (§5)
  CHECK_FALSE(alice.can_receive());

  // The saved options are not consumed: a second request (another subscriber, or a replay the
  // caller has to refuse by its N_B and d) is checked against the same state.
  auto again = Negotiation::accept_offline(view(saved), w.alice(), request, kBob, kNow, w.rng);
  REQUIRE(again);
  auto ids2 = read_offline_request(request);
  CHECK(ids2->n_b == ids->n_b);
  CHECK(ids2->d == ids->d);
}

TEST_CASE("offline: options are refused unsigned, signed by a stranger, altered or expired",
          "[offline]") {
  World w;
  auto [options, saved] = w.publish();
  SECTION("Bob knows no key of Alice's") {
    KnownKeys none;
    PartyConfig c = w.bob();
    c.verifier = &none;
    auto r = Negotiation::start_offline(c, options, kAliceBare, kNow, w.rng);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::auth_failed);
  }
  SECTION("Bob knows another key of Alice's") {
    KnownKeys other;
    other.add(kAliceBare, key(2).public_key());
    PartyConfig c = w.bob();
    c.verifier = &other;
    auto r = Negotiation::start_offline(c, options, kAliceBare, kNow, w.rng);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::auth_failed);
  }
  SECTION("options published by another JID are not taken for Alice's") {
    // Carol's genuine options, signed with her key, which Bob knows too, but as Carol's.
    KeySigner carol_key(key(2));
    PartyConfig cc = w.alice();
    cc.jid = "carol@example.net/home";
    cc.signer = &carol_key;
    auto carol = Negotiation::publish_offline(cc, {kExpires, ""}, w.rng);
    REQUIRE(carol);
    KnownKeys both;
    both.add(kAliceBare, w.alice_key.public_key());
    both.add("carol@example.net", carol_key.public_key());
    PartyConfig c = w.bob();
    c.verifier = &both;
    auto as_alice = Negotiation::start_offline(c, carol->second, kAliceBare, kNow, w.rng);
    REQUIRE_FALSE(as_alice);
    CHECK(as_alice.error().code == Errc::auth_failed);
    c.content = chat("carol@example.net", "hello");
    CHECK(Negotiation::start_offline(c, carol->second, "carol@example.net", kNow, w.rng));
  }
  SECTION("every altered value breaks the signature") {
    size_t altered = 0;
    for (size_t i = 0; i < options.children.size(); ++i) {
      if (!options.children[i].is("field", xml::kNsData))
        continue;
      for (size_t j = 0; j < options.children[i].children.size(); ++j) {
        xml::Element bad = options;
        xml::Element& child = bad.children[i].children[j];
        xml::Element* holder = child.name == "option" ? child.child("value", xml::kNsData) : &child;
        if (child.is_text() || !holder)
          continue;
        std::string t = holder->text_content();
        holder->children = {xml::Element::text_node(t == "1" ? "2" : t + "0")};
        INFO("field " << options.children[i].attr_or("var"));
        auto r = Negotiation::start_offline(w.bob(), bad, kAliceBare, kNow, w.rng);
        REQUIRE_FALSE(r);
        CHECK((r.error().code == Errc::auth_failed || r.error().code == Errc::malformed));
        ++altered;
      }
    }
    CHECK(altered > 10);
  }
  SECTION("expired options are not used, by Bob or by Alice") {
    auto r = Negotiation::start_offline(w.bob(), options, kAliceBare, kExpires, w.rng);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::not_acceptable);
    auto ok = Negotiation::start_offline(w.bob(), options, kAliceBare, kExpires - 1, w.rng);
    REQUIRE(ok);
    auto late =
        Negotiation::accept_offline(view(saved), w.alice(), ok->send.at(0), kBob, kExpires, w.rng);
    REQUIRE_FALSE(late);
    CHECK(late.error().code == Errc::not_acceptable);
  }
}

TEST_CASE("offline: Alice refuses an altered request and sends nothing", "[offline]") {
  World w;
  auto [options, saved] = w.publish();
  auto started = Negotiation::start_offline(w.bob(), options, kAliceBare, kNow, w.rng);
  REQUIRE(started);
  const xml::Element& request = started->send.at(0);
  // Each value of Bob's form, and the encrypted content, altered in turn.
  const xml::Element* x = xml::find_form(*request.child("init", xml::kNsInit));
  REQUIRE(x);
  size_t tried = 0;
  for (size_t i = 0; i < x->children.size(); ++i) {
    if (!x->children[i].is("field", xml::kNsData))
      continue;
    xml::Element bad = request;
    xml::Element& bx = *const_cast<xml::Element*>(xml::find_form(*bad.child("init", xml::kNsInit)));
    xml::Element* v = bx.children[i].child("value", xml::kNsData);
    if (!v || bx.children[i].attr_or("var") == "FORM_TYPE")
      continue;
    std::string t = v->text_content();
    v->children = {xml::Element::text_node(t.size() > 2 ? t.substr(0, t.size() - 2) +
                                                              (t[t.size() - 2] == 'A' ? "B=" : "A=")
                                                        : t + "x")};
    INFO("field " << bx.children[i].attr_or("var"));
    auto r = Negotiation::accept_offline(view(saved), w.alice(), bad, kBob, kNow, w.rng);
    CHECK_FALSE(r);
    ++tried;
  }
  CHECK(tried > 10);
  xml::Element bad = request;
  for (auto& c : bad.children)
    if (c.is("c", xml::kNsC))
      for (auto& d : c.children)
        if (d.name == "data") {
          std::string t = d.text_content();
          d.children = {xml::Element::text_node((t[0] == 'A' ? "B" : "A") + t.substr(1))};
        }
  auto r = Negotiation::accept_offline(view(saved), w.alice(), bad, kBob, kNow, w.rng);
  CHECK_FALSE(r);
  // Another party's options state does not take Bob's request.
  World other;
  auto [options2, saved2] = other.publish();
  (void)options2;
  CHECK_FALSE(Negotiation::accept_offline(view(saved2), w.alice(), request, kBob, kNow, w.rng));
}

TEST_CASE("offline: match_resource, one-shot objects, and the saved state", "[offline]") {
  World w;
  SECTION("options bound to a resource offer messages only, delivered there or nowhere") {
    auto [options, saved] = w.publish({kExpires, "pda"});
    auto form = xml::parse_form(options);
    CHECK(form->choices("stanzas") == std::vector<std::string>{"message"});
    CHECK(form->value("match_resource").value() == "pda");
    auto started = Negotiation::start_offline(w.bob(), options, kAliceBare, kNow, w.rng);
    REQUIRE(started);
    const xml::Element& request = started->send.at(0);
    CHECK(request.attr_or("to") == kAlice);
    const xml::Element* amp = request.child("amp", xml::kNsAmp);
    REQUIRE(amp);
    const xml::Element* rule = amp->child("rule", xml::kNsAmp);
    REQUIRE(rule);
    CHECK(rule->attr_or("condition") == "match-resource");
    CHECK(rule->attr_or("action") == "error");
    CHECK(Negotiation::accept_offline(view(saved), w.alice(), request, kBob, kNow, w.rng));
  }
  SECTION("terminate=1: one stanza with forward secrecy, the session over at once") {
    auto [options, saved] = w.publish();
    PartyConfig c = w.bob("once");
    c.terminate_after_content = true;
    auto started = Negotiation::start_offline(c, options, kAliceBare, kNow, w.rng);
    REQUIRE(started);
    CHECK(started->established->terminated);
    CHECK_FALSE(started->established->session->can_receive());
    auto accepted =
        Negotiation::accept_offline(view(saved), w.alice(), started->send.at(0), kBob, kNow, w.rng);
    REQUIRE(accepted);
    REQUIRE(accepted->content.size() == 1);
    CHECK(body_of(accepted->content[0].stanza) == "once");
    CHECK(accepted->established->terminated);
  }
  SECTION("publishing needs a signing key; the state round-trips with its options") {
    PartyConfig c = w.alice();
    c.signer = nullptr;
    CHECK_FALSE(Negotiation::publish_offline(c, {kExpires, ""}, w.rng));
    auto [options, saved] = w.publish({kExpires, "pda"});
    auto back = Negotiation::deserialize(view(saved), w.alice());
    REQUIRE(back);
    REQUIRE(back->offline_options());
    CHECK(back->offline_options()->expires == kExpires);
    CHECK(back->offline_options()->match_resource == "pda");
    CHECK(back->serialize() == saved);
    for (size_t n = 0; n < saved.size(); ++n)
      CHECK_FALSE(Negotiation::deserialize(view(saved).first(n), w.alice()));
  }
}
