#include "session/v1/record.hpp"

#include "session/session.hpp"

#include <charconv>

namespace esession::v1 {

namespace {

constexpr std::string_view kRekeyInitCrypt = "Rekey Initiator Crypt";
constexpr std::string_view kRekeyAccCrypt = "Rekey Acceptor Crypt";
constexpr std::string_view kRekeyInitMac = "Rekey Initiator MAC";
constexpr std::string_view kRekeyAccMac = "Rekey Acceptor MAC";
constexpr std::string_view kGajimFallback =
    "[This is part of an encrypted session. If you see this message, something went wrong.]";

// stays_clear: the children XEP-0200 §5 leaves outside <c/>.
bool stays_clear(const xml::Element& e) {
  return e.is("thread", xml::kNsClient) || e.is("amp", xml::kNsAmp) ||
         e.is("error", xml::kNsClient);
}

// is_defined_condition: an RFC 6120 defined condition (every stanzas-namespace child of
// <error/> but the human-readable <text/>).
bool is_defined_condition(const xml::Element& e) {
  return e.ns == xml::kNsStanzas && e.name != "text";
}

// utf8_chars counts code points of valid UTF-8.
size_t utf8_chars(std::string_view s) {
  size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80)
      ++n;
  return n;
}

// unused_keystream is how many keystream bytes a stanza of |len| bytes had but did not use
// (the vectors' keystream_bytes_carried_out; G5b carries them into the next stanza).
uint8_t unused_keystream(uint8_t carried_in, uint64_t blocks, size_t len) {
  if (len == 0)
    return 0;
  return static_cast<uint8_t>(carried_in + 16 * blocks - len);
}

Result<uint32_t> parse_u32(std::string_view s) {
  ES_ASSIGN(uint64_t v, parse_decimal(s));
  return static_cast<uint32_t>(v);
}

// RekeyKeys are the keys of a re-key (XEP-0200 §9): the initiator's sending keys and the
// acceptor's, from the new Diffie-Hellman secret |k|.
struct RekeyKeys {
  DirectionKeys initiator, acceptor;
};
RekeyKeys rekey_keys(const Suite& s, ByteView k) {
  auto keys = [&](std::string_view crypt, std::string_view mac) {
    return DirectionKeys{cipher_key(s.conv, s.cipher, view(hmac(s.hash, k, view(crypt)))),
                         hmac(s.hash, k, view(mac))};
  };
  return {keys(kRekeyInitCrypt, kRekeyInitMac), keys(kRekeyAccCrypt, kRekeyAccMac)};
}

}  // namespace

CtrKey& KeyCache::cipher(size_t slot, ByteView key) {
  CtrKey& k = m_ctr.at(slot);
  if (!k.matches(key))
    k.set(key);
  return k;
}

HmacKey& KeyCache::mac(size_t slot, HashAlg h, ByteView key) {
  HmacKey& k = m_mac.at(slot);
  if (!k.matches(h, key))
    k.set(h, key);
  return k;
}

void KeyCache::clear() {
  for (auto& k : m_ctr)
    k.clear();
  for (auto& k : m_mac)
    k.clear();
}

CtrHmacRecord::CtrHmacRecord(SessionParams p) : m_p(std::move(p)) {
  m_recv.push_back(std::move(m_p.recv));
  m_p.recv = {};
  if (m_p.receive_only) {
    // Nothing is sent, and no private value is kept: the options' x, shared by every request
    // against them, must go when they are destroyed, not live on in each session.
    m_state = State::closing;
    m_p.send = {};
    m_p.my_private = BigNum();
  }
}

std::unique_ptr<RecordLayer> CtrHmacRecord::clone() const {
  return std::make_unique<CtrHmacRecord>(*this);
}

void CtrHmacRecord::destroy() {
  m_state = State::ended;
  m_p.send = {};
  m_recv.clear();
  m_p.my_private = BigNum();
  m_pending_private.reset();
  m_old_mac_keys.clear();
  m_prev_send_mac = {};
  m_p.send_carry = m_p.recv_carry = 0;
  m_cache.clear();
}

