// `open` without --format: the format told from the input itself, as gpg --decrypt does.
//
// Decisions, documented in esession-open(1):
//  - Only what a format defines counts, never a likelihood: an OpenPGP message begins with the
//    header of a packet that can start one (RFC 4880 §4.2, §11.3; the tag and the first octet
//    of its body checked) or with the armor line "-----BEGIN PGP MESSAGE-----"; a CMS object
//    with the DER or BER ContentInfo SEQUENCE whose contentType is EnvelopedData, SignedData
//    or AuthEnvelopedData (RFC 5652 §3, RFC 5083); stanzas with '<'. Leading white space is
//    skipped for the text forms only. Anything else is refused: aesgcm files have no header
//    (they are ciphertext from the first byte) and are opened with their key, which names
//    the format (--key-file, --key-fd).
//  - CMS in PEM or as an S/MIME MIME entity (what `openssl cms -encrypt` writes without
//    -outform DER) is recognised, only to say how to convert it: the cms format reads DER/BER.
//  - A stanza is ox when it has a child <openpgp xmlns='urn:xmpp:openpgp:0'/>, smime when it
//    has a child <e2e xmlns='urn:ietf:params:xml:ns:xmpp-e2e'/>; both or neither is refused.
//    The first stanza of the input chooses; a later stanza of another format is refused on
//    its own (for_each_stanza), and the run goes on.
//  - Detection reads the input only as far as it must (a stanza input: the first stanza,
//    at most xml::kMaxStanza bytes). A regular file is then read again from where it started;
//    a pipe (or a terminal, socket or fifo) is passed on by a relay thread, which writes what
//    was read and then the rest, in constant memory, into a pipe the format reads.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "io.hpp"
#include "object/smime.hpp"
#include "seal.hpp"
#include "xml/reader.hpp"

