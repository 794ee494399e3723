// The trust policy: which keys may identify a peer, answered from the store's trust records.
#pragma once

#include <map>
#include <string>

#include "engine/events.hpp"
#include "engine/pki.hpp"
#include "session/identity.hpp"
#include "store/store.hpp"

namespace esession {

// TrustPolicy answers a negotiation's questions for one account: the keys we hold for a JID,
// and whether a key may identify it. Trust on first use, with pins and verifications winning:
//   - a key other than one a user verified or pinned is refused (KEY_CHANGED refused);
//   - a new key where only unverified keys were seen is accepted and reported (KEY_CHANGED
//     accepted), as is a key we know under another of our peers' JIDs (KEY_OTHER_JID, XEP-0116
//     §7.4);
//   - a credential that came with the key is evaluated (evaluate_pki, PKI event): a revoked
//     OpenPGP key is refused; the verdict is kept for the session record.
// Events are appended to |events|, which must outlive the policy.
class TrustPolicy : public Verifier {
 public:
  TrustPolicy(Store& store, int64_t account_id, PkiOptions pki, int64_t now, Events& events)
      : m_store(store),
        m_account(account_id),
        m_pki(std::move(pki)),
        m_now(now),
        m_events(events) {}

  std::vector<PublicKey> known_keys(std::string_view bare_jid) const override;
  Status accept(std::string_view bare_jid, const PublicKey& key,
                const Credential* cred) const override;
  // verdict returns what the PKI said about the credential of the key with |fingerprint|.
  const PkiVerdict* verdict(const std::string& fingerprint) const;

 private:
  Store& m_store;
  int64_t m_account;
  PkiOptions m_pki;
  int64_t m_now;
  Events& m_events;
  mutable std::map<std::string, PkiVerdict> m_verdicts;
};

// key_fingerprint is the SHA-256 of a key's DER SubjectPublicKeyInfo, in lower-case hex: the
// fingerprint trust records, status lines and `peer verify` use.
std::string key_fingerprint(const PublicKey& k);

}  // namespace esession
