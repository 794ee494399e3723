// fuzz_offline: Alice, back online, accepting an untrusted offline request (XEP-0187).
//
// The input is a stream of stanzas: the first goes to Negotiation::accept_offline against
// options published once with fixed keys and randomness (fuzz_common.hpp), the rest to the
// session it establishes. Invariants: an accepted request sends nothing and yields a session
// that cannot send. Seeds made by fuzz-seeds are genuine requests, with stanzas after them.
#include <cstdint>

#include "fuzz_common.hpp"

using namespace esession;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<xml::Element> stanzas = fuzz::split_stanzas(fuzz::as_text(data, size), 8);
  (void)fuzz::replay_offline(stanzas);
  return 0;
}
