// StanzaReader: splits a byte stream into top-level XML elements as soon as each is complete.
//
// Input is a sequence of top-level elements with any whitespace (and comments) between them,
// pretty-printed or not, optionally preceded by one XML declaration. The reader never waits for
// end of input to hand out a complete element. It is a conforming XML parser (TreeParser, on
// expat): everything it hands out is well-formed and namespace-well-formed. DOCTYPE, processing
// instructions, text outside elements, malformed markup, invalid UTF-8 and over-size input are
// errors; after an error the reader stays failed, because a byte stream cannot be resynchronised
// reliably.
//
// Every byte counts against the size limit: an element, or whatever lies between two elements
// (white space, a comment, an unterminated construct), may not exceed it. The input is parsed
// once, in order, so time is linear and memory bounded by the limit.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "xml/element.hpp"

namespace esession::xml {

namespace detail {
class TreeParser;
}

class StanzaReader {
 public:
  // |default_ns| is the namespace of unqualified top-level elements; |max_stanza| bounds the
  // bytes of one element (default 1 MiB).
  explicit StanzaReader(std::string default_ns = std::string(kNsClient),
                        size_t max_stanza = kMaxStanza);
  ~StanzaReader();
  StanzaReader(StanzaReader&&) noexcept;
  StanzaReader& operator=(StanzaReader&&) noexcept;

  // feed appends bytes to the input.
  void feed(std::string_view bytes);
  // finish marks end of input; next() then reports an error for an incomplete element.
  void finish() { m_eof = true; }

  // next returns the next complete element, std::nullopt if more input is needed (or at a
  // clean end of input), or an Error.
  Result<std::optional<Element>> next();

  // raw returns the exact bytes of the element last returned by next().
  const std::string& raw() const { return m_raw; }
  // at_clean_end is true after finish() once every element has been returned.
  bool at_clean_end() const { return m_clean_end; }

 private:
  Result<std::optional<Element>> take();
  Status fail_once(Error e);
  void drop_before(uint64_t index);

  std::string m_default_ns;
  size_t m_max;
  std::unique_ptr<detail::TreeParser> m_tp;
  std::string m_pending;  // input not yet parsed, from m_pending_at
  size_t m_pending_at = 0;
  std::string m_window;  // parsed input from parser index m_window_base, for raw()
  uint64_t m_window_base = 0;
  bool m_started = false;
  bool m_eof = false;
  bool m_clean_end = false;
  std::optional<Error> m_failed;
  std::string m_raw;
};

}  // namespace esession::xml
