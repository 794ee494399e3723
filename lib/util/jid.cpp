#include "util/jid.hpp"

#include <stringprep.h>

#include <cctype>
#include <cstdlib>
#include <memory>

namespace esession {

namespace {

constexpr size_t kMaxPart = 1023;  // RFC 7622 §3.2-3.4, in bytes

Result<std::string> prep_part(std::string_view part, const char* profile, const char* what) {
  if (part.empty())
    return fail(Errc::malformed, std::string("empty ") + what);
  if (part.size() > 4 * kMaxPart)
    return fail(Errc::malformed, std::string(what) + " longer than 1023 bytes");
  std::string in(part);
  if (in.find('\0') != std::string::npos)
    return fail(Errc::malformed, std::string(what) + " holds a NUL character");
  char* out = nullptr;
  int rc = stringprep_profile(in.c_str(), &out, profile, Stringprep_profile_flags(0));
  std::unique_ptr<char, decltype(&std::free)> owned(out, &std::free);
  if (rc != STRINGPREP_OK)
    return fail(Errc::malformed, std::string(what) + " '" + in + "' is not allowed in a JID (" +
                                     stringprep_strerror(static_cast<Stringprep_rc>(rc)) + ")");
  std::string prepared(out);
  if (prepared.empty())
    return fail(Errc::malformed, std::string(what) + " '" + in + "' is empty once prepared");
  if (prepared.size() > kMaxPart)
    return fail(Errc::malformed, std::string(what) + " longer than 1023 bytes");
  return prepared;
}

}  // namespace

std::string Jid::bare() const {
  return local.empty() ? domain : local + '@' + domain;
}

std::string Jid::full() const {
  return resource.empty() ? bare() : bare() + '/' + resource;
}

Result<Jid> parse_jid(std::string_view s) {
  // RFC 7622 §3.1: the resource starts at the first '/', the localpart ends at the first '@'
  // before it.
  Jid j;
  std::string_view rest = s, resource;
  bool has_resource = false;
  if (size_t slash = s.find('/'); slash != std::string_view::npos) {
    rest = s.substr(0, slash);
    resource = s.substr(slash + 1);
    has_resource = true;
  }
  std::string_view local, domain = rest;
  bool has_local = false;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    local = rest.substr(0, at);
    domain = rest.substr(at + 1);
    has_local = true;
  }
  if (has_local) {
    ES_ASSIGN(j.local, prep_part(local, "Nodeprep", "localpart"));
  }
  if (domain.size() > 1 && domain.back() == '.')
    domain.remove_suffix(1);  // RFC 7622 §3.2: a trailing dot is not part of the domain
  if (domain.starts_with('[') && domain.ends_with(']')) {
    // An IPv6 literal: hex digits, colons and dots only.
    for (char c : domain.substr(1, domain.size() - 2))
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.')
        return fail(Errc::malformed, "domain '" + std::string(domain) + "' is not an IP literal");
    j.domain = std::string(domain);
    for (char& c : j.domain)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  } else {
    ES_ASSIGN(j.domain, prep_part(domain, "Nameprep", "domain"));
    for (char c : j.domain)
      if (static_cast<unsigned char>(c) <= 0x20 || c == '@' || c == '/' || c == '<' || c == '>' ||
          c == '"' || c == '\'' || c == '&' || c == ':' || c == '\\')
        return fail(Errc::malformed, "domain '" + j.domain + "' holds a character no domain has");
    if (j.domain.starts_with('.') || j.domain.find("..") != std::string::npos)
      return fail(Errc::malformed, "domain '" + j.domain + "' has an empty label");
  }
  if (has_resource) {
    ES_ASSIGN(j.resource, prep_part(resource, "Resourceprep", "resource"));
  }
  return j;
}

Result<std::string> prep_jid(std::string_view s) {
  ES_ASSIGN(Jid j, parse_jid(s));
  return j.full();
}

Result<std::string> prep_full_jid(std::string_view s) {
  ES_ASSIGN(Jid j, parse_jid(s));
  if (j.resource.empty())
    return fail(Errc::malformed, "'" + std::string(s) + "' is not a full JID (no /resource)");
  return j.full();
}

Result<std::string> prep_bare_jid(std::string_view s) {
  ES_ASSIGN(Jid j, parse_jid(s));
  if (!j.resource.empty())
    return fail(Errc::malformed,
                "'" + std::string(s) + "' is a full JID: give it without /" + j.resource);
  return j.bare();
}

std::string bare_jid(std::string_view jid) {
  return std::string(jid.substr(0, jid.find('/')));
}

bool same_jid(std::string_view a, std::string_view b) {
  Result<std::string> pa = prep_jid(a), pb = prep_jid(b);
  return pa && pb && *pa == *pb;
}

Result<std::string> JidMemo::prep(std::string_view jid) {
  for (const auto& [in, out] : m_memo)
    if (in == jid)
      return out;
  Result<std::string> r = prep_jid(jid);
  if (r) {
    if (m_memo.size() >= 16)
      m_memo.erase(m_memo.begin());
    m_memo.emplace_back(std::string(jid), *r);
  }
  return r;
}

Result<std::string> JidMemo::prep_kind(std::string_view jid, Kind kind) {
  ES_ASSIGN(std::string r, prep(jid));
  bool has_resource = r.find('/') != std::string::npos;
  if (kind == Kind::full && !has_resource)
    return fail(Errc::malformed, "'" + std::string(jid) + "' is not a full JID (no /resource)");
  if (kind == Kind::bare && has_resource)
    return fail(Errc::malformed,
                "'" + std::string(jid) + "' is a full JID: give it without its resource");
  return r;
}

bool JidMemo::same(std::string_view a, std::string_view b) {
  Result<std::string> pa = prep(a);
  if (!pa)
    return false;
  std::string first = std::move(pa).value();
  Result<std::string> pb = prep(b);
  return pb && first == *pb;
}

}  // namespace esession
