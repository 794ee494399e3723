// XEP-0373 (OpenPGP for XMPP, "OX") stanza objects for `seal --format ox` / `open --format ox`:
// each <message/> of the input out again with its payload sealed in (or opened from) an
// <openpgp xmlns='urn:xmpp:openpgp:0'/> element, one object a stanza (for_each_stanza). The
// keys are in GnuPG (--gnupg-home), as for the openpgp files (seal_openpgp.cpp); lib/openpgp
// does the OpenPGP work.
//
// Decisions, documented in esession-seal(1) and esession-open(1):
//  - In clear stay what the servers on the way need or what only describes the transport:
//    the XEP-0334 hints (urn:xmpp:hints), XEP-0380 <encryption/> (urn:xmpp:eme:0), XEP-0359
//    <origin-id/>/<stanza-id/> (urn:xmpp:sid:0) and XEP-0079 <amp/>. Everything else (body,
//    subject, thread, receipts, markers, any extension) goes into <payload/>. Whitespace text
//    between the children is dropped.
//  - seal adds <store xmlns='urn:xmpp:hints'/> and <encryption xmlns='urn:xmpp:eme:0'
//    namespace='urn:xmpp:openpgp:0'/> (XEP-0374 §2.3), unless present; no plaintext <body/>
//    hint is added. open writes the routing attributes and the payload, nothing else: every
//    other element outside <openpgp/> is unauthenticated and dropped (with a warning and a
//    DROPPED status line, except that <encryption/> and the <store/> hint).
//  - signcrypt (the default, and the only mode XEP-0374 allows) and crypt are encrypted to
//    the recipients (default: the key of the stanza's `to`) and, for signcrypt, to our own key
//    too (XEP-0373 §3.1 SHOULD); crypt is not signed, so it has no key of ours to add.
//  - open checks all of XEP-0373 §3.2 and refuses (exit 1) a crypt element, which nothing
//    authenticates, unless --allow-unsigned.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <future>
#include <map>

#include "crypto/random.hpp"
#include "identity.hpp"
#include "io.hpp"
#include "openpgp/openpgp.hpp"
#include "seal.hpp"
#include "util/datetime.hpp"
#include "util/jid.hpp"

