// OpenPGP key packets: the pure, strict parser of one v4 Public-Key packet (RFC 4880 §5.5.2)
// and the fingerprint and User ID helpers that go with it.
//
// This sits below session/ (not in openpgp/) because the session core reads a peer's OpenPGP
// credential with it (session/identity.cpp), and the session core must not depend on GnuPG or
// GPGME: it is bytes in, values out, with only OpenSSL behind it. openpgp/openpgp.hpp includes
// it, so users of the GnuPG side see these declarations as before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/pubkey.hpp"
#include "util/bytes.hpp"
#include "util/result.hpp"

namespace esession::openpgp {

// kFingerprintBytes is the length of a v4 fingerprint (SHA-1).
inline constexpr size_t kFingerprintBytes = 20;

// KeyPacket is a parsed v4 Public-Key packet.
struct KeyPacket {
  Bytes fingerprint;  // SHA-1(0x99 | 2-byte body length | body), RFC 4880 §12.2; 20 bytes
  int64_t created;    // the packet's creation time, seconds since the epoch
  PublicKey key;      // validated like a key from the wire (PublicKey::rsa/dsa/ed25519)
  Bytes packet;       // the packet exactly as read, header included
};

// parse_key_packet reads the first packet of |data|, which may be a whole binary transferable
// public key (the bytes after the first packet are ignored) or that one packet. It must be a
// Public-Key packet (tag 6; a subkey or secret-key packet is refused) of version 4 with an RSA
// (algorithms 1, 2, 3), DSA (17) or Ed25519 (22, EdDSA on OID 1.3.6.1.4.1.11591.15.1) key.
//
// Parsing is strict: old and new packet headers are read (RFC 4880 §4.2) but partial and
// indeterminate lengths are refused, every MPI must have its exact bit count (no leading zero
// bits) and the body must end exactly after the key material. Failures: Errc::malformed for
// broken encodings; Errc::unsupported for another version or algorithm (a v3 or v5 key, ECDSA,
// Ed448...); the PublicKey constructors' errors for keys they refuse (a small RSA modulus gives
// Errc::not_acceptable). The header's length encoding is not part of the fingerprint, so the
// same key in an old- or new-format header has the same fingerprint.
Result<KeyPacket> parse_key_packet(ByteView data);

// fingerprint_hex returns |fpr| as upper-case hex without spaces (40 digits for v4), the form
// gpg prints with --with-colons and accepts everywhere.
std::string fingerprint_hex(ByteView fpr);

// fingerprint_from_text returns the upper-case form of a v4 fingerprint written as 40 hex
// digits, in either case, with any spaces ("DF13 4115 ... C173"); nullopt for anything else.
std::optional<std::string> fingerprint_from_text(std::string_view s);

// uid_names_jid returns true iff the OpenPGP User ID |uid| binds the bare JID |bare_jid|: it is
// exactly "xmpp:" + bare_jid (the XEP-0373 form), or its address part is, as in
// "Alice <xmpp:alice@example.org>" (the form gpg makes for a name plus an address). Both
// compare byte for byte: JIDs are opaque strings in this library, so keys must carry the JID in
// the same (canonical) form as the stream does.
bool uid_names_jid(std::string_view uid, std::string_view bare_jid);

}  // namespace esession::openpgp
