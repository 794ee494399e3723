#include "object/cms.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "crypto/ossl.hpp"
#include "util/output_file.hpp"

namespace esession::cms {

namespace {

// The DER of the two content type OIDs, tag and length included.
constexpr uint8_t kOidEnveloped[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                     0xf7, 0x0d, 0x01, 0x07, 0x03};
constexpr uint8_t kOidSigned[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02};

Error malformed(const std::string& what) {
  return fail(Errc::malformed, "not a valid CMS object: " + what);
}

// der_header appends a DER tag and length.
void der_header(Bytes& out, uint8_t tag, size_t len) {
  out.push_back(tag);
  if (len < 0x80) {
    out.push_back(static_cast<uint8_t>(len));
    return;
  }
  uint8_t tmp[8];
  int n = 0;
  for (size_t v = len; v; v >>= 8)
    tmp[n++] = static_cast<uint8_t>(v);
  out.push_back(static_cast<uint8_t>(0x80 | n));
  while (n)
    out.push_back(tmp[--n]);
}

Bytes der_wrap(uint8_t tag, ByteView body) {
  Bytes out;
  der_header(out, tag, body.size());
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace

// The reader keeps a buffer over the Source, the absolute offset of what it consumed, and a
// stack of the open constructed elements.
struct ContentReader::Impl {
  struct Frame {
    bool indefinite;
    uint64_t end;  // absolute offset of the end (definite only)
  };
  struct Header {
    uint8_t tag = 0;
    bool indefinite = false;
    uint64_t len = 0;
  };

  Source src;
  Kind kind;
  Bytes buf;
  size_t pos = 0;
  size_t lim = 0;
  bool eof = false;
  uint64_t offset = 0;
  std::vector<Frame> frames;   // ContentInfo, [0], SignedData/EnvelopedData, ECI, ...
  std::vector<Frame> strings;  // open constructed OCTET STRINGs of the content
  uint64_t prim_left = 0;
  bool in_content = false;
  bool finished = false;
  Bytes before, eci, after;
  size_t held = 0;  // before + eci + after

  // fill makes at least |n| bytes available unless the input ends first; returns how many are.
  Result<size_t> fill(size_t n) {
    if (lim - pos >= n || eof)
      return lim - pos;
    if (pos > 0) {
      std::memmove(buf.data(), buf.data() + pos, lim - pos);
      lim -= pos;
      pos = 0;
    }
    while (lim < n && !eof) {
      ES_ASSIGN(size_t got, src({buf.data() + lim, buf.size() - lim}));
      if (got == 0)
        eof = true;
      lim += got;
    }
    return lim;
  }

  Result<uint8_t> byte() {
    ES_ASSIGN(size_t have, fill(1));
    if (have < 1)
      return malformed("truncated");
    ++offset;
    return buf[pos++];
  }

  // take appends |n| bytes to |out|.
  Status take(uint64_t n, Bytes& out) {
    while (n > 0) {
      ES_ASSIGN(size_t have, fill(1));
      if (have == 0)
        return malformed("truncated");
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, have));
      out.insert(out.end(), buf.data() + pos, buf.data() + pos + k);
      pos += k;
      offset += k;
      n -= k;
    }
    return {};
  }

  // header reads a tag and a length, appending the raw octets to |raw| when given.
  Result<Header> header(Bytes* raw) {
    Header h;
    ES_ASSIGN(h.tag, byte());
    if ((h.tag & 0x1f) == 0x1f)
      return malformed("a tag number above 30");
    ES_ASSIGN(uint8_t l, byte());
    Bytes octets{h.tag, l};
    if (l == 0x80) {
      if (!(h.tag & 0x20))
        return malformed("a primitive element with an indefinite length");
      h.indefinite = true;
    } else if (l < 0x80) {
      h.len = l;
    } else {
      int n = l & 0x7f;
      if (n > 8)
        return malformed("a length of more than 8 octets");
      for (int i = 0; i < n; ++i) {
        ES_ASSIGN(uint8_t b, byte());
        octets.push_back(b);
        h.len = h.len << 8 | b;
      }
      if (h.len > (uint64_t{1} << 62))
        return malformed("a length beyond any file");
    }
    if (!frames.empty() && !frames.back().indefinite && !h.indefinite &&
        (offset > frames.back().end || h.len > frames.back().end - offset))
      return malformed("an element longer than the one holding it");
    if (raw)
      raw->insert(raw->end(), octets.begin(), octets.end());
    return h;
  }

