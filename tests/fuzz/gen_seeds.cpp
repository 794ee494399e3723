// fuzz-seeds: writes seed inputs for the fuzz targets from the project's own output.
//
//   fuzz-seeds OUTDIR [VECTOR.json ...]
//
// Writes OUTDIR/<target>/<name> files: in-process negotiations and sessions (deterministic, and
// for fuzz_respond and fuzz_session made so the fuzz targets' responder and receivers accept
// them), plus the wire stanzas found in esession-vector/1 files. Each transcript is replayed
// through the fuzz targets' own code first; a seed that does not reach as deep as it should is
// an error (exit 1), because it would silently make the fuzzing shallow.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "object/smime.hpp"
#include "session_fixture.hpp"

using namespace esession;
namespace fs = std::filesystem;

namespace {

int g_written = 0;

void write_seed(const fs::path& dir, const std::string& target, const std::string& name,
                std::string_view bytes) {
  fs::create_directories(dir / target);
  std::ofstream f(dir / target / name, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "fuzz-seeds: cannot write %s/%s\n", target.c_str(), name.c_str());
    std::exit(2);
  }
  ++g_written;
}

xml::Element must(Result<xml::Element> r, const char* what) {
  fuzz::check(r.has_value(), what);
  return std::move(r).value();
}

// Transcript is one negotiation between a seeded Alice and the fuzz targets' Bob.
struct Transcript {
  std::vector<xml::Element> alice;  // offer, accept, then encrypted stanzas
  std::vector<xml::Element> bob;    // response, identity
  size_t encrypted = 0;
};

Transcript negotiate(PartyConfig alice_cfg, Compat bob_mode, uint64_t alice_seed) {
  Transcript t;
  fuzz::SeededRandom ra(alice_seed), rb(fuzz::kResponderSeed);
  alice_cfg.jid = fuzz::kAliceJid;
  auto a = Negotiation::start(alice_cfg, fuzz::kBobJid, ra);
  fuzz::check(a.has_value(), "seed: start failed");
  xml::Element m1 = a->second.send.at(0);
  m1.set_attr("from", fuzz::kAliceJid);
  t.alice.push_back(m1);
  auto b = Negotiation::respond(fuzz::responder_config(bob_mode), m1, rb);
  fuzz::check(b.has_value(), "seed: respond failed");
  t.bob.push_back(b->second.send.at(0));
  auto m3 = a->first.receive(b->second.send.at(0), ra);
  fuzz::check(m3.has_value(), "seed: message 3 failed");
  t.alice.push_back(m3->send.at(0));
  auto m4 = b->first.receive(m3->send.at(0), rb);
  fuzz::check(m4.has_value() && m4->established.has_value(), "seed: message 4 failed");
  t.bob.push_back(m4->send.at(0));
  auto done = a->first.receive(m4->send.at(0), ra);
  fuzz::check(done.has_value() && done->established.has_value(), "seed: completion failed");
  Session& s = *done->established->session;
  const std::string& thread = a->first.thread();
  xml::Element msg = fuzz::detail::chat(fuzz::kBobJid, thread, "seed message");
  t.alice.push_back(must(s.encrypt(msg, ra), "seed: encrypt"));
  if (bob_mode == Compat::spec) {
    xml::Element p("presence", std::string(xml::kNsClient));
    p.add_text_child("show", "dnd");
    t.alice.push_back(must(s.encrypt(p, ra), "seed: encrypt presence"));
  }
  t.alice.push_back(must(s.terminate(ra), "seed: terminate"));
  t.encrypted = t.alice.size() - 2;
  return t;
}

std::string join(const std::vector<xml::Element>& v, std::string_view sep) {
  std::string out;
  for (const auto& e : v) {
    if (!out.empty())
      out += sep;
    out += xml::serialize(e);
  }
  return out;
}

