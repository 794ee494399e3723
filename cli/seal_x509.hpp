// X.509 material for the CMS and S/MIME object formats: certificate and identity files, the
// account's X.509 keys, and the CA bundle that makes a signer's chain valid.
#pragma once

#include <string>
#include <vector>

#include "crypto/x509.hpp"
#include "identity.hpp"
#include "object/cms.hpp"
#include "seal.hpp"

namespace esession::cli {

// load_certificate reads the first certificate of a PEM file, or a DER certificate.
Certificate load_certificate(const std::string& path, const std::string& what);
// load_identity_file reads a PEM certificate and key, or a PKCS#12 file, asking for the
// passphrase when one is needed.
X509Identity load_identity_file(Context& ctx, const std::string& path);
// load_keyed_identity is load_identity_file with the key as cms::seal and cms::open take it.
// A PEM file with an unencrypted key is decoded once; anything else goes through
// load_identity_file, with the same checks, errors and passphrase prompt.
cms::KeyedIdentity load_keyed_identity(Context& ctx, const std::string& path);
// account_key returns the account's X.509 key that |name| names: one whose fingerprint starts
// with |name| (at least 16 hex digits), or, for an empty |name| or the account's JID (full or
// bare), its default key if that is X.509, else its only X.509 key. Throws without a home or
// without such a key, with |hint|.
KeyRecord account_key(Context& ctx, const std::string& name, const std::string& hint);
// account_identity is account_key's certificate chain and private key.
X509Identity account_identity(Context& ctx, const std::string& name, const std::string& hint);
// keyed_account_identity is account_identity with the key as cms::seal and cms::open take it.
cms::KeyedIdentity keyed_account_identity(Context& ctx, const std::string& name,
                                          const std::string& hint);
// is_file tells whether |path| names something to read (a file, not the account's key).
bool is_file(const std::string& path);
// signature_status writes the SIGNATURE status line of a CMS verdict (none when unknown).
void signature_status(Context& ctx, const cms::Verdict& v);

}  // namespace esession::cli
