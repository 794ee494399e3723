// esession seal / open: object encryption of one file, without a session or a home (like age).
// Each format lives in a file of its own (seal.hpp lists them); this file holds what they share
// and the command line.
//
// Both commands take the object kind (--file) and the format (--format) first, so that stanza
// objects and more formats, with their recipients (-r) and signers (-i), fit without changing
// what these mean.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "crypto/random.hpp"
#include "io.hpp"
#include "object/aesgcm.hpp"
#include "seal.hpp"
#include "util/fs.hpp"
#include "util/output_file.hpp"

namespace esession::cli {

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

ProgressBar::ProgressBar(const Context& ctx, const char* verb, int64_t input_size)
    : m_verb(verb),
      m_pipe(input_size < 0),
      m_enabled(!ctx.globals().quiet && ::isatty(2) &&
                (input_size < 0 || static_cast<uint64_t>(input_size) > kProgressThreshold)) {}

ProgressFn ProgressBar::callback() {
  if (!m_enabled)
    return {};
  return [this](uint64_t done, uint64_t total) { update(done, total); };
}

void ProgressBar::clear() {
  if (m_drawn)
    std::fputs("\r\033[K", stderr);
  m_drawn = false;
}

void ProgressBar::update(uint64_t done, uint64_t total) {
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
                 "##############################", 30 - filled, "", pct, human_size(done).c_str());
  } else {
    std::fprintf(stderr, "\resession: %s %s ", m_verb, human_size(done).c_str());
  }
  std::fflush(stderr);
}

std::string stanza_bare_jid(const xml::Element& st, const char* attr) {
  const std::string* v = st.attr(attr);
  if (!v)
    return {};
  return bare_jid(prepared_jid(*v, JidKind::any, std::string("the stanza's ") + attr));
}

xml::Element opened_stanza(Context& ctx, const xml::Element& outer,
                           std::vector<xml::Element> payload,
                           const std::function<bool(const xml::Element&)>& marker) {
  xml::Element out(outer.name, outer.ns);
  for (const char* a : {"to", "from", "type", "id", "xml:lang"})
    if (const std::string* v = outer.attr(a))
      out.set_attr(a, *v);
  for (auto& c : payload)
    out.add(std::move(c));
  for (const auto& c : outer.children) {
    if (c.is_text() || marker(c))
      continue;
    ctx.warn("dropped the unprotected <" + c.name + "/> (" + c.ns +
             ") outside the sealed part: anyone on the way could have put it there");
    ctx.status("DROPPED", {c.name, c.ns});
  }
  return out;
}

int open_input(const ObjectOpts& o, fs::UniqueFd& own) {
  if (o.input_fd >= 0)
    return o.input_fd;
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

int for_each_stanza(Context& ctx, const ObjectOpts& o, size_t max_stanza, bool keep_going,
                    const std::function<void(xml::Element&)>& fn) {
  fs::UniqueFd own;
  StanzaInput in(open_input(o, own), max_stanza);
  widen_pipe(1);
  int first = kExitOk;
  size_t n = 0;
  while (std::optional<xml::Element> st = in.next()) {
    ++n;
    try {
      // Without --format the first stanza chose the format: each stanza must be of it.
      if (o.format_detected) {
        std::string f = stanza_format(*st);
        if (f != o.format)
          fail_with(Errc::malformed,
                    "the <" + st->name + "/> stanza is " + f + ", not " + o.format +
                        " as the first stanza of the input",
                    "open each format in a run of its own, or name it with --format");
      }
      fn(*st);
    } catch (const Failure& f) {
      if (!keep_going || f.error.code == Errc::io)
        throw;  // main reports it
      int rc = ctx.report(f);
      if (first == kExitOk)
        first = rc;
    }
  }
  if (n == 0)
    fail_with(Errc::malformed, "no stanza on the input", "give stanzas on standard input");
  return first;
}

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
    if (::isatty(out.fd))
      fail_with(Errc::malformed, o.output + ": refusing to write binary output to a terminal",
                "write it to a file with -o FILE");
    return out;
  }
  out.path = o.output;
  return out;
}

std::optional<fs::OutputFile> sealed_file(Output& out) {
  std::optional<fs::OutputFile> file;
  if (out.path.empty())
    return file;
  mode_t mask = ::umask(0);
  ::umask(mask);
  file.emplace(check(fs::OutputFile::create(out.path, 0666 & ~mask)));
  out.fd = file->fd();
  return file;
}