// json_strings returns the decoded values of every "key": "..." in a JSON text (a minimal
// decoder for the vector files: string escapes, \uXXXX as UTF-8 without surrogate pairs).
std::vector<std::string> json_strings(const std::string& text, const std::string& key) {
  std::vector<std::string> out;
  const std::string needle = "\"" + key + "\": \"";
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    std::string v;
    size_t i = at + needle.size();
    for (; i < text.size() && text[i] != '"'; ++i) {
      char c = text[i];
      if (c != '\\' || i + 1 >= text.size()) {
        v.push_back(c);
        continue;
      }
      char e = text[++i];
      switch (e) {
        case 'n':
          v.push_back('\n');
          break;
        case 't':
          v.push_back('\t');
          break;
        case 'r':
          v.push_back('\r');
          break;
        case 'u': {
          if (i + 4 >= text.size())
            break;
          unsigned cp = static_cast<unsigned>(std::stoul(text.substr(i + 1, 4), nullptr, 16));
          i += 4;
          if (cp < 0x80) {
            v.push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            v.push_back(static_cast<char>(0xc0 | (cp >> 6)));
            v.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          } else {
            v.push_back(static_cast<char>(0xe0 | (cp >> 12)));
            v.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            v.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          }
          break;
        }
        default:
          v.push_back(e);  // \" \\ \/
      }
    }
    out.push_back(std::move(v));
  }
  return out;
}

std::string with_prefix(uint8_t a, uint8_t b, std::string_view rest) {
  std::string s;
  s.push_back(static_cast<char>(a));
  s.push_back(static_cast<char>(b));
  s += rest;
  return s;
}

void transcripts(const fs::path& out) {
  struct Spec {
    const char* name;
    Compat bob;
    uint64_t seed;
    void (*setup)(PartyConfig&);
  };
  const Spec specs[] = {
      {"spec-modp14-retained", Compat::spec, 1,
       [](PartyConfig& a) {
         a.policy.groups = {14};
         a.retained = {SecretBytes(32, 0x5a)};
       }},
      {"spec-modp1", Compat::spec, 2,
       [](PartyConfig& a) {
         a.policy.groups = {1, 14};
         a.policy.allow_weak_groups = true;
       }},
      {"spec-xep0217", Compat::spec, 3,
       [](PartyConfig& a) {
         a.policy.groups = {14};
         a.policy.xep0217 = true;
       }},
      {"gajim-modp5", Compat::gajim, 4,
       [](PartyConfig& a) {
         a.policy.compat = Compat::gajim;
         a.policy.groups = {5};
         a.policy.allow_weak_groups = true;
         a.policy.stanzas = {"message"};
         a.policy.logging = {"may", "mustnot"};
       }},
  };
  for (const Spec& sp : specs) {
    PartyConfig a;
    sp.setup(a);
    Transcript t = negotiate(a, sp.bob, sp.seed);
    std::string name = sp.name;
    std::string stream = join(t.alice, "\n");
    auto replay = fuzz::replay_responder(sp.bob, fuzz::split_stanzas(stream, 8));
    if (!replay.established || replay.decrypted != t.encrypted) {
      std::fprintf(stderr,
                   "fuzz-seeds: transcript %s does not replay in fuzz_respond (established %d, "
                   "decrypted %zu of %zu)\n",
                   sp.name, replay.established, replay.decrypted, t.encrypted);
      std::exit(1);
    }
    write_seed(out, "fuzz_respond", name, stream);
    write_seed(out, "fuzz_respond", name + "-offer", xml::serialize(t.alice[0]));
    write_seed(out, "fuzz_reader", name, with_prefix(0, 0x80, stream + "\n"));
    write_seed(out, "fuzz_reader", name + "-small-limit",
               with_prefix(7, 0x10, "<?xml version='1.0'?>\n" + join(t.alice, "\n  ")));
    const char* labels[] = {"offer", "accept"};
    for (size_t i = 0; i < 2; ++i) {
      write_seed(out, "fuzz_xml_form", name + "-" + labels[i], xml::serialize(t.alice[i]));
      write_seed(out, "fuzz_xml_form", name + "-bob-" + std::to_string(i + 2),
                 xml::serialize(t.bob[i]));
    }
    // A rejection: Bob's error reply carries the offer's form back.
    PartyConfig picky = fuzz::responder_config(sp.bob);
    picky.policy.groups = {18};
    picky.policy.compat = Compat::spec;
    fuzz::SeededRandom rng(9);
    std::optional<xml::Element> reply;
    if (!Negotiation::respond(picky, t.alice[0], rng, {}, &reply) && reply)
      write_seed(out, "fuzz_xml_form", name + "-error", xml::serialize(*reply));
  }
  write_seed(out, "fuzz_xml_form", "terminate",
             "<message to='b@x/y'><thread>t</thread>" + xml::serialize(terminate_form("submit")) +
                 "</message>");
  write_seed(out, "fuzz_reader", "markup",
             with_prefix(3, 0x01,
                         "<?xml version='1.0' encoding='UTF-8'?>\n<!-- between -->\n"
                         "<message to='a&gt;b' id=\"q'>\"><body><![CDATA[<not a tag>]]>x</body>"
                         "<?pi data?><!-- in --><e:x xmlns:e='urn:e'/></message>\n\n"
                         "<presence/> <iq type='get'><q xmlns='urn:q'/></iq>\n"));
}

