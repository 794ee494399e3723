// The engine (lib/engine): two Endpoints, each over its own store, negotiate and talk in one
// process, as an embedding client would drive them; refusals, events and durability.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "engine/endpoint.hpp"
#include "engine/pep.hpp"
#include "engine/session_record.hpp"
#include "engine/trust.hpp"
#include "session/codec.hpp"

using namespace esession;

namespace {

constexpr const char* kAlice = "alice@example.org/pda";
constexpr const char* kBob = "bob@example.com/laptop";

// Home is a scratch home directory with one account, removed at the end of a test.
struct Home {
  std::string path;
  std::optional<Store> store;
  Account account;
  explicit Home(const char* jid) {
    char tmpl[] = "/tmp/esession-engine-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = std::string(tmpl) + "/home";
    auto s = Store::open(path);
    REQUIRE(s);
    store.emplace(std::move(s).value());
    auto a = store->create_account(jid);
    REQUIRE(a);
    account = *a;
  }
  ~Home() {
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(path).parent_path(), ec);
  }
  Endpoint endpoint(EngineConfig cfg = {}) { return Endpoint(*store, account, std::move(cfg)); }
};

NegotiationOptions small_groups() {
  NegotiationOptions o;
  o.policy.groups = {14};
  return o;
}

const Event* find_event(const Events& events, EventKind kind) {
  auto it =
      std::find_if(events.begin(), events.end(), [&](const Event& e) { return e.kind == kind; });
  return it == events.end() ? nullptr : &*it;
}

// relay hands everything |from| sends to |to|, as the network would, and returns what |to|
// made of it.
Outcome relay(const Outcome& from, Endpoint& to, RandomSource& rng) {
  REQUIRE_FALSE(from.error);
  Batch b = to.incoming(from.send, rng);
  REQUIRE_FALSE(b.fatal);
  REQUIRE(b.results.size() == from.send.size());
  Outcome merged;
  for (auto& r : b.results) {
    REQUIRE_FALSE(r.error);
    merged.thread = r.thread;
    merged.style = r.style;
    std::move(r.send.begin(), r.send.end(), std::back_inserter(merged.send));
    std::move(r.deliver.begin(), r.deliver.end(), std::back_inserter(merged.deliver));
    std::move(r.events.begin(), r.events.end(), std::back_inserter(merged.events));
  }
  return merged;
}

// establish runs a four-message negotiation between the two endpoints and returns the
// events each side reported.
std::pair<Events, Events> establish(Endpoint& alice, Endpoint& bob, RandomSource& rng) {
  Outcome m1 = alice.negotiate(kBob, small_groups(), rng);
  REQUIRE_FALSE(m1.error);
  REQUIRE(alice.negotiating(m1.thread));
  REQUIRE(find_event(m1.events, EventKind::negotiation_started));
  // Bob sees a request: the engine refuses to decrypt it and says so; he answers it.
  Batch seen = bob.incoming(m1.send, rng);
  REQUIRE(seen.results.at(0).refusal == Refusal::negotiation_request);
  Outcome m2 = bob.respond(m1.send.at(0), kAlice, small_groups(), rng);
  REQUIRE_FALSE(m2.error);
  Outcome m3 = relay(m2, alice, rng);
  Outcome m4 = relay(m3, bob, rng);
  Outcome end = relay(m4, alice, rng);
  REQUIRE_FALSE(alice.negotiating(m1.thread));
  REQUIRE_FALSE(bob.negotiating(m1.thread));
  Events a = std::move(m3.events), b = std::move(m4.events);
  std::move(end.events.begin(), end.events.end(), std::back_inserter(a));
  return {std::move(a), std::move(b)};
}

xml::Element stanza(const char* name, const char* to, const char* child) {
  xml::Element st(name, std::string(xml::kNsClient));
  st.set_attr("to", to);
  if (std::string_view(name) == "iq") {
    st.set_attr("type", "get");
    st.set_attr("id", "q1");
  }
  st.add_text_child(child, "hello");
  return st;
}

}  // namespace

