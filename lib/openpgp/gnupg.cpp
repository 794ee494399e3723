// GnuPG: key lookup and export by running gpg (gpg_run.hpp), signatures from gpg-agent through
// GPGME's Assuan client.
//
// Why the agent and not gpg --sign: gpg only makes OpenPGP signatures (a hash over the message
// plus a trailer of signature subpackets), and XEP-0116 needs a raw signature of a MAC value
// that any XML-DSig verifier accepts. gpg-agent, which holds the secret keys for gpg, signs a
// hash value it is given (Assuan: SIGKEY <keygrip>, SETHASH, PKSIGN) with PKCS#1 v1.5 for RSA,
// plain DSA, and for EdDSA signs the value itself as the message of pure Ed25519. So the
// private key never enters this process and the passphrase prompt is the agent's own.
//
// GPGME is a C API: its handles live in GpgmePtrs (gpgme_ptr.hpp), its callbacks are
// static functions over typed state, and no GPGME type appears in openpgp.hpp. Everything else
// runs gpg directly: GPGME's engine set-up alone starts gpgconf and gpg --version several times.
#include <gpgme.h>
#include <openssl/core_names.h>

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "crypto/hash.hpp"
#include "openpgp/gpg_run.hpp"
#include "openpgp/openpgp.hpp"
#include "util/jid.hpp"

