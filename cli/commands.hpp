// The commands of the esession binary, one file each, and what they share.
#pragma once

#include <memory>

#include "context.hpp"
#include "io.hpp"
#include "session/negotiation.hpp"
#include "state.hpp"

namespace esession::cli {

void add_init(CLI::App& app, Context& ctx, Action& action);
void add_key(CLI::App& app, Context& ctx, Action& action);
void add_peer(CLI::App& app, Context& ctx, Action& action);
void add_negotiate(CLI::App& app, Context& ctx, Action& action);
void add_respond(CLI::App& app, Context& ctx, Action& action);
void add_encrypt(CLI::App& app, Context& ctx, Action& action);
void add_decrypt(CLI::App& app, Context& ctx, Action& action);
void add_rekey(CLI::App& app, Context& ctx, Action& action);
void add_terminate(CLI::App& app, Context& ctx, Action& action);
void add_session(CLI::App& app, Context& ctx, Action& action);
void add_demo(CLI::App& app, Context& ctx, Action& action);

// validate_full_jid accepts local@domain/resource (or domain/resource): no spaces or controls.
Status validate_full_jid(std::string_view jid);

// load_private_key reads a key file of the home (refusing one others can read).
PrivateKey load_private_key(Context& ctx, const KeyRecord& k);
// default_signer returns the account's default key as a Signer, or nullptr without one.
std::unique_ptr<Signer> default_signer(Context& ctx);

// StoreVerifier answers the negotiation's questions from the trust database: the keys we hold
// for a JID, and whether a key may identify it (a different key than a verified or pinned one
// is refused; an unknown JID is accepted on first use and reported).
class StoreVerifier : public Verifier {
 public:
  explicit StoreVerifier(Context& ctx) : m_ctx(ctx) {}
  std::vector<PublicKey> known_keys(std::string_view bare_jid) const override;
  Status accept(std::string_view bare_jid, const PublicKey& key) const override;

 private:
  Context& m_ctx;
};

// persist_established stores a new session and everything the negotiation produced: the
// rotated retained secret, the peer's key. Reports ESTABLISHED, SAS and trust events.
void persist_established(Context& ctx, const std::string& peer_jid, const std::string& thread,
                         bool initiator, Established& est, const std::vector<RetainedSecret>& mine,
                         const std::vector<RetainedSecret>& others);

// open_session loads a stored session for an update; save_session writes it back.
StoredSession open_stored(ByteView blob);

// find_session_for returns the stored session with |peer_jid| for |stanza| (by its <thread/>,
// else the most recent active one). Throws Failure (Errc::no_session) with a hint.
SessionRecord find_session_for(Context& ctx, const std::string& peer_jid,
                               const xml::Element& stanza);

}  // namespace esession::cli
