// Our identities (native keys, X.509 certificates, OpenPGP keys in GnuPG) as Signers, the
// passphrases that unlock them, and what a PKI says about a peer's credential.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "context.hpp"
#include "crypto/x509.hpp"
#include "engine/pki.hpp"
#include "session/identity.hpp"

namespace esession::cli {

// read_secret reads one secret: from |fd| when it is >= 0 (up to a newline or the end), else
// from the terminal with echo off, prompting with |prompt|. |what| names it in errors; |hint|
// says how to give it without a terminal. Trailing CR/LF is dropped; empty is an error.
SecretBytes read_secret(int fd, const std::string& prompt, const std::string& what,
                        const std::string& hint);
// read_passphrase reads a passphrase from --passphrase-fd or the terminal. |confirm| means a
// new passphrase (key generate/import --protect): on a terminal it is asked twice, and one of
// fewer than kShortPassphrase characters gets a warning. An empty one is always refused.
constexpr size_t kShortPassphrase = 8;
SecretBytes read_passphrase(Context& ctx, const std::string& prompt, bool confirm = false);

// load_private_key reads the private key of a native or X.509 key record, asking for its
// passphrase if the file is encrypted. OpenPGP keys stay in GnuPG: Errc::unsupported.
PrivateKey load_private_key(Context& ctx, const KeyRecord& k);
// signer_for makes a Signer of any key record: native, X.509 (with its certificate chain as
// the credential) or OpenPGP (signing through gpg-agent, with its key packet).
std::unique_ptr<Signer> signer_for(Context& ctx, const KeyRecord& k);
// default_signer returns the account's default key as a Signer, or nullptr without one.
std::unique_ptr<Signer> default_signer(Context& ctx);
// required_signer is default_signer for what cannot be done without a key: without one it
// fails with Errc::unsupported, |why| as the error and the hint to make a key.
std::unique_ptr<Signer> required_signer(Context& ctx, const std::string& why);

// read_small_file reads a certificate, identity or CA file (at most 16 MiB). Throws Failure.
std::string read_small_file(const std::string& path, const std::string& what);
// ca_file names the CA bundle: --ca-file, else <home>/ca.pem if there is one, else "".
std::string ca_file(Context& ctx);
// ca_anchors reads the CA bundle's certificates (none without one). Throws Failure.
std::vector<Certificate> ca_anchors(Context& ctx);
// pki_options gives the engine the anchors the options name.
PkiOptions pki_options(Context& ctx);

}  // namespace esession::cli
