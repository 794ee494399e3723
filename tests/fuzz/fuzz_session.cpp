// fuzz_session: XEP-0200 decryption of tampered stanzas.
//
// Genuine traffic is made once (session_fixture.hpp). Input: byte 0 picks the genuine stanza,
// byte 1 the mutation, the rest is the payload:
//   mode 0: the payload replaces the text of <data/>   (added if the stanza has none)
//   mode 1: the payload replaces the text of <mac/>
//   mode 2: the payload is parsed as the whole stanza
//   mode 3: the payload is parsed as the content of <c/>
//   mode 4: the payload replaces the text of <key/>, <new/> or <old/> (the first present; else
//           a <key/> is added)
// A copy of the receiving session, as it was before the genuine stanza, decrypts the result.
// Nothing but the sender's own bytes may decrypt: in modes 0, 1 and 4 a successful decrypt
// means the stanza is the genuine one byte for byte (for <mac/>, up to the surrounding
// whitespace unbase64 trims); in modes 2 and 3, where the envelope and the layout of <c/> vary
// too, it means that everything the MAC covers (the <c/> children but <mac/>, and the MAC
// value) is the genuine one. Either way the plaintext must be the genuine plaintext.
#include <cstdint>
#include <optional>
#include <string>

#include "session_fixture.hpp"
#include "util/bytes.hpp"

using namespace esession;

namespace {

const std::vector<fuzz::DecryptCase>& cases() {
  static const std::vector<fuzz::DecryptCase> c = fuzz::make_decrypt_cases();
  return c;
}

std::string trim_ws(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos)
    return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// set_child_text replaces the text of the first <name/> in <c/>, adding one if there is none.
// Returns false if the stanza has no <c/>.
bool set_child_text(xml::Element& stanza, std::string_view name, std::string_view text) {
  xml::Element* c = stanza.child("c", xml::kNsC);
  if (!c)
    return false;
  xml::Element* e = c->child(name, xml::kNsC);
  if (!e)
    e = &*c->children.insert(c->children.begin(), xml::Element(std::string(name), c->ns));
  e->children.clear();
  e->children.push_back(xml::Element::text_node(std::string(text)));
  return true;
}

// Covered is what the stanza MAC covers: the serialized <c/> children but <mac/>, and the MAC.
struct Covered {
  std::string content;
  std::optional<Bytes> mac;
  bool operator==(const Covered&) const = default;
};

std::optional<Covered> covered(const xml::Element& stanza) {
  const xml::Element* c = stanza.child("c", xml::kNsC);
  if (!c)
    return std::nullopt;
  Covered out;
  for (const auto& ch : c->children) {
    if (ch.is_text())
      continue;
    if (ch.is("mac", xml::kNsC)) {
      auto m = unbase64(ch.text_content());
      if (m)
        out.mac = m.value();
      continue;
    }
    out.content += xml::serialize(ch, c->ns);
  }
  return out;
}

const char* kMutationTarget[] = {"data", "mac", "", "", "key"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& all = cases();
  if (size < 2)
    return 0;
  const fuzz::DecryptCase& genuine = all[data[0] % all.size()];
  unsigned mode = data[1] % 5u;
  std::string_view payload = fuzz::as_text(data + 2, size - 2);

  xml::Element stanza = genuine.stanza;
  std::string expect_wire = genuine.wire;  // modes 0, 1, 4: what a successful decrypt implies
  switch (mode) {
    case 0:
    case 1:
    case 4: {
      std::string_view name = kMutationTarget[mode];
      if (mode == 4) {
        const xml::Element* c = stanza.child("c", xml::kNsC);
        for (std::string_view n : {"key", "new", "old"})
          if (c && c->child(n, xml::kNsC)) {
            name = n;
            break;
          }
      }
      if (!set_child_text(stanza, name, payload))
        return 0;  // a clear Gajim termination: nothing to replace
      if (mode == 1) {
        // unbase64 trims XML whitespace around the MAC: only the trimmed text must be genuine.
        xml::Element trimmed = stanza;
        set_child_text(trimmed, name, trim_ws(payload));
        expect_wire = xml::serialize(trimmed) == genuine.wire ? xml::serialize(stanza) : "";
      }
      break;
    }
    case 2: {
      auto parsed = xml::parse(payload, xml::kNsClient);
      if (!parsed)
        return 0;
      stanza = std::move(parsed).value();
      break;
    }
    case 3: {
      xml::Element* c = stanza.child("c", xml::kNsC);
      if (!c)
        return 0;
      auto content = xml::parse_fragment(payload, xml::kNsC);
      if (!content)
        return 0;
      c->children = std::move(content).value();
      break;
    }
  }

  Session session = *genuine.before;
  auto r = session.decrypt(stanza);
  if (!r) {
    // Any failure destroys the session (XEP-0200 §8), but for a stanza with no <c/> at all:
    // unauthenticated, it is refused and changes nothing (formats §15.7).
    const xml::Element* err = stanza.child("error", xml::kNsClient);
    const bool unencrypted = !stanza.child("c", xml::kNsC) && !(err && err->child("c", xml::kNsC));
    if (unencrypted)
      fuzz::check(session.can_receive() && session.serialize() == genuine.before->serialize(),
                  "an unencrypted stanza changed the session");
    else
      fuzz::check(!session.can_receive(), "a failed decrypt left the session usable");
    return 0;
  }

  const bool clear_termination = !stanza.child("c", xml::kNsC);
  if (clear_termination) {
    // T1: Gajim ends a session in clear; that, and only that, needs no MAC.
    fuzz::check(
        genuine.before->suite().compat == Compat::gajim && r->terminated && !session.can_receive(),
        "a stanza without <c/> was accepted");
    return 0;
  }
  if (mode == 0 || mode == 1 || mode == 4) {
    if (xml::serialize(stanza) != expect_wire) {
      std::fprintf(stderr, "genuine: %s\naccepted: %s\n", genuine.wire.c_str(),
                   xml::serialize(stanza).c_str());
      fuzz::check(false, "a tampered stanza decrypted");
    }
  } else {
    fuzz::check(covered(stanza) == covered(genuine.stanza),
                "a stanza whose authenticated part differs from the genuine one decrypted");
  }
  fuzz::check(Bytes(r->plaintext.begin(), r->plaintext.end()) == genuine.plaintext,
              "a decrypt yielded a plaintext the sender did not send");
  fuzz::check(r->rekeyed == genuine.rekeyed && r->terminated == genuine.terminated,
              "a decrypt had another effect than the genuine stanza");
  // The counter moved on: the genuine stanza is now a replay.
  fuzz::check(!session.decrypt(genuine.stanza), "a replayed stanza decrypted");
  return 0;
}
