#include "crypto/x509.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>

#include "crypto/hash.hpp"
#include "util/jid.hpp"

namespace esession {

namespace {

// PemBlock holds what PEM_read_bio_ex returns. The block may be a private key, so it lives in
// memory that is wiped when freed.
struct PemBlock {
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  ~PemBlock() {
    OPENSSL_secure_free(name);
    OPENSSL_secure_free(header);
    OPENSSL_secure_clear_free(data, static_cast<size_t>(len));
  }
};

std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

// name_string prints |n| in RFC 2253 form. UTF-8 is left as it is rather than escaped to \XX,
// so that names stay readable; control characters are still escaped.
std::string name_string(const X509_NAME* n) {
  UniquePtr<BIO> bio = alloc_or_die(BIO_new(BIO_s_mem()), "BIO");
  if (!n || X509_NAME_print_ex(bio.get(), n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0)
    return {};
  return bio_string(bio.get());
}

// unix_time converts a certificate time (always UTC) to Unix seconds, or 0 if it does not parse.
int64_t unix_time(const ASN1_TIME* t) {
  struct tm tm = {};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
    return 0;
  using namespace std::chrono;
  sys_days d = year_month_day(year(tm.tm_year + 1900), month(static_cast<unsigned>(tm.tm_mon + 1)),
                              day(static_cast<unsigned>(tm.tm_mday)));
  return static_cast<int64_t>(d.time_since_epoch().count()) * 86400 + tm.tm_hour * 3600 +
         tm.tm_min * 60 + tm.tm_sec;
}

// date_string formats Unix time |t| as an ISO 8601 date (UTC).
std::string date_string(int64_t t) {
  using namespace std::chrono;
  year_month_day ymd{floor<days>(sys_seconds{seconds{t}})};
  char buf[24];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

// printable replaces control characters in |s|: names from a peer's certificate end up on the
// user's terminal.
std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  }
  return out;
}

// san_strings returns the subjectAltName entries of GEN_* |type|. For GEN_OTHERNAME, only
// id-on-xmppAddr entries in a UTF8String count. A certificate with more than one subjectAltName
// extension (forbidden by RFC 5280 §4.2) gives none.
std::vector<std::string> san_strings(X509* x, int type) {
  std::vector<std::string> out;
  UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
  if (!names)
    return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != type)
      continue;
    const ASN1_STRING* s = nullptr;
    if (type == GEN_OTHERNAME) {
      const OTHERNAME* on = gn->d.otherName;
      if (OBJ_obj2nid(on->type_id) != NID_XmppAddr || on->value->type != V_ASN1_UTF8STRING)
        continue;
      s = on->value->value.utf8string;
    } else {
      s = gn->d.ia5;  // dNSName and uniformResourceIdentifier are both IA5Strings
    }
    std::string v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                  static_cast<size_t>(ASN1_STRING_length(s)));
    // A NUL inside a name is the classic trick to make "a.com\0.evil.com" print as "a.com".
    if (v.find('\0') == std::string::npos)
      out.push_back(std::move(v));
  }
  return out;
}

bool is_supported_key(EVP_PKEY* k) {
  return EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "DSA") || EVP_PKEY_is_a(k, "ED25519");
}

}  // namespace

// ---- Certificate ----------------------------------------------------------------------------

Result<Certificate> Certificate::from_x509(X509* x) {
  if (!x || X509_up_ref(x) != 1)
    return fail(Errc::internal, "no certificate");
  return Certificate(std::shared_ptr<X509>(UniquePtr<X509>(x)));
}

Result<Certificate> Certificate::from_der(ByteView der) {
  const unsigned char* p = der.data();
  UniquePtr<X509> x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!x || p != der.data() + der.size())
    return fail(Errc::malformed, "not a DER certificate");
  return Certificate(std::shared_ptr<X509>(std::move(x)));
}

