// OpenPGP messages through GPGME: encryption (optionally signed) and decryption with
// verification, streaming from one descriptor to another.
//
// gpg does the cryptography in its own process; GPGME moves the bytes through pipes. Both ends
// here are GPGME callback buffers over our descriptors, so that nothing is held in memory (a
// multi-GiB file streams in constant space), read and write errors keep their errno and the
// caller can count bytes and draw progress. Decryption writes plaintext as gpg releases it,
// before the integrity check at the end of the message: the caller must hold it back (an
// OutputFile or a spool file) until decrypt() succeeds.
#include <gpgme.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "openpgp/gpgme_util.hpp"
#include "openpgp/openpgp.hpp"
#include "util/fs.hpp"
#include "util/jid.hpp"

namespace esession::openpgp {

using namespace detail;

namespace {

std::string where(const std::string& home) {
  return home.empty() ? "the default GnuPG home" : "the GnuPG home " + home;
}

// The size of GPGME's buffers between our descriptors and gpg's pipes (GPGME 1.16 or later).
constexpr const char* kIoBuffer = "65536";

// FdStream is one end of an operation: a descriptor GPGME reads from or writes to through
// callbacks, with a byte count and the first system error.
struct FdStream {
  int fd = -1;
  uint64_t done = 0;
  int err = 0;  // errno of the first failed read or write
  const std::function<void(uint64_t)>* progress = nullptr;
};

ssize_t fd_read(void* handle, void* buf, size_t size) {
  auto* s = static_cast<FdStream*>(handle);
  for (;;) {
    ssize_t n = ::read(s->fd, buf, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      s->err = errno;
      return -1;
    }
    s->done += static_cast<uint64_t>(n);
    if (s->progress && *s->progress)
      (*s->progress)(s->done);
    return n;
  }
}

ssize_t fd_write(void* handle, const void* buf, size_t size) {
  auto* s = static_cast<FdStream*>(handle);
  const auto* p = static_cast<const char*>(buf);
  size_t left = size;
  while (left) {
    ssize_t n = ::write(s->fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      s->err = n < 0 ? errno : EIO;
      return -1;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  s->done += size;
  return static_cast<ssize_t>(size);
}

Result<Data> stream_data(FdStream& s) {
  // GPGME keeps the pointer to the callback table, so it must outlive the buffer.
  static gpgme_data_cbs cbs = {fd_read, fd_write, nullptr, nullptr};
  gpgme_data_t raw = nullptr;
  if (gpgme_error_t err = gpgme_data_new_from_cbs(&raw, &cbs, &s))
    return gpg_fail(Errc::internal, "GPGME buffer creation failed", err);
  Data d(raw);
  // GPGME moves 4 KiB at a time by default: a read, a poll and a write per 4 KiB make sealing
  // a big file three times slower than gpg alone. Bigger than a pipe (64 KiB) is slower again:
  // measured with 1 GiB, 4 KiB took 2.5x the time of 64 KiB, 256 KiB 2.2x.
  if (gpgme_error_t err = gpgme_data_set_flag(d.get(), "io-buffer-size", kIoBuffer))
    return gpg_fail(Errc::internal, "GPGME buffer size", err);
  return d;
}

// Passphrase answers gpg's loopback passphrase request once from memory the caller owns.
struct Passphrase {
  std::optional<ByteView> value;
  bool wrong = false;
};

gpgme_error_t on_passphrase(void* hook, const char*, const char*, int prev_was_bad, int fd) {
  auto* p = static_cast<Passphrase*>(hook);
  if (prev_was_bad) {
    p->wrong = true;
    return gpg_error(GPG_ERR_BAD_PASSPHRASE);
  }
  if (!p->value)
    return gpg_error(GPG_ERR_NO_PASSPHRASE);
  if (gpgme_io_writen(fd, p->value->data(), p->value->size()) != 0 ||
      gpgme_io_writen(fd, "\n", 1) != 0)
    return gpg_error_from_syserror();
  return 0;
}

// PassphraseScope puts |ctx| in loopback mode with |p| for one operation, when a passphrase is
// given, and back to the agent's own pinentry afterwards.
class PassphraseScope {
 public:
  PassphraseScope(gpgme_ctx_t ctx, Passphrase& p) : m_ctx(ctx) {
    if (p.value) {
      gpgme_set_pinentry_mode(ctx, GPGME_PINENTRY_MODE_LOOPBACK);
      gpgme_set_passphrase_cb(ctx, on_passphrase, &p);
    }
  }
  ~PassphraseScope() {
    gpgme_set_passphrase_cb(m_ctx, nullptr, nullptr);
    gpgme_set_pinentry_mode(m_ctx, GPGME_PINENTRY_MODE_DEFAULT);
  }
  PassphraseScope(const PassphraseScope&) = delete;
  PassphraseScope& operator=(const PassphraseScope&) = delete;

 private:
  gpgme_ctx_t m_ctx;
};

// io_error returns the error of a failed read or write, if there was one.
std::optional<Error> io_error(const FdStream& in, const FdStream& out, const CryptOptions& o) {
  if (in.err)
    return fail(Errc::io, o.in_name + ": read failed: " + std::strerror(in.err));
  if (out.err)
    return fail(Errc::io, o.out_name + ": write failed: " + std::strerror(out.err));
  return std::nullopt;
}

// passphrase_error classifies an error about the secret key's passphrase, if it is one.
std::optional<Error> passphrase_error(gpgme_error_t err, const Passphrase& p) {
  switch (gpgme_err_code(err)) {
    case GPG_ERR_BAD_PASSPHRASE:
      return fail(Errc::auth_failed, "wrong passphrase for the OpenPGP secret key");
    case GPG_ERR_CANCELED:
    case GPG_ERR_FULLY_CANCELED:
    case GPG_ERR_NO_PIN_ENTRY:
    case GPG_ERR_NO_PASSPHRASE:
      if (p.wrong)
        return fail(Errc::auth_failed, "wrong passphrase for the OpenPGP secret key");
      return gpg_fail(Errc::not_acceptable, "no passphrase for the OpenPGP secret key", err);
    default:
      return std::nullopt;
  }
}

// names_valid_uid: does |k| have a User ID that is not revoked or invalid, names |jid| (any
// User ID if |jid| is empty) and has full or ultimate validity? |named| tells whether one
// names the JID at all.
bool names_valid_uid(const _gpgme_key* k, std::string_view jid, bool& named) {
  named = false;
  for (gpgme_user_id_t u = k->uids; u; u = u->next) {
    if (u->revoked || u->invalid || !u->uid || (!jid.empty() && !uid_names_jid(u->uid, jid)))
      continue;
    named = true;
    if (u->validity == GPGME_VALIDITY_FULL || u->validity == GPGME_VALIDITY_ULTIMATE)
      return true;
  }
  return false;
}

// why_unusable_recipient says why |k| cannot be encrypted to, or returns nullptr.
const char* why_unusable_recipient(const _gpgme_key* k) {
  if (const char* why = key_state_problem(k))
    return why;
  if (!k->can_encrypt)
    return "without a usable encryption subkey";
  return nullptr;
}

// read_signatures sets the verdict and signer of |d| from the last verification in |ctx|.
void read_signatures(gpgme_ctx_t ctx, Decrypted& d) {
  std::string signer;
  gpgme_verify_result_t vr = gpgme_op_verify_result(ctx);
  for (gpgme_signature_t s = vr ? vr->signatures : nullptr; s; s = s->next) {
    SignatureVerdict v = SignatureVerdict::bad;
    constexpr unsigned kBad =
        GPGME_SIGSUM_RED | GPGME_SIGSUM_KEY_REVOKED | GPGME_SIGSUM_SIG_EXPIRED;
    if (gpgme_err_code(s->status) == GPG_ERR_NO_ERROR && !(s->summary & kBad))
      v = SignatureVerdict::good;
    else if (gpgme_err_code(s->status) == GPG_ERR_NO_PUBKEY)
      v = SignatureVerdict::unknown;
    // The worst verdict wins: one bad signature makes the message bad.
    auto rank = [](SignatureVerdict x) {
      return x == SignatureVerdict::bad ? 3 : x == SignatureVerdict::unknown ? 2 : 1;
    };
    if (d.signature == SignatureVerdict::none || rank(v) > rank(d.signature)) {
      d.signature = v;
      signer = s->fpr ? s->fpr : "";
    }
  }
  d.signer = signer;
  if (!signer.empty() && d.signature != SignatureVerdict::unknown) {
    // gpg names the signing (sub)key; the caller compares primary fingerprints.
    gpgme_key_t k = nullptr;
    if (gpgme_get_key(ctx, signer.c_str(), &k, 0) == 0) {
      Key key(k);
      if (key->fpr)
        d.signer = key->fpr;
    }
  }
}

}  // namespace

const char* signature_verdict_name(SignatureVerdict v) {
  switch (v) {
    case SignatureVerdict::none:
      return "none";
    case SignatureVerdict::good:
      return "good";
    case SignatureVerdict::bad:
      return "bad";
    case SignatureVerdict::unknown:
      return "unknown";
  }
  return "bad";
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
  ES_ASSIGN(std::vector<Key> keys, list_keys(m_ctx.get(), pattern, false));

  std::vector<std::string> found;
  std::string refused;  // why the last candidate was refused
  for (const Key& k : keys) {
    if (!k->fpr || !k->subkeys)
      continue;
    if (fpr && *fpr != k->fpr)
      continue;  // a subkey's fingerprint, or a substring match
    bool named = false;
    bool valid = names_valid_uid(k.get(), jid, named);
    if (!fpr && !named)
      continue;  // "xmpp:alice@example.org" is a substring of "xmpp:malice@example.org"
    std::string name = std::string("the OpenPGP key ") + k->fpr;
    if (const char* why = why_unusable_recipient(k.get()))
      refused = name + " is " + why;
    else if (!valid)
      refused = name + (jid.empty() ? " has no User ID" : " has no User ID xmpp:" + jid) +
                " with full validity (gpg does not encrypt to it in batch mode either); "
                "certify it (gpg --quick-lsign-key FPR) after checking its fingerprint";
    else
      found.push_back(k->fpr);
  }
  if (found.size() > 1) {
    std::string list;
    for (const auto& f : found)
      list += (list.empty() ? "" : ", ") + f;
    return fail(Errc::malformed, "several OpenPGP keys have the User ID xmpp:" + jid + ": " + list +
                                     "; choose one by its fingerprint");
  }
  if (!found.empty())
    return found.front();
  if (!refused.empty())
    return fail(Errc::not_acceptable, refused);
  return fail(Errc::not_acceptable, (fpr ? "no OpenPGP key with primary fingerprint " + *fpr
                                         : "no OpenPGP key with the User ID xmpp:" + jid) +
                                        " in " + where(m_home));
}

Result<uint64_t> GnuPG::encrypt(const std::vector<std::string>& recipients,
                                const std::string& signer, int in_fd, int out_fd,
                                const CryptOptions& opts) {
  if (recipients.empty())
    return fail(Errc::malformed, "no recipients to encrypt to");
  gpgme_ctx_t ctx = m_ctx.get();
  std::vector<Key> keys;
  for (const auto& r : recipients) {
    gpgme_key_t k = nullptr;
    if (gpgme_error_t err = gpgme_get_key(ctx, r.c_str(), &k, 0))
      return gpg_fail(Errc::not_acceptable, "no OpenPGP key " + r + " in " + where(m_home), err);
    keys.emplace_back(k);
  }
  std::vector<gpgme_key_t> list;
  for (const Key& k : keys)
    list.push_back(k.get());
  list.push_back(nullptr);

  gpgme_signers_clear(ctx);
  if (!signer.empty()) {
    gpgme_key_t k = nullptr;
    if (gpgme_error_t err = gpgme_get_key(ctx, signer.c_str(), &k, 1))
      return gpg_fail(Errc::not_acceptable,
                      "no OpenPGP secret key " + signer + " in " + where(m_home), err);
    Key sk(k);
    if (gpgme_error_t err = gpgme_signers_add(ctx, sk.get()))
      return gpg_fail(Errc::internal, "GPGME signer", err);
  }

  FdStream in{in_fd, 0, 0, &opts.progress};
  FdStream out{out_fd, 0, 0, nullptr};
  ES_ASSIGN(Data plain, stream_data(in));
  ES_ASSIGN(Data cipher, stream_data(out));
  Passphrase pass{opts.passphrase};
  gpgme_set_armor(ctx, 0);
  // No compression (gpg -z 0), as age does: files sent over XMPP are mostly compressed
  // already (media, archives), zlib would make sealing many times slower, and compressing
  // before encrypting lets the length say something about the content.
  auto flags = GPGME_ENCRYPT_NO_COMPRESS;
  gpgme_error_t err;
  {
    PassphraseScope scope(ctx, pass);
    err = signer.empty()
              ? gpgme_op_encrypt(ctx, list.data(), flags, plain.get(), cipher.get())
              : gpgme_op_encrypt_sign(ctx, list.data(), flags, plain.get(), cipher.get());
  }
  gpgme_signers_clear(ctx);
  if (auto e = io_error(in, out, opts))
    return *e;
  if (err) {
    if (auto e = passphrase_error(err, pass))
      return *e;
    if (gpgme_encrypt_result_t r = gpgme_op_encrypt_result(ctx); r && r->invalid_recipients)
      return gpg_fail(Errc::not_acceptable,
                      std::string("gpg refused the recipient ") +
                          (r->invalid_recipients->fpr ? r->invalid_recipients->fpr : "?"),
                      r->invalid_recipients->reason);
    if (!signer.empty())
      if (gpgme_sign_result_t r = gpgme_op_sign_result(ctx); r && r->invalid_signers)
        return gpg_fail(Errc::not_acceptable, "gpg cannot sign with " + signer,
                        r->invalid_signers->reason);
    return gpg_fail(Errc::io, "gpg could not encrypt", err);
  }
  return in.done;
}

Result<Decrypted> GnuPG::decrypt(int in_fd, int out_fd, const CryptOptions& opts) {
  gpgme_ctx_t ctx = m_ctx.get();
  FdStream in{in_fd, 0, 0, &opts.progress};
  FdStream out{out_fd, 0, 0, nullptr};
  ES_ASSIGN(Data cipher, stream_data(in));
  ES_ASSIGN(Data plain, stream_data(out));
  Passphrase pass{opts.passphrase};
  gpgme_error_t err;
  {
    PassphraseScope scope(ctx, pass);
    err = gpgme_op_decrypt_verify(ctx, cipher.get(), plain.get());
  }
  if (auto e = io_error(in, out, opts))
    return *e;
  if (auto e = passphrase_error(err, pass))
    return *e;
  gpgme_decrypt_result_t dr = gpgme_op_decrypt_result(ctx);
  if (gpgme_err_code(err) == GPG_ERR_NO_SECKEY)
    return fail(Errc::auth_failed,
                opts.in_name + ": not encrypted to any OpenPGP secret key in " + where(m_home));
  // gpg refuses these itself (unless --ignore-mdc-error), with a vaguer error.
  if (dr && dr->legacy_cipher_nomdc)
    return fail(Errc::auth_failed,
                opts.in_name + ": the message has no integrity protection (no MDC); refused");
  if (err)
    return gpg_fail(Errc::auth_failed,
                    opts.in_name + ": decryption failed (modified, truncated or not OpenPGP)", err);
  if (!dr || !dr->recipients)
    return fail(Errc::auth_failed,
                opts.in_name + ": not an OpenPGP message encrypted to a public key");

  Decrypted d;
  d.bytes = out.done;
  read_signatures(ctx, d);
  return d;
}

// The in-memory variants run the descriptor versions over anonymous memory files (the same
// checks and errors, one code path), or GPGME memory buffers for signing and verifying.
namespace {

Result<fs::UniqueFd> memory_file(ByteView content) {
  fs::UniqueFd fd(::memfd_create("esession-openpgp", MFD_CLOEXEC));
  if (!fd)
    return fail(Errc::io, std::string("memfd_create failed: ") + std::strerror(errno));
  const uint8_t* p = content.data();
  size_t left = content.size();
  while (left) {
    ssize_t n = ::write(fd.get(), p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return fail(Errc::io, std::string("memory file write failed: ") + std::strerror(errno));
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::lseek(fd.get(), 0, SEEK_SET) != 0)
    return fail(Errc::io, std::string("memory file rewind failed: ") + std::strerror(errno));
  return fd;
}

Result<Bytes> memory_contents(int fd) {
  Bytes out;
  if (::lseek(fd, 0, SEEK_SET) != 0)
    return fail(Errc::io, std::string("memory file rewind failed: ") + std::strerror(errno));
  uint8_t buf[1 << 14];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail(Errc::io, std::string("memory file read failed: ") + std::strerror(errno));
    if (n == 0)
      return out;
    out.insert(out.end(), buf, buf + n);
  }
}

Result<Data> memory_data(ByteView content) {
  gpgme_data_t raw = nullptr;
  if (gpgme_error_t err = gpgme_data_new_from_mem(
          &raw, reinterpret_cast<const char*>(content.data()), content.size(), 1))
    return gpg_fail(Errc::internal, "GPGME buffer creation failed", err);
  return Data(raw);
}

Result<Data> empty_data() {
  gpgme_data_t raw = nullptr;
  if (gpgme_error_t err = gpgme_data_new(&raw))
    return gpg_fail(Errc::internal, "GPGME buffer creation failed", err);
  return Data(raw);
}

Bytes take_data(Data d) {
  size_t n = 0;
  char* p = gpgme_data_release_and_get_mem(d.release(), &n);
  Bytes out(reinterpret_cast<uint8_t*>(p), reinterpret_cast<uint8_t*>(p) + (p ? n : 0));
  gpgme_free(p);
  return out;
}

}  // namespace

Result<Bytes> GnuPG::encrypt(const std::vector<std::string>& recipients, const std::string& signer,
                             ByteView plain, const CryptOptions& opts) {
  ES_ASSIGN(fs::UniqueFd in, memory_file(plain));
  ES_ASSIGN(fs::UniqueFd out, memory_file({}));
  ES_TRY(encrypt(recipients, signer, in.get(), out.get(), opts));
  return memory_contents(out.get());
}

Result<Decrypted> GnuPG::decrypt(ByteView message, Bytes& plain, const CryptOptions& opts) {
  ES_ASSIGN(fs::UniqueFd in, memory_file(message));
  ES_ASSIGN(fs::UniqueFd out, memory_file({}));
  ES_ASSIGN(Decrypted d, decrypt(in.get(), out.get(), opts));
  ES_ASSIGN(plain, memory_contents(out.get()));
  return d;
}

Result<Bytes> GnuPG::sign(const std::string& signer, ByteView plain, const CryptOptions& opts) {
  gpgme_ctx_t ctx = m_ctx.get();
  gpgme_key_t k = nullptr;
  if (gpgme_error_t err = gpgme_get_key(ctx, signer.c_str(), &k, 1))
    return gpg_fail(Errc::not_acceptable,
                    "no OpenPGP secret key " + signer + " in " + where(m_home), err);
  Key sk(k);
  gpgme_signers_clear(ctx);
  if (gpgme_error_t err = gpgme_signers_add(ctx, sk.get()))
    return gpg_fail(Errc::internal, "GPGME signer", err);
  ES_ASSIGN(Data in, memory_data(plain));
  ES_ASSIGN(Data out, empty_data());
  Passphrase pass{opts.passphrase};
  gpgme_set_armor(ctx, 0);
  gpgme_error_t err;
  {
    PassphraseScope scope(ctx, pass);
    err = gpgme_op_sign(ctx, in.get(), out.get(), GPGME_SIG_MODE_NORMAL);
  }
  gpgme_signers_clear(ctx);
  if (err) {
    if (auto e = passphrase_error(err, pass))
      return *e;
    if (gpgme_sign_result_t r = gpgme_op_sign_result(ctx); r && r->invalid_signers)
      return gpg_fail(Errc::not_acceptable, "gpg cannot sign with " + signer,
                      r->invalid_signers->reason);
    return gpg_fail(Errc::io, "gpg could not sign", err);
  }
  return take_data(std::move(out));
}

Result<Decrypted> GnuPG::verify(ByteView message, Bytes& plain) {
  gpgme_ctx_t ctx = m_ctx.get();
  ES_ASSIGN(Data in, memory_data(message));
  ES_ASSIGN(Data out, empty_data());
  gpgme_error_t err = gpgme_op_verify(ctx, in.get(), nullptr, out.get());
  if (err)
    return gpg_fail(Errc::auth_failed, "not a signed OpenPGP message", err);
  Decrypted d;
  read_signatures(ctx, d);
  if (d.signature == SignatureVerdict::none)
    return fail(Errc::auth_failed, "not a signed OpenPGP message (no signature)");
  plain = take_data(std::move(out));
  d.bytes = plain.size();
  return d;
}

}  // namespace esession::openpgp
