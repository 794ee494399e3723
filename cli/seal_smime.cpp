// RFC 3923 stanza objects (S/MIME for XMPP) for `seal --format smime` / `open --format smime`.
// The layering is described in formats/objects.md ("smime") and built by lib/object/smime;
// this file holds what concerns the stanza and the command line.
//
// seal reads stanzas (message, presence or iq in jabber:client; each its own object, see
// for_each_stanza) and builds for each the protected object of RFC 3923 §5: a Message/CPIM
// entity (RFC 3862) whose headers From, To (im: URIs of the bare JIDs) and DateTime (UTC,
// milliseconds) are covered by the signature, and whose body is application/xmpp+xml:
// <xmpp xmlns='jabber:client'> holding the whole stanza. Messages take the same form rather
// than §3's text/plain body, so every payload element (not just <body/>) is protected. As S/MIME
// does (RFC 5751 §3.5), the entity is signed (multipart/signed, a detached SignedData in an
// application/pkcs7-signature part), that entity is encrypted (EnvelopedData, to the recipients and
// to the signer), and the application/pkcs7-mime entity of the EnvelopedData (base64) goes into
// <e2e xmlns='urn:ietf:params:xml:ns:xmpp-e2e'/>; the outer stanza keeps to, from, type, id and
// <thread/>.
//
// open decrypts, requires a good signature (chain to --ca-file/<home>/ca.pem, or exactly the -i
// certificate), checks that the protected From/To are the stanza's from/to (bare JIDs), that the
// signer's certificate names the sender (XmppAddr or im:/pres:/xmpp: URI; required unless -i
// names the certificate), and that DateTime is plausible (at most 5 minutes ahead, at most
// --max-age old), then writes the stanza with the protected payload in place of <e2e/>. It also
// reads the other forms peers make: bare base64 in <e2e/>; a DER SignedData, or an
// application/pkcs7-mime signed-data entity, inside the EnvelopedData; §3's text/plain body
// (made into a <body/>); §4's PIDF presence.
#include <algorithm>
#include <chrono>

#include "identity.hpp"
#include "io.hpp"
#include "object/cms.hpp"
#include "object/smime.hpp"
#include "seal.hpp"
#include "seal_x509.hpp"
#include "util/datetime.hpp"
#include "util/jid.hpp"

