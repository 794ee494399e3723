#include "session/identity.hpp"

#include <openssl/core_names.h>

#include <algorithm>

#include "crypto/openpgp_packet.hpp"
#include "crypto/x509.hpp"
#include "xml/form.hpp"

namespace esession {

namespace {

using xml::Element;

Element text_el(std::string name, std::string text) {
  Element e(std::move(name), std::string(xml::kNsDsig));
  e.add(Element::text_node(std::move(text)));
  return e;
}

// child_values reads the element children of |e|, which must be exactly |names| in order, each
// holding strict Base64 of a big-endian integer.
Result<std::vector<BigNum>> child_values(const Element& e,
                                         std::initializer_list<const char*> names) {
  auto kids = e.element_children();
  if (kids.size() != names.size())
    return fail(Errc::malformed, "<" + e.name + "/> has unexpected children");
  std::vector<BigNum> out;
  size_t i = 0;
  for (const char* n : names) {
    const Element& k = *kids[i++];
    if (k.name != n || !k.element_children().empty())
      return fail(Errc::malformed, "<" + e.name + "/> expects <" + n + "/>");
    ES_ASSIGN(Bytes b, unbase64(k.text_content()));
    if (b.empty())
      return fail(Errc::malformed, std::string("empty <") + n + "/>");
    out.push_back(BigNum::from_bytes(b));
  }
  return out;
}

bool dsig_or_none(const Element& e) {
  return e.ns == xml::kNsDsig || e.ns.empty();
}

}  // namespace

Element key_value(const PublicKey& k) {
  Element kv("KeyValue", std::string(xml::kNsDsig));
  auto b64 = [&](const char* param) { return base64(k.component(param).mpi()); };
  if (k.type() == KeyType::rsa) {
    Element& r = kv.add(Element("RSAKeyValue", std::string(xml::kNsDsig)));
    r.add(text_el("Modulus", b64(OSSL_PKEY_PARAM_RSA_N)));
    r.add(text_el("Exponent", b64(OSSL_PKEY_PARAM_RSA_E)));
  } else if (k.type() == KeyType::ed25519) {
    // Our extension (formats §7): the RFC 8032 encoding of the key.
    kv.add(text_el("Ed25519KeyValue", base64(k.raw())));
  } else {
    Element& d = kv.add(Element("DSAKeyValue", std::string(xml::kNsDsig)));
    d.add(text_el("P", b64(OSSL_PKEY_PARAM_FFC_P)));
    d.add(text_el("Q", b64(OSSL_PKEY_PARAM_FFC_Q)));
    d.add(text_el("G", b64(OSSL_PKEY_PARAM_FFC_G)));
    d.add(text_el("Y", b64(OSSL_PKEY_PARAM_PUB_KEY)));
  }
  return kv;
}

Result<PublicKey> parse_key_value(const Element& kv) {
  if (kv.name != "KeyValue" || !dsig_or_none(kv))
    return fail(Errc::malformed, "expected <KeyValue/>");
  auto kids = kv.element_children();
  if (kids.size() != 1)
    return fail(Errc::malformed, "<KeyValue/> must hold exactly one key");
  const Element& k = *kids[0];
  if (k.name == "RSAKeyValue") {
    ES_ASSIGN(auto v, child_values(k, {"Modulus", "Exponent"}));
    return PublicKey::rsa(v[0], v[1]);
  }
  if (k.name == "DSAKeyValue") {
    // XML-DSig's optional J, Seed and PgenCounter are not accepted: one key, one encoding.
    ES_ASSIGN(auto v, child_values(k, {"P", "Q", "G", "Y"}));
    return PublicKey::dsa(v[0], v[1], v[2], v[3]);
  }
  if (k.name == "Ed25519KeyValue") {
    if (!k.element_children().empty())
      return fail(Errc::malformed, "<Ed25519KeyValue/> holds only the key");
    ES_ASSIGN(Bytes raw, unbase64(k.text_content()));
    return PublicKey::ed25519(raw);
  }
  return fail(Errc::unsupported, "unsupported key type <" + k.name + "/>");
}

std::string_view credential_kind_name(CredentialKind k) {
  return k == CredentialKind::x509 ? "x509" : "openpgp";
}

std::optional<CredentialKind> credential_kind_from_name(std::string_view s) {
  if (s == "x509")
    return CredentialKind::x509;
  if (s == "openpgp")
    return CredentialKind::openpgp;
  return std::nullopt;
}

Element credential_element(const Credential& c) {
  bool x509 = c.kind == CredentialKind::x509;
  Element e(x509 ? "X509Data" : "PGPData", std::string(xml::kNsDsig));
  for (const auto& item : c.items)
    e.add(text_el(x509 ? "X509Certificate" : "PGPKeyPacket", base64(item)));
  return e;
}

Result<Credential> parse_credential(const Element& e) {
  Credential c;
  std::string_view item_name;
  if (e.name == "X509Data" && dsig_or_none(e)) {
    c.kind = CredentialKind::x509;
    item_name = "X509Certificate";
  } else if (e.name == "PGPData" && dsig_or_none(e)) {
    c.kind = CredentialKind::openpgp;
    item_name = "PGPKeyPacket";
  } else {
    return fail(Errc::malformed, "unexpected <" + e.name + "/> after the signature");
  }
  auto kids = e.element_children();
  size_t max = c.kind == CredentialKind::x509 ? kMaxCredentialItems : 1;
  if (kids.empty() || kids.size() > max)
    return fail(Errc::malformed, "<" + e.name + "/> holds " + std::to_string(kids.size()) +
                                     " items (1 to " + std::to_string(max) + " allowed)");
  for (const Element* k : kids) {
    if (k->name != item_name || !k->element_children().empty())
      return fail(Errc::malformed, "<" + e.name + "/> expects <" + std::string(item_name) + "/>");
    ES_ASSIGN(Bytes b, unbase64(k->text_content()));
    if (b.empty() || b.size() > kMaxCredentialItemBytes)
      return fail(Errc::malformed, "a credential item of a bad size");
    c.items.push_back(std::move(b));
  }
  return c;
}

Result<PublicKey> credential_key(const Credential& c) {
  if (c.items.empty())
    return fail(Errc::malformed, "an empty credential");
  if (c.kind == CredentialKind::x509) {
    ES_ASSIGN(Certificate cert, Certificate::from_der(view(c.items[0])));
    return cert.public_key();
  }
  ES_ASSIGN(openpgp::KeyPacket p, openpgp::parse_key_packet(view(c.items[0])));
  return p.key;
}

std::string normalized_key_value(const PublicKey& k) {
  return xml::normalize(key_value(k), xml::kNsDsig, xml::NormStyle::spec);
}

Bytes key_fingerprint(HashAlg h, const PublicKey& k) {
  return digest(h, view(normalized_key_value(k)));
}

std::vector<PublicKey> KnownKeys::known_keys(std::string_view bare) const {
  auto it = m_keys.find(bare);
  return it == m_keys.end() ? std::vector<PublicKey>{} : it->second;
}

Status KnownKeys::accept(std::string_view bare, const PublicKey& key, const Credential*) const {
  auto it = m_keys.find(bare);
  if (!m_pin || it == m_keys.end() || it->second.empty())
    return {};
  if (std::any_of(it->second.begin(), it->second.end(), [&](auto& k) { return k == key; }))
    return {};
  return fail(Errc::auth_failed,
              std::string(bare) + " presented a key other than the one we know for it");
}

Result<std::string> identity_plaintext(PubkeyMode mode, HashAlg h, SignAlg alg,
                                       const Signer& signer, ByteView mac, bool with_credential) {
  if (mode == PubkeyMode::none)
    return fail(Errc::internal, "identity_plaintext is for key and hash identification");
  if (!signer.can_sign(alg))
    return fail(Errc::unsupported, "our key cannot make " + std::string(sign_alg_uri(alg)));
  ES_ASSIGN(Bytes sig, signer.sign(alg, mac));
  std::string out;
  if (mode == PubkeyMode::key)
    out = normalized_key_value(signer.public_key());
  else
    out = "<fingerprint>" + base64(key_fingerprint(h, signer.public_key())) + "</fingerprint>";
  out += "<SignatureValue>" + base64(sig) + "</SignatureValue>";
  if (with_credential && signer.credential())
    out += xml::normalize(credential_element(*signer.credential()), xml::kNsDsig,
                          xml::NormStyle::spec);
  return out;
}

// identity_key returns the key an identity block names: its <KeyValue/> ('key'), or the key we
// know for |bare| whose fingerprint it holds ('hash').
static Result<PublicKey> identity_key(PubkeyMode mode, HashAlg h, const Element& id,
                                      const Verifier* verifier, std::string_view bare) {
  if (mode == PubkeyMode::key) {
    if (id.name != "KeyValue")
      return fail(Errc::malformed, "expected the peer's <KeyValue/> ('key' identification)");
    return parse_key_value(id);
  }
  if (id.name != "fingerprint" || !id.element_children().empty())
    return fail(Errc::malformed, "expected the peer's <fingerprint/> ('hash' identification)");
  ES_ASSIGN(Bytes fp, unbase64(id.text_content()));
  if (fp.size() != hash_size(h))
    return fail(Errc::malformed, "fingerprint of the wrong length");
  if (verifier)
    for (const auto& k : verifier->known_keys(bare))
      if (ct_equal(key_fingerprint(h, k), fp))
        return k;
  return fail(Errc::auth_failed, "no key we know for " + std::string(bare) +
                                     " matches its fingerprint (retry asking for the key itself)");
}

Result<IdentityProof> check_identity(PubkeyMode mode, HashAlg h, std::optional<SignAlg> alg,
                                     ByteView plain, const MacFn& mac_for, const Verifier* verifier,
                                     std::string_view bare) {
  IdentityProof proof;
  proof.mode = mode;
  if (mode == PubkeyMode::none) {
    SecretBytes expect = mac_for("");
    if (!ct_equal(view(expect), plain))
      return fail(Errc::auth_failed, "the peer's identity (mac) does not verify");
    return proof;
  }
  if (!alg)
    return fail(Errc::internal, "no signature algorithm was negotiated");
  std::string text = string_of(plain);
  if (!xml::valid_xml_utf8(text))
    return fail(Errc::malformed, "the identity block is not UTF-8 XML");
  ES_ASSIGN(auto parts, xml::parse_fragment(text, xml::kNsDsig));
  if (parts.size() < 2 || parts.size() > 3 ||
      std::any_of(parts.begin(), parts.end(), [](const Element& e) { return e.is_text(); }))
    return fail(Errc::malformed,
                "the identity block must be a key or fingerprint, a signature and at most one "
                "credential");
  const Element& id = parts[0];
  const Element& sv = parts[1];
  if (sv.name != "SignatureValue" || !sv.element_children().empty())
    return fail(Errc::malformed, "the identity block has no <SignatureValue/>");
  // One key, one encoding: the block must be exactly its own normalization (formats §7).
  std::string norm;
  for (const Element& e : parts)
    norm += xml::normalize(e, xml::kNsDsig, xml::NormStyle::spec);
  if (norm != text)
    return fail(Errc::malformed, "the identity block is not in normalized form");
  std::optional<Credential> cred;
  if (parts.size() == 3) {
    ES_ASSIGN(Credential c, parse_credential(parts[2]));
    cred = std::move(c);
  }
  ES_ASSIGN(Bytes sig, unbase64(sv.text_content()));

  ES_ASSIGN(PublicKey k, identity_key(mode, h, id, verifier, bare));
  std::optional<PublicKey> key = std::move(k);
  if (!key->can_verify(*alg))
    return fail(Errc::auth_failed,
                "the peer's key cannot make " + std::string(sign_alg_uri(*alg)) + " signatures");
  SecretBytes mac = mac_for(normalized_key_value(*key));
  ES_TRY(key->verify(*alg, view(mac), view(sig)));
  if (cred) {
    // A credential about another key would lend that key's name to this one.
    auto ck = credential_key(*cred);
    if (!ck || !(*ck == *key))
      return fail(Errc::auth_failed,
                  std::string("the peer's ") +
                      (cred->kind == CredentialKind::x509 ? "certificate" : "OpenPGP key") +
                      " is not about the key it signed with" +
                      (ck ? std::string() : " (" + ck.error().detail + ")"));
  }
  if (verifier)
    ES_TRY(verifier->accept(bare, *key, cred ? &*cred : nullptr));
  proof.key = std::move(key);
  proof.credential = std::move(cred);
  return proof;
}

}  // namespace esession
