// CMS (RFC 5652) files: EnvelopedData with AES-256-CBC content encryption and RSA key
// transport, optionally around a SignedData ("sign, then encrypt", as `openssl cms -sign |
// openssl cms -encrypt` makes). What `openssl cms -decrypt` and `gpgsm --decrypt` read, and we
// read theirs.
//
// Both directions stream in constant memory:
//   - seal drives OpenSSL's streaming encoder (CMS_STREAM, BIO_new_CMS): indefinite-length BER,
//     the content in OCTET STRING chunks;
//   - open parses the BER of the ContentInfo itself (ContentReader, below) up to the first
//     content octet, hands OpenSSL the structure with the content left out (detached) to unwrap
//     the content-encryption key, and feeds it the encrypted octets as they are read. The inner
//     SignedData is parsed the same way: its content goes to the caller's file while it is
//     decrypted, and the signature is checked afterwards over that file (CMS_verify with the
//     content detached), so the file is read twice, never held in memory.
//
// CBC has no integrity: only the inner signature authenticates a file. open refuses an
// unsigned file unless the caller allows it, and reports the signature either way.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "crypto/x509.hpp"
#include "util/bytes.hpp"

namespace esession::cms {

// kMaxHeaderBytes bounds the elements held in memory: everything but the content (recipient
// infos, certificates, signer infos) together.
inline constexpr size_t kMaxHeaderBytes = 16 << 20;
// kMaxDepth bounds the nesting of BER elements.
inline constexpr int kMaxDepth = 32;

// Source reads up to |out.size()| bytes into |out|; 0 means the end of the input.
using Source = std::function<Result<size_t>(std::span<uint8_t> out)>;

// Kind is the ContentInfo a ContentReader expects.
enum class Kind {
  enveloped,    // id-envelopedData: the content is the [0] IMPLICIT encryptedContent
  signed_data,  // id-signedData: the content is the [0] EXPLICIT eContent
};

// ContentReader parses a BER ContentInfo of one Kind from a Source without holding its content:
// definite or indefinite lengths, the content primitive or constructed (OCTET STRING chunks,
// nested to any depth up to kMaxDepth). Only low tag numbers occur in these structures; a high
// tag number is malformed. Errors are Errc::malformed (naming what is wrong or "truncated"),
// Errc::unsupported (no content: a detached object) or whatever the Source returns.
class ContentReader {
 public:
  // |buffer_bytes| (at least 4 KiB) is read from the Source at a time.
  ContentReader(Source src, Kind kind, size_t buffer_bytes = 64 << 10);
  ContentReader(const ContentReader&) = delete;
  ContentReader& operator=(const ContentReader&) = delete;
  ~ContentReader();