  // at_end tells whether |f| ends here, consuming its end-of-contents octets.
  Result<bool> at_end(const Frame& f) {
    if (!f.indefinite) {
      if (offset > f.end)
        return malformed("an element longer than the one holding it");
      return offset == f.end;
    }
    ES_ASSIGN(size_t have, fill(2));
    if (have < 2)
      return malformed("truncated");
    if (buf[pos] != 0 || buf[pos + 1] != 0)
      return false;
    pos += 2;
    offset += 2;
    return true;
  }

  Status push(const Header& h) {
    if (frames.size() + strings.size() >= static_cast<size_t>(kMaxDepth))
      return malformed("nested too deeply");
    frames.push_back({h.indefinite, offset + h.len});
    return {};
  }

  Status pop() {
    ES_ASSIGN(bool end, at_end(frames.back()));
    if (!end)
      return malformed("unexpected elements at the end of a structure");
    frames.pop_back();
    return {};
  }

  // raw_element appends a whole element (nested indefinite ones included) to |out|.
  Status raw_element(Bytes& out, int depth) {
    if (depth > kMaxDepth)
      return malformed("nested too deeply");
    size_t start = out.size();
    ES_ASSIGN(Header h, header(&out));
    if (!h.indefinite) {
      if (h.len > kMaxHeaderBytes || held + h.len > kMaxHeaderBytes)
        return fail(Errc::malformed, "the CMS header is larger than " +
                                         std::to_string(kMaxHeaderBytes >> 20) + " MiB");
      ES_TRY(take(h.len, out));
    } else {
      ES_TRY(push(h));
      for (;;) {
        ES_ASSIGN(bool end, at_end(frames.back()));
        if (end)
          break;
        ES_TRY(raw_element(out, depth + 1));
      }
      frames.pop_back();
      out.push_back(0);
      out.push_back(0);
    }
    held += out.size() - start;
    if (held > kMaxHeaderBytes)
      return fail(Errc::malformed, "the CMS header is larger than " +
                                       std::to_string(kMaxHeaderBytes >> 20) + " MiB");
    return {};
  }

  Result<uint8_t> peek_tag() {
    ES_ASSIGN(size_t have, fill(1));
    if (have < 1)
      return malformed("truncated");
    return buf[pos];
  }

  Status expect_constructed(uint8_t tag, const char* what) {
    ES_ASSIGN(Header h, header(nullptr));
    if (h.tag != tag)
      return malformed(std::string("expected ") + what);
    return push(h);
  }

  Status start() {
    ES_TRY(expect_constructed(0x30, "a ContentInfo"));
    Bytes oid;
    ES_TRY(raw_element(oid, 0));
    const uint8_t* want = kind == Kind::enveloped ? kOidEnveloped : kOidSigned;
    if (oid.size() != sizeof kOidEnveloped || std::memcmp(oid.data(), want, oid.size()) != 0)
      return malformed(kind == Kind::enveloped ? "not an EnvelopedData" : "not a SignedData");
    ES_TRY(expect_constructed(0xa0, "[0] content"));
    ES_TRY(expect_constructed(0x30, kind == Kind::enveloped ? "an EnvelopedData" : "a SignedData"));
    for (;;) {
      ES_ASSIGN(bool end, at_end(frames.back()));
      if (end)
        return malformed("no content info");
      ES_ASSIGN(uint8_t t, peek_tag());
      if (t == 0x30)
        break;
      ES_TRY(raw_element(before, 0));
    }
    ES_TRY(expect_constructed(0x30, "a content info"));
    ES_ASSIGN(uint8_t t, peek_tag());
    if (t != 0x06)
      return malformed("no content type");
    ES_TRY(raw_element(eci, 0));
    if (kind == Kind::enveloped) {
      ES_ASSIGN(uint8_t a, peek_tag());
      if (a != 0x30)
        return malformed("no content encryption algorithm");
      ES_TRY(raw_element(eci, 0));
    }
    ES_ASSIGN(bool end, at_end(frames.back()));
    if (end)
      return fail(Errc::unsupported, "the CMS object has no content (detached)");
    ES_ASSIGN(Header h, header(nullptr));
    if (kind == Kind::enveloped) {
      if (h.tag != 0x80 && h.tag != 0xa0)
        return malformed("no encrypted content");
    } else {
      if (h.tag != 0xa0)
        return malformed("no [0] content");
      ES_TRY(push(h));
      ES_ASSIGN(h, header(nullptr));
      if (h.tag != 0x04 && h.tag != 0x24)
        return malformed("the content is not an OCTET STRING");
    }
    ES_TRY(open_string(h));
    in_content = true;
    return {};
  }

