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

namespace esession::cli {

namespace {

constexpr size_t kMaxCredentialFile = 16 << 20;

std::string read_small_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail_with(Errc::io, "cannot open the " + what + " " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad())
    fail_with(Errc::io, "reading the " + what + " " + path + " failed");
  std::string s = ss.str();
  if (s.size() > kMaxCredentialFile)
    fail_with(Errc::malformed, path + ": too large for a " + what);
  return s;
}

// load_certificate reads the first certificate of a PEM file, or a DER certificate.
Certificate load_certificate(const std::string& path, const std::string& what) {
  std::string data = read_small_file(path, what);
  if (data.find("-----BEGIN") != std::string::npos) {
    auto all = Certificate::all_from_pem(data);
    if (!all)
      fail_with(Errc::malformed, path + ": no certificate in this PEM file",
                "give a certificate file (PEM or DER)");
    return all->front();
  }
  auto c = Certificate::from_der({reinterpret_cast<const uint8_t*>(data.data()), data.size()});
  if (!c)
    fail_with(Errc::malformed, path + ": not a certificate (PEM or DER)",
              "give a certificate file (PEM or DER)");
  return *c;
}

// load_identity_file reads a PEM certificate and key, or a PKCS#12 file, asking for the
// passphrase when one is needed.
X509Identity load_identity_file(Context& ctx, const std::string& path) {
  std::string data = read_small_file(path, "identity file");
  ByteView bytes{reinterpret_cast<const uint8_t*>(data.data()), data.size()};
  Result<X509Identity> id = load_x509_identity(bytes, std::nullopt);
  if (!id && id.error().code == Errc::not_acceptable) {
    SecretBytes pass = read_passphrase(ctx, "passphrase for " + path);
    id = load_x509_identity(bytes, view(pass));
  }
  if (!id)
    fail_with(id.error().code, path + ": " + id.error().detail,
              "give a PEM file with the certificate and its private key, or a PKCS#12 file");
  return std::move(id).value();
}

// hex_of keeps the hex digits of |s|, in lower case ("E47A BD37" and "e4:7a:bd:37" alike).
std::string hex_of(std::string_view s) {
  std::string out;
  for (char c : s)
    if (std::isxdigit(static_cast<unsigned char>(c)))
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// account_key returns the account's X.509 key that |name| names: one whose fingerprint starts
// with |name| (at least 16 hex digits), or, for an empty |name| or the account's JID (full or
// bare), its default key if that is X.509, else its only X.509 key. Throws without a home or
// without such a key.
KeyRecord account_key(Context& ctx, const std::string& name, const std::string& hint) {
  if (!fs::exists(ctx.home()))
    fail_with(name.empty() ? Errc::wrong_state : Errc::io,
              (name.empty() ? std::string("no X.509 identity") : name + ": no such file") +
                  ", and no esession home at " + ctx.home() + " to find an X.509 key in",
              hint);
  const Account& a = ctx.account();
  std::string jid = a.jid;
  std::string bare = jid.substr(0, jid.find('/'));
  bool by_account = name.empty() || name == jid || name == bare;
  std::string fpr = hex_of(name);
  if (!by_account && fpr.size() < 16)
    fail_with(Errc::malformed, name + ": not a file, nor the account's JID or a fingerprint", hint);
  auto keys = check(ctx.store().list_keys(a.id));
  std::optional<KeyRecord> pick;
  int count = 0;
  for (auto& k : keys) {
    if (k.kind != KeyKind::x509)
      continue;
    if (!by_account) {
      if (hex_of(k.fingerprint).starts_with(fpr))
        return k;
      continue;
    }
    ++count;
    if (!pick || (a.default_key && k.id == *a.default_key))
      pick = k;
  }
  if (!by_account)
    fail_with(Errc::malformed, "the account " + jid + " has no X.509 key " + name, hint);
  if (!pick)
    fail_with(Errc::wrong_state, "the account " + jid + " has no X.509 key", hint);
  if (count > 1 && !(a.default_key && pick->id == *a.default_key))
    fail_with(Errc::wrong_state, "the account " + jid + " has several X.509 keys", hint);
  return *pick;
}

X509Identity account_identity(Context& ctx, const std::string& name, const std::string& hint) {
  KeyRecord k = account_key(ctx, name, hint);
  return X509Identity{check(Certificate::all_from_pem(string_of(view(k.data)))),
                      load_private_key(ctx, k)};
}

// is_file tells whether |path| names something to read (a file, not the account's key).
bool is_file(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

// ca_anchors reads --ca-file, else <home>/ca.pem if there is one.
std::vector<Certificate> ca_anchors(Context& ctx) {
  std::string path = ctx.globals().ca_file;
  if (path.empty()) {
    std::string home_ca = ctx.home() + "/ca.pem";
    if (::access(home_ca.c_str(), F_OK) != 0)
      return {};
    path = home_ca;
  }
  return check(Certificate::all_from_pem(read_small_file(path, "CA bundle")),
               "the CA bundle is PEM certificates");
}

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
  if (out.path.empty() && ::isatty(out.fd))
    fail_with(Errc::malformed, "refusing to write binary output to a terminal, use -o",
              "esession seal --file --format cms -r CERT -o OUT IN");
  fs::UniqueFd in_own;
  int in_fd = open_input(o, in_own);
  std::string in_name = is_stdio(o.input) ? "standard input" : o.input;
  std::optional<fs::OutputFile> file;
  if (!out.path.empty()) {
    mode_t mask = ::umask(0);
    ::umask(mask);
    file.emplace(check(fs::OutputFile::create(out.path, 0666 & ~mask)));
    out.fd = file->fd();
  }
  ProgressBar bar(ctx, "sealing", fs::regular_size(in_fd));
  cms::StreamOptions so;
  so.progress = bar.callback();
  Result<uint64_t> r =
      cms::seal(recipients, signer ? &*signer : nullptr, in_fd, out.fd, so, in_name, out.name);
  bar.clear();
  uint64_t n = check(std::move(r));
  if (file)
    check(file->commit());
  ctx.status("SEALED", "cms " + std::to_string(n));
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
  std::optional<fs::OutputFile> file;
  fs::UniqueFd spool;
  int sink;
  if (!out.path.empty()) {
    file.emplace(check(fs::OutputFile::create(out.path, 0600)));
    sink = file->fd();
  } else {
    spool = check(fs::open_spool(fs::spool_dir()));
    sink = spool.get();
  }
  auto reread = [&]() -> Result<int> {
    // A new open file description of the same file: the OutputFile is write-only, and the
    // spool's offset must stay where it is.
    std::string p = "/proc/self/fd/" + std::to_string(sink);
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && file)
      fd = ::open(file->temp_path().c_str(), O_RDONLY | O_CLOEXEC);
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
  switch (verdict.state) {
    case cms::Verdict::State::good:
      ctx.status("SIGNATURE", "good " + verdict.signer);
      ctx.info("good signature by " + verdict.signer);
      break;
    case cms::Verdict::State::bad:
      ctx.status("SIGNATURE", "bad " + verdict.signer);
      break;
    case cms::Verdict::State::none:
      ctx.status("SIGNATURE", "none");
      break;
    case cms::Verdict::State::unknown:
      break;
  }
  if (!r && verdict.state == cms::Verdict::State::none)
    check(std::move(r), "open it anyway with --allow-unsigned, if you trust how it reached you");
  if (!r && verdict.state == cms::Verdict::State::bad && trust.anchors.empty() && !trust.expected)
    check(std::move(r), "configure the signer's CA with --ca-file, or name the signer with -i");
  uint64_t n = check(std::move(r));
  if (verdict.state == cms::Verdict::State::none)
    ctx.warn("the file is not signed: nothing shows who made it or that it is unchanged");
  if (file) {
    check(file->commit());
  } else {
    if (::lseek(spool.get(), 0, SEEK_SET) != 0)
      fail_with(Errc::io, "the spool file: cannot seek: " + errno_text());
    Bytes buf(256 << 10);
    for (;;) {
      size_t k = check(fs::read_some(spool.get(), buf, "the spool file"));
      if (k == 0)
        break;
      check(fs::write_all(out.fd, {buf.data(), k}, out.name));
    }
  }
  ctx.status("OPENED", "cms " + std::to_string(n));
  ctx.debug("opened " + human_size(n) + " (cms)");
  return kExitOk;
}

}  // namespace esession::cli
