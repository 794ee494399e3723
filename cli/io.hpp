// Stanza I/O for the filters: incremental reading from a file descriptor, one stanza per line
// out, flushed at once so that pipelines see each stanza as soon as it is done.
#pragma once

#include <cstdio>
#include <optional>

#include "xml/reader.hpp"

namespace esession::cli {

class StanzaInput {
 public:
  // |max_stanza| bounds one stanza's bytes; a bigger one is a bad-input error.
  explicit StanzaInput(int fd = 0, size_t max_stanza = xml::kMaxStanza);
  // next returns the next stanza, or nullopt at the end of a clean input. |timeout_ms| < 0
  // waits for ever. Throws Failure on malformed input, a truncated stanza or a timeout.
  std::optional<xml::Element> next(int timeout_ms = -1);
  // next_batch waits for one stanza, then adds every further stanza that is already complete in
  // the buffer, up to |max|, without waiting for more input. Empty at the end of the input.
  std::vector<xml::Element> next_batch(size_t max);
  const std::string& raw() const { return m_reader.raw(); }

 private:
  // fill reads once if input arrives within |timeout_ms| (< 0: wait); false on timeout.
  bool fill(int timeout_ms);
  int m_fd;
  xml::StanzaReader m_reader;
  bool m_eof = false;
};

// read_stanza_file returns the first stanzas (at most |max|) of the file |path| that the
// option |what| names. Throws Failure if it cannot be opened, is a directory or is malformed.
std::vector<xml::Element> read_stanza_file(const std::string& path, std::string_view what,
                                           size_t max);

// read_published reads a peer's published offline options from the file |path| (--options):
// the PEP items result as the server returned it, its <item/>, or the form.
xml::Element read_published(const std::string& path);

// widen_pipe raises the capacity of |fd| if it is a pipe (best effort).
void widen_pipe(int fd);

// write_stanza writes |e| as one line, in |style| (a session's wire_style()), and flushes.
// Throws Failure when the output is closed, or when the line would be longer than
// xml::kMaxStanza (nothing is written then).
void write_stanza(const xml::Element& e, FILE* out = stdout, xml::SerializeStyle style = {});

}  // namespace esession::cli