Result<std::vector<Certificate>> Certificate::all_from_pem(std::string_view pem) {
  if (pem.size() > INT_MAX)
    return fail(Errc::malformed, "the PEM text is too large");
  // An empty view may have no data pointer, which BIO_new_mem_buf refuses.
  UniquePtr<BIO> bio = alloc_or_die(
      BIO_new_mem_buf(pem.empty() ? "" : pem.data(), static_cast<int>(pem.size())), "BIO");
  ERR_clear_error();
  std::vector<Certificate> out;
  for (;;) {
    PemBlock b;
    if (PEM_read_bio_ex(bio.get(), &b.name, &b.header, &b.data, &b.len,
                        PEM_FLAG_SECURE | PEM_FLAG_EAY_COMPATIBLE) != 1) {
      // Running out of blocks is the normal end; anything else is a damaged block, which we
      // refuse rather than return a chain with a certificate missing.
      bool at_end = ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE;
      ERR_clear_error();
      if (!at_end)
        return fail(Errc::malformed, "a PEM block does not decode");
      break;
    }
    if (std::strcmp(b.name, PEM_STRING_X509) != 0)
      continue;
    ES_ASSIGN(Certificate c, from_der(ByteView(b.data, static_cast<size_t>(b.len))));
    out.push_back(std::move(c));
  }
  if (out.empty())
    return fail(Errc::malformed, "no certificate in the PEM text");
  return out;
}

Bytes Certificate::der() const {
  int n = i2d_X509(m_cert.get(), nullptr);
  if (n <= 0)
    return {};
  Bytes out(static_cast<size_t>(n));
  uint8_t* p = out.data();
  i2d_X509(m_cert.get(), &p);
  return out;
}

std::string Certificate::pem() const {
  UniquePtr<BIO> bio = alloc_or_die(BIO_new(BIO_s_mem()), "BIO");
  if (!PEM_write_bio_X509(bio.get(), m_cert.get()))
    return {};
  return bio_string(bio.get());
}

Result<PublicKey> Certificate::public_key() const {
  EVP_PKEY* k = X509_get0_pubkey(m_cert.get());
  ERR_clear_error();
  if (!k)
    return fail(Errc::malformed, "the certificate's public key does not parse");
  if (!is_supported_key(k)) {
    const char* type = EVP_PKEY_get0_type_name(k);
    return fail(Errc::unsupported, std::string("the certificate has a key of type ") +
                                       (type ? type : "unknown") +
                                       ": esession identities are RSA, DSA or Ed25519");
  }
  return PublicKey::from_evp(k);
}

std::string Certificate::subject() const {
  return name_string(X509_get_subject_name(m_cert.get()));
}

std::string Certificate::issuer() const {
  return name_string(X509_get_issuer_name(m_cert.get()));
}

int64_t Certificate::not_before() const {
  return unix_time(X509_get0_notBefore(m_cert.get()));
}

int64_t Certificate::not_after() const {
  return unix_time(X509_get0_notAfter(m_cert.get()));
}

std::vector<std::string> Certificate::xmpp_addrs() const {
  return san_strings(m_cert.get(), GEN_OTHERNAME);
}

std::vector<std::string> Certificate::dns_names() const {
  return san_strings(m_cert.get(), GEN_DNS);
}

std::vector<std::string> Certificate::uris() const {
  return san_strings(m_cert.get(), GEN_URI);
}

Bytes Certificate::sha256() const {
  return digest(HashAlg::sha256, der());
}

// ---- Loading an identity --------------------------------------------------------------------

// private_key_block returns the one private key block of |pem| ("PRIVATE KEY", "ENCRYPTED
// PRIVATE KEY", "RSA PRIVATE KEY", ...), including its BEGIN and END lines.
Result<std::string_view> private_key_block(std::string_view pem) {
  constexpr std::string_view kBegin = "-----BEGIN ";
  std::optional<std::string_view> found;
  size_t pos = 0;
  while ((pos = pem.find(kBegin, pos)) != std::string_view::npos) {
    size_t label_at = pos + kBegin.size();
    size_t label_end = pem.find("-----", label_at);
    if (label_end == std::string_view::npos)
      break;
    std::string_view label = pem.substr(label_at, label_end - label_at);
    if (!label.ends_with("PRIVATE KEY")) {
      pos = label_end;
      continue;
    }
    std::string end_line = "-----END " + std::string(label) + "-----";
    size_t end_at = pem.find(end_line, label_end);
    if (end_at == std::string_view::npos)
      return fail(Errc::malformed, "the private key in the PEM text has no END line");
    if (found)
      return fail(Errc::malformed, "more than one private key in the PEM text");
    found = pem.substr(pos, end_at + end_line.size() - pos);
    pos = end_at + end_line.size();
  }
  if (!found)
    return fail(Errc::malformed, "no private key in the PEM text");
  return *found;
}

