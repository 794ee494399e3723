#include "xml/element.hpp"

#include <pugixml.hpp>

#include <cctype>
#include <cstring>
#include <map>
#include <optional>

namespace esession::xml {

Element Element::text_node(std::string t) {
  Element e;
  e.text = std::move(t);
  return e;
}

const std::string* Element::attr(std::string_view n) const {
  for (const auto& [k, v] : attrs)
    if (k == n)
      return &v;
  return nullptr;
}

std::string Element::attr_or(std::string_view n, std::string_view def) const {
  const std::string* v = attr(n);
  return v ? *v : std::string(def);
}

Element& Element::set_attr(std::string_view n, std::string_view v) {
  for (auto& [k, val] : attrs)
    if (k == n) {
      val = std::string(v);
      return *this;
    }
  attrs.emplace_back(std::string(n), std::string(v));
  return *this;
}

void Element::remove_attr(std::string_view n) {
  std::erase_if(attrs, [&](const auto& a) { return a.first == n; });
}

const Element* Element::child(std::string_view n, std::string_view namespace_) const {
  for (const auto& c : children)
    if (c.is(n, namespace_))
      return &c;
  return nullptr;
}

Element* Element::child(std::string_view n, std::string_view namespace_) {
  for (auto& c : children)
    if (c.is(n, namespace_))
      return &c;
  return nullptr;
}

size_t Element::count_children(std::string_view n, std::string_view namespace_) const {
  size_t k = 0;
  for (const auto& c : children)
    if (c.is(n, namespace_))
      ++k;
  return k;
}

std::vector<const Element*> Element::element_children() const {
  std::vector<const Element*> out;
  for (const auto& c : children)
    if (!c.is_text())
      out.push_back(&c);
  return out;
}

std::string Element::text_content() const {
  std::string out;
  for (const auto& c : children)
    if (c.is_text())
      out += c.text;
  return out;
}

Element& Element::add(Element e) {
  children.push_back(std::move(e));
  return children.back();
}

Element& Element::add_text_child(std::string_view n, std::string_view content) {
  Element c(std::string(n), ns);
  if (!content.empty())
    c.children.push_back(text_node(std::string(content)));
  return add(std::move(c));
}

namespace {

// escape_with copies |s|, replacing each character of |specials| by its entity. Runs of plain
// characters are appended at once: most text has nothing to escape.
template <class F>
std::string escape_with(std::string_view s, std::string_view specials, F entity) {
  bool special[256] = {};
  for (char c : specials)
    special[static_cast<unsigned char>(c)] = true;
  std::string out;
  out.reserve(s.size() + 16);
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!special[static_cast<unsigned char>(s[i])])
      continue;
    out.append(s.data() + start, i - start);
    out.append(entity(s[i]));
    start = i + 1;
  }
  out.append(s.data() + start, s.size() - start);
  return out;
}

}  // namespace

// escape_text also writes line ends as character references, so that every stanza we write
// stays on one line (DESIGN: one stanza per line) whatever its text holds; a parser reads them
// back as the same characters.
std::string escape_text(std::string_view s) {
  return escape_with(s, "&<>\r\n", [](char c) -> std::string_view {
    switch (c) {
      case '&':
        return "&amp;";
      case '<':
        return "&lt;";
      case '>':
        return "&gt;";
      case '\n':
        return "&#xA;";
      default:
        return "&#xD;";
    }
  });
}

std::string escape_attr(std::string_view s, bool escape_gt) {
  return escape_with(s, "&<>\"\t\n\r", [escape_gt](char c) -> std::string_view {
    switch (c) {
      case '&':
        return "&amp;";
      case '<':
        return "&lt;";
      case '>':
        return escape_gt ? "&gt;" : ">";
      case '"':
        return "&quot;";
      case '\t':
        return "&#x9;";
      case '\n':
        return "&#xA;";
      default:
        return "&#xD;";
    }
  });
}

