// The home directory and private files: where esession keeps its state, and how it writes it.
//
// Every function here checks ownership and permissions the way ssh checks ~/.ssh: a home
// directory or a file that someone else could read or change is refused with an Errc::io error
// that names the path and says how to fix it. Files are created exclusively (O_EXCL) with mode
// 0600 and flushed (file and directory) before the call returns, so a crash leaves either the
// old state or the new one.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "util/bytes.hpp"

namespace esession::fs {

// UniqueFd owns a file descriptor and closes it when it goes out of scope.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : m_fd(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : m_fd(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return m_fd; }
  explicit operator bool() const { return m_fd >= 0; }
  // release gives up ownership and returns the descriptor.
  int release();
  // reset closes the descriptor (ignoring errors) and takes |fd| instead.
  void reset(int fd = -1);
  // close closes the descriptor and reports the error of close(2), which can be the first
  // sign of a failed write on some file systems. Returns 0 or -1 with errno set.
  int close();

 private:
  int m_fd = -1;
};

// parent_of returns the directory part of |path| ("." for a bare name, "/" for a file in
// the root); base_of its last component.
std::string parent_of(const std::string& path);
std::string base_of(const std::string& path);
// fsync_dir flushes directory |dir|, so that a file created or renamed in it stays.
Status fsync_dir(const std::string& dir);
// io_error is Errc::io "|what|: |doing|: <strerror(e)>".
Error io_error(const std::string& what, std::string_view doing, int e);

// HomeEnv is the part of the process environment that locates the home directory. Empty values
// count as unset.
struct HomeEnv {
  std::string esession_home;  // $ESESSION_HOME
  std::string xdg_data_home;  // $XDG_DATA_HOME (ignored unless absolute, as the XDG spec says)
  std::string user_home;      // $HOME, else the password database entry of the effective user

  // from_process reads the variables of the running process.
  static HomeEnv from_process();
};

// resolve_home returns the home directory: |explicit_home| (the --home option) when given, else
// $ESESSION_HOME, else $XDG_DATA_HOME/esession, else $HOME/.local/share/esession. It does not
// touch the file system. Errc::malformed for an empty or NUL-containing --home, Errc::io when
// nothing locates a home.
Result<std::string> resolve_home(const std::optional<std::string>& explicit_home,
                                 const HomeEnv& env);

// ensure_private_dir creates |path| with mode 0700 if it does not exist (missing parents too,
// also 0700, as the XDG spec asks), or checks that the existing directory is owned by the
// effective user and not accessible by group or others. Errc::io on refusal, with a hint.
Status ensure_private_dir(const std::string& path);

// check_private_dir checks an existing directory like ensure_private_dir without creating it.
// Both refuse a |path| that is itself a symbolic link (links among its parents are followed).
Status check_private_dir(const std::string& path);

// real_path returns the canonical absolute name of the existing |path| (realpath(3)): no
// symbolic link, "." or ".." in it. Errc::io naming the cause on failure.
Result<std::string> real_path(const std::string& path);

// check_private_file checks that |path| is a regular file (not a symbolic link) owned by the
// effective user with no group or other permission bits. Errc::io on refusal, with a hint.
Status check_private_file(const std::string& path);

// open_unnamed returns a read-write file with mode 0600 and no name in directory |dir|
// (O_TMPFILE), which link_unnamed can give a name later; nothing is left behind if the process
// dies first. An empty UniqueFd (errno set) when the file system or kernel has no O_TMPFILE, or
// /proc/self/fd, which link_unnamed needs, is not there: the caller then uses a named file.
UniqueFd open_unnamed(const std::string& dir);
// link_unnamed gives the file |fd| from open_unnamed the name |path|; like link(2) it fails
// with EEXIST if |path| exists (a symbolic link included). Returns 0, or -1 with errno set.
int link_unnamed(int fd, const std::string& path);

// write_file_exclusive creates |path| with |mode|: |data| is written to an unnamed file,
// flushed, and linked to |path|, so that a crash leaves no partial file (where the file system
// has no O_TMPFILE, |path| itself is created with O_EXCL|O_NOFOLLOW and written). An existing
// file (or symbolic link) is never touched: Errc::io "already exists". On any failure nothing
// is left at |path|.
Status write_file_exclusive(const std::string& path, ByteView data, mode_t mode = 0600);

// atomic_replace writes |data| to a fresh temporary file (mode |mode|; an OutputFile that does
// not follow a symbolic link at |path|), fsyncs it, renames it over |path| and fsyncs the
// directory: readers see the old or the new contents, never a mixture. (output_file.cpp)
Status atomic_replace(const std::string& path, ByteView data, mode_t mode = 0600);

// read_private_file reads a file that passes check_private_file (checked on the opened
// descriptor, so the file cannot be swapped in between) into a zeroising buffer. Files larger
// than |max_size| are refused.
Result<SecretBytes> read_private_file(const std::string& path, size_t max_size = 1 << 20);

// read_small_file reads a public file (a certificate, a CA bundle, an identity) of at most
// |max_size| bytes; |what| names it in errors ("cannot open the CA bundle PATH: ...").
Result<std::string> read_small_file(const std::string& path, const std::string& what,
                                    size_t max_size = size_t{16} << 20);

// remove_file unlinks |path|; a file that is already gone is not an error.
Status remove_file(const std::string& path);

// exists returns true if |path| names anything, a dangling symbolic link included.
bool exists(const std::string& path);

// join returns |dir|/|name|.
std::string join(std::string_view dir, std::string_view name);

}  // namespace esession::fs
