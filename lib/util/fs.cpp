#include "util/fs.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

namespace esession::fs {

Error io_error(const std::string& path, std::string_view what, int e) {
  return fail(Errc::io,
              path + ": " + std::string(what) + ": " + std::generic_category().message(e));
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o)
    reset(o.release());
  return *this;
}

int UniqueFd::release() {
  int fd = m_fd;
  m_fd = -1;
  return fd;
}

void UniqueFd::reset(int fd) {
  if (m_fd >= 0)
    ::close(m_fd);
  m_fd = fd;
}

int UniqueFd::close() {
  int fd = release();
  return fd < 0 ? 0 : ::close(fd);
}

std::string parent_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Status fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd)
    return io_error(dir, "cannot open directory", errno);
  if (::fsync(fd.get()) != 0)
    return io_error(dir, "cannot sync directory", errno);
  return {};
}

namespace {

std::string octal_mode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

Status write_all(int fd, const std::string& path, ByteView data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return io_error(path, "write failed", errno);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

// finish_file sets the exact mode (the umask may have removed bits we want), writes, syncs and
// closes.
Status finish_file(UniqueFd& fd, const std::string& path, ByteView data, mode_t mode) {
  if (::fchmod(fd.get(), mode) != 0)
    return io_error(path, "cannot set permissions", errno);
  ES_TRY(write_all(fd.get(), path, data));
  if (::fsync(fd.get()) != 0)
    return io_error(path, "cannot sync", errno);
  if (fd.close() != 0)
    return io_error(path, "close failed", errno);
  return {};
}

// check_stat applies the ownership and permission rules to |st|; |dir| selects the hint.
Status check_stat(const std::string& path, const struct stat& st, bool dir) {
  if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
    return fail(Errc::io, path + ": not a " + (dir ? "directory" : "regular file"));
  if (st.st_uid != ::geteuid())
    return fail(Errc::io, path + ": owned by uid " + std::to_string(st.st_uid) +
                              ", not by the current user (uid " + std::to_string(::geteuid()) +
                              "); refusing to use it");
  if ((st.st_mode & 077) != 0)
    return fail(Errc::io, path + ": accessible by group or others (mode " + octal_mode(st.st_mode) +
                              "); refusing to use it; run 'chmod " + (dir ? "700 " : "600 ") +
                              path + "'");
  return {};
}

// without_trailing_slashes returns |path| without the slashes that end it (lstat follows a
// symbolic link named "link/").
std::string without_trailing_slashes(const std::string& path) {
  size_t end = path.find_last_not_of('/');
  return end == std::string::npos ? path.substr(0, 1) : path.substr(0, end + 1);
}

// symlinked_dir refuses |path|, a symbolic link where a private directory is wanted: whoever
// can change the link can move the directory elsewhere.
Error symlinked_dir(const std::string& path) {
  std::string msg = path + ": is a symbolic link; refusing to use it as a private directory";
  char* real = ::realpath(path.c_str(), nullptr);
  if (real) {
    msg += std::string("; name the directory itself (") + real + ")";
    std::free(real);
  }
  return fail(Errc::io, msg);
}

Status make_dirs(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0)
    return {};
  if (errno != ENOENT)
    return io_error(path, "cannot examine", errno);
  std::string parent = parent_of(path);
  if (parent != path)
    ES_TRY(make_dirs(parent));
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return io_error(path, "cannot create directory", errno);
  return {};
}

}  // namespace

HomeEnv HomeEnv::from_process() {
  HomeEnv env;
  if (const char* v = std::getenv("ESESSION_HOME"))
    env.esession_home = v;
  if (const char* v = std::getenv("XDG_DATA_HOME"))
    env.xdg_data_home = v;
  if (const char* v = std::getenv("HOME"))
    env.user_home = v;
  if (env.user_home.empty()) {
    struct passwd pw;
    struct passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found &&
        found->pw_dir)
      env.user_home = found->pw_dir;
  }
  return env;
}

Result<std::string> resolve_home(const std::optional<std::string>& explicit_home,
                                 const HomeEnv& env) {
  if (explicit_home) {
    if (explicit_home->empty())
      return fail(Errc::malformed, "--home: empty directory name");
    if (explicit_home->find('\0') != std::string::npos)
      return fail(Errc::malformed, "--home: directory name contains a NUL byte");
    return *explicit_home;
  }
  if (!env.esession_home.empty())
    return env.esession_home;
  if (!env.xdg_data_home.empty() && env.xdg_data_home.front() == '/')
    return join(env.xdg_data_home, "esession");
  if (!env.user_home.empty())
    return join(join(env.user_home, ".local/share"), "esession");
  return fail(Errc::io,
              "cannot locate the esession home: use --home or set ESESSION_HOME (HOME is unset)");
}

Status check_private_dir(const std::string& path) {
  struct stat st;
  if (::lstat(without_trailing_slashes(path).c_str(), &st) != 0)
    return io_error(path, "cannot use directory", errno);
  if (S_ISLNK(st.st_mode))
    return symlinked_dir(path);
  return check_stat(path, st, true);
}