TEST_CASE("engine: two endpoints negotiate and exchange a message, a presence and an iq",
          "[engine]") {
  Home ha(kAlice), hb(kBob);
  Endpoint alice = ha.endpoint(), bob = hb.endpoint();
  SystemRandom rng;
  auto [ea, eb] = establish(alice, bob, rng);
  const Event* sa = find_event(ea, EventKind::sas);
  const Event* sb = find_event(eb, EventKind::sas);
  REQUIRE(sa);
  REQUIRE(sb);
  CHECK(sa->values == sb->values);  // the same SAS on both sides
  const Event* est = find_event(eb, EventKind::established);
  REQUIRE(est);
  CHECK(est->peer == kAlice);
  CHECK(status_fields(*est).at(2) == "4");  // peer, thread, flow, cipher, hash, group
  CHECK(find_event(ea, EventKind::trust)->values.at(0) == "new");

  std::vector<xml::Element> out = {stanza("message", kBob, "body"),
                                   stanza("presence", kBob, "status"), stanza("iq", kBob, "query")};
  Batch enc = alice.outgoing(out, rng);
  REQUIRE_FALSE(enc.fatal);
  REQUIRE(enc.results.size() == 3);
  std::vector<xml::Element> wire;
  for (auto& r : enc.results) {
    REQUIRE_FALSE(r.error);
    REQUIRE(r.send.size() == 1);
    CHECK(r.send[0].attr_or("from") == kAlice);
    CHECK_FALSE(r.send[0].child("body", xml::kNsClient));  // nothing in clear
    wire.push_back(r.send[0]);
  }
  Batch dec = bob.incoming(wire, rng);
  REQUIRE_FALSE(dec.fatal);
  REQUIRE(dec.results.size() == 3);
  const char* kinds[] = {"message", "presence", "iq"};
  const char* children[] = {"body", "status", "query"};
  for (size_t i = 0; i < 3; ++i) {
    REQUIRE_FALSE(dec.results[i].error);
    REQUIRE(dec.results[i].deliver.size() == 1);
    const xml::Element& got = dec.results[i].deliver[0];
    CHECK(got.name == kinds[i]);
    const xml::Element* c = got.child(children[i], xml::kNsClient);
    REQUIRE(c);
    CHECK(c->text_content() == "hello");
  }
  // A replay of the same stanzas is refused, each on its own.
  Batch again = bob.incoming(wire, rng);
  REQUIRE(again.results.size() == 3);
  CHECK(again.results[0].error);
}

TEST_CASE("engine: sessions survive the endpoint; refusals name their reason", "[engine]") {
  Home ha(kAlice), hb(kBob);
  SystemRandom rng;
  {
    Endpoint alice = ha.endpoint(), bob = hb.endpoint();
    establish(alice, bob, rng);
  }
  // New endpoints over the same stores: the session is in the store, not in the object.
  Endpoint alice = ha.endpoint(), bob = hb.endpoint();
  std::vector<xml::Element> out = {stanza("message", kBob, "body")};
  Batch enc = alice.outgoing(out, rng);
  REQUIRE(enc.results.size() == 1);
  REQUIRE_FALSE(enc.results[0].error);

  SECTION("a stanza in clear") {
    xml::Element clear = stanza("message", kBob, "body");
    clear.set_attr("from", kAlice);
    Batch b = bob.incoming(std::vector<xml::Element>{clear}, rng);
    CHECK(b.results.at(0).refusal == Refusal::clear_stanza);
    CHECK(b.results.at(0).deliver.empty());
  }
  SECTION("a stanza for another account") {
    xml::Element st = enc.results[0].send[0];
    st.set_attr("to", "carol@example.net/x");
    Batch b = bob.incoming(std::vector<xml::Element>{st}, rng);
    CHECK(b.results.at(0).refusal == Refusal::not_for_us);
  }
  SECTION("an unknown thread") {
    xml::Element st = enc.results[0].send[0];
    xml::Element* th = st.child("thread", xml::kNsClient);
    REQUIRE(th);
    th->children = {xml::Element::text_node("no-such-thread")};
    Batch b = bob.incoming(std::vector<xml::Element>{st}, rng);
    CHECK(b.results.at(0).refusal == Refusal::unknown_thread);
  }
  SECTION("no session with the recipient") {
    std::vector<xml::Element> other = {stanza("message", "dave@example.net/y", "body")};
    Batch b = alice.outgoing(other, rng);
    CHECK(b.results.at(0).refusal == Refusal::no_session);
    CHECK(b.results.at(0).send.empty());
  }
  SECTION("terminate: the peer learns it, and the session is over on both sides") {
    REQUIRE_FALSE(bob.incoming(enc.results[0].send, rng).results.at(0).error);
    Outcome t = alice.terminate(kBob, rng);
    REQUIRE_FALSE(t.error);
    REQUIRE(find_event(t.events, EventKind::terminating));
    Batch b = bob.incoming(t.send, rng);
    REQUIRE_FALSE(b.results.at(0).error);
    CHECK(find_event(b.results[0].events, EventKind::terminated));
    std::vector<xml::Element> more = {stanza("message", kAlice, "body")};
    Batch after = bob.outgoing(more, rng);
    CHECK(after.results.at(0).error);
  }
}