namespace {

// make_identity checks that |key| is the key of the leaf, chain[0].
Result<X509Identity> make_identity(std::vector<Certificate> chain, PrivateKey key) {
  ES_ASSIGN(PublicKey leaf_key, chain.front().public_key());
  if (key.public_key() != leaf_key)
    return fail(Errc::malformed, "the key does not belong to the certificate");
  return X509Identity{std::move(chain), std::move(key)};
}

Result<X509Identity> identity_from_pem(std::string_view pem, std::optional<ByteView> passphrase) {
  ES_ASSIGN(std::vector<Certificate> chain, Certificate::all_from_pem(pem));
  // Refuse an unusable certificate before asking the user for a passphrase.
  ES_TRY(chain.front().public_key());
  ES_ASSIGN(std::string_view key_pem, private_key_block(pem));
  ES_ASSIGN(PrivateKey key, PrivateKey::from_pem(key_pem, passphrase));
  return make_identity(std::move(chain), std::move(key));
}

// issuing_order returns |leaf| followed by |pool| sorted so that each certificate issued the one
// before it: PKCS#12 keeps its certificates in no defined order. Certificates off that path go
// last, in their original order.
std::vector<Certificate> issuing_order(const Certificate& leaf, std::vector<Certificate> pool) {
  std::vector<Certificate> out{leaf};
  for (;;) {
    X509* last = out.back().get();
    if (X509_check_issued(last, last) == X509_V_OK)
      break;  // self-signed: the top of the path
    auto it = std::find_if(pool.begin(), pool.end(), [&](const Certificate& c) {
      return X509_check_issued(c.get(), last) == X509_V_OK;
    });
    if (it == pool.end())
      break;
    out.push_back(*it);
    pool.erase(it);
  }
  out.insert(out.end(), pool.begin(), pool.end());
  return out;
}

// p12_password picks the password that opens the MAC of |p12|: |given| if there is one, else the
// absent or the empty password (tools differ on which "no password" means). nullptr is a valid
// answer: the absent password.
Result<const char*> p12_password(PKCS12* p12, const char* given) {
  if (!PKCS12_mac_present(p12))
    return given;
  if (given) {
    if (PKCS12_verify_mac(p12, given, -1) != 1)
      return fail(Errc::auth_failed, "wrong passphrase for the PKCS#12 file");
    return given;
  }
  if (PKCS12_verify_mac(p12, nullptr, 0) == 1)
    return nullptr;
  if (PKCS12_verify_mac(p12, "", 0) == 1)
    return "";
  return fail(Errc::not_acceptable, "the PKCS#12 file needs a passphrase");
}

Result<X509Identity> identity_from_pkcs12(PKCS12* p12, std::optional<ByteView> passphrase) {
  SecretBytes pass;
  if (passphrase) {
    // OpenSSL takes the password as a C string; a NUL would silently cut it short.
    if (std::find(passphrase->begin(), passphrase->end(), 0) != passphrase->end())
      return fail(Errc::auth_failed, "a PKCS#12 passphrase cannot contain a NUL byte");
    pass = secret(*passphrase);
    pass.push_back(0);
  }
  const char* given = passphrase ? reinterpret_cast<const char*>(pass.data()) : nullptr;
  Result<const char*> pw = p12_password(p12, given);
  ERR_clear_error();
  if (!pw)
    return pw.error();
  EVP_PKEY* raw_key = nullptr;
  X509* raw_cert = nullptr;
  STACK_OF(X509)* raw_ca = nullptr;
  int parsed = PKCS12_parse(p12, *pw, &raw_key, &raw_cert, &raw_ca);
  ERR_clear_error();
  UniquePtr<EVP_PKEY> key(raw_key);
  UniquePtr<X509> cert(raw_cert);
  UniquePtr<STACK_OF(X509)> ca(raw_ca);
  if (parsed != 1) {
    // Without a MAC, a wrong password shows only as contents that do not decrypt.
    if (!PKCS12_mac_present(p12))
      return fail(passphrase ? Errc::auth_failed : Errc::not_acceptable,
                  "the PKCS#12 file does not open (wrong or missing passphrase?)");
    return fail(Errc::malformed, "the PKCS#12 file does not parse");
  }
  if (!key || !cert)
    return fail(Errc::malformed, "the PKCS#12 file lacks the private key or its certificate");
  ES_ASSIGN(Certificate leaf, Certificate::from_x509(cert.get()));
  std::vector<Certificate> pool;
  for (int i = 0; i < sk_X509_num(ca.get()); ++i) {
    ES_ASSIGN(Certificate c, Certificate::from_x509(sk_X509_value(ca.get(), i)));
    pool.push_back(std::move(c));
  }
  ES_TRY(leaf.public_key());
  ES_ASSIGN(PrivateKey pk, PrivateKey::from_evp(key.get()));
  return make_identity(issuing_order(leaf, std::move(pool)), std::move(pk));
}

}  // namespace

