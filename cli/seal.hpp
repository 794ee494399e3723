// What `seal` and `open` share: the options, the input and output plumbing and the progress
// bar. Each format is a pair of functions in a file of its own (seal_aesgcm.cpp, ...), and
// cmd_seal.cpp dispatches on --file and --format.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "util/fs.hpp"
#include "util/output_file.hpp"

namespace esession::openpgp {
struct KeyStatus;
}

namespace esession::cli {

struct ObjectOpts {
  bool file = false;
  std::string format;
  std::string output;    // -o: a path, "-" or empty for standard output
  bool force = false;    // --force: -o may replace an existing file
  std::string input;     // a path, "-" or empty for standard input
  std::string key_out;   // seal: a file to create with the key (aesgcm)
  std::string key_file;  // open: a file holding the key (aesgcm)
  int key_fd = -1;       // seal: write the key there; open: read it from there (aesgcm)
  // -r: who can open it: a JID, a fingerprint or a key/certificate file (formats with
  // recipients; aesgcm has none: its key is the URL).
  std::vector<std::string> recipients;
  // -i/--sign-as: who signs: a JID, a fingerprint or a key file (seal); open: the signer that
  // must have signed.
  std::vector<std::string> signers;
  std::string identity;         // open: our identity file (cms: PEM or PKCS#12)
  std::string options;          // seal: esession, the recipient's published offline options
  bool allow_unsigned = false;  // open: accept a file without a signature (cms, ox)
  std::string mode;             // seal: ox --mode (signcrypt, sign, crypt)
  int64_t max_age = 7 * 86400;  // open: ox, the oldest <time/> accepted, in seconds
  bool error_reply = false;     // open: smime, write RFC 3923 §7's error stanza on failure
  // open without --format: the format was told from the input (DetectedInput), which is then
  // read from |input_fd| (open_input returns it), not opened again.
  bool format_detected = false;
  int input_fd = -1;
};

// Bigger inputs get a progress bar (on a terminal, without -q).
inline constexpr uint64_t kProgressThreshold = 64ull << 20;

std::string errno_text();
bool is_stdio(const std::string& path);
std::string human_size(uint64_t n);

using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

// ProgressBar draws one line on stderr, redrawn at most ten times a second, for inputs larger
// than 64 MiB when stderr is a terminal and -q is not given. |input_size| is the size of the
// input file, or -1 for a pipe (the bar then appears once 64 MiB have gone through).
class ProgressBar {
 public:
  ProgressBar(const Context& ctx, const char* verb, int64_t input_size);
  ~ProgressBar() { clear(); }
  ProgressFn callback();
  void clear();

 private:
  void update(uint64_t done, uint64_t total);

  const char* m_verb;
  bool m_pipe;
  bool m_enabled;
  bool m_drawn = false;
  std::chrono::steady_clock::time_point m_last;
};

// for_each_stanza runs |fn| on each stanza of the input, in order, for the stanza formats: a
// script seals or opens one, a bridge pipes a whole conversation through one process, and
// each stanza is an object of its own (one line out each, flushed). A stanza bigger than
// |max_stanza| bytes, or input that is not XML, ends the run. When |fn| fails on a stanza, seal
// (|keep_going| false) stops there, as encrypt does; open (|keep_going| true) reports the
// refusal on stderr (and an ERROR status line) and goes on with the next stanza, as decrypt
// does, so one forged stanza cannot cut a conversation. The exit status is the first
// failure's. An input without any stanza is an error (exit 2).
int for_each_stanza(Context& ctx, const ObjectOpts& o, size_t max_stanza, bool keep_going,
                    const std::function<void(xml::Element&)>& fn);

// stanza_bare_jid returns the prepared bare JID of |st|'s attribute |attr| (empty when it has
// none); throws Failure when it is not a JID.
std::string stanza_bare_jid(const xml::Element& st, const char* attr);

// opened_stanza is what open writes for a stanza object: |outer|'s routing attributes (to, from,
// type, id, xml:lang) around |payload|, the authenticated content, and nothing else. Every other
// child of |outer| is unauthenticated (anyone on the way can add it): it is dropped, with a
// warning and a DROPPED status line, unless |marker| says it is one of the format's own
// content-free markers (ox: <encryption/> and the <store/> hint seal adds).
xml::Element opened_stanza(Context& ctx, const xml::Element& outer,
                           std::vector<xml::Element> payload,
                           const std::function<bool(const xml::Element&)>& marker);

// open_input opens the input file, or returns standard input (or o.input_fd when detection
// has opened the input). |own| keeps a file open.
int open_input(const ObjectOpts& o, fs::UniqueFd& own);

// DetectedInput tells the format of `open`'s input when --format is not given
// (seal_detect.cpp): from the key options (aesgcm), else from the first bytes of the input (an
// OpenPGP message, a CMS object, or stanzas, each told by stanza_format). It reads no more than
// it must, and hands the whole input on: a regular file is read again from where it began,
// anything else goes through a relay thread and a pipe, in constant memory.
class DetectedInput {
 public:
  DetectedInput();
  ~DetectedInput();
  // detect sets o.format and o.file, o.format_detected and o.input_fd (which lives as long as
  // this object), and writes a FORMAT status line. Throws Failure (Errc::malformed) for input
  // that is none of the formats, saying what it found.
  void detect(Context& ctx, ObjectOpts& o);
  // finish, once the format has opened the input: Errc::io if reading it failed on the way.
  void finish();

