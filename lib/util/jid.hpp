// JIDs (RFC 7622) as the protocol layers use them: opaque strings, split at the resource.
#pragma once

#include <string>
#include <string_view>

namespace esession {

// bare_jid returns |jid| without its resource (everything from the first '/').
std::string bare_jid(std::string_view jid);

}  // namespace esession