HeldOutput::HeldOutput(const Output& out) {
  if (!out.path.empty())
    m_file.emplace(check(fs::OutputFile::create(out.path, 0600)));
  else
    m_spool = check(fs::open_spool(fs::spool_dir()), "set TMPDIR to a directory with room");
}

void HeldOutput::release(const Output& out) {
  if (m_file) {
    check(m_file->commit());
    return;
  }
  if (::lseek(m_spool.get(), 0, SEEK_SET) != 0)
    fail_with(Errc::io, "the spool file: cannot seek: " + errno_text());
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    size_t n = check(fs::read_some(m_spool.get(), buf, "the spool file"));
    if (n == 0)
      return;
    check(fs::write_all(out.fd, {buf.data(), n}, out.name));
  }
}

void check_output(const ObjectOpts& o, const char* verb) {
  std::string v(verb);
  if (is_stdio(o.output)) {
    // The file formats are binary: on a terminal they would only garble it (and a terminal
    // interprets some bytes).
    if (::isatty(1))
      fail_with(Errc::malformed,
                "refusing to write binary output to a terminal" +
                    (o.format.empty() ? std::string() : " (" + o.format + ")"),
                "write it to a file with -o FILE, or redirect standard output: esession " + v +
                    " --file" + (o.format.empty() ? std::string() : " --format " + o.format) +
                    " ... -o FILE");
    return;
  }
  struct stat st;
  if (!o.force && ::stat(o.output.c_str(), &st) == 0 && S_ISREG(st.st_mode))
    fail_with(Errc::malformed, o.output + ": the output file exists",
              "--force overwrites it; or choose another name with -o");
}

namespace {

// The formats, by object kind and --format.
struct Format {
  const char* name;
  int (*seal)(Context&, const ObjectOpts&);
  int (*open)(Context&, const ObjectOpts&);
};
constexpr Format kFileFormats[] = {
    {"aesgcm", seal_aesgcm, open_aesgcm},
    {"openpgp", seal_openpgp, open_openpgp},
    {"cms", seal_cms, open_cms},
};

// One stanza (read from standard input) is the object without --file.
const std::vector<Format>& stanza_formats() {
  static const std::vector<Format> formats = {
      {"ox", seal_ox, open_ox},
      {"smime", seal_smime, open_smime},
      {"esession", seal_esession, open_esession},
  };
  return formats;
}

template <class List>
std::string format_names(const List& list) {
  std::string out;
  for (const auto& f : list)
    out += (out.empty() ? "" : ", ") + std::string(f.name);
  return out;
}

const Format& find_format(const ObjectOpts& o, const char* verb) {
  std::string v(verb);
  const auto& stanzas = stanza_formats();
  if (!o.file && stanzas.empty())
    fail_with(Errc::unsupported, v + " needs --file: only files can be " + v + "ed so far",
              "esession " + v + " --file --format FORMAT ...; see esession-" + v + "(1)");
  std::string kind = o.file ? "file" : "stanza";
  std::string names = o.file ? format_names(kFileFormats) : format_names(stanzas);
  if (o.format.empty())
    fail_with(Errc::malformed, "--format is required", "the " + kind + " formats: " + names);
  if (o.file) {
    for (const auto& f : kFileFormats)
      if (o.format == f.name)
        return f;
  } else {
    for (const auto& f : stanzas)
      if (o.format == f.name)
        return f;
    for (const auto& f : kFileFormats)
      if (o.format == f.name)
        fail_with(
            Errc::unsupported, "'" + o.format + "' is a file format: give --file",
            "esession " + v + " --file --format " + o.format + " ...; stanza formats: " + names);
  }
  fail_with(Errc::unsupported, "unknown " + kind + " format '" + o.format + "'",
            "the " + kind + " formats: " + names);
}

// all_format_names lists every format, file formats first (the completions offer them).
std::vector<std::string> all_format_names() {
  std::vector<std::string> out;
  for (const auto& f : kFileFormats)
    out.emplace_back(f.name);
  for (const auto& f : stanza_formats())
    out.emplace_back(f.name);
  return out;
}

void add_common(CLI::App* c, ObjectOpts& o, const char* verb) {
  bool open = std::string(verb) == "open";
  c->add_flag("--file", o.file,
              open ? "the object is a file (without it and --format: told from the input)"
                   : "the object is a file (without it: stanzas on standard input, each one "
                     "object)");
  value_is(c->add_option("--format", o.format,
                         std::string("the format: files aesgcm (XEP-0454), openpgp, cms; stanzas "
                                     "ox, smime, esession (one-shot offline session)") +
                             (open ? " (default: told from the input, or aesgcm with a key)" : "")),
           ValueKind::choice, all_format_names());
  value_is(
      c->add_option("-o,--output", o.output,
                    "write to this file, which must not exist (default or -: standard output)"),
      ValueKind::file);
  c->add_flag("--force", o.force, "-o replaces an existing file");
  if (!open) {
    value_is(c->add_option("-r,--recipient", o.recipients,
                           "who can open it: a JID, fingerprint or certificate file "
                           "(repeatable; not for aesgcm)"),
             ValueKind::file)
        ->allow_extra_args(false);  // one value each: "-r A IN" leaves IN
    value_is(c->add_option("-i,--sign-as", o.signers,
                           "sign as this JID, fingerprint or identity file (not for aesgcm)"),
             ValueKind::file)
        ->allow_extra_args(false);  // one value each: "-r A IN" leaves IN
  } else {
    value_is(c->add_option("-i,--sign-as", o.signers,
                           "require a signature by this JID, fingerprint or certificate file "
                           "(not for aesgcm)"),
             ValueKind::file)
        ->allow_extra_args(false);  // one value each: "-r A IN" leaves IN
  }
}

}  // namespace