TEST_CASE("engine: session records round-trip and refuse what is not one", "[engine]") {
  StoredSession s;
  s.sas = "ABCDE";
  s.peer_mode = "key";
  s.peer_fingerprint = std::string(64, 'a');
  s.retained_id = 42;
  s.continuity = true;
  s.pki = "x509-valid";
  s.own_mode = "none";
  s.session = secret(view(std::string_view("state")));
  SecretBytes blob = s.encode();
  auto back = StoredSession::decode(view(blob));
  REQUIRE(back);
  CHECK(back->sas == s.sas);
  CHECK(back->retained_id == 42);
  CHECK(back->continuity);
  CHECK(back->pki == s.pki);
  CHECK(view(back->session).size() == 5);
  for (size_t n = 0; n < blob.size(); ++n) {
    // Every truncation is refused, except where records written before the trailing fields
    // existed end: before pki (4+10 bytes), own_mode (4+4) and own_key_unused (4+0).
    auto r = StoredSession::decode(view(blob).first(n));
    if (r)
      CHECK((n == blob.size() - 26 || n == blob.size() - 12));
    else
      CHECK(r.error().code == Errc::malformed);
  }
}

EngineConfig saving() {
  EngineConfig c;
  c.save_negotiations = true;
  return c;
}

TEST_CASE("engine: a saved negotiation is resumed by the next process, at every step", "[engine]") {
  Home ha(kAlice), hb(kBob);
  SystemRandom rng;
  std::string thread;
  Outcome m2, m3, m4;
  {
    Endpoint alice = ha.endpoint(saving()), bob = hb.endpoint(saving());
    Outcome m1 = alice.negotiate(kBob, small_groups(), rng);
    REQUIRE_FALSE(m1.error);
    thread = m1.thread;
    m2 = bob.respond(m1.send.at(0), kAlice, small_groups(), rng);
    REQUIRE_FALSE(m2.error);
  }  // both processes end with their negotiations waiting
  {
    Endpoint alice = ha.endpoint(saving());
    auto saved = alice.saved_negotiations();
    REQUIRE(saved);
    REQUIRE(saved->size() == 1);
    CHECK(saved->at(0).peer == kBob);
    CHECK(saved->at(0).thread == thread);
    CHECK_FALSE(alice.negotiating(thread));
    REQUIRE_FALSE(alice.resume(kBob, thread, small_groups()).error);
    CHECK(alice.negotiating(thread));
    Outcome again = alice.resume(kBob, thread, small_groups());
    REQUIRE(again.error);
    CHECK(again.error->code == Errc::wrong_state);
    m3 = relay(m2, alice, rng);  // Alice waits again, saved at her new step
    CHECK(alice.saved_negotiations()->size() == 1);
  }
  {
    Endpoint bob = hb.endpoint(saving());
    REQUIRE_FALSE(bob.resume(kAlice, thread, small_groups()).error);
    m4 = relay(m3, bob, rng);
    CHECK(find_event(m4.events, EventKind::established));
    CHECK(bob.saved_negotiations()->empty());  // stored with the session, in its transaction
  }
  Endpoint alice = ha.endpoint(saving()), bob = hb.endpoint();
  REQUIRE_FALSE(alice.resume(kBob, thread, small_groups()).error);
  Outcome end = relay(m4, alice, rng);
  CHECK(find_event(end.events, EventKind::established));
  CHECK(alice.saved_negotiations()->empty());
  const Event* sa = find_event(end.events, EventKind::sas);
  const Event* sb = find_event(m4.events, EventKind::sas);
  REQUIRE(sa);
  REQUIRE(sb);
  CHECK(sa->values == sb->values);
  // The session the resumed negotiations made carries stanzas both ways.
  std::vector<xml::Element> out = {stanza("message", kBob, "body")};
  Batch enc = alice.outgoing(out, rng);
  REQUIRE_FALSE(enc.results.at(0).error);
  Outcome got = relay(enc.results[0], bob, rng);
  REQUIRE(got.deliver.size() == 1);
  CHECK(got.deliver[0].child("body", xml::kNsClient)->text_content() == "hello");
}