  Status open_string(const Header& h) {
    if (h.tag & 0x20) {
      if (frames.size() + strings.size() >= static_cast<size_t>(kMaxDepth))
        return malformed("nested too deeply");
      uint64_t end = offset + h.len;
      if (!strings.empty() && !strings.back().indefinite && !h.indefinite &&
          h.len > strings.back().end - offset)
        return malformed("an element longer than the one holding it");
      strings.push_back({h.indefinite, end});
    } else {
      if (!strings.empty() && !strings.back().indefinite && h.len > strings.back().end - offset)
        return malformed("an element longer than the one holding it");
      prim_left = h.len;
    }
    return {};
  }

  // finish reads what follows the content: the end of the content info, the elements after it,
  // the end of the object and of the input.
  Status finish() {
    if (kind == Kind::signed_data)
      ES_TRY(pop());  // [0] EXPLICIT
    ES_TRY(pop());    // the content info
    for (;;) {
      ES_ASSIGN(bool end, at_end(frames.back()));
      if (end)
        break;
      ES_TRY(raw_element(after, 0));
    }
    frames.pop_back();
    ES_TRY(pop());  // [0]
    ES_TRY(pop());  // ContentInfo
    ES_ASSIGN(size_t have, fill(1));
    if (have > 0)
      return malformed("bytes after the end of the object");
    finished = true;
    return {};
  }

  Result<size_t> read(std::span<uint8_t> out) {
    if (finished)
      return size_t{0};
    if (!in_content)
      return malformed("read before start");
    size_t done = 0;
    while (done < out.size()) {
      if (prim_left > 0) {
        ES_ASSIGN(size_t have, fill(1));
        if (have == 0)
          return malformed("truncated");
        size_t k = static_cast<size_t>(std::min<uint64_t>({prim_left, have, out.size() - done}));
        std::memcpy(out.data() + done, buf.data() + pos, k);
        pos += k;
        offset += k;
        prim_left -= k;
        done += k;
        continue;
      }
      if (strings.empty()) {
        if (done > 0)
          return done;  // finish on the next call
        in_content = false;
        ES_TRY(finish());
        return size_t{0};
      }
      // Between chunks: the end of a constructed string, or the next chunk.
      bool end;
      if (!strings.back().indefinite) {
        if (offset > strings.back().end)
          return malformed("an element longer than the one holding it");
        end = offset == strings.back().end;
      } else {
        ES_ASSIGN(size_t have, fill(2));
        if (have < 2)
          return malformed("truncated");
        end = buf[pos] == 0 && buf[pos + 1] == 0;
        if (end) {
          pos += 2;
          offset += 2;
        }
      }
      if (end) {
        strings.pop_back();
        continue;
      }
      ES_ASSIGN(Header h, header(nullptr));
      if (h.tag != 0x04 && h.tag != 0x24)
        return malformed("a content chunk that is not an OCTET STRING");
      ES_TRY(open_string(h));
    }
    return done;
  }
};

ContentReader::ContentReader(Source src, Kind kind, size_t buffer_bytes)
    : m(std::make_unique<Impl>()) {
  m->src = std::move(src);
  m->kind = kind;
  m->buf.resize(std::max<size_t>(buffer_bytes, 4096));
}

ContentReader::~ContentReader() = default;

Status ContentReader::start() {
  return m->start();
}

Result<size_t> ContentReader::read(std::span<uint8_t> out) {
  return m->read(out);
}

bool ContentReader::done() const {
  return m->finished;
}

Bytes ContentReader::detached() const {
  Bytes body = m->before;
  Bytes eci = der_wrap(0x30, view(m->eci));
  body.insert(body.end(), eci.begin(), eci.end());
  if (m->kind == Kind::signed_data)
    body.insert(body.end(), m->after.begin(), m->after.end());
  Bytes ci(m->kind == Kind::enveloped ? std::begin(kOidEnveloped) : std::begin(kOidSigned),
           m->kind == Kind::enveloped ? std::end(kOidEnveloped) : std::end(kOidSigned));
  Bytes inner = der_wrap(0xa0, view(der_wrap(0x30, view(body))));
  ci.insert(ci.end(), inner.begin(), inner.end());
  return der_wrap(0x30, view(ci));
}

namespace {

// ossl_reason returns OpenSSL's last error reason, for messages, and clears the queue.
std::string ossl_reason() {
  unsigned long e = ERR_peek_last_error();
  std::string r = e ? ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "" : "";
  ERR_clear_error();
  return r;
}

UniquePtr<STACK_OF(X509)> stack_of(const std::vector<Certificate>& certs) {
  UniquePtr<STACK_OF(X509)> s = alloc_or_die(sk_X509_new_null(), "certificate stack");
  for (const auto& c : certs)
    if (X509_add_cert(s.get(), c.get(), X509_ADD_FLAG_UP_REF) != 1)
      die_out_of_memory("certificate stack");
  return s;
}

// evp_of returns an OpenSSL handle of |k| (PrivateKey keeps its own private).
Result<UniquePtr<EVP_PKEY>> evp_of(const PrivateKey& k) {
  SecretBytes pem = k.pem();
  UniquePtr<BIO> b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  UniquePtr<EVP_PKEY> p(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!p)
    return fail(Errc::internal, "cannot use the private key with OpenSSL CMS");
  return p;
}

size_t buffer_size(const StreamOptions& o) {
  return std::clamp<size_t>(o.buffer_bytes, 4096, 64 << 20);
}

// The BIO that yields the encrypted content from a ContentReader, for CMS_dataInit.
struct SourceState {
  ContentReader* reader;
  std::optional<Error> error;
};

int src_read(BIO* b, char* out, size_t n, size_t* got) {
  auto* st = static_cast<SourceState*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  Result<size_t> r = st->reader->read({reinterpret_cast<uint8_t*>(out), n});
  if (!r) {
    st->error = r.error();
    *got = 0;
    return 0;
  }
  *got = *r;
  return *r > 0 ? 1 : 0;
}

long src_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

const BIO_METHOD* source_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cms content");
    if (!bm)
      die_out_of_memory("BIO_METHOD");
    BIO_meth_set_read_ex(bm, src_read);
    BIO_meth_set_ctrl(bm, src_ctrl);
    return bm;
  }();
  return m;
}

