// esession: the command line. Every command reads stdin and writes stdout; everything for
// humans goes to stderr; --status-fd carries machine events.
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"

using namespace esession;
using namespace esession::cli;

namespace {

// dump_cli writes |app| and its subcommands, recursively, as one JSON object: the hidden
// `esession --dump-cli` that scripts/gen-completions and tests/docs_check.sh read.
void dump_cli(const CLI::App& app, std::string& out) {
  auto list = [&out](const std::vector<std::string>& v) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i)
      out += (i ? "," : "") + json_escape(v[i]);
    out += ']';
  };
  out += "{\"name\":" + json_escape(app.get_parent() ? app.get_name() : "esession") +
         ",\"description\":" + json_escape(app.get_description()) + ",\"options\":[";
  std::string positionals;
  bool first = true;
  for (const CLI::Option* opt : app.get_options()) {
    std::string common = ",\"description\":" + json_escape(opt->get_description()) +
                         ",\"required\":" + (opt->get_required() ? "true" : "false");
    if (opt->get_expected_max() > 0) {
      // What the value is, for the completions: "text", "file", "dir" or "choice" (then
      // "choices" lists the words).
      static const char* const kKinds[] = {"text", "file", "dir", "choice"};
      ValueHint h = value_hint(opt);
      common += ",\"value\":" + json_escape(kKinds[static_cast<int>(h.kind)]);
      if (h.kind == ValueKind::choice) {
        common += ",\"choices\":";
        std::swap(out, common);  // list() appends to out
        list(h.choices);
        std::swap(out, common);
      }
    }
    if (!opt->nonpositional()) {
      positionals += std::string(positionals.empty() ? "" : ",") +
                     "{\"name\":" + json_escape(opt->get_name(true)) + common + "}";
      continue;
    }
    std::vector<std::string> names;
    for (const auto& s : opt->get_snames())
      names.push_back("-" + s);
    for (const auto& l : opt->get_lnames())
      names.push_back("--" + l);
    out += first ? "{\"names\":" : ",{\"names\":";
    first = false;
    list(names);
    bool takes_value = opt->get_expected_max() > 0;  // a flag expects none
    out += ",\"takes_value\":" + std::string(takes_value ? "true" : "false");
    if (takes_value)
      out += ",\"type\":" + json_escape(opt->get_type_name()) +
             ",\"multiple\":" + (opt->get_expected_max() > 1 ? "true" : "false");
    out += common + "}";
  }
  out += "],\"positionals\":[" + positionals + "],\"subcommands\":[";
  first = true;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    out += first ? "" : ",";
    first = false;
    dump_cli(*sub, out);
  }
  out += "]}";
}

// make_app builds the command line's global options; add_commands adds |only|, or every command
// for nullptr.
std::unique_ptr<CLI::App> make_app(Globals& g) {
  auto app = std::make_unique<CLI::App>(
      "esession: end-to-end encrypted XMPP sessions (XEP-0116, XEP-0200)");
  app->set_version_flag("--version", std::string("esession ") + ESESSION_VERSION);
  app->require_subcommand(1);
  value_is(app->add_option("--home", g.home,
                           "the home directory (default $ESESSION_HOME, else "
                           "$XDG_DATA_HOME/esession)"),
           ValueKind::dir);
  app->add_option("--account", g.account, "the account's JID, when the home holds several");
  app->add_option("--status-fd", g.status_fd, "write machine-readable status lines to this fd");
  app->add_flag("--json", g.json, "machine-readable output for listing commands");
  app->add_flag("-q,--quiet", g.quiet, "only errors on stderr");
  app->add_flag("-v,--verbose", g.verbose, "more detail on stderr");
  app->add_option("--passphrase-fd", g.passphrase_fd,
                  "read key passphrases from this fd (one line each) instead of the terminal");
  value_is(app->add_option(
               "--ca-file", g.ca_file,
               "PEM file of CA certificates for peers' X.509 identities (default: HOME/ca.pem)"),
           ValueKind::file);
  value_is(app->add_option("--gnupg-home", g.gnupg_home,
                           "GnuPG home for OpenPGP identities (default: $GNUPGHOME or ~/.gnupg)"),
           ValueKind::dir);
  return app;
}