static void write(std::string& out, const Element& e, std::string_view parent_ns,
                  SerializeStyle style) {
  if (e.is_text()) {
    out += escape_text(e.text);
    return;
  }
  out += '<';
  out += e.name;
  if (e.ns != parent_ns) {
    out += " xmlns=\"";
    out += escape_attr(e.ns);
    out += '"';
  }
  for (const auto& [k, v] : e.attrs) {
    out += ' ';
    out += k;
    out += "=\"";
    out += escape_attr(v);
    out += '"';
  }
  if (e.children.empty()) {
    out += style.empty_tag_space ? " />" : "/>";
    return;
  }
  out += '>';
  for (const auto& c : e.children)
    write(out, c, e.ns, style);
  out += "</";
  out += e.name;
  out += '>';
}

std::string serialize(const Element& e, std::string_view parent_ns, SerializeStyle style) {
  std::string out;
  write(out, e, parent_ns, style);
  return out;
}

std::string serialize_children(const Element& e, SerializeStyle style) {
  std::string out;
  for (const auto& c : e.children)
    write(out, c, e.ns, style);
  return out;
}

bool valid_xml_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // Eight printable ASCII bytes at a time, the common case: no byte has its top bit set and
    // none is below 0x20.
    if (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      constexpr uint64_t kHigh = 0x8080808080808080ULL;
      if ((w & kHigh) == 0 && ((w - 0x2020202020202020ULL) & ~w & kHigh) == 0) {
        i += 8;
        continue;
      }
    }
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80) {
      ++i;
      continue;
    }
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xe0) == 0xc0) {
      cp = c & 0x1f;
      len = 2;
    } else if ((c & 0xf0) == 0xe0) {
      cp = c & 0x0f;
      len = 3;
    } else if ((c & 0xf8) == 0xf0) {
      cp = c & 0x07;
      len = 4;
    } else {
      return false;
    }
    if (i + len > s.size())
      return false;
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80)
        return false;
      cp = cp << 6 | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    // XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
    if (cp < 0x20 && cp != 0x9 && cp != 0xa && cp != 0xd)
      return false;
    if (cp == 0xfffe || cp == 0xffff)
      return false;
    i += len;
  }
  return true;
}

namespace {

using NsScope = std::map<std::string, std::string>;  // prefix ("" = default) -> URI

// is_ncname checks an XML Namespaces NCName: a name without a colon. Non-ASCII characters are
// accepted as name characters (the UTF-8 itself was validated before).
bool is_ncname(std::string_view s) {
  if (s.empty())
    return false;
  auto start_char = [](unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; };
  if (!start_char(static_cast<unsigned char>(s[0])))
    return false;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (!start_char(c) && !std::isdigit(c) && c != '-' && c != '.')
      return false;
  }
  return true;
}

// is_qname checks NCName or NCName:NCName.
bool is_qname(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos)
    return is_ncname(s);
  return is_ncname(s.substr(0, colon)) && is_ncname(s.substr(colon + 1));
}

struct Converter {
  size_t max_depth;