Bytes CtrHmacRecord::pad(std::string content, RandomSource&) const {
  // Both modes pad to a multiple of 16 bytes: in Gajim mode that leaves no keystream over, so
  // Gajim's stream receiver (G5b) stays in step whatever the text. Gajim itself pads to a
  // multiple of 16 characters (G5a), which only a vector replay asks of us.
  size_t len = m_p.suite.conv.g5a ? utf8_chars(content) : content.size();
  content.append((16 - len % 16) % 16, ' ');
  return Bytes(content.begin(), content.end());
}

Result<xml::Element> CtrHmacRecord::seal(const xml::Element& envelope, ByteView plaintext,
                                         bool has_content, std::optional<std::string> key_b64) {
  ES_ASSIGN(xml::Element c, seal_c(plaintext, has_content, std::move(key_b64)));
  xml::Element out(envelope.name, envelope.ns);
  out.attrs = envelope.attrs;
  for (const auto& ch : envelope.children)
    if (!ch.is_text() && stays_clear(ch))
      out.children.push_back(ch);
  out.add(std::move(c));
  if (m_p.suite.compat == Compat::gajim && envelope.name == "message")
    out.add_text_child("body", kGajimFallback);
  return out;
}

namespace {

// append_m_content appends one child of <c/> to m_content as formats §11.3 writes it:
// <NAME>TEXT</NAME>, whatever the serializer would make of it (an empty element included).
// The texts are Base64 or decimal, which need no escaping; anything else is refused when it is
// decoded.
void append_m_content(std::string& out, std::string_view name, std::string_view text) {
  out += '<';
  out += name;
  out += '>';
  out += text;
  out += "</";
  out += name;
  out += '>';
}

}  // namespace

Result<xml::Element> CtrHmacRecord::seal_c(ByteView plaintext, bool has_content,
                                           std::optional<std::string> key_b64) {
  const Counter128 before = m_p.send_ctr;
  xml::Element c("c", std::string(xml::kNsC));
  // G5b: the stanza starts with the keystream the previous one left over.
  CtrStream stream{before, m_p.send_carry};
  const uint8_t carried_in =
      has_content ? static_cast<uint8_t>(std::min<size_t>(stream.carry, plaintext.size())) : 0;
  Counter128 after = before.add(1);
  uint64_t blocks = 1;
  Bytes ciphertext;
  // formats §12: at most 2^32 blocks under one key; then the sender must re-key (or end the
  // session) first. Checked before anything is spent.
  if (m_send_blocks + plaintext.size() / 16 + 1 > kMaxBlocksPerKey)
    return fail(Errc::wrong_state,
                "this key has encrypted 2^32 blocks: re-key the session (esession rekey) first");
  if (has_content) {
    if (!plaintext.empty() && plaintext.size() <= stream.carry)
      return fail(Errc::malformed, "a stanza of " + std::to_string(plaintext.size()) +
                                       " bytes would not advance the counter (G5b)");
    ciphertext.resize(plaintext.size());
    blocks = ctr_stream_encrypt(m_p.suite.conv, m_cache.cipher(0, m_p.send.cipher), stream,
                                plaintext, ciphertext.data());
    after = stream.ctr;
    c.add_text_child("data", base64(ciphertext));
  } else {
    stream.carry = 0;  // a counter value without keystream: the next stanza starts afresh
  }
  if (key_b64)
    c.add_text_child("key", *key_b64);
  if (m_keys_received > 0)
    c.add_text_child("new", std::to_string(m_keys_received));
  for (const auto& k : m_old_mac_keys)
    c.add_text_child("old", base64(view(k)));
  std::string mac_content;
  for (const auto* ch : c.element_children())
    append_m_content(mac_content, ch->name, ch->text_content());
  Bytes ctr_mpi = before.mpi();
  SecretBytes a_mac =
      m_cache.mac(0, m_p.suite.hash, m_p.send.mac).mac({view(mac_content), view(ctr_mpi)});
  c.add_text_child("mac", base64(view(a_mac)));

  // Commit.
  m_p.send_ctr = after;
  m_p.send_carry = stream.carry;
  m_keys_received = 0;
  m_old_mac_keys.clear();
  ++m_sent_since_rekey;
  m_send_blocks += blocks;
  const uint8_t left = unused_keystream(carried_in, blocks, ciphertext.size());
  m_trace = CounterTrace{before,
                         after,
                         blocks,
                         carried_in,
                         left,
                         std::move(ciphertext),
                         std::move(mac_content),
                         bytes_of(view(a_mac))};
  return c;
}

