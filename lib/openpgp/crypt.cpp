// OpenPGP messages through gpg itself: encryption (optionally signed), signing, decryption with
// verification. One gpg process per operation reads and writes our descriptors directly (or
// pipes from and to memory), and its status lines (--status-fd, GnuPG's doc/DETAILS) say what
// happened. Decryption writes plaintext as gpg releases it, before the integrity check at the
// end of the message: the caller must hold it back (an OutputFile or a spool file) until
// decrypt() succeeds.
#include <cstring>

#include "openpgp/gpg_run.hpp"
#include "openpgp/openpgp.hpp"
#include "util/jid.hpp"

namespace esession::openpgp {

using namespace detail;

namespace {

std::string where(const std::string& home) {
  return home.empty() ? "the default GnuPG home" : "the GnuPG home " + home;
}

// spec_of is how gpg is told about a key named by a fingerprint or a JID: the fingerprint, or
// the exact XEP-0373 User ID "xmpp:JID" ("=" asks gpg for an exact match).
std::string spec_of(std::string_view which) {
  if (auto fpr = fingerprint_from_text(which))
    return *fpr;
  return "=xmpp:" + bare_jid(which);
}

bool is_jid_spec(std::string_view spec) {
  return spec.substr(0, 6) == "=xmpp:";
}

// Reasons of INV_RECP and INV_SGNR (doc/DETAILS).
std::string invalid_key_reason(const std::string& code) {
  static const char* const kReasons[] = {
      "is unusable (no usable subkey for this)",
      "was not found",
      "is ambiguous: several keys match",
      "has the wrong key usage",
      "is revoked",
      "has expired",
      "has no CRL",
      "has an outdated CRL",
      "violates the policy",
      "has no secret part here",
      ("is not valid: certify it (gpg --quick-lsign-key FPR) after checking its fingerprint; "
       "gpg does not encrypt to it in batch mode either"),
      "has a missing certificate",
      "has a missing issuer certificate",
      "is disabled",
      "is not a valid key specification",
  };
  int c = std::atoi(code.c_str());
  if (c >= 0 && c < static_cast<int>(std::size(kReasons)))
    return kReasons[c];
  return "was refused (reason " + code + ")";
}

std::string key_label(const std::string& spec) {
  if (is_jid_spec(spec))
    return "the OpenPGP key with the User ID " + spec.substr(1);
  if (fingerprint_from_text(spec))
    return "the OpenPGP key " + spec;
  return "the OpenPGP key in " + spec;
}

// error_code returns the libgpg-error code (the low 16 bits) of an ERROR or FAILURE argument.
unsigned error_code(const std::string& v) {
  return static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10) & 0xffff);
}

// passphrase_problem classifies a run that failed on the secret key's passphrase.
std::optional<Error> passphrase_problem(const Outcome& o) {
  constexpr unsigned kBadPassphrase = 11, kNoPinentry = 85, kBadPin = 87, kCanceled = 99,
                     kNotConfirmed = 114, kNoPassphrase = 177, kFullyCanceled = 198;
  bool bad = o.has("BAD_PASSPHRASE"), missing = o.has("MISSING_PASSPHRASE");
  for (const char* kw : {"ERROR", "FAILURE"})
    for (const auto& a : o.args(kw)) {
      if (a.size() < 2)
        continue;
      unsigned c = error_code(a[1]);
      bad = bad || c == kBadPassphrase || c == kBadPin;
      missing = missing || c == kNoPinentry || c == kCanceled || c == kNotConfirmed ||
                c == kNoPassphrase || c == kFullyCanceled;
    }
  if (bad)
    return fail(Errc::auth_failed, "wrong passphrase for the OpenPGP secret key");
  if (missing)
    return fail(Errc::not_acceptable,
                "no passphrase for the OpenPGP secret key: give it with --passphrase-fd, or let "
                "gpg-agent ask (set GPG_TTY=$(tty))");
  return std::nullopt;
}

// Failure of an encryption or signing run, classified. |self| is the spec added only to
// encrypt to our own key (empty if none).
struct KeyRefusal {
  std::string spec;
  std::string reason;
  bool signer = false;
};

std::vector<KeyRefusal> refusals(const Outcome& o) {
  std::vector<KeyRefusal> out;
  for (const auto& a : o.args("INV_RECP"))
    if (a.size() >= 2)
      out.push_back({a[1], a[0], false});
  for (const auto& a : o.args("INV_SGNR"))
    if (a.size() >= 2)
      out.push_back({a[1], a[0], true});
  return out;
}

// One encryption or signing run.
struct SealJob {
  std::vector<std::string> recipients;  // specs
  std::vector<std::string> files;       // key files
  std::string self;                     // spec of our own key to encrypt to, or empty
  std::string signer;                   // spec, or empty
  bool encrypt = true;
};

