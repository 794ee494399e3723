// Files written by streaming commands: an output that appears under its name only when it is
// complete and verified, an anonymous spool file, and the read/write loops around them.
//
// OutputFile is what lets a decrypting command write plaintext before it has authenticated it:
// the bytes go to a temporary file next to the destination that nobody else can open (created
// exclusively, mode 0600), and only commit() makes them visible, by renaming the file over the
// destination. Any failure, or simply not committing, unlinks the temporary file, so the
// destination is either untouched or complete. The aesgcm, CMS and OpenPGP file formats all use
// it.
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
  // create makes the temporary file ".<name>.tmp.XXXXXX" in the directory of |path|, with
  // O_EXCL and mode 0600. |mode| is the mode the file gets when committed. If |path| is a
  // symbolic link, the file it points to is the destination (as with cp(1)); a dangling link is
  // refused. Errc::io when the directory cannot take the file or |path| is a directory.
  static Result<OutputFile> create(const std::string& path, mode_t mode = 0600);

  OutputFile(OutputFile&& o) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  // The destructor discards an uncommitted file.
  ~OutputFile() { discard(); }

  // fd is the descriptor to write to (O_WRONLY; -1 after commit or discard).
  int fd() const { return m_fd.get(); }
  // path is the destination; temp_path the file being written.
  const std::string& path() const { return m_path; }
  const std::string& temp_path() const { return m_temp; }

  // commit sets the mode, fsyncs and closes the file, renames it over the destination and
  // fsyncs the directory. On failure the temporary file is removed and the destination is as it
  // was. Call at most once.
  Status commit();
  // discard closes and removes the temporary file. Safe to call more than once.
  void discard();

 private:
  OutputFile(std::string path, std::string temp, int fd, mode_t mode)
      : m_path(std::move(path)), m_temp(std::move(temp)), m_fd(fd), m_mode(mode) {}
  std::string m_path;
  std::string m_temp;
  UniqueFd m_fd;
  mode_t m_mode;
};

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