namespace esession::cli {

namespace {

constexpr std::string_view kNsOx = "urn:xmpp:openpgp:0";
constexpr std::string_view kNsHints = "urn:xmpp:hints";
constexpr std::string_view kNsEme = "urn:xmpp:eme:0";
constexpr std::string_view kNsSid = "urn:xmpp:sid:0";
constexpr int64_t kMaxFuture = 300;  // seconds a <time/> may be ahead of our clock
constexpr size_t kMaxRpad = 200;

void refuse_other_options(const ObjectOpts& o) {
  if (!o.key_out.empty() || !o.key_file.empty() || o.key_fd >= 0)
    fail_with(Errc::malformed, "ox has no --key-out, --key-file or --key-fd: its keys are in GnuPG",
              "name recipients with -r and the signer with -i (JIDs or fingerprints)");
  if (!is_stdio(o.output))
    fail_with(Errc::malformed, "ox writes the stanza to standard output: -o is not supported",
              "redirect standard output instead");
  if (!o.identity.empty())
    fail_with(Errc::malformed, "ox has no --identity: the secret keys are in GnuPG");
}

std::optional<SecretBytes> passphrase(Context& ctx, const std::string& what) {
  if (ctx.globals().passphrase_fd < 0)
    return std::nullopt;
  return read_passphrase(ctx, "passphrase for " + what);
}

// check_message refuses a stanza that is not a <message/>: XEP-0373 seals messages.
void check_message(const xml::Element& st) {
  if (!st.is("message", xml::kNsClient))
    fail_with(Errc::malformed, "ox objects are <message/> stanzas in jabber:client, not <" +
                                   st.name + "/> in " + (st.ns.empty() ? "no namespace" : st.ns));
}

// stays_in_clear: a child of the <message/> that is not sealed.
bool stays_in_clear(const xml::Element& e) {
  return e.ns == kNsHints || e.ns == kNsEme || e.ns == kNsSid || e.ns == xml::kNsAmp;
}

std::string random_rpad() {
  OsRandom rng;  // padding, not a key: no DRBG set-up for it
  size_t n = rng.uniform(kMaxRpad + 1);
  std::string pad;
  for (size_t i = 0; i < n; ++i)
    pad += static_cast<char>('!' + rng.uniform('~' - '!' + 1));  // printable ASCII, no space
  return pad;
}

// is_encrypted: does the binary OpenPGP message start with a session key packet (tag 1 or 3,
// RFC 4880 §4.2-4.3)?
bool is_encrypted(const Bytes& msg) {
  if (msg.empty() || !(msg[0] & 0x80))
    fail_with(Errc::malformed, "<openpgp/> does not hold a binary OpenPGP message");
  int tag = (msg[0] & 0x40) ? (msg[0] & 0x3f) : ((msg[0] >> 2) & 0x0f);
  return tag == 1 || tag == 3;
}

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

}  // namespace

namespace {

// seal_one seals one message for seal_ox, in |mode|, with |gpg|; |pass| unlocks the signing
// key.
void seal_one(Context& ctx, const ObjectOpts& o, const std::string& mode, openpgp::GnuPG& gpg,
              const std::optional<SecretBytes>& pass, xml::Element& msg) {
  bool signs = mode != "crypt", encrypts = mode != "sign";
  check_message(msg);
  std::string to = stanza_bare_jid(msg, "to");
  std::string from = stanza_bare_jid(msg, "from");
  if (signs && to.empty())
    fail_with(Errc::malformed, "the message has no 'to': --mode " + mode + " needs one for <to/>",
              "XEP-0373 §3.1: a signed content element names its recipient");

  // Split the children: what stays in clear, and the payload.
  xml::Element out(msg.name, msg.ns);
  out.attrs = msg.attrs;
  xml::Element payload("payload", std::string(kNsOx));
  for (auto& c : msg.children) {
    if (c.is_text()) {
      if (!blank(c.text))
        fail_with(Errc::malformed, "the message has text outside its child elements");
      continue;
    }
    if (c.is("openpgp", kNsOx))
      fail_with(Errc::malformed, "the message is already sealed (it has an <openpgp/>)");
    if (stays_in_clear(c))
      out.add(std::move(c));
    else
      payload.add(std::move(c));
  }
  if (payload.children.empty())
    fail_with(Errc::malformed, "the message has nothing to seal",
              "only processing hints, stanza ids and <amp/>: these stay in clear");

  // Keys are named by JID or fingerprint and found by gpg itself, in the one gpg run that
  // seals (GnuPG::seal).
  std::string signer;
  if (signs) {
    signer = o.signers.empty() ? from : o.signers.front();
    if (signer.empty())
      fail_with(Errc::malformed, "--mode " + mode + " needs the signer: -i JID or fingerprint",
                "or a 'from' on the message: the key with the User ID xmpp:FROM signs");
  }
  std::vector<std::string> recipients, files;
  if (encrypts) {
    for (const auto& r : o.recipients)
      if (is_key_file(r))
        files.push_back(key_file(r));
      else
        recipients.push_back(r);
    if (recipients.empty() && files.empty()) {
      if (to.empty())
        fail_with(Errc::malformed, "no recipient: give -r JID, or a 'to' on the message");
      recipients.push_back(to);
    }
  }

  xml::Element content(mode, std::string(kNsOx));
  if (!to.empty())
    content.add(xml::Element("to", std::string(kNsOx))).set_attr("jid", to);
  content.add(xml::Element("time", std::string(kNsOx)))
      .set_attr("stamp", format_datetime(static_cast<int64_t>(std::time(nullptr))));
  if (encrypts)
    content.add_text_child("rpad", random_rpad());
  content.add(std::move(payload));
  std::string plain = xml::serialize(content);

  openpgp::CryptOptions co;
  if (pass)
    co.passphrase = view(*pass);
  co.in_name = "the content element";
  co.out_name = "the OpenPGP message";
  co.to_self = true;
  co.recipient_files = files;
  co.warn = [&](const std::string& w) { ctx.warn(w); };
  Bytes sealed = check(gpg.seal(recipients, signer, view(plain), co));

  out.add(xml::Element("openpgp", std::string(kNsOx))).add(xml::Element::text_node(base64(sealed)));
  if (!out.child("store", kNsHints))
    out.add(xml::Element("store", std::string(kNsHints)));
  if (!out.child("encryption", kNsEme))
    out.add(xml::Element("encryption", std::string(kNsEme))).set_attr("namespace", kNsOx);
  write_stanza(out);
  ctx.status("SEALED", {"ox", std::to_string(plain.size())});
  ctx.info("sealed a message (ox " + mode + ")" +
           (encrypts ? " for " + std::to_string(recipients.size() + files.size()) +
                           (recipients.size() + files.size() == 1 ? " recipient" : " recipients")
                     : std::string()) +
           (signer.empty() ? "" : ", signed by " + signer));
}

}  // namespace

int seal_ox(Context& ctx, const ObjectOpts& o) {
  refuse_other_options(o);
  if (o.allow_unsigned)
    fail_with(Errc::malformed, "--allow-unsigned is for open");
  std::string mode = o.mode.empty() ? "signcrypt" : o.mode;
  if (mode != "signcrypt" && mode != "sign" && mode != "crypt")
    fail_with(Errc::malformed, "unknown --mode '" + mode + "'",
              "the modes: signcrypt, sign, crypt");
  bool signs = mode != "crypt", encrypts = mode != "sign";
  if (o.signers.size() > 1)
    fail_with(Errc::malformed, "an ox object is signed by one key: give -i once");
  if (!signs && !o.signers.empty())
    fail_with(Errc::malformed, "--mode crypt is not signed: -i does not apply",
              "use --mode signcrypt to sign and encrypt");
  if (!encrypts && !o.recipients.empty())
    fail_with(Errc::malformed, "--mode sign is not encrypted: -r does not apply",
              "use --mode signcrypt to sign and encrypt");
  for (const auto& s : o.signers)
    refuse_signer_file(s);

  auto gpg = check(openpgp::GnuPG::open(ctx.globals().gnupg_home));
  // Read once: every stanza of the run is signed by the same key, or by the key of its 'from'.
  std::optional<SecretBytes> pass;
  if (signs)
    pass = passphrase(ctx, "the OpenPGP signing key");
  return for_each_stanza(ctx, o, xml::kMaxStanza, false,
                         [&](xml::Element& msg) { seal_one(ctx, o, mode, gpg, pass, msg); });
}

namespace {

// OpenRun is what the stanzas of one `open --format ox` share: the GnuPG home, the passphrase
// (read once, when a first stanza needs it), and the key listings of the JIDs seen so far.
// A listing is used again while the keyring, trust databases and configuration stay unchanged
// (openpgp::keyring_state), for at most kListingLife: a key imported, certified or revoked
// meanwhile is seen by the next stanza, and an expiry within a minute.
class OpenRun {
 public:
  using Keys = Result<std::vector<openpgp::KeyStatus>>;
  static constexpr std::chrono::seconds kListingLife{60};

