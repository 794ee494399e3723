// Session state serialization: a restored session carries on exactly where the original was,
// and damaged state blobs are refused.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "session/negotiation.hpp"
#include "session/v1/record.hpp"
#include "store/store.hpp"

using namespace esession;

namespace {

struct Pair {
  std::unique_ptr<Session> alice, bob;
  std::string thread;
};

PartyConfig party(const char* jid, Compat compat = Compat::spec) {
  PartyConfig p;
  p.jid = jid;
  p.policy.groups = {14};
  p.policy.compat = compat;
  if (compat == Compat::gajim)
    p.policy.stanzas = {"message"};
  return p;
}

Pair negotiate(Compat compat = Compat::spec) {
  SystemRandom rng;
  PartyConfig a = party("alice@example.org/pda", compat),
              b = party("bob@example.com/laptop", compat);
  auto started = Negotiation::start(a, b.jid, rng);
  REQUIRE(started);
  xml::Element offer = started->second.send.at(0);
  offer.set_attr("from", a.jid);
  auto responded = Negotiation::respond(b, offer, rng);
  REQUIRE(responded);
  auto m3 = started->first.receive(responded->second.send.at(0), rng);
  REQUIRE(m3);
  auto m4 = responded->first.receive(m3->send.at(0), rng);
  REQUIRE(m4);
  auto done = started->first.receive(m4->send.at(0), rng);
  REQUIRE(done);
  REQUIRE(done->established);
  REQUIRE(m4->established);
  return Pair{std::move(done->established->session), std::move(m4->established->session),
              started->first.thread()};
}

xml::Element message(const std::string& to, const std::string& thread, const std::string& body) {
  xml::Element s("message", std::string(xml::kNsClient));
  s.set_attr("to", to);
  s.set_attr("type", "chat");
  s.add_text_child("thread", thread);
  s.add_text_child("body", body);
  return s;
}

// restore round-trips |s| through its serialized form and checks the encoding is canonical.
std::unique_ptr<Session> restore(const Session& s) {
  SecretBytes blob = s.serialize();
  auto r = Session::deserialize(view(blob));
  REQUIRE(r);
  CHECK(r->serialize() == blob);
  return std::make_unique<Session>(std::move(r.value()));
}

// send encrypts a message from |from| and has |to| decrypt it.
void send(Session& from, Session& to, const std::string& thread, const std::string& body) {
  SystemRandom rng;
  auto enc = from.encrypt(message(to.info().local_jid, thread, body), rng);
  REQUIRE(enc);
  auto dec = to.decrypt(enc.value());
  REQUIRE(dec);
  CHECK(dec->stanza.child("body", xml::kNsClient)->text_content() == body);
}

void rekey(Session& from, Session& to) {
  SystemRandom rng;
  auto k = from.rekey(rng);
  REQUIRE(k);
  auto r = to.decrypt(k.value());
  REQUIRE(r);
  CHECK(r->rekeyed);
}

}  // namespace

