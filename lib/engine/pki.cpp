#include "engine/pki.hpp"

#include "openpgp/openpgp.hpp"
#include "util/fs.hpp"

namespace esession {

namespace {

std::string_view x509_status(X509Verdict v) {
  switch (v) {
    case X509Verdict::valid:
      return "valid";
    case X509Verdict::untrusted:
      return "untrusted";
    case X509Verdict::expired:
      return "expired";
    case X509Verdict::not_yet_valid:
      return "not-yet-valid";
    case X509Verdict::wrong_name:
      return "wrong-name";
    case X509Verdict::invalid:
      return "invalid";
  }
  return "invalid";
}

Result<PkiVerdict> evaluate_x509(const PkiOptions& o, std::string_view bare, const Credential& cred,
                                 int64_t now) {
  PkiVerdict v;
  v.kind = "x509";
  std::vector<Certificate> chain;
  for (const auto& der : cred.items) {
    ES_ASSIGN(Certificate c, Certificate::from_der(view(der)));
    chain.push_back(std::move(c));
  }
  if (chain.empty())
    return fail(Errc::malformed, "an X.509 credential without a certificate");
  const Certificate& leaf = chain.front();
  v.detail = leaf.subject() + "; issued by " + leaf.issuer();
  std::vector<Certificate> anchors;
  if (!o.ca_file.empty()) {
    ES_ASSIGN(anchors, read_ca_bundle(o.ca_file));
  }
  X509Check r = check_x509(chain, anchors, bare, now);
  v.status = std::string(x509_status(r.verdict));
  v.valid = r.verdict == X509Verdict::valid;
  v.reason = r.reason;
  return v;
}

std::string_view uid_status(openpgp::Validity v) {
  switch (v) {
    case openpgp::Validity::full:
    case openpgp::Validity::ultimate:
      return "valid";
    case openpgp::Validity::marginal:
      return "marginal";
    case openpgp::Validity::never:
      return "never";
    default:
      return "unknown";
  }
}

Result<PkiVerdict> evaluate_openpgp(const PkiOptions& o, std::string_view bare,
                                    const Credential& cred) {
  PkiVerdict v;
  v.kind = "openpgp";
  if (cred.items.empty())
    return fail(Errc::malformed, "an OpenPGP credential without a key");
  ES_ASSIGN(openpgp::KeyPacket p, openpgp::parse_key_packet(view(cred.items.front())));
  std::string fpr = openpgp::fingerprint_hex(view(p.fingerprint));
  v.detail = fpr;
  ES_ASSIGN(auto gpg, openpgp::GnuPG::open(o.gnupg_home));
  ES_ASSIGN(openpgp::KeyStatus st, gpg.status(fpr, bare));
  std::string who = "the OpenPGP key " + fpr;
  if (!st.found) {
    v.status = "not-in-keyring";
    v.reason = who + " is not in the GnuPG keyring; import and certify it to raise trust";
  } else if (st.revoked) {
    v.status = "revoked";
    v.refuse = true;
    v.reason = who + " is revoked";
  } else if (st.expired) {
    v.status = "expired";
    v.reason = who + " has expired";
  } else if (st.disabled || st.invalid) {
    v.status = "disabled";
    v.reason = who + " is disabled or invalid in GnuPG";
  } else if (!st.has_uid) {
    v.status = "no-xmpp-uid";
    v.reason = who + " has no User ID xmpp:" + std::string(bare);
  } else {
    v.status = std::string(uid_status(st.uid_validity));
    v.valid = v.status == "valid";
    if (!v.valid)
      v.reason = "GnuPG gives the User ID xmpp:" + std::string(bare) + " of " + who + " " +
                 v.status + " validity; certify it (gpg --quick-sign-key) to raise trust";
  }
  return v;
}

}  // namespace

Result<std::vector<Certificate>> read_ca_bundle(const std::string& path) {
  ES_ASSIGN(std::string pem, fs::read_small_file(path, "CA bundle"));
  return Certificate::all_from_pem(pem);
}

PkiVerdict evaluate_pki(const PkiOptions& opts, std::string_view bare, const Credential& cred,
                        int64_t now) {
  // A PKI raises trust and is never needed: whatever goes wrong here (no gpg, an unreadable CA
  // bundle, an intermediate certificate that does not parse) leaves the credential unchecked,
  // with a reason, and the negotiation goes on.
  Result<PkiVerdict> r = cred.kind == CredentialKind::x509 ? evaluate_x509(opts, bare, cred, now)
                                                           : evaluate_openpgp(opts, bare, cred);
  if (r)
    return std::move(r).value();
  PkiVerdict v;
  v.kind = std::string(credential_kind_name(cred.kind));
  v.status = "unchecked";
  v.reason = "its " +
             std::string(cred.kind == CredentialKind::x509 ? "certificate" : "OpenPGP key") +
             " could not be checked: " + r.error().detail;
  return v;
}

}  // namespace esession