namespace esession::cli {

namespace {

constexpr std::string_view kNsOx = "urn:xmpp:openpgp:0";
constexpr std::string_view kArmorMessage = "-----BEGIN PGP MESSAGE-----";

// What the first bytes of an input say it is; more: they do not tell yet.
enum class Kind { more, openpgp, cms, stanzas, unknown };

bool blank(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// prefix tells whether |s| begins with |lit|: nullopt when |s| is a shorter prefix of it.
std::optional<bool> prefix(std::string_view s, std::string_view lit) {
  size_t n = std::min(s.size(), lit.size());
  if (s.substr(0, n) != lit.substr(0, n))
    return false;
  if (n < lit.size())
    return std::nullopt;
  return true;
}

uint8_t at(std::string_view s, size_t i) {
  return static_cast<uint8_t>(s[i]);
}

// openpgp_packet: does |h| (its first octet has bit 7 set) begin with the header of a packet
// that can start an OpenPGP message, with the first octet of its body a version (or, for
// compressed and literal data, an algorithm or format) that the packet defines?
Kind openpgp_packet(std::string_view h) {
  uint8_t ctb = at(h, 0);
  int tag;
  size_t body;           // where the body begins
  uint32_t len = 0;      // the body length, when definite
  bool definite = true;  // false: a partial (new format) or indeterminate (old format) length
  if (ctb & 0x40) {
    tag = ctb & 0x3f;
    if (h.size() < 2)
      return Kind::more;
    uint8_t o1 = at(h, 1);
    if (o1 < 192) {
      body = 2;
      len = o1;
    } else if (o1 < 224) {
      if (h.size() < 3)
        return Kind::more;
      body = 3;
      len = ((uint32_t{o1} - 192) << 8) + at(h, 2) + 192;
    } else if (o1 == 255) {
      if (h.size() < 6)
        return Kind::more;
      body = 6;
      len = (uint32_t{at(h, 2)} << 24) | (uint32_t{at(h, 3)} << 16) | (uint32_t{at(h, 4)} << 8) |
            at(h, 5);
    } else {
      // §4.2.2.4: the first partial length of a packet is at least 512 octets.
      if ((o1 & 0x1f) < 9)
        return Kind::unknown;
      body = 2;
      definite = false;
    }
  } else {
    tag = (ctb >> 2) & 0x0f;
    int type = ctb & 0x03;
    if (type == 3) {
      body = 1;
      definite = false;
    } else {
      body = 1 + (size_t{1} << type);
      if (h.size() < body)
        return Kind::more;
      for (size_t i = 1; i < body; ++i)
        len = (len << 8) | at(h, i);
    }
  }
  // Partial and indeterminate lengths are for the data packets only (§4.2.2.4, §4.2.1).
  bool data = tag == 8 || tag == 11 || tag == 18 || tag == 20;
  if (!definite && !data)
    return Kind::unknown;
  if (definite && len == 0)
    return Kind::unknown;
  if (h.size() <= body)
    return Kind::more;
  uint8_t v = at(h, body);
  bool ok = false;
  switch (tag) {
    case 1:  // public-key encrypted session key: version 3 (RFC 4880) or 6 (RFC 9580)
      ok = v == 3 || v == 6;
      break;
    case 2:  // signature
      ok = v >= 3 && v <= 6;
      break;
    case 3:  // symmetric-key encrypted session key
      ok = v >= 4 && v <= 6;
      break;
    case 4:  // one-pass signature
      ok = v == 3 || v == 6;
      break;
    case 8:  // compressed data: the algorithm (uncompressed, ZIP, ZLIB, BZip2)
      ok = v <= 3;
      break;
    case 10: {  // marker: the three octets "PGP"
      if (len != 3)
        return Kind::unknown;
      if (h.size() < body + 3)
        return Kind::more;
      ok = h.substr(body, 3) == "PGP";
      break;
    }
    case 11:  // literal data: the format octet
      ok = v == 'b' || v == 't' || v == 'u' || v == 'l' || v == '1' || v == 'm';
      break;
    case 18:  // symmetrically encrypted integrity protected data: version 1 or 2
      ok = v == 1 || v == 2;
      break;
    case 20:  // AEAD encrypted data (GnuPG, RFC 4880bis): version 1
      ok = v == 1;
      break;
    default:
      ok = false;
  }
  return ok ? Kind::openpgp : Kind::unknown;
}

// cms_content_info: does |h| (its first octet is 0x30) begin with a ContentInfo whose
// contentType is one a sealed CMS object has?
Kind cms_content_info(std::string_view h) {
  if (h.size() < 2)
    return Kind::more;
  uint8_t l = at(h, 1);
  size_t i;
  if (l < 0x80 || l == 0x80)
    i = 2;  // short form, or BER's indefinite length
  else if (l <= 0x84)
    i = 2 + (l & 0x7f);
  else
    return Kind::unknown;
  // The contentType's DER, tag and length included.
  static constexpr std::array<std::string_view, 3> kTypes = {
      std::string_view("\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03", 11),  // envelopedData
      std::string_view("\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02", 11),  // signedData
      std::string_view("\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01\x17",
                       13),  // authEnvelopedData
  };
  if (h.size() < i)
    return Kind::more;
  std::string_view rest = h.substr(i);
  bool more = false;
  for (std::string_view t : kTypes) {
    std::optional<bool> p = prefix(rest, t);
    if (p && *p)
      return Kind::cms;
    if (!p)
      more = true;
  }
  return more ? Kind::more : Kind::unknown;
}

// classify says what |h|, the first bytes of an input, is; |eof|: there are no more.
Kind classify(std::string_view h, bool eof) {
  Kind k = Kind::unknown;
  size_t i = 0;
  while (i < h.size() && blank(at(h, i)))
    ++i;
  if (i == h.size()) {
    k = Kind::more;
  } else if (i == 0 && (at(h, 0) & 0x80)) {
    k = openpgp_packet(h);
  } else if (i == 0 && at(h, 0) == 0x30) {
    k = cms_content_info(h);
  } else if (h[i] == '<') {
    k = Kind::stanzas;
  } else if (h[i] == '-') {
    std::string_view s = h.substr(i);
    std::optional<bool> p = prefix(s, kArmorMessage);
    if (!p)
      k = Kind::more;
    else if (*p && s.size() == kArmorMessage.size())
      k = eof ? Kind::openpgp : Kind::more;
    else if (*p && blank(at(s, kArmorMessage.size())))
      k = Kind::openpgp;
  }
  if (k == Kind::more && eof)
    k = Kind::unknown;
  return k;
}

// first_line is the first line of |h| after white space, when it is printable ASCII.
std::optional<std::string> first_line(std::string_view h) {
  size_t i = 0;
  while (i < h.size() && blank(at(h, i)))
    ++i;
  size_t end = h.find_first_of("\r\n", i);
  std::string_view line = h.substr(i, end == std::string_view::npos ? h.size() - i : end - i);
  if (line.empty())
    return std::nullopt;
  for (char c : line)
    if (c < 0x20 || c > 0x7e)
      return std::nullopt;
  return std::string(line);
}

bool starts_with_ci(std::string_view s, std::string_view lit) {
  if (s.size() < lit.size())
    return false;
  for (size_t i = 0; i < lit.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(lit[i])))
      return false;
  return true;
}

// refuse_unknown fails for an input |name| whose first bytes |h| are none of the formats,
// saying what they are when they are one of the forms we know of.
[[noreturn]] void refuse_unknown(const std::string& name, std::string_view h) {
  std::string what = "cannot tell the format of " + name;
  std::string formats = "name the format with --format (files: aesgcm, openpgp, cms)";
  if (h.empty())
    fail_with(Errc::malformed, what + ": it is empty");
  std::optional<std::string> line = first_line(h);
  if (line && (*line == "-----BEGIN CMS-----" || *line == "-----BEGIN PKCS7-----"))
    fail_with(Errc::malformed, name + " is CMS in PEM: open reads CMS in DER or BER",
              "convert it: openssl cms -cmsout -inform PEM -outform DER -in FILE -out FILE.der");
  if (line && (starts_with_ci(*line, "MIME-Version:") ||
               starts_with_ci(*line, "Content-Type: application/pkcs7-mime") ||
               starts_with_ci(*line, "Content-Type: application/x-pkcs7-mime")))
    fail_with(Errc::malformed,
              name +
                  " is an S/MIME message (what openssl cms writes by default): open reads CMS "
                  "in DER or BER",
              "convert it: openssl cms -cmsout -inform SMIME -outform DER -in FILE -out FILE.der; "
              "or make it with openssl cms -encrypt -outform DER");
  if (line && line->starts_with("-----BEGIN PGP "))
    fail_with(Errc::malformed,
              what + ": it is OpenPGP armor, but not of a message ('" + line->substr(0, 60) + "')",
              "open takes an OpenPGP message (-----BEGIN PGP MESSAGE-----)");
  std::string found;
  if (line) {
    found = "it begins with '" + line->substr(0, 32) + (line->size() > 32 ? "...'" : "'");
  } else {
    found = "its first bytes are";
    char b[4];
    for (size_t i = 0; i < std::min<size_t>(h.size(), 8); ++i) {
      std::snprintf(b, sizeof b, " %02x", at(h, i));
      found += b;
    }
  }
  fail_with(Errc::malformed,
            what + ": not an OpenPGP message, a CMS object or stanzas (" + found + ")",
            "an aesgcm file has no header: give its key with --key-file FILE or --key-fd N; or " +
                formats);
}

// child_list names the child elements of |st| for a message, at most 4.
std::string child_list(const xml::Element& st) {
  std::string out;
  size_t n = 0;
  for (const xml::Element* c : st.element_children()) {
    if (n++ == 4) {
      out += ", ...";
      break;
    }
    out += (out.empty() ? "" : ", ") + ("<" + c->name + "/>") +
           (c->ns.empty() ? std::string(" in no namespace") : " in " + c->ns);
  }
  return out.empty() ? "it has no child elements" : "it has " + out;
}

}  // namespace

std::string stanza_format(const xml::Element& st) {
  bool ox = st.count_children("openpgp", kNsOx) > 0;
  bool smime = st.count_children("e2e", smime::kNsE2e) > 0;
  bool es = read_offline_request(st).has_value();
  std::string stanza = "the <" + st.name + "/> stanza";
  if (ox && smime)
    fail_with(Errc::malformed,
              "cannot tell the format of " + stanza + ": it has both <openpgp xmlns='" +
                  std::string(kNsOx) + "'/> (ox) and <e2e xmlns='" + std::string(smime::kNsE2e) +
                  "'/> (smime)",
              "name the one to open with --format ox or --format smime");
  if (es && (ox || smime))
    fail_with(Errc::malformed,
              "cannot tell the format of " + stanza + ": it is an offline request (esession) and " +
                  (ox ? "has <openpgp/> (ox)" : "has <e2e/> (smime)"),
              "name the one to open with --format esession, ox or smime");
  if (!ox && !smime && !es)
    fail_with(Errc::malformed,
              "cannot tell the format of " + stanza + ": no <openpgp xmlns='" + std::string(kNsOx) +
                  "'/> (ox) or <e2e xmlns='" + std::string(smime::kNsE2e) +
                  "'/> (smime) among its children; " + child_list(st) +
                  "; nor is it an offline request (esession)",
              "name the format with --format ox or --format smime (or --format esession; a "
              "stanza that is not sealed has nothing to open)");
  return ox ? "ox" : smime ? "smime" : "esession";
}

// Relay hands a non-seekable input on through a pipe: first the bytes detection read, then
// the rest of the input as it arrives.
class DetectedInput::Relay {
 public:
  Relay(int src, std::string head) : m_src(src), m_head(std::move(head)) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
      fail_with(Errc::io, "cannot make a pipe: " + errno_text());
    m_read.reset(p[0]);
    m_write.reset(p[1]);
    if (::pipe2(p, O_CLOEXEC) != 0)
      fail_with(Errc::io, "cannot make a pipe: " + errno_text());
    m_stop_r.reset(p[0]);
    m_stop_w.reset(p[1]);
    widen_pipe(m_read.get());
    m_thread = std::thread([this] { run(); });
  }
  ~Relay() { stop(); }
  int fd() const { return m_read.get(); }
  // stop ends the relay (the reader is done with the input) and returns errno of a failed read
  // of the input, or 0.
  int stop() {
    if (m_thread.joinable()) {
      m_read.reset();    // a write blocked on the pipe fails (EPIPE)
      m_stop_w.reset();  // a poll waiting for input returns
      m_thread.join();
    }
    return m_errno;
  }