TEST_CASE("a restored session continues exactly: after re-keys, with a pending re-key") {
  Pair p = negotiate();
  for (int i = 0; i < 25; ++i) {
    if (i % 10 == 9)
      rekey(i % 20 == 9 ? *p.alice : *p.bob, i % 20 == 9 ? *p.bob : *p.alice);
    send(*p.alice, *p.bob, p.thread, "a" + std::to_string(i));
    send(*p.bob, *p.alice, p.thread, "b" + std::to_string(i));
  }
  // Alice re-keys and Bob has not answered yet: Alice holds two receive key sets and a pending
  // private value; Bob owes a <new/>.
  rekey(*p.alice, *p.bob);
  send(*p.alice, *p.bob, p.thread, "after my re-key");
  REQUIRE(p.alice->rekey_pending());

  std::unique_ptr<Session> alice = restore(*p.alice), bob = restore(*p.bob);
  CHECK(alice->rekey_pending());

  // The restored objects produce exactly what the originals do (encryption is deterministic
  // given the state: padding is fixed).
  SystemRandom rng;
  xml::Element st = message("alice@example.org/pda", p.thread, "same bytes");
  auto from_original = p.bob->encrypt(st, rng);
  auto from_restored = bob->encrypt(st, rng);
  REQUIRE(from_original);
  REQUIRE(from_restored);
  CHECK(xml::serialize(from_original.value()) == xml::serialize(from_restored.value()));
  CHECK(xml::serialize(from_original.value()).find("<new") != std::string::npos);
  // Bob's <new/> acknowledges Alice's re-key; her next stanza publishes the old MAC keys.
  auto dec = alice->decrypt(from_restored.value());
  REQUIRE(dec);
  CHECK_FALSE(alice->rekey_pending());
  auto with_old = alice->encrypt(message("bob@example.com/laptop", p.thread, "old keys"), rng);
  REQUIRE(with_old);
  CHECK(xml::serialize(with_old.value()).find("<old") != std::string::npos);
  REQUIRE(bob->decrypt(with_old.value()));

  // Carry on, restoring both sides before every step as the CLI does (one process per call).
  for (int i = 0; i < 30; ++i) {
    alice = restore(*alice);
    bob = restore(*bob);
    if (i % 7 == 3)
      rekey(*bob, *alice);
    alice = restore(*alice);
    send(*alice, *bob, p.thread, "x" + std::to_string(i));
    bob = restore(*bob);
    send(*bob, *alice, p.thread, "y" + std::to_string(i));
  }

  // Termination and its acknowledgement work across a restore, and an ended session
  // round-trips too.
  const SecretBytes send_cipher = alice->v1()->params().send.cipher,
                    send_mac = alice->v1()->params().send.mac;
  auto t = alice->terminate(rng);
  REQUIRE(t);
  // The terminator destroys its send keys at once (formats §13), in memory and in its state.
  CHECK(alice->v1()->params().send.cipher.empty());
  CHECK(alice->v1()->params().send.mac.empty());
  auto contains = [](const SecretBytes& hay, const SecretBytes& needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
  };
  const SecretBytes closing_state = alice->serialize();
  CHECK_FALSE(contains(closing_state, send_cipher));
  CHECK_FALSE(contains(closing_state, send_mac));
  alice = restore(*alice);
  bob = restore(*bob);
  auto r = bob->decrypt(t.value());
  REQUIRE(r);
  REQUIRE(r->reply);
  bob = restore(*bob);
  CHECK_FALSE(bob->can_receive());
  auto fin = alice->decrypt(*r->reply);
  REQUIRE(fin);
  CHECK(fin->terminated);
  alice = restore(*alice);
  CHECK(alice->encrypt(st, rng).error().code == Errc::terminated);
}

TEST_CASE("Gajim-mode sessions round-trip with their conventions") {
  Pair p = negotiate(Compat::gajim);
  std::unique_ptr<Session> alice = restore(*p.alice), bob = restore(*p.bob);
  CHECK(alice->suite().compat == Compat::gajim);
  CHECK(alice->suite().conv.g1);
  CHECK(alice->suite().conv.g5b);
  CHECK_FALSE(alice->suite().conv.g5a);  // we pad to 16 bytes, which Gajim reads too
  send(*alice, *bob, p.thread, "\xc3\xa9t\xc3\xa9");
  bob = restore(*bob);
  send(*bob, *alice, p.thread, "back");
  // Keystream left over (G5b) survives a restore on both sides: 40 bytes leave 8.
  SystemRandom r;
  SendOptions forty;
  forty.plaintext_override = Bytes(40, ' ');
  auto odd = alice->encrypt(message("bob@example.com/laptop", p.thread, "x"), r, forty);
  REQUIRE(odd);
  alice = restore(*alice);
  CHECK(alice->v1()->params().send_carry == 8);
  REQUIRE(bob->decrypt(odd.value()));
  bob = restore(*bob);
  CHECK(bob->v1()->params().recv_carry == 8);
  for (const char* body : {"\xc3\xa9", "na\xc3\xafve", "\xe2\x82\xac"}) {
    send(*alice, *bob, p.thread, body);
    alice = restore(*alice);
    bob = restore(*bob);
  }
  // Whatever the suite allows or refuses, the restored session does the same.
  SystemRandom rng;
  auto original = p.alice->rekey(rng);
  auto restored = restore(*p.alice)->rekey(rng);
  CHECK(original.has_value() == restored.has_value());
}

