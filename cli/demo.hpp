// The in-process demo: Alice and Bob negotiate an ESession and exchange stanzas.
#pragma once

namespace esession::cli {

// run_demo prints every wire stanza, the SAS each side computed and the decrypted stanzas.
// Returns the process exit status.
int run_demo(bool gajim);

}  // namespace esession::cli