void add_commands(CLI::App& app, Context& ctx, Action& action, const Command* only) {
  for (const auto& c : command_table())
    if (!only || &c == only)
      c.add(app, ctx, action);
  // Global options are accepted after the command too (esession key list --json).
  std::function<void(CLI::App*)> fall = [&fall](CLI::App* a) {
    for (CLI::App* sub : a->get_subcommands({})) {
      sub->fallthrough();
      fall(sub);
    }
  };
  fall(&app);
}

// named_command returns the command that |argv| names, for registering it alone: the first
// argument that is neither a global option of |app| nor its value, if it is a command's name.
// Nothing (register them all) when anything asks for help, the version or the command tree,
// which list every command.
const Command* named_command(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--" || a == "-h" || a == "--help" || a == "--help-all" || a == "--version" ||
        a == "--dump-cli")
      return nullptr;
  }
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() > 1 && a[0] == '-') {
      const CLI::Option* opt =
          a.find('=') == std::string::npos ? app.get_option_no_throw(a) : nullptr;
      if (opt && opt->get_expected_max() > 0)
        ++i;  // its value
      continue;
    }
    for (const auto& c : command_table())
      if (a == c.name)
        return &c;
    return nullptr;
  }
  return nullptr;
}

// kFdOptions says which descriptor options esession writes to; every other option whose name
// ends in "-fd" is read from. |command| narrows an entry to one command (nullptr: any).
struct FdOption {
  const char* name;
  const char* command;
  bool write;
};
constexpr FdOption kFdOptions[] = {
    {"--status-fd", nullptr, true},
    {"--reply-fd", nullptr, true},
    {"--content-fd", nullptr, true},
    {"--key-fd", "seal", true},  // open reads the key from it
};

// StdioState remembers which of descriptors 0-2 were closed when esession started.
using StdioState = std::array<bool, 3>;

// reopen_stdio opens /dev/null on each of descriptors 0, 1 and 2 that is closed, so that no
// file esession opens later (the database, a key file) takes one of their numbers and gets
// stanzas or messages written into it. Returns which ones were closed.
StdioState reopen_stdio() {
  StdioState closed{};
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
      continue;
    closed[fd] = true;
    int n = ::open("/dev/null", O_RDWR | O_NOCTTY);  // the lowest free number: |fd|
    if (n != fd) {
      if (n >= 0)
        ::close(n);
      // Nothing is safe to write to: leave without opening anything.
      ::_exit(kExitState);
    }
  }
  return closed;
}

// check_fd_value returns why descriptor |fd|, given to |option|, cannot be used (empty: it
// can), without opening anything: it must be open, for writing or reading as |write| says.
std::string check_fd_value(const std::string& option, int fd, bool write,
                           const StdioState& closed) {
  std::string name = option + " " + std::to_string(fd);
  if (fd < 0)
    return name + " is not a file descriptor (they are 0 or more)";
  if (write && fd == 0)
    return name + " is standard input, which is not for writing";
  if (!write && (fd == 1 || fd == 2))
    return name + std::string(" is standard ") + (fd == 1 ? "output" : "error") +
           ", which is not for reading";
  int flags = ::fcntl(fd, F_GETFL);
  struct stat st;
  if (flags < 0 || (fd < 3 && closed[static_cast<size_t>(fd)]) || ::fstat(fd, &st) != 0)
    return name + " is not an open file descriptor";
#ifdef O_PATH
  if (flags & O_PATH)
    return name + " is not open for " + (write ? "writing" : "reading");
#endif
  int mode = flags & O_ACCMODE;
  if (write ? mode == O_RDONLY : mode == O_WRONLY)
    return name + " is not open for " + (write ? "writing" : "reading");
  if (S_ISDIR(st.st_mode))
    return name + " is a directory";
  return {};
}