 private:
  class Relay;
  std::string m_name;
  fs::UniqueFd m_own;
  std::unique_ptr<Relay> m_relay;
};

// stanza_format is the format of a sealed stanza: "ox" when it has a child <openpgp
// xmlns='urn:xmpp:openpgp:0'/>, "smime" when it has a child <e2e
// xmlns='urn:ietf:params:xml:ns:xmpp-e2e'/>, "esession" when it is an offline request (an
// <init/> with a submitted ESession form); throws Failure (Errc::malformed) for more than one
// or none, naming what it has.
std::string stanza_format(const xml::Element& st);

// Output is where the result goes: a file that appears when complete, or a stream (standard
// output, or a named device or fifo, which cannot be replaced by renaming).
struct Output {
  std::string name;  // for messages
  std::string path;  // a file to create through an OutputFile, or empty for a stream
  int fd = 1;        // the stream
  fs::UniqueFd own;  // an opened device or fifo
};
Output plan_output(const ObjectOpts& o);
// check_output refuses, before a file format reads keys or input, an output that would be
// binary on a terminal (standard output is one) and an existing regular file at -o without
// --force (Errc::malformed). |verb| is "seal" or "open", for the hint.
void check_output(const ObjectOpts& o, const char* verb);
// sealed_file makes, when |out| is a file, the OutputFile a sealed file is written to (mode
// 0666 less the umask: ciphertext is not secret) and points out.fd at it; nothing for a
// stream.
std::optional<fs::OutputFile> sealed_file(Output& out);

// HeldOutput holds plaintext back until the object is authenticated: in the destination's
// OutputFile, renamed into place by release(), or, for a stream, in an unlinked spool file that
// release() copies out. Without release() nothing appears.
class HeldOutput {
 public:
  explicit HeldOutput(const Output& out);
  int fd() const { return m_file ? m_file->fd() : m_spool.get(); }
  // temp_path is the OutputFile's temporary name ("" for a spool file).
  std::string temp_path() const { return m_file ? m_file->temp_path() : std::string(); }
  bool to_file() const { return m_file.has_value(); }
  void release(const Output& out);

 private:
  std::optional<fs::OutputFile> m_file;
  fs::UniqueFd m_spool;
};

// signer_named tells whether |fpr|, the primary fingerprint of a key that made a good OpenPGP
// signature, is among |keys| (openpgp::keys_naming of a JID), usable, with its User ID
// xmpp:JID fully valid in GnuPG. signer_matches asks the same of |which|, a fingerprint (then
// it must be |fpr|) or a JID whose keys are listed in |gnupg_home| (seal_openpgp.cpp; the ox
// format uses them too).
bool signer_named(const std::vector<openpgp::KeyStatus>& keys, const std::string& fpr);

// is_key_file tells whether an OpenPGP -r names a key file: not a fingerprint, and a path with
// a '/' or an existing file (a JID has neither). refuse_signer_file fails for a -i that does:
// secret keys stay in GnuPG (seal_openpgp.cpp; ox too).
bool is_key_file(const std::string& which);
// key_file returns |which| after checking that the file can be read (Errc::io otherwise).
const std::string& key_file(const std::string& which);
void refuse_signer_file(const std::string& which);
bool signer_matches(const std::string& gnupg_home, const std::string& which,
                    const std::string& fpr);

// The formats. Each checks the options that concern it and refuses the others.
int seal_aesgcm(Context& ctx, const ObjectOpts& o);  // XEP-0454 files (seal_aesgcm.cpp)
int open_aesgcm(Context& ctx, const ObjectOpts& o);
int seal_openpgp(Context& ctx, const ObjectOpts& o);  // OpenPGP messages (seal_openpgp.cpp)
int open_openpgp(Context& ctx, const ObjectOpts& o);
int seal_cms(Context& ctx, const ObjectOpts& o);  // CMS files (seal_cms.cpp)
int open_cms(Context& ctx, const ObjectOpts& o);
int seal_ox(Context& ctx, const ObjectOpts& o);  // XEP-0373 stanzas (seal_ox.cpp)
int open_ox(Context& ctx, const ObjectOpts& o);
int seal_smime(Context& ctx, const ObjectOpts& o);  // RFC 3923 stanzas (seal_smime.cpp)
int open_smime(Context& ctx, const ObjectOpts& o);
int seal_esession(Context& ctx, const ObjectOpts& o);  // one-shot offline sessions
int open_esession(Context& ctx, const ObjectOpts& o);  // (seal_esession.cpp)

}  // namespace esession::cli
