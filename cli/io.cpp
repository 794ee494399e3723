#include "io.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "context.hpp"
#include "util/fs.hpp"

namespace esession::cli {

StanzaInput::StanzaInput(int fd, size_t max_stanza)
    : m_fd(fd), m_reader(std::string(xml::kNsClient), max_stanza) {
  widen_pipe(fd);
}

void widen_pipe(int fd) {
  // A bigger pipe lets a filter take more stanzas per batch (one commit each): 1 MiB is the
  // default limit for unprivileged processes. Failure only costs speed.
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
    (void)::fcntl(fd, F_SETPIPE_SZ, 1 << 20);
}

bool StanzaInput::fill(int timeout_ms) {
  pollfd p{m_fd, POLLIN, 0};
  int n;
  do
    n = ::poll(&p, 1, timeout_ms);
  while (n < 0 && errno == EINTR);
  if (n == 0)
    return false;
  char buf[1 << 16];
  ssize_t got;
  do
    got = ::read(m_fd, buf, sizeof buf);
  while (got < 0 && errno == EINTR);
  if (got < 0)
    fail_with(Errc::io, std::string("reading input: ") + std::strerror(errno));
  if (got == 0) {
    m_eof = true;
    m_reader.finish();
  } else {
    m_reader.feed(std::string_view(buf, static_cast<size_t>(got)));
  }
  return true;
}

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
    if (!fill(timeout_ms))
      fail_with(Errc::io, "timed out waiting for the peer's answer",
                "raise --timeout, or check that the peer's output reaches our input");
  }
}

std::vector<xml::Element> StanzaInput::next_batch(size_t max) {
  std::vector<xml::Element> out;
  auto first = next();
  if (!first)
    return out;
  out.push_back(std::move(*first));
  while (out.size() < max) {
    auto r = m_reader.next();
    if (!r)
      break;  // the error surfaces on the next call, after this batch is done
    if (*r) {
      out.push_back(std::move(**r));
      continue;
    }
    // Take what is already waiting in the input, without blocking.
    if (m_eof || !fill(0))
      break;
  }
  return out;
}

void write_stanza(const xml::Element& e, FILE* out, xml::SerializeStyle style) {
  std::string line = xml::serialize(e, {}, style);
  if (line.size() > xml::kMaxStanza)
    fail_with(Errc::malformed,
              "the <" + e.name + "/> stanza to write is " + std::to_string(line.size()) +
                  " bytes, more than the " + std::to_string(xml::kMaxStanza) +
                  " bytes a receiver reads",
              "send large content as a file: esession seal --file");
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), out) != line.size() || std::fflush(out) != 0)
    fail_with(Errc::io, std::string("writing output: ") + std::strerror(errno));
}

std::vector<xml::Element> read_stanza_file(const std::string& path, std::string_view what,
                                           size_t max) {
  const std::string name = std::string(what) + " " + path;
  fs::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd)
    fail_with(Errc::io, name + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode))
    fail_with(Errc::io, name + ": is a directory");
  StanzaInput in(fd.get());
  std::vector<xml::Element> out;
  while (out.size() < max) {
    std::optional<xml::Element> e = in.next();
    if (!e)
      break;
    out.push_back(*std::move(e));
  }
  return out;
}

xml::Element read_published(const std::string& path) {
  std::vector<xml::Element> all = read_stanza_file(path, "--options", 1);
  if (all.empty())
    fail_with(Errc::malformed, "--options " + path + " is empty");
  return std::move(all.front());
}

}  // namespace esession::cli