  Result<Element> convert(const pugi::xml_node& node, const NsScope& outer, size_t depth) {
    if (depth > max_depth)
      return fail(Errc::malformed, "XML nested too deeply");
    std::string_view qname = node.name();
    if (!is_qname(qname))
      return fail(Errc::malformed, "'" + std::string(qname) + "' is not an XML element name");
    // Namespace declarations: the scope is copied only by elements that declare some.
    std::optional<NsScope> own;
    for (auto a : node.attributes()) {
      std::string_view n = a.name();
      if (n != "xmlns" && !n.starts_with("xmlns:"))
        continue;
      if (!own)
        own = outer;
      if (n == "xmlns")
        (*own)[""] = a.value();
      else if (is_ncname(n.substr(6)))
        (*own)[std::string(n.substr(6))] = a.value();
      else
        return fail(Errc::malformed, "bad namespace declaration '" + std::string(n) + "'");
    }
    const NsScope& scope = own ? *own : outer;
    std::string prefix, local;
    if (auto colon = qname.find(':'); colon != std::string_view::npos) {
      prefix = std::string(qname.substr(0, colon));
      local = std::string(qname.substr(colon + 1));
    } else {
      local = std::string(qname);
    }
    auto it = scope.find(prefix);
    if (it == scope.end()) {
      if (!prefix.empty())
        return fail(Errc::malformed, "undeclared namespace prefix '" + prefix + "'");
    }
    Element e(local, it == scope.end() ? std::string() : it->second);
    for (auto a : node.attributes()) {
      std::string_view n = a.name();
      if (n == "xmlns" || n.starts_with("xmlns:"))
        continue;
      if (!is_qname(n))
        return fail(Errc::malformed, "'" + std::string(n) + "' is not an XML attribute name");
      if (e.attr(n))
        return fail(Errc::malformed, "duplicate attribute '" + std::string(n) + "'");
      e.attrs.emplace_back(std::string(n), std::string(a.value()));
    }
    size_t kids = 0;
    for (auto c = node.first_child(); c; c = c.next_sibling())
      ++kids;
    e.children.reserve(kids);
    for (auto c : node.children()) {
      switch (c.type()) {
        case pugi::node_element: {
          auto r = convert(c, scope, depth + 1);
          if (!r)
            return r.error();
          e.children.push_back(std::move(r.value()));
          break;
        }
        case pugi::node_pcdata:
        case pugi::node_cdata:
          if (!e.children.empty() && e.children.back().is_text())
            e.children.back().text += c.value();
          else
            e.children.push_back(Element::text_node(c.value()));
          break;
        case pugi::node_comment:
        case pugi::node_pi:
          break;
        default:
          return fail(Errc::malformed, "unsupported XML node (DOCTYPE or declaration)");
      }
    }
    return e;
  }
};

constexpr unsigned kParseFlags =
    pugi::parse_cdata | pugi::parse_escapes | pugi::parse_wconv_attribute | pugi::parse_eol |
    pugi::parse_ws_pcdata | pugi::parse_doctype | pugi::parse_pi | pugi::parse_comments;

