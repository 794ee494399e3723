// Endpoint: the engine. One account of one Store, driven by stanzas.
//
// An Endpoint negotiates encrypted sessions (XEP-0116), encrypts the application's stanzas for
// them and decrypts the peer's (XEP-0200), and keeps every session in the Store. It does no I/O
// of its own besides the store: the caller moves stanzas between it, the network and the
// application, and renders its events. Randomness comes from the caller (RandomSource), and
// the time from EngineConfig::clock.
//
// Durability: whatever an Endpoint returns for the peer or the application is returned only
// after the state that produced it has been committed to the store. A stanza is encrypted
// under a counter already on disk; a plaintext is delivered after the receive counter that
// admits it is; the message that establishes the peer leaves only once our side of the
// session is stored. A caller that crashes after a call has lost output, never reused a
// counter.
//
// Calls do not throw. A call that fails says so in its Outcome (error, refusal), with whatever
// it produced before the failure, which stands.
//
//   Store store = ...;
//   Endpoint alice(store, account);
//   Outcome o = alice.negotiate("bob@example.org/pda", options, rng);   // o.send: the offer
//   ...
//   Batch b = alice.incoming(stanzas_from_network, rng);   // answers, plaintexts, events
//   Batch e = alice.outgoing(stanzas_from_application, rng);   // encrypted stanzas
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/events.hpp"
#include "engine/pki.hpp"
#include "session/negotiation.hpp"
#include "store/store.hpp"
#include "util/jid.hpp"

namespace esession {

// NegotiationOptions is our side of one negotiation.
struct NegotiationOptions {
  Policy policy;                   // what we offer (negotiate) or accept (respond)
  const Signer* signer = nullptr;  // our identity key, if any; must outlive the negotiation
  std::optional<SecretBytes> oss;  // an other shared secret (XEP-0116 §4.7.3)
  // content: a <message/> to send, encrypted, on our last negotiation message;
  // terminate_after_content ends the session after it (three-message initiator only).
  std::optional<xml::Element> content;
  bool terminate_after_content = false;
  // Retained secrets older than this many days are not used (0: no limit; formats §9).
  int retain_days = 90;
};

struct EngineConfig {
  PkiOptions pki;                  // where CA anchors and GnuPG are
  std::function<int64_t()> clock;  // seconds since the epoch; empty: the system clock
  // save_negotiations keeps each negotiation in progress in the store (formats/
  // negotiation-state.md) from the step that sends our message until it completes or fails,
  // so that an Endpoint of another process, or of this one after a restart, can resume() it.
  // Its secrets are then on disk for as long as the negotiation waits, as a session's are.
  bool save_negotiations = false;
  // offline_policy is what our offline options offer (publish_offline) and so what a request
  // against them must keep to (incoming): one policy for both, so they cannot disagree.
  Policy offline_policy;
};

// SavedNegotiation is a negotiation of this account waiting in the store for the peer.
struct SavedNegotiation {
  std::string peer;  // full JID
  std::string thread;
  int64_t saved = 0;  // when its last step was stored (seconds since the epoch)
};

// Refusal says why a stanza or call was refused, so that a front end can advise; Error says
// it in words.
enum class Refusal {
  none,
  other,                // see the Error
  no_sender,            // an incoming stanza without 'from' (and no sender given)
  no_recipient,         // an outgoing stanza without 'to' (and no recipient given)
  negotiation_request,  // a peer's offer: answer it with respond()
  not_for_us,           // addressed to another account
  other_account,        // an outgoing stanza from another account of this store
  clear_stanza,         // a stanza in clear where a session is encrypted
  session_ended,        // the session (or the one its thread names) has ended
  no_session,           // no session with the peer
  unknown_thread,       // the thread names no session
  foreign_thread,       // the thread names another peer's session
};

// Outcome is what one stanza or call produced.
struct Outcome {
  std::string thread;                 // negotiate, respond: the negotiation's thread
  std::vector<xml::Element> send;     // for the peer, in order
  xml::SerializeStyle style;          // how |send| must be written (wire_style of the session)
  std::vector<xml::Element> deliver;  // for the application: authentic stanzas
  Events events;                      // what happened, in order
  std::optional<Error> error;         // the stanza or call failed (after what precedes)
  Refusal refusal = Refusal::none;    // why, when the stanza was refused
};

// Batch is what a list of stanzas produced: one Outcome per stanza handled, in order.
struct Batch {
  std::vector<Outcome> results;
  // fatal: the store failed; the stanzas after |results| were not handled. (outgoing also
  // stops after the first stanza it cannot encrypt: that Outcome carries the error.)
  std::optional<Error> fatal;
};

class Endpoint {
 public:
  Endpoint(Store& store, Account account, EngineConfig cfg = {});
  ~Endpoint();
  Endpoint(Endpoint&&) noexcept;
  Endpoint& operator=(Endpoint&&) = delete;

  const Account& account() const { return m_account; }

