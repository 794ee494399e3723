// OpenPGP files for `seal --file` / `open --file`: binary OpenPGP messages as gpg makes and
// reads them, through GnuPG (lib/openpgp: GnuPG::encrypt and decrypt). Keys stay in the GnuPG
// home (--gnupg-home); no esession home is needed.
//
// Decisions, documented in esession-seal(1) and esession-open(1):
//  - Recipients must be valid in GnuPG's trust model (full or ultimate), as gpg requires in
//    batch mode; key files are not read: they go through gpg --import and a certification.
//  - A message is signed only with -i; a signed message is encrypted to the signer's own key
//    too (as XEP-0373 does for stanzas), so that the sender can read what it sent.
//  - open writes nothing before the whole message has decrypted and its integrity protection
//    checked: a file goes through an OutputFile, standard output through a spool file. A bad
//    signature is refused; a missing or unknown one is reported and, unless -i requires a
//    signer, accepted (as gpg does).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "identity.hpp"
#include "openpgp/openpgp.hpp"
#include "seal.hpp"
#include "util/jid.hpp"

namespace esession::cli {

namespace {

void refuse_key_options(const ObjectOpts& o) {
  if (!o.key_out.empty() || !o.key_file.empty() || o.key_fd >= 0)
    fail_with(Errc::malformed,
              "openpgp has no --key-out, --key-file or --key-fd: its keys are in GnuPG",
              "name recipients with -r and the signer with -i (JIDs or fingerprints)");
}

std::optional<SecretBytes> passphrase(Context& ctx, const std::string& what) {
  if (ctx.globals().passphrase_fd < 0)
    return std::nullopt;  // the agent's pinentry asks, if it must
  return read_passphrase(ctx, "passphrase for " + what);
}

openpgp::CryptOptions crypt_options(const std::optional<SecretBytes>& pass,
                                    const std::string& in_name, const std::string& out_name) {
  openpgp::CryptOptions co;
  if (pass)
    co.passphrase = view(*pass);
  co.in_name = in_name;
  co.out_name = out_name;
  return co;
}

}  // namespace

bool is_key_file(const std::string& which) {
  if (openpgp::fingerprint_from_text(which))
    return false;
  return which.find('/') != std::string::npos || ::access(which.c_str(), F_OK) == 0;
}

const std::string& key_file(const std::string& which) {
  if (::access(which.c_str(), R_OK) != 0)
    fail_with(Errc::io, which + ": " + errno_text());
  return which;
}

void refuse_signer_file(const std::string& which) {
  if (is_key_file(which))
    fail_with(Errc::unsupported,
              "'" + which + "': an OpenPGP signer is a secret key in GnuPG, not a file",
              "import it with gpg --import " + which + ", then name it by JID or fingerprint");
}

bool signer_named(const std::vector<openpgp::KeyStatus>& keys, const std::string& fpr) {
  for (const auto& st : keys)
    if (st.fingerprint == fpr && st.found && !st.revoked && !st.expired && !st.disabled &&
        !st.invalid && st.has_uid &&
        (st.uid_validity == openpgp::Validity::full ||
         st.uid_validity == openpgp::Validity::ultimate))
      return true;
  return false;
}

bool signer_matches(const std::string& gnupg_home, const std::string& which,
                    const std::string& fpr) {
  if (auto want = openpgp::fingerprint_from_text(which))
    return *want == fpr;
  if (is_key_file(which)) {
    auto fprs = check(openpgp::key_file_fingerprints(gnupg_home, key_file(which)));
    return std::find(fprs.begin(), fprs.end(), fpr) != fprs.end();
  }
  if (!openpgp::fingerprint_from_text(fpr))
    return false;
  return signer_named(check(openpgp::keys_naming(gnupg_home, bare_jid(which))), fpr);
}

int seal_openpgp(Context& ctx, const ObjectOpts& o) {
  refuse_key_options(o);
  if (o.signers.size() > 1)
    fail_with(Errc::malformed, "openpgp files are signed by one key: give -i once");
  if (o.recipients.empty() && o.signers.empty())
    fail_with(Errc::malformed, "openpgp needs at least one recipient (-r JID or fingerprint)",
              "esession seal --file --format openpgp -r bob@example.org -o OUT IN");
  for (const auto& s : o.signers)
    refuse_signer_file(s);
  Output out = plan_output(o);

  auto gpg = check(openpgp::GnuPG::open(ctx.globals().gnupg_home));
  std::string signer;
  if (!o.signers.empty())
    signer = check(gpg.find_secret_key(o.signers.front()));
  std::vector<std::string> fprs;
  auto add = [&](const std::string& f) {
    if (std::find(fprs.begin(), fprs.end(), f) == fprs.end())
      fprs.push_back(f);
  };
  std::vector<std::string> files;
  for (const auto& r : o.recipients) {
    if (is_key_file(r))
      files.push_back(key_file(r));  // gpg --recipient-file: the user named the key
    else
      add(check(gpg.find_recipient(r), "list keys with: gpg --list-keys"));
  }
  if (!signer.empty()) {
    Result<std::string> self = gpg.find_recipient(signer);
    if (self)
      add(*self);
    else if (o.recipients.empty())
      check(std::move(self));
    else
      ctx.warn("not encrypting to your own key: " + self.error().detail);
  }
  std::optional<SecretBytes> pass;
  if (!signer.empty())
    pass = passphrase(ctx, "OpenPGP key " + signer);

  fs::UniqueFd in_own;
  int in_fd = open_input(o, in_own);
  std::string in_name = is_stdio(o.input) ? "standard input" : o.input;
  std::optional<fs::OutputFile> file = sealed_file(out);
  ProgressBar bar(ctx, "sealing", fs::regular_size(in_fd));
  openpgp::CryptOptions co = crypt_options(pass, in_name, out.name);
  ProgressFn progress = bar.callback();
  int64_t total = fs::regular_size(in_fd);
  if (progress)
    co.progress = [&](uint64_t done) { progress(done, total < 0 ? 0 : uint64_t(total)); };
  co.recipient_files = files;
  Result<uint64_t> r = gpg.encrypt(fprs, signer, in_fd, out.fd, co);
  bar.clear();
  uint64_t n = check(std::move(r));
  if (file)
    check(file->commit());
  ctx.status("SEALED", {"openpgp", std::to_string(n)});
  size_t keys = fprs.size() + files.size();
  ctx.info("sealed " + human_size(n) + " (openpgp) for " + std::to_string(keys) +
           (keys == 1 ? " key" : " keys") + (signer.empty() ? "" : ", signed"));
  return kExitOk;
}

int open_openpgp(Context& ctx, const ObjectOpts& o) {
  refuse_key_options(o);
  if (!o.recipients.empty())
    fail_with(Errc::malformed, "open takes no recipients (-r): the secret keys are in GnuPG");
  if (o.signers.size() > 1)
    fail_with(Errc::malformed, "give -i once: the signer the file must be signed by");
  auto gpg = check(openpgp::GnuPG::open(ctx.globals().gnupg_home));
  std::optional<SecretBytes> pass = passphrase(ctx, "the OpenPGP secret key");

  fs::UniqueFd in_own;
  int in_fd = open_input(o, in_own);
  std::string in_name = is_stdio(o.input) ? "standard input" : o.input;
  Output out = plan_output(o);
  // Plaintext is held back until the message is authenticated.
  HeldOutput held(out);
  int write_fd = held.fd();
  ProgressBar bar(ctx, "opening", fs::regular_size(in_fd));
  openpgp::CryptOptions co =
      crypt_options(pass, in_name, held.to_file() ? out.name : std::string("the spool file"));
  ProgressFn progress = bar.callback();
  int64_t total = fs::regular_size(in_fd);
  if (progress)
    co.progress = [&](uint64_t done) { progress(done, total < 0 ? 0 : uint64_t(total)); };
  Result<openpgp::Decrypted> r = gpg.decrypt(in_fd, write_fd, co);
  bar.clear();
  openpgp::Decrypted d = check(std::move(r));

  status_signature(ctx, openpgp::signature_verdict_name(d.signature), d.signer);
  using V = openpgp::SignatureVerdict;
  if (d.signature == V::bad)
    fail_with(Errc::auth_failed, in_name + ": bad OpenPGP signature by " + d.signer);
  if (!o.signers.empty()) {
    const std::string& want = o.signers.front();
    if (d.signature == V::none)
      fail_with(Errc::auth_failed,
                in_name + ": not signed, and -i requires a signature by " + want);
    if (d.signature == V::unknown)
      fail_with(Errc::auth_failed,
                in_name + ": signed by " + d.signer + ", a key not in GnuPG; -i requires " + want);
    if (!signer_matches(ctx.globals().gnupg_home, want, d.signer))
      fail_with(Errc::auth_failed, in_name + ": signed by " + d.signer + ", not by " + want,
                "a JID matches a key with a valid User ID xmpp:JID (gpg --list-keys)");
  } else if (d.signature == V::good) {
    ctx.info("good signature by the OpenPGP key " + d.signer);
  } else if (d.signature == V::none) {
    ctx.warn("the file is not signed: anyone could have made it");
  } else if (d.signature == V::unknown) {
    ctx.warn("signed by " + d.signer + ", a key not in GnuPG: the signature is not checked");
  }
  held.release(out);
  ctx.status("OPENED", {"openpgp", std::to_string(d.bytes)});
  ctx.debug("opened " + human_size(d.bytes) + " (openpgp)");
  return kExitOk;
}

}  // namespace esession::cli
