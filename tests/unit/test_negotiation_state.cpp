// Negotiation::serialize/deserialize: a negotiation saved after any step and restored goes on
// exactly as one never interrupted, and a damaged state is refused without a crash.
#include <catch2/catch.hpp>

#include "helpers.hpp"

using namespace esession;
using namespace esession::test;

namespace {

constexpr const char* kAlice = "alice@example.org/pda";
constexpr const char* kBob = "bob@example.com/laptop";

// SeededRandom is a deterministic RandomSource: SHA-256 of the seed and a block number.
class SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(uint8_t seed) : m_seed(seed) {}
  void fill(std::span<uint8_t> out) override {
    for (auto& b : out) {
      if (m_pos == m_block.size()) {
        uint8_t in[9] = {m_seed};
        for (int i = 0; i < 8; ++i)
          in[1 + i] = static_cast<uint8_t>(m_count >> (8 * i));
        ++m_count;
        m_block = digest(HashAlg::sha256, ByteView(in, sizeof in));
        m_pos = 0;
      }
      b = m_block[m_pos++];
    }
  }

 private:
  uint8_t m_seed;
  uint64_t m_count = 0;
  Bytes m_block;
  size_t m_pos = 0;
};

// Run is what one negotiation produced: every stanza sent, and what each party established.
struct Run {
  std::vector<std::string> wire;
  std::vector<xml::Element> sent;
  std::vector<std::string> sas, retained;
  std::vector<SecretBytes> sessions;
  std::vector<Bytes> states;  // every state saved on the way
};

// hop saves |n| and replaces it with the restored copy, when |restore|.
void hop(Negotiation& n, const PartyConfig& cfg, bool restore, Run& run) {
  if (!restore)
    return;
  SecretBytes s = n.serialize();
  run.states.emplace_back(s.begin(), s.end());
  auto back = Negotiation::deserialize(view(s), cfg);
  REQUIRE(back);
  // The encoding is canonical: what was read is written back the same.
  SecretBytes again = back->serialize();
  CHECK(std::equal(s.begin(), s.end(), again.begin(), again.end()));
  n = std::move(back).value();
}

void keep(Run& run, const Step& s) {
  for (const auto& m : s.send) {
    run.wire.push_back(xml::serialize(m));
    run.sent.push_back(m);
  }
  if (s.established) {
    run.sas.push_back(s.established->sas);
    run.retained.push_back(hex(view(s.established->new_retained_secret)));
    run.sessions.push_back(s.established->session->serialize());
  }
}

// run_flow negotiates between |a| and |b| with randomness from |seed|; with |restore| each
// party's negotiation is saved and restored after each of its steps.
Run run_flow(const PartyConfig& a, const PartyConfig& b, uint8_t seed, bool restore) {
  SeededRandom rng(seed);
  Run run;
  auto started = Negotiation::start(a, b.jid, rng);
  REQUIRE(started);
  keep(run, started->second);
  Negotiation alice = std::move(started->first);
  hop(alice, a, restore, run);
  xml::Element offer = started->second.send.at(0);
  offer.set_attr("from", a.jid);
  auto responded = Negotiation::respond(b, offer, rng);
  REQUIRE(responded);
  keep(run, responded->second);
  Negotiation bob = std::move(responded->first);
  hop(bob, b, restore, run);
  auto m3 = alice.receive(responded->second.send.at(0), rng);
  REQUIRE(m3);
  keep(run, *m3);
  hop(alice, a, restore, run);
  auto m4 = bob.receive(m3->send.at(0), rng);
  REQUIRE(m4);
  keep(run, *m4);
  hop(bob, b, restore, run);
  if (a.policy.flow == Flow::four_message) {
    auto done = alice.receive(m4->send.at(0), rng);
    REQUIRE(done);
    keep(run, *done);
    hop(alice, a, restore, run);
  }
  REQUIRE(run.sessions.size() == 2);
  return run;
}

void check_same(const PartyConfig& a, const PartyConfig& b) {
  for (uint8_t seed : {uint8_t{1}, uint8_t{2}}) {
    Run plain = run_flow(a, b, seed, false);
    Run hopped = run_flow(a, b, seed, true);
    CHECK(hopped.wire == plain.wire);
    CHECK(hopped.sas == plain.sas);
    CHECK(hopped.retained == plain.retained);
    REQUIRE(hopped.sessions.size() == plain.sessions.size());
    for (size_t i = 0; i < plain.sessions.size(); ++i)
      CHECK(hopped.sessions[i] == plain.sessions[i]);
    CHECK(hopped.states.size() >= 4);
  }
}

struct Keys {
  KeySigner alice{PrivateKey::generate_ed25519().value()};
  KeySigner bob{PrivateKey::generate_ed25519().value()};
  KnownKeys alice_knows, bob_knows;
};

