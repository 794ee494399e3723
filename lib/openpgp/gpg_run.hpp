// Running GnuPG's programs directly, one process per operation.
//
// gpg is a program with a machine interface of its own: status lines on a descriptor
// (--status-fd, doc/DETAILS in GnuPG) and colon-separated key listings (--with-colons). Driving
// it directly costs one process per operation and lets gpg read and write our descriptors
// itself, where GPGME starts gpgconf and gpg --version several times per context and moves
// every byte through its own buffers. Internal to lib/openpgp.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "openpgp/openpgp.hpp"
#include "util/bytes.hpp"
#include "util/result.hpp"

namespace esession::openpgp::detail {

// Job is one run of a program.
struct Job {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH
  // Standard input: a descriptor, or bytes from memory, or neither (/dev/null). A regular file
  // is handed to the program as it is (its offset, shared, counts the bytes read); anything
  // else (a pipe, a terminal) is pumped through a pipe by a thread that counts the bytes.
  int in_fd = -1;
  std::optional<ByteView> in_mem;
  // Standard output: a descriptor handed to the program, or collected into |out_mem| (at most
  // |max_out| bytes: more fails the run with Errc::malformed).
  int out_fd = -1;
  Bytes* out_mem = nullptr;
  size_t max_out = 64u << 20;
  // Written to the program's descriptor 4 before it starts, then closed (a passphrase).
  std::optional<ByteView> fd4;
  // Descriptor 3 carries status lines ("[GNUPG:] KEYWORD args").
  bool status_fd = false;
  // Told the input bytes consumed so far, about ten times a second.
  std::function<void(uint64_t)> progress;
};

// Outcome is how a run ended.
struct Outcome {
  int exit_code = -1;               // the exit status, or 128 + the signal that ended it
  std::vector<std::string> status;  // status lines, "KEYWORD args" without the prefix
  std::string diagnostic;           // the last non-empty line the program wrote on stderr
  uint64_t in_bytes = 0;            // input bytes the program consumed
  int in_errno = 0;                 // a read from |in_fd| failed with this

  // has returns true iff a status line with |keyword| was seen.
  bool has(std::string_view keyword) const;
  // args returns the arguments of each status line with |keyword|, split at spaces.
  std::vector<std::vector<std::string>> args(std::string_view keyword) const;
};

// run starts |job| and waits for it. Fails only when the program cannot be run (Errc::unsupported
// when it is not installed) or its output breaks the limits; its exit code is for the caller.
Result<Outcome> run(Job& job);

// gpg_argv starts the command line of a gpg run on |home| (gpg's default for an empty one):
// batch mode, no terminal, status lines on descriptor 3, nothing from the network; with
// |passphrase|, loopback pinentry reading it from descriptor 4.
std::vector<std::string> gpg_argv(const std::string& home, bool passphrase);

// read_signatures sets the verdict and signer of |d| from the status lines of a decryption or
// verification (crypt.cpp): each signature begins with NEWSIG; GOODSIG with VALIDSIG is good
// (the signer is VALIDSIG's primary fingerprint), BADSIG, EXPSIG, EXPKEYSIG and REVKEYSIG are
// bad, ERRSIG is unknown for a missing key (rc 9) and bad otherwise, a NEWSIG with none of
// these is bad; the worst verdict wins.
void read_signatures(const Outcome& o, Decrypted& d);

// ListedKey is a public or secret key as `gpg --with-colons --with-keygrip` lists it.
struct ListedUid {
  std::string uid;      // unescaped
  char validity = '-';  // field 2: o i d r e - q n m f u
};
struct ListedKey {
  std::string fpr;      // the primary fingerprint
  std::string keygrip;  // the primary key's keygrip
  char validity = '-';  // field 2 of the primary key: r revoked, e expired, i invalid...
  std::string caps;     // field 12: lower case for the primary key, upper case for the key
  int algo = 0;         // the primary key's algorithm (RFC 4880 §9.1)
  unsigned bits = 0;
  std::string curve;    // field 17, for ECC keys
  bool secret = false;  // a secret listing, and the primary's secret part is there
  std::vector<ListedUid> uids;

  bool revoked() const { return validity == 'r'; }
  bool expired() const { return validity == 'e'; }
  bool invalid() const { return validity == 'i'; }
  bool disabled() const { return validity == 'd' || caps.find('D') != std::string::npos; }
  bool can_encrypt() const { return caps.find('E') != std::string::npos; }
  bool primary_can_sign() const;
  // state_problem names what makes the key unusable as a whole, or returns nullptr.
  const char* state_problem() const;
};

// list_keys lists the keys matching any of |patterns| (gpg's user-ID syntax) in |home|;
// |secret| lists secret keys. A pattern that matches nothing is not an error.
Result<std::vector<ListedKey>> list_keys(const std::string& home,
                                         const std::vector<std::string>& patterns, bool secret);

// parse_key_listing reads the output of a --with-colons --with-keygrip listing.
std::vector<ListedKey> parse_key_listing(std::string_view text, bool secret);

}  // namespace esession::openpgp::detail
