// RFC 3923 stanza objects (S/MIME for XMPP) for `seal --format smime` / `open --format smime`.
// The layering is described in formats/objects.md ("smime").
//
// seal reads stanzas (message, presence or iq in jabber:client; each its own object, see
// for_each_stanza) and builds for each the protected object of RFC 3923 §5: a Message/CPIM
// entity (RFC 3862) whose headers From, To (im: URIs of the bare JIDs) and DateTime (UTC,
// milliseconds) are covered by the signature, and whose body is application/xmpp+xml:
// <xmpp xmlns='jabber:client'> holding the whole stanza. Messages take the same form rather
// than §3's text/plain body, so every payload element (not just <body/>) is protected. As S/MIME
// does (RFC 5751 §3.5), the entity is signed (multipart/signed, a detached SignedData in an
// application/pkcs7-signature part), that entity is encrypted (EnvelopedData, to the recipients and
// to the signer), and the application/pkcs7-mime entity of the EnvelopedData (base64) goes into
// <e2e xmlns='urn:ietf:params:xml:ns:xmpp-e2e'/>; the outer stanza keeps to, from, type, id and
// <thread/>.
//
// open decrypts, requires a good signature (chain to --ca-file/<home>/ca.pem, or exactly the -i
// certificate), checks that the protected From/To are the stanza's from/to (bare JIDs), that the
// signer's certificate names the sender (XmppAddr or im:/pres:/xmpp: URI; required unless -i
// names the certificate), and that DateTime is plausible (at most 5 minutes ahead, at most
// --max-age old), then writes the stanza with the protected payload in place of <e2e/>. It also
// reads the other forms peers make: bare base64 in <e2e/>; a DER SignedData, or an
// application/pkcs7-mime signed-data entity, inside the EnvelopedData; §3's text/plain body
// (made into a <body/>).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "crypto/random.hpp"
#include "identity.hpp"
#include "io.hpp"
#include "object/cms.hpp"
#include "seal.hpp"
#include "seal_x509.hpp"

namespace esession::cli {

namespace {

constexpr std::string_view kNsE2e = "urn:ietf:params:xml:ns:xmpp-e2e";
constexpr size_t kMaxObject = 1 << 20;      // one stanza
constexpr int64_t kMaxFutureSeconds = 300;  // RFC 3923 §6: within five minutes

void refuse_file_options(const ObjectOpts& o) {
  if (!o.key_out.empty() || !o.key_file.empty() || o.key_fd >= 0)
    fail_with(Errc::malformed, "smime takes no --key-out, --key-file or --key-fd",
              "recipients are certificates (-r), the signer an identity (-i)");
  if (!is_stdio(o.output))
    fail_with(Errc::malformed, "smime writes the stanza to standard output: -o is not supported",
              "redirect standard output instead");
}

std::string bare(const std::string& jid) {
  return jid.substr(0, jid.find('/'));
}

std::string iso_utc(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// iso_utc_ms writes |ms| (milliseconds since the epoch) as RFC 3923 §6.9 asks: UTC, with the
// fraction of a second, e.g. 2026-11-26T18:20:00.123Z.
std::string iso_utc_ms(int64_t ms) {
  std::string s = iso_utc(ms / 1000);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms % 1000));
  return s.substr(0, s.size() - 1) + frac;
}

// parse_datetime reads an RFC 3339 date-time (fractions ignored, Z or an offset).
std::optional<int64_t> parse_datetime(const std::string& s) {
  int Y, M, D, h, m, sec;
  int n = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 ||
      n != 19)
    return std::nullopt;
  size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      ++i, ++digits;
    if (!digits)
      return std::nullopt;
  }
  int64_t offset = 0;
  std::string rest = s.substr(i);
  if (rest == "Z" || rest == "z") {
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
             std::isdigit(static_cast<unsigned char>(rest[1])) &&
             std::isdigit(static_cast<unsigned char>(rest[2])) &&
             std::isdigit(static_cast<unsigned char>(rest[4])) &&
             std::isdigit(static_cast<unsigned char>(rest[5]))) {
    offset = (std::stoi(rest.substr(1, 2)) * 60 + std::stoi(rest.substr(4, 2))) * 60;
    if (rest[0] == '-')
      offset = -offset;
  } else {
    return std::nullopt;
  }
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  return static_cast<int64_t>(::timegm(&tm)) - offset;
}