bool is_xml_char(uint32_t cp) {
  return cp == 0x9 || cp == 0xa || cp == 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
         (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

// check_reference checks the reference starting at doc[i] == '&' and returns the index after
// it.
Result<size_t> check_reference(std::string_view doc, size_t i) {
  size_t semi = doc.find(';', i);
  if (semi == std::string_view::npos || semi - i > 12)
    return fail(Errc::malformed, "'&' that does not start an XML reference");
  std::string_view ref = doc.substr(i + 1, semi - i - 1);
  if (ref == "amp" || ref == "lt" || ref == "gt" || ref == "quot" || ref == "apos")
    return semi + 1;
  if (ref.size() < 2 || ref[0] != '#')
    return fail(Errc::malformed, "unknown entity '&" + std::string(ref) + ";'");
  bool hexa = ref[1] == 'x';
  std::string_view digits = ref.substr(hexa ? 2 : 1);
  uint32_t cp = 0;
  if (digits.empty())
    return fail(Errc::malformed, "empty character reference");
  for (char c : digits) {
    int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
            : hexa && std::isxdigit(static_cast<unsigned char>(c))
                ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
                : -1;
    if (v < 0)
      return fail(Errc::malformed, "bad character reference '&" + std::string(ref) + ";'");
    cp = cp * (hexa ? 16 : 10) + static_cast<uint32_t>(v);
    if (cp > 0x10ffff)
      break;
  }
  if (!is_xml_char(cp))
    return fail(Errc::malformed,
                "character reference '&" + std::string(ref) + ";' is not an XML character");
  return semi + 1;
}

// check_references accepts only the references XML defines: the five predefined entities and
// character references to XML characters. pugixml would keep an unknown entity or a bare '&'
// as text, and turn "&#0;" or "&#xD800;" into text no XML parser reads back.
Status check_references(std::string_view doc) {
  if (doc.find("<!") == std::string_view::npos && doc.find("<?") == std::string_view::npos) {
    // No CDATA section, comment or processing instruction: every '&' is a reference.
    const char* base = doc.data();
    size_t i = 0;
    while (i < doc.size()) {
      const void* hit = std::memchr(base + i, '&', doc.size() - i);
      if (!hit)
        return {};
      ES_ASSIGN(i, check_reference(doc, static_cast<size_t>(static_cast<const char*>(hit) - base)));
    }
    return {};
  }
  size_t i = 0;
  while (i < doc.size()) {
    char c = doc[i];
    if (c == '&') {
      ES_ASSIGN(i, check_reference(doc, i));
      continue;
    }
    if (c != '<') {
      ++i;
      continue;
    }
    // Skip the sections where '&' is literal.
    std::string_view close;
    if (doc.substr(i, 9) == "<![CDATA[")
      close = "]]>";
    else if (doc.substr(i, 4) == "<!--")
      close = "-->";
    else if (doc.substr(i, 2) == "<?")
      close = "?>";
    if (close.empty()) {
      ++i;
      continue;
    }
    size_t end = doc.find(close, i);
    if (end == std::string_view::npos)
      return {};  // unterminated: the parser reports it
    i = end + close.size();
  }
  return {};
}

Result<std::vector<Element>> parse_nodes(std::string_view doc, std::string_view default_ns,
                                         ParseLimits limits, bool fragment) {
  if (!valid_xml_utf8(doc))
    return fail(Errc::malformed, "input is not valid UTF-8 XML text");
  ES_TRY(check_references(doc));
  pugi::xml_document d;
  // Always parsed as a fragment: a document parse would silently drop text after the root
  // element; the loop below enforces the document rules itself.
  unsigned flags = kParseFlags | pugi::parse_fragment;
  auto res = d.load_buffer(doc.data(), doc.size(), flags, pugi::encoding_utf8);
  if (!res)
    return fail(Errc::malformed, std::string("XML parse error: ") + res.description() +
                                     " at offset " + std::to_string(res.offset));
  NsScope scope;
  scope[""] = std::string(default_ns);
  scope["xml"] = "http://www.w3.org/XML/1998/namespace";
  Converter conv{limits.max_depth};
  std::vector<Element> out;
  for (auto n : d.children()) {
    switch (n.type()) {
      case pugi::node_element: {
        auto r = conv.convert(n, scope, 1);
        if (!r)
          return r.error();
        out.push_back(std::move(r.value()));
        break;
      }
      case pugi::node_pcdata:
      case pugi::node_cdata:
        if (!fragment) {
          bool blank =
              std::string_view(n.value()).find_first_not_of(" \t\r\n") == std::string_view::npos;
          if (!blank)
            return fail(Errc::malformed, "text outside the root element");
          break;
        }
        out.push_back(Element::text_node(n.value()));
        break;
      case pugi::node_doctype:
        return fail(Errc::malformed, "DOCTYPE is not allowed");
      case pugi::node_declaration:
        if (fragment)
          return fail(Errc::malformed, "XML declaration inside content");
        break;
      default:
        break;  // comments and processing instructions are ignored
    }
  }
  return out;
}

}  // namespace

Result<Element> parse(std::string_view doc, std::string_view default_ns, ParseLimits limits) {
  ES_ASSIGN(auto nodes, parse_nodes(doc, default_ns, limits, false));
  if (nodes.size() != 1)
    return fail(Errc::malformed, "expected exactly one root element");
  return std::move(nodes.front());
}

Result<std::vector<Element>> parse_fragment(std::string_view content, std::string_view ns) {
  return parse_nodes(content, ns, ParseLimits{}, true);
}

}  // namespace esession::xml
