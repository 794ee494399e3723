#include "xml/element.hpp"

#include "xml/tree_parser.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
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

// has_byte is nonzero iff one of the eight bytes of |w| is |c| (the zero-byte test on w ^ c...c:
// it may mark other bytes too, but is nonzero exactly when some byte matches).
constexpr uint64_t has_byte(uint64_t w, unsigned char c) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHighs = 0x8080808080808080ULL;
  uint64_t x = w ^ (kOnes * c);
  return (x - kOnes) & ~x & kHighs;
}

// Specials is the set of bytes an escaping replaces: tested a word or a byte at a time.
template <char... Cs>
struct Specials {
  static constexpr bool in_word(uint64_t w) {
    return (has_byte(w, static_cast<unsigned char>(Cs)) | ...) != 0;
  }
  static constexpr bool is(char c) { return ((c == Cs) || ...); }
};

using TextSpecials = Specials<'&', '<', '>', '\r', '\n'>;
using C14nTextSpecials = Specials<'&', '<', '>', '\r'>;
using AttrSpecials = Specials<'&', '<', '>', '"', '\t', '\n', '\r'>;

// append_escaped appends |s| to |out|, replacing each character of S by its entity. Runs of
// plain characters are appended at once, and looked through eight bytes at a time: most text
// (Base64 above all) has nothing to escape.
template <class S, class F>
void append_escaped(std::string& out, std::string_view s, F entity) {
  size_t start = 0, i = 0;
  while (i < s.size()) {
    if (s.size() - i >= 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (!S::in_word(w)) {
        i += 8;
        continue;
      }
    }
    for (size_t stop = std::min(i + 8, s.size()); i < stop; ++i) {
      if (!S::is(s[i]))
        continue;
      out.append(s.data() + start, i - start);
      out.append(entity(s[i]));
      start = i + 1;
    }
  }
  out.append(s.data() + start, s.size() - start);
}

}  // namespace