// A MIME header block: lines up to an empty line, CRLF or LF, with folded continuations.
struct Headers {
  std::vector<std::pair<std::string, std::string>> fields;  // names in lower case
  const std::string* get(const std::string& lower) const {
    for (const auto& [k, v] : fields)
      if (k == lower)
        return &v;
    return nullptr;
  }
  size_t count(const std::string& lower) const {
    size_t n = 0;
    for (const auto& f : fields)
      n += f.first == lower;
    return n;
  }
};

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos)
    return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// read_headers parses the header block at |pos| of |s| and moves |pos| past its empty line.
Headers read_headers(const std::string& s, size_t& pos, const char* what) {
  Headers h;
  for (;;) {
    size_t eol = s.find('\n', pos);
    if (eol == std::string::npos)
      fail_with(Errc::malformed, std::string("the ") + what + " headers do not end");
    std::string line = s.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    pos = eol + 1;
    if (line.empty())
      return h;
    if ((line[0] == ' ' || line[0] == '\t') && !h.fields.empty()) {
      h.fields.back().second += " " + trim(line);
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0)
      fail_with(Errc::malformed, std::string("a ") + what + " header without a name: " + line);
    h.fields.emplace_back(lower(trim(line.substr(0, colon))), trim(line.substr(colon + 1)));
  }
}

// media_type returns the type/subtype of a Content-Type value, in lower case.
std::string media_type(const std::string* v) {
  if (!v)
    return {};
  return lower(trim(v->substr(0, v->find(';'))));
}

// address_jid takes the bare JID out of a CPIM address: [Formal-name] <im:jid>, with the im:,
// pres: or xmpp: scheme.
std::string address_jid(const std::string& v, const char* header) {
  size_t lt = v.rfind('<');
  size_t gt = v.rfind('>');
  if (lt == std::string::npos || gt == std::string::npos || gt < lt)
    fail_with(Errc::malformed, std::string("the CPIM ") + header + " header has no <URI>: " + v);
  std::string uri = v.substr(lt + 1, gt - lt - 1);
  for (const char* scheme : {"im:", "pres:", "xmpp:"}) {
    if (lower(uri).starts_with(scheme)) {
      std::string jid = uri.substr(std::strlen(scheme));
      if (jid.starts_with("//"))
        fail_with(Errc::malformed, std::string("the CPIM ") + header + " URI has an authority");
      return bare(jid.substr(0, jid.find('?')));
    }
  }
  fail_with(Errc::malformed,
            std::string("the CPIM ") + header + " URI is not an im:, pres: or xmpp: URI: " + uri);
}

bool is_stanza(const xml::Element& e) {
  return e.ns == xml::kNsClient && (e.name == "message" || e.name == "presence" || e.name == "iq");
}

void check_stanza(const xml::Element& s) {
  if (!is_stanza(s))
    fail_with(Errc::malformed,
              "<" + s.name + "/> in '" + s.ns + "' is not a message, presence or iq stanza");
}

// The CPIM entity (RFC 3862 §2) made by seal.
std::string make_cpim(const std::string& from, const std::string& to, int64_t now_ms,
                      const xml::Element& stanza) {
  xml::Element wrap("xmpp", std::string(xml::kNsClient));
  wrap.add(stanza);
  std::string body = xml::serialize(wrap);
  return "Content-Type: Message/CPIM\r\n\r\nFrom: <im:" + from + ">\r\nTo: <im:" + to +
         ">\r\nDateTime: " + iso_utc_ms(now_ms) +
         "\r\n\r\nContent-Type: application/xmpp+xml\r\n\r\n" + body;
}

// Protected is what open found in the CPIM entity.
struct Protected {
  std::string from, to;
  int64_t time;
  std::vector<xml::Element> payload;
  // A PIDF body (presence only) also says whether the sender is available: "" (available)
  // or "unavailable", the stanza's type.
  std::optional<std::string> presence_type;
};

constexpr std::string_view kNsPidf = "urn:ietf:params:xml:ns:pidf";
constexpr std::string_view kNsPidfIm = "urn:ietf:params:xml:ns:pidf:im";

