#include "xml/reader.hpp"

namespace esession::xml {

StanzaReader::StanzaReader(std::string default_ns, size_t max_stanza)
    : m_default_ns(std::move(default_ns)), m_max(max_stanza) {}

void StanzaReader::feed(std::string_view bytes) {
  m_buf.append(bytes);
}

bool StanzaReader::at_clean_end() const {
  if (!m_eof || m_failed || m_in_element)
    return false;
  return m_buf.find_first_not_of(" \t\r\n", m_start) == std::string::npos;
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// scan advances over the buffer. Between elements it skips whitespace, comments and a leading
// XML declaration; inside an element it tracks depth through tags, comments, CDATA sections and
// processing instructions, honouring quoted attribute values.
Result<std::optional<size_t>> StanzaReader::scan() {
  const std::string& b = m_buf;
  auto need_more = []() -> Result<std::optional<size_t>> { return std::optional<size_t>{}; };
  for (;;) {
    if (!m_in_element) {
      while (m_start < b.size() && is_space(b[m_start]))
        ++m_start;
      if (m_start >= b.size())
        return need_more();
      if (b[m_start] != '<')
        return fail(Errc::malformed, "text outside of an element");
      m_pos = m_start;
      if (b.compare(m_start, 4, "<!--") == 0 || b.size() - m_start < 4) {
        if (b.size() - m_start < 4)
          return need_more();
        size_t end = b.find("-->", m_start + 4);
        if (end == std::string::npos)
          return need_more();
        m_start = end + 3;
        continue;
      }
      if (b.compare(m_start, 2, "<?") == 0) {
        size_t end = b.find("?>", m_start + 2);
        if (end == std::string::npos)
          return need_more();
        if (m_seen_any || b.compare(m_start, 6, "<?xml ") != 0)
          return fail(Errc::malformed, "unexpected processing instruction between stanzas");
        m_seen_any = true;
        m_start = end + 2;
        continue;
      }
      if (b.compare(m_start, 2, "<!") == 0)
        return fail(Errc::malformed, "DOCTYPE and other declarations are not allowed");
      if (b.compare(m_start, 2, "</") == 0)
        return fail(Errc::malformed, "end tag without a start tag");
      m_in_element = true;
      m_seen_any = true;
      m_depth = 0;
      m_open.clear();
    }
    // Inside an element: find the next markup.
    while (m_pos < b.size()) {
      if (m_pos - m_start > m_max)
        return fail(Errc::malformed,
                    "stanza exceeds the size limit of " + std::to_string(m_max) + " bytes");
      size_t lt = b.find('<', m_pos);
      if (lt == std::string::npos) {
        m_pos = b.size();
        break;
      }
      m_pos = lt;
      if (b.size() - lt < 9 && b.compare(lt, 2, "<!") == 0)
        return need_more();
      if (b.compare(lt, 4, "<!--") == 0) {
        size_t end = b.find("-->", lt + 4);
        if (end == std::string::npos)
          return need_more();
        m_pos = end + 3;
        continue;
      }
      if (b.compare(lt, 9, "<![CDATA[") == 0) {
        size_t end = b.find("]]>", lt + 9);
        if (end == std::string::npos)
          return need_more();
        m_pos = end + 3;
        continue;
      }
      if (b.compare(lt, 2, "<!") == 0)
        return fail(Errc::malformed, "DOCTYPE and other declarations are not allowed");
      if (b.compare(lt, 2, "<?") == 0) {
        size_t end = b.find("?>", lt + 2);
        if (end == std::string::npos)
          return need_more();
        m_pos = end + 2;
        continue;
      }
      // A start or end tag: find its closing '>' outside quotes.
      size_t i = lt + 1;
      char quote = 0;
      for (; i < b.size(); ++i) {
        char c = b[i];
        if (quote) {
          if (c == quote)
            quote = 0;
        } else if (c == '"' || c == '\'') {
          quote = c;
        } else if (c == '<') {
          return fail(Errc::malformed, "'<' inside a tag");
        } else if (c == '>') {
          break;
        }
      }
      if (i >= b.size()) {
        if (b.size() - m_start > m_max)
          return fail(Errc::malformed,
                      "stanza exceeds the size limit of " + std::to_string(m_max) + " bytes");
        return need_more();
      }
      bool end_tag = b[lt + 1] == '/';
      bool empty = !end_tag && b[i - 1] == '/';
      size_t name_start = lt + (end_tag ? 2 : 1);
      size_t name_end = b.find_first_of(" \t\r\n/>", name_start);
      std::string name = b.substr(name_start, name_end - name_start);
      if (name.empty())
        return fail(Errc::malformed, "tag without a name");
      if (end_tag) {
        if (m_open.empty() || m_open.back() != name)
          return fail(Errc::malformed, "end tag </" + name + "> does not match its start tag");
        m_open.pop_back();
        --m_depth;
      } else if (!empty) {
        m_open.push_back(std::move(name));
        ++m_depth;
      }
      m_pos = i + 1;
      if (m_depth == 0) {
        if (m_pos - m_start > m_max)
          return fail(Errc::malformed,
                      "stanza exceeds the size limit of " + std::to_string(m_max) + " bytes");
        return std::optional<size_t>(m_pos);
      }
    }
    if (m_pos - m_start > m_max)
      return fail(Errc::malformed,
                  "stanza exceeds the size limit of " + std::to_string(m_max) + " bytes");
    return need_more();
  }
}

Result<std::optional<Element>> StanzaReader::next() {
  if (m_failed)
    return *m_failed;
  auto r = scan();
  if (!r) {
    m_failed = r.error();
    return r.error();
  }
  if (!r.value()) {
    // Compact the buffer so a long stream does not grow without bound.
    if (!m_in_element && m_start > 0) {
      m_buf.erase(0, m_start);
      m_start = 0;
      m_pos = 0;
    } else if (m_in_element && m_start > (1 << 16)) {
      m_buf.erase(0, m_start);
      m_pos -= m_start;
      m_start = 0;
    }
    if (m_eof &&
        (m_in_element || m_buf.find_first_not_of(" \t\r\n", m_start) != std::string::npos)) {
      m_failed = fail(Errc::malformed, "input ends inside an element");
      return *m_failed;
    }
    return std::optional<Element>{};
  }
  size_t end = *r.value();
  m_raw.assign(m_buf, m_start, end - m_start);
  m_start = end;
  m_pos = end;
  m_in_element = false;
  auto e = parse(m_raw, m_default_ns);
  if (!e) {
    m_failed = e.error();
    return e.error();
  }
  return std::optional<Element>(std::move(e.value()));
}

}  // namespace esession::xml
