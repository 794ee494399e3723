// Gajim-compatibility mode against a model of Gajim's own stanza layer (issue 13, defects 5-7).
//
// GajimPeer is written from PROTOCOL-NOTES §7 and SCHEMA.md §7, not from our Session code: one
// AES-256 CTR stream per direction (G1), whose counter callback pre-increments (G2) and whose
// unused keystream carries over to the next stanza (G5b, PyCrypto's CTR object); the sender
// pads with spaces to a multiple of 16 characters (G5a) and MACs mpi(C) (G3); the receiver
// checks the MAC over the counter padded to 16 bytes (encode_mpi_with_padding) before it
// decrypts, then parses '<node>' + plaintext + '</node>'. AES is OpenSSL's, used block by block.
#include <openssl/evp.h>

#include <catch2/catch.hpp>

#include "helpers.hpp"
#include "session/v1/record.hpp"

using namespace esession;
using namespace esession::test;

namespace {

constexpr const char* kNsStanzaCrypto = "http://www.xmpp.org/extensions/xep-0200.html#ns";

using Block = std::array<uint8_t, 16>;

// GajimStream is one direction of Gajim's cipher.
class GajimStream {
 public:
  GajimStream(ByteView key, ByteView counter) : m_key(key.begin(), key.end()) {
    REQUIRE(m_key.size() == 32);  // G1
    REQUIRE(counter.size() == 16);
    std::copy(counter.begin(), counter.end(), m_ctr.begin());
  }

  Bytes xcrypt(ByteView in) {
    Bytes out(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      if (m_used == 16) {
        increment();  // G2: the callback returns c + 1 and keeps it as c
        m_block = aes(m_ctr);
        m_used = 0;
      }
      out[i] = in[i] ^ m_block[m_used++];
    }
    return out;
  }
  // counter is Gajim's c_s / c_o: the last block generated.
  const Block& counter() const { return m_ctr; }
  size_t leftover() const { return 16 - m_used; }

 private:
  void increment() {
    for (size_t i = 16; i-- > 0;)
      if (++m_ctr[i] != 0)
        break;
  }
  Block aes(const Block& in) const {
    Block out{};
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    bool ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_ecb(), nullptr, m_key.data(), nullptr) &&
              EVP_CIPHER_CTX_set_padding(ctx, 0) &&
              EVP_EncryptUpdate(ctx, out.data(), &n, in.data(), 16) && n == 16;
    EVP_CIPHER_CTX_free(ctx);
    REQUIRE(ok);
    return out;
  }

  Bytes m_key;
  Block m_ctr{};
  Block m_block{};
  size_t m_used = 16;  // bytes of m_block already used
};

Bytes mpi(const Block& c) {
  size_t i = 0;
  while (i < 15 && c[i] == 0)
    ++i;
  return Bytes(c.begin() + static_cast<long>(i), c.end());
}