TEST_CASE("engine: saved negotiations end with failure, abandon, or a damaged state", "[engine]") {
  Home ha(kAlice), hb(kBob);
  SystemRandom rng;
  SECTION("without save_negotiations nothing is stored") {
    Endpoint alice = ha.endpoint();
    REQUIRE_FALSE(alice.negotiate(kBob, small_groups(), rng).error);
    CHECK(alice.saved_negotiations()->empty());
  }
  SECTION("a failed step deletes the saved state") {
    Endpoint alice = ha.endpoint(saving()), bob = hb.endpoint();
    Outcome m1 = alice.negotiate(kBob, small_groups(), rng);
    Outcome m2 = bob.respond(m1.send.at(0), kAlice, small_groups(), rng);
    REQUIRE_FALSE(m2.error);
    for (auto& c : m2.send.at(0).children)
      if (c.name == "feature")
        c.children.clear();  // no form: message 2 is refused, the negotiation fails
    Batch b = alice.incoming(m2.send, rng);
    REQUIRE(b.results.at(0).error);
    CHECK_FALSE(alice.negotiating(m1.thread));
    CHECK(alice.saved_negotiations()->empty());
  }
  SECTION("abandon forgets a running and a saved negotiation") {
    Endpoint alice = ha.endpoint(saving());
    Outcome m1 = alice.negotiate(kBob, small_groups(), rng);
    REQUIRE(alice.abandon(kBob, m1.thread));
    CHECK_FALSE(alice.negotiating(m1.thread));
    CHECK(alice.saved_negotiations()->empty());
    Status again = alice.abandon(kBob, m1.thread);
    REQUIRE_FALSE(again);
    CHECK(again.error().code == Errc::no_session);
    Outcome r = alice.resume(kBob, m1.thread, small_groups());
    REQUIRE(r.error);
    CHECK(r.error->code == Errc::no_session);
  }
  SECTION("a damaged state is refused and deleted") {
    REQUIRE(ha.store->put_negotiation(ha.account.id, kBob, "t1", SecretBytes(40, 7)));
    Endpoint alice = ha.endpoint(saving());
    Outcome r = alice.resume(kBob, "t1", small_groups());
    REQUIRE(r.error);
    CHECK(r.error->code == Errc::malformed);
    CHECK_FALSE(alice.negotiating("t1"));
    CHECK(alice.saved_negotiations()->empty());
  }
}

namespace {

constexpr const char* kAliceBare = "alice@example.org";

// pin records |k| as a verified key of |bare| in |h|'s store, as `esession peer pin` would.
void pin(Home& h, const char* bare, const PublicKey& k) {
  REQUIRE(h.store->record_peer_key(h.account.id, bare, key_fingerprint(k), TrustSource::pinned,
                                   true, k.pem()));
}

xml::Element chat_to(const char* to, const char* body) {
  xml::Element m("message", std::string(xml::kNsClient));
  m.set_attr("to", to);
  m.set_attr("type", "chat");
  m.add_text_child("body", body);
  return m;
}

}  // namespace