// pidf_presence reads an application/pidf+xml body (RFC 3863), the form RFC 3923 §4 gives
// secured presence, into |p| as XMPP presence: the first <tuple/>'s <basic/> (open or closed)
// is the type, available or unavailable; its <im:im/> (urn:ietf:params:xml:ns:pidf:im) is the
// <show/> (away, chat, dnd and xa as they are, busy as dnd; anything else none); its <note/>,
// else the document's, is the <status/>.
void pidf_presence(const std::string& body, Protected& p) {
  std::string doc = body;
  if (doc.starts_with("<?xml")) {  // the XML declaration PIDF documents begin with
    size_t end = doc.find("?>");
    if (end == std::string::npos)
      fail_with(Errc::malformed, "the application/pidf+xml body has a broken XML declaration");
    doc.erase(0, end + 2);
  }
  size_t start = doc.find_first_not_of(" \t\r\n");
  xml::Element pidf = check(xml::parse(start == std::string::npos ? "" : doc.substr(start)));
  if (!pidf.is("presence", kNsPidf))
    fail_with(Errc::malformed, "the application/pidf+xml body is not <presence xmlns='" +
                                   std::string(kNsPidf) + "'>");
  const xml::Element* tuple = pidf.child("tuple", kNsPidf);
  const xml::Element* status = tuple ? tuple->child("status", kNsPidf) : nullptr;
  const xml::Element* basic = status ? status->child("basic", kNsPidf) : nullptr;
  if (!basic)
    fail_with(Errc::malformed, "the PIDF document has no <tuple><status><basic/>");
  std::string state = trim(basic->text_content());
  if (state != "open" && state != "closed")
    fail_with(Errc::malformed, "the PIDF <basic/> is '" + state + "', not open or closed");
  p.presence_type = state == "open" ? "" : "unavailable";
  if (const xml::Element* im = status->child("im", kNsPidfIm)) {
    std::string v = lower(trim(im->text_content()));
    if (v == "busy")
      v = "dnd";
    if (state == "open" && (v == "away" || v == "chat" || v == "dnd" || v == "xa")) {
      xml::Element show("show", std::string(xml::kNsClient));
      show.add(xml::Element::text_node(v));
      p.payload.push_back(std::move(show));
    }
  }
  const xml::Element* note = tuple->child("note", kNsPidf);
  if (!note)
    note = pidf.child("note", kNsPidf);
  if (note && !trim(note->text_content()).empty()) {
    xml::Element st("status", std::string(xml::kNsClient));
    st.add(xml::Element::text_node(trim(note->text_content())));
    p.payload.push_back(std::move(st));
  }
}

Protected parse_cpim(const std::string& s) {
  size_t pos = 0;
  Headers mime = read_headers(s, pos, "MIME");
  if (media_type(mime.get("content-type")) != "message/cpim")
    fail_with(Errc::malformed, "the protected object is not Message/CPIM");
  Headers msg = read_headers(s, pos, "CPIM");
  for (const char* h : {"from", "to", "datetime"})
    if (msg.count(h) != 1)
      fail_with(Errc::malformed, std::string("the CPIM object needs exactly one ") + h + " header");
  Protected p;
  p.from = address_jid(*msg.get("from"), "From");
  p.to = address_jid(*msg.get("to"), "To");
  auto t = parse_datetime(*msg.get("datetime"));
  if (!t)
    fail_with(Errc::malformed,
              "the CPIM DateTime is not an RFC 3339 date-time: " + *msg.get("datetime"));
  p.time = *t;
  Headers content = read_headers(s, pos, "content");
  std::string type = media_type(content.get("content-type"));
  std::string body = s.substr(pos);
  if (type == "text/plain") {  // RFC 3923 §3
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r'))
      body.pop_back();
    if (!xml::valid_xml_utf8(body))
      fail_with(Errc::malformed, "the text/plain body is not UTF-8 text");
    xml::Element b("body", std::string(xml::kNsClient));
    b.add(xml::Element::text_node(body));
    p.payload.push_back(std::move(b));
    return p;
  }
  if (type == "application/pidf+xml") {  // RFC 3923 §4
    pidf_presence(body, p);
    return p;
  }
  if (type != "application/xmpp+xml")
    fail_with(Errc::malformed,
              "the CPIM body is '" + type +
                  "', not application/xmpp+xml, text/plain or application/pidf+xml");
  xml::Element wrap = check(xml::parse(body, xml::kNsClient));
  if (!wrap.is("xmpp", xml::kNsClient))
    fail_with(Errc::malformed, "the application/xmpp+xml body is not <xmpp xmlns='jabber:client'>");
  auto kids = wrap.element_children();
  // The whole stanza (what seal writes), or its payload elements directly.
  if (kids.size() == 1 && is_stanza(*kids.front())) {
    for (const auto& c : kids.front()->children)
      if (!c.is_text())
        p.payload.push_back(c);
  } else {
    for (const auto* c : kids)
      p.payload.push_back(*c);
  }
  return p;
}

