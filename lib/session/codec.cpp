// The suite fields shared by the stored states (codec.hpp).
#include "session/codec.hpp"

#include "session/session.hpp"

namespace esession::codec {

void write_suite(Writer& w, const Suite& s) {
  w.u8(encode(s.compat, kCompatCodes));
  w.boolean(s.conv.g1);
  w.boolean(s.conv.g2);
  w.boolean(s.conv.g4);
  w.boolean(s.conv.g5a);
  w.boolean(s.conv.g5b);
  w.u8(encode(s.flow, kFlowCodes));
  w.u32(static_cast<uint32_t>(s.modp));
  w.u8(encode(s.cipher, kCipherCodes));
  w.u8(encode(s.hash, kHashCodes));
  w.u32(static_cast<uint32_t>(s.stanzas.size()));
  for (const auto& k : s.stanzas)
    w.str(k);
  w.u8(encode(s.init_pubkey, kPubkeyCodes));
  w.u8(encode(s.resp_pubkey, kPubkeyCodes));
  w.str(s.sign_alg);
  w.u32(s.rekey_freq);
  w.str(s.logging);
  w.str(s.ver);
}

Result<Suite> read_suite(Reader& r, bool with_g5b) {
  Suite s;
  ES_ASSIGN(s.compat, decode(r, kCompatCodes, "compat"));
  ES_ASSIGN(s.conv.g1, r.boolean("g1"));
  ES_ASSIGN(s.conv.g2, r.boolean("g2"));
  ES_ASSIGN(s.conv.g4, r.boolean("g4"));
  ES_ASSIGN(s.conv.g5a, r.boolean("g5a"));
  if (!with_g5b) {
    s.conv.g5b = s.compat == Compat::gajim;
  } else {
    ES_ASSIGN(s.conv.g5b, r.boolean("g5b"));
  }
  ES_ASSIGN(s.flow, decode(r, kFlowCodes, "flow"));
  ES_ASSIGN(uint32_t modp, r.u32("modp"));
  if (modp > 1000 || !dh_group(static_cast<int>(modp)))
    return r.bad("modp", "unknown group " + std::to_string(modp));
  s.modp = static_cast<int>(modp);
  ES_ASSIGN(s.cipher, decode(r, kCipherCodes, "cipher"));
  ES_ASSIGN(s.hash, decode(r, kHashCodes, "hash"));
  ES_ASSIGN(uint32_t n, r.count("stanzas", 3));
  for (uint32_t i = 0; i < n; ++i) {
    ES_ASSIGN(std::string k, r.str("stanzas"));
    if (!is_stanza_kind(k))
      return r.bad("stanzas", "unknown stanza kind");
    for (const auto& prev : s.stanzas)
      if (prev == k)
        return r.bad("stanzas", "repeated stanza kind");
    s.stanzas.push_back(std::move(k));
  }
  ES_ASSIGN(s.init_pubkey, decode(r, kPubkeyCodes, "init_pubkey"));
  ES_ASSIGN(s.resp_pubkey, decode(r, kPubkeyCodes, "resp_pubkey"));
  ES_ASSIGN(s.sign_alg, r.str("sign_alg"));
  ES_ASSIGN(s.rekey_freq, r.u32("rekey_freq"));
  ES_ASSIGN(s.logging, r.str("logging"));
  ES_ASSIGN(s.ver, r.str("ver"));
  return s;
}

}  // namespace esession::codec
