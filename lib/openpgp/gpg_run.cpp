// One run of a GnuPG program: spawn, pump, collect, wait (gpg_run.hpp).
#include "openpgp/gpg_run.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "util/fs.hpp"

extern char** environ;

namespace esession::openpgp::detail {

namespace {

// program_path finds |name| in PATH as execvp would (the first regular, executable file),
// once a process: a run of stanzas starts gpg once per stanza, and posix_spawnp would try
// every directory of PATH before gpg's each time. Empty when there is none.
std::string program_path(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::string> found;
  if (name.find('/') != std::string::npos)
    return name;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = found.find(name);
  if (it != found.end())
    return it->second;
  const char* env = std::getenv("PATH");
  std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin";
  std::string hit;
  for (size_t pos = 0; pos <= path.size();) {
    size_t end = std::min(path.find(':', pos), path.size());
    std::string dir = end == pos ? "." : path.substr(pos, end - pos);
    std::string cand = dir + "/" + name;
    struct stat st;
    if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(cand.c_str(), X_OK) == 0) {
      hit = cand;
      break;
    }
    pos = end + 1;
  }
  found.emplace(name, hit);
  return hit;
}

constexpr size_t kMaxStatus = 1u << 20;  // status lines of one run, in all
constexpr size_t kMaxDiagnostic = 4096;  // the stderr tail kept
constexpr size_t kChunk = 1u << 16;

std::string sys(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

struct Pipe {
  fs::UniqueFd r, w;
};

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return fail(Errc::io, sys("pipe"));
  return Pipe{fs::UniqueFd(fds[0]), fs::UniqueFd(fds[1])};
}

// high_dup duplicates |fd| to a number above the standard ones, so that placing the child's
// descriptors 0-4 never overwrites a source that is still to be placed.
Result<fs::UniqueFd> high_dup(int fd) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  if (d < 0)
    return fail(Errc::io, sys("fcntl(F_DUPFD)"));
  return fs::UniqueFd(d);
}

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Pump feeds the child's standard input from memory or a stream, on a thread of its own so
// that it never blocks reading the child's output. The write end closes when it is done.
class Pump {
 public:
  void start(fs::UniqueFd to, int from, std::optional<ByteView> mem) {
    m_thread = std::thread([this, to = std::move(to), from, mem]() mutable {
      // A child that stops reading makes our writes fail with EPIPE, and raise SIGPIPE in
      // this thread: blocked here, whatever the process does with it, it dies with the thread.
      sigset_t pipe_only;
      sigemptyset(&pipe_only);
      sigaddset(&pipe_only, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
      if (mem) {
        if (write_all(to.get(), mem->data(), mem->size()))
          m_done.store(mem->size());
        return;  // a write error: the child stopped reading; its status says why
      }
      bool use_splice = true;
      uint8_t buf[kChunk];
      for (;;) {
        ssize_t n;
        if (use_splice) {
          n = ::splice(from, nullptr, to.get(), nullptr, kChunk, SPLICE_F_MOVE);
          if (n < 0 && errno == EINVAL) {  // a source splice cannot take (a terminal)
            use_splice = false;
            continue;
          }
        } else {
          n = ::read(from, buf, sizeof buf);
          if (n > 0 && !write_all(to.get(), buf, static_cast<size_t>(n)))
            return;
        }
        if (n < 0 && errno == EINTR)
          continue;
        if (n < 0) {
          // EPIPE: the child closed its input; anything else is our read failing.
          if (errno != EPIPE)
            m_errno.store(errno);
          return;
        }
        if (n == 0)
          return;
        m_done.fetch_add(static_cast<uint64_t>(n));
      }
    });
  }
  void join() {
    if (m_thread.joinable())
      m_thread.join();
  }
  ~Pump() { join(); }
  uint64_t done() const { return m_done.load(); }
  int error() const { return m_errno.load(); }

 private:
  std::thread m_thread;
  std::atomic<uint64_t> m_done{0};
  std::atomic<int> m_errno{0};
};

// Collector reads one of the child's outputs to its end.
struct Collector {
  fs::UniqueFd fd;
  std::string* text = nullptr;  // status or stderr
  Bytes* bytes = nullptr;       // standard output
  size_t limit = 0;
  bool keep_tail = false;  // stderr: keep the last |limit| bytes instead of failing
  bool over = false;
};

// read_some reads what is there; returns false at the end (or on an error).
bool read_some(Collector& c) {
  uint8_t buf[kChunk];
  ssize_t n = ::read(c.fd.get(), buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return true;
  if (n <= 0)
    return false;
  size_t have = c.bytes ? c.bytes->size() : c.text->size();
  if (have + static_cast<size_t>(n) > c.limit && !c.keep_tail) {
    c.over = true;
    return true;  // keep draining, so that the child does not block
  }
  if (c.bytes) {
    c.bytes->insert(c.bytes->end(), buf, buf + n);
  } else {
    c.text->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
    if (c.keep_tail && c.text->size() > 2 * c.limit)
      c.text->erase(0, c.text->size() - c.limit);
  }
  return true;
}

std::string last_line(std::string_view s) {
  while (!s.empty()) {
    size_t end = s.find_last_not_of("\r\n");
    if (end == std::string_view::npos)
      return {};
    s = s.substr(0, end + 1);
    size_t start = s.rfind('\n');
    std::string_view line = start == std::string_view::npos ? s : s.substr(start + 1);
    if (line.find_first_not_of(' ') != std::string_view::npos)
      return std::string(line);
    s = start == std::string_view::npos ? std::string_view() : s.substr(0, start);
  }
  return {};
}

std::vector<std::string> split_lines(const std::string& text, std::string_view prefix) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos)
      end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (line.substr(0, prefix.size()) == prefix)
      out.emplace_back(line.substr(prefix.size()));
    pos = end + 1;
  }
  return out;
}

