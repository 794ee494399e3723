#include "state.hpp"

namespace esession::cli {

namespace {

constexpr std::string_view kMagic = "ESC1";

void put(SecretBytes& out, ByteView v) {
  uint32_t n = static_cast<uint32_t>(v.size());
  for (int i = 3; i >= 0; --i)
    out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  out.insert(out.end(), v.begin(), v.end());
}

struct Cursor {
  ByteView b;
  size_t pos = 0;
  Result<ByteView> take() {
    if (b.size() - pos < 4)
      return fail(Errc::malformed, "stored session truncated");
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i)
      n = (n << 8) | b[pos + static_cast<size_t>(i)];
    pos += 4;
    if (b.size() - pos < n)
      return fail(Errc::malformed, "stored session truncated");
    ByteView v = b.subspan(pos, n);
    pos += n;
    return v;
  }
};

}  // namespace

SecretBytes StoredSession::encode() const {
  SecretBytes out(kMagic.begin(), kMagic.end());
  put(out, view(sas));
  put(out, view(peer_mode));
  put(out, view(peer_fingerprint));
  std::string rid = retained_id ? std::to_string(*retained_id) : "";
  put(out, view(rid));
  put(out, view(std::string_view(continuity ? "1" : "0")));
  put(out, view(session));
  put(out, view(pki));
  put(out, view(own_mode));
  put(out, view(own_key_unused));
  return out;
}

Result<StoredSession> StoredSession::decode(ByteView b) {
  if (b.size() < kMagic.size() || string_of(b.first(kMagic.size())) != kMagic)
    return fail(Errc::malformed, "not a stored esession session");
  Cursor c{b, kMagic.size()};
  StoredSession s;
  ES_ASSIGN(ByteView sas, c.take());
  ES_ASSIGN(ByteView mode, c.take());
  ES_ASSIGN(ByteView fpr, c.take());
  ES_ASSIGN(ByteView rid, c.take());
  ES_ASSIGN(ByteView cont, c.take());
  ES_ASSIGN(ByteView st, c.take());
  if (c.pos != b.size()) {  // sessions stored before the PKI field have none
    ES_ASSIGN(ByteView pki, c.take());
    s.pki = string_of(pki);
  }
  if (c.pos != b.size()) {  // nor these, stored before our own identification was
    ES_ASSIGN(ByteView own, c.take());
    ES_ASSIGN(ByteView unused, c.take());
    s.own_mode = string_of(own);
    s.own_key_unused = string_of(unused);
  }
  if (c.pos != b.size())
    return fail(Errc::malformed, "trailing bytes after the stored session");
  s.sas = string_of(sas);
  s.peer_mode = string_of(mode);
  s.peer_fingerprint = string_of(fpr);
  if (!rid.empty()) {
    try {
      s.retained_id = std::stoll(string_of(rid));
    } catch (...) {
      return fail(Errc::malformed, "bad retained secret id in the stored session");
    }
  }
  s.continuity = string_of(cont) == "1";
  s.session = secret(st);
  return s;
}

std::string session_trust(bool key_verified, bool key_pinned, bool sas_verified,
                          const StoredSession& ss) {
  if (key_verified)
    return key_pinned ? "pinned" : "key-verified";
  if (sas_verified)
    return "sas-verified";
  if (!ss.pki.empty())
    return ss.pki;
  return ss.continuity ? "continuity" : "new";
}

}  // namespace esession::cli
