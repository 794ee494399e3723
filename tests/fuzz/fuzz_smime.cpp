// fuzz_smime: the RFC 3923 layers (object/smime) on arbitrary text: what an <e2e/> carries,
// and what an unauthenticated CBC decryption of it gives.
//
// Input: byte 0 chooses the reader (0: read_e2e, 1: parse_cpim, 2: signed_content), the rest is
// its text. Besides crashes, leaks and UB: an encrypted <e2e/> that decodes gives the same DER
// after e2e_text and read_e2e again; a CPIM entity that parses has a DateTime that
// format_datetime() writes and parse_datetime() reads back, and its From, To and DateTime survive
// cpim_entity and parse_cpim again when they are plain JIDs; signed_content never succeeds without
// a good signature, and no signature is good with nothing trusted.
#include <cstdint>
#include <string>

#include "fuzz_common.hpp"
#include "object/smime.hpp"
#include "util/datetime.hpp"

using namespace esession;

namespace {

bool plain_jid(const std::string& s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) <= ' ' || c == '<' || c == '>' || c == '?' || c == '/' ||
        static_cast<unsigned char>(c) >= 127)
      return false;
  return !s.empty() && !s.starts_with("//");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto e2e = smime::read_e2e(text);
      if (!e2e)
        return 0;
      if (!e2e->encrypted()) {
        fuzz::check(!e2e->signed_entity.empty(), "read_e2e accepted an empty object");
        return 0;
      }
      auto again = smime::read_e2e(smime::e2e_text(e2e->enveloped));
      fuzz::check(again && again->enveloped == e2e->enveloped,
                  "e2e_text then read_e2e changes the DER");
      return 0;
    }
    case 1: {
      auto p = smime::parse_cpim(text);
      if (!p)
        return 0;
      // An offset can take a date of year 0000 or 9999 out of the four digits RFC 3339 has.
      bool in_range = p->time >= 0 && p->time < 253402300800;  // 1970 to 9999
      auto back = parse_datetime(format_datetime(p->time));
      fuzz::check(!in_range || (back && *back == p->time), "datetime does not read back");
      if (plain_jid(p->from) && plain_jid(p->to) && in_range) {
        xml::Element stanza("message", std::string(xml::kNsClient));
        auto q = smime::parse_cpim(smime::cpim_entity(p->from, p->to, p->time * 1000, stanza));
        fuzz::check(q && q->from == p->from && q->to == p->to && q->time == p->time,
                    "cpim_entity then parse_cpim changes From, To or DateTime");
      }
      return 0;
    }
    default: {
      cms::Verdict v;
      auto content = smime::signed_content(text, cms::Trust{}, v, 1 << 16);
      fuzz::check(!content || v.state == cms::Verdict::State::good,
                  "signed_content succeeded without a good signature");
      fuzz::check(v.state != cms::Verdict::State::good, "a good signature with nothing trusted");
      return 0;
    }
  }
}