// Decryptor yields the plaintext of an EnvelopedData read from a Source.
class Decryptor {
 public:
  Decryptor(Source src, size_t buffer_bytes)
      : m_reader(std::move(src), Kind::enveloped, buffer_bytes) {}

  Status start(const Certificate& me, EVP_PKEY* key) {
    ES_TRY(m_reader.start());
    Bytes der = m_reader.detached();
    const uint8_t* p = der.data();
    m_cms.reset(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
    if (!m_cms || p != der.data() + der.size()) {
      ERR_clear_error();
      return malformed("the EnvelopedData header does not parse");
    }
    X509* cert = me.get();
    bool addressed = false;
    STACK_OF(CMS_RecipientInfo)* ris = CMS_get0_RecipientInfos(m_cms.get());
    for (int i = 0; ris && i < sk_CMS_RecipientInfo_num(ris); ++i) {
      CMS_RecipientInfo* ri = sk_CMS_RecipientInfo_value(ris, i);
      if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS &&
          CMS_RecipientInfo_ktri_cert_cmp(ri, cert) == 0)
        addressed = true;
    }
    if (!addressed)
      return fail(Errc::auth_failed, "the file is not addressed to " + me.subject() +
                                         " (no recipient matches its certificate)");
    if (CMS_decrypt_set1_pkey_and_peer(m_cms.get(), key, cert, nullptr) != 1) {
      ERR_clear_error();
      return fail(Errc::auth_failed,
                  "cannot decrypt the content key: the private key does not match the "
                  "certificate, or the file was modified");
    }
    UniquePtr<BIO> icont = alloc_or_die(BIO_new(source_method()), "BIO");
    BIO_set_data(icont.get(), &m_state);
    BIO_set_init(icont.get(), 1);
    m_chain.reset(CMS_dataInit(m_cms.get(), icont.get()));
    if (!m_chain)
      return fail(Errc::unsupported, "cannot decrypt the content: " + ossl_reason());
    (void)icont.release();  // the end of |m_chain| now
    return {};
  }

  // read returns plaintext, 0 at the end once the padding and the rest of the object checked.
  Result<size_t> read(std::span<uint8_t> out) {
    size_t got = 0;
    if (BIO_read_ex(m_chain.get(), out.data(), out.size(), &got) == 1 && got > 0)
      return got;
    if (m_state.error)
      return *m_state.error;
    if (BIO_get_cipher_status(m_chain.get()) <= 0 || !m_reader.done()) {
      ERR_clear_error();
      return fail(Errc::auth_failed,
                  "decryption failed: the file was modified or truncated, or the key is wrong");
    }
    return size_t{0};
  }

 private:
  ContentReader m_reader;
  SourceState m_state{&m_reader, std::nullopt};
  UniquePtr<CMS_ContentInfo> m_cms;
  UniquePtr<BIO> m_chain;
};

// buffered_fd returns a BIO over |fd| with a buffer of kIoBuffer bytes: OpenSSL's CMS layers
// read and write in pieces of a few KiB, a system call each without it.
constexpr int kIoBuffer = 256 << 10;
UniquePtr<BIO> buffered_fd(int fd) {
  UniquePtr<BIO> raw = alloc_or_die(BIO_new_fd(fd, BIO_NOCLOSE), "BIO");
  UniquePtr<BIO> buf = alloc_or_die(BIO_new(BIO_f_buffer()), "BIO");
  if (BIO_set_buffer_size(buf.get(), kIoBuffer) != 1)
    die_out_of_memory("BIO buffer");
  BIO_push(buf.get(), raw.release());
  return buf;
}

