#include "io.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "context.hpp"

namespace esession::cli {

StanzaInput::StanzaInput(int fd, size_t max_stanza)
    : m_fd(fd), m_reader(std::string(xml::kNsClient), max_stanza) {}

std::optional<xml::Element> StanzaInput::next(int timeout_ms) {
  for (;;) {
    auto r = m_reader.next();
    if (!r)
      fail_with(r.error().code == Errc::io ? Errc::io : Errc::malformed,
                "input: " + r.error().detail, "input must be XMPP stanzas (top-level elements)");
    if (*r)
      return std::move(**r);
    if (m_eof)
      return std::nullopt;
    if (timeout_ms >= 0) {
      pollfd p{m_fd, POLLIN, 0};
      int n;
      do
        n = ::poll(&p, 1, timeout_ms);
      while (n < 0 && errno == EINTR);
      if (n == 0)
        fail_with(Errc::io, "timed out waiting for the peer's answer",
                  "raise --timeout, or check that the peer's output reaches our input");
    }
    char buf[65536];
    ssize_t got;
    do
      got = ::read(m_fd, buf, sizeof buf);
    while (got < 0 && errno == EINTR);
    if (got < 0)
      fail_with(Errc::io, std::string("reading input: ") + std::strerror(errno));
    if (got == 0) {
      m_eof = true;
      m_reader.finish();
      continue;
    }
    m_reader.feed(std::string_view(buf, static_cast<size_t>(got)));
  }
}

void write_stanza(const xml::Element& e, FILE* out) {
  std::string line = xml::serialize(e);
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), out) != line.size() || std::fflush(out) != 0)
    fail_with(Errc::io, std::string("writing output: ") + std::strerror(errno));
}

}  // namespace esession::cli
