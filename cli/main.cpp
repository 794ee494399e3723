// esession: the command line. For now only --version and the in-process demo.
#include <CLI/CLI.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"esession: end-to-end encrypted XMPP sessions (XEP-0116/0200)"};
  app.set_version_flag("--version", std::string("esession ") + ESESSION_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return 0;
}