size_t chars(std::string_view s) {
  size_t n = 0;
  for (char c : s)
    n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

// GajimPeer is Bob as Gajim, set up with the keys and counters our negotiation agreed on.
struct GajimPeer {
  GajimStream enc, dec;
  SecretBytes km_s, km_o;
  std::string jid, peer_jid, thread;

  // send is Gajim's encrypt_stanza for a chat message with |body|.
  xml::Element send(const std::string& body) {
    std::string plain = "<body>" + xml::escape_text(body) + "</body>";
    plain.append((16 - chars(plain) % 16) % 16, ' ');  // G5a
    Bytes before = mpi(enc.counter());
    Bytes m_final = enc.xcrypt(view(plain));
    std::string m_content = "<data>" + base64(m_final) + "</data>";
    SecretBytes mac = hmac(HashAlg::sha256, view(km_s), view(m_content + string_of(view(before))));
    std::string wire = "<message xmlns=\"jabber:client\" to=\"" + peer_jid + "\" from=\"" + jid +
                       "\" type=\"chat\"><thread>" + thread + "</thread><c xmlns=\"" +
                       kNsStanzaCrypto + "\">" + m_content + "<mac>" + base64(view(mac)) +
                       "</mac></c><body>[This is part of an encrypted session.]</body></message>";
    auto st = xml::parse(wire, xml::kNsClient);
    REQUIRE(st);
    return st.value();
  }

  // receive is Gajim's decrypt_stanza; it returns the body, or nullopt where Gajim fails.
  std::optional<std::string> receive(const xml::Element& st) {
    const xml::Element* c = st.child("c", kNsStanzaCrypto);
    REQUIRE(c);
    const xml::Element* data = c->child("data", kNsStanzaCrypto);
    const xml::Element* mac = c->child("mac", kNsStanzaCrypto);
    REQUIRE(data);
    REQUIRE(mac);
    std::string m_content = "<data>" + data->text_content() + "</data>";
    Block ctr = dec.counter();  // encode_mpi_with_padding: 16 bytes
    SecretBytes want =
        hmac(HashAlg::sha256, view(km_o),
             view(m_content + std::string(reinterpret_cast<const char*>(ctr.data()), 16)));
    auto got = unbase64(mac->text_content());
    if (!got || !ct_equal(view(want), view(got.value())))
      return std::nullopt;  // 'bad signature'
    auto m_final = unbase64(data->text_content());
    REQUIRE(m_final);
    Bytes plain = dec.xcrypt(view(m_final.value()));
    auto node = xml::parse("<node>" + string_of(view(plain)) + "</node>", xml::kNsClient);
    if (!node)
      return std::nullopt;  // 'decrypted <data/> not parseable as XML'
    const xml::Element* body = node->child("body", xml::kNsClient);
    if (!body)
      return std::nullopt;
    return body->text_content();
  }
};

PartyConfig gajim_party(const char* jid) {
  PartyConfig p = party(jid);
  p.policy.compat = Compat::gajim;
  p.policy.stanzas = {"message"};
  return p;
}

// restore round-trips a session through its stored form, as the CLI does between runs.
void restore(std::unique_ptr<Session>& s) {
  SecretBytes blob = s->serialize();
  auto r = Session::deserialize(view(blob));
  REQUIRE(r);
  s = std::make_unique<Session>(std::move(r.value()));
}

xml::Element chat(const std::string& to, const std::string& thread, const std::string& body) {
  xml::Element st("message", std::string(xml::kNsClient));
  st.set_attr("to", to);
  st.set_attr("type", "chat");
  st.add_text_child("thread", thread);
  st.add_text_child("body", body);
  return st;
}

// CounterScript hands out the given counters first, then random ones.
class CounterScript final : public RandomSource {
 public:
  std::vector<Counter128> script;
  size_t draws = 0;
  void fill(std::span<uint8_t> out) override { m_sys.fill(out); }
  Counter128 initial_counter() override {
    if (draws < script.size())
      return script[draws++];
    ++draws;
    return RandomSource::initial_counter();
  }

 private:
  SystemRandom m_sys;
};

Counter128 counter_hex(const char* h) {
  return Counter128::from_bytes(unhex(h).value());
}

// counter_of returns the counter field of message 2.
Counter128 counter_of(const xml::Element& m2) {
  const xml::Element* x = xml::find_form(*m2.child("feature", xml::kNsFeatureNeg));
  REQUIRE(x);
  auto f = xml::parse_form(*x);
  REQUIRE(f);
  auto v = f->value("counter");
  REQUIRE(v);
  auto b = unbase64(*v);
  REQUIRE(b);
  return Counter128::from_bytes(view(b.value()));
}

}  // namespace

TEST_CASE("Gajim mode keeps Gajim's keystream in step over non-ASCII stanzas (G5b)") {
  SystemRandom rng;
  auto p =
      negotiate(gajim_party("alice@example.org/pda"), gajim_party("bob@example.com/laptop"), rng);
  REQUIRE(p);
  std::unique_ptr<Session> alice = std::move(p->alice.session);
  const v1::SessionParams& bob = p->bob.session->v1()->params();
  const v1::SessionParams& a = alice->v1()->params();
  GajimPeer gajim{GajimStream(view(bob.send.cipher), bob.send_ctr.bytes()),
                  GajimStream(view(a.send.cipher), a.send_ctr.bytes()),
                  bob.send.mac,
                  a.send.mac,
                  "bob@example.com/laptop",
                  "alice@example.org/pda",
                  p->thread};
  p->bob.session.reset();  // Gajim takes Bob's place

  // Bodies whose padded forms leave keystream over in Gajim's stream: 1 to 15 bytes of it.
  const std::vector<std::string> bodies = {
      "\xc3\xa9",                              // é
      "na\xc3\xafve caf\xc3\xa9",              // naïve café
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",  // 日本語
      "Gr\xc3\xbc\xc3\x9f\x65 aus K\xc3\xb6ln, \xe2\x82\xac"
      "5",                    // Grüße aus Köln, €5
      "\xf0\x9f\x98\x80 ok",  // an emoji, 4 bytes
      "plain ASCII in between",
      "\xc3\xbc",
  };
  size_t gajim_leftovers = 0;
  auto to_gajim = [&](const std::string& body) {
    restore(alice);
    auto enc = alice->encrypt(chat("bob@example.com/laptop", p->thread, body), rng);
    REQUIRE(enc);
    CHECK(gajim.receive(enc.value()) == std::optional<std::string>(body));
  };
  auto from_gajim = [&](const std::string& body) {
    xml::Element st = gajim.send(body);
    gajim_leftovers += gajim.enc.leftover() != 0;
    restore(alice);
    auto dec = alice->decrypt(st);
    REQUIRE(dec);
    const xml::Element* b = dec->stanza.child("body", xml::kNsClient);
    REQUIRE(b);
    CHECK(b->text_content() == body);
  };
  // Several in a row each way, then alternating.
  for (const auto& b : bodies)
    to_gajim(b);
  for (const auto& b : bodies)
    from_gajim(b);
  for (size_t i = 0; i < 3 * bodies.size(); ++i) {
    if (i % 3 == 0)
      from_gajim(bodies[i % bodies.size()]);
    else
      to_gajim(bodies[(i * 5) % bodies.size()]);
  }
  CHECK(gajim_leftovers >= bodies.size());  // the carry-over was exercised
  // Our stanzas leave nothing over: Gajim's stream and a fresh block per stanza agree on them.
  CHECK(gajim.dec.leftover() == 0);
}

