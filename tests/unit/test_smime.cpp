// RFC 3923 layers (lib/object/smime.hpp) without certificates: the <e2e/> entity, the CPIM
// entity and its bodies, DateTime. The signed layer is tested with real signatures in
// test_cms.cpp (cms) and tests/cli/test_seal_smime.py (with openssl).
#include <catch2/catch.hpp>

#include "object/smime.hpp"
#include "util/datetime.hpp"

using namespace esession;

namespace {

std::string cpim(const std::string& from, const std::string& to, const std::string& when,
                 const std::string& content) {
  return "Content-Type: message/cpim\r\n\r\nFrom: " + from + "\r\nTo: " + to +
         "\r\nDateTime: " + when + "\r\n\r\n" + content;
}

}  // namespace

TEST_CASE("smime: the <e2e/> entity round trips; signed-only entities; others refused", "[smime]") {
  Bytes der = {0x30, 0x82, 0x01, 0x00, 0xff, 0x00, 0x7f};
  std::string text = smime::e2e_text(der);
  CHECK(text.starts_with("Content-Type: application/pkcs7-mime; smime-type=enveloped-data"));
  CHECK(smime::read_e2e(text).value().enveloped == der);
  CHECK(smime::read_e2e("  " + base64(der) + "\n").value().enveloped == der);  // bare base64
  // x-pkcs7-mime, no smime-type, CRLF, folded header, base64 in short lines.
  std::string b64 = base64(der);
  CHECK(smime::read_e2e("Content-Type: application/x-pkcs7-mime;\r\n name=smime.p7m\r\n\r\n" +
                        b64.substr(0, 4) + "\r\n" + b64.substr(4))
            .value()
            .enveloped == der);
  // Signed only: the entity itself, for signed_content.
  std::string opaque = "Content-Type: application/pkcs7-mime; smime-type=signed-data\n\n" + b64;
  auto o = smime::read_e2e(opaque).value();
  CHECK_FALSE(o.encrypted());
  CHECK(o.signed_entity.starts_with(opaque));
  std::string clear = smime::multipart_signed("Content-Type: text/plain\r\n\r\nhi", der);
  auto c = smime::read_e2e(clear).value();
  CHECK_FALSE(c.encrypted());
  CHECK(c.signed_entity.starts_with(clear.substr(0, clear.size() - 2)));
  auto compressed =
      smime::read_e2e("Content-Type: application/pkcs7-mime; smime-type=compressed-data\n\n" + b64);
  REQUIRE_FALSE(compressed);
  CHECK(compressed.error().code == Errc::unsupported);
  auto qp = smime::read_e2e(
      "Content-Type: application/pkcs7-mime\nContent-Transfer-Encoding: quoted-printable\n\nx");
  REQUIRE_FALSE(qp);
  CHECK(qp.error().code == Errc::unsupported);
  CHECK_FALSE(smime::read_e2e("Content-Type: text/plain\n\nhello"));
  CHECK_FALSE(smime::read_e2e("not base64!"));
  CHECK_FALSE(smime::read_e2e(""));
  CHECK_FALSE(smime::read_e2e("Content-Type: application/pkcs7-mime\n"));  // headers do not end
}