// starts_with_header tells whether |s| opens with a MIME header field (name ":"): base64 and
// DER never do.
bool starts_with_header(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == 0 || colon == std::string_view::npos)
    return false;
  for (size_t i = 0; i < colon; ++i)
    if (static_cast<unsigned char>(s[i]) <= ' ' || static_cast<unsigned char>(s[i]) >= 127)
      return false;
  return true;
}

// param returns the parameter |name| (lower case) of a Content-Type value, unquoted.
std::optional<std::string> param(const std::string& v, std::string_view name) {
  size_t i = v.find(';');
  while (i != std::string::npos) {
    size_t eq = v.find('=', i + 1);
    if (eq == std::string::npos)
      return std::nullopt;
    std::string key = lower(trim(std::string_view(v).substr(i + 1, eq - i - 1)));
    size_t j = eq + 1;
    while (j < v.size() && (v[j] == ' ' || v[j] == '\t'))
      ++j;
    std::string val;
    if (j < v.size() && v[j] == '"') {
      for (++j; j < v.size() && v[j] != '"'; ++j) {
        if (v[j] == '\\' && j + 1 < v.size())
          ++j;
        val += v[j];
      }
      i = v.find(';', j);
    } else {
      i = v.find(';', j);
      val = trim(std::string_view(v).substr(j, i == std::string::npos ? i : i - j));
    }
    if (key == name)
      return val;
  }
  return std::nullopt;
}

bool is_pkcs7(const std::string& type, std::string_view sub) {
  return type == "application/pkcs7-" + std::string(sub) ||
         type == "application/x-pkcs7-" + std::string(sub);
}

// body_bytes decodes a MIME body by its Content-Transfer-Encoding: base64 (whitespace ignored),
// or binary/7bit/8bit as is.
Bytes body_bytes(const Headers& h, std::string_view body, const char* what) {
  const std::string* cte = h.get("content-transfer-encoding");
  std::string enc = cte ? lower(*cte) : "7bit";
  if (enc == "binary" || enc == "7bit" || enc == "8bit")
    return Bytes(body.begin(), body.end());
  if (enc != "base64")
    fail_with(Errc::unsupported, std::string("the ") + what + "'s transfer encoding is " + enc);
  std::string compact;
  for (char c : body)
    if (!std::isspace(static_cast<unsigned char>(c)))
      compact += c;
  auto der = unbase64(compact);
  if (!der || der->empty())
    fail_with(Errc::malformed, std::string("the ") + what + " is not base64");
  return std::move(der).value();
}

// base64_lines is base64 in lines of 76 characters (RFC 2045 §6.8), each ended by |eol|.
std::string base64_lines(ByteView b, std::string_view eol) {
  std::string b64 = base64(b);
  std::string out;
  out.reserve(b64.size() + (b64.size() / 76 + 1) * eol.size());
  for (size_t i = 0; i < b64.size(); i += 76)
    out.append(b64, i, 76).append(eol);
  return out;
}

// canonical_crlf turns every bare LF of |s| into CRLF (RFC 5751 §3.1.1).
std::string canonical_crlf(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 32);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
      out += '\r';
    out += s[i];
  }
  return out;
}

// split_multipart returns the parts of the multipart body of |s| from |pos| (RFC 2046 §5.1.1):
// each exactly as transmitted, without the line end before the next delimiter, which belongs to
// it. The preamble and epilogue are ignored.
std::vector<std::string_view> split_multipart(std::string_view s, size_t pos,
                                              const std::string& boundary) {
  const std::string delim = "--" + boundary;
  const std::string next_delim = "\n" + delim;
  size_t d = s.substr(pos).starts_with(delim) ? pos : s.find(next_delim, pos);
  std::vector<std::string_view> parts;
  for (;;) {
    if (d == std::string_view::npos)
      fail_with(Errc::malformed, "the multipart/signed entity does not end (no boundary)");
    if (s[d] == '\n')
      ++d;
    size_t after = d + delim.size();
    if (s.substr(after).starts_with("--"))
      return parts;
    size_t eol = s.find('\n', after);
    if (eol == std::string_view::npos || !trim(s.substr(after, eol - after)).empty())
      fail_with(Errc::malformed, "a multipart/signed boundary line is malformed");
    if (parts.size() == 2)
      fail_with(Errc::malformed, "the multipart/signed entity has more than two parts");
    size_t start = eol + 1;
    d = s.find(next_delim, start);
    if (d != std::string_view::npos) {
      size_t end = d > start && s[d - 1] == '\r' ? d - 1 : d;
      parts.push_back(s.substr(start, end - start));
    }
  }
}