Result<xml::Element> CtrHmacRecord::encrypt(const xml::Element& stanza, RandomSource& rng,
                                            const SendOptions& opts) {
  if (m_state != State::active)
    return fail(Errc::terminated, "the session has ended");
  if (!is_stanza_kind(stanza.name) || stanza.ns != xml::kNsClient)
    return fail(Errc::malformed, "only <message/>, <presence/> and <iq/> can be encrypted");
  bool negotiated = false;
  for (const auto& k : m_p.suite.stanzas)
    negotiated |= (k == stanza.name);
  if (!negotiated)
    return fail(
        Errc::not_acceptable,
        "<" + stanza.name + "/> stanzas were not negotiated for encryption in this session");
  if (stanza.child("c", xml::kNsC))
    return fail(Errc::malformed, "the stanza is already encrypted");
  Bytes plaintext;
  bool has_content = false;
  if (opts.plaintext_override) {
    plaintext = *opts.plaintext_override;
    has_content = true;
  } else {
    std::string content;
    for (const auto& ch : stanza.children)
      if (!ch.is_text() && !stays_clear(ch))
        content += xml::serialize(ch, stanza.ns);
    has_content = !content.empty();
    if (has_content)
      plaintext = pad(std::move(content), rng);
  }
  ES_TRY(check_wire_size(stanza, plaintext.size()));
  ES_ASSIGN(xml::Element out, seal(stanza, plaintext, has_content, std::nullopt));
  if (!opts.plaintext_override && m_p.suite.compat == Compat::spec)
    ES_TRY(seal_error_details(out, rng));
  return out;
}

Status CtrHmacRecord::check_wire_size(const xml::Element& stanza, size_t plaintext_size) const {
  // What seal writes: the clear part of the stanza, then a <c/> with the Base64 of the padded
  // plaintext, <mac/>, <new/> and the <old/> MAC keys (XEP-0200 §5); in spec mode, an error
  // stanza's details in a second <c/> inside <error/>; in Gajim mode a fallback <body/>. The
  // fixed parts are bounded generously: 256 bytes a <c/>, 128 an <old/>.
  xml::Element clear(stanza.name, stanza.ns);
  clear.attrs = stanza.attrs;
  std::string details;
  for (const auto& ch : stanza.children) {
    if (ch.is_text() || !stays_clear(ch))
      continue;
    clear.children.push_back(ch);
    if (ch.is("error", xml::kNsClient) && m_p.suite.compat == Compat::spec)
      for (const auto& d : ch.children)
        if (!d.is_text() && !is_defined_condition(d))
          details += xml::serialize(d, ch.ns);
  }
  auto b64 = [](size_t n) { return (n + 2) / 3 * 4; };
  size_t bound = xml::serialize(clear).size() + b64(plaintext_size + 15) + 256 +
                 128 * m_old_mac_keys.size() + kGajimFallback.size() + 16;
  if (!details.empty())
    bound += b64(details.size() + 15) + 256;
  if (bound > xml::kMaxStanza)
    return fail(Errc::malformed, "the stanza would be about " + std::to_string(bound) +
                                     " bytes encrypted, more than the " +
                                     std::to_string(xml::kMaxStanza) +
                                     " bytes a receiver reads (its plaintext is " +
                                     std::to_string(plaintext_size) + " bytes)");
  return {};
}

Status CtrHmacRecord::seal_error_details(xml::Element& out, RandomSource& rng) {
  // XEP-0200 §5 (A28): in an error stanza the defined condition stays in clear beside the
  // stanza's own <c/>; every other child of <error/> goes into a second <c/> inside it, sealed
  // after the first.
  if (out.attr_or("type") != "error")
    return {};
  xml::Element* err = out.child("error", xml::kNsClient);
  if (!err)
    return {};
  // The children are only read here: an <error/> that holds nothing but its condition is left
  // exactly as it is, and the details are taken out only once they are sealed.
  std::string content;
  for (const auto& ch : err->children)
    if (!ch.is_text() && !is_defined_condition(ch))
      content += xml::serialize(ch, err->ns);
  if (content.empty())
    return {};
  ES_ASSIGN(xml::Element c, seal_c(view(pad(std::move(content), rng)), true, std::nullopt));
  std::erase_if(err->children,
                [](const xml::Element& ch) { return ch.is_text() || !is_defined_condition(ch); });
  err->add(std::move(c));
  return {};
}

