// RFC 3923 object layering (smime.hpp).
#include "object/smime.hpp"

#include <cctype>
#include <cstring>

#include "crypto/random.hpp"
#include "util/datetime.hpp"
#include "util/jid.hpp"

namespace esession::smime {

namespace {

constexpr std::string_view kNsPidf = "urn:ietf:params:xml:ns:pidf";
constexpr std::string_view kNsPidfIm = "urn:ietf:params:xml:ns:pidf:im";

// A MIME header block: lines up to an empty line, CRLF or LF, with folded continuations.
struct Headers {
  std::vector<std::pair<std::string, std::string>> fields;  // names in lower case
  const std::string* get(std::string_view lower) const {
    for (const auto& [k, v] : fields)
      if (k == lower)
        return &v;
    return nullptr;
  }
  size_t count(std::string_view lower) const {
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
Result<Headers> read_headers(std::string_view s, size_t& pos, const char* what) {
  Headers h;
  for (;;) {
    size_t eol = s.find('\n', pos);
    if (eol == std::string_view::npos)
      return fail(Errc::malformed, std::string("the ") + what + " headers do not end");
    std::string_view line = s.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    pos = eol + 1;
    if (line.empty())
      return h;
    if ((line[0] == ' ' || line[0] == '\t') && !h.fields.empty()) {
      h.fields.back().second += " " + trim(line);
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return fail(Errc::malformed,
                  std::string("a ") + what + " header without a name: " + std::string(line));
    h.fields.emplace_back(lower(trim(line.substr(0, colon))), trim(line.substr(colon + 1)));
  }
}

// media_type returns the type/subtype of a Content-Type value, in lower case.
std::string media_type(const std::string* v) {
  if (!v)
    return {};
  return lower(trim(v->substr(0, v->find(';'))));
}

// param returns the parameter |name| (lower case) of a Content-Type value, unquoted.
std::optional<std::string> param(std::string_view v, std::string_view name) {
  size_t i = v.find(';');
  while (i != std::string_view::npos) {
    size_t eq = v.find('=', i + 1);
    if (eq == std::string_view::npos)
      return std::nullopt;
    std::string key = lower(trim(v.substr(i + 1, eq - i - 1)));
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
      val = trim(v.substr(j, i == std::string_view::npos ? i : i - j));
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

// unbase64_body decodes base64 with any whitespace in it; empty is an error.
Result<Bytes> unbase64_body(std::string_view body, const std::string& what) {
  std::string compact;
  compact.reserve(body.size());
  for (char c : body)
    if (!std::isspace(static_cast<unsigned char>(c)))
      compact += c;
  auto der = unbase64(compact);
  if (!der || der->empty())
    return fail(Errc::malformed, what + " is not base64");
  return std::move(der).value();
}

// body_bytes decodes a MIME body by its Content-Transfer-Encoding: base64 (whitespace ignored),
// or binary/7bit/8bit as is.
Result<Bytes> body_bytes(const Headers& h, std::string_view body, const char* what) {
  const std::string* cte = h.get("content-transfer-encoding");
  std::string enc = cte ? lower(*cte) : "7bit";
  if (enc == "binary" || enc == "7bit" || enc == "8bit")
    return Bytes(body.begin(), body.end());
  if (enc != "base64")
    return fail(Errc::unsupported, std::string("the ") + what + "'s transfer encoding is " + enc);
  return unbase64_body(body, std::string("the ") + what);
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
// it. The preamble and epilogue are ignored. At most two parts (multipart/signed).
Result<std::vector<std::string_view>> split_multipart(std::string_view s, size_t pos,
                                                      const std::string& boundary) {
  const std::string delim = "--" + boundary;
  const std::string next_delim = "\n" + delim;
  size_t d = s.substr(pos).starts_with(delim) ? pos : s.find(next_delim, pos);
  std::vector<std::string_view> parts;
  for (;;) {
    if (d == std::string_view::npos)
      return fail(Errc::malformed, "the multipart/signed entity does not end (no boundary)");
    if (s[d] == '\n')
      ++d;
    size_t after = d + delim.size();
    if (s.substr(after).starts_with("--"))
      return parts;
    size_t eol = s.find('\n', after);
    if (eol == std::string_view::npos || !trim(s.substr(after, eol - after)).empty())
      return fail(Errc::malformed, "a multipart/signed boundary line is malformed");
    if (parts.size() == 2)
      return fail(Errc::malformed, "the multipart/signed entity has more than two parts");
    size_t start = eol + 1;
    d = s.find(next_delim, start);
    if (d != std::string_view::npos) {
      size_t end = d > start && s[d - 1] == '\r' ? d - 1 : d;
      parts.push_back(s.substr(start, end - start));
    }
  }
}

// address_jid takes the bare JID out of a CPIM address: [Formal-name] <im:jid>, with the im:,
// pres: or xmpp: scheme.
Result<std::string> address_jid(const std::string& v, const char* header) {
  size_t lt = v.rfind('<');
  size_t gt = v.rfind('>');
  if (lt == std::string::npos || gt == std::string::npos || gt < lt)
    return fail(Errc::malformed, std::string("the CPIM ") + header + " header has no <URI>: " + v);
  std::string uri = v.substr(lt + 1, gt - lt - 1);
  for (const char* scheme : {"im:", "pres:", "xmpp:"}) {
    if (lower(uri).starts_with(scheme)) {
      std::string jid = uri.substr(std::strlen(scheme));
      if (jid.starts_with("//"))
        return fail(Errc::malformed, std::string("the CPIM ") + header + " URI has an authority");
      return bare_jid(jid.substr(0, jid.find('?')));
    }
  }
  return fail(Errc::malformed,
              std::string("the CPIM ") + header + " URI is not an im:, pres: or xmpp: URI: " + uri);
}

bool is_stanza(const xml::Element& e) {
  return e.ns == xml::kNsClient && (e.name == "message" || e.name == "presence" || e.name == "iq");
}

// pidf_presence reads an application/pidf+xml body (RFC 3863), the form RFC 3923 §4 gives
// secured presence, into |p| as XMPP presence: the first <tuple/>'s <basic/> (open or closed)
// is the type, available or unavailable; its <im:im/> (urn:ietf:params:xml:ns:pidf:im) is the
// <show/> (away, chat, dnd and xa as they are, busy as dnd; anything else none); its <note/>,
// else the document's, is the <status/>.
Status pidf_presence(std::string_view body, Protected& p) {
  std::string_view doc = body;
  if (doc.starts_with("<?xml")) {  // the XML declaration PIDF documents begin with
    size_t end = doc.find("?>");
    if (end == std::string_view::npos)
      return fail(Errc::malformed, "the application/pidf+xml body has a broken XML declaration");
    doc.remove_prefix(end + 2);
  }
  size_t start = doc.find_first_not_of(" \t\r\n");
  ES_ASSIGN(xml::Element pidf,
            xml::parse(start == std::string_view::npos ? std::string_view() : doc.substr(start)));
  if (!pidf.is("presence", kNsPidf))
    return fail(Errc::malformed, "the application/pidf+xml body is not <presence xmlns='" +
                                     std::string(kNsPidf) + "'>");
  const xml::Element* tuple = pidf.child("tuple", kNsPidf);
  const xml::Element* status = tuple ? tuple->child("status", kNsPidf) : nullptr;
  const xml::Element* basic = status ? status->child("basic", kNsPidf) : nullptr;
  if (!basic)
    return fail(Errc::malformed, "the PIDF document has no <tuple><status><basic/>");
  std::string state = trim(basic->text_content());
  if (state != "open" && state != "closed")
    return fail(Errc::malformed, "the PIDF <basic/> is '" + state + "', not open or closed");
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
  return {};
}

}  // namespace

std::string cpim_entity(std::string_view from, std::string_view to, int64_t now_ms,
                        const xml::Element& stanza) {
  xml::Element wrap("xmpp", std::string(xml::kNsClient));
  wrap.add(stanza);
  std::string body = xml::serialize(wrap);
  return "Content-Type: Message/CPIM\r\n\r\nFrom: <im:" + std::string(from) +
         ">\r\nTo: <im:" + std::string(to) + ">\r\nDateTime: " + format_datetime_ms(now_ms) +
         "\r\n\r\nContent-Type: application/xmpp+xml\r\n\r\n" + body;
}

Result<Protected> parse_cpim(std::string_view s) {
  size_t pos = 0;
  ES_ASSIGN(Headers mime, read_headers(s, pos, "MIME"));
  if (media_type(mime.get("content-type")) != "message/cpim")
    return fail(Errc::malformed, "the protected object is not Message/CPIM");
  ES_ASSIGN(Headers msg, read_headers(s, pos, "CPIM"));
  for (const char* h : {"from", "to", "datetime"})
    if (msg.count(h) != 1)
      return fail(Errc::malformed,
                  std::string("the CPIM object needs exactly one ") + h + " header");
  Protected p;
  ES_ASSIGN(p.from, address_jid(*msg.get("from"), "From"));
  ES_ASSIGN(p.to, address_jid(*msg.get("to"), "To"));
  auto t = parse_datetime(*msg.get("datetime"));
  if (!t)
    return fail(Errc::malformed,
                "the CPIM DateTime is not an RFC 3339 date-time: " + *msg.get("datetime"));
  p.time = *t;
  ES_ASSIGN(Headers content, read_headers(s, pos, "content"));
  std::string type = media_type(content.get("content-type"));
  std::string_view body = s.substr(pos);
  if (type == "text/plain") {  // RFC 3923 §3
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r'))
      body.remove_suffix(1);
    if (!xml::valid_xml_utf8(body))
      return fail(Errc::malformed, "the text/plain body is not UTF-8 text");
    xml::Element b("body", std::string(xml::kNsClient));
    b.add(xml::Element::text_node(std::string(body)));
    p.payload.push_back(std::move(b));
    return p;
  }
  if (type == "application/pidf+xml") {  // RFC 3923 §4
    ES_TRY(pidf_presence(body, p));
    return p;
  }
  if (type != "application/xmpp+xml")
    return fail(Errc::malformed,
                "the CPIM body is '" + type +
                    "', not application/xmpp+xml, text/plain or application/pidf+xml");
  ES_ASSIGN(xml::Element wrap, xml::parse(body, xml::kNsClient));
  if (!wrap.is("xmpp", xml::kNsClient))
    return fail(Errc::malformed,
                "the application/xmpp+xml body is not <xmpp xmlns='jabber:client'>");
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

std::string multipart_signed(std::string_view content, ByteView sig) {
  std::string boundary;
  do {
    Bytes rnd(16);
    OsRandom().fill(rnd);
    boundary = "----=_esession_" + hex(rnd);
  } while (content.find(boundary) != std::string_view::npos);
  return "MIME-Version: 1.0\r\n"
         "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
         "micalg=sha-256; boundary=\"" +
         boundary +
         "\"\r\n"
         "\r\n"
         "This is an S/MIME signed message\r\n"
         "\r\n--" +
         boundary + "\r\n" + std::string(content) + "\r\n--" + boundary +
         "\r\n"
         "Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
         "Content-Transfer-Encoding: base64\r\n"
         "Content-Disposition: attachment; filename=smime.p7s\r\n"
         "\r\n" +
         base64_lines(sig, "\r\n") + "\r\n--" + boundary + "--\r\n";
}

Result<Bytes> signed_content(std::string_view s, const cms::Trust& trust, cms::Verdict& v,
                             size_t max_content) {
  v = {};
  v.state = cms::Verdict::State::none;
  Error not_signed = fail(Errc::auth_failed,
                          "the object is not signed: nothing authenticates its content (CBC "
                          "has no integrity)");
  if (!starts_with_header(s))
    return not_signed;
  size_t pos = 0;
  ES_ASSIGN(Headers h, read_headers(s, pos, "signed entity"));
  const std::string* ct = h.get("content-type");
  std::string type = media_type(ct);
  if (is_pkcs7(type, "mime")) {
    std::string st = lower(param(*ct, "smime-type").value_or("signed-data"));
    if (st != "signed-data")
      return fail(Errc::unsupported, "the signed layer is application/pkcs7-mime; smime-type=" +
                                         st + ", not signed-data");
    ES_ASSIGN(Bytes der, body_bytes(h, s.substr(pos), "signed-data entity"));
    return cms::open_signed_bytes(trust, der, v, max_content);
  }
  if (type != "multipart/signed")
    return not_signed;
  std::string protocol = lower(param(*ct, "protocol").value_or(""));
  if (!is_pkcs7(protocol, "signature"))
    return fail(Errc::unsupported, "the multipart/signed protocol is '" + protocol +
                                       "', not application/pkcs7-signature");
  std::optional<std::string> boundary = param(*ct, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 70)
    return fail(Errc::malformed, "the multipart/signed entity has no valid boundary");
  ES_ASSIGN(auto parts, split_multipart(s, pos, *boundary));
  if (parts.size() != 2)
    return fail(Errc::malformed, "the multipart/signed entity has " + std::to_string(parts.size()) +
                                     " parts, not two");
  std::string sig_part(parts[1]);
  sig_part += "\n";
  size_t sig_pos = 0;
  ES_ASSIGN(Headers sh, read_headers(sig_part, sig_pos, "signature part"));
  if (!is_pkcs7(media_type(sh.get("content-type")), "signature"))
    return fail(Errc::malformed,
                "the second part of the multipart/signed entity is not "
                "application/pkcs7-signature");
  ES_ASSIGN(Bytes sig,
            body_bytes(sh, std::string_view(sig_part).substr(sig_pos), "signature part"));
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

std::string e2e_text(ByteView der) {
  return "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\n"
         "Content-Transfer-Encoding: base64\n\n" +
         base64_lines(der, "\n");
}

Result<E2eObject> read_e2e(std::string_view content) {
  E2eObject out;
  std::string text = trim(content);
  if (!starts_with_header(text)) {
    ES_ASSIGN(out.enveloped, unbase64_body(text, "the <e2e/> content"));
    return out;
  }
  text += "\n";
  size_t pos = 0;
  ES_ASSIGN(Headers h, read_headers(text, pos, "S/MIME"));
  const std::string* ct = h.get("content-type");
  std::string type = media_type(ct);
  if (type == "multipart/signed") {
    out.signed_entity = std::move(text);
    return out;
  }
  if (!is_pkcs7(type, "mime"))
    return fail(Errc::malformed, "the <e2e/> entity is '" + type +
                                     "', not application/pkcs7-mime or multipart/signed");
  std::string st = lower(param(*ct, "smime-type").value_or("enveloped-data"));
  if (st == "signed-data") {
    out.signed_entity = std::move(text);
    return out;
  }
  if (st != "enveloped-data")
    return fail(Errc::unsupported,
                "the <e2e/> entity is smime-type=" + st + ", not enveloped-data or signed-data");
  const std::string* cte = h.get("content-transfer-encoding");
  if (cte && lower(*cte) != "base64")
    return fail(Errc::unsupported, "the <e2e/> entity's transfer encoding is " + *cte +
                                       ": only base64 fits in XML character data");
  ES_ASSIGN(out.enveloped, unbase64_body(std::string_view(text).substr(pos), "the <e2e/> content"));
  return out;
}

Status check_from(const Protected& p, std::string_view from) {
  if (!same_jid(p.from, from))
    return fail(Errc::auth_failed, "the protected From (" + p.from +
                                       ") is not the stanza's from (" + std::string(from) + ")");
  return {};
}

std::vector<std::string> certificate_jids(const Certificate& cert) {
  std::vector<std::string> names;
  for (const auto& a : cert.xmpp_addrs())
    names.push_back(bare_jid(a));
  for (const auto& u : cert.uris()) {
    std::string lower = u;
    for (char& c : lower)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (std::string_view scheme : {"im:", "pres:", "xmpp:"})
      if (lower.starts_with(scheme))
        names.push_back(bare_jid(std::string_view(u).substr(scheme.size())));
  }
  return names;
}

Status check_to(const Protected& p, std::string_view to) {
  if (!same_jid(p.to, to))
    return fail(Errc::auth_failed,
                "the protected To (" + p.to + ") is not the stanza's to (" + std::string(to) + ")");
  return {};
}

TimeWindow check_time(const Protected& p, int64_t now, int64_t max_age) {
  return time_window(p.time, now, kMaxFuture, max_age);
}

}  // namespace esession::smime