void session_seeds(const fs::path& out) {
  const auto cases = fuzz::make_decrypt_cases();
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    auto idx = static_cast<uint8_t>(i);
    write_seed(out, "fuzz_session", c.label + "-stanza", with_prefix(idx, 2, c.wire));
    const xml::Element* ce = c.stanza.child("c", xml::kNsC);
    if (!ce)
      continue;
    write_seed(out, "fuzz_session", c.label + "-c", with_prefix(idx, 3, serialize_children(*ce)));
    if (const auto* d = ce->child("data", xml::kNsC))
      write_seed(out, "fuzz_session", c.label + "-data", with_prefix(idx, 0, d->text_content()));
    if (const auto* m = ce->child("mac", xml::kNsC))
      write_seed(out, "fuzz_session", c.label + "-mac", with_prefix(idx, 1, m->text_content()));
    for (std::string_view n : {"key", "new", "old"})
      if (const auto* k = ce->child(n, xml::kNsC)) {
        write_seed(out, "fuzz_session", c.label + "-" + std::string(n),
                   with_prefix(idx, 4, k->text_content()));
        break;
      }
  }
}

void vector_seeds(const fs::path& out, const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::set<std::string> seen;
  std::string stream;
  int n = 0;
  for (const auto& wire : json_strings(text, "wire")) {
    if (!seen.insert(wire).second)
      continue;
    std::string name = file.stem().string() + "-" + std::to_string(n++);
    write_seed(out, "fuzz_xml_form", name, wire);
    stream += wire + "\n";
    auto e = xml::parse(wire, xml::kNsClient);
    if (e && is_negotiation_stanza(*e) && e->child("feature", xml::kNsFeatureNeg)) {
      const xml::Element* x = xml::find_form(*e->child("feature", xml::kNsFeatureNeg));
      if (x && x->attr_or("type") == "form")
        write_seed(out, "fuzz_respond", name, wire);
    }
  }
  if (!stream.empty())
    write_seed(out, "fuzz_reader", file.stem().string(), with_prefix(1, 0x80, stream));
}

