#include "object/ox.hpp"

#include <algorithm>

#include "util/datetime.hpp"
#include "util/jid.hpp"

namespace esession::ox {

namespace {

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

}  // namespace

std::string_view mode_name(Mode m) {
  switch (m) {
    case Mode::signcrypt:
      return "signcrypt";
    case Mode::sign:
      return "sign";
    case Mode::crypt:
      break;
  }
  return "crypt";
}

std::optional<Mode> mode_from_name(std::string_view name) {
  for (Mode m : {Mode::signcrypt, Mode::sign, Mode::crypt})
    if (mode_name(m) == name)
      return m;
  return std::nullopt;
}

Status check_message(const xml::Element& stanza) {
  if (!stanza.is("message", xml::kNsClient))
    return fail(Errc::malformed, "ox objects are <message/> stanzas in jabber:client, not <" +
                                     stanza.name + "/> in " +
                                     (stanza.ns.empty() ? "no namespace" : stanza.ns));
  return {};
}

bool stays_in_clear(const xml::Element& child) {
  return child.ns == kNsHints || child.ns == kNsEme || child.ns == kNsSid ||
         child.ns == xml::kNsAmp;
}

Result<Split> split_message(xml::Element msg) {
  Split s{xml::Element(msg.name, msg.ns), xml::Element("payload", std::string(kNs))};
  s.clear.attrs = msg.attrs;
  for (auto& c : msg.children) {
    if (c.is_text()) {
      if (!blank(c.text))
        return fail(Errc::malformed, "the message has text outside its child elements");
      continue;
    }
    if (c.is("openpgp", kNs))
      return fail(Errc::malformed, "the message is already sealed (it has an <openpgp/>)");
    if (stays_in_clear(c))
      s.clear.add(std::move(c));
    else
      s.payload.add(std::move(c));
  }
  return s;
}

std::string random_rpad(RandomSource& rng) {
  size_t n = rng.uniform(kMaxRpad + 1);
  std::string pad;
  for (size_t i = 0; i < n; ++i)
    pad += static_cast<char>('!' + rng.uniform('~' - '!' + 1));  // printable ASCII, no space
  return pad;
}

Result<xml::Element> build_content(Mode mode, std::string_view to, int64_t now,
                                   xml::Element payload, RandomSource& rng) {
  if (payload.children.empty())
    return fail(Errc::malformed, "the message has nothing to seal");
  if (signs(mode) && to.empty())
    return fail(Errc::malformed, "a signed content element names its recipient: no 'to'");
  xml::Element content(std::string(mode_name(mode)), std::string(kNs));
  if (!to.empty())
    content.add(xml::Element("to", std::string(kNs))).set_attr("jid", to);
  content.add(xml::Element("time", std::string(kNs))).set_attr("stamp", format_datetime(now));
  if (encrypts(mode))
    content.add_text_child("rpad", random_rpad(rng));
  content.add(std::move(payload));
  return content;
}

xml::Element sealed_stanza(xml::Element clear, ByteView sealed) {
  clear.add(xml::Element("openpgp", std::string(kNs))).add(xml::Element::text_node(base64(sealed)));
  if (!clear.child("store", kNsHints))
    clear.add(xml::Element("store", std::string(kNsHints)));
  if (!clear.child("encryption", kNsEme))
    clear.add(xml::Element("encryption", std::string(kNsEme))).set_attr("namespace", kNs);
  return clear;
}

Result<Bytes> openpgp_message(const xml::Element& msg) {
  if (msg.count_children("openpgp", kNs) != 1)
    return fail(Errc::malformed,
                "the message must have exactly one <openpgp xmlns='" + std::string(kNs) + "'/>");
  // Base64 as other clients write it: in one line, or wrapped in lines (XML whitespace between).
  std::string b64 = msg.child("openpgp", kNs)->text_content();
  std::erase_if(b64, [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
  Result<Bytes> raw = unbase64(b64);
  if (!raw)
    return fail(Errc::malformed, "<openpgp/> is not base64: " + raw.error().detail);
  return raw;
}

Result<bool> is_encrypted(ByteView msg) {
  if (msg.empty() || !(msg[0] & 0x80))
    return fail(Errc::malformed, "<openpgp/> does not hold a binary OpenPGP message");
  int tag = (msg[0] & 0x40) ? (msg[0] & 0x3f) : ((msg[0] >> 2) & 0x0f);
  return tag == 1 || tag == 3;
}

Result<xml::Element> parse_content(ByteView plain, bool encrypted) {
  Result<xml::Element> parsed =
      xml::parse(std::string_view(reinterpret_cast<const char*>(plain.data()), plain.size()));
  if (!parsed)
    return fail(Errc::malformed, "the content element is not XML: " + parsed.error().detail);
  const xml::Element& content = *parsed;
  std::optional<Mode> mode = mode_from_name(content.name);
  if (content.ns != kNs || !mode)
    return fail(Errc::malformed, "the content element is <" + content.name + "/> in " +
                                     (content.ns.empty() ? "no namespace" : content.ns) +
                                     ", not <signcrypt/>, <sign/> or <crypt/> in " +
                                     std::string(kNs));
  if ((*mode == Mode::sign) == encrypted)
    return fail(Errc::auth_failed, "<" + content.name + "/> in an OpenPGP message that is " +
                                       (encrypted ? "" : "not ") + "encrypted");
  return parsed;
}

Result<Content> read_content(const xml::Element& content) {
  std::optional<Mode> mode = mode_from_name(content.name);
  if (content.ns != kNs || !mode)
    return fail(Errc::malformed, "not a content element");
  Content c{*mode, {}, {}, {}};
  const xml::Element* time = nullptr;
  const xml::Element* payload = nullptr;
  size_t rpads = 0;
  for (const auto& e : content.children) {
    if (e.is_text()) {
      if (!blank(e.text))
        return fail(Errc::malformed, "text in the content element outside its children");
    } else if (e.is("to", kNs)) {
      const std::string* jid = e.attr("jid");
      if (!jid || jid->empty())
        return fail(Errc::malformed, "<to/> without a jid");
      c.tos.push_back(*jid);
    } else if (e.is("time", kNs)) {
      if (time)
        return fail(Errc::malformed, "more than one <time/>");
      time = &e;
    } else if (e.is("rpad", kNs)) {
      if (++rpads > 1 || !e.element_children().empty())
        return fail(Errc::malformed, "<rpad/> must appear at most once and hold text only");
    } else if (e.is("payload", kNs)) {
      if (payload)
        return fail(Errc::malformed, "more than one <payload/>");
      payload = &e;
    } else {
      return fail(Errc::malformed,
                  "unknown element <" + e.name + "/> (" + e.ns + ") in the content element");
    }
  }
  if (!payload)
    return fail(Errc::malformed, "the content element has no <payload/>");
  if (!time || !time->attr("stamp"))
    return fail(Errc::malformed, "the content element has no <time stamp='...'/>");
  if (signs(c.mode) && c.tos.empty())
    return fail(Errc::auth_failed,
                "<" + content.name + "/> without <to/>: it could be forwarded to anyone");
  c.stamp = *time->attr("stamp");
  for (const auto& p : payload->children)
    if (!p.is_text() || !blank(p.text))
      c.payload.push_back(p);
  return c;
}

Status check_to(const Content& c, std::string_view to) {
  if (c.tos.empty())
    return {};
  if (to.empty())
    return fail(Errc::malformed, "the message has no 'to' to compare with <to/>");
  if (std::none_of(c.tos.begin(), c.tos.end(),
                   [&](const std::string& j) { return same_jid(j, to); }))
    return fail(Errc::auth_failed, "<to/> names " + c.tos.front() + ", not " + std::string(to));
  return {};
}

Result<int64_t> content_time(const Content& c) {
  std::optional<int64_t> stamp = parse_datetime(c.stamp);
  if (!stamp)
    return fail(Errc::malformed, "<time/> stamp '" + c.stamp + "' is not an XEP-0082 DateTime");
  return *stamp;
}

bool is_marker(const xml::Element& child) {
  return child.is("openpgp", kNs) || child.is("store", kNsHints) ||
         (child.is("encryption", kNsEme) && child.attr_or("namespace") == kNs);
}

}  // namespace esession::ox
