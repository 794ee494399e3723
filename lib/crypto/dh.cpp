#include "crypto/dh.hpp"

#include <array>
#include <cctype>
#include <memory>

namespace esession {

static UniquePtr<BIGNUM> new_bn() {
  UniquePtr<BIGNUM> bn(BN_new());
  if (!bn)
    die_out_of_memory("BIGNUM");
  return bn;
}

BigNum::BigNum() : m_bn(new_bn()) {}

BigNum::BigNum(const BigNum& o) : m_bn(BN_dup(o.m_bn.get())) {
  if (!m_bn)
    die_out_of_memory("BIGNUM");
}

BigNum& BigNum::operator=(const BigNum& o) {
  if (this != &o) {
    m_bn.reset(BN_dup(o.m_bn.get()));
    if (!m_bn)
      die_out_of_memory("BIGNUM");
  }
  return *this;
}

BigNum BigNum::from_bytes(ByteView b) {
  UniquePtr<BIGNUM> bn(BN_bin2bn(b.data(), static_cast<int>(b.size()), nullptr));
  if (!bn)
    die_out_of_memory("BIGNUM");
  return BigNum(std::move(bn));
}

Result<BigNum> BigNum::from_hex(std::string_view h) {
  if (h.empty() || h.size() > 8192)
    return fail(Errc::malformed, "bad hex integer length");
  for (char c : h)
    if (!std::isxdigit(static_cast<unsigned char>(c)))
      return fail(Errc::malformed, "invalid hex digit in integer");
  std::string s(h);
  BIGNUM* raw = nullptr;
  int digits = BN_hex2bn(&raw, s.c_str());
  UniquePtr<BIGNUM> bn(raw);
  if (digits != static_cast<int>(s.size()))
    return fail(Errc::malformed, "invalid hex integer");
  return BigNum(std::move(bn));
}

BigNum BigNum::from_word(unsigned long w) {
  BigNum r;
  if (BN_set_word(r.get(), w) != 1)
    die_out_of_memory("BIGNUM");
  return r;
}

Bytes BigNum::mpi() const {
  Bytes out(static_cast<size_t>(BN_num_bytes(m_bn.get())));
  BN_bn2bin(m_bn.get(), out.data());
  if (out.empty())
    out.push_back(0);
  return out;
}

SecretBytes BigNum::mpi_secret() const {
  SecretBytes out(static_cast<size_t>(BN_num_bytes(m_bn.get())));
  BN_bn2bin(m_bn.get(), out.data());
  if (out.empty())
    out.push_back(0);
  return out;
}

Bytes BigNum::padded(size_t len) const {
  Bytes out(len);
  if (BN_bn2binpad(m_bn.get(), out.data(), static_cast<int>(len)) < 0)
    die_out_of_memory("BIGNUM");
  return out;
}

std::string BigNum::hex() const {
  if (BN_is_zero(m_bn.get()))
    return "0";
  std::string h = esession::hex(mpi());
  return h[0] == '0' ? h.substr(1) : h;
}

namespace {

struct GroupTable {
  std::array<std::unique_ptr<DhGroup>, 8> groups;
  GroupTable() {
    struct Def {
      int id;
      BIGNUM* (*prime)(BIGNUM*);
      bool weak;
      int exp_bits;
    };
    // Exponent sizes follow the upper end of RFC 3526 §8's table, never below 320 bits, so that
    // x > 2^255 holds with room to spare.
    static const Def kDefs[] = {
        {1, BN_get_rfc2409_prime_768, true, 320},    {2, BN_get_rfc2409_prime_1024, true, 320},
        {5, BN_get_rfc3526_prime_1536, true, 320},   {14, BN_get_rfc3526_prime_2048, false, 320},
        {15, BN_get_rfc3526_prime_3072, false, 420}, {16, BN_get_rfc3526_prime_4096, false, 480},
        {17, BN_get_rfc3526_prime_6144, false, 540}, {18, BN_get_rfc3526_prime_8192, false, 620},
    };
    size_t i = 0;
    for (const Def& d : kDefs) {
      UniquePtr<BIGNUM> p(d.prime(nullptr));
      if (!p)
        die_out_of_memory("BIGNUM");
      auto g = std::make_unique<DhGroup>();
      g->id = d.id;
      g->bits = BN_num_bits(p.get());
      g->weak = d.weak;
      g->exponent_bits = d.exp_bits;
      g->p = BigNum(std::move(p));
      if (BN_sub(g->p_minus_1.get(), g->p.get(), BN_value_one()) != 1)
        die_out_of_memory("BIGNUM");
      groups[i++] = std::move(g);
    }
  }
};

}  // namespace

const DhGroup* dh_group(int id) {
  static const GroupTable kTable;
  for (const auto& g : kTable.groups)
    if (g->id == id)
      return g.get();
  return nullptr;
}

static SecretBytes modexp(const DhGroup& g, const BigNum& base, const BigNum& x) {
  UniquePtr<BN_CTX> ctx(BN_CTX_new());
  if (!ctx)
    die_out_of_memory("BIGNUM");
  BigNum r;
  BigNum xe(x);
  BN_set_flags(xe.get(), BN_FLG_CONSTTIME);
  if (BN_mod_exp_mont_consttime(r.get(), base.get(), xe.get(), g.p.get(), ctx.get(), nullptr) != 1)
    die_out_of_memory("BIGNUM");
  return r.mpi_secret();
}

BigNum dh_public(const DhGroup& g, const BigNum& x) {
  SecretBytes v = modexp(g, BigNum::from_word(2), x);
  return BigNum::from_bytes(view(v));
}

bool dh_check_public(const DhGroup& g, const BigNum& v) {
  return BN_cmp(v.get(), BN_value_one()) > 0 && BN_cmp(v.get(), g.p_minus_1.get()) < 0;
}

Result<BigNum> dh_parse_public(const DhGroup& g, ByteView b) {
  if (b.size() > static_cast<size_t>(g.bits / 8 + 1))
    return fail(Errc::malformed, "Diffie-Hellman value longer than the group's prime");
  if (!is_mpi(b))
    return fail(Errc::malformed,
                "Diffie-Hellman value is not an MPI (empty, or a leading zero byte)");
  BigNum v = BigNum::from_bytes(b);
  if (!dh_check_public(g, v))
    return fail(Errc::bad_dh_value, "Diffie-Hellman value outside (1, p-1)");
  return v;
}

SecretBytes dh_shared(const DhGroup& g, const BigNum& peer, const BigNum& x) {
  return modexp(g, peer, x);
}

bool dh_check_private(const DhGroup& g, const BigNum& x) {
  BigNum min;
  if (BN_set_bit(min.get(), 255) != 1)
    die_out_of_memory("BIGNUM");
  return BN_cmp(x.get(), min.get()) > 0 && BN_cmp(x.get(), g.p_minus_1.get()) < 0;
}

}  // namespace esession