Result<std::string> real_path(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real)
    return io_error(path, "cannot resolve the name", errno);
  std::string out(real);
  std::free(real);
  return out;
}

Status ensure_private_dir(const std::string& path) {
  struct stat st;
  if (::lstat(without_trailing_slashes(path).c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode))
      return symlinked_dir(path);
    return check_stat(path, st, true);
  }
  if (errno != ENOENT)
    return io_error(path, "cannot examine", errno);
  std::string parent = parent_of(path);
  ES_TRY(make_dirs(parent));
  if (::mkdir(path.c_str(), 0700) != 0) {
    if (errno != EEXIST)
      return io_error(path, "cannot create directory", errno);
    return check_private_dir(path);  // created concurrently by another process
  }
  // mkdir honours the umask, which can only remove bits; set exactly 0700.
  if (::chmod(path.c_str(), 0700) != 0)
    return io_error(path, "cannot set permissions", errno);
  ES_TRY(fsync_dir(parent));
  return check_private_dir(path);
}

Status check_private_file(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0)
    return io_error(path, "cannot use file", errno);
  if (S_ISLNK(st.st_mode))
    return fail(Errc::io, path + ": is a symbolic link; refusing to use it");
  return check_stat(path, st, false);
}

UniqueFd open_unnamed(const std::string& dir) {
#ifdef O_TMPFILE
  // Without O_EXCL, so that it can be linked. (Mode 0600: the umask can only remove bits.)
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd)
    return fd;
  // linkat(2) reaches the file through /proc/self/fd (AT_EMPTY_PATH would need
  // CAP_DAC_READ_SEARCH): without /proc the file could never get a name.
  struct stat st;
  std::string self = "/proc/self/fd/" + std::to_string(fd.get());
  if (::stat(self.c_str(), &st) != 0)
    return UniqueFd();
  return fd;
#else
  (void)dir;
  errno = EOPNOTSUPP;
  return UniqueFd();
#endif
}

int link_unnamed(int fd, const std::string& path) {
  std::string self = "/proc/self/fd/" + std::to_string(fd);
  return ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW);
}

Status write_file_exclusive(const std::string& path, ByteView data, mode_t mode) {
  if (UniqueFd fd = open_unnamed(parent_of(path))) {
    // Nothing has the name until the whole file is on disk.
    if (::fchmod(fd.get(), mode) != 0)
      return io_error(path, "cannot set permissions", errno);
    ES_TRY(write_all(fd.get(), path, data));
    if (::fsync(fd.get()) != 0)
      return io_error(path, "cannot sync", errno);
    if (link_unnamed(fd.get(), path) != 0) {
      if (errno == EEXIST)
        return fail(Errc::io, path + ": already exists; refusing to overwrite it");
      return io_error(path, "cannot create", errno);
    }
    if (fd.close() != 0) {
      int e = errno;
      ::unlink(path.c_str());
      return io_error(path, "close failed", e);
    }
    return fsync_dir(parent_of(path));
  }
  UniqueFd fd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0600));
  if (!fd) {
    if (errno == EEXIST)
      return fail(Errc::io, path + ": already exists; refusing to overwrite it");
    return io_error(path, "cannot create", errno);
  }
  Status st = finish_file(fd, path, data, mode);
  if (!st) {
    ::unlink(path.c_str());
    return st;
  }
  return fsync_dir(parent_of(path));
}

Result<SecretBytes> read_private_file(const std::string& path, size_t max_size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    if (errno == ELOOP)
      return fail(Errc::io, path + ": is a symbolic link; refusing to use it");
    return io_error(path, "cannot open", errno);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    return io_error(path, "cannot examine", errno);
  ES_TRY(check_stat(path, st, false));
  if (static_cast<uint64_t>(st.st_size) > max_size)
    return fail(Errc::io, path + ": larger than " + std::to_string(max_size) + " bytes");
  SecretBytes out(static_cast<size_t>(st.st_size));
  size_t done = 0;
  for (;;) {
    if (done == out.size())
      out.resize(done + 4096);  // the file may have grown; read until EOF
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return io_error(path, "read failed", errno);
    }
    if (n == 0)
      break;
    done += static_cast<size_t>(n);
    if (done > max_size)
      return fail(Errc::io, path + ": larger than " + std::to_string(max_size) + " bytes");
  }
  out.resize(done);
  return out;
}

Status remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return io_error(path, "cannot remove", errno);
  return {};
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string join(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (!out.empty() && out.back() != '/')
    out.push_back('/');
  out.append(name);
  return out;
}

Result<std::string> read_small_file(const std::string& path, const std::string& what,
                                    size_t max_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail(Errc::io, "cannot open the " + what + " " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad())
    return fail(Errc::io, "reading the " + what + " " + path + " failed");
  std::string s = ss.str();
  if (s.size() > max_size)
    return fail(Errc::malformed, path + ": too large for a " + what);
  return s;
}

}  // namespace esession::fs
