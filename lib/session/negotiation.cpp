// The negotiation state machine, shared by every profile (profile.hpp): roles, stages, routing
// a stanza to its step, error replies, wiping on failure and completion, the choice of profile,
// and the saved state's outer part ("ENS1", formats/negotiation-state.md).
#include "session/negotiation.hpp"

#include "session/profile.hpp"
#include "session/v1/profile.hpp"

namespace esession {

namespace {

constexpr uint8_t kMagic[4] = {'E', 'N', 'S', '1'};
constexpr uint8_t kVersion = 2;
constexpr uint8_t kVersionNoOffline = 1;  // before offline options: nothing after the thread
constexpr ProfileId kProfileCodes[] = {ProfileId::v1};
constexpr Stage kStageCodes[] = {Stage::offered, Stage::responded, Stage::accepted,
                                 Stage::established, Stage::failed};

// initiator_profile is the profile an initiator runs: the first of its policy.
Result<ProfileId> initiator_profile(const Policy& pol) {
  if (pol.profiles.empty())
    return fail(Errc::not_acceptable, "no protocol profile to offer");
  return pol.profiles.front();
}

// responder_profile is the profile a responder answers an offer with. Every offer goes to 1.0
// today, whose choice of 'ver' refuses (with the error reply formats §10 asks for) what it
// cannot run; with a second profile, the versions the offer lists would choose here.
Result<ProfileId> responder_profile(const Policy& pol, Rejection& rej) {
  for (ProfileId id : pol.profiles)
    if (id == ProfileId::v1)
      return id;
  rej = {"not-acceptable", {"ver"}};
  return fail(Errc::not_acceptable, "no protocol profile we accept");
}

}  // namespace

std::unique_ptr<Profile> make_profile(ProfileId id, Party& party) {
  switch (id) {
    case ProfileId::v1:
      return std::make_unique<v1::ProfileV1>(party);
  }
  return nullptr;
}

struct Negotiation::Impl {
  Party party;
  Stage stage = Stage::offered;
  std::unique_ptr<Profile> profile;
  std::optional<xml::Element> error_reply;

  // fail_with destroys every secret and records the error reply to |request| that |rej| asks
  // for (none without a request or a condition).
  Error fail_with(Error err, const xml::Element* request, const Rejection& rej) {
    stage = Stage::failed;
    if (profile)
      profile->wipe();
    if (request && !rej.condition.empty())
      error_reply = error_stanza(*request, rej.condition, rej.fields, party.peer_jid);
    return err;
  }

