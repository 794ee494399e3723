// CtrHmacRecord::serialize and deserialize: the state blob the store keeps for a profile 1.0
// session.
//
// Format "ESS1", version 3, written with codec.hpp (as the negotiation state "ENS1" is). All
// integers are big-endian. A field is one of
//   u8, u32, u64       fixed-size integers; bool is a u8 that must be 0 or 1
//   ctr                16 bytes (a Counter128)
//   bytes              u32 length, then that many bytes (at most 65536)
//   mpi                bytes holding a non-negative integer, big-endian, at least one byte and
//                      no leading zero byte (zero is the single byte 00)
//   list<T>            u32 count, then the elements
// Enumerations are written as explicit codes (below), not as C++ enumerator values, so that
// reordering an enum never changes the format. The fields, in order:
//   "ESS1" u8:version(3)
//   suite:   u8:compat(0 spec, 1 gajim) bool:g1 bool:g2 bool:g4 bool:g5a bool:g5b
//            u8:flow(0 4-msg, 1 3-msg)
//            u32:modp u8:cipher(0 aes128-ctr, 1 aes256-ctr) u8:hash(0 sha256, 1 sha512)
//            list<bytes>:stanzas u8:init_pubkey u8:resp_pubkey (0 none, 1 key, 2 hash)
//            bytes:sign_alg u32:rekey_freq bytes:logging bytes:ver
//   params:  bool:initiator bytes:local_jid bytes:peer_jid bytes:thread
//            bytes:send_cipher bytes:send_mac ctr:send_ctr ctr:recv_ctr
//            mpi:my_private mpi:peer_public
//   session: u8:state(0 active, 1 closing, 2 ended) list<bytes:cipher bytes:mac>:recv_keys
//            bool:has_pending [mpi:pending_private] u32:keys_received u64:sent_since_rekey
//            list<bytes>:old_mac_keys bytes:prev_send_mac
//   stream:  u8:send_carry u8:recv_carry (G5b: 0-15, and 0 without G5b)
//   limit:   u64:send_blocks (counter values spent under the current send key, <= 2^32)
// Nothing may follow. SessionParams::recv is not written (the constructor moves it into the
// receive key sets, leaving it empty), nor is last_trace() (a diagnostic of the last call).
//
// Parsing is strict: every length is checked against what remains, every code against its
// range, and the result must satisfy the invariants the record layer relies on (a live session
// has one or two receive key sets, a pending private value exactly when it has two, AES keys of
// 16 or 32 bytes, a known group and an in-range peer public value), so the encoding is
// canonical: deserialize(b) succeeds only if serialize() of the result gives back b.
//
// Version 1 (written before G5b existed) is still read. It lacks bool:g5b and the stream
// fields: g5b is then set for Gajim-mode sessions (Gajim mode has always meant Gajim's peer,
// whose cipher is a stream; up to then our Gajim-mode sender started every stanza on a fresh
// block, which Gajim reads the same way while no keystream is left over) and both carries
// are 0. Versions 1 and 2 lack send_blocks, which is then 0 (no stored session comes near 2^32
// blocks). Such a session is written back as version 3.
#include "session/codec.hpp"
#include "session/v1/record.hpp"