// signed_content returns the entity the signed layer |s| (what the EnvelopedData held)
// protects, once its signature checked: multipart/signed with an application/pkcs7-signature
// part (RFC 5751 §3.4.3), or application/pkcs7-mime; smime-type=signed-data (§3.4.2). Anything
// else is unsigned: Verdict none, Errc::auth_failed.
Result<Bytes> signed_content(const std::string& s, const cms::Trust& trust, cms::Verdict& v) {
  v = {};
  v.state = cms::Verdict::State::none;
  Error not_signed = fail(Errc::auth_failed,
                          "the object is not signed: nothing authenticates its content (CBC "
                          "has no integrity)");
  if (!starts_with_header(s))
    return not_signed;
  size_t pos = 0;
  Headers h = read_headers(s, pos, "signed entity");
  const std::string* ct = h.get("content-type");
  std::string type = media_type(ct);
  if (is_pkcs7(type, "mime")) {
    std::string st = lower(param(*ct, "smime-type").value_or("signed-data"));
    if (st != "signed-data")
      fail_with(Errc::unsupported, "the signed layer is application/pkcs7-mime; smime-type=" + st +
                                       ", not signed-data");
    Bytes der = body_bytes(h, std::string_view(s).substr(pos), "signed-data entity");
    return cms::open_signed_bytes(trust, der, v, kMaxObject);
  }
  if (type != "multipart/signed")
    return not_signed;
  std::string protocol = lower(param(*ct, "protocol").value_or(""));
  if (!is_pkcs7(protocol, "signature"))
    fail_with(Errc::unsupported, "the multipart/signed protocol is '" + protocol +
                                     "', not application/pkcs7-signature");
  std::optional<std::string> boundary = param(*ct, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 70)
    fail_with(Errc::malformed, "the multipart/signed entity has no valid boundary");
  auto parts = split_multipart(s, pos, *boundary);
  if (parts.size() != 2)
    fail_with(Errc::malformed, "the multipart/signed entity has " + std::to_string(parts.size()) +
                                   " parts, not two");
  std::string sig_part(parts[1]);
  sig_part += "\n";
  size_t sig_pos = 0;
  Headers sh = read_headers(sig_part, sig_pos, "signature part");
  if (!is_pkcs7(media_type(sh.get("content-type")), "signature"))
    fail_with(Errc::malformed,
              "the second part of the multipart/signed entity is not "
              "application/pkcs7-signature");
  Bytes sig = body_bytes(sh, std::string_view(sig_part).substr(sig_pos), "signature part");
  // The signature covers part 1 exactly as transmitted; a signer that did not canonicalise
  // line ends to CRLF (RFC 5751 §3.1.1) for the transfer but did for the signature is read too.
  std::string_view signed_part = parts[0];
  Status ok = cms::verify_detached(sig, view(signed_part), trust, v);
  if (ok)
    return Bytes(signed_part.begin(), signed_part.end());
  std::string canonical = canonical_crlf(signed_part);
  if (canonical.size() != signed_part.size()) {
    cms::Verdict v2;
    if (cms::verify_detached(sig, view(canonical), trust, v2)) {
      v = std::move(v2);
      return Bytes(canonical.begin(), canonical.end());
    }
  }
  return ok.error();
}

// multipart_signed is the multipart/signed entity (RFC 5751 §3.4.3.2, RFC 1847) of |content|
// and its detached SignedData |sig|, CRLF line ends throughout.
std::string multipart_signed(const std::string& content, ByteView sig) {
  std::string boundary;
  do {
    Bytes rnd(16);
    OsRandom().fill(rnd);
    boundary = "----=_esession_" + hex(rnd);
  } while (content.find(boundary) != std::string::npos);
  return "MIME-Version: 1.0\r\n"
         "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
         "micalg=sha-256; boundary=\"" +
         boundary +
         "\"\r\n"
         "\r\n"
         "This is an S/MIME signed message\r\n"
         "\r\n--" +
         boundary + "\r\n" + content + "\r\n--" + boundary +
         "\r\n"
         "Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
         "Content-Transfer-Encoding: base64\r\n"
         "Content-Disposition: attachment; filename=smime.p7s\r\n"
         "\r\n" +
         base64_lines(sig, "\r\n") + "\r\n--" + boundary + "--\r\n";
}