TEST_CASE("damaged session state is refused") {
  Pair p = negotiate();
  rekey(*p.alice, *p.bob);
  SecretBytes blob = p.alice->serialize();
  REQUIRE(Session::deserialize(view(blob)));

  // Every truncation.
  for (size_t n = 0; n < blob.size(); ++n) {
    auto r = Session::deserialize(ByteView(blob.data(), n));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::malformed);
  }
  // A trailing byte.
  SecretBytes longer = blob;
  longer.push_back(0);
  CHECK(Session::deserialize(view(longer)).error().code == Errc::malformed);
  // Magic, version, an enum code, a boolean.
  auto mutated = [&](size_t at, uint8_t v) {
    SecretBytes b = blob;
    b[at] = v;
    return Session::deserialize(view(b));
  };
  CHECK(mutated(0, 'X').error().code == Errc::malformed);
  CHECK(mutated(4, 4).error().code == Errc::unsupported);
  CHECK(mutated(4, 0).error().code == Errc::unsupported);
  CHECK(mutated(5, 7).error().code == Errc::malformed);  // compat
  CHECK(mutated(6, 2).error().code == Errc::malformed);  // g1

  // Any single corrupted byte either is refused or gives a state that re-encodes to exactly
  // the damaged blob (the encoding is canonical; key bytes themselves cannot be checked).
  size_t refused = 0;
  for (size_t i = 0; i < blob.size(); ++i) {
    for (uint8_t x : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}}) {
      SecretBytes b = blob;
      b[i] ^= x;
      auto r = Session::deserialize(view(b));
      if (!r) {
        ++refused;
        continue;
      }
      CHECK(r->serialize() == b);
    }
  }
  CHECK(refused > 0);
  CHECK(Session::deserialize({}).error().code == Errc::malformed);
}

TEST_CASE("version 1 and 2 session states (before G5b, before the block count) are still read") {
  for (Compat compat : {Compat::spec, Compat::gajim}) {
    Pair p = negotiate(compat);
    send(*p.alice, *p.bob, p.thread, "before");
    // Version 2 is version 3 without u64:send_blocks (the last 8 bytes); version 1 is version
    // 2 without bool:g5b (after g5a, offset 10) and the two carries.
    SecretBytes v3 = p.alice->serialize();
    REQUIRE(v3[4] == 3);
    REQUIRE(v3[10] == (compat == Compat::gajim ? 1 : 0));
    SecretBytes v2(v3.begin(), v3.end() - 8);
    v2[4] = 2;
    SecretBytes v3_zero = v3;  // what a version 2 state is written back as: no count known
    std::fill(v3_zero.end() - 8, v3_zero.end(), 0);
    auto r2 = Session::deserialize(view(v2));
    REQUIRE(r2);
    CHECK(r2->serialize() == v3_zero);
    SecretBytes v1(v2.begin(), v2.end() - 2);
    v1.erase(v1.begin() + 10);
    v1[4] = 1;
    auto r = Session::deserialize(view(v1));
    REQUIRE(r);
    CHECK(r->suite().conv.g5b == (compat == Compat::gajim));
    CHECK(r->v1()->params().send_carry == 0);
    CHECK(r->v1()->params().recv_carry == 0);
    CHECK(r->serialize() == v3_zero);  // written back as version 3
    auto alice = std::make_unique<Session>(std::move(r.value()));
    send(*alice, *p.bob, p.thread, "after \xc3\xa9");
    send(*p.bob, *alice, p.thread, "back \xc3\xa9");
  }
  // Carries out of range, or without G5b, are refused.
  Pair p = negotiate();
  SecretBytes blob = p.alice->serialize();
  blob[blob.size() - 9] = 3;  // recv_carry in a spec-mode session
  CHECK(Session::deserialize(view(blob)).error().code == Errc::malformed);
  Pair g = negotiate(Compat::gajim);
  SecretBytes gb = g.alice->serialize();
  gb[gb.size() - 10] = 15;
  CHECK(Session::deserialize(view(gb)));
  gb[gb.size() - 10] = 16;
  CHECK(Session::deserialize(view(gb)).error().code == Errc::malformed);
}