  // start reads up to the first content octet.
  Status start();
  // read returns up to |out.size()| content octets. It returns 0 once the content ended and the
  // rest of the object (the elements after the content, the end-of-contents octets) parsed, and
  // the Source is at its end: bytes after the object are malformed.
  Result<size_t> read(std::span<uint8_t> out);
  // done tells whether read returned 0.
  bool done() const;
  // detached returns the ContentInfo DER-encoded with the content left out: after start, the
  // elements before the content; after done, with those after it too (for Kind::enveloped the
  // unprotected attributes are always left out).
  Bytes detached() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m;
};

// StreamOptions: the I/O buffer size and a progress callback (done, total input bytes; total
// 0 when unknown).
struct StreamOptions {
  size_t buffer_bytes = 64 << 10;
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// seal encrypts everything |in_fd| holds for |recipients| (RSA certificates) and writes the DER
// (indefinite-length BER) EnvelopedData to |out_fd|. With |signer|, the content is first wrapped
// in a SignedData made with the signer's key, carrying its chain. Returns the number of
// plaintext bytes. Errc::unsupported for a recipient key other than RSA; Errc::io when reading
// or writing fails (the output is then incomplete).
Result<uint64_t> seal(const std::vector<Certificate>& recipients, const X509Identity* signer,
                      int in_fd, int out_fd, const StreamOptions& opts = {},
                      const std::string& in_name = "input", const std::string& out_name = "output");

// KeyedIdentity is an identity with its private key as OpenSSL holds it: what seal signs with
// and open decrypts with. keyed makes one from an X509Identity (through the key's PEM, so a
// caller that has the key file at hand should decode it once itself).
struct KeyedIdentity {
  std::vector<Certificate> chain;  // leaf first
  UniquePtr<EVP_PKEY> key;         // the leaf's private key
};
Result<KeyedIdentity> keyed(const X509Identity& id);

// seal with the signer's key already decoded.
Result<uint64_t> seal(const std::vector<Certificate>& recipients, const KeyedIdentity* signer,
                      int in_fd, int out_fd, const StreamOptions& opts = {},
                      const std::string& in_name = "input", const std::string& out_name = "output");
// seal_bytes is seal over memory, for objects as small as a stanza: no files, no large buffers.
Result<Bytes> seal_bytes(const std::vector<Certificate>& recipients, const KeyedIdentity* signer,
                         ByteView in);

// Trust says what open accepts as a signature.
struct Trust {
  // anchors: CA certificates a signer's chain must lead to (partial chains accepted).
  std::vector<Certificate> anchors;
  // expected: the certificate that must have signed; its chain is then not checked.
  std::optional<Certificate> expected;
  // allow_unsigned: open a file without a SignedData inside (nothing authenticates it).
  bool allow_unsigned = false;
};

// Verdict is what open found out about the signature.
struct Verdict {
  enum class State { unknown, none, good, bad } state = State::unknown;
  std::string signer;  // the signer's subject (RFC 2253), when known
  // signer_cert: the signer's certificate, when known.
  std::optional<Certificate> signer_cert;
  std::string reason;  // why it is bad
};

// open decrypts the CMS object read from |in_fd| with |me| and writes the plaintext to
// |out_fd|. |reread| must return a new descriptor reading, from its start, what was written to
// |out_fd| (it is called once, for a signed file, to check the signature over it).
//
// The plaintext written to |out_fd| is NOT authenticated until open returns success: |out_fd|
// must be private (an OutputFile, a spool file), and its content discarded on failure.
//
// Errors: Errc::auth_failed when the file is not addressed to |me|, does not decrypt (wrong key,
// bad padding), carries a bad or untrusted signature, or is unsigned without
// Trust::allow_unsigned; Errc::malformed for a structure that does not parse; Errc::io for I/O.
// |verdict| is filled in as far as the signature was examined, failure or not.
Result<uint64_t> open(const X509Identity& me, const Trust& trust, int in_fd, int out_fd,
                      const std::function<Result<int>()>& reread, Verdict& verdict,
                      const StreamOptions& opts = {}, const std::string& in_name = "input");
// open with the recipient's key already decoded.
Result<uint64_t> open(const KeyedIdentity& me, const Trust& trust, int in_fd, int out_fd,
                      const std::function<Result<int>()>& reread, Verdict& verdict,
                      const StreamOptions& opts = {}, const std::string& in_name = "input");
// open_bytes is open over memory: the plaintext of |in| (at most |max_plain| bytes, else
// Errc::malformed), returned only once the signature checked, with the same checks and errors
// as open.
Result<Bytes> open_bytes(const KeyedIdentity& me, const Trust& trust, ByteView in, Verdict& verdict,
                         size_t max_plain = size_t{1} << 20);

// S/MIME's signed layers (RFC 5751 §3.4), for objects as small as a stanza. The MIME around
// them is the caller's.
//
// sign_detached returns the DER SignedData over |content| (taken as binary, as is) made with
// |signer|'s key and SHA-256 ("micalg=sha-256"), carrying the signer's chain, the content left
// out: the application/pkcs7-signature part of a multipart/signed.
Result<Bytes> sign_detached(const KeyedIdentity& signer, ByteView content);
// verify_detached checks the DER SignedData |signature| over |content| (binary: no line-end
// conversion) as open checks a file's. Errc::auth_failed for a bad or untrusted signature;
// |verdict| says what was found either way.
[[nodiscard]] Status verify_detached(ByteView signature, ByteView content, const Trust& trust,
                                     Verdict& verdict);
// open_signed_bytes checks the DER SignedData |in| that carries its content (at most
// |max_plain| bytes) and returns that content: smime-type=signed-data. Errors as
// verify_detached, and Errc::malformed for a structure that does not parse.
Result<Bytes> open_signed_bytes(const Trust& trust, ByteView in, Verdict& verdict,
                                size_t max_plain = size_t{1} << 20);

}  // namespace esession::cms
