// JID preparation (RFC 7622 through libidn's XMPP stringprep profiles).
#include <catch2/catch.hpp>

#include <vector>

#include "util/jid.hpp"

using namespace esession;

TEST_CASE("JIDs are prepared: localpart and domain case-folded, resource kept") {
  CHECK(prep_jid("Alice@Example.ORG").value() == "alice@example.org");
  CHECK(prep_jid("alice@example.org.").value() == "alice@example.org");
  CHECK(prep_jid("ALICE@EXAMPLE.ORG/Work Phone").value() == "alice@example.org/Work Phone");
  CHECK(prep_jid("example.org").value() == "example.org");
  CHECK(prep_jid("example.org/r").value() == "example.org/r");
  CHECK(prep_jid("a@b/c/d@e").value() == "a@b/c/d@e");  // the resource takes the rest
  CHECK(prep_jid("\xC3\x84lice@example.org").value() == "\xC3\xA4lice@example.org");  // Ä -> ä
  CHECK(prep_jid("a@[::1]/r").value() == "a@[::1]/r");
  CHECK(prep_full_jid("alice@example.org/pda").value() == "alice@example.org/pda");
  CHECK_FALSE(prep_full_jid("alice@example.org"));
  CHECK(prep_bare_jid("Alice@example.org").value() == "alice@example.org");
  CHECK_FALSE(prep_bare_jid("alice@example.org/pda"));
  Jid j = parse_jid("Bob@Example.com/Laptop").value();
  CHECK(j.local == "bob");
  CHECK(j.domain == "example.com");
  CHECK(j.resource == "Laptop");
  CHECK(j.bare() == "bob@example.com");
}

TEST_CASE("JIDs that RFC 7622 does not allow are refused") {
  for (const std::string& bad : std::vector<std::string>{
           "", "@example.org", "alice@", "alice@example.org/", "al ice@example.org",
           "al\"ice@example.org", "al<ice@example.org", "a@b@c", "alice@exa mple.org",
           "alice@example..org", "alice@.example.org", "alice@[zz]", "alice@example.org/\x01",
           std::string("alice@example.org/a\0b", 21), "alice@example.org/" + std::string(1024, 'r'),
           std::string(1024, 'a') + "@example.org", "alice@" + std::string(1024, 'd') + ".org",
           "a\xff@example.org"}) {
    INFO(bad);
    CHECK_FALSE(prep_jid(bad));
  }
  CHECK(prep_jid("alice@example.org/" + std::string(1023, 'r')));
}