  explicit OpenRun(openpgp::GnuPG gpg, std::string home)
      : m_gpg(std::move(gpg)), m_home(std::move(home)) {}
  openpgp::GnuPG& gpg() { return m_gpg; }
  const std::optional<SecretBytes>& passphrase(Context& ctx) {
    if (!m_pass_read)
      m_pass = cli::passphrase(ctx, "the OpenPGP secret key");
    m_pass_read = true;
    return m_pass;
  }
  // signer_is tells whether |fpr| is the key -i names by fingerprint or key file (that file's
  // keys are read once a run, by signer_matches).
  bool signer_is(const std::string& which, const std::string& fpr) {
    if (!is_key_file(which))
      return signer_matches(m_home, which, fpr);
    if (!m_file_fprs)
      m_file_fprs = check(openpgp::key_file_fingerprints(m_home, key_file(which)));
    return std::find(m_file_fprs->begin(), m_file_fprs->end(), fpr) != m_file_fprs->end();
  }
  // naming returns the keys with a User ID xmpp:|jid| (none for an empty jid): a listing of an
  // earlier stanza that still holds, or one started now on a thread of its own.
  std::shared_future<Keys> naming(const std::string& jid) {
    auto now = std::chrono::steady_clock::now();
    std::string state = openpgp::keyring_state(m_home);
    auto it = m_listings.find(jid);
    if (it != m_listings.end() && it->second.state == state &&
        now - it->second.made < kListingLife && !failed(it->second.keys))
      return it->second.keys;
    Listing l{state, now, std::async(std::launch::async, [home = m_home, jid] {
                            return openpgp::keys_naming(home, jid);
                          }).share()};
    return m_listings.insert_or_assign(jid, std::move(l)).first->second.keys;
  }

 private:
  struct Listing {
    std::string state;  // keyring_state before the listing began
    std::chrono::steady_clock::time_point made;
    std::shared_future<Keys> keys;
  };
  static bool failed(const std::shared_future<Keys>& f) {
    return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready && !f.get();
  }

