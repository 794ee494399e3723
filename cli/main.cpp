// esession: the command line. Every command reads stdin and writes stdout; everything for
// humans goes to stderr; --status-fd carries machine events.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>

#include "commands.hpp"

using namespace esession;
using namespace esession::cli;

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
  Context ctx(g);
  Action action;
  for (const auto& c : command_table())
    c.add(app, ctx, action);
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
