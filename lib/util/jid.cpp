#include "util/jid.hpp"

namespace esession {

std::string bare_jid(std::string_view jid) {
  return std::string(jid.substr(0, jid.find('/')));
}

}  // namespace esession
