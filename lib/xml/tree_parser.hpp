// TreeParser: the one XML tokenizer of the library. Expat (a conforming, incremental parser)
// checks well-formedness and namespace well-formedness; its events build Element trees.
//
// Internal to lib/xml: parse() and parse_fragment() use it for a whole document, StanzaReader
// for a stream of top-level elements. The input is fed inside a synthetic wrapper element that
// declares the default namespace, so the wrapper's children are the document's top-level
// nodes; an XML declaration at the very start is fed before the wrapper.
#pragma once

#include <expat.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xml/element.hpp"

namespace esession::xml::detail {

class TreeParser {
 public:
  struct Options {
    std::string default_ns;
    size_t max_depth = 64;  // of the top-level elements' trees, the top-level element being 1
    bool suspend_each_top = false;  // stop after each complete top-level element (streams)
    bool allow_pi = true;           // processing instructions (ignored) anywhere
    // max_top_comment, when not 0, bounds a comment between top-level elements (a stream
    // reader's size limit): checked when the comment ends, so the verdict does not depend on
    // how the input was cut into pieces.
    size_t max_top_comment = 0;
  };

  explicit TreeParser(Options o);
  ~TreeParser();
  TreeParser(const TreeParser&) = delete;
  TreeParser& operator=(const TreeParser&) = delete;

  // reset makes the parser new again, with options |o|, for another input: what it had parsed,
  // its nodes and its error are gone; expat keeps its allocated memory (XML_ParserReset), and
  // the hash salt drawn for this parser.
  void reset(Options o);

  // begin feeds |decl| (an XML declaration, or empty) and the wrapper's start tag.
  Status begin(std::string_view decl);
  // feed parses |data|. With suspend_each_top, a complete top-level element suspends the parse:
  // suspended() is then true and resume() goes on with the rest of |data|.
  Status feed(std::string_view data);
  Status resume();
  // end feeds the wrapper's end tag as the final input: the input ended where a top-level node
  // may end.
  Status end();

  bool suspended() const { return m_suspended; }
  // depth is 0 between top-level nodes, else how deep the parse is inside a top-level element.
  size_t depth() const { return m_stack.empty() ? 0 : m_stack.size() - 1; }
  // index is the number of input bytes consumed so far (the wrapper's included).
  uint64_t index() const;
  // set_origin makes error messages count bytes from index |at|, where the caller's input
  // starts (begin sets it after the wrapper's start tag).
  void set_origin(uint64_t at) {
    m_origin = at;
    m_origin_offset = 0;
  }

  // The top-level nodes completed so far, and the input bytes [start, end) of the last
  // top-level element (indexes as index()); boundary() is the end of the last top-level node of
  // any kind (element, white space, comment).
  std::vector<Element>& top() { return m_top; }
  uint64_t last_start() const { return m_last_start; }
  uint64_t open_start() const { return m_top_start; }  // of the open top-level element
  uint64_t last_end() const { return m_last_end; }
  uint64_t boundary() const { return m_boundary; }

 private:
  static void on_start(void* self, const XML_Char* name, const XML_Char** atts);
  static void on_end(void* self, const XML_Char* name);
  static void on_text(void* self, const XML_Char* s, int len);
  static void on_cdata_start(void* self);
  static void on_comment(void* self, const XML_Char* data);
  static void on_pi(void* self, const XML_Char* target, const XML_Char* data);
  static void on_decl(void* self, const XML_Char* version, const XML_Char* encoding,
                      int standalone);
  static void on_ns(void* self, const XML_Char* prefix, const XML_Char* uri);
  static void on_doctype(void* self, const XML_Char* name, const XML_Char* sysid,
                         const XML_Char* pubid, int has_internal_subset);

  void configure();
  Status parse(std::string_view data, bool final);
  Status status_of(XML_Status st);
  void abort(std::string detail);
  uint64_t event_end() const;

  Options m_o;
  XML_Parser m_p;
  unsigned long m_salt = 0;       // expat's hash salt, 0 until drawn
  std::vector<Element*> m_stack;  // the wrapper (nullptr), then the open elements
  std::vector<Element> m_top;
  uint64_t m_fed = 0;  // bytes given to expat
  uint64_t m_origin = 0,
           m_origin_offset = 0;  // index m_origin is the caller's byte m_origin_offset
  uint64_t m_top_start = 0;
  uint64_t m_last_start = 0, m_last_end = 0, m_boundary = 0;
  bool m_suspended = false;
  std::optional<Error> m_error;
};

}  // namespace esession::xml::detail
