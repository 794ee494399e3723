// Pieces shared by the fuzz targets and the seed generator (fuzz-seeds).
//
// Everything here is deterministic: a fuzz input must replay the same way every time, and the
// seed generator must produce transcripts that the fuzz targets' responder accepts (same
// configuration, same random values), so that the fuzzer starts from inputs that reach deep.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/random.hpp"
#include "session/negotiation.hpp"
#include "xml/reader.hpp"

namespace esession::fuzz {

// SeededRandom is a RandomSource over splitmix64: the same seed gives the same values.
class SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(uint64_t seed) : m_state(seed) {}

  void fill(std::span<uint8_t> out) override {
    for (uint8_t& b : out) {
      if (m_left == 0) {
        m_word = next_word();
        m_left = 8;
      }
      b = static_cast<uint8_t>(m_word & 0xff);
      m_word >>= 8;
      --m_left;
    }
  }

  uint64_t next_word() {
    uint64_t z = (m_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t m_state;
  uint64_t m_word = 0;
  int m_left = 0;
};

// check aborts with a message when an invariant of a fuzz target does not hold; libFuzzer
// reports the abort as a crash and saves the input.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

inline constexpr const char* kAliceJid = "alice@example.org/pda";
inline constexpr const char* kBobJid = "bob@example.com/laptop";

// The responder of fuzz_respond: its RandomSource seed and its configuration per mode. Small
// groups (1, 2, 5 allowed as weak groups, and 14) keep each execution fast.
inline constexpr uint64_t kResponderSeed = 0xb0b5eed;

inline PartyConfig responder_config(Compat compat) {
  PartyConfig p;
  p.jid = kBobJid;
  p.policy.compat = compat;
  p.policy.groups = {14, 5, 2, 1};
  p.policy.allow_weak_groups = true;
  if (compat == Compat::gajim) {
    p.policy.stanzas = {"message"};
    p.policy.logging = {"may", "mustnot"};
  } else {
    p.retained = {SecretBytes(32, 0x5a)};  // lets a seed exercise the retained-secret match
  }
  return p;
}

// split_stanzas returns the top-level elements of |input| (at most |max| of them), stopping at
// the first error: the first is the offer, the rest are the initiator's later stanzas.
inline std::vector<xml::Element> split_stanzas(std::string_view input, size_t max) {
  std::vector<xml::Element> out;
  xml::StanzaReader reader;
  reader.feed(input);
  reader.finish();
  while (out.size() < max) {
    auto r = reader.next();
    if (!r || !r.value())
      break;
    out.push_back(std::move(*r.value()));
  }
  return out;
}

// ResponderOutcome says how far replay_responder got (the seed generator checks its seeds).
struct ResponderOutcome {
  bool responded = false;
  bool established = false;
  size_t decrypted = 0;
};

// replay_responder plays Bob: respond() to stanzas[0] with the configuration of |compat|, then
// every later stanza goes to receive() until the negotiation completes, and after that to the
// established session's decrypt(). Every output is serialized so that it is fully built.
inline ResponderOutcome replay_responder(Compat compat, const std::vector<xml::Element>& stanzas) {
  ResponderOutcome out;
  if (stanzas.empty())
    return out;
  SeededRandom rng(kResponderSeed);
  std::optional<xml::Element> error_reply;
  auto responded =
      Negotiation::respond(responder_config(compat), stanzas[0], rng, {}, &error_reply);
  if (!responded) {
    if (error_reply) {
      check(error_reply->attr_or("type") == "error", "error reply is not of type error");
      (void)xml::serialize(*error_reply);
    }
    return out;
  }
  out.responded = true;
  Negotiation& neg = responded->first;
  check(!neg.initiator(), "respond() made an initiator");
  for (const auto& s : responded->second.send)
    (void)xml::serialize(s);
  std::unique_ptr<Session> session;
  for (size_t i = 1; i < stanzas.size(); ++i) {
    if (!session) {
      auto step = neg.receive(stanzas[i], rng);
      if (!step) {
        if (neg.error_reply())
          (void)xml::serialize(*neg.error_reply());
        if (neg.failed())
          break;
        continue;
      }
      for (const auto& s : step->send)
        (void)xml::serialize(s);
      if (step->established) {
        session = std::move(step->established->session);
        check(session != nullptr, "established without a session");
        out.established = true;
      }
      continue;
    }
    if (!session->can_receive())
      break;
    auto r = session->decrypt(stanzas[i]);
    if (!r)
      break;
    ++out.decrypted;
    (void)xml::serialize(r->stanza);
    if (r->reply)
      (void)xml::serialize(*r->reply);
  }
  return out;
}

// ---- fuzz_offline: Alice accepting offline requests (XEP-0187) ----------------------------

// Fixed Ed25519 keys, so that options and requests replay the same in every process: Alice
// signs her options with the first, Bob identifies with the second.
inline constexpr const char* kAliceKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIEbR5tz0mJWmndYmpMMa3sc/4g9zLS4DjIP4j9ADRUeu\n"
    "-----END PRIVATE KEY-----\n";
inline constexpr const char* kBobKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIMB/fqMfFSGrq2CmMCiKvahQm26n/erTn4npJUBWvZSj\n"
    "-----END PRIVATE KEY-----\n";
inline constexpr uint64_t kOfflineSeed = 0x0ff11e;
inline constexpr int64_t kOfflineNow = 1'800'000'000;

// OfflineFixture is Alice's published options (a small group keeps executions fast) and her
// saved state, made once per process.
struct OfflineFixture {
  KeySigner alice{PrivateKey::from_pem(kAliceKeyPem).value()};
  KeySigner bob{PrivateKey::from_pem(kBobKeyPem).value()};
  KnownKeys alice_knows;
  xml::Element options;
  SecretBytes saved;

  PartyConfig alice_config() const {
    PartyConfig c;
    c.jid = kAliceJid;
    c.policy.groups = {5, 14};
    c.policy.allow_weak_groups = true;
    c.signer = &alice;
    c.verifier = &alice_knows;
    return c;
  }
};

inline const OfflineFixture& offline_fixture() {
  static const OfflineFixture* f = [] {
    auto* fx = new OfflineFixture;
    SeededRandom rng(kOfflineSeed);
    auto p = Negotiation::publish_offline(fx->alice_config(), {kOfflineNow + 3600, ""}, rng);
    check(p.has_value(), "fixture: publish_offline failed");
    fx->options = p->second;
    fx->saved = p->first.serialize();
    return fx;
  }();
  return *f;
}

// replay_offline plays Alice back online: accept_offline() on stanzas[0] against the fixture's
// options, then the established session's decrypt() on the rest. Returns how many stanzas
// were decrypted (the request's content included); -1 if the request was refused.
inline int replay_offline(const std::vector<xml::Element>& stanzas) {
  if (stanzas.empty())
    return -1;
  const OfflineFixture& fx = offline_fixture();
  (void)read_offline_request(stanzas[0]);
  SeededRandom rng(kOfflineSeed + 1);
  auto step = Negotiation::accept_offline(view(fx.saved), fx.alice_config(), stanzas[0], kBobJid,
                                          kOfflineNow, rng);
  if (!step)
    return -1;
  check(step->send.empty(), "accepting an offline request sent something");
  check(step->established.has_value(), "an accepted offline request established nothing");
  Session& s = *step->established->session;
  check(!s.active(), "Alice's side of an offline session can send");
  check(!s.encrypt(stanzas[0], rng), "Alice's side of an offline session encrypted a stanza");
  int n = static_cast<int>(step->content.size());
  for (const auto& r : step->content)
    (void)xml::serialize(r.stanza);
  for (size_t i = 1; i < stanzas.size() && s.can_receive(); ++i) {
    auto r = s.decrypt(stanzas[i], rng);
    if (!r)
      break;
    check(!r->reply, "Alice answered in an offline session");
    ++n;
    (void)xml::serialize(r->stanza);
  }
  return n;
}

}  // namespace esession::fuzz