// e2e_der returns the EnvelopedData an <e2e/> carries: an application/pkcs7-mime entity
// (base64 body), or bare base64 as older esession wrote.
Bytes e2e_der(const xml::Element& e2e) {
  std::string text = trim(e2e.text_content());
  if (starts_with_header(text)) {
    text += "\n";
    size_t pos = 0;
    Headers h = read_headers(text, pos, "S/MIME");
    const std::string* ct = h.get("content-type");
    std::string type = media_type(ct);
    if (!is_pkcs7(type, "mime"))
      fail_with(Errc::malformed, "the <e2e/> entity is '" + type + "', not application/pkcs7-mime",
                "objects that are signed but not encrypted are not accepted");
    std::string st = lower(param(*ct, "smime-type").value_or("enveloped-data"));
    if (st != "enveloped-data")
      fail_with(Errc::malformed, "the <e2e/> entity is smime-type=" + st + ", not enveloped-data",
                "objects that are signed but not encrypted are not accepted");
    const std::string* cte = h.get("content-transfer-encoding");
    if (cte && lower(*cte) != "base64")
      fail_with(Errc::unsupported, "the <e2e/> entity's transfer encoding is " + *cte,
                "only base64 fits in XML character data");
    text = text.substr(pos);
  }
  std::string compact;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c)))
      compact += c;
  auto der = unbase64(compact);
  if (!der || der->empty())
    fail_with(Errc::malformed, "the <e2e/> content is not base64");
  return std::move(der).value();
}

void seal_one(Context& ctx, const cms::KeyedIdentity& signer,
              const std::vector<Certificate>& recipients, const xml::Element& stanza) {
  check_stanza(stanza);
  if (stanza.child("e2e", kNsE2e))
    fail_with(Errc::malformed, "the stanza already carries an <e2e/>");
  std::string from = bare(stanza.attr_or("from"));
  std::string to = bare(stanza.attr_or("to"));
  if (from.empty() || to.empty())
    fail_with(Errc::malformed, "the stanza needs from and to attributes",
              "RFC 3923 binds the object to both JIDs: give from='...' and to='...'");

  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::string cpim = make_cpim(from, to, now_ms, stanza);
  // One stanza: signed and sealed in memory. S/MIME signs, then encrypts the signed entity
  // (RFC 5751 §3.5).
  Bytes sig = check(cms::sign_detached(signer, view(cpim)));
  std::string entity = multipart_signed(cpim, sig);
  Bytes der = check(cms::seal_bytes(recipients, nullptr, view(entity)));
  uint64_t n = cpim.size();

  xml::Element sealed(stanza.name, stanza.ns);
  sealed.attrs = stanza.attrs;
  if (const auto* thread = stanza.child("thread", xml::kNsClient))
    sealed.add(*thread);
  xml::Element e2e("e2e", std::string(kNsE2e));
  e2e.add(xml::Element::text_node(
      "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\n"
      "Content-Transfer-Encoding: base64\n\n" +
      base64_lines(der, "\n")));
  sealed.add(std::move(e2e));
  write_stanza(sealed);
  ctx.status("SEALED", "smime " + std::to_string(n));
  ctx.info("sealed " + stanza.name + " stanza (smime, signed by " + signer.chain.front().subject() +
           ")");
}

// E2eFailure is the case of RFC 3923 §7 a refused object falls in, for --error-reply.
enum class E2eFailure { none, decryption, signature, timestamp };

// error_reply is the stanza error sent back to the sender of |stanza| (RFC 6120 §8.3): the same
// stanza kind and id, from and to swapped, type 'error', the <e2e/> echoed, and the defined
// condition with the application condition of RFC 3923 §7 in the e2e namespace: bad-request
// with decryption-failed; not-acceptable with signature-unverified or bad-timestamp.
xml::Element error_reply(const xml::Element& stanza, E2eFailure why) {
  xml::Element reply(stanza.name, stanza.ns);
  if (const std::string* f = stanza.attr("from"))
    reply.set_attr("to", *f);
  if (const std::string* t = stanza.attr("to"))
    reply.set_attr("from", *t);
  reply.set_attr("type", "error");
  if (const std::string* id = stanza.attr("id"))
    reply.set_attr("id", *id);
  if (const xml::Element* e2e = stanza.child("e2e", kNsE2e))
    reply.add(*e2e);
  xml::Element& error = reply.add(xml::Element("error", stanza.ns));
  error.set_attr("type", "modify");
  const char* defined = why == E2eFailure::decryption ? "bad-request" : "not-acceptable";
  const char* app = why == E2eFailure::decryption  ? "decryption-failed"
                    : why == E2eFailure::signature ? "signature-unverified"
                                                   : "bad-timestamp";
  error.add(xml::Element(defined, "urn:ietf:params:xml:ns:xmpp-stanzas"));
  error.add(xml::Element(app, std::string(kNsE2e)));
  return reply;
}

}  // namespace

