// Files written by streaming commands: an output that appears under its name only when it is
// complete and verified, an anonymous spool file, and the read/write loops around them.
//
// OutputFile is what lets a decrypting command write plaintext before it has authenticated it:
// the bytes go to a file in the destination's directory that has no name (O_TMPFILE) and mode
// 0600, and only commit() makes them visible: by linking the file to the destination's name
// when nothing has it, or else to a temporary name renamed over the destination. Any failure,
// not committing, or the process being killed leaves nothing behind, so the destination is
// either untouched or complete (a kill between that link and the rename, when a file is
// replaced, leaves the complete file under its temporary name; the next OutputFile for the
// destination removes it). The aesgcm, CMS
// and OpenPGP file formats all use it.
//
// Where the file system has no O_TMPFILE, the file is a named temporary ".<name>.tmp.XXXXXX"
// (created exclusively, mode 0600, locked with flock(2) while in use) that failures unlink; one
// left by a killed process is removed by the next OutputFile for the same destination (see
// create()).
#pragma once

#include "util/fs.hpp"

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "util/result.hpp"

namespace esession::fs {

// OutputFile is a file under construction at |path|.
class OutputFile {
 public:
  // create makes the file in the directory of |path|: unnamed, or the named temporary
  // ".<name>.tmp.XXXXXX" (O_EXCL, mode 0600). |mode| is the mode the file gets when committed.
  // If |path| is a symbolic link, the file it points to is the destination (as with cp(1)); a
  // dangling link is refused. With |follow| false a link at |path| is replaced instead.
  // Errc::io when the directory cannot take the file or |path| is a directory.
  //
  // It first removes stale temporaries of the destination that a killed process left: files
  // named ".<name>.tmp.XXXXXX" next to it, regular, owned by the effective user, last modified
  // before this process started, and not locked by a live OutputFile.
  static Result<OutputFile> create(const std::string& path, mode_t mode = 0600, bool follow = true);

  OutputFile(OutputFile&& o) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  // The destructor discards an uncommitted file.
  ~OutputFile() { discard(); }

  // fd is the descriptor to write to (read-write; -1 after commit or discard).
  int fd() const { return m_fd.get(); }
  // path is the destination; temp_path the name of the file being written, "" while it has
  // none (O_TMPFILE).
  const std::string& path() const { return m_path; }
  const std::string& temp_path() const { return m_temp; }

  // commit sets the mode and fsyncs the file, links it to the destination if it has no name
  // and the destination does not exist, else gives it a temporary name and renames that over
  // the destination; closes it and fsyncs the directory. On failure the file is
  // removed and the destination is as it was. Call at most once.
  Status commit();
  // discard closes and removes the file. Safe to call more than once.
  void discard();

 private:
  OutputFile(std::string path, std::string temp, UniqueFd fd, mode_t mode)
      : m_path(std::move(path)), m_temp(std::move(temp)), m_fd(std::move(fd)), m_mode(mode) {}
  std::string m_path;
  std::string m_temp;
  UniqueFd m_fd;
  mode_t m_mode;
  bool m_open = true;  // neither committed nor discarded
};

// remove_stale_temporaries removes the temporaries of destination |path| that killed processes
// left (what OutputFile::create does first); returns how many. Best effort: errors are ignored.
size_t remove_stale_temporaries(const std::string& path);

// WriteBehind writes a stream of buffers to a descriptor from a second thread, so that the
// writing (into the page cache: mostly the kernel allocating pages and copying) overlaps the
// caller's reading and computing. A fixed set of |count| buffers of |buffer_bytes| circulates:
// the caller acquire()s a free one, fills it, and submit()s part of it; the writer thread
// writes it and makes it free again. Memory use is fixed whatever the length of the stream.
//
// With |fd| < 0 nothing is written and no thread is started (submit() only frees the buffer).
// If no thread can be started, submit() writes synchronously. Buffers are wiped when freed.
// One caller thread only.
class WriteBehind {
 public:
  WriteBehind(int fd, std::string name, size_t buffer_bytes, size_t count = 4);
  WriteBehind(const WriteBehind&) = delete;
  WriteBehind& operator=(const WriteBehind&) = delete;
  // The destructor stops the writer; queued buffers not yet written are dropped (finish()
  // first to have them written).
  ~WriteBehind();

  // acquire returns a free buffer, waiting while all of them are queued.
  std::span<uint8_t> acquire();
  // submit queues |len| bytes at offset |off| of |buf| (from acquire()) for writing; |buf|
  // becomes free once written. The caller may still read (not change) |buf| until its next
  // acquire().
  void submit(std::span<uint8_t> buf, size_t off, size_t len);
  // release makes |buf| free without writing it.
  void release(std::span<uint8_t> buf);
  // failed returns true once a write has failed; later buffers are dropped, not written.
  bool failed();
  // finish waits until every queued buffer is written and returns the first write error
  // (Errc::io, naming the output).
  Status finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> m;
};

// open_spool returns an unlinked read-write file with mode 0600 in |dir| (O_TMPFILE where the
// file system supports it), for data that must be read twice but is not seekable where it comes
// from. The data is gone when the descriptor is closed. Errc::io on failure.
Result<UniqueFd> open_spool(const std::string& dir);

// spool_dir returns $TMPDIR if it is set to an absolute path, else /tmp.
std::string spool_dir();

// write_all writes all of |data| to |fd|, retrying after short writes and EINTR. |what| names
// the output in the error. Errc::io on failure (a closed pipe included).
Status write_all(int fd, std::span<const uint8_t> data, const std::string& what);

// read_some reads up to |out.size()| bytes, retrying after EINTR; 0 means end of input. Short
// counts are normal for pipes. Errc::io on failure.
Result<size_t> read_some(int fd, std::span<uint8_t> out, const std::string& what);

// regular_size returns the size of |fd| if it is a regular file, else -1.
int64_t regular_size(int fd);

}  // namespace esession::fs
