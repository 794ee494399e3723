// esession-bench-handshake: the cost of one negotiation, in process, by identification.
//
// Both parties run in this process, so a figure is the CPU time of a whole handshake: Alice's
// and Bob's work together, XML included, no I/O. CPU time, not wall time, so that a busy
// machine disturbs the figures less. Rows: no public keys (SAS), Ed25519 keys and
// RSA-2048 keys, in the four- and three-message flows (the three-message flow needs keys), each
// in MODP group 14 (2048-bit) and the default group 15 (3072-bit). The signature primitives and
// one DH key agreement are timed on their own, so the share of each is visible. Offline
// sessions (XEP-0187) are timed per party: Bob's start (a signature verified, one DH, one
// signature, the first stanza encrypted) and Alice's acceptance (one DH, a signature verified,
// the stanza decrypted), against options published once beforehand.
//
// Usage: esession-bench-handshake [iterations]   (default 40)
#include <time.h>
#include <algorithm>
#include <ctime>
#include <optional>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "crypto/dh.hpp"
#include "session/negotiation.hpp"

using namespace esession;

namespace {

// cpu_ms is the CPU time this process has used, in milliseconds: unlike the wall clock, it
// does not count the time other processes on a busy machine take.
double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// median_ms runs |fn| |n| times and returns the median CPU time in milliseconds.
double median_ms(int n, const std::function<void()>& fn) {
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    double t0 = cpu_ms();
    fn();
    t.push_back(cpu_ms() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

[[noreturn]] void die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "esession-bench-handshake: %s: %s\n", what.c_str(), e.detail.c_str());
  std::exit(1);
}

// handshake runs one negotiation between |a| and |b| and checks that both ends established.
void handshake(const PartyConfig& a, const PartyConfig& b, RandomSource& rng) {
  auto started = Negotiation::start(a, b.jid, rng);
  if (!started)
    die("start", started.error());
  xml::Element offer = started->second.send.at(0);
  offer.set_attr("from", a.jid);
  auto responded = Negotiation::respond(b, offer, rng);
  if (!responded)
    die("respond", responded.error());
  auto m3 = started->first.receive(responded->second.send.at(0), rng);
  if (!m3)
    die("message 3", m3.error());
  if (a.policy.flow == Flow::three_message) {
    auto done = responded->first.receive(m3->send.at(0), rng);
    if (!done || !done->established || !m3->established)
      die("three-message end", done ? Error{Errc::internal, "not established"} : done.error());
    return;
  }
  auto m4 = responded->first.receive(m3->send.at(0), rng);
  if (!m4)
    die("message 4", m4.error());
  auto done = started->first.receive(m4->send.at(0), rng);
  if (!done || !done->established)
    die("four-message end", done ? Error{Errc::internal, "not established"} : done.error());
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 40;
  if (n < 1)
    n = 1;
  SystemRandom rng;
  PrivateKey ed_a = PrivateKey::generate_ed25519().value();
  PrivateKey ed_b = PrivateKey::generate_ed25519().value();
  PrivateKey rsa_a = PrivateKey::generate_rsa(2048).value();
  PrivateKey rsa_b = PrivateKey::generate_rsa(2048).value();
  KeySigner s_ed_a(ed_a), s_ed_b(ed_b), s_rsa_a(rsa_a), s_rsa_b(rsa_b);
  KnownKeys ka(false), kb(false);

  std::printf(
      "esession-bench-handshake: median CPU time of %d in-process handshakes (both parties)\n\n",
      n);
  std::printf("%-26s %6s %12s\n", "identification", "group", "ms/handshake");
  struct Row {
    const char* name;
    const Signer* a;
    const Signer* b;
    Flow flow;
  };
  const Row rows[] = {
      {"none (SAS), 4-message", nullptr, nullptr, Flow::four_message},
      {"Ed25519, 4-message", &s_ed_a, &s_ed_b, Flow::four_message},
      {"RSA-2048, 4-message", &s_rsa_a, &s_rsa_b, Flow::four_message},
      {"Ed25519, 3-message", &s_ed_a, &s_ed_b, Flow::three_message},
      {"RSA-2048, 3-message", &s_rsa_a, &s_rsa_b, Flow::three_message},
  };
  for (int group : {14, 15}) {
    for (const Row& r : rows) {
      PartyConfig a, b;
      a.jid = "alice@example.org/pda";
      b.jid = "bob@example.com/laptop";
      a.policy.groups = b.policy.groups = {group};
      a.policy.flow = r.flow;
      std::vector<PubkeyMode> mode = {r.a ? PubkeyMode::key : PubkeyMode::none};
      a.policy.init_pubkey = a.policy.resp_pubkey = mode;
      b.policy.init_pubkey = b.policy.resp_pubkey = mode;
      a.signer = r.a;
      b.signer = r.b;
      a.verifier = &ka;
      b.verifier = &kb;
      double ms = median_ms(n, [&] { handshake(a, b, rng); });
      std::printf("%-26s %6d %12.2f\n", r.name, group, ms);
    }
  }

  // Offline sessions: each party's share, against a 3-message handshake above.
  std::printf("\n%-26s %6s %12s %12s\n", "offline (XEP-0187)", "group", "start ms", "accept ms");
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (int group : {14, 15}) {
    for (auto [name, sa, sb] :
         {std::tuple{"Ed25519", &s_ed_a, &s_ed_b}, {"RSA-2048", &s_rsa_a, &s_rsa_b}}) {
      PartyConfig a, b;
      a.jid = "alice@example.org/pda";
      b.jid = "bob@example.com/laptop";
      a.policy.groups = b.policy.groups = {group};
      a.signer = sa;
      a.verifier = &ka;
      KnownKeys bob_knows;
      bob_knows.add("alice@example.org", sa->public_key());
      b.signer = sb;
      b.verifier = &bob_knows;
      xml::Element m("message", std::string(xml::kNsClient));
      m.set_attr("to", "alice@example.org");
      m.add_text_child("body", "while you were away");
      b.content = m;
      auto published = Negotiation::publish_offline(a, {now + 3600, ""}, rng);
      if (!published)
        die("publish_offline", published.error());
      const SecretBytes saved = published->first.serialize();
      std::optional<xml::Element> request;
      double start = median_ms(n, [&] {
        auto st = Negotiation::start_offline(b, published->second, "alice@example.org", now, rng);
        if (!st)
          die("start_offline", st.error());
        request = st->send.at(0);
      });
      double accept = median_ms(n, [&] {
        auto ac = Negotiation::accept_offline(view(saved), a, *request, b.jid, now, rng);
        if (!ac || ac->content.size() != 1)
          die("accept_offline", ac ? Error{Errc::internal, "no content"} : ac.error());
      });
      std::printf("%-26s %6d %12.2f %12.2f\n", name, group, start, accept);
    }
  }

  // The primitives on their own.
  Bytes msg(32, 0x5a);
  std::printf("\n%-26s %12s %12s\n", "primitive", "sign ms", "verify ms");
  for (auto [name, key, alg] : {std::tuple{"Ed25519", &ed_a, SignAlg::ed25519},
                                {"RSA-2048", &rsa_a, SignAlg::rsa_sha256}}) {
    Bytes sig;
    double s = median_ms(n * 5, [&] { sig = key->sign(alg, msg).value(); });
    double v = median_ms(n * 5, [&] {
      if (!key->public_key().verify(alg, msg, sig))
        std::exit(1);
    });
    std::printf("%-26s %12.3f %12.3f\n", name, s, v);
  }
  for (int group : {14, 15}) {
    const DhGroup& g = *dh_group(group);
    BigNum x = rng.dh_private(g), y = rng.dh_private(g);
    BigNum e = dh_public(g, x);
    double pub = median_ms(n * 2, [&] { (void)dh_public(g, y); });
    double shared = median_ms(n * 2, [&] { (void)dh_shared(g, e, y); });
    std::printf("%-26s %12.3f %12.3f   (public value, shared secret)\n",
                (std::string("DH MODP ") + std::to_string(group)).c_str(), pub, shared);
  }
  return 0;
}
