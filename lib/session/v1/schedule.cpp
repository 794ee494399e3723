// Profile 1.0's key agreement and key schedule (XEP-0116 §4.5.3, §4.7.3): K from the
// Diffie-Hellman secret, the six keys, the identity blocks (ID, M) with their MACs, retained
// secrets, K' and the SAS; and the Session it establishes. Each is written once here and used
// by the steps of both flows.
#include <algorithm>

#include "session/v1/profile.hpp"
#include "session/v1/record.hpp"

namespace esession::v1 {

void ProfileV1::trace_keys(const std::string& prefix, const KeySet& ks, bool all) {
  if (!cfg().trace)
    return;
  record_hex(prefix + ".K_CA", ks.ca);
  record_hex(prefix + ".K_MA", ks.ma);
  record_hex(prefix + ".K_SA", ks.sa);
  if (all) {
    record_hex(prefix + ".K_CB", ks.cb);
    record_hex(prefix + ".K_MB", ks.mb);
    record_hex(prefix + ".K_SB", ks.sb);
  }
}

void ProfileV1::agree(const DhGroup& g, const BigNum& peer, const BigNum& priv,
                      const std::string& trace, bool all) {
  SecretBytes shared = dh_shared(g, peer, priv);
  k = secret(digest(hash(), view(shared)));
  prov = derive_keys(hash(), view(k));
  record_hex("K", k);
  trace_keys(trace, prov, all);
}

void ProfileV1::compute_sas() {
  sas_unpadded = sas28x5(hash(), M_A, form_b, false);
  sas = sas28x5(hash(), M_A, form_b, true);
  record("SAS", sas_unpadded);
  record("SAS_padded", sas);
}

// mac_A = HMAC(K_SA, N_B | N_A | e | pubKey_A | form_A | form_A2) (provisional K_SA in the
// four-message flow); mac_B = HMAC(K_SB, N_A | N_B | d | pubKey_B | form_B [| form_B2]).
MacFn ProfileV1::mac_a_fn(ByteView k_sa, std::string form_a2) const {
  return [this, k_sa, form_a2 = std::move(form_a2)](std::string_view pub) {
    Bytes e_mpi = e.mpi();
    return hmac_parts(hash(), k_sa,
                      {view(n_b), view(n_a), view(e_mpi), view(pub), view(form_a), view(form_a2)});
  };
}

MacFn ProfileV1::mac_b_fn(ByteView k_sb, std::string form_b2) const {
  return [this, k_sb, form_b2 = std::move(form_b2)](std::string_view pub) {
    Bytes d_mpi = d.mpi();
    return hmac_parts(hash(), k_sb,
                      {view(n_a), view(n_b), view(d_mpi), view(pub), view(form_b), view(form_b2)});
  };
}

// ---- Identity blocks (XEP-0116 §4.5.4, §4.6.3; formats §7) ---------------------------------

Result<ProfileV1::Identity> ProfileV1::make_identity(ByteView k_c, ByteView k_m,
                                                     const Counter128& c, PubkeyMode mode,
                                                     const MacFn& mac_for) const {
  Identity out;
  const Signer* signer = cfg().signer;
  if (mode != PubkeyMode::none && !signer)
    return fail(Errc::internal, "key or hash identification without a signing key");
  out.mac = mac_for(mode == PubkeyMode::none ? std::string()
                                             : normalized_key_value(signer->public_key()));
  SecretBytes plain = out.mac;
  if (mode != PubkeyMode::none) {
    auto alg = sign_alg();
    if (!alg)
      return fail(Errc::internal, "no signature algorithm was negotiated");
    const Credential* cred = signer->credential();
    bool with_cred = cred && std::find(peer_reads.begin(), peer_reads.end(),
                                       credential_kind_name(cred->kind)) != peer_reads.end();
    ES_ASSIGN(std::string p,
              identity_plaintext(mode, hash(), *alg, *signer, view(out.mac), with_cred));
    plain = secret(view(p));
  }
  out.id.resize(plain.size());
  out.after = ctr_encrypt(suite.conv, k_c, c, view(plain), out.id.data());
  Bytes c_mpi = c.mpi();
  out.m = bytes_of(view(hmac_parts(hash(), k_m, {view(c_mpi), view(out.id)})));
  return out;
}

Result<IdentityProof> ProfileV1::open_identity(ByteView k_c, ByteView k_m, const Counter128& c,
                                               ByteView id, ByteView m, PubkeyMode mode,
                                               const MacFn& mac_for, Counter128& after) const {
  if (m.size() != hash_size(hash()) ||
      (mode == PubkeyMode::none ? id.size() != hash_size(hash()) : id.empty()))
    return fail(Errc::auth_failed, "identity or mac has the wrong length");
  Bytes c_mpi = c.mpi();
  SecretBytes expect = hmac_parts(hash(), k_m, {view(c_mpi), id});
  if (!ct_equal(view(expect), m))
    return fail(Errc::auth_failed, "identity MAC (M_A/M_B) does not verify");
  SecretBytes plain(id.size());
  after = ctr_encrypt(suite.conv, k_c, c, id, plain.data());
  return check_identity(mode, hash(), sign_alg(), view(plain), mac_for, cfg().verifier,
                        bare_jid(m_party.peer_jid));
}

Result<ProfileV1::Identity> ProfileV1::own_identity(xml::Element& xe, std::string_view t,
                                                    const KeySet& ks, const std::string& form2) {
  bool alice = m_party.initiator;
  SecretBytes k_c = cipher_key(suite.conv, suite.cipher, alice ? ks.ca : ks.cb);
  ES_ASSIGN(Identity own,
            alice ? make_identity(k_c, ks.ma, c_a, suite.init_pubkey, mac_a_fn(ks.sa, form2))
                  : make_identity(k_c, ks.mb, c_b, suite.resp_pubkey, mac_b_fn(ks.sb, form2)));
  std::string side = alice ? "A" : "B";
  record_hex("mac_" + side, own.mac);
  record_hex("ID_" + side, own.id);
  record_hex("M_" + side, own.m);
  xml::add_field(xe, "identity", t).value(base64(own.id));
  xml::add_field(xe, "mac", t).value(base64(own.m));
  return own;
}

Result<ProfileV1::Block> ProfileV1::read_block(const xml::Form& f) {
  Block b;
  ES_ASSIGN(b.id, b64_field(f, "identity"));
  ES_ASSIGN(b.m, b64_field(f, "mac"));
  return b;
}

// open_peer_identity checks the peer's identity block |b| with the keys |ks|: M, then ID, then
// mac or the signature (XEP-0116 §4.6.2). The four-message flow traces the mac it recomputes,
// the three-message one the block.
Result<IdentityProof> ProfileV1::open_peer_identity(const Block& b, const KeySet& ks,
                                                    const std::string& form2, Counter128& after) {
  bool peer_a = !m_party.initiator;
  std::string side = peer_a ? "A" : "B";
  MacFn mac = peer_a ? mac_a_fn(ks.sa, form2) : mac_b_fn(ks.sb, form2);
  if (!three())
    mac = [this, side, inner = std::move(mac)](std::string_view pub) {
      SecretBytes v = inner(pub);
      record_hex("mac_" + side, v);
      return v;
    };
  SecretBytes k_c = cipher_key(suite.conv, suite.cipher, peer_a ? ks.ca : ks.cb);
  ES_ASSIGN(IdentityProof proof,
            open_identity(k_c, peer_a ? ks.ma : ks.mb, peer_a ? c_a : c_b, b.id, b.m,
                          peer_a ? suite.init_pubkey : suite.resp_pubkey, mac, after));
  if (three()) {
    record_hex("ID_" + side, b.id);
    record_hex("M_" + side, b.m);
  }
  return proof;
}

// ---- Retained secrets and the final keys (XEP-0116 §4.6.4, §4.7.3) -------------------------

// make_rshashes returns HMAC(N_A, RS) for each secret we retain for the peer, hidden among
// decoys (Gajim: one decoy when there is no secret, and no shuffle).
std::vector<Bytes> ProfileV1::make_rshashes(RandomSource& rng) const {
  std::vector<Bytes> rshashes;
  for (const auto& rs : cfg().retained)
    rshashes.push_back(bytes_of(view(hmac(hash(), n_a, view(rs)))));
  size_t ndecoys = gajim() ? (cfg().retained.empty() ? 1 : 0) : 2 + rng.uniform(3);
  for (auto& dcy : rng.decoys(hash_size(hash()), ndecoys))
    rshashes.push_back(std::move(dcy));
  if (!gajim())
    for (size_t i = rshashes.size(); i > 1; --i)
      std::swap(rshashes[i - 1], rshashes[rng.uniform(i)]);
  return rshashes;
}

ProfileV1::FinalKeys ProfileV1::final_keys(const SecretBytes* srs, ByteView srshash) {
  record("SRS", srs ? hex(view(*srs)) : "");
  record_hex("srshash", srshash);
  const PartyConfig& c = cfg();
  FinalKeys out;
  out.k = secret(digest_parts(
      hash(), {view(k), srs ? view(*srs) : ByteView{}, c.oss ? view(*c.oss) : ByteView{}}));
  out.keys = derive_keys(hash(), view(out.k));
  out.new_retained = hmac(hash(), view(out.k), view(kLabelNewRs));
  record_hex("K_final", out.k);
  trace_keys("final", out.keys, true);
  record_hex("new_retained_secret", out.new_retained);
  return out;
}

// ---- The session ---------------------------------------------------------------------------

Established ProfileV1::establish(const KeySet& ks, const Counter128& send_ctr,
                                 const Counter128& recv_ctr, IdentityProof peer,
                                 bool receive_only) {
  bool alice = m_party.initiator;
  DirectionKeys a{cipher_key(suite.conv, suite.cipher, ks.ca), ks.ma};
  DirectionKeys b{cipher_key(suite.conv, suite.cipher, ks.cb), ks.mb};
  SessionParams sp;
  sp.suite = suite;
  sp.initiator = alice;
  sp.local_jid = cfg().jid;
  sp.peer_jid = m_party.peer_jid;
  sp.thread = cfg().thread;
  sp.send = alice ? std::move(a) : std::move(b);
  sp.recv = alice ? std::move(b) : std::move(a);
  sp.send_ctr = send_ctr;
  sp.recv_ctr = recv_ctr;
  sp.my_private = alice ? x : y;
  sp.peer_public = alice ? d : e;
  sp.receive_only = receive_only;
  std::string who = alice ? "alice" : "bob";
  record("counters_after_negotiation." + who + "_send", send_ctr.hex());
  record("counters_after_negotiation." + who + "_receive", recv_ctr.hex());
  Established est;
  est.session = std::make_unique<Session>(std::make_unique<CtrHmacRecord>(std::move(sp)));
  est.flow = suite.flow;
  est.sas = sas;
  est.sas_unpadded = sas_unpadded;
  est.own_mode = alice ? suite.init_pubkey : suite.resp_pubkey;
  est.own_key_unused = own_key_unused;
  est.peer_mode = peer.mode;
  est.peer_key = std::move(peer.key);
  est.peer_credential = std::move(peer.credential);
  return est;
}

Status ProfileV1::attach_content(xml::Element& msg, Session& s, RandomSource& rng) {
  if (!cfg().content)
    return {};
  if (cfg().content->name != "message")
    return fail(Errc::not_acceptable, "only a <message/> can ride on a negotiation message");
  ES_ASSIGN(xml::Element enc, s.encrypt(*cfg().content, rng));
  for (auto& c : enc.children)
    if (c.is("c", xml::kNsC))
      msg.children.push_back(std::move(c));
  return {};
}

void ProfileV1::wipe() {
  k = {};
  prov = {};
  x_per_group.clear();
  x = BigNum();
  y = BigNum();
}

}  // namespace esession::v1
