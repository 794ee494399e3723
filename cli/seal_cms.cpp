// CMS files (RFC 5652) for `seal --file` / `open --file`: lib/object/cms.hpp does the work;
// this file finds the certificates and identities the options name.
//
// seal: -r names recipient certificate files (PEM or DER), -i an identity file to sign with
// (PEM certificate and key, or PKCS#12); either may instead name one of the account's X.509
// keys in the home (by fingerprint, or the account's JID for its X.509 key). open: the account's
// X.509 identity in the home, or
// --identity FILE; -i names the certificate that must have signed, else the signer's chain must
// lead to --ca-file (or <home>/ca.pem); --allow-unsigned opens a file without a signature.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "identity.hpp"
#include "object/cms.hpp"
#include "seal.hpp"
#include "seal_x509.hpp"

namespace esession::cli {

namespace {

void refuse_key_options(const ObjectOpts& o) {
  if (!o.key_out.empty() || !o.key_file.empty() || o.key_fd >= 0)
    fail_with(Errc::malformed, "cms takes no --key-out, --key-file or --key-fd",
              "cms files are opened with the recipient's private key (--identity)");
}

}  // namespace

int seal_cms(Context& ctx, const ObjectOpts& o) {
  refuse_key_options(o);
  if (o.allow_unsigned || !o.identity.empty())
    fail_with(Errc::malformed, "--allow-unsigned and --identity are options of open");
  if (o.recipients.empty())
    fail_with(Errc::malformed, "cms needs at least one recipient: -r CERTFILE",
              "give the recipient's certificate (PEM or DER); repeat -r for more");
  if (o.signers.size() > 1)
    fail_with(Errc::malformed, "cms takes one signer (-i)");
  std::vector<Certificate> recipients;
  const std::string hint =
      "give a certificate or identity file, or the fingerprint of one of "
      "the account's X.509 keys";
  for (const auto& r : o.recipients) {
    if (is_file(r)) {
      recipients.push_back(load_certificate(r, "recipient certificate"));
    } else {
      KeyRecord k = account_key(ctx, r, hint);
      recipients.push_back(check(Certificate::all_from_pem(string_of(view(k.data)))).front());
    }
  }
  std::optional<X509Identity> signer;
  if (!o.signers.empty())
    signer = is_file(o.signers.front()) ? load_identity_file(ctx, o.signers.front())
                                        : account_identity(ctx, o.signers.front(), hint);
  else
    ctx.warn(
        "the file is not signed (no -i): its recipients cannot tell who made it, or "
        "whether it was changed");

  Output out = plan_output(o);
  fs::UniqueFd in_own;
  int in_fd = open_input(o, in_own);
  std::string in_name = is_stdio(o.input) ? "standard input" : o.input;
  std::optional<fs::OutputFile> file = sealed_file(out);
  ProgressBar bar(ctx, "sealing", fs::regular_size(in_fd));
  cms::StreamOptions so;
  so.progress = bar.callback();
  Result<uint64_t> r =
      cms::seal(recipients, signer ? &*signer : nullptr, in_fd, out.fd, so, in_name, out.name);
  bar.clear();
  uint64_t n = check(std::move(r));
  if (file)
    check(file->commit());
  ctx.status("SEALED", {"cms", std::to_string(n)});
  ctx.info("sealed " + human_size(n) + " (cms" + std::string(signer ? ", signed" : "") + ")");
  return kExitOk;
}

int open_cms(Context& ctx, const ObjectOpts& o) {
  refuse_key_options(o);
  if (!o.recipients.empty())
    fail_with(Errc::malformed, "open takes no recipients (-r)");
  if (o.signers.size() > 1)
    fail_with(Errc::malformed, "cms takes one expected signer (-i)");
  X509Identity me =
      o.identity.empty()
          ? account_identity(ctx, {}, "name an identity file with --identity FILE (PEM or PKCS#12)")
          : load_identity_file(ctx, o.identity);
  cms::Trust trust;
  trust.allow_unsigned = o.allow_unsigned;
  if (!o.signers.empty())
    trust.expected = load_certificate(o.signers.front(), "signer certificate");
  else
    trust.anchors = ca_anchors(ctx);

  fs::UniqueFd in_own;
  int in_fd = open_input(o, in_own);
  std::string in_name = is_stdio(o.input) ? "standard input" : o.input;
  Output out = plan_output(o);
  // The plaintext goes somewhere private first: the OutputFile that appears only once the
  // signature checked, or a spool file copied to the stream afterwards.
  HeldOutput held(out);
  int sink = held.fd();
  auto reread = [&]() -> Result<int> {
    // A new open file description of the same file, so that the sink's offset stays where it
    // is.
    std::string p = "/proc/self/fd/" + std::to_string(sink);
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && !held.temp_path().empty())
      fd = ::open(held.temp_path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return fail(Errc::io, "cannot read back the decrypted content: " + errno_text());
    return fd;
  };

  ProgressBar bar(ctx, "opening", fs::regular_size(in_fd));
  cms::StreamOptions so;
  so.progress = bar.callback();
  cms::Verdict verdict;
  Result<uint64_t> r = cms::open(me, trust, in_fd, sink, reread, verdict, so, in_name);
  bar.clear();
  signature_status(ctx, verdict);
  if (verdict.state == cms::Verdict::State::good)
    ctx.info("good signature by " + verdict.signer);
  if (!r && verdict.state == cms::Verdict::State::none)
    check(std::move(r), "open it anyway with --allow-unsigned, if you trust how it reached you");
  if (!r && verdict.state == cms::Verdict::State::bad && trust.anchors.empty() && !trust.expected)
    check(std::move(r), "configure the signer's CA with --ca-file, or name the signer with -i");
  uint64_t n = check(std::move(r));
  if (verdict.state == cms::Verdict::State::none)
    ctx.warn("the file is not signed: nothing shows who made it or that it is unchanged");
  held.release(out);
  ctx.status("OPENED", {"cms", std::to_string(n)});
  ctx.debug("opened " + human_size(n) + " (cms)");
  return kExitOk;
}

}  // namespace esession::cli
