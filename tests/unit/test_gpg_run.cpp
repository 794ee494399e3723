// lib/openpgp/gpg_run: the process runner (with /bin/sh standing in for gpg, so that every
// descriptor is checked without GnuPG), the colon-listing parser and the reading of signature
// status lines, against listings and status lines gpg 2.2.40 printed and variations of them.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <thread>

#include "openpgp/gpg_run.hpp"

using namespace esession;
using namespace esession::openpgp;
using namespace esession::openpgp::detail;

namespace {

std::string text(const Bytes& b) {
  return std::string(b.begin(), b.end());
}

Job shell(const std::string& script) {
  Job j;
  j.argv = {"sh", "-c", script};
  return j;
}

}  // namespace

TEST_CASE("gpg_run: standard input from memory, output, status lines, stderr, exit code",
          "[gpg_run]") {
  Job j = shell(
      "cat; echo '[GNUPG:] HELLO a b' >&3; echo 'not status' >&3; "
      "echo 'first' >&2; echo 'the last line' >&2; exit 3");
  const std::string in = "abc\n";
  j.in_mem = ByteView(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  Bytes out;
  j.out_mem = &out;
  j.status_fd = true;
  Result<Outcome> r = run(j);
  REQUIRE(r);
  CHECK(text(out) == in);
  CHECK(r->exit_code == 3);
  REQUIRE(r->status.size() == 1);  // only "[GNUPG:] " lines count
  CHECK(r->has("HELLO"));
  CHECK_FALSE(r->has("HELL"));
  REQUIRE(r->args("HELLO").size() == 1);
  CHECK(r->args("HELLO")[0] == std::vector<std::string>{"a", "b"});
  CHECK(r->diagnostic == "the last line");
  CHECK(r->in_bytes == in.size());
}

TEST_CASE("gpg_run: descriptor 4 carries the passphrase, then end of file", "[gpg_run]") {
  Job j = shell("cat <&4");
  const std::string pass = "sesame\n";
  j.fd4 = ByteView(reinterpret_cast<const uint8_t*>(pass.data()), pass.size());
  Bytes out;
  j.out_mem = &out;
  Result<Outcome> r = run(j);
  REQUIRE(r);
  CHECK(text(out) == pass);
  CHECK(r->exit_code == 0);
}

TEST_CASE("gpg_run: a regular file is handed over and counted by its offset", "[gpg_run]") {
  char path[] = "/tmp/esession-gpgrun-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::unlink(path);
  std::string data(300000, 'x');
  REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  REQUIRE(::lseek(fd, 1000, SEEK_SET) == 1000);  // from where the caller stands
  Job j = shell("cat | wc -c");                  // wc alone would only look at the file's size
  j.in_fd = fd;
  Bytes out;
  j.out_mem = &out;
  uint64_t last_progress = 0;
  j.progress = [&](uint64_t n) { last_progress = n; };
  Result<Outcome> r = run(j);
  ::close(fd);
  REQUIRE(r);
  CHECK(std::stoul(text(out)) == data.size() - 1000);
  CHECK(r->in_bytes == data.size() - 1000);
  CHECK(last_progress == data.size() - 1000);
}

TEST_CASE("gpg_run: a pipe is pumped and counted; output to a descriptor", "[gpg_run]") {
  int in[2], out[2];
  REQUIRE(::pipe(in) == 0);
  REQUIRE(::pipe(out) == 0);
  std::thread writer([w = in[1]] {
    std::string chunk(65536, 'y');
    for (int i = 0; i < 5; ++i)
      REQUIRE(::write(w, chunk.data(), chunk.size()) == 65536);
    ::close(w);
  });
  std::string got;
  std::thread reader([r = out[0], &got] {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(r, buf, sizeof buf)) > 0)
      got.append(buf, static_cast<size_t>(n));
    ::close(r);
  });
  Job j = shell("cat");
  j.in_fd = in[0];
  j.out_fd = out[1];
  Result<Outcome> r = run(j);
  ::close(in[0]);
  ::close(out[1]);
  writer.join();
  reader.join();
  REQUIRE(r);
  CHECK(r->in_bytes == 5 * 65536);
  CHECK(got.size() == 5 * 65536);
}

