// StanzaReader: splits a byte stream into top-level XML elements as soon as each is complete.
//
// Input is a sequence of top-level elements with any whitespace (and comments) between them,
// pretty-printed or not, optionally preceded by one XML declaration. The reader never waits for
// end of input to hand out a complete element. DOCTYPE, text outside elements, malformed markup,
// invalid UTF-8 and over-size elements are errors; after an error the reader stays failed,
// because a byte stream cannot be resynchronised reliably.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "xml/element.hpp"

namespace esession::xml {

class StanzaReader {
 public:
  // |default_ns| is the namespace of unqualified top-level elements; |max_stanza| bounds the
  // bytes of one element (default 1 MiB).
  explicit StanzaReader(std::string default_ns = std::string(kNsClient),
                        size_t max_stanza = 1 << 20);

  // feed appends bytes to the internal buffer.
  void feed(std::string_view bytes);
  // finish marks end of input; next() then reports an error for an incomplete element.
  void finish() { m_eof = true; }

  // next returns the next complete element, std::nullopt if more input is needed (or at a
  // clean end of input), or an Error.
  Result<std::optional<Element>> next();

  // raw returns the exact bytes of the element last returned by next().
  const std::string& raw() const { return m_raw; }
  // at_clean_end is true after finish() once every element has been returned.
  bool at_clean_end() const;

 private:
  Result<std::optional<size_t>> scan();  // returns end offset of a complete element

  std::string m_default_ns;
  size_t m_max;
  std::string m_buf;
  size_t m_pos = 0;    // scan position within the current element
  size_t m_start = 0;  // start of the current element (or of unconsumed input)
  int m_depth = 0;
  std::vector<std::string> m_open;  // names of the open elements
  bool m_in_element = false;
  bool m_seen_any = false;
  bool m_eof = false;
  std::optional<Error> m_failed;
  std::string m_raw;
};

}  // namespace esession::xml