// looks_signed tells whether |p| starts a ContentInfo of type id-signedData.
bool looks_signed(ByteView p) {
  if (p.size() < 2 || p[0] != 0x30)
    return false;
  size_t i = 2;
  if (p[1] & 0x80 && p[1] != 0x80)
    i += p[1] & 0x7f;
  return p.size() >= i + sizeof kOidSigned &&
         std::memcmp(p.data() + i, kOidSigned, sizeof kOidSigned) == 0;
}

// verify checks the SignedData |detached| over the content |content| yields (nullptr: it could
// not be read back).
void verify(const Bytes& detached, BIO* content, const Trust& trust, Verdict& v) {
  v.state = Verdict::State::bad;
  const uint8_t* p = detached.data();
  UniquePtr<CMS_ContentInfo> cms(
      d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(detached.size())));
  if (!cms || p != detached.data() + detached.size()) {
    ERR_clear_error();
    v.reason = "the SignedData does not parse";
    return;
  }
  STACK_OF(CMS_SignerInfo)* sis = CMS_get0_SignerInfos(cms.get());
  if (!sis || sk_CMS_SignerInfo_num(sis) != 1) {
    v.reason = "the SignedData does not have exactly one signer";
    return;
  }
  UniquePtr<STACK_OF(X509)> certs = stack_of(
      trust.expected ? std::vector<Certificate>{*trust.expected} : std::vector<Certificate>{});
  UniquePtr<STACK_OF(X509)> embedded(CMS_get1_certs(cms.get()));
  CMS_SignerInfo* si = sk_CMS_SignerInfo_value(sis, 0);
  auto name_signer = [&](STACK_OF(X509) * from) {
    for (int i = 0; from && i < sk_X509_num(from); ++i)
      if (CMS_SignerInfo_cert_cmp(si, sk_X509_value(from, i)) == 0) {
        if (auto c = Certificate::from_x509(sk_X509_value(from, i))) {
          v.signer = c->subject();
          v.signer_cert = *c;
        }
        return;
      }
  };
  name_signer(embedded.get());
  embedded.reset();
  if (trust.expected && CMS_SignerInfo_cert_cmp(si, trust.expected->get()) != 0) {
    v.reason = "not signed by the expected signer (" + trust.expected->subject() + ")";
    return;
  }
  unsigned flags = CMS_BINARY;
  UniquePtr<X509_STORE> store = alloc_or_die(X509_STORE_new(), "X509_STORE");
  if (trust.expected) {
    // The expected signer's certificate is the trust: no chain to check.
    flags |= CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY;
  } else {
    if (trust.anchors.empty()) {
      v.reason = "no CA is configured to check the signer's certificate against";
      return;
    }
    for (const auto& a : trust.anchors)
      X509_STORE_add_cert(store.get(), a.get());
    X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
  }
  if (!content) {
    v.reason = "cannot read the content back";
    return;
  }
  if (CMS_verify(cms.get(), certs.get(), store.get(), content, nullptr, flags) != 1) {
    std::string why = ossl_reason();
    v.reason = why.empty() ? "the signature does not verify" : why;
    return;
  }
  v.state = Verdict::State::good;
}

Result<size_t> read_full(Decryptor& d, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ES_ASSIGN(size_t n, d.read(out.subspan(done)));
    if (n == 0)
      break;
    done += n;
  }
  return done;
}

