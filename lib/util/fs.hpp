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

#include "crypto/bytes.hpp"

namespace esession::fs {

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
Status check_private_dir(const std::string& path);

// check_private_file checks that |path| is a regular file (not a symbolic link) owned by the
// effective user with no group or other permission bits. Errc::io on refusal, with a hint.
Status check_private_file(const std::string& path);

// write_file_exclusive creates |path| (O_CREAT|O_EXCL|O_NOFOLLOW) with |mode|, writes |data|,
// and fsyncs the file and its directory. An existing file (or symbolic link) is never touched:
// Errc::io "already exists". On any failure the partly written file is removed.
Status write_file_exclusive(const std::string& path, ByteView data, mode_t mode = 0600);

// atomic_replace writes |data| to a fresh temporary file (mode |mode|) in the directory of
// |path|, fsyncs it, renames it over |path| and fsyncs the directory: readers see the old or
// the new contents, never a mixture.
Status atomic_replace(const std::string& path, ByteView data, mode_t mode = 0600);

// read_private_file reads a file that passes check_private_file (checked on the opened
// descriptor, so the file cannot be swapped in between) into a zeroising buffer. Files larger
// than |max_size| are refused.
Result<SecretBytes> read_private_file(const std::string& path, size_t max_size = 1 << 20);

// remove_file unlinks |path|; a file that is already gone is not an error.
Status remove_file(const std::string& path);

// exists returns true if |path| names anything, a dangling symbolic link included.
bool exists(const std::string& path);

// join returns |dir|/|name|.
std::string join(std::string_view dir, std::string_view name);

}  // namespace esession::fs
