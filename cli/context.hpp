// The state every command shares: global options, the home and its store, the account, the
// status channel and the exit-status rules.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "crypto/pubkey.hpp"
#include "store/store.hpp"

namespace esession::cli {

// Exit statuses (documented in esession(1)).
enum Exit : int {
  kExitOk = 0,
  kExitCrypto = 1,   // a MAC, signature, commitment, replay or identity check failed
  kExitInput = 2,    // bad input or usage: malformed XML, unknown peer, unsupported option
  kExitState = 3,    // local state or I/O: home, database, key files, pipes
  kExitRefused = 4,  // the peer refused or ended the session (not-acceptable, terminated)
};

// exit_for maps an error class to its exit status.
int exit_for(Errc c);

// Failure carries an Error up to main(), which prints it and exits with exit_for(code).
struct Failure {
  Error error;
  std::string hint;
};

// Global options.
struct Globals {
  std::string home;
  std::string account;
  int status_fd = -1;
  bool json = false;
  bool quiet = false;
  int verbose = 0;
  int passphrase_fd = -1;  // where passphrases come from instead of the terminal
  std::string ca_file;     // CA certificates that make a peer's X.509 chain valid
  std::string gnupg_home;  // the GnuPG home for OpenPGP keys (empty: $GNUPGHOME or gpg's)
};

class Context {
 public:
  explicit Context(Globals& g) : m_g(g) {}

  const Globals& globals() const { return m_g; }
  bool json() const { return m_g.json; }

  // home resolves --home, $ESESSION_HOME, $XDG_DATA_HOME/esession, ~/.local/share/esession.
  std::string home() const;
  // store opens the home's database (once); a missing home is an error unless |create|.
  // Throws Failure.
  Store& store(bool create = false);
  // account returns the account of this run, chosen once: the one --account names; else the
  // one |jid| names (a stanza's 'from' for encrypt, its 'to' for decrypt and respond: the
  // account with that full JID, or for a bare JID the only account with it); else the home's
  // default account; else the only one. Throws Failure (the accounts listed) when the home
  // holds several and nothing selects one.
  const Account& account(const std::string& jid = {});
  // account_named returns the account |jid| names (its full JID, or for a bare |jid| the only
  // account with that bare JID), if any, without choosing it.
  std::optional<Account> account_named(const std::string& jid);

  // status writes one machine-readable line "[ESESSION:] KEYWORD field ..." to --status-fd,
  // each field encoded by status_field.
  void status(std::string_view keyword, std::initializer_list<std::string_view> fields = {}) {
    status(keyword, std::span<const std::string_view>(fields.begin(), fields.size()));
  }
  void status(std::string_view keyword, std::span<const std::string_view> fields);
  // report prints |f| as the command's error line (and hint) on stderr and its ERROR status
  // line (the error's name, then |about| if any), and returns the exit status for it.
  int report(const Failure& f, const std::string& about = {});
  // info writes a line for humans on stderr unless -q; debug only with -v.
  void info(const std::string& line) const;
  void debug(const std::string& line) const;
  void warn(const std::string& line) const;

 private:
  Globals& m_g;
  std::optional<Store> m_store;
  std::optional<Account> m_account;
  FILE* m_status = nullptr;
};

// check returns the value of |r| or throws its error as a Failure (with an optional hint).
template <class T>
T check(Result<T> r, std::string hint = {}) {
  if (!r)
    throw Failure{r.error(), std::move(hint)};
  return std::move(r).value();
}
inline void check(Status s, std::string hint = {}) {
  if (!s)
    throw Failure{s.error(), std::move(hint)};
}
[[noreturn]] inline void fail_with(Errc c, std::string detail, std::string hint = {}) {
  throw Failure{Error{c, std::move(detail)}, std::move(hint)};
}

// Command registration: each command file adds its subcommand to the app. The table in
// commands.cpp lists them all; help, man pages and completions come from the same app.
using Action = std::function<int()>;
struct Command {
  const char* name;
  void (*add)(CLI::App& app, Context& ctx, Action& action);
};
const std::vector<Command>& command_table();

// status_field encodes |s| for one argument of a status line: '%', space, control characters
// and DEL as %XX (as gpg's [GNUPG:] lines do), so that data from a peer can neither add nor
// shift fields. An empty value is written as "-".
std::string status_field(std::string_view s);

// status_signature writes "SIGNATURE verdict [signer]".
void status_signature(Context& ctx, std::string_view verdict, std::string_view signer);

// Helpers shared by commands.
std::string json_escape(std::string_view s);
std::string utc_time(int64_t t);                 // "2026-11-26 15:04 UTC"
std::string fingerprint_of(const PublicKey& k);  // SHA-256 of the DER SubjectPublicKeyInfo, hex

}  // namespace esession::cli
