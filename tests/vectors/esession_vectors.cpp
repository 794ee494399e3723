// esession-vectors: replays an esession-vector/1 file (../shared/vectors/SCHEMA.md) against the
// library and checks every expectation in it.
//
// Usage: esession-vectors [--quiet] FILE...
//        esession-vectors --record RECIPE OUT
// Prints every wire stanza our parties generate, one per line, then one line of JSON per file
// with the derived values and the result. Exit status: 0 every expectation holds; 1 some
// expectation fails; 2 a file cannot be read or is not a valid esession-vector/1 file.
//
// --record replays the transcript RECIPE (its inputs and plaintexts; expectations may be empty)
// and writes it to OUT with every expectation set to what our parties produced: the way our own
// transcripts in formats/vectors are made (formats/vectors/README.md). A recorded file is a
// regression fixture of this implementation, not an independent known answer.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "session/negotiation.hpp"
#include "session/v1/record.hpp"

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
  std::vector<uint64_t> uniform_values;  // scripted uniform(n) results, in draw order
  std::vector<std::string> problems;

  uint64_t uniform(uint64_t n) override {
    if (m_uniform >= uniform_values.size()) {
      problems.push_back(m_who + " draws uniform(" + std::to_string(n) +
                         ") the file does not script");
      return 0;
    }
    uint64_t v = uniform_values[m_uniform++];
    if (v >= n)
      problems.push_back(m_who + ": scripted uniform value " + std::to_string(v) +
                         " is not below " + std::to_string(n));
    return v % n;
  }

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
  size_t m_uniform = 0;
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
  // record: fill expectations instead of checking them (--record).
  bool record = false;
  // expect checks |got| against node[key] (a missing member is a mismatch), or sets it when
  // recording.
  void expect(const std::string& what, json& node, const char* key, const std::string& got) {
    if (record) {
      node[key] = got;
      return;
    }
    if (!node.contains(key) || !node[key].is_string()) {
      ++checks;
      mismatches.push_back(what + ": the file has no '" + key + "'");
      return;
    }
    check(what, got, node[key].get<std::string>());
  }
  // expect_opt is expect for a member the file may leave out (then nothing is checked).
  void expect_opt(const std::string& what, json& node, const char* key, const std::string& got) {
    if (record || node.contains(key))
      expect(what, node, key, got);
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
  if (in.contains("uniform_draws"))
    for (const auto& u : in.at("uniform_draws"))
      s.alice_rng.uniform_values.push_back(u.get<uint64_t>());
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
void compare_expected(const std::string& label, json& exp, Setup& s, Replay& rp) {
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
  // When recording, a value is written back where the recipe had it (a nested member keeps its
  // object); a list-valued member is written as text only if it was text.
  auto put = [&](const std::string& key, const std::string& got) {
    size_t dot = key.find('.');
    json& slot = dot == std::string::npos ? exp[key] : exp[key.substr(0, dot)][key.substr(dot + 1)];
    if (slot.is_array()) {
      json list = json::array();
      size_t pos = 0;
      while (!got.empty() && pos <= got.size()) {
        size_t comma = got.find(',', pos);
        list.push_back(
            got.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
        if (comma == std::string::npos)
          break;
        pos = comma + 1;
      }
      slot = list;
    } else if (slot.is_number_integer()) {
      slot = std::stoll(got);
    } else {
      slot = got;
    }
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
      if (rp.record)
        put(it.key(), f->second);
      else
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
        if (rp.record)
          put(it.key(), got);
        else
          rp.check(label + " " + it.key(), got, want);
        seen = true;
      }
    }
    if (it.key() == "p_bits" || it.key() == "g") {
      const DhGroup* g = dh_group(std::stoi(as_text(exp.at("chosen_modp"))));
      std::string got = it.key() == "g" ? "2" : std::to_string(g ? g->bits : 0);
      if (rp.record)
        put(it.key(), got);
      else
        rp.check(label + " " + it.key(), got, want);
      seen = true;
    }
    if (!seen)
      rp.check(label + " " + it.key(), false, "no party computed this value");
  }
  rp.values[label] = derived;
}

// envelope_of builds the stanza a sender encrypts: |wire|'s element and attributes, its
// <thread/>, then the children of |plaintext| (XML content).
xml::Element envelope_of(const xml::Element& wire, const std::string& plaintext) {
  xml::Element envelope(wire.name, wire.ns);
  envelope.attrs = wire.attrs;
  for (const auto& ch : wire.children)
    if (ch.is("thread", xml::kNsClient))
      envelope.children.push_back(ch);
  auto content = xml::parse_fragment(plaintext, xml::kNsClient);
  if (!content)
    throw BadFile{"a plaintext is not XML content: " + content.error().detail};
  for (auto& ch : content.value())
    envelope.children.push_back(ch);
  return envelope;
}