namespace esession::v1 {

namespace {

constexpr uint8_t kVersion = 3;
constexpr uint8_t kVersionNoStream = 1;  // before G5b: no g5b flag, no stream fields
constexpr uint8_t kVersionNoLimit = 2;   // before send_blocks
constexpr uint32_t kMaxOldMacKeys = 16;

using codec::Reader;
using codec::Writer;

Error bad(std::string_view what, std::string_view why) {
  return fail(Errc::malformed, "session state: " + std::string(what) + ": " + std::string(why));
}

Result<DirectionKeys> read_keys(Reader& r, std::string_view what) {
  DirectionKeys k;
  ES_ASSIGN(k.cipher, r.secret_bytes(what));
  ES_ASSIGN(k.mac, r.secret_bytes(what));
  return k;
}

// check_live enforces what the record layer relies on while it can still send or receive.
Status check_live(const SessionParams& p, const std::vector<DirectionKeys>& recv, bool has_pending,
                  bool closing) {
  if (recv.empty() || recv.size() > 2)
    return bad("recv_keys", "a live session has one or two receive key sets");
  if (has_pending != (recv.size() == 2))
    return bad("pending_private", "present exactly while a re-key is unacknowledged");
  auto keys_ok = [](const DirectionKeys& k) {
    return (k.cipher.size() == 16 || k.cipher.size() == 32) && !k.mac.empty() && k.mac.size() <= 64;
  };
  // A closing session has no send keys (formats §13); one stored before that rule has them.
  if (!(closing && p.send.cipher.empty() && p.send.mac.empty()) && !keys_ok(p.send))
    return bad("send keys", "wrong key length");
  for (const auto& k : recv)
    if (!keys_ok(k))
      return bad("recv_keys", "wrong key length");
  if (!dh_check_public(*dh_group(p.suite.modp), p.peer_public))
    return bad("peer_public", "outside (1, p-1)");
  return {};
}

}  // namespace

SecretBytes CtrHmacRecord::serialize() const {
  Writer w;
  w.raw(view(kMagic));
  w.u8(kVersion);
  codec::write_suite(w, m_p.suite);
  w.boolean(m_p.initiator);
  w.str(m_p.local_jid);
  w.str(m_p.peer_jid);
  w.str(m_p.thread);
  w.bytes(view(m_p.send.cipher));
  w.bytes(view(m_p.send.mac));
  w.raw(m_p.send_ctr.bytes());
  w.raw(m_p.recv_ctr.bytes());
  w.bytes(view(m_p.my_private.mpi_secret()));
  w.bytes(view(m_p.peer_public.mpi()));
  w.u8(m_state == State::active ? 0 : m_state == State::closing ? 1 : 2);
  w.u32(static_cast<uint32_t>(m_recv.size()));
  for (const auto& k : m_recv) {
    w.bytes(view(k.cipher));
    w.bytes(view(k.mac));
  }
  w.boolean(m_pending_private.has_value());
  if (m_pending_private)
    w.bytes(view(m_pending_private->mpi_secret()));
  w.u32(m_keys_received);
  w.u64(m_sent_since_rekey);
  w.u32(static_cast<uint32_t>(m_old_mac_keys.size()));
  for (const auto& k : m_old_mac_keys)
    w.bytes(view(k));
  w.bytes(view(m_prev_send_mac));
  w.u8(m_p.send_carry);
  w.u8(m_p.recv_carry);
  w.u64(m_send_blocks);
  return w.take();
}

Result<CtrHmacRecord> CtrHmacRecord::deserialize(ByteView state) {
  Reader r(state, "session state");
  ES_ASSIGN(ByteView magic, r.fixed(kMagic.size(), "magic"));
  if (!std::equal(magic.begin(), magic.end(), view(kMagic).begin()))
    return bad("magic", "not an esession session state");
  ES_ASSIGN(uint8_t version, r.u8("version"));
  if (version < kVersionNoStream || version > kVersion)
    return fail(Errc::unsupported, "session state: version " + std::to_string(version) +
                                       " is not supported (this esession reads versions " +
                                       std::to_string(kVersionNoStream) + " to " +
                                       std::to_string(kVersion) + ")");
  SessionParams p;
  ES_ASSIGN(p.suite, codec::read_suite(r, version != kVersionNoStream));
  ES_ASSIGN(p.initiator, r.boolean("initiator"));
  ES_ASSIGN(p.local_jid, r.str("local_jid"));
  ES_ASSIGN(p.peer_jid, r.str("peer_jid"));
  ES_ASSIGN(p.thread, r.str("thread"));
  ES_ASSIGN(p.send, read_keys(r, "send keys"));
  ES_ASSIGN(p.send_ctr, r.counter("send_ctr"));
  ES_ASSIGN(p.recv_ctr, r.counter("recv_ctr"));
  ES_ASSIGN(p.my_private, r.private_value("my_private"));
  ES_ASSIGN(ByteView peer_public, r.mpi("peer_public"));
  p.peer_public = BigNum::from_bytes(peer_public);

  ES_ASSIGN(uint8_t st, r.u8("state"));
  if (st > 2)
    return bad("state", "unknown value " + std::to_string(st));
  const State state_value = st == 0 ? State::active : st == 1 ? State::closing : State::ended;
  ES_ASSIGN(uint32_t nrecv, r.count("recv_keys", 2));
  std::vector<DirectionKeys> recv;
  for (uint32_t i = 0; i < nrecv; ++i) {
    ES_ASSIGN(DirectionKeys k, read_keys(r, "recv_keys"));
    recv.push_back(std::move(k));
  }
  std::optional<BigNum> pending;
  ES_ASSIGN(bool has_pending, r.boolean("has_pending"));
  if (has_pending) {
    ES_ASSIGN(pending, r.private_value("pending_private"));
  }
  ES_ASSIGN(uint32_t keys_received, r.u32("keys_received"));
  ES_ASSIGN(uint64_t sent_since_rekey, r.u64("sent_since_rekey"));
  ES_ASSIGN(uint32_t nold, r.count("old_mac_keys", kMaxOldMacKeys));
  std::vector<SecretBytes> old_mac_keys;
  for (uint32_t i = 0; i < nold; ++i) {
    ES_ASSIGN(SecretBytes k, r.secret_bytes("old_mac_keys"));
    old_mac_keys.push_back(std::move(k));
  }
  ES_ASSIGN(SecretBytes prev_send_mac, r.secret_bytes("prev_send_mac"));
  if (version != kVersionNoStream) {
    ES_ASSIGN(p.send_carry, r.u8("send_carry"));
    ES_ASSIGN(p.recv_carry, r.u8("recv_carry"));
    for (uint8_t c : {p.send_carry, p.recv_carry})
      if (c > 15 || (c != 0 && !p.suite.conv.g5b))
        return bad("carry", "out of range");
  }
  uint64_t send_blocks = 0;
  if (version > kVersionNoLimit) {
    ES_ASSIGN(send_blocks, r.u64("send_blocks"));
    if (send_blocks > kMaxBlocksPerKey)
      return bad("send_blocks", "above 2^32");
  }
  if (!r.done())
    return bad("end", "trailing bytes");
  if (state_value != State::ended)
    ES_TRY(check_live(p, recv, has_pending, state_value == State::closing));

  CtrHmacRecord s(std::move(p));
  s.m_state = state_value;
  s.m_recv = std::move(recv);
  s.m_pending_private = std::move(pending);
  s.m_keys_received = keys_received;
  s.m_sent_since_rekey = sent_since_rekey;
  s.m_send_blocks = send_blocks;
  s.m_old_mac_keys = std::move(old_mac_keys);
  s.m_prev_send_mac = std::move(prev_send_mac);
  return s;
}

}  // namespace esession::v1