TEST_CASE("smime: CPIM addresses, DateTime and the three bodies", "[smime]") {
  const std::string xmpp = "Content-Type: application/xmpp+xml\r\n\r\n";
  SECTION("seal's entity reads back") {
    xml::Element st("message", std::string(xml::kNsClient));
    st.add_text_child("body", "hi & bye");
    std::string e = smime::cpim_entity("a@example.com", "b@example.com", 1764000000123, st);
    CHECK(e.find("DateTime: 2025-11-24T16:00:00.123Z\r\n") != std::string::npos);
    auto p = smime::parse_cpim(e).value();
    CHECK(p.from == "a@example.com");
    CHECK(p.to == "b@example.com");
    CHECK(p.time == 1764000000);
    REQUIRE(p.payload.size() == 1);
    CHECK(p.payload[0].is("body", xml::kNsClient));
    CHECK(p.payload[0].text_content() == "hi & bye");
    CHECK_FALSE(p.presence_type);
  }
  SECTION("addresses: formal names, im:, pres: and xmpp: URIs, bare JIDs") {
    auto p = smime::parse_cpim(cpim("Juliet Capulet <IM:juliet@example.com/balcony>",
                                    "<xmpp:romeo@example.net?message>", "2003-12-09T11:45:36.66Z",
                                    xmpp + "<xmpp xmlns='jabber:client'><body>x</body></xmpp>"))
                 .value();
    CHECK(p.from == "juliet@example.com");
    CHECK(p.to == "romeo@example.net");
    CHECK(p.time == 1070970336);
    REQUIRE(p.payload.size() == 1);  // payload elements directly
    CHECK(p.payload[0].name == "body");
    CHECK_FALSE(smime::parse_cpim(cpim("juliet@example.com", "<im:r@e>", "2003-12-09T11:45:36Z",
                                       xmpp + "<xmpp xmlns='jabber:client'/>")));
    CHECK_FALSE(
        smime::parse_cpim(cpim("<im://juliet@example.com>", "<im:r@e>", "2003-12-09T11:45:36Z",
                               xmpp + "<xmpp xmlns='jabber:client'/>")));
    CHECK_FALSE(
        smime::parse_cpim(cpim("<mailto:juliet@example.com>", "<im:r@e>", "2003-12-09T11:45:36Z",
                               xmpp + "<xmpp xmlns='jabber:client'/>")));
  }
  SECTION("DateTime: offsets, fractions; malformed ones refused") {
    CHECK(parse_datetime("2003-12-09T12:45:36.5+01:00") == 1070970336);
    CHECK(parse_datetime("2003-12-09T10:45:36-01:00") == 1070970336);
    CHECK(parse_datetime("2003-12-09T11:45:36z") == 1070970336);
    // Profanity 0.13's <time/>: an offset without the colon, read as a concession.
    CHECK(parse_datetime("2003-12-09T11:45:36+0000") == 1070970336);
    CHECK(parse_datetime("2003-12-09T12:45:36+0100") == 1070970336);
    CHECK(parse_datetime("2003-12-09T10:45:36-0100") == 1070970336);
    CHECK_FALSE(parse_datetime("2003-12-09T11:45:36+000"));
    CHECK_FALSE(parse_datetime("2003-12-09T11:45:36+2400"));
    CHECK_FALSE(parse_datetime("2003-12-09T11:45:36+00:0"));
    CHECK_FALSE(parse_datetime("2003-12-09 11:45:36Z"));
    CHECK_FALSE(parse_datetime("2003-12-09T11:45:36"));
    CHECK_FALSE(parse_datetime("2003-12-09T11:45:36.Z"));
    CHECK_FALSE(parse_datetime("2003-13-09T11:45:36Z"));
    CHECK_FALSE(parse_datetime("+003-12-09T11:45:36Z"));
    CHECK_FALSE(parse_datetime(" 2003-12-09T11:45:36Z"));
    CHECK_FALSE(parse_datetime("2003-12-09T11:45:36+24:00"));
    CHECK(format_datetime(0) == "1970-01-01T00:00:00Z");
    CHECK(format_datetime(-62135596800) == "0001-01-01T00:00:00Z");  // four digits, always
    CHECK(format_datetime_ms(1070970336660) == "2003-12-09T11:45:36.660Z");
    CHECK(format_datetime_ms(-1) == "1969-12-31T23:59:59.999Z");
  }
  SECTION("text/plain (RFC 3923 §3) becomes a <body/>") {
    auto p = smime::parse_cpim(cpim("<im:j@e>", "<im:r@e>", "2003-12-09T11:45:36Z",
                                    "Content-type: text/plain; charset=utf-8\r\n"
                                    "Content-ID: <1@e>\r\n\r\nWherefore art thou?\r\n"))
                 .value();
    REQUIRE(p.payload.size() == 1);
    CHECK(p.payload[0].text_content() == "Wherefore art thou?");
    CHECK_FALSE(smime::parse_cpim(cpim("<im:j@e>", "<im:r@e>", "2003-12-09T11:45:36Z",
                                       "Content-type: text/plain\r\n\r\n\x01")));
  }
  SECTION("application/pidf+xml (RFC 3923 §4) becomes presence") {
    auto pidf = [](const std::string& basic, const std::string& im, bool note) {
      return "Content-Type: application/pidf+xml\r\n\r\n<?xml version='1.0'?>\n"
             "<presence xmlns='urn:ietf:params:xml:ns:pidf' "
             "xmlns:im='urn:ietf:params:xml:ns:pidf:im' entity='pres:j@e'><tuple id='t'>"
             "<status><basic>" +
             basic + "</basic><im:im>" + im + "</im:im></status>" +
             (note ? "<note>on the balcony</note>" : "") + "</tuple></presence>";
    };
    auto p = smime::parse_cpim(cpim("<pres:j@e>", "<pres:r@e>", "2003-12-09T11:45:36Z",
                                    pidf("open", "busy", true)))
                 .value();
    CHECK(p.presence_type == "");
    REQUIRE(p.payload.size() == 2);
    CHECK(p.payload[0].is("show", xml::kNsClient));
    CHECK(p.payload[0].text_content() == "dnd");
    CHECK(p.payload[1].is("status", xml::kNsClient));
    CHECK(p.payload[1].text_content() == "on the balcony");
    p = smime::parse_cpim(
            cpim("<pres:j@e>", "<pres:r@e>", "2003-12-09T11:45:36Z", pidf("closed", "away", false)))
            .value();
    CHECK(p.presence_type == "unavailable");
    CHECK(p.payload.empty());
    p = smime::parse_cpim(
            cpim("<pres:j@e>", "<pres:r@e>", "2003-12-09T11:45:36Z", pidf("open", "lunch", false)))
            .value();
    CHECK(p.payload.empty());  // not a <show/> value
    CHECK_FALSE(smime::parse_cpim(
        cpim("<pres:j@e>", "<pres:r@e>", "2003-12-09T11:45:36Z", pidf("half", "away", false))));
  }
  SECTION("refused: not CPIM, missing or repeated headers, other bodies") {
    CHECK_FALSE(smime::parse_cpim("Content-Type: text/plain\r\n\r\nx"));
    CHECK_FALSE(smime::parse_cpim("Content-Type: message/cpim\r\n\r\nFrom: <im:a@b>\r\n\r\n"));
    CHECK_FALSE(smime::parse_cpim(
        cpim("<im:a@b>", "<im:c@d>\r\nTo: <im:e@f>", "2003-12-09T11:45:36Z", xmpp + "<xmpp/>")));
    CHECK_FALSE(smime::parse_cpim(cpim("<im:a@b>", "<im:c@d>", "yesterday", xmpp + "<xmpp/>")));
    CHECK_FALSE(smime::parse_cpim(cpim("<im:a@b>", "<im:c@d>", "2003-12-09T11:45:36Z",
                                       "Content-Type: text/html\r\n\r\n<p>x</p>")));
    CHECK_FALSE(smime::parse_cpim(cpim("<im:a@b>", "<im:c@d>", "2003-12-09T11:45:36Z",
                                       xmpp + "<foo xmlns='jabber:client'/>")));
  }
}