Result<xml::Element> CtrHmacRecord::rekey(RandomSource& rng) {
  if (m_state != State::active)
    return fail(Errc::terminated, "the session has ended");
  if (m_recv.size() > 1)
    return fail(Errc::wrong_state, "the previous re-key has not been acknowledged yet");
  if (m_sent_since_rekey + 1 < m_p.suite.rekey_freq)
    return fail(Errc::wrong_state, "re-keying more often than the negotiated rekey_freq");
  const DhGroup* g = dh_group(m_p.suite.modp);
  if (!g)
    return fail(Errc::internal, "unknown group");
  BigNum x = rng.dh_private(*g);
  BigNum e = dh_public(*g, x);
  RekeyKeys keys = rekey_keys(m_p.suite, view(dh_shared(*g, m_p.peer_public, x)));
  DirectionKeys& mine = keys.initiator;
  DirectionKeys& theirs = keys.acceptor;
  xml::Element envelope("message", std::string(xml::kNsClient));
  envelope.set_attr("to", m_p.peer_jid);
  envelope.add_text_child("thread", m_p.thread);
  SecretBytes old_send_mac = m_p.send.mac;
  ES_ASSIGN(xml::Element out, seal(envelope, {}, false, base64(e.mpi())));
  m_p.send = std::move(mine);
  m_p.send_carry = 0;  // a new key starts a new keystream
  m_recv.push_back(std::move(theirs));
  m_pending_private = std::move(x);
  m_old_mac_keys.clear();
  m_prev_send_mac = std::move(old_send_mac);
  m_sent_since_rekey = 0;
  m_send_blocks = 0;
  return out;
}

Result<xml::Element> CtrHmacRecord::terminate(RandomSource& rng) {
  if (m_state != State::active)
    return fail(Errc::terminated, "the session has ended");
  xml::Element envelope("message", std::string(xml::kNsClient));
  envelope.set_attr("to", m_p.peer_jid);
  envelope.add_text_child("thread", m_p.thread);
  if (m_p.suite.compat == Compat::gajim) {
    // T1: Gajim ends a session with the form in clear and expects no acknowledgement. Its
    // form is written as Gajim writes its submit forms: type="text-single" on every field.
    envelope.children.insert(envelope.children.begin(), terminate_form("submit", "text-single"));
    destroy();
    return envelope;
  }
  envelope.add(terminate_form("submit"));
  ES_ASSIGN(xml::Element out, encrypt(envelope, rng, {}));
  // formats §13: we send nothing more, so the send keys go now; the receive keys stay for
  // the stanzas in flight and the acknowledgement.
  m_state = State::closing;
  m_p.send = {};
  m_prev_send_mac = {};
  return out;
}

Result<Received> CtrHmacRecord::decrypt(const xml::Element& stanza, RandomSource& rng) {
  if (!can_receive())
    return fail(Errc::terminated, "the session has ended");
  // Any failure below destroys the session: XEP-0200 §8 steps 3-4. Except a stanza with no
  // <c/> at all: it is refused, but being unauthenticated it must not end the session, or
  // anyone who can inject a stanza could end it (formats §15.7).
  auto r = open(stanza, rng);
  if (r && m_state != State::ended) {
    if (auto inner = open_error_details(r->stanza, rng); !inner)
      r = inner.error();
  }
  if (!r && !unencrypted(stanza))
    destroy();
  return r;
}

Status CtrHmacRecord::open_error_details(xml::Element& stanza, RandomSource& rng) {
  xml::Element* err = stanza.child("error", xml::kNsClient);
  if (!err || !err->child("c", xml::kNsC))
    return {};
  if (stanza.attr_or("type") != "error")
    return fail(Errc::malformed, "<c/> inside <error/> of a stanza that is not an error");
  if (err->count_children("c", xml::kNsC) != 1)
    return fail(Errc::malformed, "more than one <c/> inside <error/>");
  xml::Element inner(stanza.name, stanza.ns);
  std::vector<xml::Element> kept;
  for (auto& ch : err->children) {
    if (ch.is("c", xml::kNsC))
      inner.children.push_back(std::move(ch));
    else if (!ch.is_text())
      kept.push_back(std::move(ch));
  }
  ES_ASSIGN(Received details, open(inner, rng));
  if (details.rekeyed || details.terminated)
    return fail(Errc::malformed, "re-key or termination inside <error/>");
  err->children = std::move(kept);
  for (auto& ch : details.stanza.children)
    err->children.push_back(std::move(ch));
  return {};
}

