// XEP-0454 (OMEMO Media Sharing) "aesgcm" file encryption, streaming between file descriptors.
//
// A file is encrypted with AES-256-GCM under a fresh random 32-byte key and 12-byte IV, without
// associated data. What is uploaded is the ciphertext followed by the 16-byte tag; the key
// material travels out of band, as the fragment of an aesgcm:// URL: hex(IV) || hex(key), 88
// hex digits. Files made by older clients use a 16-byte IV (96 hex digits); we open them but
// never make them. formats/objects.md says what we implement.
//
// Every function works in constant memory (four buffers of StreamOptions::buffer_bytes and one
// EVP context), whatever the size of the file. Output is written by a second thread
// (fs::WriteBehind) while the calling thread reads and runs the cipher: on two idle cores,
// sealing and opening a file run about as fast as cp(1) copies it. The open functions never hand
// out plaintext that has not been authenticated: open_to_file writes into an OutputFile that
// appears only after the tag verified, and open_to_fd checks the whole input before it writes the
// first byte.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

#include "crypto/random.hpp"
#include "util/bytes.hpp"

namespace esession::aesgcm {

inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kIvBytes = 12;        // what we write (XEP-0454 §3)
inline constexpr size_t kLegacyIvBytes = 16;  // accepted when opening
inline constexpr size_t kTagBytes = 16;
// kFragmentChars is the length of the fragment we write: hex of the IV and the key.
inline constexpr size_t kFragmentChars = 2 * (kIvBytes + kKeyBytes);
inline constexpr size_t kLegacyFragmentChars = 2 * (kLegacyIvBytes + kKeyBytes);
// kDefaultBufferBytes is the size of each I/O buffer (there are four: writing happens on a
// second thread, behind the reading and the cipher). With the writer thread, 64 KiB, 256 KiB
// and 1 MiB ran equally fast in bench/files.py (1 GiB on tmpfs); 64 KiB keeps them all in L2.
inline constexpr size_t kDefaultBufferBytes = 64 << 10;

// FileKey is the secret of one file: the AES-256 key and the GCM IV (12 bytes, or 16 for files
// from older clients). Both live in memory that is wiped when freed.
struct FileKey {
  SecretBytes key;
  SecretBytes iv;

  // generate draws a new key and a 12-byte IV from |rng|.
  static FileKey generate(RandomSource& rng);
};

// fragment returns hex(iv) || hex(key) in lower case (88 hex digits with a 12-byte IV), the
// URL fragment of XEP-0454, in memory that is wiped when freed.
SecretBytes fragment(const FileKey& k);

// parse_key reads key material given as
//   - a fragment: 88 hex digits (12-byte IV) or 96 (16-byte IV), upper or lower case, or
//   - a whole URL "aesgcm://host/path#fragment" (the scheme in any case),
// with optional white space around it (the newline of a key file). Nothing else is accepted:
// no other characters, no other lengths, no other URL scheme. Errc::malformed otherwise; the
// error detail never quotes the input, which is secret.
Result<FileKey> parse_key(ByteView text);

// Progress reports how far a streaming function got: |done| bytes of input read so far, out of
// |total| (0 when unknown, e.g. from a pipe). A function that reads its input twice (open_to_fd)
// counts both passes in |done| and |total|. Called once per buffer, from the calling thread.
using Progress = std::function<void(uint64_t done, uint64_t total)>;

struct StreamOptions {
  size_t buffer_bytes = kDefaultBufferBytes;  // at least 4 KiB, at most 64 MiB
  Progress progress;                          // may be empty
};

// seal encrypts everything |in_fd| holds, up to its end, and writes ciphertext || tag to
// |out_fd|. Returns the number of plaintext bytes. Errc::io when reading or writing fails
// (the output is then incomplete: write it to an OutputFile to keep that out of sight).
// |in_name| and |out_name| name the two ends in error messages.
Result<uint64_t> seal(const FileKey& k, int in_fd, int out_fd, const StreamOptions& opts = {},
                      const std::string& in_name = "input", const std::string& out_name = "output");

// verify reads ciphertext || tag from |in_fd| to its end and checks the tag, writing nothing.
// Returns the number of plaintext bytes. Errc::auth_failed when the tag does not match or the
// input is shorter than a tag; Errc::io when reading fails.
Result<uint64_t> verify(const FileKey& k, int in_fd, const StreamOptions& opts = {},
                        const std::string& in_name = "input");

// open_to_file decrypts |in_fd| into the file |dest| (mode |mode|), through an OutputFile: the
// plaintext is written to a private temporary file next to |dest|, which replaces |dest| only
// after the tag verified. On any failure |dest| is untouched (or still absent) and the
// temporary file is gone. Returns the number of plaintext bytes. Errc::auth_failed for a wrong
// tag or key or a truncated input; Errc::io for I/O failures.
Result<uint64_t> open_to_file(const FileKey& k, int in_fd, const std::string& dest,
                              mode_t mode = 0600, const StreamOptions& opts = {},
                              const std::string& in_name = "input");

// open_to_fd writes the plaintext of |in_fd| to |out_fd| (a pipe, a terminal, a device), but
// only after it authenticated the whole input:
//   - if |in_fd| is a seekable regular file, a first pass checks the tag without writing, then
//     the input is rewound and decrypted to |out_fd|, checking the tag again;
//   - otherwise the ciphertext is copied to an unlinked spool file (mode 0600) in |spool_dir|
//     while the tag is checked, and the spool is decrypted to |out_fd|.
// Either way nothing is written when the first check fails. Errc::auth_failed as for
// open_to_file; Errc::io for I/O failures, a full spool directory included.
//
// A regular file that another process modifies between the two passes is the one case in which
// bytes that were not authenticated can reach |out_fd|: the second check then fails, and
// open_to_fd returns Errc::auth_failed after having written part of the altered plaintext.
// Callers must treat the output of a failed call as garbage (a pipeline sees the non-zero exit
// status); a caller that cannot should copy the input somewhere private first.
Result<uint64_t> open_to_fd(const FileKey& k, int in_fd, int out_fd, const std::string& spool_dir,
                            const StreamOptions& opts = {}, const std::string& in_name = "input",
                            const std::string& out_name = "output");

}  // namespace esession::aesgcm
