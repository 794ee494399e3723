// RFC 3923 (S/MIME for XMPP) object layering, without the XMPP and command-line policy: the
// Message/CPIM entity (RFC 3862) that carries a stanza, its S/MIME signature (a
// multipart/signed entity around a detached SignedData, RFC 5751 §3.4.3, or a signed-data
// entity, §3.4.2), and the application/pkcs7-mime entity an <e2e/> holds. cms.hpp does the
// CMS work; formats/objects.md ("smime") describes the layers. What the layers must say about
// the stanza (From and To, the signer's name, the DateTime window) is checked by the functions
// at the end, which the caller runs.
//
// Everything that reads here reads text an attacker chose (the <e2e/>, and what an
// unauthenticated CBC decryption gave): it is bounded by its input, returns errors rather than
// throwing, and is fuzzed (tests/fuzz/fuzz_smime.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "object/cms.hpp"
#include "util/bytes.hpp"
#include "util/datetime.hpp"
#include "util/result.hpp"
#include "xml/element.hpp"

namespace esession::smime {

inline constexpr std::string_view kNsE2e = "urn:ietf:params:xml:ns:xmpp-e2e";

// Protected is what a CPIM entity says: its From and To (bare JIDs from im:, pres: or xmpp:
// URIs), its DateTime (seconds since the epoch), and the payload for the stanza.
struct Protected {
  std::string from, to;
  int64_t time = 0;
  // The body as children of the stanza: application/xmpp+xml (the stanza's children, or the
  // payload elements themselves), text/plain (§3: a <body/>), or application/pidf+xml (§4:
  // <show/> and <status/>, presence only).
  std::vector<xml::Element> payload;
  // A PIDF body also says whether the sender is available: "" (available) or "unavailable",
  // the stanza's type. Empty for the other bodies, which leave the type as it is.
  std::optional<std::string> presence_type;
};

// cpim_entity is the Message/CPIM entity seal signs: the headers From and To (im: URIs of
// |from| and |to|) and DateTime (UTC, milliseconds), and an application/xmpp+xml body, an
// <xmpp xmlns='jabber:client'> holding |stanza|. CRLF line ends.
std::string cpim_entity(std::string_view from, std::string_view to, int64_t now_ms,
                        const xml::Element& stanza);

// parse_cpim reads a Message/CPIM entity (its MIME header, the CPIM headers, then the content
// headers and body). Errc::malformed for anything it does not understand.
Result<Protected> parse_cpim(std::string_view entity);

// multipart_signed wraps |content| and its detached SignedData |sig| in a multipart/signed
// entity (protocol application/pkcs7-signature, micalg sha-256, a random boundary), CRLF line
// ends throughout.
std::string multipart_signed(std::string_view content, ByteView sig);

// signed_content checks the signed layer |entity| (what the EnvelopedData held) and returns the
// entity it protects: multipart/signed with an application/pkcs7-signature part (also when the
// signer canonicalised its line ends to CRLF only for the signature), or an
// application/pkcs7-mime signed-data entity of at most |max_content| bytes. |v| says what the
// signature is; anything unsigned is Verdict none and Errc::auth_failed.
Result<Bytes> signed_content(std::string_view entity, const cms::Trust& trust, cms::Verdict& v,
                             size_t max_content);

// e2e_text is the <e2e/> content for the DER EnvelopedData |der|: an application/pkcs7-mime
// entity (smime-type enveloped-data), base64 in lines of 76, LF line ends. (An object that is
// signed only carries its multipart/signed entity as it is.)
std::string e2e_text(ByteView der);

// E2eObject is what an <e2e/> holds (RFC 3923 objects are signed and/or encrypted): an
// EnvelopedData (|enveloped|, DER), or, for an object that is signed only, the signed entity
// itself (|signed_entity|: multipart/signed, or an application/pkcs7-mime signed-data
// entity), for signed_content.
struct E2eObject {
  Bytes enveloped;
  std::string signed_entity;
  bool encrypted() const { return !enveloped.empty(); }
};

// read_e2e reads an <e2e/>'s |text|: an application/pkcs7-mime entity (enveloped-data, base64;
// or signed-data), a multipart/signed entity, or bare base64 (an EnvelopedData).
Result<E2eObject> read_e2e(std::string_view text);

// The checks RFC 3923 §6 asks of an opened object against the stanza that carried it. The caller
// runs them in this order, after the signature, each a case of §7 of its own.

// kMaxFuture is how many seconds a DateTime may be ahead of our clock: "within five minutes".
inline constexpr int64_t kMaxFuture = 300;

// check_from returns Errc::auth_failed unless the protected From of |p| is |from|, the bare JID
// of the stanza's 'from'.
Status check_from(const Protected& p, std::string_view from);

// certificate_jids returns the bare JIDs |cert| names: its XmppAddrs (RFC 6120 §13.7.1.4) and
// its im:, pres: and xmpp: URIs (RFC 3923 §6.3). The signer's certificate must name the sender.
std::vector<std::string> certificate_jids(const Certificate& cert);

// check_to returns Errc::auth_failed unless the protected To of |p| is |to|, the bare JID of the
// stanza's 'to': the object was made for someone else, or forwarded.
Status check_to(const Protected& p, std::string_view to);

// check_time places the protected DateTime of |p| against |now| (seconds since the epoch):
// at most kMaxFuture seconds ahead, at most |max_age| seconds old.
TimeWindow check_time(const Protected& p, int64_t now, int64_t max_age);

}  // namespace esession::smime
