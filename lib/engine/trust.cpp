#include "engine/trust.hpp"

#include "crypto/hash.hpp"

namespace esession {

std::string key_fingerprint(const PublicKey& k) {
  return hex(digest(HashAlg::sha256, k.der()));
}

std::vector<PublicKey> TrustPolicy::known_keys(std::string_view bare) const {
  std::vector<PublicKey> out;
  auto peer = m_store.get_peer(m_account, std::string(bare));
  if (!peer || !*peer)
    return out;
  auto trust = m_store.list_trust((*peer)->id);
  if (!trust)
    return out;
  for (const auto& t : *trust)
    if (!t.key_pem.empty())
      if (auto k = PublicKey::from_pem(t.key_pem))
        out.push_back(std::move(k).value());
  return out;
}

const PkiVerdict* TrustPolicy::verdict(const std::string& fingerprint) const {
  auto it = m_verdicts.find(fingerprint);
  return it == m_verdicts.end() ? nullptr : &it->second;
}

Status TrustPolicy::accept(std::string_view bare_view, const PublicKey& key,
                           const Credential* cred) const {
  const std::string bare(bare_view);
  const std::string fpr = key_fingerprint(key);
  auto event = [&](EventKind kind, std::vector<std::string> values, std::string detail = {}) {
    Event e;
    e.kind = kind;
    e.peer = bare;
    e.fingerprint = fpr;
    e.values = std::move(values);
    e.detail = std::move(detail);
    m_events.push_back(std::move(e));
  };
  if (cred) {
    PkiVerdict v = evaluate_pki(m_pki, bare, *cred, m_now);
    event(EventKind::pki, {v.kind, v.status}, v.valid || v.refuse ? "" : v.reason);
    if (v.refuse)
      return fail(Errc::auth_failed, bare + ": " + v.reason);
    m_verdicts[fpr] = std::move(v);
  }
  // The same key under another JID of ours (XEP-0116 §7.4): one person with two JIDs, or one
  // impersonating another.
  ES_ASSIGN(auto peers, m_store.list_peers(m_account));
  std::vector<TrustRecord> trust;
  for (const auto& p : peers) {
    ES_ASSIGN(auto records, m_store.list_trust(p.id));
    if (p.jid == bare) {
      trust = std::move(records);
      continue;
    }
    for (const auto& t : records)
      if (t.fingerprint == fpr)
        event(EventKind::key_other_jid, {p.jid});
  }
  bool known = false, other_verified = false;
  for (const auto& t : trust) {
    if (t.fingerprint == fpr)
      known = true;
    else if (t.verified)
      other_verified = true;
  }
  if (!known && other_verified) {
    event(EventKind::key_changed, {"refused"});
    return fail(Errc::auth_failed, bare + " presented a key other than the verified one (" +
                                       group_hex(fpr.substr(0, 16)) + "…)");
  }
  if (!known && !trust.empty())  // only unverified keys were seen before: accept, loudly
    event(EventKind::key_changed, {"accepted"});
  return {};
}

}  // namespace esession