TEST_CASE("a stored session keeps working through Store::update_session") {
  namespace sfs = std::filesystem;
  char tmpl[] = "/tmp/esession-test-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string home = std::string(tmpl) + "/home";
  struct Cleanup {
    std::string dir;
    ~Cleanup() { sfs::remove_all(dir); }
  } cleanup{tmpl};

  Pair p = negotiate();
  auto store = Store::open(home);
  REQUIRE(store);
  auto acct = store->create_account("alice@example.org/pda");
  REQUIRE(acct);
  auto rec = store->create_session(NewSession{acct->id, "bob@example.com/laptop", p.thread,
                                              SessionRole::initiator, SessionFlow::four_message},
                                   p.alice->serialize());
  REQUIRE(rec);
  p.alice.reset();

  SystemRandom rng;
  for (int i = 0; i < 5; ++i) {
    // Encrypt inside the transaction; the ciphertext leaves only after the commit.
    auto out = store->update_session(rec->id, [&](SecretBytes& state) -> Result<xml::Element> {
      ES_ASSIGN(Session s, Session::deserialize(view(state)));
      ES_ASSIGN(
          xml::Element enc,
          s.encrypt(message("bob@example.com/laptop", p.thread, "n" + std::to_string(i)), rng));
      state = s.serialize();
      return enc;
    });
    REQUIRE(out);
    REQUIRE(p.bob->decrypt(out.value()));
  }
  // A decryption failure destroys nothing stored: the blob stays as it was.
  auto enc = p.bob->encrypt(message("alice@example.org/pda", p.thread, "to alice"), rng);
  REQUIRE(enc);
  xml::Element tampered = enc.value();
  tampered.child("c", xml::kNsC)->child("mac", xml::kNsC)->children.front().text = "AAAA";
  auto bad = store->update_session(rec->id, [&](SecretBytes& state) -> Result<Received> {
    ES_ASSIGN(Session s, Session::deserialize(view(state)));
    ES_ASSIGN(Received r, s.decrypt(tampered));
    state = s.serialize();
    return r;
  });
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::auth_failed);
  auto good = store->update_session(
      rec->id, [&](SecretBytes& state, SessionStatus& status) -> Result<std::string> {
        ES_ASSIGN(Session s, Session::deserialize(view(state)));
        ES_ASSIGN(Received r, s.decrypt(enc.value()));
        state = s.serialize();
        status = s.active() ? SessionStatus::active : SessionStatus::ended;
        return r.stanza.child("body", xml::kNsClient)->text_content();
      });
  REQUIRE(good);
  CHECK(good.value() == "to alice");
}

TEST_CASE("a sender re-keys before 2^32 blocks under one key (formats §12)") {
  Pair p = negotiate();
  SystemRandom rng;
  // A state whose send key has spent 2^32 - 1 counter values: the next stanza would pass
  // 2^32, so it is refused before anything is spent; a re-key resets the count.
  SecretBytes blob = p.alice->serialize();
  const uint64_t spent = v1::kMaxBlocksPerKey - 1;
  for (int i = 0; i < 8; ++i)
    blob[blob.size() - 1 - i] = static_cast<uint8_t>(spent >> (8 * i));
  auto worn = Session::deserialize(view(blob));
  REQUIRE(worn);
  auto alice = std::make_unique<Session>(std::move(worn.value()));
  xml::Element m("message", std::string(xml::kNsClient));
  m.set_attr("to", "bob@example.com/laptop");
  m.add_text_child("thread", p.thread);
  m.add_text_child("body", "one too many");
  auto refused = alice->encrypt(m, rng);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == Errc::wrong_state);
  CHECK(alice->serialize() == blob);  // nothing spent
  rekey(*alice, *p.bob);
  send(*alice, *p.bob, p.thread, "after the re-key");
  // More than 2^32 in a stored state is refused.
  for (int i = 0; i < 8; ++i)
    blob[blob.size() - 1 - i] = i == 4 ? 1 : 0;
  blob[blob.size() - 1] = 1;  // 2^32 + 1
  CHECK(Session::deserialize(view(blob)).error().code == Errc::malformed);
}
