#include "util/output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "crypto/bytes.hpp"

namespace esession::fs {

namespace {

// resolve_destination follows a symbolic link at |path| to the file it names.
Result<std::string> resolve_destination(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return path;
    return io_error(path, "cannot examine", errno);
  }
  if (S_ISDIR(st.st_mode))
    return fail(Errc::io, path + ": is a directory");
  if (!S_ISLNK(st.st_mode))
    return path;
  // realpath needs the target to exist: a dangling link is refused rather than guessed at.
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real)
    return io_error(path, "cannot resolve symbolic link", errno);
  std::string out(real);
  std::free(real);
  if (::stat(out.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return fail(Errc::io, path + ": is a directory");
  return out;
}

}  // namespace

Result<OutputFile> OutputFile::create(const std::string& path, mode_t mode) {
  if (path.empty())
    return fail(Errc::io, "empty output file name");
  ES_ASSIGN(std::string dest, resolve_destination(path));
  std::string leaf(1, '.');
  leaf.append(base_of(dest));
  leaf.append(".tmp.");
  leaf.append(6, 'X');  // replaced by mkostemp
  std::string dir = parent_of(dest);
  std::string tmpl = dir == "/" ? "/" + leaf : dir + "/" + leaf;
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = ::mkostemp(name.data(), O_CLOEXEC);  // O_RDWR|O_CREAT|O_EXCL, mode 0600
  if (fd < 0)
    return io_error(path, "cannot create a temporary file in " + dir, errno);
  return OutputFile(std::move(dest), std::string(name.data()), fd, mode);
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : m_path(std::move(o.m_path)),
      m_temp(std::move(o.m_temp)),
      m_fd(std::move(o.m_fd)),
      m_mode(o.m_mode) {
  o.m_temp.clear();
}

Status OutputFile::commit() {
  if (m_temp.empty())
    return fail(Errc::internal, m_path + ": output already committed or discarded");
  Status st;
  if (::fchmod(m_fd.get(), m_mode) != 0)
    st = io_error(m_path, "cannot set permissions", errno);
  else if (::fsync(m_fd.get()) != 0)
    st = io_error(m_path, "cannot sync", errno);
  else if (m_fd.close() != 0)
    st = io_error(m_path, "write failed", errno);
  else if (::rename(m_temp.c_str(), m_path.c_str()) != 0)
    st = io_error(m_path, "cannot replace", errno);
  if (!st) {
    discard();
    return st;
  }
  m_temp.clear();
  return fsync_dir(parent_of(m_path));
}

void OutputFile::discard() {
  m_fd.reset();
  if (!m_temp.empty())
    ::unlink(m_temp.c_str());
  m_temp.clear();
}

struct WriteBehind::Impl {
  struct Job {
    uint8_t* buf;
    size_t off, len;
  };
  int fd;
  std::string name;
  size_t size;
  std::vector<SecretBytes> bufs;
  std::mutex mu;
  std::condition_variable work;   // the writer waits for jobs (or the end)
  std::condition_variable freed;  // the caller waits for a free buffer (or all written)
  std::vector<uint8_t*> free;
  std::deque<Job> queue;
  size_t busy = 0;  // jobs taken by the writer, not yet done
  bool stop = false;
  bool threaded = false;
  std::optional<Error> error;
  std::thread writer;

  void run() {
    std::unique_lock lock(mu);
    for (;;) {
      work.wait(lock, [this] { return stop || !queue.empty(); });
      if (queue.empty())
        return;
      Job j = queue.front();
      queue.pop_front();
      ++busy;
      bool skip = error.has_value();
      lock.unlock();
      Status st = skip ? Status{} : write_all(fd, {j.buf + j.off, j.len}, name);
      lock.lock();
      if (!st && !error)
        error = st.error();
      --busy;
      free.push_back(j.buf);
      freed.notify_one();
    }
  }
};

WriteBehind::WriteBehind(int fd, std::string name, size_t buffer_bytes, size_t count)
    : m(std::make_unique<Impl>()) {
  m->fd = fd;
  m->name = std::move(name);
  m->size = buffer_bytes;
  m->bufs.resize(fd < 0 ? 1 : std::max<size_t>(count, 2));
  for (auto& b : m->bufs) {
    b.resize(buffer_bytes);
    m->free.push_back(b.data());
  }
  if (fd < 0)
    return;
  try {
    m->writer = std::thread([impl = m.get()] { impl->run(); });
    m->threaded = true;
  } catch (const std::system_error&) {
    // No thread: submit() writes synchronously.
  }
}

WriteBehind::~WriteBehind() {
  if (!m->threaded)
    return;
  {
    std::lock_guard lock(m->mu);
    m->stop = true;
    if (!m->error)
      m->error = fail(Errc::io, m->name + ": abandoned");  // drop what is still queued
  }
  m->work.notify_one();
  m->writer.join();
}

std::span<uint8_t> WriteBehind::acquire() {
  std::unique_lock lock(m->mu);
  m->freed.wait(lock, [this] { return !m->free.empty(); });
  uint8_t* b = m->free.back();
  m->free.pop_back();
  return {b, m->size};
}

void WriteBehind::release(std::span<uint8_t> buf) {
  std::lock_guard lock(m->mu);
  m->free.push_back(buf.data());
}

void WriteBehind::submit(std::span<uint8_t> buf, size_t off, size_t len) {
  if (m->fd >= 0 && !m->threaded) {
    if (!m->error)
      if (Status st = write_all(m->fd, {buf.data() + off, len}, m->name); !st)
        m->error = st.error();
    release(buf);
    return;
  }
  if (m->fd < 0) {
    release(buf);
    return;
  }
  {
    std::lock_guard lock(m->mu);
    m->queue.push_back({buf.data(), off, len});
  }
  m->work.notify_one();
}

bool WriteBehind::failed() {
  std::lock_guard lock(m->mu);
  return m->error.has_value();
}

Status WriteBehind::finish() {
  std::unique_lock lock(m->mu);
  m->freed.wait(lock, [this] { return m->queue.empty() && m->busy == 0; });
  if (m->error)
    return *m->error;
  return {};
}

std::string spool_dir() {
  const char* t = std::getenv("TMPDIR");
  if (t && t[0] == '/')
    return t;
  return "/tmp";
}

Result<UniqueFd> open_spool(const std::string& dir) {
#ifdef O_TMPFILE
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600));
  if (fd)
    return fd;
  // EOPNOTSUPP or EISDIR: the file system has no O_TMPFILE; fall back to create-and-unlink.
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return io_error(dir, "cannot create a spool file", errno);
#endif
  std::string tmpl = dir + "/esession-spool.XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  UniqueFd fd2(::mkostemp(name.data(), O_CLOEXEC));
  if (!fd2)
    return io_error(dir, "cannot create a spool file", errno);
  ::unlink(name.data());
  return fd2;
}

Status write_all(int fd, std::span<const uint8_t> data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, std::min<size_t>(data.size() - done, SSIZE_MAX));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return io_error(what, "write failed", errno);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<size_t> read_some(int fd, std::span<uint8_t> out, const std::string& what) {
  for (;;) {
    ssize_t n = ::read(fd, out.data(), std::min<size_t>(out.size(), SSIZE_MAX));
    if (n >= 0)
      return static_cast<size_t>(n);
    if (errno != EINTR)
      return io_error(what, "read failed", errno);
  }
}

int64_t regular_size(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return -1;
  return st.st_size;
}

}  // namespace esession::fs
