#include "xml/reader.hpp"

#include <algorithm>

#include "xml/tree_parser.hpp"

namespace esession::xml {

namespace {

// Input is parsed in pieces of at most this many bytes, so that the size limit is checked
// between pieces however much arrives at once.
constexpr size_t kPiece = size_t{1} << 16;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

}  // namespace

StanzaReader::StanzaReader(std::string default_ns, size_t max_stanza)
    : m_default_ns(std::move(default_ns)), m_max(max_stanza) {
  detail::TreeParser::Options o;
  o.default_ns = m_default_ns;
  o.suspend_each_top = true;
  o.allow_pi = false;
  o.max_top_comment = m_max;
  m_tp = std::make_unique<detail::TreeParser>(std::move(o));
}

StanzaReader::~StanzaReader() = default;
StanzaReader::StanzaReader(StanzaReader&&) noexcept = default;
StanzaReader& StanzaReader::operator=(StanzaReader&&) noexcept = default;

void StanzaReader::feed(std::string_view bytes) {
  if (m_failed)
    return;
  if (m_pending_at == m_pending.size()) {
    m_pending.clear();
    m_pending_at = 0;
  }
  m_pending.append(bytes);
}

Status StanzaReader::fail_once(Error e) {
  m_failed = e;
  m_pending.clear();
  m_pending_at = 0;
  m_window.clear();
  return e;
}

void StanzaReader::drop_before(uint64_t index) {
  // Bytes before |index| are no longer needed. They are dropped only once they are most of the
  // window: erasing after every stanza would move the rest of a 64 KiB piece each time.
  size_t n = static_cast<size_t>(index - m_window_base);
  if (n > (size_t{1} << 16) && n * 2 > m_window.size()) {
    m_window.erase(0, n);
    m_window_base = index;
  }
}

Result<std::optional<Element>> StanzaReader::take() {
  std::vector<Element>& top = m_tp->top();
  Element e = std::move(top.back());
  top.clear();
  uint64_t from = m_tp->last_start() - m_window_base, to = m_tp->last_end() - m_window_base;
  if (to - from > m_max)
    return fail_once(Error{Errc::malformed,
                           "stanza exceeds the size limit of " + std::to_string(m_max) + " bytes"})
        .error();
  m_raw.assign(m_window, from, to - from);
  drop_before(m_tp->last_end());
  // Expat checks UTF-8; this also refuses the non-characters U+FFFE and U+FFFF.
  if (!valid_xml_utf8(m_raw))
    return fail_once(Error{Errc::malformed, "input is not valid UTF-8 XML text"}).error();
  return std::optional<Element>(std::move(e));
}

Result<std::optional<Element>> StanzaReader::next() {
  if (m_failed)
    return *m_failed;
  const std::optional<Element> none;
  for (;;) {
    Status s;
    if (m_tp->suspended()) {
      s = m_tp->resume();
    } else if (!m_started) {
      // An XML declaration may open the input (after white space, which is dropped).
      size_t i = m_pending.find_first_not_of(" \t\r\n", m_pending_at);
      std::string_view decl;
      if (i == std::string::npos) {
        if (!m_eof) {
          m_pending.clear();
          m_pending_at = 0;
          return none;
        }
        m_pending_at = m_pending.size();
      } else {
        std::string_view rest = std::string_view(m_pending).substr(i);
        constexpr std::string_view kDecl = "<?xml ";
        if (rest.size() < kDecl.size() && kDecl.starts_with(rest) && !m_eof)
          return none;
        if (rest.starts_with("<?xml") && rest.size() > 5 && is_space(rest[5])) {
          size_t end = rest.find("?>");
          if (end == std::string_view::npos) {
            if (rest.size() > 1024)
              return fail_once(Error{Errc::malformed, "the XML declaration is too long"}).error();
            if (m_eof)
              return fail_once(Error{Errc::malformed, "input ends inside the XML declaration"})
                  .error();
            return none;
          }
          decl = rest.substr(0, end + 2);
        }
        m_pending_at = i + decl.size();
      }
      s = m_tp->begin(decl);
      m_window_base = m_tp->index();
      m_started = true;
    } else if (m_pending_at < m_pending.size()) {
      std::string_view piece = std::string_view(m_pending).substr(
          m_pending_at, std::min(kPiece, m_pending.size() - m_pending_at));
      m_window.append(piece);
      m_pending_at += piece.size();
      s = m_tp->feed(piece);
    } else if (m_eof) {
      if (m_clean_end)
        return none;
      if (m_tp->depth() > 0)
        return fail_once(Error{Errc::malformed, "input ends inside an element"}).error();
      s = m_tp->end();
      if (!s)
        return fail_once(Error{Errc::malformed, "input ends inside markup: " + s.error().detail})
            .error();
      m_clean_end = true;
      return none;
    } else {
      m_pending.clear();
      m_pending_at = 0;
      return none;
    }
    if (!s)
      return fail_once(s.error()).error();
    if (m_tp->suspended())
      return take();
    // The piece is parsed and no element completed in it: what is open may not exceed the
    // limit, and the window keeps only the bytes of the open element.
    uint64_t keep = m_tp->depth() > 0 ? m_tp->open_start() : m_tp->boundary();
    if (m_tp->index() - keep > m_max)
      return fail_once(
                 Error{Errc::malformed,
                       (m_tp->depth() > 0 ? "stanza exceeds the size limit of "
                                          : "input between stanzas exceeds the size limit of ") +
                           std::to_string(m_max) + " bytes"})
          .error();
    drop_before(keep);
  }
}

}  // namespace esession::xml
