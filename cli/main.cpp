// esession: the command line. Every command reads stdin and writes stdout; everything for
// humans goes to stderr; --status-fd carries machine events.
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <openssl/crypto.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>

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

}  // namespace

int main(int argc, char** argv) {
  // A closed pipe downstream is an I/O error we report, not a silent death.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"esession: end-to-end encrypted XMPP sessions (XEP-0116, XEP-0200)"};
  app.set_version_flag("--version", std::string("esession ") + ESESSION_VERSION);
  app.require_subcommand(1);
  Globals g;
  app.add_option("--home", g.home,
                 "the home directory (default $ESESSION_HOME, else "
                 "$XDG_DATA_HOME/esession)");
  app.add_option("--account", g.account, "the account's JID, when the home holds several");
  app.add_option("--status-fd", g.status_fd, "write machine-readable status lines to this fd");
  app.add_flag("--json", g.json, "machine-readable output for listing commands");
  app.add_flag("-q,--quiet", g.quiet, "only errors on stderr");
  app.add_flag("-v,--verbose", g.verbose, "more detail on stderr");
  app.add_option("--passphrase-fd", g.passphrase_fd,
                 "read key passphrases from this fd (one line each) instead of the terminal");
  app.add_option("--ca-file", g.ca_file,
                 "PEM file of CA certificates for peers' X.509 identities (default: HOME/ca.pem)");
  app.add_option("--gnupg-home", g.gnupg_home,
                 "GnuPG home for OpenPGP identities (default: $GNUPGHOME or ~/.gnupg)");
  Context ctx(g);
  Action action;
  for (const auto& c : command_table())
    c.add(app, ctx, action);
  // Global options are accepted after the command too (esession key list --json).
  std::function<void(CLI::App*)> fall = [&fall](CLI::App* a) {
    for (CLI::App* sub : a->get_subcommands({})) {
      sub->fallthrough();
      fall(sub);
    }
  };
  fall(&app);
  // Hidden (not a CLI11 option, so not in --help): the command tree for docs and completions.
  if (argc >= 2 && std::string_view(argv[1]) == "--dump-cli") {
    std::string out;
    dump_cli(app, out);
    std::printf("%s\n", out.c_str());
    return kExitOk;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0)
      return app.exit(e);
    std::fprintf(stderr, "esession: error: %s\n", e.what());
    std::fprintf(stderr, "esession: hint: see esession --help\n");
    return kExitInput;
  }
  if (!action)
    return kExitInput;
  // encrypt and decrypt, which scripts run once per stanza, fetch their algorithms from the
  // providers and need none of the legacy name tables; filling them is a quarter of OpenSSL's
  // start-up (0.3 ms). Certificates and PKCS#12 files do look digests and ciphers up by name,
  // so every other command gets the tables. (OpenSSL decides once per process: this must come
  // before anything else uses it.)
  bool hot = app.got_subcommand("encrypt") || app.got_subcommand("decrypt");
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS |
                          (hot ? OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS
                               : OPENSSL_INIT_ADD_ALL_CIPHERS | OPENSSL_INIT_ADD_ALL_DIGESTS),
                      nullptr);
  if (g.status_fd >= 0 && ::fcntl(g.status_fd, F_GETFD) < 0) {
    std::fprintf(stderr, "esession: error: --status-fd %d is not an open file descriptor\n",
                 g.status_fd);
    std::fprintf(stderr, "esession: hint: open it in the shell, e.g. --status-fd 3 3>status.log\n");
    return kExitInput;
  }
  try {
    return action();
  } catch (const Failure& f) {
    std::fprintf(stderr, "esession: error: %s\n", f.error.detail.c_str());
    if (!f.hint.empty())
      std::fprintf(stderr, "esession: hint: %s\n", f.hint.c_str());
    ctx.status("ERROR", errc_name(f.error.code));
    return exit_for(f.error.code);
  }
}
