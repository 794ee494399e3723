// What the XEP-0200 filters (encrypt, decrypt, rekey, terminate) share: batches of stanzas
// read from stdin and handed to the engine, and the writing of what it returns.
#pragma once

#include "commands.hpp"

namespace esession::cli {

struct FilterOpts {
  std::string peer;  // --to / --from: overrides the stanza's attribute
  int reply_fd = 1;  // decrypt: where answers to the peer go (termination acknowledgements)
};

// Stanzas already waiting in the input are handled as one batch: the engine commits one
// transaction per run of stanzas of one session, before any output of the batch is written.
constexpr size_t kBatch = 512;

// write_text writes |text| to |f| and flushes. Throws Failure on an I/O error.
void write_text(const std::string& text, FILE* f);

// peer_of names the peer of a refused stanza, for advice: |given| (--to, --from), else the
// stanza's |attr|, prepared when it can be.
std::string peer_of(const std::string& given, const xml::Element& st, const char* attr);

// run_control emits a control stanza (re-key or termination) for the session with a peer.
int run_control(Context& ctx, const FilterOpts& o, bool terminate);

}  // namespace esession::cli
