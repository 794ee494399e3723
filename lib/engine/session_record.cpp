#include "engine/session_record.hpp"

#include <charconv>

#include "util/wire.hpp"

namespace esession {

namespace {

constexpr std::string_view kMagic = "ESC1";
constexpr size_t kMaxField = size_t{16} << 20;

}  // namespace

SecretBytes StoredSession::encode() const {
  wire::Writer w;
  w.raw(view(kMagic));
  w.str(sas);
  w.str(peer_mode);
  w.str(peer_fingerprint);
  w.str(retained_id ? std::to_string(*retained_id) : "");
  w.str(continuity ? "1" : "0");
  w.bytes(view(session));
  w.str(pki);
  w.str(own_mode);
  w.str(own_key_unused);
  return w.take();
}

Result<StoredSession> StoredSession::decode(ByteView b) {
  if (b.size() < kMagic.size() || string_of(b.first(kMagic.size())) != kMagic)
    return fail(Errc::malformed, "not a stored esession session");
  wire::Reader r(b.subspan(kMagic.size()), "stored session", kMaxField);
  StoredSession s;
  ES_ASSIGN(s.sas, r.str("sas"));
  ES_ASSIGN(s.peer_mode, r.str("peer_mode"));
  ES_ASSIGN(s.peer_fingerprint, r.str("peer_fingerprint"));
  ES_ASSIGN(std::string rid, r.str("retained_id"));
  ES_ASSIGN(std::string cont, r.str("continuity"));
  ES_ASSIGN(s.session, r.secret_bytes("session"));
  if (!r.done()) {  // sessions stored before the PKI field have none
    ES_ASSIGN(s.pki, r.str("pki"));
  }
  if (!r.done()) {  // nor these, stored before our own identification was
    ES_ASSIGN(s.own_mode, r.str("own_mode"));
    ES_ASSIGN(s.own_key_unused, r.str("own_key_unused"));
  }
  if (!r.done())
    return r.bad("end", "trailing bytes");
  if (!rid.empty()) {
    int64_t id = 0;
    auto [end, ec] = std::from_chars(rid.data(), rid.data() + rid.size(), id);
    if (ec != std::errc() || end != rid.data() + rid.size())
      return fail(Errc::malformed, "bad retained secret id in the stored session");
    s.retained_id = id;
  }
  s.continuity = cont == "1";
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

}  // namespace esession
