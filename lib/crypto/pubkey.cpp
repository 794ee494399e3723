#include "crypto/pubkey.hpp"

#include <openssl/core_names.h>
#include <openssl/dsa.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <cstring>

namespace esession {

std::string_view key_type_name(KeyType t) {
  switch (t) {
    case KeyType::rsa:
      return "rsa";
    case KeyType::dsa:
      return "dsa";
    case KeyType::ed25519:
      return "ed25519";
  }
  return "?";
}

namespace {

Result<KeyType> key_type_of(EVP_PKEY* k) {
  if (EVP_PKEY_is_a(k, "RSA"))
    return KeyType::rsa;
  if (EVP_PKEY_is_a(k, "DSA"))
    return KeyType::dsa;
  if (EVP_PKEY_is_a(k, "ED25519"))
    return KeyType::ed25519;
  return fail(Errc::unsupported, "only RSA, DSA and Ed25519 signature keys are supported");
}

// from_params builds a public key of |type| ("RSA", "DSA") from an OSSL_PARAM list.
Result<UniquePtr<EVP_PKEY>> from_params(const char* type, OSSL_PARAM* params) {
  UniquePtr<EVP_PKEY_CTX> ctx =
      alloc_or_die(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), "EVP_PKEY_CTX");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) <= 0)
    return fail(Errc::malformed, std::string("invalid ") + type + " public key");
  return UniquePtr<EVP_PKEY>(raw);
}

bool is_odd(const BigNum& v) {
  return BN_is_odd(v.get()) == 1;
}

// mod_exp_is_one returns true iff b^e mod m == 1.
bool mod_exp_is_one(const BigNum& b, const BigNum& e, const BigNum& m) {
  UniquePtr<BN_CTX> ctx = alloc_or_die(BN_CTX_new(), "BN_CTX");
  BigNum r;
  if (!BN_mod_exp(r.get(), b.get(), e.get(), m.get(), ctx.get()))
    return false;
  return BN_is_one(r.get()) == 1;
}

}  // namespace

std::string_view sign_alg_uri(SignAlg a) {
  switch (a) {
    case SignAlg::rsa_sha256:
      return "http://www.w3.org/2000/09/xmldsig#rsa-sha256";
    case SignAlg::dsa_sha256:
      return "http://www.w3.org/2000/09/xmldsig#dsa-sha256";
    case SignAlg::ed25519:
      return "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed25519";
  }
  return {};
}

std::optional<SignAlg> sign_alg_from_uri(std::string_view uri) {
  if (uri == "http://www.w3.org/2000/09/xmldsig#rsa-sha256" ||
      uri == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" || uri == "rsa")
    return SignAlg::rsa_sha256;
  if (uri == "http://www.w3.org/2000/09/xmldsig#dsa-sha256" ||
      uri == "http://www.w3.org/2009/xmldsig11#dsa-sha256" || uri == "dsa")
    return SignAlg::dsa_sha256;
  if (uri == "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed25519")
    return SignAlg::ed25519;
  return std::nullopt;
}

KeyType sign_alg_key_type(SignAlg a) {
  switch (a) {
    case SignAlg::rsa_sha256:
      return KeyType::rsa;
    case SignAlg::dsa_sha256:
      return KeyType::dsa;
    case SignAlg::ed25519:
      break;
  }
  return KeyType::ed25519;
}

// ---- PublicKey ------------------------------------------------------------------------------

Result<PublicKey> PublicKey::adopt(UniquePtr<EVP_PKEY> k) {
  ES_ASSIGN(KeyType t, key_type_of(k.get()));
  return PublicKey(std::shared_ptr<EVP_PKEY>(std::move(k)), t);
}

Result<PublicKey> PublicKey::rsa(const BigNum& n, const BigNum& e) {
  if (n.bits() < kMinRsaBits || n.bits() > kMaxRsaBits)
    return fail(Errc::not_acceptable, "RSA modulus of " + std::to_string(n.bits()) +
                                          " bits (accepted: " + std::to_string(kMinRsaBits) +
                                          " to " + std::to_string(kMaxRsaBits) + ")");
  if (!is_odd(n) || !is_odd(e) || BN_is_one(e.get()) || e.cmp(n) >= 0)
    return fail(Errc::malformed, "invalid RSA public key");
  UniquePtr<OSSL_PARAM_BLD> bld = alloc_or_die(OSSL_PARAM_BLD_new(), "OSSL_PARAM_BLD");
  if (!OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()))
    die_out_of_memory("OSSL_PARAM_BLD");
  UniquePtr<OSSL_PARAM> params = alloc_or_die(OSSL_PARAM_BLD_to_param(bld.get()), "OSSL_PARAM");
  ES_ASSIGN(UniquePtr<EVP_PKEY> k, from_params("RSA", params.get()));
  return adopt(std::move(k));
}