// seal_to is seal reading |in| and writing to |out|.
Result<uint64_t> seal_to(const std::vector<Certificate>& recipients, const KeyedIdentity* signer,
                         const Source& in, uint64_t total, UniquePtr<BIO> out,
                         const StreamOptions& opts, const std::string& out_name) {
  if (recipients.empty())
    return fail(Errc::malformed, "a CMS file needs at least one recipient");
  for (const auto& r : recipients)
    if (EVP_PKEY_get_base_id(X509_get0_pubkey(r.get())) != EVP_PKEY_RSA)
      return fail(Errc::unsupported,
                  "the recipient " + r.subject() + " does not have an RSA key (key transport)");
  if (signer && (signer->chain.empty() || !signer->key))
    return fail(Errc::malformed, "the signer has no certificate or no key");
  UniquePtr<STACK_OF(X509)> rs = stack_of(recipients);
  UniquePtr<CMS_ContentInfo> env(
      CMS_encrypt(rs.get(), nullptr, EVP_aes_256_cbc(), CMS_BINARY | CMS_STREAM));
  if (!env)
    return fail(Errc::internal, "cannot set up the EnvelopedData: " + ossl_reason());
  UniquePtr<CMS_ContentInfo> sig;
  // The chain: [signing layer ->] enveloping layer -> out. Each layer writes its header with
  // the first content and its trailer when flushed.
  BIO* env_bio = BIO_new_CMS(out.get(), env.get());
  if (!env_bio)
    return fail(Errc::io, "cannot write to " + out_name + ": " + ossl_reason());
  (void)out.release();
  UniquePtr<BIO> chain(env_bio);  // frees every layer and |out|
  const size_t room = buffer_size(opts);
  Bytes buf(room);
  ES_ASSIGN(size_t n, in(buf));
  BIO* top = env_bio;
  if (signer) {
    std::vector<Certificate> rest(signer->chain.begin() + 1, signer->chain.end());
    UniquePtr<STACK_OF(X509)> certs = stack_of(rest);
    X509* cert = signer->chain.front().get();
    EVP_PKEY* key = signer->key.get();
    if (n == 0) {
      // OpenSSL's streaming encoder cannot end a layer that got no content: the SignedData of
      // an empty file is made in memory.
      UniquePtr<BIO> empty = alloc_or_die(BIO_new_mem_buf("", 0), "BIO");
      sig.reset(CMS_sign(cert, key, certs.get(), empty.get(), CMS_BINARY));
      unsigned char* raw_der = nullptr;
      int len = sig ? i2d_CMS_ContentInfo(sig.get(), &raw_der) : 0;
      UniquePtr<uint8_t> der(raw_der);
      if (len <= 0)
        return fail(Errc::internal, "cannot make the SignedData: " + ossl_reason());
      size_t written = 0;
      if (BIO_write_ex(env_bio, der.get(), static_cast<size_t>(len), &written) != 1)
        return fail(Errc::io, "cannot write to " + out_name + ": " + ossl_reason());
    } else {
      sig.reset(CMS_sign(cert, key, certs.get(), nullptr, CMS_BINARY | CMS_STREAM));
      top = sig ? BIO_new_CMS(env_bio, sig.get()) : nullptr;
      if (!top)
        return fail(Errc::internal, "cannot set up the SignedData: " + ossl_reason());
      (void)chain.release();
      chain.reset(top);
    }
  }
  uint64_t plain = 0;
  while (n > 0) {
    size_t written = 0;
    if (BIO_write_ex(top, buf.data(), n, &written) != 1 || written != n)
      return fail(Errc::io, "cannot write to " + out_name + ": " + ossl_reason());
    plain += n;
    if (opts.progress)
      opts.progress(plain, total);
    ES_ASSIGN(n, in(buf));
  }
  if (BIO_flush(top) != 1)
    return fail(Errc::io, "cannot write to " + out_name + ": " + ossl_reason());
  return plain;
}

// memory_source yields |in|.
Source memory_source(ByteView in) {
  return [in, pos = size_t{0}](std::span<uint8_t> out) mutable -> Result<size_t> {
    size_t k = std::min(out.size(), in.size() - pos);
    if (k)  // an empty input may have no data pointer at all
      std::memcpy(out.data(), in.data() + pos, k);
    pos += k;
    return k;
  };
}

}  // namespace

Result<KeyedIdentity> keyed(const X509Identity& id) {
  if (id.chain.empty())
    return fail(Errc::malformed, "the identity has no certificate");
  ES_ASSIGN(UniquePtr<EVP_PKEY> key, evp_of(id.key));
  return KeyedIdentity{id.chain, std::move(key)};
}

Result<uint64_t> seal(const std::vector<Certificate>& recipients, const KeyedIdentity* signer,
                      int in_fd, int out_fd, const StreamOptions& opts, const std::string& in_name,
                      const std::string& out_name) {
  uint64_t total = static_cast<uint64_t>(std::max<int64_t>(fs::regular_size(in_fd), 0));
  Source in = [&](std::span<uint8_t> out) { return fs::read_some(in_fd, out, in_name); };
  return seal_to(recipients, signer, in, total, buffered_fd(out_fd), opts, out_name);
}

Result<uint64_t> seal(const std::vector<Certificate>& recipients, const X509Identity* signer,
                      int in_fd, int out_fd, const StreamOptions& opts, const std::string& in_name,
                      const std::string& out_name) {
  std::optional<KeyedIdentity> k;
  if (signer) {
    ES_ASSIGN(k, keyed(*signer));
  }
  return seal(recipients, k ? &*k : nullptr, in_fd, out_fd, opts, in_name, out_name);
}