  // commit moves to |next| after a step that succeeded, or to established (its secrets wiped,
  // the Session handed out) when the step completed the negotiation.
  Result<Step> commit(Result<Step> r, Stage next, const xml::Element* request,
                      const Rejection& rej) {
    if (!r)
      return fail_with(r.error(), request, rej);
    if (r->established) {
      stage = Stage::established;
      profile->wipe();
    } else {
      stage = next;
    }
    return r;
  }
};

// ---- Public interface ----------------------------------------------------------------------

Negotiation::Negotiation(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Negotiation::~Negotiation() = default;
Negotiation::Negotiation(Negotiation&&) noexcept = default;
Negotiation& Negotiation::operator=(Negotiation&&) noexcept = default;

bool Negotiation::failed() const {
  return m_impl->stage == Stage::failed;
}
bool Negotiation::initiator() const {
  return m_impl->party.initiator;
}
const std::string& Negotiation::thread() const {
  return m_impl->party.cfg.thread;
}
const std::optional<xml::Element>& Negotiation::error_reply() const {
  return m_impl->error_reply;
}
const std::optional<OfflineOptions>& Negotiation::offline_options() const {
  return m_impl->party.offline;
}

Result<std::pair<Negotiation, Step>> Negotiation::start(PartyConfig cfg, std::string peer_jid,
                                                        RandomSource& rng) {
  auto impl = std::make_unique<Impl>();
  impl->party = {std::move(cfg), std::move(peer_jid), true, std::nullopt};
  ES_ASSIGN(ProfileId id, initiator_profile(impl->party.cfg.policy));
  impl->profile = make_profile(id, impl->party);
  ES_ASSIGN(Step step, impl->profile->offer(rng));
  impl->stage = Stage::offered;
  return std::pair<Negotiation, Step>(Negotiation(std::move(impl)), std::move(step));
}

Result<std::pair<Negotiation, Step>> Negotiation::respond(
    PartyConfig cfg, const xml::Element& offer, RandomSource& rng, std::string peer_jid,
    std::optional<xml::Element>* error_reply) {
  auto impl = std::make_unique<Impl>();
  std::string peer = peer_jid.empty() ? offer.attr_or("from") : std::move(peer_jid);
  impl->party = {std::move(cfg), std::move(peer), false, std::nullopt};
  Rejection rej;
  auto id = responder_profile(impl->party.cfg.policy, rej);
  if (id)
    impl->profile = make_profile(*id, impl->party);
  Result<Step> step = id ? impl->profile->respond(offer, rng, rej) : Result<Step>(id.error());
  step = impl->commit(std::move(step), Stage::responded, &offer, rej);
  if (!step) {
    if (error_reply)
      *error_reply = impl->error_reply;
    return step.error();
  }
  return std::pair<Negotiation, Step>(Negotiation(std::move(impl)), std::move(step).value());
}

Result<Step> Negotiation::receive(const xml::Element& stanza, RandomSource& rng) {
  Impl& im = *m_impl;
  if (im.stage == Stage::failed)
    return fail(Errc::terminated, "the negotiation has failed");
  if (im.stage == Stage::established)
    return fail(Errc::wrong_state, "the negotiation is already complete");
  // A peer's error reply ends the negotiation.
  if (stanza.attr_or("type") == "error") {
    const xml::Element* err = stanza.child("error", xml::kNsClient);
    std::string cond = "unknown";
    if (err)
      for (const auto* c : err->element_children())
        if (c->ns == xml::kNsStanzas)
          cond = c->name;
    return im.fail_with(fail(Errc::not_acceptable, "the peer refused the negotiation: " + cond),
                        nullptr, {});
  }
  const xml::Element* th = stanza.child("thread", xml::kNsClient);
  if (!th || th->text_content() != im.party.cfg.thread)
    return fail(Errc::no_session, "stanza does not belong to this negotiation's thread");
  // A message that does not fit the stage is rejected like a bad one (formats §10).
  Rejection rej{"not-acceptable", {}};
  Result<Step> r = fail(Errc::wrong_state, "unexpected negotiation message");
  bool alice = im.party.initiator;
  if (alice && im.stage == Stage::offered)
    r = im.profile->on_response(stanza, rng, rej);
  else if (alice && im.stage == Stage::accepted)
    r = im.profile->on_init(stanza, rng, rej);
  else if (!alice && im.stage == Stage::responded)
    r = im.profile->on_accept(stanza, rng, rej);
  return im.commit(std::move(r), Stage::accepted, &stanza, rej);
}

// ---- Offline sessions (XEP-0187) -----------------------------------------------------------

Result<std::pair<Negotiation, xml::Element>> Negotiation::publish_offline(
    PartyConfig cfg, const OfflineOptions& opts, RandomSource& rng) {
  auto impl = std::make_unique<Impl>();
  impl->party = {std::move(cfg), {}, true, opts};
  ES_ASSIGN(ProfileId id, initiator_profile(impl->party.cfg.policy));
  impl->profile = make_profile(id, impl->party);
  ES_ASSIGN(xml::Element form, impl->profile->publish(rng));
  impl->stage = Stage::offered;
  return std::pair<Negotiation, xml::Element>(Negotiation(std::move(impl)), std::move(form));
}

Result<Step> Negotiation::start_offline(PartyConfig cfg, const xml::Element& options,
                                        std::string alice_jid, int64_t now, RandomSource& rng) {
  Party party{std::move(cfg), std::move(alice_jid), false, std::nullopt};
  Rejection rej;  // an offline failure answers nothing
  ES_ASSIGN(ProfileId id, responder_profile(party.cfg.policy, rej));
  std::unique_ptr<Profile> profile = make_profile(id, party);
  Result<Step> step = profile->start_offline(options, now, rng);
  profile->wipe();
  return step;
}

Result<Step> Negotiation::accept_offline(ByteView options_state, const PartyConfig& cfg,
                                         const xml::Element& request, std::string bob_jid,
                                         int64_t now, RandomSource& rng) {
  ES_ASSIGN(Negotiation neg, deserialize(options_state, cfg));
  Impl& im = *neg.m_impl;
  if (!im.party.offline || im.stage != Stage::offered)
    return fail(Errc::wrong_state, "the saved state holds no offline options");
  // The session takes Bob's thread and address; the saved options stay as they were.
  const xml::Element* th = request.child("thread", xml::kNsClient);
  if (!th || th->text_content().empty() || th->text_content().size() > kMaxThreadBytes)
    return fail(Errc::malformed, "offline request without a usable <thread/>");
  im.party.cfg.thread = th->text_content();
  im.party.peer_jid = std::move(bob_jid);
  Result<Step> step = im.profile->accept_offline(request, now, rng);
  im.profile->wipe();
  return step;
}

// ---- Saving and restoring ------------------------------------------------------------------

SecretBytes Negotiation::serialize() const {
  const Impl& im = *m_impl;
  codec::Writer w;
  w.raw(ByteView(kMagic, sizeof kMagic));
  w.u8(kVersion);
  w.u8(codec::encode(im.profile->id(), kProfileCodes));
  w.u8(codec::encode(im.stage, kStageCodes));
  w.boolean(im.party.initiator);
  w.str(im.party.cfg.jid);
  w.str(im.party.peer_jid);
  w.str(im.party.cfg.thread);
  w.boolean(im.party.offline.has_value());
  if (im.party.offline) {
    w.u64(static_cast<uint64_t>(im.party.offline->expires));
    w.str(im.party.offline->match_resource);
  }
  im.profile->save(w);
  return w.take();
}

Result<Negotiation> Negotiation::deserialize(ByteView state, const PartyConfig& cfg) {
  codec::Reader r(state, "negotiation state");
  ES_ASSIGN(ByteView magic, r.fixed(sizeof kMagic, "magic"));
  if (!std::equal(magic.begin(), magic.end(), kMagic))
    return r.bad("magic", "not an esession negotiation state");
  ES_ASSIGN(uint8_t version, r.u8("version"));
  if (version < kVersionNoOffline || version > kVersion)
    return fail(Errc::unsupported, "negotiation state: version " + std::to_string(version) +
                                       " is not supported (this esession reads versions " +
                                       std::to_string(kVersionNoOffline) + " to " +
                                       std::to_string(kVersion) + ")");
  auto impl = std::make_unique<Impl>();
  ES_ASSIGN(ProfileId id, codec::decode(r, kProfileCodes, "profile"));
  ES_ASSIGN(impl->stage, codec::decode(r, kStageCodes, "stage"));
  ES_ASSIGN(bool initiator, r.boolean("initiator"));
  bool alice_stage = impl->stage == Stage::offered || impl->stage == Stage::accepted;
  if ((alice_stage && !initiator) || (impl->stage == Stage::responded && initiator))
    return r.bad("stage", "not a stage of this role");
  ES_ASSIGN(std::string jid, r.str("jid"));
  if (jid != cfg.jid)
    return r.bad("jid", "the state belongs to another JID");
  impl->party = {cfg, {}, initiator, std::nullopt};
  ES_ASSIGN(impl->party.peer_jid, r.str("peer_jid"));
  ES_ASSIGN(impl->party.cfg.thread, r.str("thread"));
  if (impl->party.cfg.thread.empty() || impl->party.cfg.thread.size() > kMaxThreadBytes)
    return r.bad("thread", "empty or too long");
  if (version != kVersionNoOffline) {
    ES_ASSIGN(bool offline, r.boolean("offline"));
    if (offline) {
      OfflineOptions o;
      ES_ASSIGN(uint64_t expires, r.u64("expires"));
      if (expires > uint64_t{INT64_MAX})
        return r.bad("expires", "out of range");
      o.expires = static_cast<int64_t>(expires);
      ES_ASSIGN(o.match_resource, r.str("match_resource"));
      if (impl->stage != Stage::offered || !initiator)
        return r.bad("offline", "offline options are Alice's, before any request");
      impl->party.offline = std::move(o);
    }
  }
  impl->profile = make_profile(id, impl->party);
  ES_TRY(impl->profile->restore(r, impl->stage));
  if (!r.done())
    return r.bad("end", "trailing bytes");
  return Negotiation(std::move(impl));
}

// ---- Stanzas -------------------------------------------------------------------------------

std::string KeyUnused::describe() const {
  std::string types;
  for (KeyType t : offered)
    types += (types.empty() ? "" : ", ") + std::string(key_type_name(t));
  return "the offer allows only " + (types.empty() ? std::string("unknown") : types) +
         " signatures, and our key is " + std::string(key_type_name(ours));
}

Result<OfflineRequest> read_offline_request(const xml::Element& stanza) {
  const xml::Element* init = stanza.child("init", xml::kNsInit);
  const xml::Element* x = init ? xml::find_form(*init) : nullptr;
  if (!x)
    return fail(Errc::malformed, "not an offline request: no <init/> form");
  ES_ASSIGN(xml::Form f, xml::parse_form(*x));
  if (f.form_type() != kFormType || f.type != "submit")
    return fail(Errc::malformed, "not an offline request: not a submitted ESession form");
  OfflineRequest out;
  for (auto [var, to] :
       {std::pair{"nonce", &out.n_a}, {"my_nonce", &out.n_b}, {"dhkeys", &out.d}}) {
    ES_ASSIGN(std::string v, f.value(var));
    auto b = unbase64(v);
    if (!b || b->empty())
      return fail(Errc::malformed, std::string("offline request: bad field '") + var + "'");
    *to = std::move(b).value();
  }
  ES_ASSIGN(std::string modp, f.value("modp"));
  ES_ASSIGN(uint64_t group, parse_decimal(modp, 1u << 16));
  out.modp = static_cast<int>(group);
  return out;
}

bool is_negotiation_stanza(const xml::Element& stanza) {
  for (const auto* w :
       {stanza.child("feature", xml::kNsFeatureNeg), stanza.child("init", xml::kNsInit)}) {
    if (!w)
      continue;
    const xml::Element* x = xml::find_form(*w);
    if (!x)
      continue;
    auto f = xml::parse_form(*x);
    if (f && f->form_type() == kFormType && !terminate_form_type(*w))
      return true;
  }
  return false;
}

xml::Element error_stanza(const xml::Element& request, std::string_view condition,
                          const std::vector<std::string>& fields, std::string_view to) {
  xml::Element m("message", std::string(xml::kNsClient));
  m.set_attr("type", "error");
  if (!to.empty())
    m.set_attr("to", to);
  for (const auto& c : request.children)
    if (c.is("thread", xml::kNsClient) || c.is("feature", xml::kNsFeatureNeg) ||
        c.is("init", xml::kNsInit))
      m.children.push_back(c);
  xml::Element& err = m.add(xml::Element("error", std::string(xml::kNsClient)));
  err.set_attr("type", "cancel");
  err.add(xml::Element(std::string(condition), std::string(xml::kNsStanzas)));
  if (!fields.empty()) {
    xml::Element& feat = err.add(xml::Element("feature", std::string(xml::kNsFeatureNeg)));
    for (const auto& fl : fields) {
      xml::Element fe("field", std::string(xml::kNsFeatureNeg));
      fe.set_attr("var", fl);
      feat.add(std::move(fe));
    }
  }
  return m;
}

}  // namespace esession
