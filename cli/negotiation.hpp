// What negotiate and respond share: options, turned into the engine's NegotiationOptions, and
// the exchange of negotiation stanzas over stdin/stdout through an Endpoint.
#pragma once

#include "commands.hpp"

namespace esession::cli {

struct NegOpts {
  std::string to;                    // negotiate: the peer's full JID
  int flow = 4;                      // 3 or 4
  std::vector<int> groups;           // MODP groups, preference order
  std::vector<std::string> ciphers;  // aes256-ctr, aes128-ctr
  std::vector<std::string> hashes;   // sha256, sha512
  std::vector<std::string> stanzas;  // message, presence, iq
  std::string identify;              // how we identify: none, key, hash
  std::string require;               // what we accept from the peer: none, key, hash
  bool gajim = false;
  bool xep0217 = false;
  bool allow_weak = false;
  bool only_four = false;  // respond: refuse the three-message flow
  int oss_fd = -1;
  bool oss_prompt = false;
  int timeout = 120;
  uint32_t rekey_freq = 1;
  std::string attach;     // a file holding one <message/> to send on our last negotiation message
  bool one_shot = false;  // negotiate --flow 3: end the session right after the attached stanza
  int content_fd = 1;     // where the peer's stanzas on its last negotiation message go
  int retain_days = 90;   // retained secrets older than this are not used (0: no limit)
};

// Prepared is our side of a negotiation, from the options: what the engine needs, and the
// identity key it points to.
struct Prepared {
  std::unique_ptr<Signer> signer;
  NegotiationOptions opts;
};

// prepare builds our side's options for a negotiation with |peer_jid|. Throws Failure.
Prepared prepare(Context& ctx, const NegOpts& o, const std::string& peer_jid, bool initiator);
// run_exchange writes what |first| (from negotiate or respond) holds and answers the peer,
// through |ep|, until the negotiation is established. Throws Failure.
int run_exchange(Context& ctx, const NegOpts& o, Endpoint& ep, Outcome first,
                 const std::string& peer_jid, StanzaInput& in);
// add_common adds the options both commands take.
void add_common(CLI::App* c, NegOpts& o);

}  // namespace esession::cli
