// GnuPG through GPGME: key lookup and export with the gpg engine, signatures from gpg-agent.
//
// Why the agent and not gpg --sign: gpg only makes OpenPGP signatures (a hash over the message
// plus a trailer of signature subpackets), and XEP-0116 needs a raw signature of a MAC value
// that any XML-DSig verifier accepts. gpg-agent, which holds the secret keys for gpg, signs a
// hash value it is given (Assuan: SIGKEY <keygrip>, SETHASH, PKSIGN) with PKCS#1 v1.5 for RSA,
// plain DSA, and for EdDSA signs the value itself as the message of pure Ed25519. So the
// private key never enters this process and the passphrase prompt is the agent's own.
//
// GPGME is a C API: its handles live in unique_ptrs with one deleter each, its callbacks are
// static functions over typed state, and no GPGME type appears in openpgp.hpp.
#include <gpgme.h>
#include <openssl/core_names.h>

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <vector>

#include "crypto/hash.hpp"
#include "openpgp/gpgme_util.hpp"
#include "openpgp/openpgp.hpp"
#include "util/jid.hpp"

namespace esession::openpgp {

namespace detail {

Error gpg_fail(Errc c, const std::string& what, gpgme_error_t err) {
  return fail(c, what + ": " + gpgme_strerror(err));
}

// list_keys lists the keys matching |pattern| (gpg's user-ID syntax: a fingerprint, or a
// substring of a User ID), with their keygrips; |secret| lists only keys with a secret part.
Result<std::vector<Key>> list_keys(gpgme_ctx_t ctx, const std::string& pattern, bool secret) {
  if (gpgme_error_t err =
          gpgme_set_keylist_mode(ctx, GPGME_KEYLIST_MODE_LOCAL | GPGME_KEYLIST_MODE_WITH_KEYGRIP))
    return gpg_fail(Errc::internal, "GPGME keylist mode", err);
  if (gpgme_error_t err = gpgme_op_keylist_start(ctx, pattern.c_str(), secret ? 1 : 0))
    return gpg_fail(Errc::io, "gpg could not list keys", err);
  std::vector<Key> keys;
  for (;;) {
    gpgme_key_t k = nullptr;
    gpgme_error_t err = gpgme_op_keylist_next(ctx, &k);
    if (gpgme_err_code(err) == GPG_ERR_EOF)
      break;
    if (err) {
      gpgme_op_keylist_end(ctx);
      return gpg_fail(Errc::io, "gpg could not list keys", err);
    }
    keys.emplace_back(k);
  }
  gpgme_op_keylist_end(ctx);
  return keys;
}

}  // namespace detail

using namespace detail;

namespace {

// GPGME 1.14 added GPGME_KEYLIST_MODE_WITH_KEYGRIP; Debian 12 has 1.18.
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

Result<Data> new_data() {
  gpgme_data_t raw = nullptr;
  if (gpgme_error_t err = gpgme_data_new(&raw))
    return gpg_fail(Errc::internal, "GPGME buffer creation failed", err);
  return Data(raw);
}

// read_all returns everything written to |d|.
Result<Bytes> read_all(gpgme_data_t d) {
  if (gpgme_data_seek(d, 0, SEEK_SET) != 0)
    return fail(Errc::internal, "GPGME buffer rewind failed");
  Bytes out;
  uint8_t buf[4096];
  for (;;) {
    ssize_t n = gpgme_data_read(d, buf, sizeof buf);
    if (n < 0)
      return fail(Errc::internal, "GPGME buffer read failed");
    if (n == 0)
      return out;
    out.insert(out.end(), buf, buf + n);
  }
}

// is_primary returns true iff |fpr| is the primary fingerprint of |k|.
bool is_primary(const _gpgme_key* k, std::string_view fpr) {
  return k->subkeys && k->fpr && fpr == k->fpr;
}

// why_unusable says why the secret key |k| cannot identify us, or returns nullptr if it can.
const char* why_unusable(const _gpgme_key* k) {
  if (const char* why = key_state_problem(k))
    return why;
  if (!k->subkeys->can_sign)
    return "a primary key that cannot sign";
  if (!k->subkeys->secret)
    return "a primary key whose secret part is not available (a stub or offline key)";
  return nullptr;
}

// names_jid returns true iff |k| has a User ID naming |bare_jid| that is not revoked.
bool names_jid(const _gpgme_key* k, std::string_view bare_jid) {
  for (gpgme_user_id_t u = k->uids; u; u = u->next)
    if (!u->revoked && !u->invalid && u->uid && uid_names_jid(u->uid, bare_jid))
      return true;
  return false;
}

Validity validity_of(gpgme_validity_t v) {
  switch (v) {
    case GPGME_VALIDITY_UNDEFINED:
      return Validity::undefined;
    case GPGME_VALIDITY_NEVER:
      return Validity::never;
    case GPGME_VALIDITY_MARGINAL:
      return Validity::marginal;
    case GPGME_VALIDITY_FULL:
      return Validity::full;
    case GPGME_VALIDITY_ULTIMATE:
      return Validity::ultimate;
    case GPGME_VALIDITY_UNKNOWN:
      break;
  }
  return Validity::unknown;
}

// rank orders validities from worst to best: a User ID GnuPG says is never valid is worse
// than one it knows nothing about.
int rank(Validity v) {
  return v == Validity::never ? -1 : static_cast<int>(v);
}

// key_type_of returns the type of the primary key |s| as PublicKey knows it.
Result<KeyType> key_type_of(const _gpgme_subkey* s) {
  switch (s->pubkey_algo) {
    case GPGME_PK_RSA:
    case GPGME_PK_RSA_E:
    case GPGME_PK_RSA_S:
      return KeyType::rsa;
    case GPGME_PK_DSA:
      return KeyType::dsa;
    case GPGME_PK_EDDSA:
      if (s->curve &&
          (std::strcmp(s->curve, "ed25519") == 0 || std::strcmp(s->curve, "Ed25519") == 0))
        return KeyType::ed25519;
      break;
    default:
      break;
  }
  return fail(Errc::unsupported, std::string("an OpenPGP ") +
                                     gpgme_pubkey_algo_name(s->pubkey_algo) +
                                     " key cannot sign for XEP-0116 (RSA, DSA or Ed25519 can)");
}

// ---- gpgconf ---------------------------------------------------------------------------------

// gpgconf runs `gpgconf [--homedir home] args...` through GPGME and returns its output.
Result<std::string> gpgconf(const std::string& home, std::initializer_list<const char*> args) {
  const char* path = gpgme_get_dirinfo("gpgconf-name");
  if (!path)
    return fail(Errc::unsupported, "gpgconf not found (Debian: apt install gnupg)");
  ES_ASSIGN(Context ctx, new_context(GPGME_PROTOCOL_SPAWN));
  ES_ASSIGN(Data out, new_data());
  std::vector<const char*> argv = {"gpgconf"};
  if (!home.empty()) {
    argv.push_back("--homedir");
    argv.push_back(home.c_str());
  }
  argv.insert(argv.end(), args);
  argv.push_back(nullptr);
  if (gpgme_error_t err =
          gpgme_op_spawn(ctx.get(), path, argv.data(), nullptr, out.get(), nullptr, 0))
    return gpg_fail(Errc::io, "running gpgconf failed", err);
  ES_ASSIGN(Bytes b, read_all(out.get()));
  return string_of(b);
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

void GnuPG::CtxFree::operator()(gpgme_context* c) const noexcept {
  gpgme_release(c);
}

GnuPG::GnuPG(GnuPG&&) noexcept = default;
GnuPG& GnuPG::operator=(GnuPG&&) noexcept = default;
GnuPG::~GnuPG() = default;

Result<GnuPG> GnuPG::open(const std::string& home) {
  ES_TRY(init_gpgme());
  if (gpgme_error_t err = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP))
    return fail(Errc::unsupported, std::string("GnuPG (gpg 2.1 or later) cannot be run: ") +
                                       gpgme_strerror(err) +
                                       "; install it (Debian: apt install gnupg)");
  ES_ASSIGN(Context ctx, new_context(GPGME_PROTOCOL_OpenPGP));
  if (!home.empty()) {
    // gpg lists nothing from a home it cannot use, which would read as "no such key".
    struct stat st;
    if (::stat(home.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
      return fail(Errc::io, home + ": not a directory (a GnuPG home)");
    if (gpgme_error_t err =
            gpgme_ctx_set_engine_info(ctx.get(), GPGME_PROTOCOL_OpenPGP, nullptr, home.c_str()))
      return gpg_fail(Errc::internal, "GPGME engine setup for " + home, err);
  }
  // Nothing here should reach the network (keyservers, WKD) behind the user's back.
  gpgme_set_offline(ctx.get(), 1);
  return GnuPG(home, Ctx(ctx.release()));
}

namespace {

std::string where(const std::string& home) {
  return home.empty() ? "the default GnuPG home" : "the GnuPG home " + home;
}

Result<std::string> checked_fingerprint(std::string_view fpr) {
  auto norm = fingerprint_from_text(fpr);
  if (!norm)
    return fail(Errc::malformed, "'" + std::string(fpr) + "' is not an OpenPGP v4 fingerprint");
  return *norm;
}

// export_key exports the key |fpr| in |mode| (GPGME_EXPORT_MODE_*), armored or binary.
Result<Bytes> export_key(gpgme_ctx_t ctx, const std::string& fpr, gpgme_export_mode_t mode,
                         bool armor, const std::string& home) {
  ES_ASSIGN(Data out, new_data());
  gpgme_set_armor(ctx, armor ? 1 : 0);
  gpgme_error_t err = gpgme_op_export(ctx, fpr.c_str(), mode, out.get());
  gpgme_set_armor(ctx, 0);
  if (err)
    return gpg_fail(Errc::io, "gpg could not export " + fpr, err);
  ES_ASSIGN(Bytes b, read_all(out.get()));
  // gpg exports nothing, successfully, for a key it does not have.
  if (b.empty())
    return fail(Errc::not_acceptable, "no OpenPGP key " + fpr + " in " + where(home));
  return b;
}

}  // namespace

Result<std::string> GnuPG::find_secret_key(std::string_view which) {
  if (auto fpr = fingerprint_from_text(which)) {
    ES_ASSIGN(auto keys, list_keys(m_ctx.get(), *fpr, true));
    for (const Key& k : keys) {
      if (!is_primary(k.get(), *fpr))
        continue;
      if (const char* why = why_unusable(k.get()))
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
  ES_ASSIGN(auto keys, list_keys(m_ctx.get(), uid, true));
  std::vector<std::string> found;
  size_t unusable = 0;
  for (const Key& k : keys) {
    if (!k->subkeys || !k->fpr || !names_jid(k.get(), jid))
      continue;
    if (why_unusable(k.get()))
      ++unusable;
    else
      found.push_back(k->fpr);
  }
  if (found.size() > 1) {
    std::string list;
    for (const auto& f : found)
      list += (list.empty() ? "" : ", ") + f;
    return fail(Errc::malformed, "several OpenPGP secret keys have the User ID " + uid + ": " +
                                     list + "; choose one by its fingerprint");
  }
  if (found.empty())
    return fail(Errc::not_acceptable,
                "no usable OpenPGP secret key with the User ID " + uid + " in " + where(m_home) +
                    (unusable ? " (" + std::to_string(unusable) +
                                    " revoked, expired, disabled or unable to sign)"
                              : ""));
  return found.front();
}

Result<KeyPacket> GnuPG::primary_key(std::string_view fpr_text) {
  ES_ASSIGN(std::string fpr, checked_fingerprint(fpr_text));
  ES_ASSIGN(Bytes data, export_key(m_ctx.get(), fpr, GPGME_EXPORT_MODE_MINIMAL, false, m_home));
  ES_ASSIGN(KeyPacket p, parse_key_packet(data));
  if (fingerprint_hex(p.fingerprint) != fpr)
    return fail(Errc::not_acceptable,
                fpr + " is not the primary fingerprint of an OpenPGP key (a subkey's?)");
  return p;
}

Result<std::string> GnuPG::export_public_armored(std::string_view fpr_text) {
  ES_ASSIGN(std::string fpr, checked_fingerprint(fpr_text));
  ES_ASSIGN(Bytes data, export_key(m_ctx.get(), fpr, 0, true, m_home));
  return string_of(data);
}

Result<KeyStatus> GnuPG::status(std::string_view fpr_text, std::string_view bare) {
  ES_ASSIGN(std::string fpr, checked_fingerprint(fpr_text));
  KeyStatus st;
  st.fingerprint = fpr;
  ES_ASSIGN(auto keys, list_keys(m_ctx.get(), fpr, false));
  for (const Key& k : keys) {
    if (!is_primary(k.get(), fpr))
      continue;
    st.found = true;
    st.revoked = k->revoked;
    st.expired = k->expired;
    st.disabled = k->disabled;
    st.invalid = k->invalid;
    for (gpgme_user_id_t u = k->uids; u; u = u->next) {
      if (u->revoked || u->invalid || !u->uid || !uid_names_jid(u->uid, bare))
        continue;
      Validity v = validity_of(u->validity);
      if (!st.has_uid || rank(v) > rank(st.uid_validity))
        st.uid_validity = v;
      st.has_uid = true;
    }
  }
  return st;
}

// ---- gpg-agent ------------------------------------------------------------------------------

Status GnuPG::agent_connect() {
  if (m_agent)
    return {};
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
      m_agent = Ctx(ctx.release());
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
  ES_ASSIGN(auto keys, list_keys(m_ctx.get(), fpr, true));
  const _gpgme_key* key = nullptr;
  for (const Key& k : keys)
    if (is_primary(k.get(), fpr))
      key = k.get();
  if (!key)
    return fail(Errc::not_acceptable, "no OpenPGP secret key " + fpr + " in " + where(m_home));
  const _gpgme_subkey* primary = key->subkeys;
  ES_ASSIGN(KeyType type, key_type_of(primary));
  if (type != sign_alg_key_type(a))
    return fail(Errc::unsupported,
                "the OpenPGP key " + fpr + " cannot make " + std::string(sign_alg_uri(a)));
  if (!primary->keygrip)
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
  ES_TRY(agent_command("SIGKEY " + std::string(primary->keygrip), nullptr, std::nullopt));
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
      return fixed_length(s, (primary->length + 7) / 8);
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
