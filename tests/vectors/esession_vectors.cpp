// esession-vectors: replays an esession-vector/1 file (../shared/vectors/SCHEMA.md) against the
// library and checks every expectation in it.
//
// Usage: esession-vectors [--quiet] FILE
// Prints every wire stanza our parties generate, one per line, then one line of JSON with the
// derived values and the result. Exit status: 0 every expectation holds; 1 some expectation
// fails; 2 the file cannot be read or is not a valid esession-vector/1 file.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "session/negotiation.hpp"

using json = nlohmann::json;
using namespace esession;

namespace {

struct BadFile {
  std::string why;
};

std::string str(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string())
    throw BadFile{std::string("missing text member '") + key + "'"};
  return j[key].get<std::string>();
}

Bytes hexb(const std::string& h) {
  auto r = unhex(h);
  if (!r)
    throw BadFile{"bad hex value '" + h.substr(0, 16) + "'"};
  return r.value();
}

BigNum hexint(const std::string& h) {
  auto r = BigNum::from_hex(h);
  if (!r)
    throw BadFile{"bad integer '" + h.substr(0, 16) + "'"};
  return r.value();
}

// ScriptedRandom hands each party exactly the inputs of the file. Any draw the file did not
// script is counted as an unexpected draw and fails the replay.
class ScriptedRandom final : public RandomSource {
 public:
  explicit ScriptedRandom(std::string who) : m_who(std::move(who)) {}
  Bytes nonce_value;
  std::map<int, BigNum> x;
  std::optional<BigNum> y;
  std::optional<Counter128> counter;
  std::vector<Bytes> decoy_values;
  std::vector<Bytes> srshash_values;
  std::vector<std::string> problems;

  void fill(std::span<uint8_t> out) override {
    problems.push_back(m_who + " drew " + std::to_string(out.size()) +
                       " random bytes the file does not script");
    for (auto& b : out)
      b = static_cast<uint8_t>(m_state++ * 131u + 7u);
  }
  Bytes nonce(size_t) override { return nonce_value; }
  BigNum dh_private(const DhGroup& g) override {
    if (y)
      return *y;
    auto it = x.find(g.id);
    if (it == x.end()) {
      problems.push_back(m_who + " needs x for group " + std::to_string(g.id));
      return BigNum::from_word(3);
    }
    return it->second;
  }
  Counter128 initial_counter() override {
    if (!counter)
      problems.push_back(m_who + " draws a counter the file does not script");
    return counter.value_or(Counter128{});
  }
  std::vector<Bytes> decoys(size_t len, size_t count) override {
    if (count != decoy_values.size())
      problems.push_back(m_who + " wants " + std::to_string(count) + " decoys, the file has " +
                         std::to_string(decoy_values.size()));
    for (const auto& d : decoy_values)
      if (d.size() != len)
        problems.push_back(m_who + ": decoy of the wrong length");
    return decoy_values;
  }
  Bytes srshash_random(size_t len) override {
    if (srshash_values.empty()) {
      problems.push_back(m_who + " draws a random srshash the file does not script");
      return Bytes(len);
    }
    return srshash_values.front();
  }

 private:
  std::string m_who;
  unsigned m_state = 1;
};

class Replay {
 public:
  bool quiet = false;
  int checks = 0;
  std::vector<std::string> mismatches;
  json values = json::object();

  void check(const std::string& what, const std::string& got, const std::string& want) {
    ++checks;
    if (got != want)
      mismatches.push_back(what + ": got '" + got.substr(0, 120) + "', want '" +
                           want.substr(0, 120) + "'");
  }
  void check(const std::string& what, bool ok, const std::string& why = {}) {
    ++checks;
    if (!ok)
      mismatches.push_back(what + (why.empty() ? "" : ": " + why));
  }
  void emit(const xml::Element& e) {
    std::string w = xml::serialize(e, {}, m_style);
    if (!quiet)
      std::cout << w << "\n";
  }
  xml::SerializeStyle m_style;
};