// Text also gets its line ends as character references, so that every stanza we write stays
// on one line (DESIGN: one stanza per line) whatever its text holds; a parser reads them back
// as the same characters.
void append_escaped_text(std::string& out, std::string_view s) {
  append_escaped<TextSpecials>(out, s, [](char c) -> std::string_view {
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

void append_c14n_text(std::string& out, std::string_view s) {
  append_escaped<C14nTextSpecials>(out, s, [](char c) -> std::string_view {
    switch (c) {
      case '&':
        return "&amp;";
      case '<':
        return "&lt;";
      case '>':
        return "&gt;";
      default:
        return "&#xD;";
    }
  });
}

void append_escaped_attr(std::string& out, std::string_view s, bool escape_gt) {
  append_escaped<AttrSpecials>(out, s, [escape_gt](char c) -> std::string_view {
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

std::string escape_text(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  append_escaped_text(out, s);
  return out;
}

std::string escape_attr(std::string_view s, bool escape_gt) {
  std::string out;
  out.reserve(s.size() + 16);
  append_escaped_attr(out, s, escape_gt);
  return out;
}

namespace {

// Writer serializes a tree into |out|, keeping the attribute prefixes it has declared in scope.
struct Writer {
  std::string& out;
  SerializeStyle style;
  std::vector<std::pair<std::string_view, std::string_view>> bound;  // prefix -> namespace

  bool in_scope(std::string_view prefix, std::string_view ns) const {
    for (auto it = bound.rbegin(); it != bound.rend(); ++it)
      if (it->first == prefix)
        return it->second == ns;
    return false;
  }

  void write(const Element& e, std::string_view parent_ns) {
    if (e.is_text()) {
      append_escaped_text(out, e.text);
      return;
    }
    out += '<';
    out += e.name;
    if (e.ns != parent_ns) {
      out += " xmlns=\"";
      append_escaped_attr(out, e.ns);
      out += '"';
    }
    size_t mark = bound.size();
    for (const auto& [prefix, ns] : e.prefixes) {
      if (in_scope(prefix, ns))
        continue;
      out += " xmlns:";
      out += prefix;
      out += "=\"";
      append_escaped_attr(out, ns);
      out += '"';
      bound.emplace_back(prefix, ns);
    }
    for (const auto& [k, v] : e.attrs) {
      out += ' ';
      out += k;
      out += "=\"";
      append_escaped_attr(out, v);
      out += '"';
    }
    if (e.children.empty()) {
      out += style.empty_tag_space ? " />" : "/>";
    } else {
      out += '>';
      for (const auto& c : e.children)
        write(c, e.ns);
      out += "</";
      out += e.name;
      out += '>';
    }
    bound.resize(mark);
  }
};

// kFirstReserve is where a serialization's output starts: a typical stanza fits.
constexpr size_t kFirstReserve = 512;

}  // namespace

void serialize_append(std::string& out, const Element& e, std::string_view parent_ns,
                      SerializeStyle style) {
  Writer{out, style, {}}.write(e, parent_ns);
}

std::string serialize(const Element& e, std::string_view parent_ns, SerializeStyle style) {
  std::string out;
  out.reserve(kFirstReserve);
  serialize_append(out, e, parent_ns, style);
  return out;
}

std::string serialize_children(const Element& e, SerializeStyle style) {
  std::string out;
  out.reserve(kFirstReserve);
  Writer w{out, style, {}};
  for (const auto& c : e.children)
    w.write(c, e.ns);
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

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// reusable_parser returns this thread's document parser, reset for options |o|. Creating and
// freeing expat's parser, its hash tables and its buffer cost more than parsing the small
// documents that come one after the other (decrypt parses each stanza's content); one parser a
// thread is reset instead. A parse runs to its end before parse_nodes returns, and calls nothing
// that parses, so the parser is never in use twice.
detail::TreeParser& reusable_parser(detail::TreeParser::Options o) {
  thread_local std::unique_ptr<detail::TreeParser> tp;
  if (tp)
    tp->reset(std::move(o));
  else
    tp = std::make_unique<detail::TreeParser>(std::move(o));
  return *tp;
}

// parse_nodes parses |doc| with the conforming tokenizer (TreeParser): one root element (a
// document). An XML declaration is read only at the very start.
Result<std::vector<Element>> parse_nodes(std::string_view doc, std::string_view default_ns,
                                         ParseLimits limits) {
  if (!valid_xml_utf8(doc))
    return fail(Errc::malformed, "input is not valid UTF-8 XML text");
  detail::TreeParser::Options o;
  o.default_ns = std::string(default_ns);
  o.max_depth = limits.max_depth;
  o.allow_pi = limits.allow_pi;
  detail::TreeParser& tp = reusable_parser(std::move(o));
  std::string_view decl;
  if (doc.starts_with("<?xml") && doc.size() > 5 && is_space(doc[5])) {
    size_t end = doc.find("?>");
    if (end == std::string_view::npos)
      return fail(Errc::malformed, "unterminated XML declaration");
    decl = doc.substr(0, end + 2);
    doc.remove_prefix(end + 2);
  }
  ES_TRY(tp.begin(decl));
  ES_TRY(tp.feed(doc));
  ES_TRY(tp.end());
  return std::move(tp.top());
}

// FragmentStream parses fragments one after the other in one long document, each as the
// content of its own top-level element <f xmlns="NS">...</f>: decrypt parses one per stanza,
// and a new document (even from a reset parser) costs more than the few hundred bytes of a
// stanza's content. What a fragment declares ends with its <f/>, so nothing carries over into
// the next one; a fragment is accepted only if its <f/> is the one top-level element and ends
// exactly at the </f> written after it: content that ends <f/> early, or leaves a comment,
// CDATA section, tag or element open (so that the </f> is not the end tag it should be), is
// refused. After any refusal, or after kRecycle bytes (which bounds what expat keeps for the
// whole document: its table of attribute names grows with the names it has seen), the next
// fragment starts a new document.
class FragmentStream {
 public:
  Result<std::vector<Element>> parse(std::string_view content, std::string_view ns) {
    if (!valid_xml_utf8(content))
      return fail(Errc::malformed, "input is not valid UTF-8 XML text");
    if (!m_ready)
      ES_TRY(start());
    m_ready = false;  // until this fragment has parsed cleanly
    std::string open = "<f xmlns=\"";
    append_escaped_attr(open, ns);
    open += "\">";
    const uint64_t start = m_tp->index();
    ES_TRY(m_tp->feed(open));
    m_tp->set_origin(m_tp->index());
    ES_TRY(m_tp->feed(content));
    ES_TRY(m_tp->feed("</f>"));
    std::vector<Element>& top = m_tp->top();
    if (m_tp->depth() != 0 || top.size() != 1 || m_tp->last_start() != start ||
        m_tp->last_end() != m_tp->index())
      return fail(Errc::malformed, "not well-formed XML: the content ends inside markup");
    std::vector<Element> nodes = std::move(top.front().children);
    top.clear();
    m_ready = m_tp->index() < kRecycle;
    return nodes;
  }

 private:
  static constexpr uint64_t kRecycle = uint64_t{1} << 22;

  Status start() {
    detail::TreeParser::Options o;
    o.max_depth = ParseLimits{}.max_depth + 1;  // <f/> is one level
    o.allow_pi = false;  // decrypted content is stanza content: XMPP allows no PI in it
    if (m_tp)
      m_tp->reset(std::move(o));
    else
      m_tp = std::make_unique<detail::TreeParser>(std::move(o));
    return m_tp->begin({});
  }

  std::unique_ptr<detail::TreeParser> m_tp;
  bool m_ready = false;  // between two top-level elements of a sound document
};

}  // namespace

Result<Element> parse(std::string_view doc, std::string_view default_ns, ParseLimits limits) {
  ES_ASSIGN(auto nodes, parse_nodes(doc, default_ns, limits));
  if (nodes.size() != 1)
    return fail(Errc::malformed, nodes.empty() ? "no root element" : "more than one root element");
  return std::move(nodes.front());
}

Result<std::vector<Element>> parse_fragment(std::string_view content, std::string_view ns) {
  // One stream a thread: a parse runs to its end before this returns, and calls nothing that
  // parses, so the stream is never in use twice.
  thread_local FragmentStream stream;
  return stream.parse(content, ns);
}

}  // namespace esession::xml
