#include "util/result.hpp"

#include <cstdio>
#include <cstdlib>

namespace esession {

const char* errc_name(Errc c) {
  switch (c) {
    case Errc::malformed:
      return "malformed";
    case Errc::unsupported:
      return "unsupported";
    case Errc::not_acceptable:
      return "not-acceptable";
    case Errc::auth_failed:
      return "auth-failed";
    case Errc::bad_dh_value:
      return "bad-dh-value";
    case Errc::replay:
      return "replay";
    case Errc::wrong_state:
      return "wrong-state";
    case Errc::no_session:
      return "no-session";
    case Errc::terminated:
      return "terminated";
    case Errc::internal:
      return "internal";
    case Errc::io:
      return "io";
  }
  return "unknown";
}

std::string printable(std::string_view s, size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  return "'" + out + (s.size() > max ? "…'" : "'");
}

void die_out_of_memory(const char* what) {
  std::fprintf(stderr, "esession: out of memory: %s\n", what);
  std::abort();
}

}  // namespace esession