struct Setup {
  PartyConfig alice, bob;
  std::string alice_jid, bob_jid;
  std::map<std::string, std::string> alice_trace, bob_trace;
  ScriptedRandom alice_rng{"alice"}, bob_rng{"bob"};
};

const std::set<std::string> kSupported = {"G1", "G2", "G3", "G4",  "R1", "R2",
                                          "R3", "R4", "T1", "G5a", "G5b"};

// setup builds both parties from the members of a session (or a negative case's base).
void setup(Setup& s, const json& root, const json& sess, const json& parties, Replay& rp) {
  std::set<std::string> codes;
  for (const auto& c : sess.at("conventions_used"))
    codes.insert(c.get<std::string>());
  for (const auto& c : codes)
    if (!kSupported.count(c))
      rp.check("convention " + c, false, "not implemented");
  bool mode_required = root.at("gajim_compat").value("mode_required", false);
  // A file whose wire strings follow Gajim's negotiation behaviour lists R-codes; the
  // cryptographic codes are applied one by one.
  bool gajim_wire = mode_required || codes.count("R1") || codes.count("R2");
  CryptoConv conv;
  conv.g1 = mode_required || codes.count("G1");
  conv.g2 = mode_required || codes.count("G2");
  conv.g4 = mode_required || codes.count("G4");
  conv.g5a = mode_required || codes.count("G5a");
  conv.g5b = mode_required || codes.count("G5b");
  rp.m_style.empty_tag_space = gajim_wire;

  s.alice_jid = str(parties.at("alice"), "jid");
  s.bob_jid = str(parties.at("bob"), "jid");
  const json& in = sess.at("inputs");
  for (PartyConfig* p : {&s.alice, &s.bob}) {
    p->policy.compat = gajim_wire ? Compat::gajim : Compat::spec;
    p->policy.conv = conv;
    p->policy.allow_weak_groups = true;
    p->policy.stanzas = {"message"};
    if (!gajim_wire)
      p->policy.stanzas = {"message", "presence", "iq"};
  }
  s.alice.jid = s.alice_jid;
  s.bob.jid = s.bob_jid;
  s.alice.thread = str(sess, "thread");
  s.alice.policy.groups.clear();
  for (const auto& g : in.at("offered_modp"))
    s.alice.policy.groups.push_back(g.get<int>());
  s.bob.policy.groups = s.alice.policy.groups;
  s.alice.policy.logging.clear();
  for (const auto& l : sess.at("alice_config").at("logging_preference"))
    s.alice.policy.logging.push_back(l.get<std::string>());
  s.bob.policy.logging.clear();
  for (const auto& l : sess.at("bob_config").at("logging_preference"))
    s.bob.policy.logging.push_back(l.get<std::string>());
  for (const auto& r : sess.at("retained_secrets_before").at("alice"))
    s.alice.retained.push_back(secret(hexb(r.get<std::string>())));
  for (const auto& r : sess.at("retained_secrets_before").at("bob"))
    s.bob.retained.push_back(secret(hexb(r.get<std::string>())));
  s.alice.trace = &s.alice_trace;
  s.bob.trace = &s.bob_trace;

  s.alice_rng.nonce_value = hexb(str(in, "N_A"));
  for (auto it = in.at("x").begin(); it != in.at("x").end(); ++it)
    s.alice_rng.x[std::stoi(it.key())] = hexint(it.value().get<std::string>());
  for (const auto& d : in.at("rshashes_decoys"))
    s.alice_rng.decoy_values.push_back(hexb(d));
  s.bob_rng.nonce_value = hexb(str(in, "N_B"));
  s.bob_rng.y = hexint(str(in, "y"));
  Bytes ca = hexb(str(in, "C_A"));
  if (ca.size() != 16)
    throw BadFile{"C_A must be 16 bytes"};
  s.bob_rng.counter = Counter128::from_bytes(ca);
  for (const auto& d : in.at("srshash_random"))
    s.bob_rng.srshash_values.push_back(hexb(d));
  if (in.contains("C_B"))
    rp.check("inputs.C_B", Counter128::from_bytes(ca).flip_top().hex(), str(in, "C_B"));
}

