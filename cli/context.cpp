#include "context.hpp"

#include <cerrno>
#include <cstring>

#include <ctime>

#include <sys/stat.h>
#include <unistd.h>

#include "commands.hpp"
#include "crypto/hash.hpp"
#include "engine/trust.hpp"
#include "util/fs.hpp"

namespace esession::cli {

int exit_for(Errc c) {
  switch (c) {
    case Errc::auth_failed:
    case Errc::bad_dh_value:
    case Errc::replay:
      return kExitCrypto;
    case Errc::malformed:
    case Errc::unsupported:
    case Errc::wrong_state:
    case Errc::no_session:
      return kExitInput;
    case Errc::not_acceptable:
    case Errc::terminated:
      return kExitRefused;
    case Errc::internal:
    case Errc::io:
      return kExitState;
  }
  return kExitState;
}

std::string Context::home() const {
  std::optional<std::string> explicit_home;
  if (!m_g.home.empty())
    explicit_home = m_g.home;
  return check(fs::resolve_home(explicit_home, fs::HomeEnv::from_process()),
               "use --home DIR or set ESESSION_HOME");
}

Store& Context::store(bool create) {
  if (m_store)
    return *m_store;
  std::string h = home();
  struct stat st {};
  if (!create && ::stat(h.c_str(), &st) != 0)
    fail_with(Errc::io, "no esession home at " + h,
              "create one with: esession init --jid YOU@DOMAIN/RESOURCE");
  m_store.emplace(check(Store::open(h)));
  return *m_store;
}

namespace {

// account_matching returns the account |jid| names: the one with that (prepared) full JID, or,
// for a bare |jid|, the only one with that bare JID. Throws Failure when a bare JID names
// several and |ambiguous| is given (the hint); otherwise that is no match.
std::optional<Account> account_matching(const std::vector<Account>& all, const std::string& jid,
                                        const std::string& ambiguous) {
  bool several = false;
  std::optional<Account> a = match_account(all, jid, &several);
  if (several && !ambiguous.empty())
    fail_with(Errc::malformed, "several accounts match " + jid, ambiguous);
  return a;
}

std::string account_names(const std::vector<Account>& all) {
  std::string out;
  for (const auto& acc : all)
    out += (out.empty() ? "" : ", ") + acc.jid;
  return out;
}

}  // namespace

std::optional<Account> Context::account_named(const std::string& jid) {
  return account_matching(check(store().list_accounts()), jid, {});
}

const Account& Context::account(const std::string& jid) {
  if (m_account)
    return *m_account;
  Store& s = store();
  auto all = check(s.list_accounts());
  if (!m_g.account.empty()) {
    std::optional<Account> a = account_matching(all, m_g.account, "give the full JID to --account");
    if (!a)
      fail_with(Errc::malformed, "no account " + m_g.account + " in " + s.home(),
                all.empty() ? "create one with: esession init --jid YOU@DOMAIN/RESOURCE"
                            : "the accounts: " + account_names(all));
    m_account = *a;
    return *m_account;
  }
  if (all.empty())
    fail_with(Errc::io, "the home " + s.home() + " has no account",
              "create one with: esession init --jid YOU@DOMAIN/RESOURCE");
  if (all.size() > 1 && !jid.empty())
    if (std::optional<Account> a = account_matching(all, jid, {})) {
      debug("account " + a->jid + ", named by the stanza");
      m_account = *a;
      return *m_account;
    }
  if (all.size() > 1) {
    for (const auto& acc : all)
      if (acc.is_default) {
        m_account = acc;
        return *m_account;
      }
    fail_with(Errc::malformed,
              "the home holds " + std::to_string(all.size()) +
                  " accounts and nothing selects one: " + account_names(all),
              "choose one with --account JID, or set a default with: esession account "
              "default JID");
  }
  m_account = all.front();
  return *m_account;
}

int Context::report(const Failure& f, const std::string& about) {
  std::fprintf(stderr, "esession: error: %s\n", f.error.detail.c_str());
  if (!f.hint.empty())
    std::fprintf(stderr, "esession: hint: %s\n", f.hint.c_str());
  if (about.empty())
    status("ERROR", {errc_name(f.error.code)});
  else
    status("ERROR", {errc_name(f.error.code), about});
  return exit_for(f.error.code);
}

void Context::status(std::string_view keyword, std::span<const std::string_view> fields) {
  if (m_g.status_fd < 0)
    return;
  if (!m_status) {
    int fd = ::dup(m_g.status_fd);
    if (fd < 0 || !(m_status = ::fdopen(fd, "w")))
      fail_with(Errc::io,
                "--status-fd " + std::to_string(m_g.status_fd) + ": " + std::strerror(errno));
  }
  // One line, whose fields no value can add to, shift or break (status_field).
  std::string line = "[ESESSION:] ";
  line += keyword;
  for (std::string_view f : fields) {
    line += ' ';
    line += status_field(f);
  }
  line += '\n';
  std::fputs(line.c_str(), m_status);
  std::fflush(m_status);
}

void status_signature(Context& ctx, std::string_view verdict, std::string_view signer) {
  if (signer.empty())
    ctx.status("SIGNATURE", {verdict});
  else
    ctx.status("SIGNATURE", {verdict, signer});
}

void Context::info(const std::string& line) const {
  if (!m_g.quiet)
    std::fprintf(stderr, "esession: %s\n", line.c_str());
}

void Context::debug(const std::string& line) const {
  if (m_g.verbose > 0)
    std::fprintf(stderr, "esession: %s\n", line.c_str());
}

void Context::warn(const std::string& line) const {
  std::fprintf(stderr, "esession: warning: %s\n", line.c_str());
}

std::string status_field(std::string_view s) {
  if (s.empty())
    return "-";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7f || c == '%') {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

std::string json_escape(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string fingerprint_of(const PublicKey& k) {
  return key_fingerprint(k);
}

std::string utc_time(int64_t t) {
  char buf[32];
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

}  // namespace esession::cli
