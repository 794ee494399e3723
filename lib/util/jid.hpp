// JIDs (RFC 7622): split, prepared and compared as XMPP servers do.
//
// Preparation uses libidn's stringprep profiles, the ones Prosody and other servers use:
// Nodeprep for the localpart (case-folded; no space, '"&'/:<>@'), Nameprep for the domain
// (case-folded, a trailing dot removed), Resourceprep for the resource (case kept; spaces
// allowed). Each part is at most 1023 bytes once prepared. Two JIDs name the same entity
// exactly when their prepared forms are equal: "Alice@Example.ORG" is "alice@example.org".
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.hpp"

namespace esession {

struct Jid {
  std::string local;     // may be empty
  std::string domain;    // never empty
  std::string resource;  // may be empty

  std::string bare() const;  // local@domain, or domain
  std::string full() const;  // bare/resource, or bare without a resource
};

// parse_jid splits and prepares |s|, or says what is wrong with it (Errc::malformed).
Result<Jid> parse_jid(std::string_view s);
// prep_jid is parse_jid(s)->full(): the canonical spelling of |s|.
Result<std::string> prep_jid(std::string_view s);
// prep_full_jid also requires a resource; prep_bare_jid refuses one.
Result<std::string> prep_full_jid(std::string_view s);
Result<std::string> prep_bare_jid(std::string_view s);

// bare_jid returns |jid| without its resource (everything from the first '/'), unprepared.
std::string bare_jid(std::string_view jid);

// same_jid tells whether |a| and |b| prepare to the same JID (false when either is not one).
bool same_jid(std::string_view a, std::string_view b);

// JidMemo is prep_jid with a memory of the last JIDs it prepared: a stream of stanzas names the
// same few JIDs again and again, and stringprep is a tenth of encrypt's time.
class JidMemo {
 public:
  Result<std::string> prep(std::string_view jid);
  // prep_kind also requires a resource (JidKind::full) or refuses one (JidKind::bare).
  enum class Kind { any, full, bare };
  Result<std::string> prep_kind(std::string_view jid, Kind kind);
  // same: do |a| and |b| name the same entity (false when either is not a JID)?
  bool same(std::string_view a, std::string_view b);

 private:
  std::vector<std::pair<std::string, std::string>> m_memo;
};

}  // namespace esession
