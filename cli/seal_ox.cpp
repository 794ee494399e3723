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
//
// The content element itself (the clear/sealed split, <to/>, <time/>, <rpad/>, <payload/>) is
// lib/object/ox; this file adds the options, the keys, and what is written.
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <future>
#include <map>

#include "crypto/random.hpp"
#include "identity.hpp"
#include "io.hpp"
#include "object/ox.hpp"
#include "openpgp/openpgp.hpp"
#include "seal.hpp"
#include "util/datetime.hpp"
#include "util/jid.hpp"

namespace esession::cli {

namespace {

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

// seal_one seals one message for seal_ox, in |mode|, with |gpg|; |pass| unlocks the signing
// key.
void seal_one(Context& ctx, const ObjectOpts& o, ox::Mode m, openpgp::GnuPG& gpg,
              const std::optional<SecretBytes>& pass, xml::Element& msg) {
  bool signs = ox::signs(m), encrypts = ox::encrypts(m);
  std::string mode(ox::mode_name(m));
  check(ox::check_message(msg));
  std::string to = stanza_bare_jid(msg, "to");
  std::string from = stanza_bare_jid(msg, "from");
  if (signs && to.empty())
    fail_with(Errc::malformed, "the message has no 'to': --mode " + mode + " needs one for <to/>",
              "XEP-0373 §3.1: a signed content element names its recipient");

  // The children that stay in clear, and the payload, in its content element.
  ox::Split split = check(ox::split_message(std::move(msg)));
  OsRandom rng;  // padding, not a key: no DRBG set-up for it
  xml::Element content = check(ox::build_content(m, to, static_cast<int64_t>(std::time(nullptr)),
                                                 std::move(split.payload), rng),
                               "only processing hints, stanza ids and <amp/>: these stay in clear");
  std::string plain = xml::serialize(content);

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

  openpgp::CryptOptions co;
  if (pass)
    co.passphrase = view(*pass);
  co.in_name = "the content element";
  co.out_name = "the OpenPGP message";
  co.to_self = true;
  co.recipient_files = files;
  co.warn = [&](const std::string& w) { ctx.warn(w); };
  Bytes sealed = check(gpg.seal(recipients, signer, view(plain), co));

  write_stanza(ox::sealed_stanza(std::move(split.clear), sealed));
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
  std::string mode_text = o.mode.empty() ? "signcrypt" : o.mode;
  std::optional<ox::Mode> mode = ox::mode_from_name(mode_text);
  if (!mode)
    fail_with(Errc::malformed, "unknown --mode '" + mode_text + "'",
              "the modes: signcrypt, sign, crypt");
  bool signs = ox::signs(*mode), encrypts = ox::encrypts(*mode);
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
                         [&](xml::Element& msg) { seal_one(ctx, o, *mode, gpg, pass, msg); });
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
  check(ox::check_message(msg));
  std::string want = o.signers.empty() ? std::string() : o.signers.front();
  bool want_named = !want.empty() && !openpgp::fingerprint_from_text(want) && !is_key_file(want);
  std::string want_jid =
      want_named ? bare_jid(prepared_jid(want, JidKind::any, "-i")) : std::string();
  std::string to = stanza_bare_jid(msg, "to");
  std::string from = stanza_bare_jid(msg, "from");
  Bytes raw = check(ox::openpgp_message(msg));
  bool encrypted = check(ox::is_encrypted(raw));
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
    d = check(gpg.decrypt(raw, plain, co));
  } else {
    d = check(gpg.verify(raw, plain));
  }
  status_signature(ctx, openpgp::signature_verdict_name(d.signature), d.signer);

  // The content element, authenticated or decrypted: now its form and meaning.
  xml::Element content = check(ox::parse_content(plain, encrypted));
  const std::string& mode = content.name;

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

  // The children, then what they say: <to/> the stanza's 'to', <time/> recent (§3.2).
  ox::Content c = check(ox::read_content(content));
  Status addressed = ox::check_to(c, to);
  bool forwarded = !addressed && addressed.error().code == Errc::auth_failed;
  check(std::move(addressed),
        forwarded ? "the object was made for someone else and forwarded" : "");
  int64_t stamp = check(ox::content_time(c));
  switch (time_window(stamp, static_cast<int64_t>(std::time(nullptr)), ox::kMaxFuture, o.max_age)) {
    case TimeWindow::inside:
      break;
    case TimeWindow::future:
      fail_with(Errc::auth_failed, "<time/> " + c.stamp + " is in the future");
    case TimeWindow::too_old:
      fail_with(Errc::auth_failed,
                "<time/> " + c.stamp + " is older than --max-age " + std::to_string(o.max_age) +
                    " seconds",
                "a replayed or long-delayed object; raise --max-age to open it anyway");
  }

  // The stanza: its routing attributes and the authenticated payload, nothing else (§3.2).
  xml::Element out = opened_stanza(ctx, msg, std::move(c.payload), ox::is_marker);
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