TEST_CASE("G5b: a stanza within the carried keystream is refused; new keys start afresh") {
  SystemRandom rng;
  auto p =
      negotiate(gajim_party("alice@example.org/pda"), gajim_party("bob@example.com/laptop"), rng);
  REQUIRE(p);
  Session& alice = *p->alice.session;
  Session& bob = *p->bob.session;
  // 20 bytes leave 12 over; the next stanza starts with them.
  SendOptions twenty;
  twenty.plaintext_override = Bytes(20, ' ');
  auto first = alice.encrypt(chat("bob@example.com/laptop", p->thread, "x"), rng, twenty);
  REQUIRE(first);
  CHECK(alice.v1()->last_trace().carried_out == 12);
  CHECK(alice.v1()->params().send_carry == 12);
  REQUIRE(bob.decrypt(first.value()));
  CHECK(bob.v1()->params().recv_carry == 12);
  // A stanza of at most 12 bytes would not move the counter: refused before anything is spent.
  SendOptions twelve;
  twelve.plaintext_override = Bytes(12, ' ');
  auto short_one = alice.encrypt(chat("bob@example.com/laptop", p->thread, "x"), rng, twelve);
  REQUIRE_FALSE(short_one);
  CHECK(short_one.error().code == Errc::malformed);
  CHECK(alice.v1()->params().send_carry == 12);
  auto next = alice.encrypt(chat("bob@example.com/laptop", p->thread, "\xc3\xa9"), rng);
  REQUIRE(next);
  CHECK(alice.v1()->last_trace().carried_in == 12);
  auto dec = bob.decrypt(next.value());
  REQUIRE(dec);
  CHECK(dec->stanza.child("body", xml::kNsClient)->text_content() == "\xc3\xa9");

  // With re-keys (spec mode with G2 and G5b set by hand: Gajim never re-keys), the keystream
  // of a direction continues while its key does, and a new key starts a new one.
  PartyConfig sa = party("alice@example.org/pda"), sb = party("bob@example.com/laptop");
  sa.policy.conv = sb.policy.conv = CryptoConv{false, true, false, false, true};
  auto q = negotiate(sa, sb, rng);
  REQUIRE(q);
  Session& x = *q->alice.session;
  Session& y = *q->bob.session;
  auto pass = [&](Session& from, Session& to, std::optional<Bytes> override_bytes) {
    SendOptions o;
    o.plaintext_override = std::move(override_bytes);
    auto enc = from.encrypt(chat(to.info().local_jid, q->thread, "\xc3\xa9t\xc3\xa9"), rng, o);
    REQUIRE(enc);
    auto d = to.decrypt(enc.value());
    REQUIRE(d);
    CHECK(from.v1()->last_trace().carried_in == to.v1()->last_trace().carried_in);
    CHECK(from.v1()->params().send_carry == to.v1()->params().recv_carry);
  };
  pass(x, y, Bytes(20, ' '));
  pass(y, x, Bytes(20, ' '));
  CHECK(x.v1()->params().send_carry == 12);
  CHECK(x.v1()->params().recv_carry == 12);
  auto k = x.rekey(rng);  // pending until Bob answers with <new/>
  REQUIRE(k);
  CHECK(x.v1()->params().send_carry == 0);
  pass(y, x, Bytes(20, ' '));  // sent before Bob saw the <key/>: the old stream, 12 carried in
  CHECK(x.v1()->last_trace().carried_in == 12);
  CHECK(x.v1()->params().recv_carry == 8);
  REQUIRE(y.decrypt(k.value()));
  CHECK(y.v1()->params().recv_carry == 0);
  CHECK(y.v1()->params().send_carry == 0);
  pass(y, x, Bytes(20, ' '));  // with <new/>: the new key's stream
  CHECK(x.v1()->last_trace().carried_in == 0);
  CHECK(x.v1()->params().recv_carry == 12);
  pass(x, y, std::nullopt);
  pass(y, x, std::nullopt);
  CHECK(x.v1()->last_trace().carried_in == 12);
}