Result<Bytes> seal_bytes(const std::vector<Certificate>& recipients, const KeyedIdentity* signer,
                         ByteView in) {
  UniquePtr<BIO> mem = alloc_or_die(BIO_new(BIO_s_mem()), "BIO");
  if (BIO_up_ref(mem.get()) != 1)
    return fail(Errc::internal, "cannot set up OpenSSL I/O");
  // Two references: seal_to frees its chain, |out| with it; |mem| keeps the bytes.
  UniquePtr<BIO> out(mem.get());
  StreamOptions so;
  so.buffer_bytes = std::max<size_t>(in.size(), 1);
  ES_TRY(seal_to(recipients, signer, memory_source(in), in.size(), std::move(out), so, "memory"));
  char* data = nullptr;
  long len = BIO_get_mem_data(mem.get(), &data);
  if (len < 0)
    return fail(Errc::internal, "cannot read the sealed object back");
  return Bytes(data, data + len);
}

namespace {

// open_from is open reading |input|, handing the plaintext to |sink| and checking the signature
// over what |content| yields (the plaintext again).
Result<uint64_t> open_from(const KeyedIdentity& me, const Trust& trust, const Source& input,
                           const std::function<Status(ByteView)>& sink,
                           const std::function<Result<UniquePtr<BIO>>()>& content, Verdict& verdict,
                           const StreamOptions& opts, size_t reader_bytes = 64 << 10) {
  if (me.chain.empty() || !me.key)
    return fail(Errc::malformed, "the identity has no certificate");
  Decryptor dec(input, reader_bytes);
  ES_TRY(dec.start(me.chain.front(), me.key.get()));

  const size_t room = buffer_size(opts);
  Bytes buf(room);
  // The first octets tell a SignedData from anything else.
  ES_ASSIGN(size_t head, read_full(dec, {buf.data(), 32}));
  uint64_t plain = 0;
  if (!looks_signed({buf.data(), head})) {
    verdict.state = Verdict::State::none;
    if (!trust.allow_unsigned)
      return fail(Errc::auth_failed,
                  "the file is not signed: nothing authenticates its content (CBC has no "
                  "integrity)");
    ES_TRY(sink({buf.data(), head}));
    plain = head;
    for (;;) {
      ES_ASSIGN(size_t n, dec.read(buf));
      if (n == 0)
        break;
      ES_TRY(sink({buf.data(), n}));
      plain += n;
    }
    return plain;
  }
  Bytes prefix(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(head));
  size_t prefix_pos = 0;
  Source inner = [&](std::span<uint8_t> out) -> Result<size_t> {
    if (prefix_pos < prefix.size()) {
      size_t k = std::min(out.size(), prefix.size() - prefix_pos);
      std::memcpy(out.data(), prefix.data() + prefix_pos, k);
      prefix_pos += k;
      return k;
    }
    return dec.read(out);
  };
  ContentReader sd(inner, Kind::signed_data, reader_bytes);
  ES_TRY(sd.start());
  for (;;) {
    ES_ASSIGN(size_t n, sd.read(buf));
    if (n == 0)
      break;
    ES_TRY(sink({buf.data(), n}));
    plain += n;
  }
  ES_ASSIGN(UniquePtr<BIO> back, content());
  verify(sd.detached(), back.get(), trust, verdict);
  if (verdict.state != Verdict::State::good)
    return fail(Errc::auth_failed, "bad signature" +
                                       (verdict.signer.empty() ? "" : " by " + verdict.signer) +
                                       ": " + verdict.reason);
  return plain;
}

}  // namespace