Result<Outcome> run_seal(const std::string& home, const SealJob& s, Job& job,
                         const CryptOptions& opts) {
  job.argv = gpg_argv(home, opts.passphrase.has_value() && !s.signer.empty());
  // Binary, uncompressed (gpg -z 0, as age does: files sent over XMPP are mostly compressed
  // already, zlib would make sealing several times slower, and compressing before encrypting
  // lets the length say something about the content).
  job.argv.insert(job.argv.end(), {"--no-armor", "--compress-algo", "none"});
  if (!s.signer.empty())
    job.argv.insert(job.argv.end(), {"--local-user", s.signer});
  for (const auto& r : s.recipients)
    job.argv.insert(job.argv.end(), {"--recipient", r});
  for (const auto& f : s.files)
    job.argv.insert(job.argv.end(), {"--recipient-file", f});
  if (!s.self.empty())
    job.argv.insert(job.argv.end(), {"--recipient", s.self});
  if (s.encrypt)
    job.argv.push_back("--encrypt");
  if (!s.signer.empty())
    job.argv.push_back("--sign");
  job.status_fd = true;
  if (opts.passphrase && !s.signer.empty())
    job.fd4 = opts.passphrase;
  job.progress = opts.progress;
  return run(job);
}

// seal_error says why a run that did not succeed failed.
Error seal_error(const Outcome& o, const std::string& home, const CryptOptions& opts,
                 bool encrypt) {
  if (o.in_errno)
    return fail(Errc::io, opts.in_name + ": read failed: " + std::strerror(o.in_errno));
  if (auto e = passphrase_problem(o))
    return *e;
  for (const auto& r : refusals(o))
    return fail(Errc::not_acceptable, (r.signer ? "cannot sign with " : "cannot encrypt to ") +
                                          key_label(r.spec) + ": it " +
                                          invalid_key_reason(r.reason) + " (" + where(home) + ")");
  return fail(Errc::io, std::string("gpg could not ") + (encrypt ? "encrypt" : "sign") +
                            (o.diagnostic.empty() ? "" : ": " + o.diagnostic));
}

bool sealed_ok(const Outcome& o, const SealJob& s) {
  return o.exit_code == 0 && (!s.encrypt || o.has("END_ENCRYPTION")) &&
         (s.signer.empty() || o.has("SIG_CREATED"));
}

// ---- verification ----------------------------------------------------------------------------

int rank(SignatureVerdict v) {
  switch (v) {
    case SignatureVerdict::none:
      return 0;
    case SignatureVerdict::good:
      return 1;
    case SignatureVerdict::unknown:
      return 2;
    case SignatureVerdict::bad:
      return 3;
  }
  return 3;
}

}  // namespace

namespace detail {

void read_signatures(const Outcome& o, Decrypted& d) {
  SignatureVerdict current = SignatureVerdict::none;
  std::string signer;
  bool open = false;
  auto close = [&]() {
    if (!open)
      return;
    if (current == SignatureVerdict::none)
      current = SignatureVerdict::bad;  // a signature gpg said nothing conclusive about
    if (d.signature == SignatureVerdict::none || rank(current) > rank(d.signature)) {
      d.signature = current;
      d.signer = signer;
    }
    open = false;
  };
  for (const auto& line : o.status) {
    size_t sp = line.find(' ');
    std::string_view kw = std::string_view(line).substr(0, sp);
    std::vector<std::string> a;
    if (sp != std::string::npos) {
      std::string_view rest = std::string_view(line).substr(sp + 1);
      size_t pos = 0;
      while (pos <= rest.size()) {
        size_t e = rest.find(' ', pos);
        a.emplace_back(rest.substr(pos, e == std::string_view::npos ? e : e - pos));
        if (e == std::string_view::npos)
          break;
        pos = e + 1;
      }
    }
    if (kw == "NEWSIG") {
      close();
      open = true;
      current = SignatureVerdict::none;
      signer.clear();
    } else if (!open) {
      continue;
    } else if (kw == "GOODSIG") {
      if (current == SignatureVerdict::none)
        current = SignatureVerdict::good;
      if (signer.empty() && !a.empty())
        signer = a[0];
    } else if (kw == "VALIDSIG") {
      // The last field is the primary key's fingerprint (GnuPG 2.x).
      if (!a.empty() && fingerprint_from_text(a.back()))
        signer = a.back();
    } else if (kw == "BADSIG" || kw == "EXPSIG" || kw == "EXPKEYSIG" || kw == "REVKEYSIG") {
      current = SignatureVerdict::bad;
      if (!a.empty())
        signer = a[0];
    } else if (kw == "ERRSIG") {
      // ERRSIG <keyid> <pkalgo> <hashalgo> <class> <time> <rc> [<fpr>]: rc 9 is a missing key.
      current = a.size() >= 6 && a[5] == "9" ? SignatureVerdict::unknown : SignatureVerdict::bad;
      signer = a.size() >= 7 && a[6] != "-" ? a[6] : (a.empty() ? "" : a[0]);
    }
  }
  close();
}

}  // namespace detail

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