int seal_smime(Context& ctx, const ObjectOpts& o) {
  refuse_file_options(o);
  if (o.allow_unsigned || !o.identity.empty())
    fail_with(Errc::malformed, "--allow-unsigned and --identity are options of open");
  if (o.recipients.empty())
    fail_with(Errc::malformed, "smime needs at least one recipient: -r CERTFILE",
              "give the recipient's certificate (PEM or DER); repeat -r for more");
  if (o.signers.size() > 1)
    fail_with(Errc::malformed, "smime takes one signer (-i)");
  std::vector<Certificate> recipients;
  for (const auto& r : o.recipients)
    recipients.push_back(load_certificate(r, "recipient certificate"));
  cms::KeyedIdentity signer =
      o.signers.empty()
          ? keyed_account_identity(ctx, {},
                                   "name the signer's identity file with -i FILE (PEM or PKCS#12)")
          : load_keyed_identity(ctx, o.signers.front());
  recipients.push_back(signer.chain.front());  // to ourselves too
  return for_each_stanza(ctx, o, kMaxObject, false,
                         [&](xml::Element& stanza) { seal_one(ctx, signer, recipients, stanza); });
}

namespace {

// open_one opens one sealed stanza for open_smime.
void open_one(Context& ctx, const ObjectOpts& o, const cms::KeyedIdentity& me,
              const cms::Trust& trust, const xml::Element& stanza) {
  check_stanza(stanza);
  if (stanza.count_children("e2e", kNsE2e) != 1)
    fail_with(Errc::malformed,
              "the stanza needs exactly one <e2e xmlns='" + std::string(kNsE2e) + "'/>");
  std::string from = bare(stanza.attr_or("from"));
  std::string to = bare(stanza.attr_or("to"));
  if (from.empty() || to.empty())
    fail_with(Errc::malformed, "the stanza needs from and to attributes to check the object by");
  // From here, a refusal falls in a case of RFC 3923 §7, which --error-reply answers.
  E2eFailure stage = E2eFailure::decryption;
  try {
    Bytes der = e2e_der(*stanza.child("e2e", kNsE2e));

    // One stanza: opened in memory. The EnvelopedData holds a signed MIME entity (S/MIME), or
    // a DER SignedData (older esession, `openssl cms -outform DER` pipelines, gpgsm), which
    // open_bytes checks itself.
    cms::Verdict verdict;
    cms::Trust outer = trust;
    outer.allow_unsigned = true;
    Result<Bytes> r = cms::open_bytes(me, outer, der, verdict, kMaxObject);
    if (r && verdict.state == cms::Verdict::State::none) {
      try {
        r = signed_content(string_of(view(*r)), trust, verdict);
      } catch (const Failure& f) {
        // What decrypted is not authenticated yet (CBC): a signed layer that does not parse may
        // as well have been modified.
        if (f.error.code != Errc::malformed)
          throw;
        verdict.state = cms::Verdict::State::bad;
        r = fail(Errc::auth_failed,
                 f.error.detail + ": the object was modified, or made wrongly (bad signature)");
      }
    }
    signature_status(ctx, verdict);
    if (!r && verdict.state == cms::Verdict::State::bad)
      stage = E2eFailure::signature;  // it decrypted; the signature is what failed
    if (!r && verdict.state == cms::Verdict::State::bad && trust.anchors.empty() && !trust.expected)
      check(std::move(r), "configure the signer's CA with --ca-file, or name the signer with -i");
    Bytes plain = check(std::move(r));
    uint64_t n = plain.size();

    stage = E2eFailure::none;  // a malformed CPIM entity, signed by its sender, is not a §7 case
    Protected p = parse_cpim(string_of(view(plain)));
    stage = E2eFailure::signature;  // signed, but not by the sender
    if (lower(p.from) != lower(from))
      fail_with(Errc::auth_failed,
                "the protected From (" + p.from + ") is not the stanza's from (" + from + ")",
                "the object was made for another conversation, or forwarded");
    // The signer's certificate must name the sender: an XmppAddr (RFC 6120 §13.7.1.4) or an
    // im:, pres: or xmpp: URI (RFC 3923 §6.3). Without one, only -i binds it to the sender.
    std::optional<Certificate> cert = verdict.signer_cert ? verdict.signer_cert : trust.expected;
    std::vector<std::string> names;
    if (cert) {
      for (const auto& a : cert->xmpp_addrs())
        names.push_back(lower(bare(a)));
      for (const auto& u : cert->uris())
        for (const char* scheme : {"im:", "pres:", "xmpp:"})
          if (lower(u).starts_with(scheme))
            names.push_back(lower(bare(u.substr(std::strlen(scheme)))));
    }
    if (names.empty() && !trust.expected)
      fail_with(Errc::auth_failed,
                "the signer's certificate (" + verdict.signer +
                    ") names no XMPP address: nothing "
                    "binds it to " +
                    from,
                "if it is " + from + "'s, name it with -i CERTFILE");
    if (!names.empty() && std::find(names.begin(), names.end(), lower(from)) == names.end())
      fail_with(Errc::auth_failed,
                "the signer's certificate names " + names.front() + ", not the sender " + from,
                "someone else signed it");
    stage = E2eFailure::none;  // made for someone else: not a §7 case
    if (lower(p.to) != lower(to))
      fail_with(Errc::auth_failed,
                "the protected To (" + p.to + ") is not the stanza's to (" + to + ")",
                "the object was made for someone else, or forwarded");
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    stage = E2eFailure::timestamp;
    if (p.time > now + kMaxFutureSeconds)
      fail_with(Errc::replay, "the protected DateTime " + iso_utc(p.time) + " is in the future",
                "check the clocks");
    if (now - p.time > o.max_age)
      fail_with(Errc::replay,
                "the protected DateTime " + iso_utc(p.time) + " is older than --max-age (" +
                    std::to_string(o.max_age) + " s)",
                "a replay, or a late delivery: raise --max-age to accept it");
    stage = E2eFailure::none;

    xml::Element opened(stanza.name, stanza.ns);
    opened.attrs = stanza.attrs;
    if (p.presence_type) {
      if (stanza.name != "presence")
        fail_with(Errc::malformed, "a PIDF presence document in a <" + stanza.name + "/> stanza");
      if (p.presence_type->empty())
        opened.remove_attr("type");
      else
        opened.set_attr("type", *p.presence_type);
    }
    for (auto& c : p.payload)
      opened.add(std::move(c));
    for (const auto& c : stanza.children)
      if (!c.is_text() && !c.is("e2e", kNsE2e) && !c.is("thread", xml::kNsClient))
        ctx.warn("dropped the unprotected <" + c.name + "/> outside the <e2e/>");
    write_stanza(opened);
    ctx.status("OPENED", "smime " + std::to_string(n));
    ctx.info("good signature by " + verdict.signer);
  } catch (const Failure&) {
    if (o.error_reply && stage != E2eFailure::none)
      write_stanza(error_reply(stanza, stage));
    throw;
  }
}

}  // namespace

int open_smime(Context& ctx, const ObjectOpts& o) {
  refuse_file_options(o);
  if (!o.recipients.empty())
    fail_with(Errc::malformed, "open takes no recipients (-r)");
  if (o.allow_unsigned)
    fail_with(Errc::malformed, "smime stanzas are always signed: --allow-unsigned is for files");
  if (o.signers.size() > 1)
    fail_with(Errc::malformed, "smime takes one expected signer (-i)");
  if (o.max_age < 0)
    fail_with(Errc::malformed, "--max-age must not be negative");
  cms::KeyedIdentity me =
      o.identity.empty()
          ? keyed_account_identity(ctx, {},
                                   "name an identity file with --identity FILE (PEM or PKCS#12)")
          : load_keyed_identity(ctx, o.identity);
  cms::Trust trust;
  if (!o.signers.empty())
    trust.expected = load_certificate(o.signers.front(), "signer certificate");
  else
    trust.anchors = ca_anchors(ctx);

  return for_each_stanza(ctx, o, kMaxObject, true,
                         [&](xml::Element& stanza) { open_one(ctx, o, me, trust, stanza); });
}

}  // namespace esession::cli