Result<xml::Element> parse_wire(const std::string& w) {
  return xml::parse(w, xml::kNsClient);
}

xml::Element must_parse(const std::string& w) {
  auto e = parse_wire(w);
  if (!e)
    throw BadFile{"a wire string is not XML: " + e.error().detail};
  return e.value();
}

std::string c_of(const xml::Element& stanza, const Replay& rp) {
  const xml::Element* c = stanza.child("c", xml::kNsC);
  return c ? xml::serialize(*c, stanza.ns, rp.m_style) : std::string("(no <c/>)");
}

// compare_expected checks every member of 'expected' that a party computed.
void compare_expected(const std::string& label, const json& exp, Setup& s, Replay& rp) {
  auto flat = json::object();
  for (auto it = exp.begin(); it != exp.end(); ++it) {
    if (it.value().is_object()) {
      for (auto jt = it.value().begin(); jt != it.value().end(); ++jt)
        flat[it.key() + "." + jt.key()] = jt.value();
    } else {
      flat[it.key()] = it.value();
    }
  }
  auto as_text = [](const json& v) -> std::string {
    if (v.is_string())
      return v.get<std::string>();
    if (v.is_number_integer())
      return std::to_string(v.get<long long>());
    if (v.is_array()) {
      std::string out;
      for (const auto& x : v)
        out += (out.empty() ? "" : ",") + x.get<std::string>();
      return out;
    }
    return v.dump();
  };
  json derived = json::object();
  for (auto it = flat.begin(); it != flat.end(); ++it) {
    std::string want = as_text(it.value());
    bool seen = false;
    for (auto* tr : {&s.alice_trace, &s.bob_trace}) {
      auto f = tr->find(it.key());
      if (f == tr->end())
        continue;
      seen = true;
      rp.check(label + " " + it.key() + " (" + (tr == &s.alice_trace ? "alice" : "bob") + ")",
               f->second, want);
      derived[it.key()] = f->second;
    }
    if (it.key().ends_with("_sha256") || it.key().ends_with("_len")) {
      std::string base = it.key().substr(0, it.key().rfind('_'));
      auto f = s.alice_trace.find(base);
      if (f == s.alice_trace.end())
        f = s.bob_trace.find(base);
      if (f != s.bob_trace.end() && f != s.alice_trace.end()) {
        std::string got = it.key().ends_with("_len")
                              ? std::to_string(f->second.size())
                              : hex(digest(HashAlg::sha256, view(f->second)));
        rp.check(label + " " + it.key(), got, want);
        seen = true;
      }
    }
    if (it.key() == "p_bits" || it.key() == "g") {
      const DhGroup* g = dh_group(exp.at("chosen_modp").get<int>());
      rp.check(label + " " + it.key(), it.key() == "g" ? "2" : std::to_string(g ? g->bits : 0),
               want);
      seen = true;
    }
    if (!seen)
      rp.check(label + " " + it.key(), false, "no party computed this value");
  }
  rp.values[label] = derived;
}