// smime_seeds: what object/smime reads, as seal writes it and as RFC 3923 peers do (the byte
// before each is fuzz_smime's choice of reader). The DER and signatures are not real: the
// readers' paths up to OpenSSL are what the seeds open.
void smime_seeds(const fs::path& out) {
  auto seed = [&](uint8_t reader, const std::string& name, std::string_view text) {
    write_seed(out, "fuzz_smime", name,
               std::string(1, static_cast<char>(reader)) + std::string(text));
  };
  Bytes der(96);
  for (size_t i = 0; i < der.size(); ++i)
    der[i] = static_cast<uint8_t>(0x30 + i * 7);
  seed(0, "e2e-entity", smime::e2e_text(der));
  seed(0, "e2e-bare", base64(der));
  xml::Element stanza("message", std::string(xml::kNsClient));
  stanza.set_attr("from", "alice@example.com/home").set_attr("to", "bob@example.com");
  stanza.add_text_child("body", "Wherefore art thou?");
  std::string cpim =
      smime::cpim_entity("alice@example.com", "bob@example.com", 1764000000123, stanza);
  seed(1, "cpim-xmpp", cpim);
  std::string head =
      "Content-Type: Message/CPIM\r\n\r\nFrom: Juliet <pres:alice@example.com>\r\nTo: "
      "<pres:bob@example.com>\r\nDateTime: 2003-12-09T11:45:36.66+01:00\r\n\r\n";
  seed(1, "cpim-text", head + "Content-Type: text/plain; charset=utf-8\r\n\r\nHi\r\n");
  seed(1, "cpim-pidf",
       head +
           "Content-Type: application/pidf+xml\r\n\r\n<?xml version='1.0'?>\n"
           "<presence xmlns='urn:ietf:params:xml:ns:pidf' "
           "xmlns:im='urn:ietf:params:xml:ns:pidf:im' entity='pres:alice@example.com'>"
           "<tuple id='t'><status><basic>open</basic><im:im>busy</im:im></status>"
           "<note>out</note></tuple></presence>");
  seed(2, "multipart-signed", smime::multipart_signed(cpim, der));
  seed(2, "signed-data",
       "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n"
       "Content-Transfer-Encoding: base64\r\n\r\n" +
           base64(der));
}

// offline_seeds writes genuine offline requests against fuzz_offline's options: Bob's request
// with its content alone (one-shot), and with a stanza and a termination after it.
void offline_seeds(const fs::path& out) {
  const fuzz::OfflineFixture& fx = fuzz::offline_fixture();
  for (int terminate = 0; terminate < 2; ++terminate) {
    KnownKeys bob_knows;
    bob_knows.add("alice@example.org", fx.alice.public_key());
    PartyConfig c;
    c.jid = fuzz::kBobJid;
    c.policy.groups = {5, 14};
    c.policy.allow_weak_groups = true;
    c.signer = &fx.bob;
    c.verifier = &bob_knows;
    xml::Element m("message", std::string(xml::kNsClient));
    m.set_attr("to", "alice@example.org");
    m.add_text_child("body", "while you were away");
    c.content = m;
    c.terminate_after_content = terminate == 1;
    fuzz::SeededRandom rng(fuzz::kOfflineSeed + 7 + static_cast<uint64_t>(terminate));
    auto step =
        Negotiation::start_offline(c, fx.options, "alice@example.org", fuzz::kOfflineNow, rng);
    fuzz::check(step.has_value(), "seed: start_offline failed");
    std::vector<xml::Element> stream = {step->send.at(0)};
    if (!terminate) {
      Session& s = *step->established->session;
      xml::Element more = m;
      more.add_text_child("thread", step->send[0].child("thread", xml::kNsClient)->text_content());
      stream.push_back(must(s.encrypt(more, rng), "seed: encrypt"));
      stream.push_back(must(s.terminate(rng), "seed: terminate"));
    }
    int n = fuzz::replay_offline(stream);
    fuzz::check(n == (terminate ? 1 : 3), "seed: the offline request does not replay");
    write_seed(out, "fuzz_offline", terminate ? "one-shot" : "request-and-more", join(stream, ""));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fuzz-seeds OUTDIR [VECTOR.json ...]\n");
    return 2;
  }
  fs::path out = argv[1];
  transcripts(out);
  session_seeds(out);
  smime_seeds(out);
  offline_seeds(out);
  for (int i = 2; i < argc; ++i)
    vector_seeds(out, argv[i]);
  std::printf("fuzz-seeds: wrote %d seed files under %s\n", g_written, out.c_str());
  return 0;
}