std::pair<PartyConfig, PartyConfig> parties(Keys* keys, Flow flow) {
  PartyConfig a = party(kAlice), b = party(kBob);
  a.policy.flow = flow;
  if (keys) {
    a.signer = &keys->alice;
    b.signer = &keys->bob;
    a.verifier = &keys->alice_knows;
    b.verifier = &keys->bob_knows;
    a.policy.init_pubkey = b.policy.init_pubkey = {PubkeyMode::key};
    a.policy.resp_pubkey = b.policy.resp_pubkey = {PubkeyMode::key};
  }
  return {a, b};
}

// saved_run returns a four-message run with keys, saving the states along the way.
Run saved_run(Keys& keys) {
  auto [a, b] = parties(&keys, Flow::four_message);
  return run_flow(a, b, 3, true);
}

}  // namespace

TEST_CASE("negotiation state: a restored 4-message negotiation goes on as the original") {
  auto [a, b] = parties(nullptr, Flow::four_message);
  SecretBytes rs = secret(view(std::string(32, 'r')));
  a.retained = {rs};
  b.retained = {rs};
  check_same(a, b);
  Keys keys;
  auto [ka, kb] = parties(&keys, Flow::four_message);
  check_same(ka, kb);
}

TEST_CASE("negotiation state: a restored 3-message negotiation goes on as the original") {
  Keys keys;
  auto [a, b] = parties(&keys, Flow::three_message);
  check_same(a, b);
}

TEST_CASE("negotiation state: Gajim's dialect and XEP-0217 restore too") {
  auto [a, b] = parties(nullptr, Flow::four_message);
  a.policy.compat = b.policy.compat = Compat::gajim;
  check_same(a, b);
  auto [c, d] = parties(nullptr, Flow::four_message);
  c.policy.xep0217 = true;
  check_same(c, d);
}

TEST_CASE("negotiation state: a truncated state is refused as malformed at every length") {
  Keys keys;
  auto [a, b] = parties(&keys, Flow::four_message);
  std::vector<Bytes> states = saved_run(keys).states;
  REQUIRE(states.size() == 5);
  for (size_t i = 0; i < states.size(); ++i) {
    const PartyConfig& cfg = i % 2 == 0 ? a : b;  // Alice saved 0, 2 and 4, Bob 1 and 3
    const Bytes& s = states[i];
    REQUIRE(Negotiation::deserialize(s, cfg));
    for (size_t n = 0; n < s.size(); ++n) {
      auto r = Negotiation::deserialize(ByteView(s.data(), n), cfg);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == Errc::malformed);
    }
    Bytes longer = s;
    longer.push_back(0);
    CHECK(Negotiation::deserialize(longer, cfg).error().code == Errc::malformed);
  }
}

TEST_CASE("negotiation state: a garbled state is refused or fails later, never crashes") {
  Keys keys;
  auto [a, b] = parties(&keys, Flow::four_message);
  Run run = saved_run(keys);
  const std::vector<Bytes>& states = run.states;
  // Every byte flipped in turn: the state is refused (malformed, or unsupported for the
  // version byte), or restored into a negotiation that must still behave when it gets the
  // message that came next in the run (the states saved after messages 1, 2 and 3).
  SeededRandom rng(9);
  for (size_t i = 0; i < 3; ++i) {
    const PartyConfig& cfg = i % 2 == 0 ? a : b;
    for (size_t pos = 0; pos < states[i].size(); ++pos) {
      Bytes s = states[i];
      s[pos] ^= 0x41;
      auto r = Negotiation::deserialize(s, cfg);
      if (!r) {
        CHECK((r.error().code == Errc::malformed || r.error().code == Errc::unsupported));
        continue;
      }
      (void)r->receive(run.sent[i + 1], rng);
    }
  }
  // Another party's configuration does not take the state.
  auto other = Negotiation::deserialize(states[0], b);
  REQUIRE_FALSE(other);
  CHECK(other.error().code == Errc::malformed);
}

TEST_CASE("negotiation state: version 1 (before offline options) is read and written back as 2") {
  Keys keys;
  auto [a, b] = parties(&keys, Flow::four_message);
  std::vector<Bytes> states = saved_run(keys).states;
  for (size_t i = 0; i < states.size(); ++i) {
    const PartyConfig& cfg = i % 2 == 0 ? a : b;
    const Bytes& v2 = states[i];
    REQUIRE(v2.at(4) == 2);
    // Version 1 is version 2 without the offline flag after the thread.
    size_t at = 8;
    for (int field = 0; field < 3; ++field) {  // jid, peer_jid, thread
      uint32_t len = (uint32_t{v2[at]} << 24) | (uint32_t{v2[at + 1]} << 16) |
                     (uint32_t{v2[at + 2]} << 8) | uint32_t{v2[at + 3]};
      at += 4 + len;
    }
    REQUIRE(v2.at(at) == 0);  // not offline
    Bytes v1 = v2;
    v1[4] = 1;
    v1.erase(v1.begin() + static_cast<long>(at));
    auto r = Negotiation::deserialize(v1, cfg);
    REQUIRE(r);
    CHECK(bytes_of(view(r->serialize())) == v2);
    Bytes v3 = v2;
    v3[4] = 3;
    CHECK(Negotiation::deserialize(v3, cfg).error().code == Errc::unsupported);
  }
}
