// X.509 material shared by the CMS and S/MIME formats (seal_x509.hpp).
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "identity.hpp"
#include "seal_x509.hpp"

namespace esession::cli {

namespace {

// hex_of keeps the hex digits of |s|, in lower case ("E47A BD37" and "e4:7a:bd:37" alike).
std::string hex_of(std::string_view s) {
  std::string out;
  for (char c : s)
    if (std::isxdigit(static_cast<unsigned char>(c)))
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// identity_from_data is load_identity_file of the contents |data| of |path|.
X509Identity identity_from_data(Context& ctx, const std::string& path, const std::string& data) {
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

int no_passphrase(char*, int, int, void*) {
  return -1;
}

// keyed_from_plain_pem reads PEM certificates (leaf first) and one unencrypted private key,
// checking what load_x509_identity checks: a leaf whose key esession supports and that
// validates (Certificate::public_key), and a private key that is the leaf's. Nothing when the
// text is anything else or a check fails: load_x509_identity then says why.
std::optional<cms::KeyedIdentity> keyed_from_plain_pem(std::string_view text) {
  if (text.empty() || static_cast<uint8_t>(text[0]) == 0x30 ||  // DER: PKCS#12, maybe
      text.find("-----BEGIN ") == std::string_view::npos || PrivateKey::is_encrypted_pem(text))
    return std::nullopt;
  auto chain = Certificate::all_from_pem(text);
  if (!chain || !chain->front().public_key())
    return std::nullopt;
  auto block = private_key_block(text);
  if (!block)
    return std::nullopt;
  UniquePtr<EVP_PKEY> key;
  if (UniquePtr<BIO> b{BIO_new_mem_buf(block->data(), static_cast<int>(block->size()))})
    key.reset(PEM_read_bio_PrivateKey(b.get(), nullptr, no_passphrase, nullptr));
  ERR_clear_error();
  if (!key || EVP_PKEY_eq(key.get(), X509_get0_pubkey(chain->front().get())) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  return cms::KeyedIdentity{std::move(chain).value(), std::move(key)};
}

}  // namespace

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
  return identity_from_data(ctx, path, read_small_file(path, "identity file"));
}

cms::KeyedIdentity load_keyed_identity(Context& ctx, const std::string& path) {
  std::string data = read_small_file(path, "identity file");
  if (auto k = keyed_from_plain_pem(data))
    return std::move(*k);
  return check(cms::keyed(identity_from_data(ctx, path, data)));
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

cms::KeyedIdentity keyed_account_identity(Context& ctx, const std::string& name,
                                          const std::string& hint) {
  return check(cms::keyed(account_identity(ctx, name, hint)));
}

// is_file tells whether |path| names something to read (a file, not the account's key).
bool is_file(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

// ca_anchors reads --ca-file, else <home>/ca.pem if there is one.

void signature_status(Context& ctx, const cms::Verdict& v) {
  switch (v.state) {
    case cms::Verdict::State::good:
      status_signature(ctx, "good", v.signer);
      break;
    case cms::Verdict::State::bad:
      status_signature(ctx, "bad", v.signer);
      break;
    case cms::Verdict::State::none:
      ctx.status("SIGNATURE", {"none"});
      break;
    case cms::Verdict::State::unknown:
      break;
  }
}

}  // namespace esession::cli