Result<PublicKey> PublicKey::dsa(const BigNum& p, const BigNum& q, const BigNum& g,
                                 const BigNum& y) {
  if (p.bits() < kMinDsaBits || p.bits() > kMaxDsaBits)
    return fail(Errc::not_acceptable, "DSA prime of " + std::to_string(p.bits()) +
                                          " bits (accepted: " + std::to_string(kMinDsaBits) +
                                          " to " + std::to_string(kMaxDsaBits) + ")");
  if (q.bits() != 224 && q.bits() != 256)
    return fail(Errc::not_acceptable, "DSA subgroup order must have 224 or 256 bits");
  // p and q odd, q | p-1, 1 < g < p with g^q = 1, 1 < y < p with y^q = 1.
  BigNum pm1;
  UniquePtr<BN_CTX> ctx = alloc_or_die(BN_CTX_new(), "BN_CTX");
  BigNum rem;
  if (!BN_sub(pm1.get(), p.get(), BN_value_one()) ||
      !BN_mod(rem.get(), pm1.get(), q.get(), ctx.get()))
    return fail(Errc::internal, "bignum arithmetic failed");
  auto in_range = [&](const BigNum& v) {
    return BN_cmp(v.get(), BN_value_one()) > 0 && v.cmp(p) < 0;
  };
  if (!is_odd(p) || !is_odd(q) || !BN_is_zero(rem.get()) || !in_range(g) || !in_range(y) ||
      !mod_exp_is_one(g, q, p) || !mod_exp_is_one(y, q, p))
    return fail(Errc::malformed, "invalid DSA public key");
  UniquePtr<OSSL_PARAM_BLD> bld = alloc_or_die(OSSL_PARAM_BLD_new(), "OSSL_PARAM_BLD");
  if (!OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_FFC_P, p.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_FFC_Q, q.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_FFC_G, g.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, y.get()))
    die_out_of_memory("OSSL_PARAM_BLD");
  UniquePtr<OSSL_PARAM> params = alloc_or_die(OSSL_PARAM_BLD_to_param(bld.get()), "OSSL_PARAM");
  ES_ASSIGN(UniquePtr<EVP_PKEY> k, from_params("DSA", params.get()));
  return adopt(std::move(k));
}

Result<PublicKey> PublicKey::ed25519(ByteView raw) {
  if (raw.size() != 32)
    return fail(Errc::malformed, "an Ed25519 public key is 32 bytes");
  UniquePtr<EVP_PKEY> k(
      EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr, raw.data(), raw.size()));
  if (!k)
    return fail(Errc::malformed, "invalid Ed25519 public key");
  return adopt(std::move(k));
}

Bytes PublicKey::raw() const {
  if (m_type != KeyType::ed25519)
    return {};
  Bytes out(32);
  size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(m_key.get(), out.data(), &len) != 1 || len != 32)
    return {};
  return out;
}

Result<PublicKey> PublicKey::from_pem(std::string_view pem) {
  UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  UniquePtr<EVP_PKEY> k(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!k)
    return fail(Errc::malformed, "not a PEM public key");
  return from_evp(k.get());
}