TEST_CASE("gpg_run: a child that does not read its input", "[gpg_run]") {
  // More than a pipe holds, to a child that exits at once: the pump's write fails (EPIPE),
  // and SIGPIPE, which this test process does not ignore, must not end it.
  std::string big(1 << 20, 'z');
  Job j = shell("exit 7");
  j.in_mem = ByteView(reinterpret_cast<const uint8_t*>(big.data()), big.size());
  Result<Outcome> r = run(j);
  REQUIRE(r);
  CHECK(r->exit_code == 7);
  CHECK(r->in_bytes < big.size());
}

TEST_CASE("gpg_run: limits and a missing program", "[gpg_run]") {
  Job j = shell("head -c 100000 /dev/zero");
  Bytes out;
  j.out_mem = &out;
  j.max_out = 1000;
  Result<Outcome> r = run(j);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::malformed);

  Job none;
  none.argv = {"esession-no-such-program-here"};
  Result<Outcome> r2 = run(none);
  REQUIRE_FALSE(r2);
  CHECK(r2.error().code == Errc::unsupported);
}

TEST_CASE("gpg_run: colon listings", "[gpg_run]") {
  // gpg 2.2.40, --with-colons --with-keygrip --list-secret-keys, then a variation: a stub, a
  // revoked User ID, a disabled key, and a key whose fpr line is missing.
  const char* secret =
      "sec:u:255:22:C7293E0732740EC4:1795714513:::u:::scESC:::+::ed25519:::0:\n"
      "fpr:::::::::9A468D14CE0D7AB717BF46A7C7293E0732740EC4:\n"
      "grp:::::::::6480CB392087C030BC3DE60D4DB9E91ED5351400:\n"
      "uid:u::::1795714513::7B63::Alice Other <alice@mail.example>::::::::::0:\n"
      "uid:r::::1795714513::7C83::xmpp\\x3aold@example.org::::::::::0:\n"
      "uid:u::::1795714513::7C83::xmpp\\x3aalice@example.org::::::::::0:\n"
      "ssb:u:255:18:815AA3ED9934B881:1795714531::::::e:::+::cv25519::\n"
      "fpr:::::::::10BFA6177546EEF0D6CD8CC1815AA3ED9934B881:\n"
      "grp:::::::::581C0293F538FAA6ABD04788C00371B478BDFE2F:\n"
      "sec:e:2048:1:1111111111111111:1:::u:::scSCD:::#:::::0:\n"
      "fpr:::::::::1111111111111111111111111111111111111111:\n"
      "uid:e::::1::AAAA::Stub <xmpp\\x3astub@example.org>::::::::::0:\n"
      "sec:u:255:22:2222222222222222:1:::u:::scESC:::+::ed25519:::0:\n";
  std::vector<ListedKey> keys = parse_key_listing(secret, true);
  REQUIRE(keys.size() == 2);  // the last one has no fingerprint
  const ListedKey& a = keys[0];
  CHECK(a.fpr == "9A468D14CE0D7AB717BF46A7C7293E0732740EC4");  // not the subkey's
  CHECK(a.keygrip == "6480CB392087C030BC3DE60D4DB9E91ED5351400");
  CHECK(a.algo == 22);
  CHECK(a.curve == "ed25519");
  CHECK(a.secret);
  CHECK(a.primary_can_sign());
  CHECK(a.can_encrypt());
  CHECK(a.state_problem() == nullptr);
  REQUIRE(a.uids.size() == 3);
  CHECK(a.uids[1].uid == "xmpp:old@example.org");
  CHECK(a.uids[1].validity == 'r');
  CHECK(a.uids[2].uid == "xmpp:alice@example.org");
  const ListedKey& b = keys[1];
  CHECK_FALSE(b.secret);  // '#': a stub
  CHECK(b.expired());
  CHECK(b.disabled());
  CHECK(b.bits == 2048);
  CHECK(std::string(b.state_problem()) == "expired");
  CHECK(b.uids.at(0).uid == "Stub <xmpp:stub@example.org>");

  // A public listing: "pub" lines, no secret part; a primary that cannot sign itself.
  const char* pub =
      "tru::1:1795714570:0:3:1:5\n"
      "pub:f:3072:1:3333333333333333:1:::-:::eE:::::::0:\n"
      "fpr:::::::::3333333333333333333333333333333333333333:\n"
      "uid:f::::1::BBBB::xmpp\\x3abob@example.org::::::::::0:\n";
  keys = parse_key_listing(pub, false);
  REQUIRE(keys.size() == 1);
  CHECK_FALSE(keys[0].secret);
  CHECK_FALSE(keys[0].primary_can_sign());
  CHECK(keys[0].can_encrypt());
  CHECK(parse_key_listing(pub, true).empty());  // a secret listing reads only "sec"
}

