// XEP-0373 (OpenPGP for XMPP, "OX") content elements, without the OpenPGP work and without the
// command line: which children of a <message/> are sealed and which stay in clear, the
// <signcrypt/>, <sign/> or <crypt/> element that is sealed (its <to/>, <time/>, <rpad/> and
// <payload/>), and the checks XEP-0373 §3.2 asks of one that was opened. lib/openpgp makes
// and opens the OpenPGP message around it; cli/seal_ox.cpp holds the options and the output.
//
// Opening is a sequence a caller follows, so that it can report each refusal in its own words
// and do its own checks (the signature and the signer) between the steps: check_message,
// openpgp_message and is_encrypted on the stanza; parse_content on what OpenPGP opened; then
// read_content, check_to and content_time on the result. Every step reads text an attacker
// chose and returns an error rather than throwing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/random.hpp"
#include "util/bytes.hpp"
#include "util/result.hpp"
#include "xml/element.hpp"

namespace esession::ox {

inline constexpr std::string_view kNs = "urn:xmpp:openpgp:0";
inline constexpr std::string_view kNsHints = "urn:xmpp:hints";  // XEP-0334
inline constexpr std::string_view kNsEme = "urn:xmpp:eme:0";    // XEP-0380
inline constexpr std::string_view kNsSid = "urn:xmpp:sid:0";    // XEP-0359

// kMaxFuture is how many seconds a <time/> may be ahead of our clock.
inline constexpr int64_t kMaxFuture = 300;
// kMaxRpad is the longest <rpad/> random_rpad makes.
inline constexpr size_t kMaxRpad = 200;

// Mode is the kind of content element, named as its element is.
enum class Mode {
  signcrypt,  // signed and encrypted: the only mode XEP-0374 allows
  sign,       // signed, in clear
  crypt,      // encrypted, not signed: nothing authenticates it
};

// mode_name returns "signcrypt", "sign" or "crypt"; mode_from_name is its inverse.
std::string_view mode_name(Mode m);
std::optional<Mode> mode_from_name(std::string_view name);
inline bool signs(Mode m) {
  return m != Mode::crypt;
}
inline bool encrypts(Mode m) {
  return m != Mode::sign;
}

// check_message returns Errc::malformed unless |stanza| is a <message/> in jabber:client:
// XEP-0373 seals messages.
Status check_message(const xml::Element& stanza);

// stays_in_clear tells whether |child| of a <message/> stays outside the sealed content: what
// the servers on the way need or what only describes the transport, the XEP-0334 hints,
// XEP-0380 <encryption/>, XEP-0359 <origin-id/>/<stanza-id/> and XEP-0079 <amp/>.
bool stays_in_clear(const xml::Element& child);

// Split is a <message/> taken apart for sealing: |clear| is the stanza with its attributes and
// the children that stay in clear, |payload| the <payload/> element with all the others.
struct Split {
  xml::Element clear;
  xml::Element payload;
};

// split_message takes |msg| apart (whitespace between children is dropped). Errc::malformed for
// text outside the children and for a message that already has an <openpgp/>. The payload may
// be empty: build_content refuses that.
Result<Split> split_message(xml::Element msg);

// random_rpad returns the text of an <rpad/>: 0 to kMaxRpad printable ASCII characters (no
// space), drawn from |rng|.
std::string random_rpad(RandomSource& rng);

// build_content makes the content element of |mode| to seal: a <to/> naming |to| (a bare JID;
// none when empty, which only crypt allows), a <time/> of |now| (seconds since the epoch), for
// the encrypted modes an <rpad/> from |rng|, then |payload|. Errc::malformed when |payload| is
// empty ("nothing to seal") or a signed mode has no |to| (XEP-0373 §3.1).
Result<xml::Element> build_content(Mode mode, std::string_view to, int64_t now,
                                   xml::Element payload, RandomSource& rng);

// sealed_stanza puts the OpenPGP message |sealed| in an <openpgp/> (base64) in |clear|, and adds
// <store xmlns='urn:xmpp:hints'/> and <encryption/> naming XEP-0373 (XEP-0374 §2.3) unless
// |clear| has them.
xml::Element sealed_stanza(xml::Element clear, ByteView sealed);

// openpgp_message returns the OpenPGP message of the one <openpgp/> of |msg|, base64 in one
// line or in lines. Errc::malformed if there is not exactly one or it is not base64.
Result<Bytes> openpgp_message(const xml::Element& msg);

// is_encrypted tells whether the binary OpenPGP message |msg| starts with a session key packet
// (tag 1 or 3, RFC 4880 §4.2-4.3). Errc::malformed if it is not a binary OpenPGP message.
Result<bool> is_encrypted(ByteView msg);

// parse_content reads |plain|, what OpenPGP opened, as a content element, and checks that its
// kind fits the OpenPGP message: <sign/> in clear, the others encrypted. Errc::malformed for
// anything but <signcrypt/>, <sign/> or <crypt/> in kNs; Errc::auth_failed for a mismatch. The
// caller checks the signature against the mode before read_content.
Result<xml::Element> parse_content(ByteView plain, bool encrypted);

// Content is what a content element says.
struct Content {
  Mode mode;
  std::vector<std::string> tos;       // the jid of each <to/>, as written
  std::string stamp;                  // the <time/>'s stamp, as written
  std::vector<xml::Element> payload;  // the children of <payload/>, without whitespace text
};

// read_content reads the children of |content| (from parse_content): any number of <to/>, one
// <time stamp='...'/>, at most one <rpad/> and one <payload/>. Errc::malformed for anything
// else; Errc::auth_failed for a signed element without <to/>, which anyone it went to could
// forward.
Result<Content> read_content(const xml::Element& content);

// check_to checks the <to/>s of |c| against |to|, the bare JID of the stanza's 'to': one of
// them must name it. Errc::malformed if |c| has <to/>s and |to| is empty; Errc::auth_failed if
// none names it (the object was made for someone else and forwarded). Content without <to/>
// (crypt) passes.
Status check_to(const Content& c, std::string_view to);

// content_time returns the <time/> of |c| as seconds since the epoch, Errc::malformed if it is
// not an XEP-0082 DateTime. Whether it is recent enough is the caller's policy: see
// time_window in util/datetime.hpp, with kMaxFuture.
Result<int64_t> content_time(const Content& c);

// is_marker tells whether |child| of a sealed <message/> is one of the content-free elements
// seal adds or the <openpgp/> itself, which open drops without a warning.
bool is_marker(const xml::Element& child);

}  // namespace esession::ox