void add_seal(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<ObjectOpts>();
  auto* c = app.add_subcommand("seal", "encrypt (and sign) a file, or stanzas, without a session");
  add_common(c, *o, "seal");
  auto* out = value_is(c->add_option("--key-out", o->key_out,
                                     "create this file (exclusively, mode 0600) holding the key"),
                       ValueKind::file);
  auto* fd = c->add_option("--key-fd", o->key_fd, "write the key to this file descriptor");
  out->excludes(fd);
  value_is(c->add_option("--options", o->options,
                         "esession: the recipient's published offline options (a file)"),
           ValueKind::file);
  value_is(c->add_option("--mode", o->mode,
                         "ox: signcrypt (default), sign or crypt; smime: signcrypt (default) or "
                         "sign"),
           ValueKind::choice, {"signcrypt", "sign", "crypt"});
  value_is(c->add_option("input", o->input, "the file to encrypt (default or -: standard input)"),
           ValueKind::file);
  c->callback([&ctx, &action, o] {
    action = [&ctx, o] {
      const Format& f = find_format(*o, "seal");
      if (!o->options.empty() && std::string_view(f.name) != "esession")
        fail_with(Errc::malformed, "--options is for --format esession");
      if (o->file)
        check_output(*o, "seal");
      return f.seal(ctx, *o);
    };
  });
}

void add_open(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<ObjectOpts>();
  auto* c = app.add_subcommand("open", "decrypt and verify a sealed file, or sealed stanzas");
  add_common(c, *o, "open");
  auto* file = value_is(c->add_option("--key-file", o->key_file,
                                      "read the key (the URL, or its #fragment) from this file"),
                        ValueKind::file);
  auto* fd = c->add_option("--key-fd", o->key_fd, "read the key from this file descriptor");
  file->excludes(fd);
  value_is(c->add_option("--identity", o->identity,
                         "cms, smime: decrypt with this PEM or PKCS#12 identity (default: the "
                         "account's X.509 key)"),
           ValueKind::file);
  c->add_flag("--allow-unsigned", o->allow_unsigned,
              "cms, ox: open an object without a signature (nothing authenticates it)");
  c->add_option("--max-age", o->max_age,
                "ox, smime: refuse a timestamp older than this many seconds (default 604800: 7 d)");
  c->add_flag("--error-reply", o->error_reply,
              "smime: on failure, write the error stanza for the sender (RFC 3923 §7)");
  value_is(c->add_option("input", o->input, "the file to decrypt (default or -: standard input)"),
           ValueKind::file);
  c->callback([&ctx, &action, o] {
    action = [&ctx, o] {
      bool checked = false;
      if (o->file && o->format.empty()) {
        check_output(*o, "open");  // before the input is read
        checked = true;
      }
      DetectedInput detected;
      if (o->format.empty())
        detected.detect(ctx, *o);
      const Format& f = find_format(*o, "open");
      if (o->file && !checked)
        check_output(*o, "open");
      int rc = f.open(ctx, *o);
      detected.finish();
      return rc;
    };
  });
}

}  // namespace esession::cli