Result<PublicKey> PublicKey::from_der(ByteView der) {
  const unsigned char* p = der.data();
  UniquePtr<EVP_PKEY> k(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (!k || p != der.data() + der.size())
    return fail(Errc::malformed, "not a DER public key");
  return from_evp(k.get());
}

Result<PublicKey> PublicKey::from_evp(EVP_PKEY* k) {
  if (!k || EVP_PKEY_up_ref(k) != 1)
    return fail(Errc::internal, "no key");
  ES_ASSIGN(PublicKey pk, adopt(UniquePtr<EVP_PKEY>(k)));
  // Re-validate through the component constructors: a file is no more trusted than the wire.
  if (pk.type() == KeyType::rsa)
    return rsa(pk.component(OSSL_PKEY_PARAM_RSA_N), pk.component(OSSL_PKEY_PARAM_RSA_E));
  if (pk.type() == KeyType::ed25519)
    return ed25519(pk.raw());
  return dsa(pk.component(OSSL_PKEY_PARAM_FFC_P), pk.component(OSSL_PKEY_PARAM_FFC_Q),
             pk.component(OSSL_PKEY_PARAM_FFC_G), pk.component(OSSL_PKEY_PARAM_PUB_KEY));
}

int PublicKey::bits() const {
  return EVP_PKEY_get_bits(m_key.get());
}

BigNum PublicKey::component(const char* ossl_param) const {
  BIGNUM* bn = nullptr;
  if (!EVP_PKEY_get_bn_param(m_key.get(), ossl_param, &bn))
    return BigNum();
  return BigNum(UniquePtr<BIGNUM>(bn));
}

std::string PublicKey::pem() const {
  UniquePtr<BIO> bio = alloc_or_die(BIO_new(BIO_s_mem()), "BIO");
  if (!PEM_write_bio_PUBKEY(bio.get(), m_key.get()))
    return {};
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Bytes PublicKey::der() const {
  int n = i2d_PUBKEY(m_key.get(), nullptr);
  if (n <= 0)
    return {};
  Bytes out(static_cast<size_t>(n));
  uint8_t* p = out.data();
  i2d_PUBKEY(m_key.get(), &p);
  return out;
}

bool PublicKey::operator==(const PublicKey& o) const {
  return EVP_PKEY_eq(m_key.get(), o.m_key.get()) == 1;
}

Status PublicKey::verify(SignAlg a, ByteView message, ByteView sig) const {
  if (!can_verify(a))
    return fail(Errc::auth_failed, "the signature algorithm does not match the key type");
  Bytes der;
  ByteView to_check = sig;
  if (a == SignAlg::dsa_sha256) {
    // r | s, each as long as q, to the DER SEQUENCE OpenSSL verifies.
    size_t qlen = static_cast<size_t>(BN_num_bytes(component(OSSL_PKEY_PARAM_FFC_Q).get()));
    if (sig.size() != 2 * qlen)
      return fail(Errc::auth_failed, "DSA signature of the wrong length");
    UniquePtr<DSA_SIG> ds = alloc_or_die(DSA_SIG_new(), "DSA_SIG");
    UniquePtr<BIGNUM> r =
        alloc_or_die(BN_bin2bn(sig.data(), static_cast<int>(qlen), nullptr), "BIGNUM");
    UniquePtr<BIGNUM> s =
        alloc_or_die(BN_bin2bn(sig.data() + qlen, static_cast<int>(qlen), nullptr), "BIGNUM");
    if (!DSA_SIG_set0(ds.get(), r.get(), s.get()))
      return fail(Errc::internal, "DSA signature decoding failed");
    (void)r.release();  // |ds| owns them now
    (void)s.release();
    int n = i2d_DSA_SIG(ds.get(), nullptr);
    if (n <= 0)
      return fail(Errc::auth_failed, "DSA signature does not verify");
    der.resize(static_cast<size_t>(n));
    uint8_t* p = der.data();
    i2d_DSA_SIG(ds.get(), &p);
    to_check = view(der);
  } else if (sig.size() != static_cast<size_t>(EVP_PKEY_get_size(m_key.get()))) {
    return fail(Errc::auth_failed, "signature of the wrong length");
  }
  const char* md_name = a == SignAlg::ed25519 ? nullptr : "SHA256";
  UniquePtr<EVP_MD_CTX> md = alloc_or_die(EVP_MD_CTX_new(), "EVP_MD_CTX");
  if (EVP_DigestVerifyInit_ex(md.get(), nullptr, md_name, nullptr, nullptr, m_key.get(), nullptr) <=
      0)
    return fail(Errc::internal, "signature verification could not start");
  if (EVP_DigestVerify(md.get(), to_check.data(), to_check.size(), message.data(),
                       message.size()) != 1)
    return fail(Errc::auth_failed, "signature does not verify");
  return {};
}

// ---- PrivateKey -----------------------------------------------------------------------------

Result<PrivateKey> PrivateKey::adopt(UniquePtr<EVP_PKEY> owned) {
  EVP_PKEY* k = owned.get();
  std::shared_ptr<EVP_PKEY> key(std::move(owned));
  ES_ASSIGN(KeyType t, key_type_of(k));
  // The public half, through the validating constructors.
  auto get = [&](const char* name) {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(k, name, &bn);
    return bn ? BigNum(UniquePtr<BIGNUM>(bn)) : BigNum();
  };
  Result<PublicKey> pub = fail(Errc::internal, "no public key");
  if (t == KeyType::rsa) {
    pub = PublicKey::rsa(get(OSSL_PKEY_PARAM_RSA_N), get(OSSL_PKEY_PARAM_RSA_E));
  } else if (t == KeyType::dsa) {
    pub = PublicKey::dsa(get(OSSL_PKEY_PARAM_FFC_P), get(OSSL_PKEY_PARAM_FFC_Q),
                         get(OSSL_PKEY_PARAM_FFC_G), get(OSSL_PKEY_PARAM_PUB_KEY));
  } else {
    Bytes raw(32);
    size_t len = raw.size();
    if (EVP_PKEY_get_raw_public_key(k, raw.data(), &len) != 1 || len != 32)
      return fail(Errc::internal, "Ed25519 public key extraction failed");
    pub = PublicKey::ed25519(raw);
  }
  if (!pub)
    return pub.error();
  return PrivateKey(std::move(key), t, std::move(pub).value());
}

Result<PrivateKey> PrivateKey::generate_rsa(int bits) {
  UniquePtr<EVP_PKEY> k(EVP_RSA_gen(static_cast<unsigned>(bits)));
  if (!k)
    return fail(Errc::internal, "RSA key generation failed");
  return adopt(std::move(k));
}

Result<PrivateKey> PrivateKey::generate_dsa(int pbits, int qbits) {
  UniquePtr<EVP_PKEY_CTX> pctx =
      alloc_or_die(EVP_PKEY_CTX_new_from_name(nullptr, "DSA", nullptr), "EVP_PKEY_CTX");
  EVP_PKEY* params = nullptr;
  if (EVP_PKEY_paramgen_init(pctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_dsa_paramgen_bits(pctx.get(), pbits) <= 0 ||
      EVP_PKEY_CTX_set_dsa_paramgen_q_bits(pctx.get(), qbits) <= 0 ||
      EVP_PKEY_paramgen(pctx.get(), &params) <= 0)
    return fail(Errc::internal, "DSA parameter generation failed");
  UniquePtr<EVP_PKEY> par(params);
  UniquePtr<EVP_PKEY_CTX> kctx =
      alloc_or_die(EVP_PKEY_CTX_new_from_pkey(nullptr, par.get(), nullptr), "EVP_PKEY_CTX");
  EVP_PKEY* k = nullptr;
  if (EVP_PKEY_keygen_init(kctx.get()) <= 0 || EVP_PKEY_keygen(kctx.get(), &k) <= 0)
    return fail(Errc::internal, "DSA key generation failed");
  return adopt(UniquePtr<EVP_PKEY>(k));
}

Result<PrivateKey> PrivateKey::generate_ed25519() {
  UniquePtr<EVP_PKEY> k(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!k)
    return fail(Errc::internal, "Ed25519 key generation failed");
  return adopt(std::move(k));
}

namespace {

// PassCb hands OpenSSL the passphrase, or refuses (and notes it was asked) when there is none.
struct PassCb {
  std::optional<ByteView> pass;
  bool asked = false;
  static int cb(char* buf, int size, int, void* u) {
    auto* self = static_cast<PassCb*>(u);
    self->asked = true;
    if (!self->pass || self->pass->size() > static_cast<size_t>(size))
      return -1;
    std::memcpy(buf, self->pass->data(), self->pass->size());
    return static_cast<int>(self->pass->size());
  }
};

}  // namespace

bool PrivateKey::is_encrypted_pem(std::string_view pem) {
  return pem.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string_view::npos ||
         pem.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos;
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem, std::optional<ByteView> passphrase) {
  UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PassCb pc{passphrase};
  UniquePtr<EVP_PKEY> k(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, PassCb::cb, &pc)
                            : nullptr);
  ERR_clear_error();
  if (!k) {
    if (is_encrypted_pem(pem) && !passphrase)
      return fail(Errc::not_acceptable, "the private key needs a passphrase");
    if (is_encrypted_pem(pem))
      return fail(Errc::auth_failed, "wrong passphrase for the private key");
    return fail(Errc::malformed, "not a PEM private key");
  }
  return adopt(std::move(k));
}

Result<PrivateKey> PrivateKey::from_evp(EVP_PKEY* k) {
  if (!k || EVP_PKEY_up_ref(k) != 1)
    return fail(Errc::internal, "no key");
  return adopt(UniquePtr<EVP_PKEY>(k));
}

Result<SecretBytes> PrivateKey::pem_encrypted(ByteView passphrase) const {
  uint8_t salt[16];
  if (RAND_bytes(salt, sizeof salt) != 1)
    return fail(Errc::internal, "no randomness for the salt");
  UniquePtr<X509_ALGOR> pbe(PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), salt, sizeof salt, nullptr,
                                                  uint64_t{1} << 14, 8, 1));
  UniquePtr<PKCS8_PRIV_KEY_INFO> p8(pbe ? EVP_PKEY2PKCS8(m_key.get()) : nullptr);
  UniquePtr<X509_SIG> enc(p8 ? PKCS8_set0_pbe(reinterpret_cast<const char*>(passphrase.data()),
                                              static_cast<int>(passphrase.size()), p8.get(),
                                              pbe.get())
                             : nullptr);
  if (!enc)
    return fail(Errc::internal, "encrypting the private key failed");
  (void)pbe.release();  // |enc| owns it now
  UniquePtr<BIO> bio = alloc_or_die(BIO_new(BIO_s_secmem()), "BIO");
  if (!PEM_write_bio_PKCS8(bio.get(), enc.get()))
    return fail(Errc::internal, "encrypting the private key failed");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return secret(ByteView(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n)));
}