TEST_CASE("smime: the signed layer refuses what is not signed", "[smime]") {
  cms::Verdict v;
  for (const char* s :
       {"", "plain text", "Content-Type: text/plain\r\n\r\nx",
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"}) {
    auto r = smime::signed_content(s, cms::Trust{}, v, 1 << 16);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::auth_failed);
    CHECK(v.state == cms::Verdict::State::none);
  }
  auto other = smime::signed_content(
      "Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=b\r\n\r\n",
      cms::Trust{}, v, 1 << 16);
  REQUIRE_FALSE(other);
  CHECK(other.error().code == Errc::unsupported);
  std::string unended =
      "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
      "boundary=b\r\n\r\n--b\r\n\r\nx\r\n";
  auto r = smime::signed_content(unended, cms::Trust{}, v, 1 << 16);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::malformed);
  std::string entity = smime::multipart_signed("hello\r\n", Bytes{0x30, 0x00});
  CHECK(entity.find("micalg=sha-256") != std::string::npos);
  auto bad = smime::signed_content(entity, cms::Trust{}, v, 1 << 16);
  REQUIRE_FALSE(bad);
  CHECK(v.state == cms::Verdict::State::bad);
}

TEST_CASE("smime: the protected From, To and DateTime are checked against the stanza", "[smime]") {
  smime::Protected p;
  p.from = "juliet@example.com";
  p.to = "romeo@example.net";
  p.time = 1764000000;
  CHECK(smime::check_from(p, "juliet@example.com"));
  CHECK(smime::check_from(p, "Juliet@EXAMPLE.com"));  // the same JID, prepared
  Status from = smime::check_from(p, "nurse@example.com");
  REQUIRE_FALSE(from);
  CHECK(from.error().code == Errc::auth_failed);
  CHECK(from.error().detail ==
        "the protected From (juliet@example.com) is not the stanza's from (nurse@example.com)");
  CHECK(smime::check_to(p, "romeo@example.net"));
  Status to = smime::check_to(p, "tybalt@example.net");
  REQUIRE_FALSE(to);
  CHECK(to.error().code == Errc::auth_failed);
  CHECK(to.error().detail ==
        "the protected To (romeo@example.net) is not the stanza's to (tybalt@example.net)");
  // Within five minutes ahead (RFC 3923 §6), and no older than the caller allows.
  CHECK(smime::check_time(p, p.time, 60) == TimeWindow::inside);
  CHECK(smime::check_time(p, p.time - smime::kMaxFuture, 60) == TimeWindow::inside);
  CHECK(smime::check_time(p, p.time - smime::kMaxFuture - 1, 60) == TimeWindow::future);
  CHECK(smime::check_time(p, p.time + 60, 60) == TimeWindow::inside);
  CHECK(smime::check_time(p, p.time + 61, 60) == TimeWindow::too_old);
}