  openpgp::GnuPG m_gpg;
  std::string m_home;
  bool m_pass_read = false;
  std::optional<SecretBytes> m_pass;
  std::map<std::string, Listing> m_listings;
  std::optional<std::vector<std::string>> m_file_fprs;  // of the -i key file
};

// open_one opens one sealed message for open_ox.
void open_one(Context& ctx, const ObjectOpts& o, OpenRun& keys, const xml::Element& msg) {
  check_message(msg);
  std::string want = o.signers.empty() ? std::string() : o.signers.front();
  bool want_named = !want.empty() && !openpgp::fingerprint_from_text(want) && !is_key_file(want);
  std::string want_jid =
      want_named ? bare_jid(prepared_jid(want, JidKind::any, "-i")) : std::string();
  std::string to = stanza_bare_jid(msg, "to");
  std::string from = stanza_bare_jid(msg, "from");
  if (msg.count_children("openpgp", kNsOx) != 1)
    fail_with(Errc::malformed,
              "the message must have exactly one <openpgp xmlns='" + std::string(kNsOx) + "'/>");
  const xml::Element* wrapped = msg.child("openpgp", kNsOx);
  // Base64 as other clients write it: in one line, or wrapped in lines (XML whitespace between).
  std::string b64 = wrapped->text_content();
  std::erase_if(b64, [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
  Result<Bytes> raw = unbase64(b64);
  if (!raw)
    fail_with(Errc::malformed, "<openpgp/> is not base64: " + raw.error().detail);
  bool encrypted = is_encrypted(*raw);
  openpgp::GnuPG& gpg = keys.gpg();

  // XEP-0373 §3.2 wants the signer's key to carry the User ID xmpp:FROM. The keys naming the
  // sender (and the JID of -i) are listed by a gpg run of their own, on a thread beside the
  // one that decrypts, or come from the listings of earlier stanzas (NamedKeys).
  auto from_keys = keys.naming(from);
  auto want_keys = keys.naming(want_jid);
  Bytes plain;
  openpgp::Decrypted d;
  if (encrypted) {
    openpgp::CryptOptions co;
    if (const std::optional<SecretBytes>& pass = keys.passphrase(ctx))
      co.passphrase = view(*pass);
    co.in_name = "<openpgp/>";
    co.out_name = "the content element";
    d = check(gpg.decrypt(*raw, plain, co));
  } else {
    d = check(gpg.verify(*raw, plain));
  }
  status_signature(ctx, openpgp::signature_verdict_name(d.signature), d.signer);

  // The content element, authenticated or decrypted: now its form and meaning.
  Result<xml::Element> parsed =
      xml::parse(std::string_view(reinterpret_cast<const char*>(plain.data()), plain.size()));
  if (!parsed)
    fail_with(Errc::malformed, "the content element is not XML: " + parsed.error().detail);
  const xml::Element& content = *parsed;
  std::string mode = content.name;
  if (content.ns != kNsOx || (mode != "signcrypt" && mode != "sign" && mode != "crypt"))
    fail_with(Errc::malformed, "the content element is <" + content.name + "/> in " +
                                   (content.ns.empty() ? "no namespace" : content.ns) +
                                   ", not <signcrypt/>, <sign/> or <crypt/> in " +
                                   std::string(kNsOx));
  if ((mode == "sign") == encrypted)
    fail_with(Errc::auth_failed, "<" + mode + "/> in an OpenPGP message that is " +
                                     (encrypted ? "" : "not ") + "encrypted");

  // The signature and the signer (§3.2).
  using V = openpgp::SignatureVerdict;
  if (d.signature == V::bad)
    fail_with(Errc::auth_failed, "bad OpenPGP signature by " + d.signer);
  if (d.signature == V::unknown)
    fail_with(Errc::auth_failed, "signed by " + d.signer + ", a key not in GnuPG",
              "import and certify the sender's key (gpg --import, gpg --quick-lsign-key)");
  if (d.signature == V::none) {
    if (mode != "crypt")
      fail_with(Errc::auth_failed, "<" + mode + "/> without a signature");
    if (!o.allow_unsigned)
      fail_with(Errc::auth_failed, "<crypt/> is not signed: anyone could have made it",
                "--allow-unsigned opens it anyway");
    if (!o.signers.empty())
      fail_with(Errc::auth_failed,
                "not signed, and -i requires a signature by " + o.signers.front());
    ctx.warn("the object is not signed: anyone could have made it");
  } else {
    if (from.empty() && o.signers.empty())
      fail_with(Errc::malformed, "the message has no 'from': say who must have signed with -i");
    if (!from.empty() && !signer_named(check(from_keys.get()), d.signer))
      fail_with(Errc::auth_failed,
                "signed by " + d.signer + ", a key without a valid User ID xmpp:" + from,
                "XEP-0373 §3.2: the signer's key must name the sender (gpg --list-keys)");
    if (!want.empty() && !(want_named ? signer_named(check(want_keys.get()), d.signer)
                                      : keys.signer_is(want, d.signer)))
      fail_with(Errc::auth_failed, "signed by " + d.signer + ", not by " + want);
  }

  // The children: <to/>s, one <time/>, at most one <rpad/>, one <payload/>.
  std::vector<std::string> tos;
  const xml::Element* time = nullptr;
  const xml::Element* payload = nullptr;
  size_t rpads = 0;
  for (const auto& c : content.children) {
    if (c.is_text()) {
      if (!blank(c.text))
        fail_with(Errc::malformed, "text in the content element outside its children");
    } else if (c.is("to", kNsOx)) {
      const std::string* jid = c.attr("jid");
      if (!jid || jid->empty())
        fail_with(Errc::malformed, "<to/> without a jid");
      tos.push_back(*jid);
    } else if (c.is("time", kNsOx)) {
      if (time)
        fail_with(Errc::malformed, "more than one <time/>");
      time = &c;
    } else if (c.is("rpad", kNsOx)) {
      if (++rpads > 1 || !c.element_children().empty())
        fail_with(Errc::malformed, "<rpad/> must appear at most once and hold text only");
    } else if (c.is("payload", kNsOx)) {
      if (payload)
        fail_with(Errc::malformed, "more than one <payload/>");
      payload = &c;
    } else {
      fail_with(Errc::malformed,
                "unknown element <" + c.name + "/> (" + c.ns + ") in the content element");
    }
  }
  if (!payload)
    fail_with(Errc::malformed, "the content element has no <payload/>");
  if (!time || !time->attr("stamp"))
    fail_with(Errc::malformed, "the content element has no <time stamp='...'/>");
  if (mode != "crypt" && tos.empty())
    fail_with(Errc::auth_failed, "<" + mode + "/> without <to/>: it could be forwarded to anyone");
  if (!tos.empty()) {
    if (to.empty())
      fail_with(Errc::malformed, "the message has no 'to' to compare with <to/>");
    if (std::none_of(tos.begin(), tos.end(), [&](const std::string& j) { return same_jid(j, to); }))
      fail_with(Errc::auth_failed, "<to/> names " + tos.front() + ", not " + to,
                "the object was made for someone else and forwarded");
  }
  std::optional<int64_t> stamp = parse_datetime(*time->attr("stamp"));
  if (!stamp)
    fail_with(Errc::malformed,
              "<time/> stamp '" + *time->attr("stamp") + "' is not an XEP-0082 DateTime");
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  if (*stamp > now + kMaxFuture)
    fail_with(Errc::auth_failed, "<time/> " + *time->attr("stamp") + " is in the future");
  if (now - *stamp > o.max_age)
    fail_with(Errc::auth_failed,
              "<time/> " + *time->attr("stamp") + " is older than --max-age " +
                  std::to_string(o.max_age) + " seconds",
              "a replayed or long-delayed object; raise --max-age to open it anyway");

  // The stanza: its routing attributes and the authenticated payload, nothing else (§3.2).
  std::vector<xml::Element> inside;
  for (const auto& p : payload->children)
    if (!p.is_text() || !blank(p.text))
      inside.push_back(p);
  xml::Element out = opened_stanza(ctx, msg, std::move(inside), [](const xml::Element& c) {
    return c.is("openpgp", kNsOx) || c.is("store", kNsHints) ||
           (c.is("encryption", kNsEme) && c.attr_or("namespace") == kNsOx);
  });
  write_stanza(out);
  ctx.status("OPENED", {"ox", std::to_string(plain.size())});
  if (d.signature == V::good)
    ctx.info("opened <" + mode + "/> signed by " + d.signer +
             (from.empty() ? "" : " (" + from + ")"));
}

}  // namespace

int open_ox(Context& ctx, const ObjectOpts& o) {
  refuse_other_options(o);
  if (!o.recipients.empty())
    fail_with(Errc::malformed, "open takes no recipients (-r): the secret keys are in GnuPG");
  if (!o.mode.empty())
    fail_with(Errc::malformed, "--mode is for seal: open reads the mode from the object");
  if (o.signers.size() > 1)
    fail_with(Errc::malformed, "give -i once: the signer the object must be signed by");
  if (o.max_age <= 0)
    fail_with(Errc::malformed, "--max-age must be a positive number of seconds");

  OpenRun run(check(openpgp::GnuPG::open(ctx.globals().gnupg_home)), ctx.globals().gnupg_home);
  return for_each_stanza(ctx, o, xml::kMaxStanza, true,
                         [&](xml::Element& msg) { open_one(ctx, o, run, msg); });
}

}  // namespace esession::cli
