// fuzz_respond: Bob's side of the negotiation on an untrusted offer.
//
// The input is a stream of stanzas (as a StanzaReader splits it): the first is the offer given
// to Negotiation::respond, in spec mode and again in Gajim mode, each with a deterministic
// RandomSource; while the negotiation goes on the later stanzas go to receive(), and once it is
// established to the session's decrypt(). Seeds made by fuzz-seeds are genuine transcripts that
// this responder completes, so mutations start from deep inside the protocol.
#include <cstdint>

#include "fuzz_common.hpp"

using namespace esession;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<xml::Element> stanzas = fuzz::split_stanzas(fuzz::as_text(data, size), 8);
  if (stanzas.empty())
    return 0;
  (void)is_negotiation_stanza(stanzas[0]);
  (void)fuzz::replay_responder(Compat::spec, stanzas);
  (void)fuzz::replay_responder(Compat::gajim, stanzas);
  return 0;
}