namespace {

// CParts is a received <c/> taken apart (formats §11.3), every Base64 value decoded.
struct CParts {
  const xml::Element *data = nullptr, *key = nullptr, *mac = nullptr, *nw = nullptr;
  std::string mac_content;             // m_content: every child but <mac/>, as the MAC covers them
  Bytes a_mac, ciphertext, key_bytes;  // <mac/>, <data/> (m_final) and <key/>
};

// take_apart checks the children of <c/> and decodes them. Every Base64 value is decoded
// (strictly, formats §1.3) before the MAC is checked, so a malformed one is refused as
// malformed, not as an authentication failure.
Result<CParts> take_apart(const xml::Element& c) {
  if (!c.attrs.empty())
    return fail(Errc::malformed, "<c/> with attributes");
  CParts p;
  for (const auto& ch : c.children) {
    if (ch.is_text()) {
      if (ch.text.find_first_not_of(" \t\r\n") != std::string::npos)
        return fail(Errc::malformed, "text directly inside <c/>");
      continue;
    }
    const xml::Element** slot = nullptr;
    if (ch.is("data", xml::kNsC))
      slot = &p.data;
    else if (ch.is("key", xml::kNsC))
      slot = &p.key;
    else if (ch.is("mac", xml::kNsC))
      slot = &p.mac;
    else if (ch.is("new", xml::kNsC))
      slot = &p.nw;
    else if (!ch.is("old", xml::kNsC))
      return fail(Errc::malformed, "unexpected <" + ch.name + "/> inside <c/>");
    if (slot) {
      if (*slot)
        return fail(Errc::malformed, "duplicate <" + ch.name + "/> inside <c/>");
      *slot = &ch;
    }
    // formats §11.3: the children hold text only.
    if (!ch.attrs.empty() || !ch.element_children().empty())
      return fail(Errc::malformed, "<" + ch.name + "/> inside <c/> with attributes or children");
    if (&ch != p.mac)
      append_m_content(p.mac_content, ch.name, ch.text_content());
    if (ch.is("old", xml::kNsC))  // never used, but spelled as formats §1.3 says
      ES_TRY(unbase64(ch.text_content()));
  }
  if (!p.mac)
    return fail(Errc::malformed, "<c/> without <mac/>");
  ES_ASSIGN(p.a_mac, unbase64(p.mac->text_content()));
  if (p.data) {
    ES_ASSIGN(p.ciphertext, unbase64(p.data->text_content()));
  }
  if (p.key) {
    ES_ASSIGN(p.key_bytes, unbase64(p.key->text_content()));
  }
  return p;
}

// mac_verifies checks <mac/> against HMAC(key, m_content | counter); A2: in spec mode a peer may
// encode the counter as 16 fixed bytes.
bool mac_verifies(HmacKey& key, Compat compat, const CParts& p, const Counter128& ctr) {
  Bytes ctr_mpi = ctr.mpi();
  SecretBytes b_mac = key.mac({view(p.mac_content), view(ctr_mpi)});
  if (ct_equal(view(b_mac), view(p.a_mac)))
    return true;
  if (compat != Compat::spec || ctr_mpi.size() == 16)
    return false;
  b_mac = key.mac({view(p.mac_content), ctr.bytes()});
  return ct_equal(view(b_mac), view(p.a_mac));
}

// rebuild puts the decrypted |content| in place of <c/> in a copy of |stanza|'s envelope, and
// returns the type of a termination form in it, if any.
Result<std::optional<std::string>> rebuild(const xml::Element& stanza,
                                           std::vector<xml::Element> content, xml::Element& out) {
  out = xml::Element(stanza.name, stanza.ns);
  out.attrs = stanza.attrs;
  for (const auto& ch : stanza.children)
    if (!ch.is_text() && stays_clear(ch))
      out.children.push_back(ch);
  std::optional<std::string> term;
  for (auto& ch : content) {
    if (ch.is_text()) {
      if (ch.text.find_first_not_of(" \t\r\n") != std::string::npos)
        return fail(Errc::malformed, "decrypted content has text outside elements");
      continue;
    }
    if (auto t = terminate_form_type(ch))
      term = t;
    out.children.push_back(std::move(ch));
  }
  return term;
}

// select_keys returns the receive key set a stanza names (XEP-0200 §8 step 1), once its MAC
// verifies with it.
Result<size_t> select_keys(const CParts& p, const std::vector<DirectionKeys>& recv, KeyCache& cache,
                           const SessionParams& sp) {
  size_t set = 0;
  if (p.nw) {
    ES_ASSIGN(uint32_t n, parse_u32(p.nw->text_content()));
    if (n == 0 || n >= recv.size())
      return fail(Errc::wrong_state, "<new/> names a re-key we did not send");
    set = n;
  }
  HmacKey& recv_mac = cache.mac(1 + set, sp.suite.hash, recv[set].mac);
  if (!mac_verifies(recv_mac, sp.suite.compat, p, sp.recv_ctr))
    return fail(Errc::auth_failed,
                "stanza MAC does not verify (tampered, replayed, reordered or lost stanza)");
  return set;
}

// Decrypted is the counter trace of a decryption and the keystream it leaves (G5b).
struct Decrypted {
  CounterTrace trace;
  uint8_t carry = 0;
};

// decrypt_data decrypts <data/> into |plaintext| with key set |set|. G5b: the peer's keystream
// continues from its previous stanza under the same key; a stanza under the keys of our re-key
// (<new/>) starts a new one.
Result<Decrypted> decrypt_data(CParts& p, size_t set, KeyCache& cache, const DirectionKeys& keys,
                               const SessionParams& sp, SecretBytes& plaintext) {
  Decrypted out;
  CounterTrace& t = out.trace;
  t.before = sp.recv_ctr;
  t.after = sp.recv_ctr.add(1);
  t.blocks = 1;
  CtrStream stream{t.before, set == 0 ? sp.recv_carry : uint8_t{0}};
  if (p.data && !p.ciphertext.empty()) {
    // Every Gajim stanza is at least 16 bytes; one within the carried keystream would leave
    // the counter, and so the next MAC's counter, where it is.
    if (p.ciphertext.size() <= stream.carry)
      return fail(Errc::malformed, "<data/> shorter than the keystream carried over (G5b)");
    t.carried_in = stream.carry;
    plaintext.resize(p.ciphertext.size());
    t.blocks = ctr_stream_encrypt(sp.suite.conv, cache.cipher(1 + set, keys.cipher), stream,
                                  p.ciphertext, plaintext.data());
    t.after = stream.ctr;
  } else {
    stream.carry = 0;
  }
  t.carried_out = unused_keystream(t.carried_in, t.blocks, p.ciphertext.size());
  t.m_content = std::move(p.mac_content);
  t.a_mac = std::move(p.a_mac);
  out.carry = stream.carry;
  return out;
}

}  // namespace