void replay_session(const json& root, const json& sess, Replay& rp) {
  Setup s;
  std::string label = sess.value("label", "session");
  setup(s, root, sess, root.at("parties"), rp);
  const json& neg = sess.at("negotiation");
  if (neg.size() != 4)
    throw BadFile{"negotiation must have four messages"};

  auto started = Negotiation::start(s.alice, s.bob_jid, s.alice_rng);
  if (!started) {
    rp.check(label + " msg 1", false, started.error().detail);
    return;
  }
  Negotiation alice = std::move(started->first);
  rp.emit(started->second.send.at(0));
  rp.check(label + " msg 1 wire", xml::serialize(started->second.send.at(0), {}, rp.m_style),
           str(neg[0], "wire"));

  auto responded =
      Negotiation::respond(s.bob, must_parse(str(neg[0], "wire")), s.bob_rng, s.alice_jid);
  if (!responded) {
    rp.check(label + " msg 2", false, responded.error().detail);
    return;
  }
  Negotiation bob = std::move(responded->first);
  rp.emit(responded->second.send.at(0));
  rp.check(label + " msg 2 wire", xml::serialize(responded->second.send.at(0), {}, rp.m_style),
           str(neg[1], "wire"));

  auto m3 = alice.receive(must_parse(str(neg[1], "wire")), s.alice_rng);
  if (!m3) {
    rp.check(label + " msg 3", false, m3.error().detail);
    return;
  }
  rp.emit(m3->send.at(0));
  rp.check(label + " msg 3 wire", xml::serialize(m3->send.at(0), {}, rp.m_style),
           str(neg[2], "wire"));

  auto m4 = bob.receive(must_parse(str(neg[2], "wire")), s.bob_rng);
  if (!m4 || !m4->established) {
    rp.check(label + " msg 4", false, m4 ? "not established" : m4.error().detail);
    return;
  }
  rp.emit(m4->send.at(0));
  rp.check(label + " msg 4 wire", xml::serialize(m4->send.at(0), {}, rp.m_style),
           str(neg[3], "wire"));

  auto done = alice.receive(must_parse(str(neg[3], "wire")), s.alice_rng);
  if (!done || !done->established) {
    rp.check(label + " completion", false, done ? "not established" : done.error().detail);
    return;
  }
  Established ea = std::move(*done->established), eb = std::move(*m4->established);
  rp.check(label + " SAS agrees", ea.sas == eb.sas);
  compare_expected(label, sess.at("expected"), s, rp);

  std::map<std::string, Session*> sessions = {{"alice", ea.session.get()},
                                              {"bob", eb.session.get()}};
  std::map<std::string, ScriptedRandom*> rngs = {{"alice", &s.alice_rng}, {"bob", &s.bob_rng}};
  for (const auto& st : sess.at("stanzas")) {
    std::string tag = label + " stanza " + std::to_string(st.value("seq", 0));
    for (const auto& c : st.at("conventions"))
      if (!kSupported.count(c.get<std::string>()))
        rp.check(tag + " convention " + c.get<std::string>(), false, "not implemented");
    Session* snd = sessions.at(str(st, "sender"));
    Session* rcv = sessions.at(str(st, "recipient"));
    xml::Element wire = must_parse(str(st, "wire"));
    xml::Element envelope(wire.name, wire.ns);
    envelope.attrs = wire.attrs;
    for (const auto& ch : wire.children)
      if (ch.is("thread", xml::kNsClient))
        envelope.children.push_back(ch);
    auto content = xml::parse_fragment(str(st, "plaintext"), xml::kNsClient);
    if (!content)
      throw BadFile{"stanza plaintext is not XML content"};
    for (auto& ch : content.value())
      envelope.children.push_back(ch);
    SendOptions opts;
    if (st.contains("plaintext_padded_hex"))
      opts.plaintext_override = hexb(str(st, "plaintext_padded_hex"));
    auto enc = snd->encrypt(envelope, *rngs.at(str(st, "sender")), opts);
    if (!enc) {
      rp.check(tag + " encrypt", false, enc.error().detail);
      continue;
    }
    rp.emit(enc.value());
    const CounterTrace& t = snd->last_trace();
    rp.check(tag + " <c/>", c_of(enc.value(), rp), c_of(wire, rp));
    rp.check(tag + " m_content", t.m_content, str(st, "m_content"));
    rp.check(tag + " a_mac", hex(t.a_mac), str(st, "a_mac"));
    rp.check(tag + " m_final_hex", hex(t.m_final), str(st, "m_final_hex"));
    rp.check(tag + " counter_before", t.before.hex(), str(st, "counter_before"));
    rp.check(tag + " counter_after", t.after.hex(), str(st, "counter_after"));
    if (st.contains("first_block_counter"))
      rp.check(
          tag + " first_block_counter",
          t.carried_in > 0 ? "null" : (snd->suite().conv.g2 ? t.before.add(1) : t.before).hex(),
          st["first_block_counter"].is_string() ? str(st, "first_block_counter") : "null");
    if (st.contains("counter_blocks_consumed"))
      rp.check(tag + " counter_blocks_consumed", std::to_string(t.blocks),
               std::to_string(st["counter_blocks_consumed"].get<long long>()));
    if (st.contains("keystream_bytes_carried_in"))
      rp.check(tag + " keystream_bytes_carried_in", std::to_string(t.carried_in),
               std::to_string(st["keystream_bytes_carried_in"].get<long long>()));
    if (st.contains("keystream_bytes_carried_out"))
      rp.check(tag + " keystream_bytes_carried_out", std::to_string(t.carried_out),
               std::to_string(st["keystream_bytes_carried_out"].get<long long>()));
    auto dec = rcv->decrypt(wire);
    const json& rr = st.at("receiver_result");
    if (!dec) {
      rp.check(tag + " receiver accepts", false, dec.error().detail);
      continue;
    }
    rp.check(tag + " receiver plaintext", hex(view(dec->plaintext)),
             str(rr, "decrypted_plaintext_hex"));
    const xml::Element* body = dec->stanza.child("body", xml::kNsClient);
    rp.check(tag + " decrypted body", body ? body->text_content() : "", str(rr, "decrypted_body"));
    rp.check(tag + " receiver counters",
             rcv->last_trace().before.hex() + ">" + rcv->last_trace().after.hex(),
             str(rr, "receiver_counter_before") + ">" + str(rr, "receiver_counter_after"));
  }
  if (sess.contains("termination")) {
    const json& tm = sess.at("termination");
    Session* snd = sessions.at(str(tm, "sender"));
    Session* rcv = sessions.at(str(tm, "recipient"));
    auto t = snd->terminate(*rngs.at(str(tm, "sender")));
    if (!t) {
      rp.check(label + " termination", false, t.error().detail);
    } else {
      rp.emit(t.value());
      rp.check(label + " termination wire", xml::serialize(t.value(), {}, rp.m_style),
               str(tm, "wire"));
      auto r = rcv->decrypt(must_parse(str(tm, "wire")));
      rp.check(label + " termination received", r && r->terminated && !r->reply,
               r ? "" : r.error().detail);
    }
  }
  for (auto* r : {&s.alice_rng, &s.bob_rng})
    for (const auto& p : r->problems)
      rp.check(label + " randomness", false, p);
}