// check_fd_options checks every --*-fd option that |app| and the commands it parsed were
// given, before anything else is opened: a descriptor that is not open would otherwise be
// the number the next open() returns (the database's), and esession would read a passphrase
// from its own files or write status lines into them. Prints the error and returns false on
// the first bad one.
bool check_fd_options(const CLI::App& app, const StdioState& closed) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->count() == 0)
      continue;
    for (const std::string& l : opt->get_lnames()) {
      std::string option = "--" + l;
      if (option.size() < 4 || option.compare(option.size() - 3, 3, "-fd") != 0)
        continue;
      bool write = false;
      for (const FdOption& f : kFdOptions)
        if (option == f.name && (!f.command || app.get_name() == f.command))
          write = f.write;
      std::string why;
      try {
        why = check_fd_value(option, opt->as<int>(), write, closed);
      } catch (const CLI::ConversionError&) {
        why = option + " " + opt->as<std::string>() + " is not a file descriptor";
      }
      if (!why.empty()) {
        std::fprintf(stderr, "esession: error: %s\n", why.c_str());
        std::fprintf(stderr, "esession: hint: open it in the shell, e.g. %s 3 %s\n", option.c_str(),
                     write ? "3>file" : "3<file");
        return false;
      }
    }
  }
  for (const CLI::App* sub : app.get_subcommands())
    if (!check_fd_options(*sub, closed))
      return false;
  return true;
}

// command_name returns the name of the command |app| parsed.
std::string command_name(const CLI::App& app) {
  std::vector<CLI::App*> got = app.get_subcommands();
  return got.empty() ? std::string() : got.front()->get_name();
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything is opened: no file of ours may take the number of a closed 0, 1 or 2.
  const StdioState closed = reopen_stdio();
  // Every command handles secrets (keys, passphrases, session state, plaintext): none leaves
  // a core dump, and no other process of the user may read our memory through ptrace or
  // /proc/PID/mem (as gpg does). Set for the whole process, so that a crash anywhere is covered.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  struct rlimit no_core {};
  ::setrlimit(RLIMIT_CORE, &no_core);
  // A closed pipe downstream is an I/O error we report, not a silent death.
  std::signal(SIGPIPE, SIG_IGN);
  Globals g;
  Context ctx(g);
  Action action;
  // Registering every command's options costs more than parsing (a few hundred options, each
  // a few allocations), and most runs are one command run by a script: the command the line
  // names is registered alone. Whatever that does not parse is parsed again with every
  // command, so that errors read as they always have.
  std::unique_ptr<CLI::App> app = make_app(g);
  const Command* only = named_command(*app, argc, argv);
  add_commands(*app, ctx, action, only);
  // Hidden (not a CLI11 option, so not in --help): the command tree for docs and completions.
  if (argc >= 2 && std::string_view(argv[1]) == "--dump-cli") {
    std::string out;
    dump_cli(*app, out);
    std::printf("%s\n", out.c_str());
    return kExitOk;
  }
  try {
    try {
      app->parse(argc, argv);
    } catch (const CLI::ParseError&) {
      if (!only)
        throw;
      action = nullptr;
      app = make_app(g);
      add_commands(*app, ctx, action, nullptr);
      app->parse(argc, argv);
    }
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0)
      return app->exit(e);
    std::fprintf(stderr, "esession: error: %s\n", e.what());
    std::fprintf(stderr, "esession: hint: see esession --help\n");
    return kExitInput;
  }
  if (!action)
    return kExitInput;
  if (!check_fd_options(*app, closed))
    return kExitInput;
  // encrypt and decrypt, which scripts run once per stanza, fetch their algorithms from the
  // providers and need none of the legacy name tables; filling them is a quarter of OpenSSL's
  // start-up (0.3 ms). Certificates and PKCS#12 files do look digests and ciphers up by name,
  // so every other command gets the tables. (OpenSSL decides once per process: this must come
  // before anything else uses it.)
  //
  // seal and open of one stanza (no --file: smime, ox) also run once per stanza, but CMS does
  // need the tables (it finds the content cipher by OID). They skip freeing OpenSSL's state at
  // exit instead, which only costs time in a process about to end.
  //
  // An ox stanza is all gpg's work: OpenSSL is not used at all, and not started.
  std::string command = command_name(*app);
  bool hot = command == "encrypt" || command == "decrypt";
  bool stanza = (command == "seal" || command == "open") &&
                app->get_subcommand(command)->count("--file") == 0;
  bool ox =
      stanza && app->get_subcommand(command)->get_option("--format")->as<std::string>() == "ox";
  if (!ox)
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS |
                            (hot ? OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS
                                 : OPENSSL_INIT_ADD_ALL_CIPHERS | OPENSSL_INIT_ADD_ALL_DIGESTS) |
                            (stanza ? OPENSSL_INIT_NO_ATEXIT : 0),
                        nullptr);
  try {
    return action();
  } catch (const Failure& f) {
    return ctx.report(f);
  }
}