namespace esession::openpgp {

using namespace detail;

namespace {

using Context = GpgmePtr<gpgme_context>;
using Data = GpgmePtr<gpgme_data>;

// gpg_fail wraps a GPGME error: "|what|: <gpgme_strerror>".
Error gpg_fail(Errc c, const std::string& what, gpgme_error_t err) {
  return fail(c, what + ": " + gpgme_strerror(err));
}

constexpr const char* kMinGpgme = "1.14.0";
// An agent reply we read is one signature S-expression: a few hundred bytes to a few KiB.
constexpr size_t kMaxAgentReply = 64 * 1024;

// errc_of classifies an error gpg or the agent reported; |otherwise| for the rest.
Errc errc_of(gpgme_error_t err, Errc otherwise) {
  switch (gpgme_err_code(err)) {
    case GPG_ERR_BAD_PASSPHRASE:
      return Errc::auth_failed;
    case GPG_ERR_NO_SECKEY:
    case GPG_ERR_CANCELED:
    case GPG_ERR_FULLY_CANCELED:
    case GPG_ERR_NO_PIN_ENTRY:
    case GPG_ERR_NO_PASSPHRASE:
    case GPG_ERR_NOT_CONFIRMED:
      return Errc::not_acceptable;
    default:
      return otherwise;
  }
}

// init_gpgme initializes GPGME once per process (gpgme_check_version must run first).
Status init_gpgme() {
  static const char* version = gpgme_check_version(kMinGpgme);
  if (!version)
    return fail(Errc::unsupported,
                std::string("GPGME ") + kMinGpgme + " or later is needed (libgpgme11)");
  return {};
}

Result<Context> new_context(gpgme_protocol_t proto) {
  gpgme_ctx_t raw = nullptr;
  if (gpgme_error_t err = gpgme_new(&raw))
    return gpg_fail(Errc::internal, "GPGME context creation failed", err);
  Context ctx(raw);
  if (gpgme_error_t err = gpgme_set_protocol(raw, proto))
    return gpg_fail(Errc::unsupported, "GPGME protocol unavailable", err);
  return ctx;
}

std::string where(const std::string& home) {
  return home.empty() ? "the default GnuPG home" : "the GnuPG home " + home;
}

const ListedKey* primary_named(const std::vector<ListedKey>& keys, std::string_view fpr) {
  for (const auto& k : keys)
    if (k.fpr == fpr)
      return &k;
  return nullptr;
}

// why_unusable says why the secret key |k| cannot identify us, or returns nullptr if it can.
const char* why_unusable(const ListedKey& k) {
  if (const char* why = k.state_problem())
    return why;
  if (!k.primary_can_sign())
    return "a primary key that cannot sign";
  if (!k.secret)
    return "a primary key whose secret part is not available (a stub or offline key)";
  return nullptr;
}

bool usable_uid(const ListedUid& u) {
  return u.validity != 'r' && u.validity != 'i';
}

// names_jid returns true iff |k| has a User ID naming |bare_jid| that is not revoked.
bool names_jid(const ListedKey& k, std::string_view bare_jid) {
  for (const auto& u : k.uids)
    if (usable_uid(u) && uid_names_jid(u.uid, bare_jid))
      return true;
  return false;
}

Validity validity_of(char v) {
  switch (v) {
    case 'q':
      return Validity::undefined;
    case 'n':
      return Validity::never;
    case 'm':
      return Validity::marginal;
    case 'f':
      return Validity::full;
    case 'u':
      return Validity::ultimate;
    default:
      return Validity::unknown;
  }
}

bool fully_valid(char v) {
  return v == 'f' || v == 'u';
}

// rank orders validities from worst to best: a User ID GnuPG says is never valid is worse
// than one it knows nothing about.
int rank(Validity v) {
  return v == Validity::never ? -1 : static_cast<int>(v);
}

// key_type_of returns the type of the primary key |k| as PublicKey knows it.
Result<KeyType> key_type_of(const ListedKey& k) {
  switch (k.algo) {
    case 1:  // RSA, RSA encrypt-only, RSA sign-only (RFC 4880 §9.1)
    case 2:
    case 3:
      return KeyType::rsa;
    case 17:
      return KeyType::dsa;
    case 22:  // EdDSA
      if (k.curve == "ed25519" || k.curve == "Ed25519")
        return KeyType::ed25519;
      break;
    default:
      break;
  }
  return fail(Errc::unsupported, "an OpenPGP key of algorithm " + std::to_string(k.algo) +
                                     (k.curve.empty() ? "" : " (" + k.curve + ")") +
                                     " cannot sign for XEP-0116 (RSA, DSA or Ed25519 can)");
}

// ---- gpgconf ---------------------------------------------------------------------------------

// gpgconf runs `gpgconf [--homedir home] args...` and returns its output.
Result<std::string> gpgconf(const std::string& home, std::initializer_list<const char*> args) {
  Job job;
  job.argv = {"gpgconf"};
  if (!home.empty())
    job.argv.insert(job.argv.end(), {"--homedir", home});
  job.argv.insert(job.argv.end(), args.begin(), args.end());
  Bytes out;
  job.out_mem = &out;
  job.max_out = 1 << 16;
  ES_ASSIGN(Outcome o, run(job));
  if (o.exit_code != 0)
    return fail(Errc::io, "gpgconf failed" + (o.diagnostic.empty() ? "" : ": " + o.diagnostic));
  return string_of(out);
}

// gpgconf_unescape undoes gpgconf's percent-escaping of a --list-dirs value (RFC 3986 style,
// applied to ':' and '%' among others) and drops the line end.
Result<std::string> gpgconf_unescape(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size())
      return fail(Errc::malformed, "bad escape in gpgconf output");
    ES_ASSIGN(Bytes b, unhex(s.substr(i + 1, 2)));
    out.push_back(static_cast<char>(b[0]));
    i += 2;
  }
  if (out.empty())
    return fail(Errc::io, "gpgconf did not name the agent socket");
  return out;
}

// ---- Assuan ---------------------------------------------------------------------------------

// assuan_escape percent-and-plus escapes |s| for an Assuan argument (SETKEYDESC).
std::string assuan_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == ' ') {
      out.push_back('+');
    } else if (c == '+' || c == '%' || u < 0x20) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Sink collects the data lines of an Assuan reply, up to kMaxAgentReply bytes.
struct Sink {
  Bytes* out = nullptr;
};