TEST_CASE("engine: an offline session from published options, accepted once, then withdrawn",
          "[engine][offline]") {
  Home ha(kAlice), hb(kBob);
  KeySigner alice_key(PrivateKey::generate_ed25519().value());
  KeySigner bob_key(PrivateKey::generate_ed25519().value());
  pin(hb, kAliceBare, alice_key.public_key());
  SystemRandom rng;
  Endpoint alice = ha.endpoint(), bob = hb.endpoint();

  Outcome pub =
      alice.publish_offline(OfflineAudience::subscribers,
                            {static_cast<int64_t>(std::time(nullptr)) + 3600, ""}, alice_key, rng);
  REQUIRE_FALSE(pub.error);
  REQUIRE(pub.send.size() == 2);  // create the node, publish the item
  CHECK(pub.send[1].child("pubsub", kNsPubsub)->child("publish", kNsPubsub)->attr_or("node") ==
        kNodeSubscribers);
  CHECK(ha.store->list_offline(ha.account.id)->size() == 1);

  NegotiationOptions opts = small_groups();
  opts.signer = &bob_key;
  opts.content = chat_to(kAliceBare, "while you were out");
  Outcome req = bob.start_offline(kAliceBare, pub.send[1], opts, rng);
  REQUIRE_FALSE(req.error);
  REQUIRE(req.send.size() == 1);
  CHECK(find_event(req.events, EventKind::established));
  // Bob keeps sending in it; Alice will read both once back.
  std::vector<xml::Element> more = {chat_to(kAliceBare, "and this")};
  more[0].add_text_child("thread", req.thread);
  Batch second = bob.outgoing(more, rng);
  REQUIRE_FALSE(second.results.at(0).error);

  Batch got = alice.incoming(req.send, rng);
  REQUIRE(got.results.size() == 1);
  REQUIRE_FALSE(got.results[0].error);
  REQUIRE(got.results[0].deliver.size() == 1);
  CHECK(got.results[0].deliver[0].child("body", xml::kNsClient)->text_content() ==
        "while you were out");
  CHECK(find_event(got.results[0].events, EventKind::established));
  Batch got2 = alice.incoming(second.results[0].send, rng);
  REQUIRE_FALSE(got2.results.at(0).error);
  CHECK(got2.results[0].deliver.at(0).child("body", xml::kNsClient)->text_content() == "and this");
  // Alice only receives in it.
  std::vector<xml::Element> reply = {chat_to(kBob, "hi")};
  reply[0].add_text_child("thread", req.thread);
  CHECK(alice.outgoing(reply, rng).results.at(0).error);

  // The same request again is a replay: refused, nothing delivered.
  Batch again = alice.incoming(req.send, rng);
  REQUIRE(again.results.at(0).error);
  CHECK(again.results[0].error->code == Errc::replay);
  CHECK(again.results[0].deliver.empty());

  // Back online: the options are withdrawn and their secrets destroyed; a late request is
  // refused for want of them. Neither the database nor its log holds the set's N_A or any of
  // its x values afterwards: the accepted session kept none of them. They are read out of the
  // stored state as formats/negotiation-state.md lays it out.
  std::vector<Bytes> secrets;
  {
    const SecretBytes state = ha.store->list_offline(ha.account.id)->at(0).state;
    codec::Reader r(view(state), "test");
    REQUIRE(r.fixed(8, "head"));  // magic, version, profile, stage, initiator
    for (const char* f : {"jid", "peer_jid", "thread"})
      REQUIRE(r.bytes(f));
    REQUIRE(r.boolean("offline").value());
    REQUIRE(r.u64("expires"));
    REQUIRE(r.bytes("match_resource"));
    REQUIRE(codec::read_suite(r));
    secrets.push_back(bytes_of(r.bytes("N_A").value()));
    REQUIRE(r.bytes("N_B"));
    uint32_t groups = r.count("groups", 8).value();
    for (uint32_t i = 0; i < groups; ++i)
      REQUIRE(r.u32("group"));
    uint32_t xs = r.count("x", 8).value();
    REQUIRE(xs == groups);
    for (uint32_t i = 0; i < xs; ++i)
      secrets.push_back(bytes_of(r.mpi("x").value()));
  }
  auto pieces_in_files = [&]() {
    size_t found = 0;
    for (const char* name : {"/esession.db", "/esession.db-wal"}) {
      std::ifstream f(ha.path + name, std::ios::binary);
      std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      for (const Bytes& sec : secrets)
        for (size_t at = 0; at + 16 <= sec.size(); at += 16)
          if (data.find(std::string_view(reinterpret_cast<const char*>(sec.data() + at), 16)) !=
              std::string::npos)
            ++found;
    }
    return found;
  };
  CHECK(pieces_in_files() > 0);
  Outcome back = alice.retract_offline(rng);
  REQUIRE_FALSE(back.error);
  REQUIRE(back.send.size() == 1);
  CHECK(ha.store->list_offline(ha.account.id)->empty());
  CHECK(pieces_in_files() == 0);
  Batch late = alice.incoming(req.send, rng);
  REQUIRE(late.results.at(0).error);
  CHECK(late.results[0].error->code == Errc::no_session);
}