std::vector<std::string> split_fields(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    size_t end = s.find(sep, pos);
    out.emplace_back(s.substr(pos, end == std::string_view::npos ? end : end - pos));
    if (end == std::string_view::npos)
      return out;
    pos = end + 1;
  }
}

}  // namespace

bool Outcome::has(std::string_view keyword) const {
  for (const auto& l : status)
    if (std::string_view(l).substr(0, l.find(' ')) == keyword)
      return true;
  return false;
}

std::vector<std::vector<std::string>> Outcome::args(std::string_view keyword) const {
  std::vector<std::vector<std::string>> out;
  for (const auto& l : status) {
    std::vector<std::string> f = split_fields(l, ' ');
    if (f.front() == keyword)
      out.emplace_back(f.begin() + 1, f.end());
  }
  return out;
}

Result<Outcome> run(Job& job) {
  // The child's descriptors 0-4, from sources numbered 10 and up.
  fs::UniqueFd child_in, child_out, child_err, child_status, child_fd4;
  fs::UniqueFd pump_to;
  bool pumped = false;
  struct stat st {};
  bool in_regular = job.in_fd >= 0 && ::fstat(job.in_fd, &st) == 0 && S_ISREG(st.st_mode);
  off_t in_start = in_regular ? ::lseek(job.in_fd, 0, SEEK_CUR) : -1;
  if (in_regular && in_start >= 0) {
    ES_ASSIGN(child_in, high_dup(job.in_fd));
  } else if (job.in_fd >= 0 || job.in_mem) {
    ES_ASSIGN(Pipe p, make_pipe());
    ES_ASSIGN(child_in, high_dup(p.r.get()));
    pump_to = std::move(p.w);
    pumped = true;
    in_regular = false;
  } else {
    fs::UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null)
      return fail(Errc::io, sys("/dev/null"));
    ES_ASSIGN(child_in, high_dup(null.get()));
  }

  Collector out, err, status;
  if (job.out_fd >= 0) {
    ES_ASSIGN(child_out, high_dup(job.out_fd));
  } else {
    ES_ASSIGN(Pipe p, make_pipe());
    ES_ASSIGN(child_out, high_dup(p.w.get()));
    out.fd = std::move(p.r);
    out.bytes = job.out_mem;
    out.limit = job.max_out;
  }
  std::string err_text, status_text;
  {
    ES_ASSIGN(Pipe p, make_pipe());
    ES_ASSIGN(child_err, high_dup(p.w.get()));
    err.fd = std::move(p.r);
    err.text = &err_text;
    err.limit = kMaxDiagnostic;
    err.keep_tail = true;
  }
  if (job.status_fd) {
    ES_ASSIGN(Pipe p, make_pipe());
    ES_ASSIGN(child_status, high_dup(p.w.get()));
    status.fd = std::move(p.r);
    status.text = &status_text;
    status.limit = kMaxStatus;
  }
  if (job.fd4) {
    // Small enough for the pipe's buffer: written now, read by the child when it wants it.
    if (job.fd4->size() > 4096)
      return fail(Errc::malformed, "passphrase too long (over 4096 bytes)");
    ES_ASSIGN(Pipe p, make_pipe());
    if (!write_all(p.w.get(), job.fd4->data(), job.fd4->size()))
      return fail(Errc::io, sys("passphrase pipe"));
    ES_ASSIGN(child_fd4, high_dup(p.r.get()));
  }

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, child_in.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, child_out.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, child_err.get(), 2);
  // Nothing else of ours reaches the child: an inherited write end of the pipe it reads would
  // keep it from ever seeing the end of its input. (glibc ignores closing a descriptor that
  // is not open.)
  if (child_status)
    posix_spawn_file_actions_adddup2(&fa, child_status.get(), 3);
  else
    posix_spawn_file_actions_addclose(&fa, 3);
  if (child_fd4)
    posix_spawn_file_actions_adddup2(&fa, child_fd4.get(), 4);
  else
    posix_spawn_file_actions_addclose(&fa, 4);
  posix_spawn_file_actions_addclosefrom_np(&fa, 5);
  std::vector<char*> argv;
  for (auto& a : job.argv)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  std::string program = program_path(job.argv[0]);
  int rc = program.empty()
               ? ENOENT
               : ::posix_spawn(&pid, program.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  // Only the child keeps its ends: closing ours lets end-of-file through.
  child_in.reset();
  child_out.reset();
  child_err.reset();
  child_status.reset();
  child_fd4.reset();
  if (rc != 0) {
    if (rc == ENOENT)
      return fail(Errc::unsupported, job.argv[0] +
                                         " not found in PATH: install GnuPG 2.2 or later "
                                         "(Debian: apt install gnupg)");
    return fail(Errc::io, "cannot start " + job.argv[0] + ": " + std::strerror(rc));
  }

  Pump pump;
  if (pumped)
    pump.start(std::move(pump_to), job.in_fd, job.in_mem);

  auto consumed = [&]() -> uint64_t {
    if (pumped)
      return pump.done();
    if (in_regular) {
      off_t now = ::lseek(job.in_fd, 0, SEEK_CUR);
      return now > in_start ? static_cast<uint64_t>(now - in_start) : 0;
    }
    return 0;
  };

  Collector* cs[3] = {out.fd ? &out : nullptr, &err, status.fd ? &status : nullptr};
  for (;;) {
    pollfd fds[3];
    Collector* which[3];
    nfds_t n = 0;
    for (Collector* c : cs)
      if (c && c->fd) {
        fds[n] = pollfd{c->fd.get(), POLLIN, 0};
        which[n++] = c;
      }
    if (n == 0)
      break;
    int pr = ::poll(fds, n, job.progress ? 100 : -1);
    if (pr < 0 && errno != EINTR)
      return fail(Errc::io, sys("poll"));
    if (job.progress)
      job.progress(consumed());
    for (nfds_t i = 0; i < n && pr > 0; ++i)
      if (fds[i].revents && !read_some(*which[i]))
        which[i]->fd.reset();
    if (out.over || status.over)
      ::kill(pid, SIGTERM);
  }
  int ws = 0;
  while (::waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR)
      return fail(Errc::io, sys("waitpid"));
  pump.join();

  if (out.over)
    return fail(Errc::malformed,
                job.argv[0] + " wrote more than " + std::to_string(job.max_out) + " bytes");
  if (status.over)
    return fail(Errc::malformed, job.argv[0] + " wrote too many status lines");
  Outcome o;
  o.exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
  o.status = split_lines(status_text, "[GNUPG:] ");
  o.diagnostic = last_line(err_text);
  o.in_bytes = consumed();
  o.in_errno = pump.error();
  return o;
}

