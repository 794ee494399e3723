// esession seal / open: object encryption of one file, without a session or a home (like age).
// The only format so far is XEP-0454 aesgcm (lib/object/aesgcm.hpp); its key is a URL fragment
// that goes to a file or a descriptor, never to argv or the environment.
//
// Both commands take the object kind (--file) and the format (--format) first, so that stanza
// objects and the OX and S/MIME formats, with their recipients (-r) and signers (-i), can be
// added as more options without changing what these mean.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "commands.hpp"
#include "crypto/random.hpp"
#include "object/aesgcm.hpp"
#include "util/fs.hpp"
#include "util/output_file.hpp"

namespace esession::cli {

namespace {

struct ObjectOpts {
  bool file = false;
  std::string format;
  std::string output;    // -o: a path, "-" or empty for standard output
  std::string input;     // a path, "-" or empty for standard input
  std::string key_out;   // seal: a file to create with the key
  std::string key_file;  // open: a file holding the key
  int key_fd = -1;       // seal: write the key there; open: read it from there
};

constexpr uint64_t kProgressThreshold = 64ull << 20;
constexpr size_t kMaxKeyText = 64 << 10;  // a key file, or a URL with the key in its fragment

std::string errno_text() {
  return std::strerror(errno);
}

bool is_stdio(const std::string& path) {
  return path.empty() || path == "-";
}

std::string human_size(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

// ProgressBar draws one line on stderr, redrawn at most ten times a second, for inputs larger
// than 64 MiB when stderr is a terminal and -q is not given. |input_size| is the size of the
// input file, or -1 for a pipe (the bar then appears once 64 MiB have gone through).
class ProgressBar {
 public:
  ProgressBar(const Context& ctx, const char* verb, int64_t input_size)
      : m_verb(verb),
        m_pipe(input_size < 0),
        m_enabled(!ctx.globals().quiet && ::isatty(2) &&
                  (input_size < 0 || static_cast<uint64_t>(input_size) > kProgressThreshold)) {}
  ~ProgressBar() { clear(); }

  aesgcm::Progress callback() {
    if (!m_enabled)
      return {};
    return [this](uint64_t done, uint64_t total) { update(done, total); };
  }

  void clear() {
    if (m_drawn)
      std::fputs("\r\033[K", stderr);
    m_drawn = false;
  }

 private:
  void update(uint64_t done, uint64_t total) {
    if (m_pipe && !m_drawn && done <= kProgressThreshold)
      return;
    auto now = std::chrono::steady_clock::now();
    if (m_drawn && now - m_last < std::chrono::milliseconds(100) && done != total)
      return;
    m_last = now;
    m_drawn = true;
    if (total) {
      int pct = static_cast<int>(done * 100 / total);
      int filled = pct * 30 / 100;
      std::fprintf(stderr, "\resession: %s [%.*s%*s] %3d%% %s ", m_verb, filled,
                   "##############################", 30 - filled, "", pct,
                   human_size(done).c_str());
    } else {
      std::fprintf(stderr, "\resession: %s %s ", m_verb, human_size(done).c_str());
    }
    std::fflush(stderr);
  }

  const char* m_verb;
  bool m_pipe;
  bool m_enabled;
  bool m_drawn = false;
  std::chrono::steady_clock::time_point m_last;
};

// check_kind enforces what is implemented so far: files, in the aesgcm format.
void check_kind(const ObjectOpts& o, const char* verb) {
  std::string v(verb);
  if (!o.file)
    fail_with(Errc::unsupported, v + " needs --file: only files can be " + v + "ed so far",
              "esession " + v + " --file --format aesgcm ...; see esession-" + v + "(1)");
  if (o.format.empty())
    fail_with(Errc::malformed, "--file needs --format", "the file formats: aesgcm (XEP-0454)");
  if (o.format != "aesgcm")
    fail_with(Errc::unsupported, "unknown file format '" + o.format + "'",
              "the file formats: aesgcm (XEP-0454)");
}

void check_fd(int fd, const char* option) {
  if (::fcntl(fd, F_GETFD) < 0)
    fail_with(Errc::malformed,
              std::string(option) + " " + std::to_string(fd) + " is not an open file descriptor",
              std::string("open it in the shell, e.g. ") + option + " 3 3>file");
}

// open_input opens the input file, or returns standard input. |own| keeps a file open.
int open_input(const ObjectOpts& o, fs::UniqueFd& own) {
  if (is_stdio(o.input)) {
    widen_pipe(0);  // fewer, larger reads
    return 0;
  }
  own.reset(::open(o.input.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!own)
    fail_with(Errc::io, o.input + ": cannot open: " + errno_text());
  struct stat st;
  if (::fstat(own.get(), &st) == 0 && S_ISDIR(st.st_mode))
    fail_with(Errc::io, o.input + ": is a directory");
  return own.get();
}

// Output is where the result goes: a file that appears when complete, or a stream (standard
// output, or a named device or fifo, which cannot be replaced by renaming).
struct Output {
  std::string name;  // for messages
  std::string path;  // a file to create through an OutputFile, or empty for a stream
  int fd = 1;        // the stream
  fs::UniqueFd own;  // an opened device or fifo
};

Output plan_output(const ObjectOpts& o) {
  Output out;
  if (is_stdio(o.output)) {
    out.name = "standard output";
    return out;
  }
  out.name = o.output;
  struct stat st;
  if (::stat(o.output.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    out.own.reset(::open(o.output.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY));
    if (!out.own)
      fail_with(Errc::io, o.output + ": cannot open: " + errno_text());
    out.fd = out.own.get();
    return out;
  }
  out.path = o.output;
  return out;
}

// ---- seal ------------------------------------------------------------------------------------

int run_seal(Context& ctx, const ObjectOpts& o) {
  check_kind(o, "seal");
  if (o.key_out.empty() && o.key_fd < 0)
    fail_with(Errc::malformed,
              "aesgcm needs somewhere to put the key: --key-out FILE or --key-fd N",
              "the key never goes into the command line or the environment; e.g. "
              "--key-out photo.key");
  if (o.key_fd >= 0)
    check_fd(o.key_fd, "--key-fd");
  if (!o.key_out.empty() && (o.key_out == o.output || o.key_out == o.input))
    fail_with(Errc::malformed,
              "--key-out names the " + std::string(o.key_out == o.output ? "output" : "input") +
                  " file too",
              "keep the key in a file of its own");
  Output out = plan_output(o);
  if (out.path.empty() && ::isatty(out.fd))
    fail_with(Errc::malformed, "refusing to write binary output to a terminal, use -o",
              "esession seal --file --format aesgcm --key-out KEYFILE -o OUT IN");
  if (out.path.empty() && out.fd == o.key_fd)
    fail_with(Errc::malformed, "--key-fd " + std::to_string(o.key_fd) + " is the output as well",
              "send the key to another descriptor, or the ciphertext to a file with -o");
  fs::UniqueFd in_own;
  int in_fd = open_input(o, in_own);
  std::string in_name = is_stdio(o.input) ? "standard input" : o.input;

  std::optional<fs::OutputFile> file;
  if (!out.path.empty()) {
    // Ciphertext is not secret: it gets the usual mode of a new file (0666 less the umask).
    mode_t mask = ::umask(0);
    ::umask(mask);
    file.emplace(check(fs::OutputFile::create(out.path, 0666 & ~mask)));
    out.fd = file->fd();
  }

  SystemRandom rng;
  aesgcm::FileKey key = aesgcm::FileKey::generate(rng);
  SecretBytes frag = aesgcm::fragment(key);
  frag.push_back('\n');
  // The key is written before the ciphertext: an existing --key-out fails early, and a reader of
  // --key-fd that wants the key first does not wait for the end of a long file.
  if (!o.key_out.empty())
    check(fs::write_file_exclusive(o.key_out, view(frag), 0600),
          "choose another file name for --key-out; an existing key file is never replaced");
  else
    check(fs::write_all(o.key_fd, view(frag), "--key-fd " + std::to_string(o.key_fd)));
  auto forget_key = [&] {
    if (!o.key_out.empty())
      (void)fs::remove_file(o.key_out);
  };

  ProgressBar bar(ctx, "sealing", fs::regular_size(in_fd));
  aesgcm::StreamOptions so;
  so.progress = bar.callback();
  Result<uint64_t> r = aesgcm::seal(key, in_fd, out.fd, so, in_name, out.name);
  bar.clear();
  Status committed = r && file ? file->commit() : Status{};
  if (!r || !committed) {
    forget_key();  // a key for a file that does not exist is of no use
    if (!r)
      check(std::move(r));
    check(committed);
  }
  ctx.status("SEALED", "aesgcm " + std::to_string(*r));
  ctx.info("sealed " + human_size(*r) + " (aesgcm)" +
           (o.key_out.empty() ? "" : "; the key is in " + o.key_out + ": keep it secret"));
  return kExitOk;
}

// ---- open ------------------------------------------------------------------------------------

// read_key reads the key text from --key-file or --key-fd into memory that is wiped.
SecretBytes read_key(Context& ctx, const ObjectOpts& o) {
  fs::UniqueFd own;
  int fd = o.key_fd;
  std::string name = "--key-fd " + std::to_string(o.key_fd);
  if (!o.key_file.empty()) {
    name = o.key_file;
    own.reset(::open(o.key_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!own)
      fail_with(Errc::io, o.key_file + ": cannot open: " + errno_text());
    fd = own.get();
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
      ctx.warn(o.key_file + " can be read by others (mode " +
               std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
               std::to_string(st.st_mode & 7) + "); anyone who can read it can open the file");
  }
  SecretBytes text(kMaxKeyText + 1);
  size_t done = 0;
  for (;;) {
    size_t n = check(fs::read_some(fd, {text.data() + done, text.size() - done}, name));
    if (n == 0)
      break;
    done += n;
    if (done > kMaxKeyText)
      fail_with(Errc::malformed, name + ": too long for a key");
  }
  text.resize(done);
  return text;
}

int run_open(Context& ctx, const ObjectOpts& o) {
  check_kind(o, "open");
  if (o.key_file.empty() && o.key_fd < 0)
    fail_with(Errc::malformed, "aesgcm needs the key: --key-file FILE or --key-fd N",
              "the key is the #fragment of the aesgcm:// URL; give the URL or its fragment in "
              "a file");
  if (o.key_fd >= 0) {
    check_fd(o.key_fd, "--key-fd");
    if (o.key_fd == 0 && is_stdio(o.input))
      fail_with(Errc::malformed, "--key-fd 0 is standard input, which holds the file",
                "name the input file, or pass the key on another descriptor");
  }
  std::string key_name = o.key_file.empty() ? "--key-fd " + std::to_string(o.key_fd) : o.key_file;
  SecretBytes text = read_key(ctx, o);
  Result<aesgcm::FileKey> parsed = aesgcm::parse_key(view(text));
  if (!parsed)
    fail_with(parsed.error().code, key_name + ": " + parsed.error().detail,
              "give the aesgcm:// URL, or its fragment of 88 (or 96) hex digits");
  aesgcm::FileKey key = std::move(parsed).value();
  fs::UniqueFd in_own;
  int in_fd = open_input(o, in_own);
  std::string in_name = is_stdio(o.input) ? "standard input" : o.input;
  Output out = plan_output(o);

  ProgressBar bar(ctx, "opening", fs::regular_size(in_fd));
  aesgcm::StreamOptions so;
  so.progress = bar.callback();
  Result<uint64_t> r =
      out.path.empty()
          ? aesgcm::open_to_fd(key, in_fd, out.fd, fs::spool_dir(), so, in_name, out.name)
          : aesgcm::open_to_file(key, in_fd, out.path, 0600, so, in_name);
  bar.clear();
  uint64_t n = check(std::move(r));
  ctx.status("OPENED", "aesgcm " + std::to_string(n));
  ctx.debug("opened " + human_size(n) + " (aesgcm)");
  return kExitOk;
}

void add_common(CLI::App* c, ObjectOpts& o, const char* verb) {
  c->add_flag(
      "--file", o.file,
      std::string("the object is a file (required: only files can be ") + verb + "ed so far)");
  c->add_option("--format", o.format, "the file format: aesgcm (XEP-0454)");
  c->add_option("-o,--output", o.output, "write to this file (default or -: standard output)");
}

}  // namespace

void add_seal(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<ObjectOpts>();
  auto* c = app.add_subcommand("seal", "encrypt a file, for an aesgcm:// URL (XEP-0454)");
  add_common(c, *o, "seal");
  auto* out = c->add_option("--key-out", o->key_out,
                            "create this file (exclusively, mode 0600) holding the key");
  auto* fd = c->add_option("--key-fd", o->key_fd, "write the key to this file descriptor");
  out->excludes(fd);
  c->add_option("input", o->input, "the file to encrypt (default or -: standard input)");
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_seal(ctx, *o); }; });
}

void add_open(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<ObjectOpts>();
  auto* c = app.add_subcommand("open", "verify and decrypt a file sealed for an aesgcm:// URL");
  add_common(c, *o, "open");
  auto* file = c->add_option("--key-file", o->key_file,
                             "read the key (the URL, or its #fragment) from this file");
  auto* fd = c->add_option("--key-fd", o->key_fd, "read the key from this file descriptor");
  file->excludes(fd);
  c->add_option("input", o->input, "the file to decrypt (default or -: standard input)");
  c->callback([&ctx, &action, o] { action = [&ctx, o] { return run_open(ctx, *o); }; });
}

}  // namespace esession::cli