Result<X509Identity> load_x509_identity(ByteView data, std::optional<ByteView> passphrase) {
  // DER PKCS#12 first: it parses exactly or not at all, while PEM may sit among other text.
  const unsigned char* p = data.data();
  UniquePtr<PKCS12> p12(d2i_PKCS12(nullptr, &p, static_cast<long>(data.size())));
  ERR_clear_error();
  if (p12 && p == data.data() + data.size())
    return identity_from_pkcs12(p12.get(), passphrase);
  std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  if (text.find("-----BEGIN ") != std::string_view::npos)
    return identity_from_pem(text, passphrase);
  return fail(Errc::malformed, "neither PEM (certificates and a key) nor a PKCS#12 file");
}

// ---- Checking a peer's chain ----------------------------------------------------------------

namespace {

// verify_failure turns the error X509_verify_cert left in |ctx| into a verdict.
X509Check verify_failure(X509_STORE_CTX* ctx) {
  int err = X509_STORE_CTX_get_error(ctx);
  X509* cert = X509_STORE_CTX_get_current_cert(ctx);
  if (!cert)
    return {X509Verdict::invalid, X509_verify_cert_error_string(err)};
  std::string which = X509_STORE_CTX_get_error_depth(ctx) == 0
                          ? "the certificate"
                          : "the CA certificate " + name_string(X509_get_subject_name(cert));
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return {X509Verdict::expired,
              which + " expired on " + date_string(unix_time(X509_get0_notAfter(cert)))};
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return {X509Verdict::not_yet_valid,
              which + " is not valid before " + date_string(unix_time(X509_get0_notBefore(cert)))};
    // No path to a configured anchor: an issuer is missing, or the path ends at a root that is
    // not configured.
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
      return {X509Verdict::untrusted, "no configured CA issued it (issuer: " +
                                          name_string(X509_get_issuer_name(cert)) + ")"};
    default:
      return {X509Verdict::invalid,
              std::string(X509_verify_cert_error_string(err)) + " (" + which + ")"};
  }
}

// wrong_name explains which names |leaf| has instead of |jid|.
X509Check wrong_name(const Certificate& leaf, std::string_view jid) {
  std::vector<std::string> names = leaf.xmpp_addrs();
  for (auto& u : leaf.uris())
    names.push_back(std::move(u));
  for (auto& d : leaf.dns_names())
    names.push_back(std::move(d));
  if (names.empty())
    return {X509Verdict::wrong_name,
            "the certificate names no XMPP address (its " + leaf.subject() + " does not count)"};
  std::string list;
  constexpr size_t kShown = 3;
  for (size_t i = 0; i < names.size() && i < kShown; ++i)
    list += (i ? ", " : "") + printable(names[i]);
  if (names.size() > kShown)
    list += ", ...";
  return {X509Verdict::wrong_name,
          "the certificate is for " + list + ", not " + printable(bare_jid(jid))};
}

}  // namespace

