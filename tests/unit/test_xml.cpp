// The stanza reader, the parser's refusals and XEP-0116 §6.2 normalization.
#include <catch2/catch.hpp>

#include "xml/form.hpp"
#include "xml/reader.hpp"

using namespace esession;
using namespace esession::xml;

TEST_CASE("reader splits a stream as soon as each stanza is complete") {
  StanzaReader r;
  r.feed("<?xml version='1.0'?>\n  <message to='a'><body>x</bo");
  auto n = r.next();
  REQUIRE(n);
  CHECK_FALSE(n.value().has_value());  // incomplete: wait, do not block for EOF
  r.feed(
      "dy></message>\n<!-- note -->\n<presence/>  <iq type='get'\n id=\"1\"><q "
      "xmlns='x'>a&gt;b</q></iq>");
  auto a = r.next();
  REQUIRE(a);
  REQUIRE(a.value());
  CHECK(a.value()->name == "message");
  CHECK(a.value()->ns == kNsClient);
  CHECK(r.raw() == "<message to='a'><body>x</body></message>");
  auto b = r.next();
  REQUIRE(b.value());
  CHECK(b.value()->name == "presence");
  auto c = r.next();
  REQUIRE(c.value());
  CHECK(c.value()->child("q", "x")->text_content() == "a>b");
  r.finish();
  CHECK_FALSE(r.next().value().has_value());
  CHECK(r.at_clean_end());
}

TEST_CASE("reader handles quotes, CDATA and comments containing markup") {
  StanzaReader r;
  r.feed("<message a='x>y'><![CDATA[</message>]]><!-- </message> --></message>");
  auto m = r.next();
  REQUIRE(m);
  REQUIRE(m.value());
  CHECK(m.value()->text_content() == "</message>");
}

TEST_CASE("reader refuses DOCTYPE, junk, oversize and truncation") {
  {
    StanzaReader r;
    r.feed("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>");
    CHECK_FALSE(r.next());
  }
  {
    StanzaReader r;
    r.feed("hello <x/>");
    CHECK_FALSE(r.next());
  }
  {
    StanzaReader r(std::string(kNsClient), 64);
    r.feed("<message>" + std::string(100, 'a') + "</message>");
    auto e = r.next();
    REQUIRE_FALSE(e);
    CHECK(e.error().detail.find("size limit") != std::string::npos);
  }
  {
    StanzaReader r;
    r.feed("<message><body>");
    r.finish();
    CHECK_FALSE(r.next());
  }
  {
    StanzaReader r;
    r.feed("<message><body></message>");
    CHECK_FALSE(r.next());
  }
  {
    StanzaReader r;
    r.feed(std::string("<a>\xff\xfe</a>"));
    CHECK_FALSE(r.next());
  }
}

TEST_CASE("parser resolves namespaces and rejects undeclared prefixes") {
  auto e = parse("<m xmlns:p='urn:p'><p:x/><y xmlns='urn:y'><z/></y></m>", "jabber:client");
  REQUIRE(e);
  CHECK(e->children[0].ns == "urn:p");
  CHECK(e->children[1].children[0].ns == "urn:y");
  CHECK(serialize(*e) ==
        "<m xmlns=\"jabber:client\"><x xmlns=\"urn:p\"/><y xmlns=\"urn:y\"><z/></y></m>");
  CHECK_FALSE(parse("<q:m/>", ""));
}

TEST_CASE("normalization: spec-literal and Gajim's G4") {
  auto x = parse(
      "<x xmlns='jabber:x:data' type='form'>\n <field var='a' "
      "type='boolean'><value>1</value><required/></field>\n"
      " <field var='b'><value>&lt;&amp;&gt;</value></field>"
      "<field var='k'><KeyValue "
      "xmlns='http://www.w3.org/2000/09/xmldsig#'><M>1</M></KeyValue></field></x>");
  REQUIRE(x);
  CHECK(normalize_form_content(*x, NormStyle::spec) ==
        "<field type=\"boolean\" var=\"a\"><value>1</value><required></required></field>"
        "<field var=\"b\"><value>&lt;&amp;&gt;</value></field>"
        "<field var=\"k\"><KeyValue><M>1</M></KeyValue></field>");
  CHECK(normalize_form_content(*x, NormStyle::gajim, {"k"}) ==
        "<field type=\"boolean\" var=\"a\"><value>1</value><required /></field>"
        "<field var=\"b\"><value>&lt;&amp;&gt;</value></field>");
  CHECK(normalize_form_content(*x, NormStyle::gajim)
            .find("<KeyValue xmlns=\"http://www.w3.org/2000/09/xmldsig#\">") != std::string::npos);
}

TEST_CASE("parse refuses names that are not QNames and text outside the root") {
  for (const char* bad :
       {"<:4i/>", "<4i/>", "<p:a:b xmlns:p='u'/>",
        "<m><p: xmlns:p='u'><body>hidden</body></p:></m>", "<a/>modp", "modp<a/>", "<a/><b/>",
        "<a -x='1'/>", "<a xmlns:='u'/>", "<a>x&#x1;y</a>", "<a>&#xD800;</a>", "<a>&#xFFFE;</a>",
        "<a>&#1114112;</a>", "<a>x&#0;y</a>", "<a>&nosuch;</a>", "<a>a & b</a>", "<a>&#xZZ;</a>",
        "<a>&#;</a>", "<a b='&#1;'/>"}) {
    INFO(bad);
    CHECK_FALSE(xml::parse(bad, xml::kNsClient));
  }
  for (const char* good :
       {"<a/>", "  <a/>\n", "<p:a xmlns:p='u' p:x='1'/>", "<_a.b-c/>", "<?xml version='1.0'?><a/>",
        "<a xml:lang='en'/>", "<a>&amp;&lt;&gt;&quot;&apos;&#x9;&#10;&#xe9;&#x1F600;</a>",
        "<a><![CDATA[a & b &#0;]]><!-- & --></a>"}) {
    INFO(good);
    CHECK(xml::parse(good, xml::kNsClient));
  }
}