gpgme_error_t on_data(void* opaque, const void* data, size_t len) {
  auto* sink = static_cast<Sink*>(opaque);
  if (!data || !sink->out)  // END, or a reply nobody asked for
    return 0;
  if (sink->out->size() + len > kMaxAgentReply)
    return gpg_error(GPG_ERR_TOO_LARGE);
  const auto* p = static_cast<const uint8_t*>(data);
  sink->out->insert(sink->out->end(), p, p + len);
  return 0;
}

// Inquiry answers the agent's INQUIRE PASSPHRASE (loopback pinentry) once, from memory the
// caller owns; GPGME reads it without copying.
struct Inquiry {
  std::optional<ByteView> passphrase;
  bool answered = false;
  Data reply;
};

gpgme_error_t on_inquire(void* opaque, const char* name, const char*, gpgme_data_t* r_data) {
  auto* q = static_cast<Inquiry*>(opaque);
  if (!name) {  // GPGME has sent the reply
    q->reply.reset();
    return 0;
  }
  if (std::strcmp(name, "PASSPHRASE") != 0)
    return 0;  // nothing to say: an empty answer
  // Loopback mode asks once per attempt; a second ask would only repeat a wrong passphrase.
  if (!q->passphrase || q->answered)
    return gpg_error(GPG_ERR_ASS_CANCELED);
  gpgme_data_t d = nullptr;
  if (gpgme_error_t err = gpgme_data_new_from_mem(
          &d, reinterpret_cast<const char*>(q->passphrase->data()), q->passphrase->size(), 0))
    return err;
  q->reply.reset(d);
  q->answered = true;
  *r_data = d;
  return 0;
}

// Sexp is a canonical S-expression (libgcrypt's encoding, which the agent answers in): an
// atom, or a list of S-expressions.
struct Sexp {
  bool is_list = false;
  Bytes atom;
  std::vector<Sexp> items;
};

constexpr int kMaxSexpDepth = 8;

// parse_sexp reads one S-expression of |in| at |pos|: "(" items ")" or an atom "<len>:<bytes>"
// (no display hints, no leading zeros in lengths).
bool parse_sexp(ByteView in, size_t& pos, int depth, Sexp& out) {
  if (pos >= in.size() || depth > kMaxSexpDepth)
    return false;
  if (in[pos] == '(') {
    ++pos;
    out.is_list = true;
    while (pos < in.size() && in[pos] != ')') {
      Sexp item;
      if (!parse_sexp(in, pos, depth + 1, item))
        return false;
      out.items.push_back(std::move(item));
    }
    if (pos >= in.size())
      return false;
    ++pos;
    return true;
  }
  size_t len = 0, digits = 0;
  for (; pos < in.size() && std::isdigit(in[pos]); ++pos, ++digits) {
    if (digits == 6 || (digits == 1 && len == 0))
      return false;
    len = len * 10 + (in[pos] - '0');
  }
  if (digits == 0 || pos >= in.size() || in[pos] != ':' || in.size() - pos - 1 < len)
    return false;
  out.atom.assign(in.begin() + static_cast<long>(pos + 1),
                  in.begin() + static_cast<long>(pos + 1 + len));
  pos += 1 + len;
  return true;
}

bool atom_is(const Sexp& s, std::string_view v) {
  return !s.is_list && string_of(s.atom) == v;
}

// sig_param returns the value of |name| in (sig-val (|algo| ... (|name| value) ...)).
Result<Bytes> sig_param(const Sexp& sig, std::string_view algo, std::string_view name) {
  if (sig.is_list && sig.items.size() == 2 && atom_is(sig.items[0], "sig-val")) {
    const Sexp& a = sig.items[1];
    if (a.is_list && !a.items.empty() && atom_is(a.items[0], algo)) {
      for (const Sexp& p : a.items)
        if (p.is_list && p.items.size() == 2 && atom_is(p.items[0], name) && !p.items[1].is_list)
          return p.items[1].atom;
    }
  }
  return fail(Errc::malformed,
              "gpg-agent's signature has no " + std::string(algo) + " value " + std::string(name));
}