Result<uint64_t> GnuPG::encrypt(const std::vector<std::string>& recipients,
                                const std::string& signer, int in_fd, int out_fd,
                                const CryptOptions& opts) {
  if (recipients.empty() && opts.recipient_files.empty())
    return fail(Errc::malformed, "no recipients to encrypt to");
  SealJob s;
  for (const auto& r : recipients)
    s.recipients.push_back(spec_of(r));
  s.files = opts.recipient_files;
  if (!signer.empty())
    s.signer = spec_of(signer);
  Job job;
  job.in_fd = in_fd;
  job.out_fd = out_fd;
  ES_ASSIGN(Outcome o, run_seal(m_home, s, job, opts));
  if (o.in_errno)
    return fail(Errc::io, opts.in_name + ": read failed: " + std::strerror(o.in_errno));
  if (!sealed_ok(o, s))
    return seal_error(o, m_home, opts, true);
  return o.in_bytes;
}

Result<Bytes> GnuPG::seal(const std::vector<std::string>& recipients, const std::string& signer,
                          ByteView plain, const CryptOptions& opts) {
  bool encrypt = !recipients.empty() || !opts.recipient_files.empty();
  if (!encrypt && signer.empty())
    return fail(Errc::malformed, "nothing to do: no recipient and no signer");
  SealJob s;
  s.encrypt = encrypt;
  s.files = opts.recipient_files;
  for (const auto& r : recipients)
    s.recipients.push_back(spec_of(r));
  if (!signer.empty()) {
    s.signer = spec_of(signer);
    if (encrypt && opts.to_self)
      s.self = s.signer;
  }
  // gpg resolves the keys itself, in the same run: a JID names the key with the User ID
  // "xmpp:JID" exactly (XEP-0373 §8.5). When gpg finds no usable key for a JID that way, the
  // keyring is searched as find_recipient and find_secret_key do (they also accept "Name
  // <xmpp:JID>" and say precisely what is wrong with a key) and the run repeats with
  // fingerprints. At most one repetition per kind of problem.
  for (int attempt = 0; attempt < 3; ++attempt) {
    Bytes out;
    Job job;
    job.in_mem = plain;
    job.out_mem = &out;
    ES_ASSIGN(Outcome o, run_seal(m_home, s, job, opts));
    if (sealed_ok(o, s))
      return out;
    bool retry = false;
    for (const auto& r : refusals(o)) {
      if (!r.signer && !s.self.empty() && r.spec == s.self) {
        if (opts.warn)
          opts.warn("not encrypting to your own key: " + key_label(r.spec) + " " +
                    invalid_key_reason(r.reason));
        s.self.clear();
        retry = true;
      } else if (r.signer && is_jid_spec(r.spec) && r.spec == s.signer) {
        ES_ASSIGN(std::string fpr, find_secret_key(r.spec.substr(6)));
        if (s.self == s.signer)
          s.self = fpr;
        s.signer = fpr;
        retry = true;
      } else if (!r.signer && is_jid_spec(r.spec)) {
        ES_ASSIGN(std::string fpr, find_recipient(r.spec.substr(6)));
        for (auto& spec : s.recipients)
          if (spec == r.spec)
            spec = fpr;
        retry = true;
      }
    }
    if (!retry)
      return seal_error(o, m_home, opts, encrypt);
  }
  return fail(Errc::internal, "gpg refused the keys it was given repeatedly");
}

