// Saving and restoring profile 1.0's negotiation values: the profile part of the negotiation
// state "ENS1" (formats/negotiation-state.md). The codec is codec.hpp's, as for ESS1.
#include "session/v1/profile.hpp"

namespace esession::v1 {

namespace {

using codec::Reader;
using codec::Writer;

constexpr KeyType kKeyTypeCodes[] = {KeyType::rsa, KeyType::dsa, KeyType::ed25519};
constexpr uint32_t kMaxGroups = 16;
constexpr uint32_t kMaxList = 16;

void write_mpi(Writer& w, const BigNum& v) {
  w.bytes(view(v.mpi_secret()));
}

template <class E, size_t N>
void write_codes(Writer& w, const std::vector<E>& v, const E (&codes)[N]) {
  w.u32(static_cast<uint32_t>(v.size()));
  for (E e : v)
    w.u8(codec::encode(e, codes));
}

template <class E, size_t N>
Result<std::vector<E>> read_codes(Reader& r, const E (&codes)[N], std::string_view what) {
  ES_ASSIGN(uint32_t n, r.count(what, kMaxList));
  std::vector<E> out;
  for (uint32_t i = 0; i < n; ++i) {
    ES_ASSIGN(E e, codec::decode(r, codes, what));
    out.push_back(e);
  }
  return out;
}

void write_strings(Writer& w, const std::vector<std::string>& v) {
  w.u32(static_cast<uint32_t>(v.size()));
  for (const auto& s : v)
    w.str(s);
}

Result<std::vector<std::string>> read_strings(Reader& r, std::string_view what) {
  ES_ASSIGN(uint32_t n, r.count(what, kMaxList));
  std::vector<std::string> out;
  for (uint32_t i = 0; i < n; ++i) {
    ES_ASSIGN(std::string s, r.str(what));
    out.push_back(std::move(s));
  }
  return out;
}

Result<Bytes> read_bytes(Reader& r, std::string_view what) {
  ES_ASSIGN(ByteView v, r.bytes(what));
  return Bytes(v.begin(), v.end());
}

// Checks of the values a stage's steps rely on.
bool nonce_ok(const Bytes& n) {
  return n.size() >= 8 && n.size() <= 64;
}
bool keys_ok(const SecretBytes& k, const KeySet& ks, HashAlg h) {
  size_t n = hash_size(h);
  for (const SecretBytes* v : {&k, &ks.ca, &ks.ma, &ks.sa, &ks.cb, &ks.mb, &ks.sb})
    if (v->size() != n)
      return false;
  return true;
}

}  // namespace

void ProfileV1::save(Writer& w) const {
  codec::write_suite(w, suite);
  w.bytes(n_a);
  w.bytes(n_b);
  w.u32(static_cast<uint32_t>(offered_groups.size()));
  for (int g : offered_groups)
    w.u32(static_cast<uint32_t>(g));
  w.u32(static_cast<uint32_t>(x_per_group.size()));
  for (const auto& v : x_per_group)
    write_mpi(w, v);
  w.u32(static_cast<uint32_t>(he_per_group.size()));
  for (const auto& v : he_per_group)
    w.bytes(v);
  for (const BigNum* v : {&x, &y, &e, &d})
    write_mpi(w, *v);
  w.raw(c_a.bytes());
  w.raw(c_b.bytes());
  w.str(form_a);
  w.str(form_b);
  for (const SecretBytes* v : {&k, &prov.ca, &prov.ma, &prov.sa, &prov.cb, &prov.mb, &prov.sb})
    w.bytes(view(*v));
  w.bytes(M_A);
  w.str(sas);
  w.str(sas_unpadded);
  write_codes(w, offered_init, codec::kPubkeyCodes);
  write_codes(w, offered_resp, codec::kPubkeyCodes);
  write_strings(w, offered_sign);
  write_strings(w, peer_reads);
  w.boolean(own_key_unused.has_value());
  if (own_key_unused) {
    write_codes(w, own_key_unused->offered, kKeyTypeCodes);
    w.u8(codec::encode(own_key_unused->ours, kKeyTypeCodes));
  }
}

Status ProfileV1::restore(Reader& r, Stage stage) {
  ES_ASSIGN(suite, codec::read_suite(r));
  ES_ASSIGN(n_a, read_bytes(r, "N_A"));
  ES_ASSIGN(n_b, read_bytes(r, "N_B"));
  ES_ASSIGN(uint32_t ngroups, r.count("offered_groups", kMaxGroups));
  for (uint32_t i = 0; i < ngroups; ++i) {
    ES_ASSIGN(uint32_t g, r.u32("offered_groups"));
    if (g > 1000 || !dh_group(static_cast<int>(g)))
      return r.bad("offered_groups", "unknown group " + std::to_string(g));
    offered_groups.push_back(static_cast<int>(g));
  }
  ES_ASSIGN(uint32_t nx, r.count("x_per_group", kMaxGroups));
  for (uint32_t i = 0; i < nx; ++i) {
    ES_ASSIGN(BigNum v, r.private_value("x_per_group"));
    x_per_group.push_back(std::move(v));
  }
  ES_ASSIGN(uint32_t nhe, r.count("he_per_group", 1));
  for (uint32_t i = 0; i < nhe; ++i) {
    ES_ASSIGN(Bytes v, read_bytes(r, "he_per_group"));
    he_per_group.push_back(std::move(v));
  }
  ES_ASSIGN(x, r.private_value("x"));
  ES_ASSIGN(y, r.private_value("y"));
  ES_ASSIGN(e, r.integer("e"));
  ES_ASSIGN(d, r.integer("d"));
  ES_ASSIGN(c_a, r.counter("C_A"));
  ES_ASSIGN(c_b, r.counter("C_B"));
  ES_ASSIGN(form_a, r.str("form_A"));
  ES_ASSIGN(form_b, r.str("form_B"));
  for (SecretBytes* v : {&k, &prov.ca, &prov.ma, &prov.sa, &prov.cb, &prov.mb, &prov.sb}) {
    ES_ASSIGN(*v, r.secret_bytes("keys"));
  }
  ES_ASSIGN(M_A, read_bytes(r, "M_A"));
  ES_ASSIGN(sas, r.str("sas"));
  ES_ASSIGN(sas_unpadded, r.str("sas_unpadded"));
  ES_ASSIGN(offered_init, read_codes(r, codec::kPubkeyCodes, "offered_init"));
  ES_ASSIGN(offered_resp, read_codes(r, codec::kPubkeyCodes, "offered_resp"));
  ES_ASSIGN(offered_sign, read_strings(r, "offered_sign"));
  ES_ASSIGN(peer_reads, read_strings(r, "peer_reads"));
  ES_ASSIGN(bool has_unused, r.boolean("own_key_unused"));
  if (has_unused) {
    KeyUnused u;
    ES_ASSIGN(u.offered, read_codes(r, kKeyTypeCodes, "own_key_unused"));
    ES_ASSIGN(u.ours, codec::decode(r, kKeyTypeCodes, "own_key_unused"));
    own_key_unused = std::move(u);
  }
  return check_stage(r, stage);
}

// check_stage refuses values the steps of |stage| could not use: a missing or out-of-range
// Diffie-Hellman value, a nonce of the wrong length, keys of the wrong length.
Status ProfileV1::check_stage(const Reader& r, Stage stage) const {
  const DhGroup& g = *dh_group(suite.modp);
  bool alice = stage == Stage::offered || stage == Stage::accepted;
  if (stage == Stage::established || stage == Stage::failed)
    return {};
  if (!nonce_ok(n_a) || (stage != Stage::offered && !nonce_ok(n_b)))
    return r.bad("nonces", "wrong length");
  if (stage == Stage::offered) {
    if (offered_groups.empty() || x_per_group.size() != offered_groups.size())
      return r.bad("x_per_group", "one private value per offered group");
    for (size_t i = 0; i < offered_groups.size(); ++i)
      if (!dh_check_private(*dh_group(offered_groups[i]), x_per_group[i]))
        return r.bad("x_per_group", "out of range");
    return {};
  }
  if (!dh_check_private(g, alice ? x : y) || !dh_check_public(g, d))
    return r.bad(alice ? "x, d" : "y, d", "out of range");
  bool with_e = alice || three();
  if (with_e && !dh_check_public(g, e))
    return r.bad("e", "out of range");
  if ((alice || three()) && !keys_ok(k, prov, hash()))
    return r.bad("keys", "wrong length");
  if (alice && three())
    return r.bad("flow", "the three-message flow has no accepted stage");
  if (!alice && !three() && (he_per_group.size() != 1 || he_per_group[0].size() != 32))
    return r.bad("he_per_group", "one SHA-256 commitment");
  return {};
}

}  // namespace esession::v1
