// XEP-0373 content elements (lib/object/ox.hpp) without OpenPGP: the clear/sealed split, the
// content element seal builds, and the checks open makes of one. The OpenPGP layer is tested
// with GnuPG in tests/cli/test_seal_ox.py.
#include <catch2/catch.hpp>

#include "object/ox.hpp"
#include "util/datetime.hpp"

using namespace esession;

namespace {

constexpr int64_t kNow = 1796650000;  // 2026-12-07

xml::Element parse(const std::string& s) {
  return xml::parse(s).value();
}

ByteView bytes_of(const std::string& s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// content is a <signcrypt/> (or |mode|) with |inner| between its tags.
std::string content(const std::string& inner, const std::string& mode = "signcrypt") {
  return "<" + mode + " xmlns='urn:xmpp:openpgp:0'>" + inner + "</" + mode + ">";
}

Result<ox::Content> read(const std::string& s, bool encrypted = true) {
  Result<xml::Element> e = ox::parse_content(bytes_of(s), encrypted);
  if (!e)
    return e.error();
  return ox::read_content(*e);
}

}  // namespace

TEST_CASE("ox: seal splits the message and builds a content element that reads back", "[ox]") {
  xml::Element msg = parse(
      "<message xmlns='jabber:client' to='juliet@example.org/balcony' id='m1'>"
      "<body>Wherefore art thou</body> <store xmlns='urn:xmpp:hints'/>"
      "<origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>");
  REQUIRE(ox::check_message(msg));
  ox::Split s = ox::split_message(msg).value();
  CHECK(s.clear.attr_or("id") == "m1");
  CHECK(s.clear.children.size() == 2);  // the hint and the origin-id; whitespace dropped
  REQUIRE(s.payload.children.size() == 1);
  CHECK(s.payload.children[0].name == "body");

  OsRandom rng;
  xml::Element c =
      ox::build_content(ox::Mode::signcrypt, "juliet@example.org", kNow, std::move(s.payload), rng)
          .value();
  REQUIRE(c.child("rpad", ox::kNs));
  CHECK(c.child("rpad", ox::kNs)->text_content().size() <= ox::kMaxRpad);
  ox::Content r = read(xml::serialize(c)).value();
  CHECK(r.mode == ox::Mode::signcrypt);
  CHECK(r.tos == std::vector<std::string>{"juliet@example.org"});
  CHECK(ox::content_time(r).value() == kNow);
  CHECK(ox::check_to(r, "juliet@example.org"));
  REQUIRE(r.payload.size() == 1);
  CHECK(r.payload[0].text_content() == "Wherefore art thou");

  xml::Element sealed = ox::sealed_stanza(std::move(s.clear), Bytes{0x85, 0x01});
  CHECK(sealed.child("openpgp", ox::kNs));
  CHECK(sealed.count_children("store", ox::kNsHints) == 1);  // not added twice
  CHECK(sealed.child("encryption", ox::kNsEme));
  CHECK(ox::openpgp_message(sealed).value() == Bytes{0x85, 0x01});
  CHECK(ox::is_encrypted(Bytes{0x85, 0x01}).value());        // old format, tag 1
  CHECK_FALSE(ox::is_encrypted(Bytes{0xc4, 0x01}).value());  // new format, tag 4
}

TEST_CASE("ox: seal refuses what XEP-0373 cannot carry", "[ox]") {
  CHECK(ox::check_message(parse("<iq xmlns='jabber:client'/>")).error().code == Errc::malformed);
  CHECK_FALSE(ox::split_message(parse("<message xmlns='jabber:client'>text</message>")));
  CHECK_FALSE(ox::split_message(
      parse("<message xmlns='jabber:client'><openpgp xmlns='urn:xmpp:openpgp:0'/></message>")));
  OsRandom rng;
  // Nothing but what stays in clear: nothing to seal.
  ox::Split s =
      ox::split_message(parse("<message xmlns='jabber:client'><store xmlns='urn:xmpp:hints'/>"
                              "</message>"))
          .value();
  CHECK(ox::build_content(ox::Mode::crypt, "", kNow, s.payload, rng).error().code ==
        Errc::malformed);
  // A signed element names its recipient.
  xml::Element payload("payload", std::string(ox::kNs));
  payload.add_text_child("body", "hi");
  CHECK_FALSE(ox::build_content(ox::Mode::sign, "", kNow, payload, rng));
  xml::Element crypt = ox::build_content(ox::Mode::crypt, "", kNow, payload, rng).value();
  CHECK_FALSE(crypt.child("to", ox::kNs));
}

TEST_CASE("ox: open refuses a <to/> that does not name the recipient", "[ox]") {
  std::string c =
      content("<to jid='juliet@example.org'/><time stamp='2026-12-07T10:00:00Z'/><payload/>");
  ox::Content r = read(c).value();
  CHECK(ox::check_to(r, "juliet@example.org"));
  CHECK(ox::check_to(r, "Juliet@Example.org"));  // the same JID, prepared
  Status other = ox::check_to(r, "nurse@example.org");
  REQUIRE_FALSE(other);
  CHECK(other.error().code == Errc::auth_failed);
  CHECK(other.error().detail == "<to/> names juliet@example.org, not nurse@example.org");
  CHECK(ox::check_to(r, "").error().code == Errc::malformed);
  // A signed element without <to/> could be forwarded to anyone.
  CHECK(read(content("<time stamp='2026-12-07T10:00:00Z'/><payload/>")).error().code ==
        Errc::auth_failed);
  // <crypt/> needs none.
  ox::Content crypt =
      read(content("<time stamp='2026-12-07T10:00:00Z'/><payload/>", "crypt")).value();
  CHECK(ox::check_to(crypt, "nurse@example.org"));
}

TEST_CASE("ox: open refuses a <time/> outside the window", "[ox]") {
  auto at = [](const std::string& stamp) {
    return ox::content_time(
               read(content("<to jid='a@b'/><time stamp='" + stamp + "'/><payload/>")).value())
        .value();
  };
  int64_t max_age = 3600;
  CHECK(time_window(at(format_datetime(kNow - 60)), kNow, ox::kMaxFuture, max_age) ==
        TimeWindow::inside);
  CHECK(time_window(at(format_datetime(kNow + ox::kMaxFuture)), kNow, ox::kMaxFuture, max_age) ==
        TimeWindow::inside);
  CHECK(time_window(at(format_datetime(kNow + ox::kMaxFuture + 1)), kNow, ox::kMaxFuture,
                    max_age) == TimeWindow::future);
  CHECK(time_window(at(format_datetime(kNow - max_age - 1)), kNow, ox::kMaxFuture, max_age) ==
        TimeWindow::too_old);
  CHECK(
      ox::content_time(read(content("<to jid='a@b'/><time stamp='yesterday'/><payload/>")).value())
          .error()
          .code == Errc::malformed);
}

TEST_CASE("ox: open refuses malformed content elements", "[ox]") {
  const std::string t = "<to jid='a@b'/><time stamp='2026-12-07T10:00:00Z'/>";
  CHECK(read(content(t)).error().code == Errc::malformed);  // no <payload/>
  CHECK(read(content("<to jid='a@b'/><payload/>")).error().code == Errc::malformed);  // no time
  CHECK(read(content(t + "<payload/><payload/>")).error().code == Errc::malformed);
  CHECK(read(content(t + "<rpad/><rpad/><payload/>")).error().code == Errc::malformed);
  CHECK(read(content(t + "<rpad><x/></rpad><payload/>")).error().code == Errc::malformed);
  CHECK(read(content(t + "<other/><payload/>")).error().code == Errc::malformed);
  CHECK(read(content(t + "stray<payload/>")).error().code == Errc::malformed);
  CHECK(read(content("<to/>" + t + "<payload/>")).error().code == Errc::malformed);
  CHECK(read("<sign xmlns='other'/>").error().code == Errc::malformed);
  CHECK(read("not xml").error().code == Errc::malformed);
  // <sign/> travels in clear, the others encrypted.
  CHECK(read(content(t + "<payload/>", "sign"), true).error().code == Errc::auth_failed);
  CHECK(read(content(t + "<payload/>", "signcrypt"), false).error().code == Errc::auth_failed);
  CHECK(read(content(t + "<payload/>", "sign"), false));
  CHECK_FALSE(ox::openpgp_message(parse("<message xmlns='jabber:client'/>")));
  CHECK_FALSE(ox::is_encrypted(Bytes{0x01}));
}