  // negotiate starts a negotiation with |peer| (a prepared full JID): send holds the offer.
  // The peer's answers go to incoming().
  Outcome negotiate(const std::string& peer, NegotiationOptions opts, RandomSource& rng);
  // respond answers the negotiation request |offer| from |peer| (a prepared full JID; the
  // offer's 'from' is not read). Its thread must not name a session still in use.
  Outcome respond(const xml::Element& offer, const std::string& peer, NegotiationOptions opts,
                  RandomSource& rng);
  // negotiating: is a negotiation of ours in progress on |thread|?
  bool negotiating(std::string_view thread) const;

  // saved_negotiations lists the negotiations of this account in the store (saved by an
  // Endpoint with EngineConfig::save_negotiations), oldest first, whether or not this Endpoint
  // is running them.
  Result<std::vector<SavedNegotiation>> saved_negotiations();
  // resume takes up the saved negotiation with |peer| on |thread|: the peer's next message
  // then goes to incoming(). |opts| must be those it was started with (the policy, signer,
  // other shared secret and content): the store keeps the negotiation's values and secrets,
  // not the caller's configuration. Errc::no_session if there is no such saved negotiation,
  // Errc::wrong_state if this Endpoint is already running one on |thread|; a state that
  // cannot be read (or that ended) is deleted and reported as Errc::malformed.
  Outcome resume(const std::string& peer, const std::string& thread, NegotiationOptions opts);
  // abandon ends the negotiation with |peer| on |thread|: it forgets it, deletes it from the
  // store if it was saved, and wipes its secrets. Errc::no_session if there was none.
  Status abandon(const std::string& peer, const std::string& thread);

  // incoming handles stanzas from the network: the next messages of our negotiations (by
  // thread), and encrypted stanzas, decrypted in their sessions (one transaction per run of
  // stanzas of one session). Stanzas are refused, each on its own, that are not addressed to
  // this account, are in clear, or name no session of their sender; a negotiation request is
  // refused with Refusal::negotiation_request (answer it with respond()). |sender|, when
  // given, replaces every stanza's 'from'.
  Batch incoming(std::span<const xml::Element> stanzas, RandomSource& rng,
                 const std::string& sender = {});
  // outgoing encrypts the application's stanzas in their peers' active sessions (the session
  // on their <thread/>, else the active one with their 'to'; |recipient|, when given, replaces
  // every 'to'). It completes the addresses (a missing 'from' is the account's JID) and the
  // thread. It stops at the first stanza it cannot encrypt.
  Batch outgoing(std::span<xml::Element> stanzas, RandomSource& rng,
                 const std::string& recipient = {});
  // ---- Offline sessions (XEP-0187, formats/offline.md) ----
  // publish_offline makes a set of offline options for |audience|, offering
  // EngineConfig::offline_policy and signed by |signer|, and stores its secrets; send holds the
  // PEP stanzas that publish it (create the node, publish the item). A new set for subscribers
  // destroys the previous ones: their item is replaced. Requests against a set reach
  // incoming(), which accepts them (replays refused) into sessions that only receive.
  Outcome publish_offline(OfflineAudience audience, const OfflineOptions& o, const Signer& signer,
                          RandomSource& rng);
  // retract_offline is for coming back online: send holds the empty publish that withdraws the
  // subscribers' options (XEP-0187 §3.4), and their secrets are destroyed, with every set that
  // has expired.
  Outcome retract_offline(RandomSource& rng);
  // start_offline begins an offline session with |peer| (a bare JID) from its published options
  // |published| (the PEP items result, an <item/> or the <x/>): opts.signer identifies us and
  // is required, opts.content is the first stanza (a <message/>), opts.terminate_after_content
  // makes it a one-shot object. The options must be signed by a key of the peer's we trust;
  // send holds the one request, returned once the session is stored. Refused while a session
  // with the peer is active (XEP-0187 §3), unless it is a one-shot object.
  Outcome start_offline(const std::string& peer, const xml::Element& published,
                        NegotiationOptions opts, RandomSource& rng);

  // rekey and terminate make the control stanza for the active session with |peer|.
  Outcome rekey(const std::string& peer, RandomSource& rng);
  Outcome terminate(const std::string& peer, RandomSource& rng);

 private:
  struct Pending;
  struct Lookup;
  Outcome start(const std::string& peer, NegotiationOptions opts, bool initiator,
                std::unique_ptr<Pending>& pending);
  void advance(std::unique_ptr<Pending> p, Step step, Outcome& out);
  void forget_saved(Pending& p);
  Status commit(Pending& p, Established& est, const std::string& thread, bool initiator,
                Events& events);
  void accept_offline(const xml::Element& st, const std::string& peer, const OfflineRequest& req,
                      RandomSource& rng, Outcome& out);
  Outcome control(const std::string& peer, bool terminate, RandomSource& rng);
  void receive(const xml::Element& st, RandomSource& rng, Outcome& out);
  int64_t now() const;

  Store& m_store;
  Account m_account;
  EngineConfig m_cfg;
  JidMemo m_jids;
  std::map<std::string, std::unique_ptr<Pending>, std::less<>> m_pending;  // by thread
};

}  // namespace esession