namespace esession::cli {

namespace {

using smime::kNsE2e;
constexpr size_t kMaxObject = xml::kMaxStanza;  // one stanza

void refuse_file_options(const ObjectOpts& o) {
  if (!o.key_out.empty() || !o.key_file.empty() || o.key_fd >= 0)
    fail_with(Errc::malformed, "smime takes no --key-out, --key-file or --key-fd",
              "recipients are certificates (-r), the signer an identity (-i)");
  if (!is_stdio(o.output))
    fail_with(Errc::malformed, "smime writes the stanza to standard output: -o is not supported",
              "redirect standard output instead");
}

bool is_stanza(const xml::Element& e) {
  return e.ns == xml::kNsClient && (e.name == "message" || e.name == "presence" || e.name == "iq");
}

void check_stanza(const xml::Element& s) {
  if (!is_stanza(s))
    fail_with(Errc::malformed,
              "<" + s.name + "/> in '" + s.ns + "' is not a message, presence or iq stanza");
}

// seal_one seals one stanza for seal_smime: signed, then encrypted to |recipients|, or, with
// none, signed only (the multipart/signed entity itself goes into <e2e/>).
void seal_one(Context& ctx, const cms::KeyedIdentity& signer,
              const std::vector<Certificate>& recipients, const xml::Element& stanza) {
  check_stanza(stanza);
  if (stanza.child("e2e", kNsE2e))
    fail_with(Errc::malformed, "the stanza already carries an <e2e/>");
  std::string from = stanza_bare_jid(stanza, "from");
  std::string to = stanza_bare_jid(stanza, "to");
  if (from.empty() || to.empty())
    fail_with(Errc::malformed, "the stanza needs from and to attributes",
              "RFC 3923 binds the object to both JIDs: give from='...' and to='...'");

  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::string cpim = smime::cpim_entity(from, to, now_ms, stanza);
  // One stanza: signed and sealed in memory. S/MIME signs, then encrypts the signed entity
  // (RFC 5751 §3.5).
  Bytes sig = check(cms::sign_detached(signer, view(cpim)));
  std::string entity = smime::multipart_signed(cpim, sig);
  uint64_t n = cpim.size();

  xml::Element sealed(stanza.name, stanza.ns);
  sealed.attrs = stanza.attrs;
  if (const auto* thread = stanza.child("thread", xml::kNsClient))
    sealed.add(*thread);
  xml::Element e2e("e2e", std::string(kNsE2e));
  if (recipients.empty())
    e2e.add(xml::Element::text_node(entity));  // CRLF kept: the serializer escapes CR
  else
    e2e.add(xml::Element::text_node(
        smime::e2e_text(check(cms::seal_bytes(recipients, nullptr, view(entity))))));
  sealed.add(std::move(e2e));
  write_stanza(sealed);
  ctx.status("SEALED", {"smime", std::to_string(n)});
  ctx.info("sealed " + stanza.name + " stanza (smime" + (recipients.empty() ? " sign" : "") +
           ", signed by " + signer.chain.front().subject() + ")");
}

// E2eFailure is the case of RFC 3923 §7 a refused object falls in, for --error-reply.
enum class E2eFailure { none, decryption, signature, timestamp };

// error_reply is the stanza error sent back to the sender of |stanza| (RFC 6120 §8.3): the same
// stanza kind and id, from and to swapped, type 'error', the <e2e/> echoed, and the defined
// condition with the application condition of RFC 3923 §7 in the e2e namespace: bad-request
// with decryption-failed; not-acceptable with signature-unverified or bad-timestamp.
xml::Element error_reply(const xml::Element& stanza, E2eFailure why) {
  xml::Element reply(stanza.name, stanza.ns);
  if (const std::string* f = stanza.attr("from"))
    reply.set_attr("to", *f);
  if (const std::string* t = stanza.attr("to"))
    reply.set_attr("from", *t);
  reply.set_attr("type", "error");
  if (const std::string* id = stanza.attr("id"))
    reply.set_attr("id", *id);
  if (const xml::Element* e2e = stanza.child("e2e", kNsE2e))
    reply.add(*e2e);
  xml::Element& error = reply.add(xml::Element("error", stanza.ns));
  error.set_attr("type", "modify");
  const char* defined = why == E2eFailure::decryption ? "bad-request" : "not-acceptable";
  const char* app = why == E2eFailure::decryption  ? "decryption-failed"
                    : why == E2eFailure::signature ? "signature-unverified"
                                                   : "bad-timestamp";
  error.add(xml::Element(defined, "urn:ietf:params:xml:ns:xmpp-stanzas"));
  error.add(xml::Element(app, std::string(kNsE2e)));
  return reply;
}

}  // namespace

int seal_smime(Context& ctx, const ObjectOpts& o) {
  refuse_file_options(o);
  if (o.allow_unsigned || !o.identity.empty())
    fail_with(Errc::malformed, "--allow-unsigned and --identity are options of open");
  std::string mode = o.mode.empty() ? "signcrypt" : o.mode;
  if (mode != "signcrypt" && mode != "sign")
    fail_with(Errc::malformed, "unknown --mode '" + mode + "' for smime",
              "the modes: signcrypt (signed and encrypted), sign (signed only)");
  bool encrypts = mode == "signcrypt";
  if (encrypts && o.recipients.empty())
    fail_with(Errc::malformed, "smime needs at least one recipient: -r CERTFILE",
              "give the recipient's certificate (PEM or DER); repeat -r for more");
  if (!encrypts && !o.recipients.empty())
    fail_with(Errc::malformed, "--mode sign is not encrypted: -r does not apply",
              "use --mode signcrypt (the default) to sign and encrypt");
  if (o.signers.size() > 1)
    fail_with(Errc::malformed, "smime takes one signer (-i)");
  std::vector<Certificate> recipients;
  for (const auto& r : o.recipients)
    recipients.push_back(load_certificate(r, "recipient certificate"));
  cms::KeyedIdentity signer =
      o.signers.empty()
          ? keyed_account_identity(ctx, {},
                                   "name the signer's identity file with -i FILE (PEM or PKCS#12)")
          : load_keyed_identity(ctx, o.signers.front());
  if (encrypts)
    recipients.push_back(signer.chain.front());  // to ourselves too
  return for_each_stanza(ctx, o, kMaxObject, false,
                         [&](xml::Element& stanza) { seal_one(ctx, signer, recipients, stanza); });
}

namespace {

// open_one opens one sealed stanza for open_smime.
void open_one(Context& ctx, const ObjectOpts& o, const cms::KeyedIdentity& me,
              const cms::Trust& trust, const xml::Element& stanza) {
  check_stanza(stanza);
  if (stanza.count_children("e2e", kNsE2e) != 1)
    fail_with(Errc::malformed,
              "the stanza needs exactly one <e2e xmlns='" + std::string(kNsE2e) + "'/>");
  std::string from = stanza_bare_jid(stanza, "from");
  std::string to = stanza_bare_jid(stanza, "to");
  if (from.empty() || to.empty())
    fail_with(Errc::malformed, "the stanza needs from and to attributes to check the object by");
  // From here, a refusal falls in a case of RFC 3923 §7, which --error-reply answers.
  E2eFailure stage = E2eFailure::decryption;
  try {
    smime::E2eObject object = check(smime::read_e2e(stanza.child("e2e", kNsE2e)->text_content()));
    cms::Verdict verdict;
    Result<Bytes> r = fail(Errc::auth_failed, "not opened");
    if (object.encrypted()) {
      // One stanza: opened in memory. The EnvelopedData holds a signed MIME entity (S/MIME), or
      // a DER SignedData (older esession, `openssl cms -outform DER` pipelines, gpgsm), which
      // open_bytes checks itself.
      cms::Trust outer = trust;
      outer.allow_unsigned = true;
      r = cms::open_bytes(me, outer, object.enveloped, verdict, kMaxObject);
      if (r && verdict.state == cms::Verdict::State::none) {
        r = smime::signed_content(string_of(view(*r)), trust, verdict, kMaxObject);
        // What decrypted is not authenticated yet (CBC): a signed layer that does not parse
        // may as well have been modified.
        if (!r && r.error().code == Errc::malformed) {
          verdict.state = cms::Verdict::State::bad;
          r = fail(Errc::auth_failed,
                   r.error().detail + ": the object was modified, or made wrongly (bad signature)");
        }
      }
    } else {
      // Signed only (RFC 3923: "sign and/or encrypt"): nothing to decrypt, the signature is
      // all there is to check.
      stage = E2eFailure::signature;
      r = smime::signed_content(object.signed_entity, trust, verdict, kMaxObject);
    }
    signature_status(ctx, verdict);
    if (!r && verdict.state == cms::Verdict::State::bad)
      stage = E2eFailure::signature;  // it decrypted; the signature is what failed
    if (!r && verdict.state == cms::Verdict::State::bad && trust.anchors.empty() && !trust.expected)
      check(std::move(r), "configure the signer's CA with --ca-file, or name the signer with -i");
    Bytes plain = check(std::move(r));
    uint64_t n = plain.size();

    stage = E2eFailure::none;  // a malformed CPIM entity, signed by its sender, is not a §7 case
    smime::Protected p = check(smime::parse_cpim(string_of(view(plain))));
    stage = E2eFailure::signature;  // signed, but not by the sender
    check(smime::check_from(p, from), "the object was made for another conversation, or forwarded");
    // The signer's certificate must name the sender. Without a name, only -i binds it to the
    // sender.
    std::optional<Certificate> cert = verdict.signer_cert ? verdict.signer_cert : trust.expected;
    std::vector<std::string> names =
        cert ? smime::certificate_jids(*cert) : std::vector<std::string>{};
    if (names.empty() && !trust.expected)
      fail_with(Errc::auth_failed,
                "the signer's certificate (" + verdict.signer +
                    ") names no XMPP address: nothing "
                    "binds it to " +
                    from,
                "if it is " + from + "'s, name it with -i CERTFILE");
    if (!names.empty() && std::none_of(names.begin(), names.end(),
                                       [&](const auto& name) { return same_jid(name, from); }))
      fail_with(Errc::auth_failed,
                "the signer's certificate names " + names.front() + ", not the sender " + from,
                "someone else signed it");
    stage = E2eFailure::none;  // made for someone else: not a §7 case
    check(smime::check_to(p, to), "the object was made for someone else, or forwarded");
    int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    stage = E2eFailure::timestamp;
    switch (smime::check_time(p, now, o.max_age)) {
      case TimeWindow::inside:
        break;
      case TimeWindow::future:
        fail_with(Errc::replay,
                  "the protected DateTime " + format_datetime(p.time) + " is in the future",
                  "check the clocks");
      case TimeWindow::too_old:
        fail_with(Errc::replay,
                  "the protected DateTime " + format_datetime(p.time) +
                      " is older than --max-age (" + std::to_string(o.max_age) + " s)",
                  "a replay, or a late delivery: raise --max-age to accept it");
    }
    stage = E2eFailure::none;

    // The routing attributes and the protected payload, nothing else: the outer <thread/> is
    // seal's clear copy of the protected one.
    xml::Element opened =
        opened_stanza(ctx, stanza, std::move(p.payload), [](const xml::Element& c) {
          return c.is("e2e", kNsE2e) || c.is("thread", xml::kNsClient);
        });
    if (p.presence_type) {
      if (stanza.name != "presence")
        fail_with(Errc::malformed, "a PIDF presence document in a <" + stanza.name + "/> stanza");
      if (p.presence_type->empty())
        opened.remove_attr("type");
      else
        opened.set_attr("type", *p.presence_type);
    }
    write_stanza(opened);
    ctx.status("OPENED", {"smime", std::to_string(n)});
    ctx.info("good signature by " + verdict.signer);
    if (!object.encrypted())
      ctx.warn("the object was signed but not encrypted: anyone on the way could read it");
  } catch (const Failure&) {
    if (o.error_reply && stage != E2eFailure::none)
      write_stanza(error_reply(stanza, stage));
    throw;
  }
}

}  // namespace

int open_smime(Context& ctx, const ObjectOpts& o) {
  refuse_file_options(o);
  if (!o.recipients.empty())
    fail_with(Errc::malformed, "open takes no recipients (-r)");
  if (o.allow_unsigned)
    fail_with(Errc::malformed, "smime stanzas are always signed: --allow-unsigned is for files");
  if (o.signers.size() > 1)
    fail_with(Errc::malformed, "smime takes one expected signer (-i)");
  if (o.max_age < 0)
    fail_with(Errc::malformed, "--max-age must not be negative");
  cms::KeyedIdentity me =
      o.identity.empty()
          ? keyed_account_identity(ctx, {},
                                   "name an identity file with --identity FILE (PEM or PKCS#12)")
          : load_keyed_identity(ctx, o.identity);
  cms::Trust trust;
  if (!o.signers.empty())
    trust.expected = load_certificate(o.signers.front(), "signer certificate");
  else
    trust.anchors = ca_anchors(ctx);

  return for_each_stanza(ctx, o, kMaxObject, true,
                         [&](xml::Element& stanza) { open_one(ctx, o, me, trust, stanza); });
}

}  // namespace esession::cli
