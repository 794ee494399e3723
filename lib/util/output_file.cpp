#include "util/output_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "util/bytes.hpp"

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

// The temporary names are ".<destination's name>.tmp." and six of these (mkostemp's).
constexpr std::string_view kTempInfix = ".tmp.";
constexpr size_t kTempRandom = 6;
constexpr std::string_view kTempAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

std::string temp_prefix(const std::string& base) {
  std::string leaf(1, '.');  // built step by step: see fs.cpp on GCC's -Wrestrict
  leaf.append(base);
  leaf.append(kTempInfix);
  return leaf;
}

// random_temp_name returns a fresh temporary name for |dest| (in its directory).
std::string random_temp_name(const std::string& dest) {
  uint8_t r[kTempRandom];
  if (::getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) {
    // Uniqueness is all that is needed (the name is linked exclusively): any varying value.
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    uint64_t v = static_cast<uint64_t>(t.tv_nsec) ^ (static_cast<uint64_t>(::getpid()) << 32);
    for (size_t i = 0; i < sizeof r; ++i)
      r[i] = static_cast<uint8_t>(v >> (8 * i));
  }
  std::string leaf = temp_prefix(base_of(dest));
  for (uint8_t b : r)
    leaf.push_back(kTempAlphabet[b % kTempAlphabet.size()]);
  return join(parent_of(dest), leaf);
}

// The time this process started (near enough: when the library was loaded). A temporary last
// modified before then cannot be one this process is writing. File times come from the coarse
// clock (the last tick), which can be behind CLOCK_REALTIME by a tick: compared with a fine
// start time, a file written just after the start would look older than it.
const timespec kProcessStart = [] {
  timespec t{};
#ifdef CLOCK_REALTIME_COARSE
  ::clock_gettime(CLOCK_REALTIME_COARSE, &t);
#else
  ::clock_gettime(CLOCK_REALTIME, &t);
#endif
  return t;
}();

bool before_start(const timespec& t) {
  return t.tv_sec < kProcessStart.tv_sec ||
         (t.tv_sec == kProcessStart.tv_sec && t.tv_nsec < kProcessStart.tv_nsec);
}

}  // namespace

size_t remove_stale_temporaries(const std::string& path) {
  const std::string dir = parent_of(path);
  const std::string prefix = temp_prefix(base_of(path));
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd)
    return 0;
  DIR* d = ::fdopendir(::dup(dfd.get()));
  if (!d)
    return 0;
  std::vector<std::string> candidates;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n.size() == prefix.size() + kTempRandom && n.substr(0, prefix.size()) == prefix &&
        n.substr(prefix.size()).find_first_not_of(kTempAlphabet) == std::string_view::npos)
      candidates.emplace_back(n);
  }
  ::closedir(d);
  size_t removed = 0;
  for (const std::string& n : candidates) {
    UniqueFd fd(
        ::openat(dfd.get(), n.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    struct stat st;
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
        st.st_nlink != 1 || !before_start(st.st_mtim))
      continue;
    // A live OutputFile holds a lock on its file; a killed process's lock went with it.
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0)
      continue;
    // Still the file examined (no one renamed another over the name in between)?
    struct stat now;
    if (::fstatat(dfd.get(), n.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 ||
        now.st_ino != st.st_ino || now.st_dev != st.st_dev)
      continue;
    if (::unlinkat(dfd.get(), n.c_str(), 0) == 0)
      ++removed;
  }
  return removed;
}

Result<OutputFile> OutputFile::create(const std::string& path, mode_t mode, bool follow) {
  if (path.empty())
    return fail(Errc::io, "empty output file name");
  std::string dest = path;
  if (follow) {
    ES_ASSIGN(dest, resolve_destination(path));
  } else {
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      return fail(Errc::io, path + ": is a directory");
  }
  std::string dir = parent_of(dest);
  remove_stale_temporaries(dest);
  // Preferably a file without a name: a process killed before commit() leaves nothing.
  UniqueFd fd = open_unnamed(dir);
  std::string temp;
  if (!fd) {
    std::string tmpl = join(dir, temp_prefix(base_of(dest)));
    tmpl.append(kTempRandom, 'X');  // replaced by mkostemp
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    fd.reset(::mkostemp(name.data(), O_CLOEXEC));  // O_RDWR|O_CREAT|O_EXCL, mode 0600
    if (!fd)
      return io_error(path, "cannot create a temporary file in " + dir, errno);
    temp = name.data();
  }
  // The lock tells remove_stale_temporaries that the file is in use (a named one from the
  // start; an unnamed one once commit() names it).
  ::flock(fd.get(), LOCK_EX | LOCK_NB);
  return OutputFile(std::move(dest), std::move(temp), std::move(fd), mode);
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : m_path(std::move(o.m_path)),
      m_temp(std::move(o.m_temp)),
      m_fd(std::move(o.m_fd)),
      m_mode(o.m_mode),
      m_open(o.m_open) {
  o.m_temp.clear();
  o.m_open = false;
}

Status OutputFile::commit() {
  if (!m_open)
    return fail(Errc::internal, m_path + ": output already committed or discarded");
  Status st;
  if (::fchmod(m_fd.get(), m_mode) != 0)
    st = io_error(m_path, "cannot set permissions", errno);
  else if (::fsync(m_fd.get()) != 0)
    st = io_error(m_path, "cannot sync", errno);
  // The contents are complete and verified by now. Where the destination does not exist, the
  // unnamed file takes its name in one step: a process killed at any moment leaves nothing or
  // the complete file, never a temporary. To replace an existing file it gets a temporary name
  // first (link(2) cannot replace), renamed over the destination below.
  bool linked = false;
  if (st && m_temp.empty() && link_unnamed(m_fd.get(), m_path) == 0)
    linked = true;
  for (int tries = 0; st && !linked && m_temp.empty(); ++tries) {
    std::string name = random_temp_name(m_path);
    if (link_unnamed(m_fd.get(), name) == 0)
      m_temp = name;
    else if (errno != EEXIST || tries == 100)
      st = io_error(m_path, "cannot name the file in " + parent_of(m_path), errno);
  }
  if (st && m_fd.close() != 0) {
    st = io_error(m_path, "write failed", errno);
    if (linked)
      ::unlink(m_path.c_str());  // ours: linked just now
  }
  if (st && !linked && ::rename(m_temp.c_str(), m_path.c_str()) != 0)
    st = io_error(m_path, "cannot replace", errno);
  if (!st) {
    discard();
    return st;
  }
  m_temp.clear();
  m_open = false;
  return fsync_dir(parent_of(m_path));
}

void OutputFile::discard() {
  m_fd.reset();
  if (!m_temp.empty())
    ::unlink(m_temp.c_str());
  m_temp.clear();
  m_open = false;
}

Status atomic_replace(const std::string& path, ByteView data, mode_t mode) {
  ES_ASSIGN(OutputFile f, OutputFile::create(path, mode, false));
  ES_TRY(write_all(f.fd(), data, path));
  return f.commit();
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