SecretBytes PrivateKey::pem() const {
  UniquePtr<BIO> bio = alloc_or_die(BIO_new(BIO_s_secmem()), "BIO");
  if (!PEM_write_bio_PKCS8PrivateKey(bio.get(), m_key.get(), nullptr, nullptr, 0, nullptr, nullptr))
    return {};
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return secret(ByteView(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n)));
}

Result<Bytes> PrivateKey::sign(SignAlg a, ByteView message) const {
  if (sign_alg_key_type(a) != m_type)
    return fail(Errc::unsupported, "this key cannot make " + std::string(sign_alg_uri(a)));
  UniquePtr<EVP_MD_CTX> md = alloc_or_die(EVP_MD_CTX_new(), "EVP_MD_CTX");
  size_t len = 0;
  const char* md_name = a == SignAlg::ed25519 ? nullptr : "SHA256";
  if (EVP_DigestSignInit_ex(md.get(), nullptr, md_name, nullptr, nullptr, m_key.get(), nullptr) <=
          0 ||
      EVP_DigestSign(md.get(), nullptr, &len, message.data(), message.size()) <= 0)
    return fail(Errc::internal, "signing failed");
  Bytes sig(len);
  if (EVP_DigestSign(md.get(), sig.data(), &len, message.data(), message.size()) <= 0)
    return fail(Errc::internal, "signing failed");
  sig.resize(len);
  if (a != SignAlg::dsa_sha256)
    return sig;
  // DER SEQUENCE { r, s } to r | s, each as long as q.
  const uint8_t* p = sig.data();
  UniquePtr<DSA_SIG> ds(d2i_DSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
  if (!ds)
    return fail(Errc::internal, "DSA signature encoding failed");
  const BIGNUM *r = nullptr, *s = nullptr;
  DSA_SIG_get0(ds.get(), &r, &s);
  size_t qlen = static_cast<size_t>(BN_num_bytes(m_public.component(OSSL_PKEY_PARAM_FFC_Q).get()));
  Bytes out(2 * qlen);
  bool ok = BN_bn2binpad(r, out.data(), static_cast<int>(qlen)) >= 0 &&
            BN_bn2binpad(s, out.data() + qlen, static_cast<int>(qlen)) >= 0;
  if (!ok)
    return fail(Errc::internal, "DSA signature encoding failed");
  return out;
}

}  // namespace esession