// ---- Negative cases ------------------------------------------------------------------------

struct CaseParties {
  Setup s;
  std::optional<Negotiation> alice, bob;
  std::unique_ptr<Session> alice_session, bob_session;
  // Threads whose negotiation failed: a party never restarts one from a replayed request.
  std::set<std::string> failed_threads;
};

// deliver gives a stanza to a party; returns the error, if any.
std::optional<Error> deliver(CaseParties& cp, const std::string& to, const xml::Element& st) {
  bool is_alice = to == "alice";
  auto& sess = is_alice ? cp.alice_session : cp.bob_session;
  if (sess && st.child("c", xml::kNsC) && !is_negotiation_stanza(st)) {
    auto r = sess->decrypt(st);
    if (!r)
      return r.error();
    return std::nullopt;
  }
  auto& neg = is_alice ? cp.alice : cp.bob;
  ScriptedRandom& rng = is_alice ? cp.s.alice_rng : cp.s.bob_rng;
  if (!is_alice && !neg) {
    const xml::Element* th = st.child("thread", xml::kNsClient);
    std::string thread = th ? th->text_content() : std::string();
    if (cp.failed_threads.count(thread))
      return Error{Errc::replay, "request on a thread whose negotiation failed"};
    auto r = Negotiation::respond(cp.s.bob, st, rng, cp.s.alice_jid);
    if (!r) {
      cp.failed_threads.insert(thread);
      return r.error();
    }
    neg.emplace(std::move(r->first));
    return std::nullopt;
  }
  if (!neg)
    return Error{Errc::no_session, "no negotiation"};
  auto r = neg->receive(st, rng);
  if (!r)
    return r.error();
  if (r->established)
    sess = std::move(r->established->session);
  return std::nullopt;
}