// fixed_length returns the big-endian number |v| left-padded with zeros to |len| bytes (the
// agent drops leading zeros, XML-DSig encodings have fixed lengths).
Result<Bytes> fixed_length(ByteView v, size_t len) {
  while (!v.empty() && v[0] == 0)
    v = v.subspan(1);
  if (v.size() > len)
    return fail(Errc::malformed, "gpg-agent's signature value is too long");
  Bytes out(len - v.size(), 0);
  out.insert(out.end(), v.begin(), v.end());
  return out;
}

}  // namespace

void GpgmeDeleter<gpgme_context>::operator()(gpgme_context* c) const noexcept {
  gpgme_release(c);
}

void GpgmeDeleter<gpgme_data>::operator()(gpgme_data* d) const noexcept {
  gpgme_data_release(d);
}

GnuPG::GnuPG(GnuPG&&) noexcept = default;
GnuPG& GnuPG::operator=(GnuPG&&) noexcept = default;
GnuPG::~GnuPG() = default;

Result<GnuPG> GnuPG::open(const std::string& home) {
  if (!home.empty()) {
    // gpg lists nothing from a home it cannot use, which would read as "no such key".
    struct stat st;
    if (::stat(home.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
      return fail(Errc::io, home + ": not a directory (a GnuPG home)");
  }
  return GnuPG(home);
}

namespace {

Result<std::string> checked_fingerprint(std::string_view fpr) {
  auto norm = fingerprint_from_text(fpr);
  if (!norm)
    return fail(Errc::malformed, "'" + std::string(fpr) + "' is not an OpenPGP v4 fingerprint");
  return *norm;
}

// export_key runs gpg --export for |fpr| with |options|, armored or binary.
Result<Bytes> export_key(const std::string& home, const std::string& fpr,
                         std::initializer_list<const char*> options) {
  Job job;
  job.argv = gpg_argv(home, false);
  job.argv.insert(job.argv.end(), options.begin(), options.end());
  job.argv.insert(job.argv.end(), {"--export", "--", fpr});
  Bytes out;
  job.out_mem = &out;
  job.status_fd = true;
  ES_ASSIGN(Outcome o, run(job));
  // gpg exports nothing, successfully, for a key it does not have.
  if (out.empty())
    return fail(Errc::not_acceptable, "no OpenPGP key " + fpr + " in " + where(home));
  if (o.exit_code != 0)
    return fail(Errc::io,
                "gpg could not export " + fpr + (o.diagnostic.empty() ? "" : ": " + o.diagnostic));
  return out;
}

// recipient_problem says why |k| cannot be encrypted to for |jid| (any User ID if empty), or
// returns an empty string. |named| tells whether a User ID names the JID at all.
std::string recipient_problem(const ListedKey& k, std::string_view jid, bool& named) {
  named = false;
  bool valid = false;
  for (const auto& u : k.uids) {
    if (!usable_uid(u) || (!jid.empty() && !uid_names_jid(u.uid, jid)))
      continue;
    named = true;
    valid = valid || fully_valid(u.validity);
  }
  std::string name = "the OpenPGP key " + k.fpr;
  if (const char* why = k.state_problem())
    return name + " is " + why;
  if (!k.can_encrypt())
    return name + " is without a usable encryption subkey";
  if (!valid)
    return name +
           (jid.empty() ? std::string(" has no User ID")
                        : " has no User ID xmpp:" + std::string(jid)) +
           " with full validity (gpg does not encrypt to it in batch mode either); certify it "
           "(gpg --quick-lsign-key FPR) after checking its fingerprint";
  return {};
}

// several is the error for a JID that more than one key names.
Error several(const std::vector<std::string>& fprs, const char* what, const std::string& uid) {
  std::string list;
  for (const auto& f : fprs)
    list += (list.empty() ? "" : ", ") + f;
  return fail(Errc::malformed, std::string("several OpenPGP ") + what + " have the User ID " + uid +
                                   ": " + list + "; choose one by its fingerprint");
}

}  // namespace

Result<std::string> GnuPG::find_secret_key(std::string_view which) {
  if (auto fpr = fingerprint_from_text(which)) {
    ES_ASSIGN(auto keys, list_keys(m_home, {*fpr}, true));
    if (const ListedKey* k = primary_named(keys, *fpr)) {
      if (const char* why = why_unusable(*k))
        return fail(Errc::not_acceptable, "the OpenPGP secret key " + *fpr + " is " + why);
      return *fpr;
    }
    return fail(Errc::not_acceptable,
                "no OpenPGP secret key with primary fingerprint " + *fpr + " in " + where(m_home));
  }
  std::string jid = bare_jid(which);
  if (jid.empty())
    return fail(Errc::malformed, "no JID or fingerprint to find an OpenPGP secret key by");
  std::string uid = "xmpp:" + jid;
  // gpg matches the pattern as a substring of User IDs; uid_names_jid then wants it exactly.
  ES_ASSIGN(auto keys, list_keys(m_home, {uid}, true));
  std::vector<std::string> found;
  size_t unusable = 0;
  for (const ListedKey& k : keys) {
    if (!names_jid(k, jid))
      continue;
    if (why_unusable(k))
      ++unusable;
    else
      found.push_back(k.fpr);
  }
  if (found.size() > 1)
    return several(found, "secret keys", uid);
  if (found.empty())
    return fail(Errc::not_acceptable,
                "no usable OpenPGP secret key with the User ID " + uid + " in " + where(m_home) +
                    (unusable ? " (" + std::to_string(unusable) +
                                    " revoked, expired, disabled or unable to sign)"
                              : ""));
  return found.front();
}

Result<std::string> GnuPG::find_recipient(std::string_view which) {
  std::string pattern, jid;
  auto fpr = fingerprint_from_text(which);
  if (fpr) {
    pattern = *fpr;
  } else {
    jid = bare_jid(which);
    if (jid.empty())
      return fail(Errc::malformed, "no JID or fingerprint to find an OpenPGP key by");
    pattern = "xmpp:" + jid;
  }
  ES_ASSIGN(auto keys, list_keys(m_home, {pattern}, false));
  std::vector<std::string> found;
  std::string refused;  // why the last candidate was refused
  for (const ListedKey& k : keys) {
    if (fpr && *fpr != k.fpr)
      continue;  // a subkey's fingerprint
    bool named = false;
    std::string why = recipient_problem(k, jid, named);
    if (!fpr && !named)
      continue;  // "xmpp:alice@example.org" is a substring of "xmpp:malice@example.org"
    if (!why.empty())
      refused = why;
    else
      found.push_back(k.fpr);
  }
  if (found.size() > 1)
    return several(found, "keys", "xmpp:" + jid);
  if (!found.empty())
    return found.front();
  if (!refused.empty())
    return fail(Errc::not_acceptable, refused);
  return fail(Errc::not_acceptable, (fpr ? "no OpenPGP key with primary fingerprint " + *fpr
                                         : "no OpenPGP key with the User ID xmpp:" + jid) +
                                        " in " + where(m_home));
}

Result<KeyPacket> GnuPG::primary_key(std::string_view fpr_text) {
  ES_ASSIGN(std::string fpr, checked_fingerprint(fpr_text));
  ES_ASSIGN(Bytes data, export_key(m_home, fpr, {"--export-options", "export-minimal"}));
  ES_ASSIGN(KeyPacket p, parse_key_packet(data));
  if (fingerprint_hex(p.fingerprint) != fpr)
    return fail(Errc::not_acceptable,
                fpr + " is not the primary fingerprint of an OpenPGP key (a subkey's?)");
  return p;
}

Result<std::string> GnuPG::export_public_armored(std::string_view fpr_text) {
  ES_ASSIGN(std::string fpr, checked_fingerprint(fpr_text));
  ES_ASSIGN(Bytes data, export_key(m_home, fpr, {"--armor"}));
  return string_of(data);
}

namespace {

KeyStatus status_of(const ListedKey& k, std::string_view bare) {
  KeyStatus st;
  st.fingerprint = k.fpr;
  st.found = true;
  st.revoked = k.revoked();
  st.expired = k.expired();
  st.disabled = k.disabled();
  st.invalid = k.invalid();
  for (const auto& u : k.uids) {
    if (!usable_uid(u) || !uid_names_jid(u.uid, bare))
      continue;
    Validity v = validity_of(u.validity);
    if (!st.has_uid || rank(v) > rank(st.uid_validity))
      st.uid_validity = v;
    st.has_uid = true;
  }
  return st;
}

}  // namespace

Result<KeyStatus> GnuPG::status(std::string_view fpr_text, std::string_view bare) {
  ES_ASSIGN(std::string fpr, checked_fingerprint(fpr_text));
  ES_ASSIGN(auto keys, list_keys(m_home, {fpr}, false));
  if (const ListedKey* k = primary_named(keys, fpr))
    return status_of(*k, bare);
  KeyStatus st;
  st.fingerprint = fpr;
  return st;
}

Result<std::vector<KeyStatus>> keys_naming(const std::string& home, std::string_view bare) {
  if (bare.empty())
    return std::vector<KeyStatus>{};
  ES_ASSIGN(auto keys, list_keys(home, {"xmpp:" + std::string(bare)}, false));
  std::vector<KeyStatus> out;
  for (const ListedKey& k : keys) {
    KeyStatus st = status_of(k, bare);
    if (st.has_uid)
      out.push_back(std::move(st));
  }
  return out;
}

std::string keyring_state(const std::string& home) {
  std::string dir = home;
  if (dir.empty()) {
    const char* env = std::getenv("GNUPGHOME");
    const char* user = std::getenv("HOME");
    dir = env && *env ? env : std::string(user ? user : "") + "/.gnupg";
  }
  std::string out;
  // Not the directory itself: every gpg run creates and removes its lock files there.
  // tofu.db holds the TOFU trust model's policies; common.conf may switch to keyboxd.
  for (const char* f : {"/pubring.kbx", "/pubring.gpg", "/public-keys.d/pubring.db", "/trustdb.gpg",
                        "/tofu.db", "/gpg.conf", "/common.conf"}) {
    struct stat st;
    if (::stat((dir + f).c_str(), &st) != 0) {
      out += "-;";
      continue;
    }
    out += std::to_string(st.st_dev) + ':' + std::to_string(st.st_ino) + ':' +
           std::to_string(st.st_size) + ':' + std::to_string(st.st_mtim.tv_sec) + '.' +
           std::to_string(st.st_mtim.tv_nsec) + ';';
  }
  return out;
}

Result<std::vector<std::string>> key_file_fingerprints(const std::string& home,
                                                       const std::string& path) {
  Job job;
  job.argv = gpg_argv(home, false);
  job.argv.insert(job.argv.end(),
                  {"--with-colons", "--fixed-list-mode", "--show-keys", "--", path});
  job.status_fd = true;
  Bytes out;
  job.out_mem = &out;
  ES_ASSIGN(Outcome o, run(job));
  std::vector<std::string> fprs;
  for (const auto& k : parse_key_listing(
           std::string_view(reinterpret_cast<const char*>(out.data()), out.size()), false))
    fprs.push_back(k.fpr);
  if (fprs.empty())
    return fail(Errc::malformed, path + ": no OpenPGP public key in it" +
                                     (o.diagnostic.empty() ? "" : " (gpg: " + o.diagnostic + ")"));
  return fprs;
}

// ---- gpg-agent ------------------------------------------------------------------------------

Status GnuPG::agent_connect() {
  if (m_agent)
    return {};
  ES_TRY(init_gpgme());
  ES_ASSIGN(std::string listed, gpgconf(m_home, {"--list-dirs", "agent-socket"}));
  ES_ASSIGN(std::string socket, gpgconf_unescape(listed));
  gpgme_error_t last = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (attempt == 1) {
      // Not running: start it as gpg would (gpgconf waits until it listens).
      ES_TRY(gpgconf(m_home, {"--launch", "gpg-agent"}));
    }
    ES_ASSIGN(Context ctx, new_context(GPGME_PROTOCOL_ASSUAN));
    if (gpgme_error_t err =
            gpgme_ctx_set_engine_info(ctx.get(), GPGME_PROTOCOL_ASSUAN, socket.c_str(), nullptr))
      return gpg_fail(Errc::internal, "GPGME Assuan setup", err);
    gpgme_error_t op_err = 0;
    last = gpgme_op_assuan_transact_ext(ctx.get(), "NOP", nullptr, nullptr, nullptr, nullptr,
                                        nullptr, nullptr, &op_err);
    if (!last && !op_err) {
      m_agent = std::move(ctx);
      return {};
    }
    if (!last)
      last = op_err;
  }
  return gpg_fail(Errc::io, "cannot reach gpg-agent at " + socket, last);
}

Status GnuPG::agent_command(const std::string& command, Bytes* out,
                            std::optional<ByteView> passphrase) {
  ES_TRY(agent_connect());
  Sink sink{out};
  Inquiry inquiry;
  inquiry.passphrase = passphrase;
  gpgme_error_t op_err = 0;
  gpgme_error_t err = gpgme_op_assuan_transact_ext(m_agent.get(), command.c_str(), on_data, &sink,
                                                   on_inquire, &inquiry, nullptr, nullptr, &op_err);
  std::string verb = command.substr(0, command.find(' '));
  if (err) {
    // The connection is in an unknown state (the agent died, a reply was too long): the next
    // command makes a fresh one.
    m_agent.reset();
    return gpg_fail(gpgme_err_code(err) == GPG_ERR_TOO_LARGE ? Errc::malformed : Errc::io,
                    "gpg-agent " + verb, err);
  }
  if (op_err)
    return gpg_fail(errc_of(op_err, Errc::io), "gpg-agent refused " + verb, op_err);
  return {};
}

Result<Bytes> GnuPG::agent_sign(std::string_view fpr_text, SignAlg a, ByteView message,
                                std::optional<ByteView> passphrase) {
  ES_ASSIGN(std::string fpr, checked_fingerprint(fpr_text));
  // A secret-key listing gives the keygrip, the agent's name for the key.
  ES_ASSIGN(auto keys, list_keys(m_home, {fpr}, true));
  const ListedKey* key = primary_named(keys, fpr);
  if (!key)
    return fail(Errc::not_acceptable, "no OpenPGP secret key " + fpr + " in " + where(m_home));
  ES_ASSIGN(KeyType type, key_type_of(*key));
  if (type != sign_alg_key_type(a))
    return fail(Errc::unsupported,
                "the OpenPGP key " + fpr + " cannot make " + std::string(sign_alg_uri(a)));
  if (key->keygrip.empty())
    return fail(Errc::internal, "gpg listed no keygrip for " + fpr);

  // What the agent signs: for RSA and DSA the SHA-256 of the message, which it wraps in a
  // PKCS#1 DigestInfo or truncates to q; for EdDSA the message itself. SETHASH only takes
  // values as long as the named hash's output, so a 32-byte message goes as "sha256" and a
  // 64-byte one as "sha512"; the name is only a length here.
  std::string sethash;
  if (a == SignAlg::ed25519) {
    if (message.size() != 32 && message.size() != 64)
      return fail(Errc::unsupported,
                  "gpg-agent signs Ed25519 messages of 32 or 64 bytes only, not " +
                      std::to_string(message.size()));
    sethash = std::string("SETHASH --hash=") + (message.size() == 32 ? "sha256 " : "sha512 ") +
              hex(message);
  } else {
    sethash = "SETHASH --hash=sha256 " + hex(digest(HashAlg::sha256, message));
  }
  std::string desc = "Please enter the passphrase to unlock the OpenPGP secret key\n" + fpr +
                     "\nto sign an XMPP session negotiation.";
  ES_TRY(agent_command(passphrase ? "OPTION pinentry-mode=loopback" : "OPTION pinentry-mode=ask",
                       nullptr, std::nullopt));
  ES_TRY(agent_command("SIGKEY " + key->keygrip, nullptr, std::nullopt));
  ES_TRY(agent_command("SETKEYDESC " + assuan_escape(desc), nullptr, std::nullopt));
  ES_TRY(agent_command(sethash, nullptr, std::nullopt));
  Bytes reply;
  ES_TRY(agent_command("PKSIGN", &reply, passphrase));

  Sexp sig;
  size_t pos = 0;
  if (!parse_sexp(reply, pos, 0, sig) || pos != reply.size())
    return fail(Errc::malformed, "gpg-agent's signature is not a canonical S-expression");
  switch (type) {
    case KeyType::rsa: {
      ES_ASSIGN(Bytes s, sig_param(sig, "rsa", "s"));
      return fixed_length(s, (key->bits + 7) / 8);
    }
    case KeyType::ed25519: {
      // R and S are 32-byte strings (RFC 8032 §5.1.6); libgcrypt may drop leading zeros.
      ES_ASSIGN(Bytes r, sig_param(sig, "eddsa", "r"));
      ES_ASSIGN(Bytes s, sig_param(sig, "eddsa", "s"));
      ES_ASSIGN(Bytes r32, fixed_length(r, 32));
      ES_ASSIGN(Bytes s32, fixed_length(s, 32));
      return concat({r32, s32});
    }
    case KeyType::dsa:
      break;
  }
  // DSA: r | s, each as long as q, which only the key packet tells.
  ES_ASSIGN(KeyPacket p, primary_key(fpr));
  size_t qlen = (static_cast<size_t>(p.key.component(OSSL_PKEY_PARAM_FFC_Q).bits()) + 7) / 8;
  ES_ASSIGN(Bytes r, sig_param(sig, "dsa", "r"));
  ES_ASSIGN(Bytes s, sig_param(sig, "dsa", "s"));
  ES_ASSIGN(Bytes rq, fixed_length(r, qlen));
  ES_ASSIGN(Bytes sq, fixed_length(s, qlen));
  return concat({rq, sq});
}

// ---- OpenPgpSigner --------------------------------------------------------------------------

Result<OpenPgpSigner> OpenPgpSigner::open(GnuPG gpg, std::string_view which,
                                          std::optional<SecretBytes> passphrase) {
  ES_ASSIGN(std::string primary, gpg.find_secret_key(which));
  ES_ASSIGN(KeyPacket p, gpg.primary_key(primary));
  return OpenPgpSigner(std::move(gpg), std::move(primary), std::move(p), std::move(passphrase));
}

Result<Bytes> OpenPgpSigner::sign(SignAlg a, ByteView message) const {
  std::optional<ByteView> pass;
  if (m_passphrase)
    pass = view(*m_passphrase);
  ES_ASSIGN(Bytes sig, m_gpg.agent_sign(m_fpr, a, message, pass));
  if (!m_packet.key.verify(a, message, sig))
    return fail(Errc::internal, "gpg-agent's signature does not verify with the OpenPGP key " +
                                    m_fpr + " (did the key change in GnuPG?)");
  return sig;
}

}  // namespace esession::openpgp