TEST_CASE("Gajim mode draws no counter whose first byte, or its twin's, is zero") {
  PartyConfig a = gajim_party("alice@example.org/pda"), b = gajim_party("bob@example.com/laptop");
  SystemRandom rng;
  CounterScript bob_rng;
  bob_rng.script = {counter_hex("00112233445566778899aabbccddeeff"),
                    counter_hex("80112233445566778899aabbccddeeff"),
                    counter_hex("00000000000000000000000000000001"),
                    counter_hex("80000000000000000000000000000000"),
                    counter_hex("4f266c9d58cee1020ee99990f72556a9")};
  auto started = Negotiation::start(a, b.jid, rng);
  REQUIRE(started);
  xml::Element offer = started->second.send.at(0);
  offer.set_attr("from", a.jid);
  auto responded = Negotiation::respond(b, offer, bob_rng);
  REQUIRE(responded);
  CHECK(bob_rng.draws == 5);
  CHECK(counter_of(responded->second.send.at(0)) == bob_rng.script[4]);
  auto m3 = started->first.receive(responded->second.send.at(0), rng);
  REQUIRE(m3);
  auto m4 = responded->first.receive(m3->send.at(0), bob_rng);
  REQUIRE(m4);
  auto done = started->first.receive(m4->send.at(0), rng);
  REQUIRE(done);
  REQUIRE(done->established);
  for (const Session* s : {done->established->session.get(), m4->established->session.get()})
    for (const Counter128& c : {s->v1()->params().send_ctr, s->v1()->params().recv_ctr})
      CHECK(c.b[0] != 0);

  // A first draw of 0x00.. or 0x80.. is always replaced, by a usable one.
  for (int i = 0; i < 300; ++i) {
    CounterScript r;
    r.script = {counter_hex(i % 2 ? "80ffffffffffffffffffffffffffffff"
                                  : "007fffffffffffffffffffffffffffff")};
    auto resp = Negotiation::respond(b, offer, r);
    REQUIRE(resp);
    Counter128 c = counter_of(resp->second.send.at(0));
    CHECK(r.draws >= 2);
    CHECK((c.b[0] & 0x7f) != 0);
  }

  // Spec mode is unchanged: the first counter drawn is used, whatever it is.
  PartyConfig sa = party("alice@example.org/pda"), sb = party("bob@example.com/laptop");
  auto s_started = Negotiation::start(sa, sb.jid, rng);
  REQUIRE(s_started);
  xml::Element s_offer = s_started->second.send.at(0);
  s_offer.set_attr("from", sa.jid);
  CounterScript spec_rng;
  spec_rng.script = {counter_hex("00112233445566778899aabbccddeeff")};
  auto s_resp = Negotiation::respond(sb, s_offer, spec_rng);
  REQUIRE(s_resp);
  CHECK(spec_rng.draws == 1);
  CHECK(counter_of(s_resp->second.send.at(0)) == spec_rng.script[0]);

  // A source that only draws such counters fails the negotiation instead of looping.
  CounterScript broken;
  broken.script.assign(100, counter_hex("80000000000000000000000000000000"));
  auto refused = Negotiation::respond(b, offer, broken);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == Errc::internal);
}

TEST_CASE("Gajim mode termination is Gajim's wire, byte for byte (T1)") {
  SystemRandom rng;
  auto p =
      negotiate(gajim_party("alice@example.org/pda"), gajim_party("bob@example.com/laptop"), rng);
  REQUIRE(p);
  auto t = p->alice.session->terminate(rng);
  REQUIRE(t);
  CHECK(xml::serialize(t.value(), {}, wire_style(Compat::gajim)) ==
        "<message xmlns=\"jabber:client\" to=\"bob@example.com/laptop\">"
        "<feature xmlns=\"http://jabber.org/protocol/feature-neg\">"
        "<x xmlns=\"jabber:x:data\" type=\"submit\">"
        "<field var=\"FORM_TYPE\" type=\"text-single\"><value>urn:xmpp:ssn</value></field>"
        "<field var=\"terminate\" type=\"text-single\"><value>1</value></field>"
        "</x></feature><thread>" +
            p->thread + "</thread></message>");
  auto r = p->bob.session->decrypt(t.value());
  REQUIRE(r);
  CHECK(r->terminated);
  CHECK_FALSE(r->reply);
  // Gajim's wire writes an empty element with a space; spec mode does not.
  xml::Element e("required", std::string(xml::kNsData));
  CHECK(xml::serialize(e, xml::kNsData, wire_style(Compat::gajim)) == "<required />");
  CHECK(xml::serialize(e, xml::kNsData, wire_style(Compat::spec)) == "<required/>");
}