void replay_case(const json& root, const json& base, const json& cs, Replay& rp) {
  std::string id = cs.value("id", "case");
  CaseParties cp;
  json sess = base;
  sess["conventions_used"] = root.at("conventions_used");
  setup(cp.s, root, sess, base.at("parties"), rp);
  auto started = Negotiation::start(cp.s.alice, cp.s.bob_jid, cp.s.alice_rng);
  if (!started)
    throw BadFile{"base scenario cannot start: " + started.error().detail};
  cp.alice.emplace(std::move(started->first));
  for (const auto& d : cs.at("deliver_first")) {
    auto err = deliver(cp, str(d, "to"), must_parse(str(d, "wire")));
    rp.check(id + " deliver " + d.value("ref", "?"), !err, err ? err->detail : "");
    if (err)
      return;
  }
  std::string receiver = str(cs, "receiver");
  auto tampered = parse_wire(str(cs, "tampered_wire"));
  std::optional<Error> err =
      tampered ? deliver(cp, receiver, tampered.value()) : std::optional<Error>(tampered.error());
  std::string want = cs.at("expected_outcome").value("result", "reject");
  if (want != "reject")
    throw BadFile{"unknown expected_outcome.result '" + want + "'"};
  rp.check(id + " tampered message refused", err.has_value());
  json outcome = {{"refused", err.has_value()}};
  if (err)
    outcome["error"] = std::string(errc_name(err->code)) + ": " + err->detail;
  auto again = deliver(cp, receiver, must_parse(str(cs.at("original"), "wire")));
  rp.check(id + " original refused after teardown", again.has_value());
  rp.values[id] = outcome;
}

int run(const std::string& path, Replay& rp) {
  std::ifstream f(path);
  if (!f) {
    std::fprintf(stderr, "esession-vectors: error: cannot open %s\n", path.c_str());
    return 2;
  }
  json root;
  try {
    root = json::parse(f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "esession-vectors: error: %s is not JSON: %s\n", path.c_str(), e.what());
    return 2;
  }
  try {
    if (root.value("schema", "") != "esession-vector/1")
      throw BadFile{"schema is not esession-vector/1"};
    bool has_sessions = root.contains("sessions"), has_cases = root.contains("cases");
    if (has_sessions == has_cases)
      throw BadFile{"a file holds either sessions or cases"};
    if (has_sessions) {
      if (!root["sessions"].is_array() || root["sessions"].empty())
        throw BadFile{"sessions must be a non-empty array"};
      for (const auto& s : root["sessions"])
        replay_session(root, s, rp);
    } else {
      for (const auto& c : root.at("cases"))
        replay_case(root, root.at("base_scenario"), c, rp);
    }
  } catch (const BadFile& b) {
    std::fprintf(stderr, "esession-vectors: error: %s: %s\n", path.c_str(), b.why.c_str());
    return 2;
  } catch (const json::exception& e) {
    std::fprintf(stderr, "esession-vectors: error: %s: %s\n", path.c_str(), e.what());
    return 2;
  }
  json out = {{"file", path},
              {"checks", rp.checks},
              {"mismatches", rp.mismatches},
              {"values", rp.values},
              {"result", rp.mismatches.empty() ? "pass" : "fail"}};
  std::cout << out.dump() << "\n";
  for (const auto& m : rp.mismatches)
    std::fprintf(stderr, "esession-vectors: mismatch: %s\n", m.c_str());
  std::fprintf(stderr, "esession-vectors: %s: %d checks, %zu mismatches\n", path.c_str(), rp.checks,
               rp.mismatches.size());
  return rp.mismatches.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Replay rp;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quiet" || a == "-q")
      rp.quiet = true;
    else if (path.empty())
      path = a;
    else
      path = "";
  }
  if (path.empty()) {
    std::fprintf(stderr, "usage: esession-vectors [--quiet] FILE\n");
    return 2;
  }
  return run(path, rp);
}