namespace {

Decrypted signatures(std::vector<std::string> lines) {
  Outcome o;
  o.status = std::move(lines);
  Decrypted d;
  read_signatures(o, d);
  return d;
}

}  // namespace

TEST_CASE("gpg_run: signature verdicts from status lines", "[gpg_run]") {
  const std::string primary = "9A468D14CE0D7AB717BF46A7C7293E0732740EC4";
  // As gpg 2.2.40 reported a good signature by a key in the keyring.
  Decrypted d =
      signatures({"NEWSIG", "KEY_CONSIDERED " + primary + " 0",
                  "SIG_ID gLLF/Ieohxb8G2s0hYTeO2kqkvI 2026-11-26 1795714531",
                  "GOODSIG C7293E0732740EC4 Alice Other <alice@mail.example>",
                  "VALIDSIG " + primary + " 2026-11-26 1795714531 0 4 0 22 10 00 " + primary,
                  "TRUST_ULTIMATE 0 pgp"});
  CHECK(d.signature == SignatureVerdict::good);
  CHECK(d.signer == primary);

  CHECK(signatures({"PLAINTEXT 62 0", "DECRYPTION_OKAY"}).signature == SignatureVerdict::none);
  CHECK(signatures({"NEWSIG", "BADSIG C7293E0732740EC4 Alice"}).signature == SignatureVerdict::bad);
  CHECK(signatures({"NEWSIG", "EXPKEYSIG C7293E0732740EC4 Alice"}).signature ==
        SignatureVerdict::bad);
  CHECK(signatures({"NEWSIG", "REVKEYSIG C7293E0732740EC4 Alice"}).signature ==
        SignatureVerdict::bad);
  CHECK(signatures({"NEWSIG"}).signature == SignatureVerdict::bad);  // nothing conclusive

  // A key not in the keyring: ERRSIG with rc 9, and the fingerprint when gpg gives it.
  d = signatures({"NEWSIG", "ERRSIG 57808BE2422D2C3C 22 10 00 1795714531 9 " + primary,
                  "NO_PUBKEY 57808BE2422D2C3C"});
  CHECK(d.signature == SignatureVerdict::unknown);
  CHECK(d.signer == primary);
  d = signatures({"NEWSIG", "ERRSIG 57808BE2422D2C3C 22 10 00 1795714531 9 -"});
  CHECK(d.signer == "57808BE2422D2C3C");
  CHECK(signatures({"NEWSIG", "ERRSIG 57808BE2422D2C3C 99 10 00 1795714531 4 -"}).signature ==
        SignatureVerdict::bad);  // an algorithm gpg does not know

  // Two signatures: the worse one wins, in either order.
  std::vector<std::string> good = {"NEWSIG", "GOODSIG C7293E0732740EC4 Alice",
                                   "VALIDSIG " + primary + " x x x x x x x x " + primary};
  std::vector<std::string> bad = {"NEWSIG", "BADSIG 1111111111111111 Mallory"};
  std::vector<std::string> both = good;
  both.insert(both.end(), bad.begin(), bad.end());
  d = signatures(both);
  CHECK(d.signature == SignatureVerdict::bad);
  CHECK(d.signer == "1111111111111111");
  both = bad;
  both.insert(both.end(), good.begin(), good.end());
  CHECK(signatures(both).signature == SignatureVerdict::bad);
}
