// The stanza model: a namespace-resolved XML element tree, its parser and its serializer.
//
// Every element carries its resolved namespace; element prefixes are not kept. The serializer
// writes an xmlns="..." declaration wherever an element's namespace differs from its parent's,
// so a tree round-trips to the same namespaces. Attributes keep their qualified names
// ("p:a"), and an element records what the prefixes of its attributes are bound to, which the
// serializer declares where they are not in scope: what it writes is namespace-well-formed.
// Text nodes are elements with an empty name.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.hpp"

namespace esession::xml {

// Namespaces used throughout.
inline constexpr std::string_view kNsClient = "jabber:client";
inline constexpr std::string_view kNsFeatureNeg = "http://jabber.org/protocol/feature-neg";
inline constexpr std::string_view kNsData = "jabber:x:data";
inline constexpr std::string_view kNsInit = "http://www.xmpp.org/extensions/xep-0116.html#ns-init";
inline constexpr std::string_view kNsEsession = "http://www.xmpp.org/extensions/xep-0116.html#ns";
inline constexpr std::string_view kNsC = "http://www.xmpp.org/extensions/xep-0200.html#ns";
inline constexpr std::string_view kNsAmp = "http://jabber.org/protocol/amp";
inline constexpr std::string_view kNsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";
inline constexpr std::string_view kNsDsig = "http://www.w3.org/2000/09/xmldsig#";

// kMaxStanza is the one limit on a stanza's size, in bytes, as written on one line: readers
// (StanzaReader's default, decrypt, open) refuse bigger ones, and writers (encrypt, seal) refuse
// to make them, before any counter is spent.
inline constexpr size_t kMaxStanza = size_t{1} << 20;

struct Element {
  std::string name;                                        // local name; empty for a text node
  std::string ns;                                          // resolved namespace URI
  std::vector<std::pair<std::string, std::string>> attrs;  // in document order, no xmlns
  // The namespaces of the prefixes the attributes use ("p" -> "urn:p"; never "xml").
  std::vector<std::pair<std::string, std::string>> prefixes;
  std::vector<Element> children;
  std::string text;  // the character data of a text node

  Element() = default;
  Element(std::string name_, std::string ns_) : name(std::move(name_)), ns(std::move(ns_)) {}

  // text_node makes a text node.
  static Element text_node(std::string t);

  bool is_text() const { return name.empty(); }
  bool is(std::string_view n, std::string_view namespace_) const {
    return name == n && ns == namespace_;
  }

  // attr returns the value of attribute |n|, or nullptr.
  const std::string* attr(std::string_view n) const;
  // attr_or returns the attribute's value or |def|.
  std::string attr_or(std::string_view n, std::string_view def = {}) const;
  // set_attr replaces or appends an attribute.
  Element& set_attr(std::string_view n, std::string_view v);
  void remove_attr(std::string_view n);

  // child returns the first child element named |n| in namespace |namespace_|, or nullptr.
  const Element* child(std::string_view n, std::string_view namespace_) const;
  Element* child(std::string_view n, std::string_view namespace_);
  // count_children returns how many child elements are named |n| in |namespace_|.
  size_t count_children(std::string_view n, std::string_view namespace_) const;
  // element_children returns pointers to the child elements (text nodes skipped).
  std::vector<const Element*> element_children() const;
  // text_content returns the concatenation of the direct text children.
  std::string text_content() const;

  // add appends a child and returns a reference to it.
  Element& add(Element e);
  // add_text_child appends <n>text</n> in this element's namespace.
  Element& add_text_child(std::string_view n, std::string_view content);
};

// SerializeStyle controls the only serialization choices we vary.
struct SerializeStyle {
  // empty_tag_space writes an element without content as "<a />" (nbxmpp) instead of "<a/>".
  bool empty_tag_space = false;
};

// serialize writes |e| compactly (no added whitespace, no XML declaration). |parent_ns| is the
// namespace in scope; an xmlns declaration is written first among the attributes when the
// element's namespace differs from it.
std::string serialize(const Element& e, std::string_view parent_ns = {}, SerializeStyle style = {});
// serialize_append is serialize writing at the end of |out|: a caller that writes many
// elements into one buffer saves a string per element.
void serialize_append(std::string& out, const Element& e, std::string_view parent_ns = {},
                      SerializeStyle style = {});
// serialize_children writes the children of |e| in the namespace of |e|.
std::string serialize_children(const Element& e, SerializeStyle style = {});

// escape_text and escape_attr apply XML escaping for character data and attribute values.
std::string escape_text(std::string_view s);
// |escape_gt| = false gives C14N attribute escaping, which leaves '>' as is.
std::string escape_attr(std::string_view s, bool escape_gt = true);
// append_escaped_text and append_escaped_attr write the same at the end of |out|.
void append_escaped_text(std::string& out, std::string_view s);
void append_escaped_attr(std::string& out, std::string_view s, bool escape_gt = true);
// append_c14n_text escapes character data as C14N 1.0 does (formats §1.5, escT): & < > and CR
// only. A line feed stays one: normalization must not change what the MACs cover.
void append_c14n_text(std::string& out, std::string_view s);

// ParseLimits bound what parse accepts.
struct ParseLimits {
  size_t max_depth = 64;
  bool allow_pi = true;  // processing instructions (ignored); stanza content allows none
};

// parse reads one complete XML element from |doc| (UTF-8; no DOCTYPE). |default_ns| is the
// namespace of unqualified elements when none is declared (e.g. "jabber:client" for stanzas).
Result<Element> parse(std::string_view doc, std::string_view default_ns = {},
                      ParseLimits limits = {});

// parse_fragment parses a sequence of elements and text (the decrypted content of a <c/>) as
// the children of a virtual element in namespace |ns|.
Result<std::vector<Element>> parse_fragment(std::string_view content, std::string_view ns);

// valid_utf8 returns true iff |s| is well-formed UTF-8 without overlongs or surrogates and with
// only characters XML 1.0 allows.
bool valid_xml_utf8(std::string_view s);

}  // namespace esession::xml
