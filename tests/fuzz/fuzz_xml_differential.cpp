// fuzz_xml_differential: our XML verdicts against libxml2's, a second conforming parser.
//
// Input: byte 0 picks the mode, the rest is the text.
//  - mode 0 mod 4: xml::parse of a document;  mode odd: xml::StanzaReader over a stream, fed
//    in pieces whose sizes follow byte 0;
//  - mode 2 mod 4: the text split at each 0xFF byte (never in UTF-8) into fragments, given one
//    after the other to xml::parse_fragment (which parses them all in one long document): each
//    verdict and tree must be those of the fragment inside a wrapper element, parsed alone as a
//    document without processing instructions, and libxml2 must accept that document when we
//    accept the fragment.
// Whatever we accept, libxml2 must accept as well-formed and namespace-well-formed (for the
// reader: each element's raw bytes, alone). Whatever we write (serialize) must be accepted by
// libxml2 too, and parse back to the same tree.
#include <libxml/parser.h>

#include <cstdint>
#include <string>

#include "fuzz_common.hpp"

using namespace esession;

namespace {

bool libxml2_accepts(std::string_view doc) {
  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  fuzz::check(ctxt != nullptr, "xmlNewParserCtxt");
  xmlDocPtr d = xmlCtxtReadMemory(ctxt, doc.data(), static_cast<int>(doc.size()), "in.xml", "UTF-8",
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  bool ok = d != nullptr && ctxt->wellFormed && ctxt->nsWellFormed;
  if (d)
    xmlFreeDoc(d);
  xmlFreeParserCtxt(ctxt);
  return ok;
}

bool same(const xml::Element& a, const xml::Element& b) {
  if (a.name != b.name || a.ns != b.ns || a.attrs != b.attrs || a.text != b.text ||
      a.children.size() != b.children.size())
    return false;
  for (size_t i = 0; i < a.children.size(); ++i)
    if (!same(a.children[i], b.children[i]))
      return false;
  return true;
}

// check_written: what we write of |e| is XML to libxml2 and to us, and the same tree to us.
void check_written(const xml::Element& e, std::string_view default_ns) {
  std::string out = xml::serialize(e);
  fuzz::check(libxml2_accepts(out), "libxml2 refuses what we wrote");
  auto again = xml::parse(out, default_ns);
  fuzz::check(bool(again), "we refuse what we wrote");
  fuzz::check(same(*again, e), "what we wrote parses to another tree");
}

// check_fragments: parse_fragment's verdicts on the 0xFF-separated pieces of |text|, in order,
// against each piece alone as the content of a document's root.
void check_fragments(std::string_view text) {
  for (size_t at = 0; at <= text.size();) {
    size_t end = std::min(text.find('\xff', at), text.size());
    std::string_view piece = text.substr(at, end - at);
    at = end + 1;
    std::string wrapped = "<f xmlns=\"jabber:client\">" + std::string(piece) + "</f>";
    auto got = xml::parse_fragment(piece, xml::kNsClient);
    // <f/> is one level; stanza content holds no processing instruction (RFC 6120 §11.1).
    auto alone = xml::parse(wrapped, {}, xml::ParseLimits{65, false});
    fuzz::check(bool(got) == bool(alone), bool(got) ? "a fragment accepted that alone is refused"
                                                    : "a fragment refused that alone is accepted");
    if (!got)
      continue;
    fuzz::check(libxml2_accepts(wrapped), "we accept a fragment libxml2 refuses");
    fuzz::check(got->size() == alone->children.size(), "a fragment parses to other nodes");
    for (size_t i = 0; i < got->size(); ++i)
      fuzz::check(same((*got)[i], alone->children[i]), "a fragment parses to another tree");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  xmlInitParser();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 64 * 1024)
    return 0;
  uint8_t mode = data[0];
  std::string_view text = fuzz::as_text(data + 1, size - 1);
  if ((mode & 3) == 2) {
    check_fragments(text);
    return 0;
  }
  if ((mode & 1) == 0) {
    auto e = xml::parse(text, xml::kNsClient);
    if (!e)
      return 0;
    fuzz::check(libxml2_accepts(text), "we accept a document libxml2 refuses");
    check_written(*e, xml::kNsClient);
    return 0;
  }
  xml::StanzaReader reader(std::string(xml::kNsClient), 4096);
  fuzz::SeededRandom rng(mode);
  size_t pos = 0;
  for (bool more = true; more;) {
    if (pos < text.size()) {
      size_t len = std::min<size_t>(1 + rng.next_word() % 64, text.size() - pos);
      reader.feed(text.substr(pos, len));
      pos += len;
    } else {
      reader.finish();
      more = false;
    }
    for (;;) {
      auto r = reader.next();
      if (!r)
        return 0;
      if (!r.value())
        break;
      fuzz::check(libxml2_accepts(reader.raw()), "we accept a stanza libxml2 refuses");
      check_written(*r.value(), xml::kNsClient);
    }
  }
  return 0;
}