namespace {

// decrypt_error says why a decryption run failed, or returns nullopt if it succeeded.
std::optional<Error> decrypt_error(const Outcome& o, const std::string& home,
                                   const CryptOptions& opts) {
  const std::string& name = opts.in_name;
  if (o.in_errno)
    return fail(Errc::io, name + ": read failed: " + std::strerror(o.in_errno));
  if (auto e = passphrase_problem(o))
    return e;
  if (!o.has("BEGIN_DECRYPTION") && !o.has("DECRYPTION_FAILED")) {
    if (!o.has("ENC_TO") && !o.has("NO_SECKEY"))
      return fail(Errc::auth_failed,
                  name + ": not an OpenPGP message encrypted to a public key" +
                      (o.diagnostic.empty() ? "" : " (gpg: " + o.diagnostic + ")"));
  }
  size_t enc_to = o.args("ENC_TO").size(), no_seckey = o.args("NO_SECKEY").size();
  if (enc_to > 0 && no_seckey >= enc_to)
    return fail(Errc::auth_failed,
                name + ": not encrypted to any OpenPGP secret key in " + where(home));
  // A message without integrity protection: no MDC, no AEAD (DECRYPTION_INFO <mdc> <algo>
  // [<aead>]). gpg 2.2 refuses most of these itself, with a vaguer error.
  for (const auto& a : o.args("DECRYPTION_INFO"))
    if (!a.empty() && a[0] == "0" && (a.size() < 3 || a[2] == "0"))
      return fail(Errc::auth_failed,
                  name + ": the message has no integrity protection (no MDC); refused");
  bool integrity = o.has("GOODMDC");
  for (const auto& a : o.args("DECRYPTION_INFO"))
    if (a.size() >= 3 && a[2] != "0")
      integrity = true;  // AEAD
  bool ok = o.has("DECRYPTION_OKAY") && o.has("END_DECRYPTION") && integrity &&
            o.has("DECRYPTION_KEY") && !o.has("DECRYPTION_FAILED") && !o.has("BADMDC") &&
            !o.has("NODATA") && !o.has("UNEXPECTED") && !o.has("FAILURE");
  // gpg exits 2 when a signature cannot be checked; anything else not 0 is a failure.
  bool sig_trouble = o.has("ERRSIG") || o.has("BADSIG") || o.has("EXPKEYSIG") ||
                     o.has("REVKEYSIG") || o.has("EXPSIG");
  if (ok && (o.exit_code == 0 || ((o.exit_code == 1 || o.exit_code == 2) && sig_trouble)))
    return std::nullopt;
  return fail(Errc::auth_failed, name + ": decryption failed (modified, truncated or not OpenPGP)" +
                                     (o.diagnostic.empty() ? "" : ": " + o.diagnostic));
}

}  // namespace

Result<Decrypted> GnuPG::decrypt(int in_fd, int out_fd, const CryptOptions& opts) {
  Job job;
  job.argv = gpg_argv(m_home, opts.passphrase.has_value());
  job.argv.push_back("--decrypt");
  job.status_fd = true;
  job.in_fd = in_fd;
  job.out_fd = out_fd;
  job.fd4 = opts.passphrase;
  job.progress = opts.progress;
  off_t start = ::lseek(out_fd, 0, SEEK_CUR);
  ES_ASSIGN(Outcome o, run(job));
  if (auto e = decrypt_error(o, m_home, opts))
    return *e;
  Decrypted d;
  off_t end = ::lseek(out_fd, 0, SEEK_CUR);
  if (start >= 0 && end >= start)
    d.bytes = static_cast<uint64_t>(end - start);
  read_signatures(o, d);
  return d;
}

Result<Decrypted> GnuPG::decrypt(ByteView message, Bytes& plain, const CryptOptions& opts) {
  Job job;
  job.argv = gpg_argv(m_home, opts.passphrase.has_value());
  job.argv.push_back("--decrypt");
  job.status_fd = true;
  job.in_mem = message;
  Bytes out;
  job.out_mem = &out;
  job.fd4 = opts.passphrase;
  ES_ASSIGN(Outcome o, run(job));
  if (auto e = decrypt_error(o, m_home, opts))
    return *e;
  Decrypted d;
  d.bytes = out.size();
  read_signatures(o, d);
  plain = std::move(out);
  return d;
}

Result<Decrypted> GnuPG::verify(ByteView message, Bytes& plain) {
  Job job;
  job.argv = gpg_argv(m_home, false);
  job.argv.push_back("--decrypt");  // a signed message: its data out, its signature checked
  job.status_fd = true;
  job.in_mem = message;
  Bytes out;
  job.out_mem = &out;
  ES_ASSIGN(Outcome o, run(job));
  if (o.has("BEGIN_DECRYPTION") || o.has("ENC_TO"))
    return fail(Errc::auth_failed, "an encrypted OpenPGP message, not a signed one");
  Decrypted d;
  read_signatures(o, d);
  if (d.signature == SignatureVerdict::none || o.has("NODATA") || o.has("UNEXPECTED") ||
      o.has("FAILURE") || !o.has("PLAINTEXT"))
    return fail(Errc::auth_failed,
                "not a signed OpenPGP message" +
                    (o.diagnostic.empty() ? "" : " (gpg: " + o.diagnostic + ")"));
  if (o.exit_code != 0 && d.signature == SignatureVerdict::good)
    return fail(Errc::auth_failed, "gpg could not verify the message" +
                                       (o.diagnostic.empty() ? "" : ": " + o.diagnostic));
  d.bytes = out.size();
  plain = std::move(out);
  return d;
}

}  // namespace esession::openpgp
