// esession: the command line. This landing has --version and the in-process demo.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "demo.hpp"

int main(int argc, char** argv) {
  CLI::App app{"esession: end-to-end encrypted XMPP sessions (XEP-0116/0200)"};
  app.set_version_flag("--version", std::string("esession ") + ESESSION_VERSION);
  app.require_subcommand(0, 1);
  bool gajim = false;
  auto* demo = app.add_subcommand("demo", "negotiate an ESession between two in-process parties");
  demo->add_flag("--gajim", gajim, "use the Gajim-compatible conventions");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (*demo)
    return esession::cli::run_demo(gajim);
  std::fputs(app.help().c_str(), stdout);
  return 0;
}