 private:
  void run() {
    bool splice_ok = true;
    if (write_out(m_head.data(), m_head.size())) {
      std::string().swap(m_head);
      std::vector<char> buf;
      for (;;) {
        pollfd p[2] = {{m_src, POLLIN, 0}, {m_stop_r.get(), POLLIN, 0}};
        int n = ::poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
          continue;
        if (n < 0) {
          m_errno = errno;
          break;
        }
        if (p[1].revents)
          break;
        ssize_t got = -1;
        if (splice_ok) {
          got = ::splice(m_src, nullptr, m_write.get(), nullptr, 1 << 16, SPLICE_F_MOVE);
          if (got < 0 && errno == EINVAL) {
            splice_ok = false;  // not a file, pipe or socket: copy
            continue;
          }
          if (got < 0 && errno == EPIPE)
            break;
        } else {
          if (buf.empty())
            buf.resize(1 << 16);
          got = ::read(m_src, buf.data(), buf.size());
          if (got > 0 && !write_out(buf.data(), static_cast<size_t>(got)))
            break;
        }
        if (got == 0)
          break;
        if (got < 0 && errno != EINTR && errno != EAGAIN) {
          m_errno = errno;
          break;
        }
      }
    }
    m_write.reset();  // the end of the input
  }

  // write_out writes to the pipe; false when the reader has gone.
  bool write_out(const char* p, size_t n) {
    while (n) {
      ssize_t w = ::write(m_write.get(), p, n);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  int m_src;
  std::string m_head;
  fs::UniqueFd m_read, m_write, m_stop_r, m_stop_w;
  int m_errno = 0;
  std::thread m_thread;
};

DetectedInput::DetectedInput() = default;
DetectedInput::~DetectedInput() = default;

void DetectedInput::finish() {
  if (!m_relay)
    return;
  int e = m_relay->stop();
  if (e)
    fail_with(Errc::io, m_name + ": cannot read: " + std::strerror(e));
}

void DetectedInput::detect(Context& ctx, ObjectOpts& o) {
  if (!o.key_file.empty() || o.key_fd >= 0) {
    // The key of an aesgcm file names its format: the others take none.
    o.format = "aesgcm";
    o.file = true;
    o.format_detected = true;
    ctx.status("FORMAT", {o.format});
    return;
  }
  m_name = is_stdio(o.input) ? "standard input" : o.input;
  int fd = open_input(o, m_own);
  struct stat st;
  bool seekable = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  off_t start = seekable ? ::lseek(fd, 0, SEEK_CUR) : -1;
  if (start < 0)
    seekable = false;

  std::string head;
  bool eof = false;
  std::vector<uint8_t> buf(1 << 16);
  auto read_more = [&] {
    size_t n = check(fs::read_some(fd, buf, m_name));
    if (n == 0)
      eof = true;
    head.append(reinterpret_cast<const char*>(buf.data()), n);
    return n;
  };
  Kind k = Kind::more;
  while (k == Kind::more) {
    if (!eof)
      read_more();
    k = classify(head, eof);
    if (k == Kind::more && head.size() >= xml::kMaxStanza)
      k = Kind::unknown;  // white space only, so far
  }
  if (k == Kind::unknown)
    refuse_unknown(m_name, std::string_view(head).substr(0, 4096));
  if (k == Kind::stanzas) {
    if (o.file)
      fail_with(Errc::malformed,
                "cannot tell the format of " + m_name + ": it begins with '<', as stanzas do, " +
                    "and --file says it is a file",
                "open stanzas without --file");
    // The first stanza tells.
    xml::StanzaReader reader(std::string(xml::kNsClient), xml::kMaxStanza);
    reader.feed(head);
    for (;;) {
      auto r = reader.next();
      if (!r)
        fail_with(r.error().code == Errc::io ? Errc::io : Errc::malformed,
                  "input: " + r.error().detail, "input must be XMPP stanzas (top-level elements)");
      if (*r) {
        o.format = stanza_format(**r);
        break;
      }
      if (eof)
        fail_with(Errc::malformed, "no stanza on the input", "give stanzas on standard input");
      size_t n = read_more();
      if (n == 0)
        reader.finish();
      else
        reader.feed(std::string_view(head).substr(head.size() - n));
    }
  } else {
    o.format = k == Kind::openpgp ? "openpgp" : "cms";
    o.file = true;
  }
  o.format_detected = true;
  ctx.status("FORMAT", {o.format});

  if (seekable) {
    if (::lseek(fd, start, SEEK_SET) != start)
      fail_with(Errc::io, m_name + ": cannot seek: " + errno_text());
    o.input_fd = fd;
  } else {
    m_relay = std::make_unique<Relay>(fd, std::move(head));
    o.input_fd = m_relay->fd();
  }
}

}  // namespace esession::cli
