// Negotiated parameters, compatibility conventions and the XEP-0116 key schedule.
#pragma once

#include <string>
#include <vector>

#include "crypto/ctr.hpp"
#include "crypto/dh.hpp"
#include "crypto/hash.hpp"
#include "crypto/keyed.hpp"
#include "xml/form.hpp"

namespace esession {

// Compat selects how the XEPs' ambiguities are resolved (formats/esession-1.0.md).
enum class Compat {
  spec,   // the resolutions of PROTOCOL-NOTES §8
  gajim,  // G1-G4, R1-R4, T1, G5b: the conventions of the only deployed implementation
};

// Flow is the negotiation flow (XEP-0116 §4.2).
enum class Flow { four_message, three_message };

// PubkeyMode is an init_pubkey/resp_pubkey value.
enum class PubkeyMode { none, key, hash };
std::string_view pubkey_name(PubkeyMode m);
Result<PubkeyMode> pubkey_from_name(std::string_view s);

// CryptoConv holds the cryptographic conventions that can be set one by one (a vector file
// lists them). Compat::gajim turns on all of them but G5a by default: our Gajim-mode sender
// pads to a multiple of 16 bytes, which leaves no keystream over, so Gajim's stream receiver
// and a receiver that starts a fresh block per stanza both stay in step (formats §18).
struct CryptoConv {
  bool g1 = false;   // AES key = the whole 32-byte HMAC output
  bool g2 = false;   // CTR pre-increment: an encryption starting at C uses blocks C+1, C+2, ...
  bool g4 = false;   // Gajim's form normalization
  bool g5a = false;  // plaintext padded to a multiple of 16 characters, not bytes
  bool g5b = false;  // one keystream per direction: a stanza's unused keystream starts the next
  static CryptoConv for_compat(Compat c) {
    bool g = c == Compat::gajim;
    return CryptoConv{g, g, g, false, g};
  }
};

// Suite holds what a negotiation agreed on.
struct Suite {
  Compat compat = Compat::spec;  // the wire and negotiation behaviour (R1-R4, T1)
  CryptoConv conv;
  Flow flow = Flow::four_message;
  int modp = 14;
  CipherAlg cipher = CipherAlg::aes128_ctr;
  HashAlg hash = HashAlg::sha256;
  std::vector<std::string> stanzas;  // subset of message, presence, iq
  PubkeyMode init_pubkey = PubkeyMode::none;
  PubkeyMode resp_pubkey = PubkeyMode::none;
  std::string sign_alg;  // sign_algs URI, empty when both pubkey modes are none
  uint32_t rekey_freq = 1;
  std::string logging;
  std::string ver = "1.0";
};

// wire_style returns how the messages of a session in mode |c| are written: in Gajim mode as
// Gajim's XML library writes them, an empty element as "<a />" (formats §18).
inline xml::SerializeStyle wire_style(Compat c) {
  return xml::SerializeStyle{c == Compat::gajim};
}

// norm_style returns the form normalization of |c|.
inline xml::NormStyle norm_style(const CryptoConv& c) {
  return c.g4 ? xml::NormStyle::gajim : xml::NormStyle::spec;
}

// cipher_key returns the AES key taken from an HMAC output: its least-significant (last) bytes
// (A3), or under G1 the whole 32-byte output.
SecretBytes cipher_key(const CryptoConv& c, CipherAlg alg, ByteView hmac_out);

// ctr_encrypt encrypts |in| with the direction key starting at counter |c| and returns the
// counter after it: c + ceil(len/16). The first block is c, or c+1 under G2.
Counter128 ctr_encrypt(const CryptoConv& conv, ByteView key, const Counter128& c, ByteView in,
                       uint8_t* out);
// The same with a key whose context is kept between messages.
Counter128 ctr_encrypt(const CryptoConv& conv, CtrKey& key, const Counter128& c, ByteView in,
                       uint8_t* out);

// CtrStream is what G5b keeps of one direction's keystream between stanzas: the counter (the
// last block generated, under G2) and how many bytes at the end of that block are still unused
// (0-15). Without G5b |carry| stays 0 and every encryption starts a fresh block.
struct CtrStream {
  Counter128 ctr;
  uint8_t carry = 0;
};

// ctr_stream_encrypt encrypts |in| (non-empty) continuing |s|: under G5b its first
// min(carry, len) bytes with the unused end of the last block generated, the rest with fresh
// blocks; then |s| is the counter after (the last block generated) and the bytes left unused.
// Returns the number of fresh blocks.
uint64_t ctr_stream_encrypt(const CryptoConv& conv, CtrKey& key, CtrStream& s, ByteView in,
                            uint8_t* out);

// The six keys of XEP-0116 §4.5.3.
struct KeySet {
  SecretBytes ca, ma, sa, cb, mb, sb;  // ca/cb are full HMAC outputs; use cipher_key()
};
KeySet derive_keys(HashAlg h, ByteView k);

// sas28x5 returns the 5-character SAS of XEP-0116 §9 from M_A and form_B; |pad| left-pads with
// 'a' to five characters (Gajim shows the unpadded form, R3).
std::string sas28x5(HashAlg h, ByteView m_a, std::string_view form_b, bool pad);
// sas_digits writes |v| in sas28x5's base-28 alphabet, most significant digit first.
std::string sas_digits(uint32_t v, bool pad);

// Labels of the key schedule.
inline constexpr std::string_view kLabelInitCipher = "Initiator Cipher Key";
inline constexpr std::string_view kLabelInitMac = "Initiator MAC Key";
inline constexpr std::string_view kLabelInitSigma = "Initiator SIGMA Key";
inline constexpr std::string_view kLabelRespCipher = "Responder Cipher Key";
inline constexpr std::string_view kLabelRespMac = "Responder MAC Key";
inline constexpr std::string_view kLabelRespSigma = "Responder SIGMA Key";
inline constexpr std::string_view kLabelSrs = "Shared Retained Secret";
inline constexpr std::string_view kLabelNewRs = "New Retained Secret";
inline constexpr std::string_view kLabelSas = "Short Authentication String";

}  // namespace esession
