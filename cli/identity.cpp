#include "identity.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "crypto/x509.hpp"
#include "openpgp/openpgp.hpp"
#include "util/fs.hpp"

namespace esession::cli {

SecretBytes read_secret(int fd, const std::string& prompt, const std::string& what,
                        const std::string& hint) {
  SecretBytes out;
  if (fd >= 0) {
    // One line, byte by byte, so that the rest of the fd stays for whoever reads it next.
    for (;;) {
      uint8_t c;
      ssize_t n = ::read(fd, &c, 1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        fail_with(Errc::io, "reading the " + what + ": " + std::strerror(errno));
      if (n == 0 || c == '\n')
        break;
      out.push_back(c);
      if (out.size() > 4096)
        fail_with(Errc::malformed, "the " + what + " is longer than 4096 bytes");
    }
  } else {
    // The terminal, with echo off (getpass is obsolete but does exactly this).
    FILE* tty = std::fopen("/dev/tty", "r+");
    if (!tty)
      fail_with(Errc::io, "no terminal to read the " + what + " from", hint);
    std::fclose(tty);
    char* p = ::getpass(prompt.c_str());
    if (!p)
      fail_with(Errc::io, "could not read the " + what + " from the terminal");
    out.assign(p, p + std::strlen(p));
    cleanse(p, std::strlen(p));
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  if (out.empty())
    fail_with(Errc::malformed, "the " + what + " is empty");
  return out;
}

SecretBytes read_passphrase(Context& ctx, const std::string& prompt, bool confirm) {
  int fd = ctx.globals().passphrase_fd;
  const std::string hint = "give it on a terminal, or with --passphrase-fd N";
  SecretBytes p = read_secret(fd, "esession: " + prompt + ": ", "passphrase", hint);
  if (confirm && fd < 0) {
    SecretBytes again = read_secret(fd, "esession: again: ", "passphrase", hint);
    if (!ct_equal(view(p), view(again)))
      fail_with(Errc::malformed, "the passphrases differ");
  }
  if (confirm) {
    // A new passphrase: characters, not bytes (a UTF-8 continuation byte starts none).
    size_t chars = 0;
    for (uint8_t b : p)
      chars += (b & 0xc0) != 0x80;
    if (chars < kShortPassphrase)
      ctx.warn("the passphrase is shorter than " + std::to_string(kShortPassphrase) +
               " characters: it is easy to guess, and the key file only as safe as it");
  }
  return p;
}

PrivateKey load_private_key(Context& ctx, const KeyRecord& k) {
  if (!k.path)
    fail_with(Errc::unsupported,
              "key " + group_hex(k.fingerprint.substr(0, 16)) + " stays in GnuPG",
              "use gpg to export or change it");
  SecretBytes pem = check(ctx.store().read_key_file(*k.path));
  std::string_view text(reinterpret_cast<const char*>(pem.data()), pem.size());
  if (!PrivateKey::is_encrypted_pem(text))
    return check(PrivateKey::from_pem(text));
  SecretBytes pass =
      read_passphrase(ctx, "passphrase for key " + group_hex(k.fingerprint.substr(0, 16)));
  return check(PrivateKey::from_pem(text, view(pass)));
}

namespace {

// CertSigner signs with the private key of an X.509 identity and presents its chain.
class CertSigner : public Signer {
 public:
  CertSigner(PrivateKey k, Credential c) : m_key(std::move(k)), m_cred(std::move(c)) {}
  const PublicKey& public_key() const override { return m_key.public_key(); }
  bool can_sign(SignAlg a) const override { return sign_alg_key_type(a) == m_key.type(); }
  Result<Bytes> sign(SignAlg a, ByteView message) const override { return m_key.sign(a, message); }
  const Credential* credential() const override { return &m_cred; }

 private:
  PrivateKey m_key;
  Credential m_cred;
};

}  // namespace

std::unique_ptr<Signer> signer_for(Context& ctx, const KeyRecord& k) {
  if (k.kind == KeyKind::openpgp) {
    // The agent asks for a passphrase with its own pinentry, unless --passphrase-fd gives one.
    std::string fpr = string_of(view(k.data));
    std::optional<SecretBytes> pass;
    if (ctx.globals().passphrase_fd >= 0)
      pass = read_passphrase(ctx, "passphrase for OpenPGP key " + fpr);
    auto gpg = check(openpgp::GnuPG::open(ctx.globals().gnupg_home));
    auto signer = check(openpgp::OpenPgpSigner::open(std::move(gpg), fpr, std::move(pass)));
    if (fingerprint_of(signer.public_key()) != k.fingerprint)
      fail_with(Errc::wrong_state, "the OpenPGP key " + fpr + " in GnuPG is not the one bound",
                "bind it again with: esession key import --openpgp " + fpr);
    return std::make_unique<openpgp::OpenPgpSigner>(std::move(signer));
  }
  PrivateKey key = load_private_key(ctx, k);
  if (k.kind != KeyKind::x509)
    return std::make_unique<KeySigner>(std::move(key));
  Credential c;
  c.kind = CredentialKind::x509;
  for (auto& cert : check(Certificate::all_from_pem(string_of(view(k.data)))))
    c.items.push_back(cert.der());
  return std::make_unique<CertSigner>(std::move(key), std::move(c));
}

std::unique_ptr<Signer> default_signer(Context& ctx) {
  const Account& a = ctx.account();
  if (!a.default_key)
    return nullptr;
  auto k = check(ctx.store().get_key_by_id(*a.default_key));
  if (!k)
    return nullptr;
  return signer_for(ctx, *k);
}

std::unique_ptr<Signer> required_signer(Context& ctx, const std::string& why) {
  std::unique_ptr<Signer> s = default_signer(ctx);
  if (!s)
    fail_with(Errc::unsupported, why, "make one with: esession key generate");
  return s;
}

std::string read_small_file(const std::string& path, const std::string& what) {
  return check(fs::read_small_file(path, what));
}

std::string ca_file(Context& ctx) {
  std::string path = ctx.globals().ca_file;
  if (path.empty()) {
    std::string home_ca = ctx.home() + "/ca.pem";
    if (::access(home_ca.c_str(), F_OK) != 0)
      return {};
    path = home_ca;
  }
  return path;
}

std::vector<Certificate> ca_anchors(Context& ctx) {
  std::string path = ca_file(ctx);
  if (path.empty())
    return {};
  return check(read_ca_bundle(path), "--ca-file takes a PEM file of CA certificates");
}

PkiOptions pki_options(Context& ctx) {
  return PkiOptions{ca_file(ctx), ctx.globals().gnupg_home};
}

}  // namespace esession::cli