// children_of serializes the element children of |st| other than <thread/> (what a receiver
// gets besides the routing), in the stanza's namespace context.
std::string children_of(const xml::Element& st) {
  std::string out;
  for (const auto& ch : st.children)
    if (!ch.is_text() && !ch.is("thread", xml::kNsClient))
      out += xml::serialize(ch, st.ns);
  return out;
}

void replay_session(const json& root, json& sess, Replay& rp) {
  Setup s;
  std::string label = sess.value("label", "session");
  setup(s, root, sess, root.at("parties"), rp);
  json& neg = sess.at("negotiation");
  if (neg.size() != 4)
    throw BadFile{"negotiation must have four messages"};
  // Spec-mode transcripts are compared stanza for stanza; the Gajim-derived ones (whose wire
  // carries Gajim's fallback <body/> and hints) by their <c/>.
  bool spec = s.alice.policy.compat == Compat::spec;
  // A stanza Bob sends encrypted with message 4 (formats §8).
  if (sess.contains("last_message_content")) {
    json& lc = sess.at("last_message_content");
    if (str(lc, "sender") != "bob")
      throw BadFile{"last_message_content: only Bob's message 4 is supported"};
    xml::Element m("message", std::string(xml::kNsClient));
    m.set_attr("to", s.alice_jid);
    s.bob.content = envelope_of(m, str(lc, "plaintext"));
  }

  auto started = Negotiation::start(s.alice, s.bob_jid, s.alice_rng);
  if (!started) {
    rp.check(label + " msg 1", false, started.error().detail);
    return;
  }
  Negotiation alice = std::move(started->first);
  rp.emit(started->second.send.at(0));
  rp.expect(label + " msg 1 wire", neg[0], "wire",
            xml::serialize(started->second.send.at(0), {}, rp.m_style));

  auto responded =
      Negotiation::respond(s.bob, must_parse(str(neg[0], "wire")), s.bob_rng, s.alice_jid);
  if (!responded) {
    rp.check(label + " msg 2", false, responded.error().detail);
    return;
  }
  Negotiation bob = std::move(responded->first);
  rp.emit(responded->second.send.at(0));
  rp.expect(label + " msg 2 wire", neg[1], "wire",
            xml::serialize(responded->second.send.at(0), {}, rp.m_style));

  auto m3 = alice.receive(must_parse(str(neg[1], "wire")), s.alice_rng);
  if (!m3) {
    rp.check(label + " msg 3", false, m3.error().detail);
    return;
  }
  rp.emit(m3->send.at(0));
  rp.expect(label + " msg 3 wire", neg[2], "wire", xml::serialize(m3->send.at(0), {}, rp.m_style));

  auto m4 = bob.receive(must_parse(str(neg[2], "wire")), s.bob_rng);
  if (!m4 || !m4->established) {
    rp.check(label + " msg 4", false, m4 ? "not established" : m4.error().detail);
    return;
  }
  rp.emit(m4->send.at(0));
  rp.expect(label + " msg 4 wire", neg[3], "wire", xml::serialize(m4->send.at(0), {}, rp.m_style));

  auto done = alice.receive(must_parse(str(neg[3], "wire")), s.alice_rng);
  if (!done || !done->established) {
    rp.check(label + " completion", false, done ? "not established" : done.error().detail);
    return;
  }
  if (sess.contains("last_message_content")) {
    json& lc = sess.at("last_message_content");
    rp.check(label + " content on message 4 delivered", done->content.size() == 1);
    if (done->content.size() == 1)
      rp.expect(label + " content on message 4", lc, "received",
                children_of(done->content[0].stanza));
  } else {
    rp.check(label + " no content on message 4", done->content.empty());
  }
  Established ea = std::move(*done->established), eb = std::move(*m4->established);
  rp.check(label + " SAS agrees", ea.sas == eb.sas);
  compare_expected(label, sess.at("expected"), s, rp);

  std::map<std::string, Session*> sessions = {{"alice", ea.session.get()},
                                              {"bob", eb.session.get()}};
  std::map<std::string, ScriptedRandom*> rngs = {{"alice", &s.alice_rng}, {"bob", &s.bob_rng}};
  for (json& st : sess.at("stanzas")) {
    std::string tag = label + " stanza " + std::to_string(st.value("seq", 0));
    for (const auto& c : st.at("conventions"))
      if (!kSupported.count(c.get<std::string>()))
        rp.check(tag + " convention " + c.get<std::string>(), false, "not implemented");
    Session* snd = sessions.at(str(st, "sender"));
    Session* rcv = sessions.at(str(st, "recipient"));
    // A recipe gives the envelope as 'envelope' (the stanza without content); a transcript's
    // 'wire' carries the same element, attributes and <thread/>.
    xml::Element envelope =
        envelope_of(must_parse(st.contains("wire") && !st["wire"].get<std::string>().empty()
                                   ? str(st, "wire")
                                   : str(st, "envelope")),
                    str(st, "plaintext"));
    SendOptions opts;
    if (st.contains("plaintext_padded_hex"))
      opts.plaintext_override = hexb(str(st, "plaintext_padded_hex"));
    auto enc = snd->encrypt(envelope, *rngs.at(str(st, "sender")), opts);
    if (!enc) {
      rp.check(tag + " encrypt", false, enc.error().detail);
      continue;
    }
    rp.emit(enc.value());
    const v1::CounterTrace& t = snd->v1()->last_trace();
    if (spec)
      rp.expect(tag + " wire", st, "wire", xml::serialize(enc.value(), {}, rp.m_style));
    else
      rp.check(tag + " <c/>", c_of(enc.value(), rp), c_of(must_parse(str(st, "wire")), rp));
    // For an error stanza with details these are the values of its second <c/> (formats §11.4).
    rp.expect_opt(tag + " m_content", st, "m_content", t.m_content);
    rp.expect_opt(tag + " a_mac", st, "a_mac", hex(t.a_mac));
    rp.expect_opt(tag + " m_final_hex", st, "m_final_hex", hex(t.m_final));
    rp.expect_opt(tag + " counter_before", st, "counter_before", t.before.hex());
    rp.expect_opt(tag + " counter_after", st, "counter_after", t.after.hex());
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
    auto dec = rcv->decrypt(must_parse(str(st, "wire")));
    json& rr = st["receiver_result"];
    if (!dec) {
      rp.check(tag + " receiver accepts", false, dec.error().detail);
      continue;
    }
    if (spec) {
      rp.expect(tag + " receiver stanza", rr, "decrypted_stanza",
                xml::serialize(dec->stanza, {}, rp.m_style));
    } else {
      rp.expect(tag + " receiver plaintext", rr, "decrypted_plaintext_hex",
                hex(view(dec->plaintext)));
      const xml::Element* body = dec->stanza.child("body", xml::kNsClient);
      rp.expect(tag + " decrypted body", rr, "decrypted_body", body ? body->text_content() : "");
      rp.expect(tag + " receiver counters", rr, "receiver_counter_before",
                rcv->v1()->last_trace().before.hex());
      rp.expect(tag + " receiver counters", rr, "receiver_counter_after",
                rcv->v1()->last_trace().after.hex());
    }
  }
  if (sess.contains("termination")) {
    json& tm = sess.at("termination");
    Session* snd = sessions.at(str(tm, "sender"));
    Session* rcv = sessions.at(str(tm, "recipient"));
    auto t = snd->terminate(*rngs.at(str(tm, "sender")));
    if (!t) {
      rp.check(label + " termination", false, t.error().detail);
    } else {
      rp.emit(t.value());
      rp.expect(label + " termination wire", tm, "wire", xml::serialize(t.value(), {}, rp.m_style));
      auto r = rcv->decrypt(must_parse(str(tm, "wire")));
      rp.check(label + " termination received", r && r->terminated, r ? "" : r.error().detail);
      // Spec mode acknowledges (formats §13); Gajim's termination is answered by nothing (T1).
      if (r && spec) {
        rp.check(label + " termination acknowledged", r->reply.has_value());
        if (r->reply) {
          rp.emit(*r->reply);
          rp.expect(label + " acknowledgement wire", tm, "ack_wire",
                    xml::serialize(*r->reply, {}, rp.m_style));
          auto a = snd->decrypt(must_parse(str(tm, "ack_wire")));
          rp.check(label + " acknowledgement received", a && a->terminated && !a->reply,
                   a ? "" : a.error().detail);
        }
      } else if (r) {
        rp.check(label + " termination not acknowledged", !r->reply.has_value());
      }
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

// deliver gives a stanza to a party; returns the error, if any. A party with a session gets every
// stanza that is not a negotiation message through it (a clear stanza too: it is refused).
std::optional<Error> deliver(CaseParties& cp, const std::string& to, const xml::Element& st) {
  bool is_alice = to == "alice";
  auto& sess = is_alice ? cp.alice_session : cp.bob_session;
  if (sess && !is_negotiation_stanza(st)) {
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

// kClasses are the failure classes a case may name (formats/vectors/README.md).
const std::set<std::string> kClasses = {"malformed",   "unsupported",  "not-acceptable",
                                        "auth-failed", "bad-dh-value", "replay",
                                        "wrong-state"};

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
  const json& want = cs.at("expected_outcome");
  if (want.value("result", "reject") != "reject")
    throw BadFile{"unknown expected_outcome.result '" + want.value("result", "") + "'"};
  std::string cls = want.value("class", "");
  if (!cls.empty() && !kClasses.count(cls))
    throw BadFile{id + ": unknown failure class '" + cls + "'"};
  std::string receiver = str(cs, "receiver");
  std::optional<Error> err;
  if (cs.contains("tampered_plaintext_hex")) {
    // The sender encrypts exactly these bytes as its next stanza (a content the receiver must
    // refuse after decrypting it, which no bit flip on the wire can make).
    auto& snd = receiver == "alice" ? cp.bob_session : cp.alice_session;
    if (!snd)
      throw BadFile{id + ": the sender has no session"};
    xml::Element envelope = must_parse(str(cs, "envelope"));
    SendOptions opts;
    opts.plaintext_override = hexb(str(cs, "tampered_plaintext_hex"));
    ScriptedRandom& rng = receiver == "alice" ? cp.s.bob_rng : cp.s.alice_rng;
    auto enc = snd->encrypt(envelope, rng, opts);
    if (!enc)
      throw BadFile{id + ": the sender cannot encrypt: " + enc.error().detail};
    err = deliver(cp, receiver, enc.value());
  } else {
    auto tampered = parse_wire(str(cs, "tampered_wire"));
    err = tampered ? deliver(cp, receiver, tampered.value())
                   : std::optional<Error>(Error{Errc::malformed, tampered.error().detail});
  }
  rp.check(id + " tampered message refused", err.has_value());
  if (err && !cls.empty())
    rp.check(id + " failure class", std::string(errc_name(err->code)), cls);
  json outcome = {{"refused", err.has_value()}};
  if (err)
    outcome["error"] = std::string(errc_name(err->code)) + ": " + err->detail;
  if (cs.contains("original") && cs.value("session_survives", false)) {
    // An unauthenticated stanza leaves the session as it was: the genuine one still opens.
    auto again = deliver(cp, receiver, must_parse(str(cs.at("original"), "wire")));
    rp.check(id + " original accepted (the session survives)", !again.has_value());
  } else if (cs.contains("original")) {
    auto again = deliver(cp, receiver, must_parse(str(cs.at("original"), "wire")));
    rp.check(id + " original refused after teardown", again.has_value());
  } else {
    auto& rs = receiver == "alice" ? cp.alice_session : cp.bob_session;
    rp.check(id + " receiver's session destroyed", !rs || !rs->can_receive());
  }
  rp.values[id] = outcome;
}

int run(const std::string& path, Replay& rp, const std::string& record_to) {
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
      for (auto& s : root["sessions"])
        replay_session(root, s, rp);
    } else {
      if (rp.record)
        throw BadFile{"--record takes a transcript, not cases"};
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
  if (rp.record) {
    if (!rp.mismatches.empty()) {
      for (const auto& m : rp.mismatches)
        std::fprintf(stderr, "esession-vectors: error: %s\n", m.c_str());
      return 1;
    }
    std::ofstream out(record_to);
    out << root.dump(1, ' ', false) << "\n";
    if (!out) {
      std::fprintf(stderr, "esession-vectors: error: cannot write %s\n", record_to.c_str());
      return 2;
    }
    return 0;
  }
  json out = {{"file", path},
              {"checks", rp.checks},
              {"mismatches", rp.mismatches},
              {"values", rp.values},
              {"result", rp.mismatches.empty() ? "pass" : "fail"}};
  std::cout << out.dump() << "\n";
  for (const auto& m : rp.mismatches)
    std::fprintf(stderr, "esession-vectors: mismatch: %s: %s\n", path.c_str(), m.c_str());
  if (!rp.quiet || !rp.mismatches.empty())
    std::fprintf(stderr, "esession-vectors: %s: %d checks, %zu mismatches\n", path.c_str(),
                 rp.checks, rp.mismatches.size());
  return rp.mismatches.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool quiet = false;
  std::vector<std::string> paths;
  std::string record_in, record_out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quiet" || a == "-q") {
      quiet = true;
    } else if (a == "--record" && i + 2 < argc) {
      record_in = argv[++i];
      record_out = argv[++i];
    } else {
      paths.push_back(a);
    }
  }
  if (!record_in.empty() && paths.empty()) {
    Replay rp;
    rp.quiet = true;
    rp.record = true;
    return run(record_in, rp, record_out);
  }
  if (paths.empty() || !record_in.empty()) {
    std::fprintf(stderr,
                 "usage: esession-vectors [--quiet] FILE...\n"
                 "       esession-vectors --record RECIPE OUT\n");
    return 2;
  }
  int worst = 0;
  size_t failed = 0;
  for (const auto& p : paths) {
    Replay rp;
    rp.quiet = quiet;
    int rc = run(p, rp, {});
    failed += rc != 0;
    worst = std::max(worst, rc);
  }
  if (paths.size() > 1)
    std::fprintf(stderr, "esession-vectors: %zu files, %zu failed\n", paths.size(), failed);
  return worst;
}