X509Check check_x509(const std::vector<Certificate>& chain, const std::vector<Certificate>& anchors,
                     std::string_view bare_jid, int64_t now) {
  if (chain.empty() || !chain.front().get())
    return {X509Verdict::invalid, "no certificate"};
  if (anchors.empty())
    return {X509Verdict::untrusted, "no CA bundle is configured"};
  UniquePtr<X509_STORE> store = alloc_or_die(X509_STORE_new(), "X509_STORE");
  UniquePtr<STACK_OF(X509)> untrusted = alloc_or_die(sk_X509_new_null(), "certificate stack");
  UniquePtr<X509_STORE_CTX> ctx = alloc_or_die(X509_STORE_CTX_new(), "X509_STORE_CTX");
  for (const Certificate& a : anchors) {
    if (!a.get() || X509_STORE_add_cert(store.get(), a.get()) != 1)
      return {X509Verdict::invalid, "a configured CA certificate cannot be used"};
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (!chain[i].get() ||
        X509_add_cert(untrusted.get(), chain[i].get(), X509_ADD_FLAG_UP_REF) != 1)
      return {X509Verdict::invalid, "an intermediate certificate cannot be used"};
  }
  const Certificate& leaf = chain.front();
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get()) != 1)
    return {X509Verdict::invalid, "certificate verification could not start"};
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(now));
  // The user may configure an intermediate (their organisation's CA) rather than its root.
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  int verified = X509_verify_cert(ctx.get());
  ERR_clear_error();
  if (verified != 1)
    return verify_failure(ctx.get());

  // Without a keyUsage extension every use is allowed (RFC 5280 §4.2.1.3); with one, it must
  // allow the signatures the leaf's key makes in the negotiation.
  uint32_t usage = X509_get_key_usage(leaf.get());
  if (usage != UINT32_MAX && (usage & KU_DIGITAL_SIGNATURE) == 0)
    return {X509Verdict::invalid, "the certificate's key usage does not allow signatures"};
  if (!x509_names_jid(leaf, bare_jid))
    return wrong_name(leaf, bare_jid);
  STACK_OF(X509)* path = X509_STORE_CTX_get0_chain(ctx.get());
  X509* anchor = sk_X509_value(path, sk_X509_num(path) - 1);
  return {X509Verdict::valid, "issued under " + name_string(X509_get_subject_name(anchor))};
}

// ---- Names ----------------------------------------------------------------------------------

namespace {

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequal_ascii(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

struct JidParts {
  bool has_local;
  std::string_view local;
  std::string_view domain;
};

JidParts split_jid(std::string_view jid) {
  size_t at = jid.find('@');
  if (at == std::string_view::npos)
    return {false, {}, jid};
  return {true, jid.substr(0, at), jid.substr(at + 1)};
}

// cert_names_jid compares localparts exactly and domainparts ignoring ASCII case (RFC 7622 §3.2,
// §3.3: domainparts are case-insensitive, localparts are case-mapped only by the server).
bool cert_names_jid(std::string_view a, std::string_view b) {
  JidParts x = split_jid(a), y = split_jid(b);
  return x.has_local == y.has_local && x.local == y.local && iequal_ascii(x.domain, y.domain);
}

// dns_name_matches applies RFC 6125 §6.4.3 to a dNSName |pattern|: "*." stands for exactly one
// whole label, and is refused right above a single label ("*.org").
bool dns_name_matches(std::string_view pattern, std::string_view domain) {
  if (!pattern.starts_with("*."))
    return iequal_ascii(pattern, domain);
  std::string_view parent = pattern.substr(2);
  size_t dot = domain.find('.');
  return parent.find('.') != std::string_view::npos && dot != std::string_view::npos && dot > 0 &&
         iequal_ascii(domain.substr(dot + 1), parent);
}

}  // namespace

bool x509_names_jid(const Certificate& leaf, std::string_view jid_in) {
  if (!leaf.get())
    return false;
  std::string jid = bare_jid(jid_in);
  JidParts j = split_jid(jid);
  if (j.domain.empty() || (j.has_local && j.local.empty()))
    return false;
  for (const std::string& addr : leaf.xmpp_addrs()) {
    if (cert_names_jid(addr, jid))
      return true;
  }
  constexpr std::string_view kScheme = "xmpp:";
  for (const std::string& uri : leaf.uris()) {
    std::string_view u = uri;
    if (u.size() > kScheme.size() && iequal_ascii(u.substr(0, kScheme.size()), kScheme) &&
        cert_names_jid(u.substr(kScheme.size()), jid))
      return true;
  }
  // A DNS name identifies a server or component, never a user account at that domain.
  if (!j.has_local) {
    for (const std::string& dns : leaf.dns_names()) {
      if (dns_name_matches(dns, j.domain))
        return true;
    }
  }
  return false;
}

}  // namespace esession