std::vector<std::string> gpg_argv(const std::string& home, bool passphrase) {
  std::vector<std::string> a = {"gpg",
                                "--batch",
                                "--no-tty",
                                "--status-fd",
                                "3",
                                "--no-auto-key-retrieve",
                                "--auto-key-locate",
                                "local"};
  if (!home.empty()) {
    a.push_back("--homedir");
    a.push_back(home);
  }
  if (passphrase) {
    a.insert(a.end(), {"--pinentry-mode", "loopback", "--passphrase-fd", "4"});
  }
  return a;
}

// ---- key listings -----------------------------------------------------------------------------

bool ListedKey::primary_can_sign() const {
  for (char c : caps) {
    if (c == 's')
      return true;
    if (c >= 'A' && c <= 'Z')
      break;  // the key-wide capabilities follow the primary key's own
  }
  return false;
}

const char* ListedKey::state_problem() const {
  if (revoked())
    return "revoked";
  if (expired())
    return "expired";
  if (disabled())
    return "disabled";
  if (invalid())
    return "invalid";
  return nullptr;
}

namespace {

// unescape_colons undoes gpg's \xHH escaping of a colon-listing field.
std::string unescape_colons(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] == 'x') {
      if (Result<Bytes> b = unhex(s.substr(i + 2, 2))) {
        out.push_back(static_cast<char>((*b)[0]));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

std::vector<ListedKey> parse_key_listing(std::string_view text, bool secret) {
  std::vector<ListedKey> keys;
  enum { none, primary, sub } at = none;
  bool want_fpr = false, want_grp = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    std::vector<std::string> f = split_fields(text.substr(pos, end - pos), ':');
    pos = end + 1;
    if (f.size() < 10)
      continue;
    const std::string& type = f[0];
    if (type == (secret ? "sec" : "pub")) {
      ListedKey k;
      k.validity = f[1].empty() ? '-' : f[1][0];
      k.bits = static_cast<unsigned>(std::strtoul(f[2].c_str(), nullptr, 10));
      k.algo = std::atoi(f[3].c_str());
      k.caps = f.size() > 11 ? f[11] : "";
      // Field 15 of a secret key: '#' for a stub (the secret part is elsewhere or gone).
      k.secret = secret && !(f.size() > 14 && f[14] == "#");
      k.curve = f.size() > 16 ? f[16] : "";
      keys.push_back(std::move(k));
      at = primary;
      want_fpr = want_grp = true;
    } else if (type == "sub" || type == "ssb") {
      at = sub;
    } else if (type == "fpr" && at == primary && want_fpr) {
      keys.back().fpr = f[9];
      want_fpr = false;
    } else if (type == "grp" && at == primary && want_grp) {
      keys.back().keygrip = f[9];
      want_grp = false;
    } else if (type == "uid" && at != none && !keys.empty()) {
      ListedUid u;
      u.validity = f[1].empty() ? '-' : f[1][0];
      u.uid = unescape_colons(f[9]);
      keys.back().uids.push_back(std::move(u));
    }
  }
  // A key listed without its fingerprint is of no use to anyone here.
  std::erase_if(keys, [](const ListedKey& k) { return k.fpr.empty(); });
  return keys;
}

Result<std::vector<ListedKey>> list_keys(const std::string& home,
                                         const std::vector<std::string>& patterns, bool secret) {
  Job job;
  job.argv = gpg_argv(home, false);
  job.argv.insert(job.argv.end(), {"--with-colons", "--fixed-list-mode", "--with-keygrip",
                                   secret ? "--list-secret-keys" : "--list-keys", "--"});
  job.argv.insert(job.argv.end(), patterns.begin(), patterns.end());
  job.status_fd = true;
  Bytes out;
  job.out_mem = &out;
  // gpg exits 2 for a pattern that matches nothing: what it lists is the answer.
  ES_TRY(run(job));
  return parse_key_listing(std::string_view(reinterpret_cast<const char*>(out.data()), out.size()),
                           secret);
}

}  // namespace esession::openpgp::detail
