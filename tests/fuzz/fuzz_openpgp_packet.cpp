// fuzz_openpgp_packet: openpgp::parse_key_packet on arbitrary bytes (a peer's <PGPKeyPacket/>).
//
// Input: the bytes. Besides crashes, leaks and UB: an accepted packet is a prefix of the input
// with a 20-byte fingerprint, and parsing that packet alone gives the same key, creation time,
// fingerprint and bytes (nothing after the first packet may change what it means).
#include <algorithm>
#include <cstdint>

#include "crypto/openpgp_packet.hpp"
#include "fuzz_common.hpp"

using namespace esession;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView in(data, size);
  auto p = openpgp::parse_key_packet(in);
  if (!p)
    return 0;
  fuzz::check(p->packet.size() <= size && std::equal(p->packet.begin(), p->packet.end(), data),
              "the packet is not a prefix of the input");
  fuzz::check(p->fingerprint.size() == openpgp::kFingerprintBytes, "fingerprint of a bad size");
  fuzz::check(openpgp::fingerprint_hex(p->fingerprint).size() == 40, "fingerprint_hex length");
  auto again = openpgp::parse_key_packet(p->packet);
  fuzz::check(again.has_value(), "the packet alone does not parse");
  fuzz::check(again->fingerprint == p->fingerprint && again->created == p->created &&
                  again->key == p->key && again->packet == p->packet,
              "the packet alone parses differently");
  return 0;
}