Result<Received> CtrHmacRecord::open(const xml::Element& stanza, RandomSource& rng) {
  if (stanza.count_children("c", xml::kNsC) != 1) {
    if (auto t = clear_terminate(stanza))
      return std::move(*t);
    if (unencrypted(stanza))
      return fail(Errc::auth_failed,
                  "unencrypted stanza refused (every stanza in the session is encrypted)");
    return fail(Errc::malformed, "expected exactly one <c/> in the stanza");
  }
  ES_ASSIGN(CParts p, take_apart(*stanza.child("c", xml::kNsC)));
  ES_ASSIGN(size_t set, select_keys(p, m_recv, m_cache, m_p));
  Received out;
  ES_ASSIGN(Decrypted dec, decrypt_data(p, set, m_cache, m_recv[set], m_p, out.plaintext));
  std::string_view text(reinterpret_cast<const char*>(out.plaintext.data()), out.plaintext.size());
  ES_ASSIGN(std::vector<xml::Element> content, xml::parse_fragment(text, stanza.ns));
  ES_ASSIGN(std::optional<std::string> term, rebuild(stanza, std::move(content), out.stanza));

  // Re-key processing (XEP-0200 §9.2) on copies, committed below.
  std::optional<BigNum> new_peer_public;
  std::optional<RekeyKeys> rk;
  // Crossing re-keys (XEP-0200 §9.2 step 3, formats X2): the peer's <key/> arrives while ours
  // is unacknowledged. The peer computed with our older private value; we keep our new send
  // keys and replace the receive keys of every stored set.
  bool crossing = p.key && set == 0 && m_recv.size() > 1;
  if (p.key) {
    const DhGroup* g = dh_group(m_p.suite.modp);
    ES_ASSIGN(new_peer_public, dh_parse_public(*g, p.key_bytes));
    const BigNum& mine = (set > 0 && m_pending_private) ? *m_pending_private : m_p.my_private;
    // The receiving side of an offline session keeps no private value (formats/offline.md §3):
    // it cannot follow a re-key, and the session ends.
    if (mine.bits() == 0)
      return fail(Errc::unsupported,
                  "a re-key in a session that keeps no private value (our side of an offline "
                  "session) cannot be followed");
    rk = rekey_keys(m_p.suite, view(dh_shared(*g, *new_peer_public, mine)));
  }

  // Commit.
  m_p.recv_ctr = dec.trace.after;
  // New receive keys (a <key/>, ours acknowledged by <new/> included above) start a new
  // keystream; so do new send keys, below.
  m_p.recv_carry = p.key ? 0 : dec.carry;
  m_trace = std::move(dec.trace);
  if (set > 0)
    take_acknowledgement(set);
  if (p.key) {
    ++m_keys_received;
    out.rekeyed = true;
    m_p.peer_public = std::move(*new_peer_public);
  }
  if (p.key && crossing) {
    // The peer no longer uses its old MAC key: it may be published (XEP-0200 §10).
    m_old_mac_keys.push_back(m_recv[0].mac);
    for (auto& r : m_recv)
      r = rk->initiator;
  } else if (p.key) {
    // Closing: we send nothing more, so keep no send keys (formats §13).
    m_p.send = m_state == State::active ? std::move(rk->acceptor) : DirectionKeys{};
    m_p.send_carry = 0;
    m_recv.assign(1, std::move(rk->initiator));
    m_sent_since_rekey = 0;
    m_send_blocks = 0;
  }
  if (term) {
    out.terminated = true;
    if (*term == "submit" && m_state == State::active) {
      xml::Element envelope(stanza.name, stanza.ns);
      envelope.set_attr("to", m_p.peer_jid);
      envelope.add_text_child("thread", m_p.thread);
      envelope.add(terminate_form("result"));
      ES_ASSIGN(xml::Element ack, encrypt(envelope, rng, {}));
      out.reply = std::move(ack);
    }
    destroy();
  }
  return out;
}

