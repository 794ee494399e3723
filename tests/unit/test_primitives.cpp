// Encodings, counters, SAS and DH range checks (PROTOCOL-NOTES §7.5 small vectors).
#include <catch2/catch.hpp>

#include "crypto/random.hpp"
#include "session/suite.hpp"

using namespace esession;

TEST_CASE("base64 is strict RFC 4648 §4") {
  CHECK(base64(view(std::string_view("foobar"))) == "Zm9vYmFy");
  CHECK(base64(view(std::string_view("fo"))) == "Zm8=");
  CHECK(string_of(unbase64("Zm8=").value()) == "fo");
  // formats §1.3: no whitespace at all, not even around the value (issue 13, defect 1).
  for (const char* spaced :
       {"  Zm9v\n", " Zm9v", "Zm9v ", "\tZm9v", "Zm9v\t", "\nZm9v", "Zm9v\r\n"}) {
    INFO(spaced);
    CHECK_FALSE(unbase64(spaced));
    CHECK(unbase64(spaced).error().code == Errc::malformed);
  }
  CHECK_FALSE(unbase64("Zm8"));               // missing padding
  CHECK_FALSE(unbase64("Zm9=").has_value());  // non-zero padding bits: not canonical
  CHECK_FALSE(unbase64("Zm-v"));              // URL alphabet refused
  CHECK_FALSE(unbase64("Zm 9v"));             // inner whitespace refused
  CHECK_FALSE(unbase64("Z==="));
  CHECK_FALSE(unbase64("Zg==Zm9v"));  // padding before the last group
  CHECK_FALSE(unbase64("Zm9vZ=9v"));
  CHECK(string_of(unbase64("Zm9vYmFyYmF6").value()) == "foobarbaz");
}

TEST_CASE("decimals have no sign, no leading zeros, nothing around them") {
  CHECK(parse_decimal("0").value() == 0);
  CHECK(parse_decimal("100").value() == 100);
  CHECK(parse_decimal("4294967295").value() == 4294967295u);
  for (const char* bad :
       {"", "+1", "-1", "01", "00", " 1", "1 ", "1\n", "0x10", "4294967296", "1e3"}) {
    INFO(bad);
    CHECK_FALSE(parse_decimal(bad));
  }
}

TEST_CASE("MPI encoding of counters and integers") {
  CHECK(hex(BigNum::from_word(0).mpi()) == "00");
  CHECK(hex(BigNum::from_word(0x0102).mpi()) == "0102");
  Counter128 c = Counter128::from_bytes(unhex("00ffffffffffffffffffffffffffffff").value());
  CHECK(c.mpi().size() == 15);
  CHECK(c.add(1).hex() == "01000000000000000000000000000000");
  CHECK(Counter128::from_bytes(unhex("ffffffffffffffffffffffffffffffff").value()).add(2).hex() ==
        "00000000000000000000000000000001");
  CHECK(c.flip_top().hex() == "80ffffffffffffffffffffffffffffff");
}

TEST_CASE("ct_equal") {
  Bytes a = {1, 2, 3}, b = {1, 2, 3}, d = {1, 2, 4}, e = {1, 2};
  CHECK(ct_equal(a, b));
  CHECK_FALSE(ct_equal(a, d));
  CHECK_FALSE(ct_equal(a, e));
}

TEST_CASE("DH public values are range checked") {
  const DhGroup* g = dh_group(14);
  REQUIRE(g);
  CHECK(g->bits == 2048);
  CHECK_FALSE(dh_group(3));  // EC2N, not MODP (A14)
  CHECK(dh_parse_public(*g, Bytes{1}).error().code == Errc::bad_dh_value);
  CHECK(dh_parse_public(*g, Bytes{0}).error().code == Errc::bad_dh_value);
  CHECK(dh_parse_public(*g, g->p_minus_1.mpi()).error().code == Errc::bad_dh_value);
  CHECK(dh_parse_public(*g, g->p.mpi()).error().code == Errc::bad_dh_value);
  CHECK(dh_parse_public(*g, Bytes{2}).has_value());
  SystemRandom rng;
  BigNum x = rng.dh_private(*g), y = rng.dh_private(*g);
  CHECK(dh_check_private(*g, x));
  CHECK(x.bits() == g->exponent_bits);
  CHECK(
      ct_equal(view(dh_shared(*g, dh_public(*g, y), x)), view(dh_shared(*g, dh_public(*g, x), y))));
}

TEST_CASE("AES-CTR counter conventions") {
  Bytes key(32, 7), msg(40, 0);
  Counter128 c = Counter128::from_bytes(unhex("000000000000000000000000000000ff").value());
  Bytes spec(40), gaj(40);
  CHECK(ctr_encrypt(CryptoConv{}, key, c, msg, spec.data()) == c.add(3));
  CryptoConv g = CryptoConv::for_compat(Compat::gajim);
  CHECK(ctr_encrypt(g, key, c, msg, gaj.data()) == c.add(3));
  // G2 shifts the keystream by one block.
  CHECK(std::equal(spec.begin() + 16, spec.end(), gaj.begin()));
  CHECK(cipher_key(CryptoConv{}, CipherAlg::aes128_ctr, Bytes(32, 1)).size() == 16);
  CHECK(cipher_key(g, CipherAlg::aes128_ctr, Bytes(32, 1)).size() == 32);
}

TEST_CASE("sas28x5 digit mapping (PROTOCOL-NOTES §7.5)") {
  CHECK(sas_digits(0, false) == "a");
  CHECK(sas_digits(0, true) == "aaaaa");
  CHECK(sas_digits(27, false) == "9");
  CHECK(sas_digits(27, true) == "aaaa9");
  CHECK(sas_digits(28, false) == "ca");
  CHECK(sas_digits(28, true) == "aaaca");
  CHECK(sas_digits(614655, false) == "9999");
  CHECK(sas_digits(614655, true) == "a9999");
  CHECK(sas_digits(614656, true) == "caaaa");
  CHECK(sas_digits(0x123456, true) == "c8m24");
  CHECK(sas_digits(0xffffff, true) == "9kiui");
}