TEST_CASE("engine: offline options of an unknown or untrusted signer are not used",
          "[engine][offline]") {
  Home ha(kAlice), hb(kBob);
  KeySigner alice_key(PrivateKey::generate_ed25519().value());
  KeySigner bob_key(PrivateKey::generate_ed25519().value());
  SystemRandom rng;
  Endpoint alice = ha.endpoint(), bob = hb.endpoint();
  Outcome pub =
      alice.publish_offline(OfflineAudience::anyone,
                            {static_cast<int64_t>(std::time(nullptr)) + 3600, ""}, alice_key, rng);
  REQUIRE_FALSE(pub.error);
  NegotiationOptions opts = small_groups();
  opts.signer = &bob_key;
  opts.content = chat_to(kAliceBare, "x");
  Outcome req = bob.start_offline(kAliceBare, pub.send[1], opts, rng);
  REQUIRE(req.error);
  CHECK(req.error->code == Errc::auth_failed);
  CHECK(req.send.empty());
  CHECK(hb.store->list_sessions(hb.account.id)->empty());
}

TEST_CASE("store: destroyed offline secrets are in neither the database nor its log",
          "[store][offline]") {
  Home h(kAlice);
  SystemRandom rng;
  SecretBytes state(4096);
  rng.fill(std::span<uint8_t>(state.data(), state.size()));
  Bytes n_a = rng.nonce(16);
  auto id = h.store->put_offline(h.account.id, OfflineAudience::subscribers, n_a, 1, state);
  REQUIRE(id);
  auto in_files = [&]() {
    size_t found = 0;
    for (const char* name : {"/esession.db", "/esession.db-wal"}) {
      std::ifstream f(h.path + name, std::ios::binary);
      std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      for (size_t at = 0; at + 32 <= state.size(); at += 256)
        if (data.find(std::string_view(reinterpret_cast<const char*>(state.data() + at), 32)) !=
            std::string::npos)
          ++found;
    }
    return found;
  };
  // The replay record: a second request repeating either N_B or d is refused.
  Bytes nb1 = rng.nonce(16), nb2 = rng.nonce(16), d1 = rng.nonce(64), d2 = rng.nonce(64);
  CHECK(h.store->note_offline_request(*id, nb1, d1).value());
  CHECK_FALSE(h.store->note_offline_request(*id, nb1, d1).value());
  CHECK_FALSE(h.store->note_offline_request(*id, nb2, d1).value());  // the same d
  CHECK_FALSE(h.store->note_offline_request(*id, nb1, d2).value());  // the same N_B
  CHECK(h.store->note_offline_request(*id, nb2, d2).value());
  CHECK(in_files() > 0);  // the search sees the secrets while they are kept
  REQUIRE(h.store->destroy_offline(*id));
  CHECK(in_files() == 0);
  CHECK(h.store->destroy_offline(*id).error().code == Errc::no_session);
}