Result<uint64_t> open(const KeyedIdentity& me, const Trust& trust, int in_fd, int out_fd,
                      const std::function<Result<int>()>& reread, Verdict& verdict,
                      const StreamOptions& opts, const std::string& in_name) {
  if (fs::regular_size(in_fd) >= 0)
    (void)::posix_fadvise(in_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  uint64_t total = static_cast<uint64_t>(std::max<int64_t>(fs::regular_size(in_fd), 0));
  uint64_t consumed = 0;
  Source input = [&](std::span<uint8_t> out) -> Result<size_t> {
    ES_ASSIGN(size_t n, fs::read_some(in_fd, out, in_name));
    consumed += n;
    if (opts.progress && n)
      opts.progress(consumed, total);
    return n;
  };
  fs::UniqueFd back;
  auto sink = [&](ByteView b) { return fs::write_all(out_fd, b, "the output"); };
  auto content = [&]() -> Result<UniquePtr<BIO>> {
    ES_ASSIGN(int fd, reread());
    back.reset(fd);
    return buffered_fd(fd);
  };
  return open_from(me, trust, input, sink, content, verdict, opts);
}

Result<uint64_t> open(const X509Identity& me, const Trust& trust, int in_fd, int out_fd,
                      const std::function<Result<int>()>& reread, Verdict& verdict,
                      const StreamOptions& opts, const std::string& in_name) {
  if (me.chain.empty())
    return fail(Errc::malformed, "the identity has no certificate");
  ES_ASSIGN(KeyedIdentity k, keyed(me));
  return open(k, trust, in_fd, out_fd, reread, verdict, opts, in_name);
}

Result<Bytes> open_bytes(const KeyedIdentity& me, const Trust& trust, ByteView in, Verdict& verdict,
                         size_t max_plain) {
  Bytes out;
  auto sink = [&](ByteView b) -> Status {
    if (b.size() > max_plain - out.size())
      return fail(Errc::malformed,
                  "the protected content is larger than " + std::to_string(max_plain) + " bytes");
    out.insert(out.end(), b.begin(), b.end());
    return {};
  };
  auto content = [&]() -> Result<UniquePtr<BIO>> {
    static const uint8_t kNone = 0;
    return alloc_or_die(
        BIO_new_mem_buf(out.empty() ? &kNone : out.data(), static_cast<int>(out.size())), "BIO");
  };
  StreamOptions so;
  so.buffer_bytes = std::min<size_t>(in.size(), 16 << 10);
  // The readers need no more room than the whole object.
  ES_TRY(open_from(me, trust, memory_source(in), sink, content, verdict, so, in.size()));
  return out;
}

Result<Bytes> sign_detached(const KeyedIdentity& signer, ByteView content) {
  if (signer.chain.empty() || !signer.key)
    return fail(Errc::malformed, "the signer has no certificate or no key");
  std::vector<Certificate> rest(signer.chain.begin() + 1, signer.chain.end());
  UniquePtr<STACK_OF(X509)> certs = stack_of(rest);
  constexpr unsigned kFlags = CMS_DETACHED | CMS_BINARY;
  // The digest is named here, not left to OpenSSL's default: multipart/signed's micalg names it.
  UniquePtr<CMS_ContentInfo> cms(
      CMS_sign(nullptr, nullptr, certs.get(), nullptr, kFlags | CMS_PARTIAL));
  if (!cms || !CMS_add1_signer(cms.get(), signer.chain.front().get(), signer.key.get(),
                               EVP_sha256(), kFlags))
    return fail(Errc::internal, "cannot set up the SignedData: " + ossl_reason());
  static const uint8_t kNone = 0;
  UniquePtr<BIO> data = alloc_or_die(
      BIO_new_mem_buf(content.empty() ? &kNone : content.data(), static_cast<int>(content.size())),
      "BIO");
  if (CMS_final(cms.get(), data.get(), nullptr, kFlags) != 1)
    return fail(Errc::internal, "cannot make the SignedData: " + ossl_reason());
  unsigned char* raw_der = nullptr;
  int len = i2d_CMS_ContentInfo(cms.get(), &raw_der);
  UniquePtr<uint8_t> der(raw_der);
  if (len <= 0)
    return fail(Errc::internal, "cannot encode the SignedData: " + ossl_reason());
  return Bytes(der.get(), der.get() + len);
}

Status verify_detached(ByteView signature, ByteView content, const Trust& trust, Verdict& verdict) {
  verdict = {};
  if (!looks_signed(signature)) {
    verdict.state = Verdict::State::bad;
    verdict.reason = "the signature is not a SignedData";
  } else {
    static const uint8_t kNone = 0;
    UniquePtr<BIO> data = alloc_or_die(BIO_new_mem_buf(content.empty() ? &kNone : content.data(),
                                                       static_cast<int>(content.size())),
                                       "BIO");
    verify(Bytes(signature.begin(), signature.end()), data.get(), trust, verdict);
  }
  if (verdict.state != Verdict::State::good)
    return fail(Errc::auth_failed, "bad signature" +
                                       (verdict.signer.empty() ? "" : " by " + verdict.signer) +
                                       ": " + verdict.reason);
  return {};
}

Result<Bytes> open_signed_bytes(const Trust& trust, ByteView in, Verdict& verdict,
                                size_t max_plain) {
  verdict = {};
  if (!looks_signed(in))
    return fail(Errc::malformed, "not a valid CMS object: not a SignedData");
  ContentReader sd(memory_source(in), Kind::signed_data, std::max<size_t>(in.size(), 4096));
  ES_TRY(sd.start());
  Bytes out;
  Bytes buf(std::min<size_t>(in.size(), 16 << 10) + 1);
  for (;;) {
    ES_ASSIGN(size_t n, sd.read(buf));
    if (n == 0)
      break;
    if (n > max_plain - out.size())
      return fail(Errc::malformed,
                  "the protected content is larger than " + std::to_string(max_plain) + " bytes");
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n));
  }
  ES_TRY(verify_detached(sd.detached(), out, trust, verdict));
  return out;
}

}  // namespace esession::cms
