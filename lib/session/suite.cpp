#include "session/suite.hpp"

#include <algorithm>
#include <array>

namespace esession {

std::string_view pubkey_name(PubkeyMode m) {
  switch (m) {
    case PubkeyMode::none:
      return "none";
    case PubkeyMode::key:
      return "key";
    case PubkeyMode::hash:
      return "hash";
  }
  return "none";
}

Result<PubkeyMode> pubkey_from_name(std::string_view s) {
  if (s == "none")
    return PubkeyMode::none;
  if (s == "key")
    return PubkeyMode::key;
  if (s == "hash")
    return PubkeyMode::hash;
  return fail(Errc::unsupported, "unknown public key mode '" + std::string(s) + "'");
}

SecretBytes cipher_key(const CryptoConv& c, CipherAlg alg, ByteView hmac_out) {
  size_t n = c.g1 ? 32 : cipher_key_size(alg);
  if (n > hmac_out.size())
    n = hmac_out.size();
  return secret(hmac_out.subspan(hmac_out.size() - n));
}

Counter128 ctr_encrypt(const CryptoConv& conv, ByteView key, const Counter128& c, ByteView in,
                       uint8_t* out) {
  Counter128 first = conv.g2 ? c.add(1) : c;
  if (!ctr_xcrypt(key, first, in, out))
    die_out_of_memory("AES-CTR");
  return c.add(ctr_blocks(in.size()));
}

Counter128 ctr_encrypt(const CryptoConv& conv, CtrKey& key, const Counter128& c, ByteView in,
                       uint8_t* out) {
  key.xcrypt(conv.g2 ? c.add(1) : c, in, out);
  return c.add(ctr_blocks(in.size()));
}

uint64_t ctr_stream_encrypt(const CryptoConv& conv, CtrKey& key, CtrStream& s, ByteView in,
                            uint8_t* out) {
  size_t carried = 0;
  if (conv.g5b && s.carry > 0) {
    // The carried bytes are the end of the last keystream block generated: the block at s.ctr
    // under G2, at s.ctr - 1 otherwise.
    Counter128 last = s.ctr;
    if (!conv.g2)
      for (size_t i = 16; i-- > 0;)
        if (last.b[i]-- != 0)
          break;  // no borrow
    std::array<uint8_t, 16> ks{};
    key.xcrypt(last, ByteView(ks.data(), ks.size()), ks.data());
    carried = std::min<size_t>(s.carry, in.size());
    for (size_t i = 0; i < carried; ++i)
      out[i] = in[i] ^ ks[16 - s.carry + i];
    cleanse(ks.data(), ks.size());
    s.carry = static_cast<uint8_t>(s.carry - carried);
  }
  size_t rest = in.size() - carried;
  if (rest == 0)
    return 0;
  key.xcrypt(conv.g2 ? s.ctr.add(1) : s.ctr, in.subspan(carried), out + carried);
  uint64_t blocks = ctr_blocks(rest);
  s.ctr = s.ctr.add(blocks);
  s.carry = conv.g5b ? static_cast<uint8_t>((16 - rest % 16) % 16) : 0;
  return blocks;
}

KeySet derive_keys(HashAlg h, ByteView k) {
  KeySet s;
  s.ca = hmac(h, k, view(kLabelInitCipher));
  s.ma = hmac(h, k, view(kLabelInitMac));
  s.sa = hmac(h, k, view(kLabelInitSigma));
  s.cb = hmac(h, k, view(kLabelRespCipher));
  s.mb = hmac(h, k, view(kLabelRespMac));
  s.sb = hmac(h, k, view(kLabelRespSigma));
  return s;
}

std::string sas28x5(HashAlg h, ByteView m_a, std::string_view form_b, bool pad) {
  Bytes d = digest_parts(h, {m_a, view(form_b), view(kLabelSas)});
  uint32_t v = uint32_t(d[d.size() - 3]) << 16 | uint32_t(d[d.size() - 2]) << 8 | d.back();
  return sas_digits(v, pad);
}

std::string sas_digits(uint32_t v, bool pad) {
  static constexpr char kDigits[] = "acdefghikmopqruvwxy123456789";
  std::string out;
  do {
    out.insert(out.begin(), kDigits[v % 28]);
    v /= 28;
  } while (v != 0);
  if (pad)
    while (out.size() < 5)
      out.insert(out.begin(), 'a');
  return out;
}

}  // namespace esession
