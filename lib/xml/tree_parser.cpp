#include "xml/tree_parser.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>

#include <sys/random.h>

namespace esession::xml::detail {

namespace {

// Expat reports a namespaced name as "URI\1local\1prefix" (XML_SetReturnNSTriplet), and one in
// no namespace as "local". \1 cannot occur in a namespace name: XML 1.0 has no such character.
constexpr XML_Char kSep = '\x01';

struct Name {
  std::string_view ns, local, prefix;
};

Name split(const XML_Char* n) {
  std::string_view s(n);
  size_t a = s.find(kSep);
  if (a == std::string_view::npos)
    return {{}, s, {}};
  std::string_view rest = s.substr(a + 1);
  size_t b = rest.find(kSep);
  if (b == std::string_view::npos)
    return {s.substr(0, a), rest, {}};
  return {s.substr(0, a), rest.substr(0, b), rest.substr(b + 1)};
}

bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_hex(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// UriChars is the URI alphabet of RFC 3986 as a table, '[', ']' and '%' left out.
struct UriChars {
  bool has[256] = {};
  constexpr UriChars() {
    for (int c = 0; c < 256; ++c)
      has[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    for (char c : std::string_view("-._~:/?#@!$&'()*+,;="))
      has[static_cast<unsigned char>(c)] = true;
  }
};
constexpr UriChars kUriChars;

// is_namespace_name checks that |s| is a URI reference (RFC 3986), as Namespaces in XML 1.0
// §2.2 wants: a scheme and ':', or a relative reference whose first segment has no ':'; then
// only characters of the URI alphabet ('[' and ']' left out), '%' only before two hex digits,
// at most one '#'.
// Other parsers refuse anything else (spaces, controls, non-ASCII).
bool is_namespace_name(std::string_view s) {
  size_t colon = s.find(':');
  bool scheme =
      colon != std::string_view::npos && colon > 0 && is_alpha(static_cast<unsigned char>(s[0]));
  for (size_t i = 0; scheme && i < colon; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    scheme = is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
  }
  if (!scheme && colon != std::string_view::npos && colon < s.find_first_of("/?#"))
    return false;
  bool fragment = false;  // one fragment, and '#' only starts it
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '#') {
      if (fragment)
        return false;
      fragment = true;
    }
    if (kUriChars.has[c])
      continue;
    if (c == '%' && i + 2 < s.size() && is_hex(static_cast<unsigned char>(s[i + 1])) &&
        is_hex(static_cast<unsigned char>(s[i + 2]))) {
      i += 2;
      continue;
    }
    return false;
  }
  return true;
}

bool blank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

TreeParser::TreeParser(Options o) : m_o(std::move(o)), m_p(XML_ParserCreateNS("UTF-8", kSep)) {
  if (!m_p)
    die_out_of_memory("expat parser");
  // Expat draws a hash salt from the kernel whenever a parse starts, a system call that cost
  // more than parsing a stanza's decrypted content; a parser that is reset keeps the one drawn
  // here. Without it (getrandom failing), expat draws its own for every input.
  unsigned long salt = 0;
  if (::getrandom(&salt, sizeof salt, 0) == static_cast<ssize_t>(sizeof salt))
    m_salt = salt;
  configure();
}

void TreeParser::configure() {
  XML_SetReturnNSTriplet(m_p, 1);
  XML_SetUserData(m_p, this);
  XML_SetElementHandler(m_p, on_start, on_end);
  XML_SetCharacterDataHandler(m_p, on_text);
  XML_SetStartCdataSectionHandler(m_p, on_cdata_start);
  XML_SetCommentHandler(m_p, on_comment);
  XML_SetProcessingInstructionHandler(m_p, on_pi);
  XML_SetXmlDeclHandler(m_p, on_decl);
  XML_SetStartDoctypeDeclHandler(m_p, on_doctype);
  XML_SetStartNamespaceDeclHandler(m_p, on_ns);
  XML_SetParamEntityParsing(m_p, XML_PARAM_ENTITY_PARSING_NEVER);
  // Expat's reparse deferral (CVE-2023-52425, backported to Debian 12's 2.5.0) waits for the
  // input to grow before it looks at a partial token again: a stanza that arrives in small reads
  // would then not be handed out until more input came, and a negotiation waiting for it would
  // stall. Every XMPP parser on expat turns it off. What it guards against, a token rescanned on
  // every read, is bounded here by the size limit: no token outgrows it.
  XML_SetReparseDeferralEnabled(m_p, XML_FALSE);
  if (m_salt != 0)
    XML_SetHashSalt(m_p, m_salt);
}

void TreeParser::reset(Options o) {
  // XML_ParserReset clears every handler and setting except the namespace separator.
  if (!XML_ParserReset(m_p, "UTF-8"))
    die_out_of_memory("expat parser");
  configure();
  m_o = std::move(o);
  m_stack.clear();
  m_top.clear();
  m_fed = 0;
  m_origin = m_origin_offset = 0;
  m_top_start = m_last_start = m_last_end = m_boundary = 0;
  m_suspended = false;
  m_error.reset();
}

TreeParser::~TreeParser() {
  XML_ParserFree(m_p);
}

uint64_t TreeParser::index() const {
  return m_fed;
}

void TreeParser::abort(std::string detail) {
  if (!m_error)
    m_error = Error{Errc::malformed, std::move(detail)};
  XML_StopParser(m_p, XML_FALSE);
}

uint64_t TreeParser::event_end() const {
  return static_cast<uint64_t>(XML_GetCurrentByteIndex(m_p)) +
         static_cast<uint64_t>(XML_GetCurrentByteCount(m_p));
}

void TreeParser::on_start(void* self, const XML_Char* name, const XML_Char** atts) {
  auto* t = static_cast<TreeParser*>(self);
  if (t->m_error)
    return;
  if (t->m_stack.empty()) {  // the wrapper
    t->m_stack.push_back(nullptr);
    return;
  }
  if (t->m_stack.size() > t->m_o.max_depth)
    return t->abort("XML nested too deeply");
  Name n = split(name);
  std::vector<Element>* into = &t->m_top;
  if (t->m_stack.size() == 1)
    t->m_top_start = static_cast<uint64_t>(XML_GetCurrentByteIndex(t->m_p));
  else
    into = &t->m_stack.back()->children;
  // Built in place: the element's strings are copied once, from expat's.
  Element* at = &into->emplace_back(std::string(n.local), std::string(n.ns));
  size_t count = 0;
  for (const XML_Char** a = atts; *a; a += 2)
    ++count;
  at->attrs.reserve(count);
  for (const XML_Char** a = atts; *a; a += 2) {
    Name an = split(a[0]);
    std::string qname;
    if (!an.prefix.empty()) {
      qname.reserve(an.prefix.size() + 1 + an.local.size());
      qname.append(an.prefix).append(1, ':');
      if (an.prefix != "xml" && std::none_of(at->prefixes.begin(), at->prefixes.end(),
                                             [&](const auto& b) { return b.first == an.prefix; }))
        at->prefixes.emplace_back(an.prefix, an.ns);
    }
    qname.append(an.local);
    at->attrs.emplace_back(std::move(qname), a[1]);
  }
  t->m_stack.push_back(at);
}

void TreeParser::on_end(void* self, const XML_Char*) {
  auto* t = static_cast<TreeParser*>(self);
  if (t->m_error)
    return;
  t->m_stack.pop_back();
  if (t->m_stack.size() != 1)
    return;
  t->m_last_start = t->m_top_start;
  t->m_last_end = t->m_boundary = t->event_end();
  if (t->m_o.suspend_each_top)
    XML_StopParser(t->m_p, XML_TRUE);
}

void TreeParser::on_text(void* self, const XML_Char* s, int len) {
  auto* t = static_cast<TreeParser*>(self);
  if (t->m_error)
    return;
  std::string_view text(s, static_cast<size_t>(len));
  if (t->m_stack.size() == 1) {
    if (!blank(text))
      return t->abort("text outside of an element");
    t->m_boundary = t->event_end();
    return;
  }
  std::vector<Element>& into = t->m_stack.back()->children;
  if (!into.empty() && into.back().is_text())
    into.back().text.append(text);
  else
    into.emplace_back().text.assign(text);
}

void TreeParser::on_cdata_start(void* self) {
  auto* t = static_cast<TreeParser*>(self);
  if (t->m_stack.size() == 1)
    t->abort("a CDATA section outside of an element");
}

void TreeParser::on_comment(void* self, const XML_Char*) {
  auto* t = static_cast<TreeParser*>(self);
  if (t->m_stack.size() != 1)
    return;
  const uint64_t start = static_cast<uint64_t>(XML_GetCurrentByteIndex(t->m_p));
  t->m_boundary = t->event_end();
  if (t->m_o.max_top_comment && t->m_boundary - start > t->m_o.max_top_comment)
    t->abort("a comment between stanzas exceeds the size limit of " +
             std::to_string(t->m_o.max_top_comment) + " bytes");
}

void TreeParser::on_pi(void* self, const XML_Char*, const XML_Char*) {
  auto* t = static_cast<TreeParser*>(self);
  if (!t->m_o.allow_pi)
    return t->abort("a processing instruction (XMPP allows none)");
  if (t->m_stack.size() == 1)
    t->m_boundary = t->event_end();
}

void TreeParser::on_decl(void* self, const XML_Char* version, const XML_Char* encoding, int) {
  auto* t = static_cast<TreeParser*>(self);
  if (!version || std::string_view(version) != "1.0")
    return t->abort("the XML declaration must say version 1.0");
  if (encoding) {
    std::string e(encoding);
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
    if (e != "utf-8")
      return t->abort("the XML declaration names the encoding " + std::string(encoding) +
                      ": only UTF-8 is read");
  }
}

void TreeParser::on_ns(void* self, const XML_Char*, const XML_Char* uri) {
  if (uri && !is_namespace_name(uri))
    static_cast<TreeParser*>(self)->abort("the namespace name '" + std::string(uri) +
                                          "' is not a URI");
}

void TreeParser::on_doctype(void* self, const XML_Char*, const XML_Char*, const XML_Char*, int) {
  static_cast<TreeParser*>(self)->abort("DOCTYPE is not allowed");
}

Status TreeParser::status_of(XML_Status st) {
  if (st == XML_STATUS_SUSPENDED) {
    m_suspended = true;
    return {};
  }
  if (st == XML_STATUS_OK)
    return {};
  if (!m_error) {
    uint64_t at = static_cast<uint64_t>(XML_GetCurrentByteIndex(m_p));
    // Offsets in the caller's input: the wrapper's start tag is not part of it.
    if (at >= m_origin)
      at = at - m_origin + m_origin_offset;
    m_error = Error{Errc::malformed, std::string("not well-formed XML: ") +
                                         XML_ErrorString(XML_GetErrorCode(m_p)) + " at byte " +
                                         std::to_string(at)};
  }
  return *m_error;
}

Status TreeParser::parse(std::string_view data, bool final) {
  if (m_error)
    return *m_error;
  if (data.size() > INT_MAX)
    return fail(Errc::malformed, "XML input too large");
  m_fed += data.size();
  return status_of(XML_Parse(m_p, data.data(), static_cast<int>(data.size()), final));
}

Status TreeParser::begin(std::string_view decl) {
  if (!decl.empty())
    ES_TRY(parse(decl, false));
  std::string wrapper = "<w";
  if (!m_o.default_ns.empty())
    wrapper += " xmlns=\"" + escape_attr(m_o.default_ns) + "\"";
  wrapper += '>';
  ES_TRY(parse(wrapper, false));
  m_origin = m_fed;
  m_origin_offset = decl.size();
  m_boundary = m_fed;
  return {};
}

Status TreeParser::feed(std::string_view data) {
  if (m_o.suspend_each_top)
    return parse(data, false);
  constexpr size_t kPiece = size_t{1} << 20;
  for (size_t at = 0; at < data.size(); at += kPiece)
    ES_TRY(parse(data.substr(at, std::min(kPiece, data.size() - at)), false));
  return {};
}

Status TreeParser::resume() {
  if (m_error)
    return *m_error;
  m_suspended = false;
  return status_of(XML_ResumeParser(m_p));
}

Status TreeParser::end() {
  return parse("</w>", true);
}

}  // namespace esession::xml::detail