void CtrHmacRecord::take_acknowledgement(size_t set) {
  // Our re-key is acknowledged: the older receive keys are done with, and both old MAC keys
  // can be published (XEP-0200 §10).
  m_old_mac_keys.clear();
  m_old_mac_keys.push_back(std::move(m_prev_send_mac));
  // After crossing re-keys every set holds the peer's current MAC key: never publish that.
  if (!ct_equal(view(m_recv[0].mac), view(m_recv[set].mac)))
    m_old_mac_keys.push_back(m_recv[0].mac);
  m_recv.erase(m_recv.begin(), m_recv.begin() + static_cast<long>(set));
  m_p.my_private = std::move(*m_pending_private);
  m_pending_private.reset();
}

bool CtrHmacRecord::unencrypted(const xml::Element& stanza) {
  const xml::Element* err = stanza.child("error", xml::kNsClient);
  return stanza.count_children("c", xml::kNsC) == 0 && !(err && err->child("c", xml::kNsC));
}

std::optional<Result<Received>> CtrHmacRecord::clear_terminate(const xml::Element& stanza) {
  const xml::Element* f = stanza.child("feature", xml::kNsFeatureNeg);
  if (!f || !terminate_form_type(*f))
    return std::nullopt;
  if (m_p.suite.compat != Compat::gajim)
    return Result<Received>(
        fail(Errc::auth_failed, "unencrypted termination refused (spec mode needs it encrypted)"));
  // T1: Gajim terminates in clear; end the session, send nothing back.
  Received out;
  out.stanza = stanza;
  out.terminated = true;
  destroy();
  return Result<Received>(std::move(out));
}

}  // namespace esession::v1
