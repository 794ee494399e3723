// Profile: what a protocol profile provides to the negotiation state machine.
//
// negotiation.cpp holds what every profile shares: the two roles, the stages (offered,
// responded, accepted, established, failed), which step a received stanza goes to, the thread
// check, the peer's error replies and ours, wiping the secrets on failure and on completion,
// which profile runs, and the outer part of the saved state. A profile holds what the
// negotiated 'ver' decides: its form dialects (the offer, the responder's choice, the
// initiator's check of it), its key agreement, its key schedule and identity blocks, and the
// record layer (Session) it hands over once established.
//
// Profile 1.0 is ProfileV1 (v1/profile.hpp): its form dialects are in v1/form.cpp (spec, Gajim
// and XEP-0217), its key agreement, key schedule and identity-block crypto in v1/schedule.cpp,
// its steps in v1/steps.cpp and its saved state in v1/state.cpp. A profile 2.0 (X25519, HKDF,
// an AEAD record layer with explicit sequence numbers) would be a v2/ folder implementing this
// interface, a ProfileId enumerator, and a line in make_profile.
#pragma once

#include "session/codec.hpp"
#include "session/negotiation.hpp"

namespace esession {

// kFormType is the FORM_TYPE of every negotiation form (XEP-0155), whatever the profile.
inline constexpr std::string_view kFormType = "urn:xmpp:ssn";

// Rejection carries the XEP-0116 §4.4 condition and fields of a failed step.
struct Rejection {
  std::string condition;  // not-acceptable, feature-not-implemented, or empty (send nothing)
  std::vector<std::string> fields;
};

// Stage is where a negotiation stands: what it has sent last and so what it waits for.
enum class Stage {
  offered,    // initiator: message 1 sent
  responded,  // responder: message 2 sent
  accepted,   // initiator: message 3 sent (four-message flow)
  established,
  failed,
};

// Party is the state machine's part of a negotiation that a profile reads: our configuration,
// the peer and our role. A profile sets cfg.thread when it starts one (the initiator draws it
// if empty, the responder takes the offer's).
struct Party {
  PartyConfig cfg;
  std::string peer_jid;
  bool initiator = true;
  std::optional<OfflineOptions> offline;  // Alice's published options (XEP-0187), if these are

  // record reports an intermediate value to cfg.trace, under its esession-vector/1 name.
  void record(const std::string& name, const std::string& v) {
    if (cfg.trace)
      (*cfg.trace)[name] = v;
  }
  void record_hex(const std::string& name, ByteView v) {
    if (cfg.trace)
      record(name, hex(v));
  }
};

// Profile is one negotiation's profile-specific values and steps. Each step returns the Step to
// hand out (with Step::established when the negotiation completes) or an Error; on an Error,
// |rej| says which error reply the XEPs ask for, and the state machine calls wipe().
class Profile {
 public:
  virtual ~Profile() = default;
  virtual ProfileId id() const = 0;

  // offer makes the initiator's message 1.
  virtual Result<Step> offer(RandomSource& rng) = 0;
  // respond makes the responder's message 2 from the offer.
  virtual Result<Step> respond(const xml::Element& offer, RandomSource& rng, Rejection& rej) = 0;
  // on_response takes message 2 at the initiator: it answers with message 3, and in the
  // three-message flow is then established.
  virtual Result<Step> on_response(const xml::Element& msg, RandomSource& rng, Rejection& rej) = 0;
  // on_accept takes message 3 at the responder: it answers with message 4 (four-message flow)
  // and is established.
  virtual Result<Step> on_accept(const xml::Element& msg, RandomSource& rng, Rejection& rej) = 0;
  // on_init takes message 4 at the initiator, and is established.
  virtual Result<Step> on_init(const xml::Element& msg, RandomSource& rng, Rejection& rej) = 0;

  // Offline sessions (XEP-0187): publish makes Alice's options form (party.offline is set);
  // start_offline makes Bob's one request from them, established at once; accept_offline takes
  // such a request at Alice's, on options restored from her saved state. Their failures send
  // nothing (XEP-0187 §3.2, §3.4).
  virtual Result<xml::Element> publish(RandomSource& rng) = 0;
  virtual Result<Step> start_offline(const xml::Element& options, int64_t now,
                                     RandomSource& rng) = 0;
  virtual Result<Step> accept_offline(const xml::Element& request, int64_t now,
                                      RandomSource& rng) = 0;

  // wipe destroys the key-agreement secrets and keys this negotiation still holds.
  virtual void wipe() = 0;

  // save writes the profile's values; restore reads them back for a negotiation at |stage|,
  // refusing (Errc::malformed, as |r| words it) values the steps of that stage could not use.
  virtual void save(codec::Writer& w) const = 0;
  virtual Status restore(codec::Reader& r, Stage stage) = 0;
};

// make_profile returns a new negotiation of profile |id| for |party|, which must outlive it.
std::unique_ptr<Profile> make_profile(ProfileId id, Party& party);

}  // namespace esession
