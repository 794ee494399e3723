// XEP-0454 aesgcm files (lib/object/aesgcm.hpp) and the OutputFile they are opened into.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "object/aesgcm.hpp"
#include "util/fs.hpp"
#include "util/output_file.hpp"

using namespace esession;
using esession::fs::UniqueFd;

namespace {

Bytes h(std::string_view s) {
  return unhex(s).value();
}

// A regular, seekable file in memory holding |data|, positioned at its start.
UniqueFd mem_file(ByteView data = {}) {
  UniqueFd fd(::memfd_create("aesgcm-test", MFD_CLOEXEC));
  REQUIRE(fd);
  REQUIRE(fs::write_all(fd.get(), data, "memfd"));
  REQUIRE(::lseek(fd.get(), 0, SEEK_SET) == 0);
  return fd;
}

Bytes contents(int fd) {
  REQUIRE(::lseek(fd, 0, SEEK_SET) == 0);
  Bytes out;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    REQUIRE(n >= 0);
    if (n == 0)
      return out;
    out.insert(out.end(), buf, buf + n);
  }
}

Bytes file_contents(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  return contents(fd.get());
}

// Feeder writes |data| into a pipe from another thread; read the other end with fd().
class Feeder {
 public:
  explicit Feeder(Bytes data) : m_data(std::move(data)) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    m_read.reset(p[0]);
    m_thread = std::thread([this, w = p[1]] {
      (void)fs::write_all(w, m_data, "pipe");
      ::close(w);
    });
  }
  ~Feeder() { m_thread.join(); }
  int fd() const { return m_read.get(); }

 private:
  Bytes m_data;
  UniqueFd m_read;
  std::thread m_thread;
};

// A scratch directory, removed with its files at the end of the test.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = fs::spool_dir() + "/aesgcm-test.XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()));
    path = tmpl;
  }
  ~TempDir() {
    for (const auto& n : names())
      ::unlink((path + "/" + n).c_str());
    ::rmdir(path.c_str());
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    DIR* d = ::opendir(path.c_str());
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
        out.push_back(e->d_name);
    ::closedir(d);
    return out;
  }
};

aesgcm::FileKey key_of(std::string_view key_hex, std::string_view iv_hex) {
  aesgcm::FileKey k;
  k.key = secret(h(key_hex));
  k.iv = secret(h(iv_hex));
  return k;
}

Bytes seal_bytes(const aesgcm::FileKey& k, ByteView plain, size_t buffer = 4096) {
  UniqueFd in = mem_file(plain), out = mem_file();
  aesgcm::StreamOptions o;
  o.buffer_bytes = buffer;
  auto n = aesgcm::seal(k, in.get(), out.get(), o);
  REQUIRE(n);
  CHECK(*n == plain.size());
  return contents(out.get());
}

// open_fd opens |sealed| to a memory file, from a regular file or from a pipe.
Result<uint64_t> open_fd(const aesgcm::FileKey& k, const Bytes& sealed, Bytes& out_plain, bool pipe,
                         size_t buffer = 4096) {
  UniqueFd out = mem_file();
  aesgcm::StreamOptions o;
  o.buffer_bytes = buffer;
  Result<uint64_t> r = fail(Errc::internal, "not run");
  if (pipe) {
    Feeder f(sealed);
    r = aesgcm::open_to_fd(k, f.fd(), out.get(), fs::spool_dir(), o);
  } else {
    UniqueFd in = mem_file(sealed);
    r = aesgcm::open_to_fd(k, in.get(), out.get(), fs::spool_dir(), o);
  }
  out_plain = contents(out.get());
  return r;
}

Bytes pattern(size_t n) {
  Bytes b(n);
  uint32_t x = 0x12345678u ^ static_cast<uint32_t>(n);
  for (auto& c : b) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<uint8_t>(x >> 24);
  }
  return b;
}

}  // namespace

// The GCM specification's test cases 13-15 (McGrew and Viega, "The Galois/Counter Mode of
// Operation", also in NIST's CAVP gcmEncryptExtIV256): AES-256, 96-bit IV, no AAD.
TEST_CASE("aesgcm seal matches the GCM test vectors (AES-256, 96-bit IV)") {
  struct Vec {
    const char *key, *iv, *plain, *sealed;
  } vecs[] = {
      {"0000000000000000000000000000000000000000000000000000000000000000",
       "000000000000000000000000", "", "530f8afbc74536b9a963b4f1c4cb738b"},
      {"0000000000000000000000000000000000000000000000000000000000000000",
       "000000000000000000000000", "00000000000000000000000000000000",
       "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"},
      {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
       "cafebabefacedbaddecaf888",
       "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
       "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
       "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
       "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
       "b094dac5d93471bdec1a502270e3cc6c"},
  };
  for (const auto& v : vecs) {
    aesgcm::FileKey k = key_of(v.key, v.iv);
    Bytes plain = h(v.plain);
    CHECK(hex(seal_bytes(k, plain)) == v.sealed);
    CHECK(hex(seal_bytes(k, plain, 16 << 10)) == v.sealed);
    Bytes out;
    auto r = open_fd(k, h(v.sealed), out, false);
    REQUIRE(r);
    CHECK(out == plain);
  }
}

TEST_CASE("aesgcm opens files with a legacy 16-byte IV but does not make them") {
  // Made with python3-cryptography's AESGCM (key 00..1f, IV 00..0f).
  aesgcm::FileKey k = key_of("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                             "000102030405060708090a0b0c0d0e0f");
  Bytes sealed =
      h("021fc5054a8d2546bd9ebe5a32c7419338d60cc004f4f32a32f3ac9651a1db1150044e3f589e80fede");
  Bytes out;
  REQUIRE(open_fd(k, sealed, out, true));
  CHECK(string_of(out) == "esession aesgcm legacy iv");
  UniqueFd in = mem_file(out), dst = mem_file();
  auto r = aesgcm::seal(k, in.get(), dst.get());
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::unsupported);
}

TEST_CASE("aesgcm round trips across buffer boundaries, from files and pipes") {
  SystemRandom rng;
  constexpr size_t B = 4096;
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, B - 17, B - 16, B - 1,
                   B, B + 1, B + 15, B + 16, B + 17, 2 * B, 3 * B + 7, 5 * B - 16}) {
    DYNAMIC_SECTION("size " << n) {
      aesgcm::FileKey k = aesgcm::FileKey::generate(rng);
      Bytes plain = pattern(n);
      Bytes sealed = seal_bytes(k, plain, B);
      REQUIRE(sealed.size() == n + aesgcm::kTagBytes);
      // A different buffer size on the way back reads the same bytes.
      CHECK(hex(seal_bytes(k, plain, 3 * B)) == hex(sealed));
      for (bool pipe : {false, true}) {
        Bytes out;
        auto r = open_fd(k, sealed, out, pipe, pipe ? 2 * B : B);
        REQUIRE(r);
        CHECK(*r == n);
        CHECK(out == plain);
      }
      UniqueFd in = mem_file(sealed);
      aesgcm::StreamOptions o;
      o.buffer_bytes = B;
      auto v = aesgcm::verify(k, in.get(), o);
      REQUIRE(v);
      CHECK(*v == n);
      TempDir d;
      Feeder f(sealed);
      auto w = aesgcm::open_to_file(k, f.fd(), d.path + "/out", 0640, o);
      REQUIRE(w);
      CHECK(file_contents(d.path + "/out") == plain);
      struct stat st;
      REQUIRE(::stat((d.path + "/out").c_str(), &st) == 0);
      CHECK((st.st_mode & 07777) == 0640);
      CHECK(d.names() == std::vector<std::string>{"out"});
    }
  }
}

TEST_CASE("aesgcm reports progress up to the total") {
  SystemRandom rng;
  aesgcm::FileKey k = aesgcm::FileKey::generate(rng);
  Bytes plain = pattern(10000);
  Bytes sealed = seal_bytes(k, plain);
  uint64_t last_done = 0, last_total = 0;
  int calls = 0;
  aesgcm::StreamOptions o;
  o.buffer_bytes = 4096;
  o.progress = [&](uint64_t done, uint64_t total) {
    CHECK(done > last_done);
    last_done = done;
    last_total = total;
    ++calls;
  };
  UniqueFd in = mem_file(sealed), out = mem_file();
  REQUIRE(aesgcm::open_to_fd(k, in.get(), out.get(), fs::spool_dir(), o));
  CHECK(calls >= 6);  // two passes of three buffers or more
  CHECK(last_total == 2 * sealed.size());
  CHECK(last_done == last_total);
}

TEST_CASE("aesgcm refuses every truncation and every flipped bit, releasing nothing") {
  SystemRandom rng;
  aesgcm::FileKey k = aesgcm::FileKey::generate(rng);
  Bytes plain = pattern(40);
  Bytes sealed = seal_bytes(k, plain);
  auto refused = [&](const Bytes& bad, const char* what, size_t i) {
    INFO(what << " " << i);
    for (bool pipe : {false, true}) {
      Bytes out;
      auto r = open_fd(k, bad, out, pipe, 4096);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == Errc::auth_failed);
      CHECK(r.error().detail == "authentication failed: the file was modified or the key is wrong");
      CHECK(out.empty());
    }
  };
  for (size_t len = 0; len < sealed.size(); ++len)
    refused(Bytes(sealed.begin(), sealed.begin() + static_cast<ptrdiff_t>(len)), "truncated to",
            len);
  for (size_t bit = 0; bit < sealed.size() * 8; ++bit) {
    Bytes bad = sealed;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    refused(bad, "bit flipped", bit);
  }
  Bytes longer = sealed;
  longer.push_back(0);
  refused(longer, "extended by", 1);
  // The wrong key, and the right key with another IV.
  Bytes out;
  CHECK_FALSE(open_fd(aesgcm::FileKey::generate(rng), sealed, out, false));
  aesgcm::FileKey other_iv{secret(view(k.key)), secret(view(k.iv))};
  other_iv.iv[0] ^= 1;
  CHECK_FALSE(open_fd(other_iv, sealed, out, false));
  CHECK(out.empty());
}

TEST_CASE("aesgcm open_to_file leaves the destination alone on failure") {
  SystemRandom rng;
  aesgcm::FileKey k = aesgcm::FileKey::generate(rng);
  Bytes plain = pattern(9000);
  Bytes sealed = seal_bytes(k, plain);
  TempDir d;
  std::string dest = d.path + "/existing";
  REQUIRE(fs::write_file_exclusive(dest, view(std::string_view("old contents")), 0644));
  std::string absent = d.path + "/absent";
  for (size_t cut : {size_t{0}, size_t{5}, sealed.size() - 1}) {
    Bytes bad(sealed.begin(), sealed.begin() + static_cast<ptrdiff_t>(cut));
    for (const std::string& to : {dest, absent}) {
      UniqueFd in = mem_file(bad);
      auto r = aesgcm::open_to_file(k, in.get(), to);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == Errc::auth_failed);
    }
  }
  Bytes flipped = sealed;
  flipped[4500] ^= 0x80;
  UniqueFd in = mem_file(flipped);
  CHECK_FALSE(aesgcm::open_to_file(k, in.get(), dest));
  CHECK(string_of(file_contents(dest)) == "old contents");
  CHECK(d.names() == std::vector<std::string>{"existing"});  // no temporary file left
  // Success replaces it.
  UniqueFd good = mem_file(sealed);
  REQUIRE(aesgcm::open_to_file(k, good.get(), dest));
  CHECK(file_contents(dest) == plain);
}

TEST_CASE("aesgcm key fragments: what parse_key accepts") {
  SystemRandom rng;
  aesgcm::FileKey k = aesgcm::FileKey::generate(rng);
  SecretBytes f = aesgcm::fragment(k);
  REQUIRE(f.size() == 88);
  std::string frag = string_of(view(f));
  CHECK(frag == hex(view(k.iv)) + hex(view(k.key)));
  auto same = [&](const std::string& text) {
    INFO(text);
    auto p = aesgcm::parse_key(view(text));
    REQUIRE(p);
    CHECK(ct_equal(view(p->key), view(k.key)));
    CHECK(ct_equal(view(p->iv), view(k.iv)));
  };
  same(frag);
  same(frag + "\n");
  same(" \t" + frag + "\r\n");
  std::string upper = frag;
  for (char& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  same(upper);
  same("aesgcm://upload.example.org/aX9/photo%20one.jpg#" + frag);
  same("AESGCM://upload.example.org/photo.jpg#" + frag + "\n");

  // A generated fragment with a chosen key and IV decodes to exactly those bytes.
  struct Fixed final : RandomSource {
    uint8_t next = 0;
    void fill(std::span<uint8_t> out) override {
      for (auto& b : out)
        b = next++;
    }
  } fixed;
  aesgcm::FileKey g = aesgcm::FileKey::generate(fixed);
  CHECK(hex(view(g.key)) == "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  CHECK(hex(view(g.iv)) == "202122232425262728292a2b");
  CHECK(string_of(view(aesgcm::fragment(g))) ==
        "202122232425262728292a2b"
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");

  // 96 digits: a 16-byte IV.
  std::string legacy = hex(pattern(16)) + hex(view(k.key));
  auto p = aesgcm::parse_key(view(legacy));
  REQUIRE(p);
  CHECK(p->iv.size() == 16);
  CHECK(hex(view(p->iv)) == hex(pattern(16)));

  auto refused = [](const std::string& text) {
    INFO("'" << text << "'");
    auto r = aesgcm::parse_key(view(text));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::malformed);
    // The detail never repeats the key material.
    if (text.size() >= 16)
      CHECK(r.error().detail.find(text.substr(text.size() / 2, 8)) == std::string::npos);
  };
  refused("");
  refused("\n");
  refused(frag.substr(0, 87));
  refused(frag + "0");
  refused(frag.substr(0, 86));
  refused(frag + "00");
  refused(legacy.substr(0, 95));
  refused(legacy + "0");
  refused(frag.substr(0, 64));  // a bare key without its IV
  for (char bad : {'g', 'G', 'x', ' ', '+', '-', ':', '/', '@', '`', '\0', '\xff'}) {
    for (size_t at : {size_t{0}, size_t{40}, size_t{87}}) {
      std::string s = frag;
      s[at] = bad;
      refused(s);
    }
  }
  refused(frag.substr(0, 44) + " " + frag.substr(44));
  refused("0x" + frag.substr(2));
  refused("https://upload.example.org/photo.jpg#" + frag);
  refused("aesgcm://upload.example.org/photo.jpg");
  refused("aesgcm://upload.example.org/photo.jpg#");
  refused("aesgcm://upload.example.org/photo.jpg#" + frag + "#");
  refused("aesgcm://upload.example.org/photo.jpg#" + frag.substr(1));
  refused("aesgcm:" + frag);
}

TEST_CASE("OutputFile appears at its destination only when committed") {
  TempDir d;
  std::string dest = d.path + "/file";
  {
    auto f = fs::OutputFile::create(dest, 0644);
    REQUIRE(f);
    REQUIRE(fs::write_all(f->fd(), view(std::string_view("partial")), "f"));
    CHECK_FALSE(fs::exists(dest));
    struct stat st;
    REQUIRE(::fstat(f->fd(), &st) == 0);
    CHECK((st.st_mode & 077) == 0);  // private while being written
    // Unnamed where the file system allows (O_TMPFILE), else a named temporary.
    CHECK(st.st_nlink == (f->temp_path().empty() ? 0u : 1u));
  }
  CHECK(d.names().empty());  // discarded by the destructor
  auto f = fs::OutputFile::create(dest, 0644);
  REQUIRE(f);
  REQUIRE(fs::write_all(f->fd(), view(std::string_view("whole")), "f"));
  REQUIRE(f->commit());
  CHECK(string_of(file_contents(dest)) == "whole");
  struct stat st;
  REQUIRE(::stat(dest.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  CHECK_FALSE(f->commit());  // once only

  // A symbolic link is followed: its target is replaced, the link stays.
  REQUIRE(::symlink("file", (d.path + "/link").c_str()) == 0);
  auto g = fs::OutputFile::create(d.path + "/link");
  REQUIRE(g);
  REQUIRE(fs::write_all(g->fd(), view(std::string_view("via link")), "g"));
  REQUIRE(g->commit());
  CHECK(string_of(file_contents(dest)) == "via link");
  struct stat lst;
  REQUIRE(::lstat((d.path + "/link").c_str(), &lst) == 0);
  CHECK(S_ISLNK(lst.st_mode));

  REQUIRE(::symlink("nowhere", (d.path + "/dangling").c_str()) == 0);
  CHECK_FALSE(fs::OutputFile::create(d.path + "/dangling"));
  CHECK_FALSE(fs::OutputFile::create(d.path));  // a directory
  CHECK_FALSE(fs::OutputFile::create(d.path + "/no-such-dir/file"));
}

TEST_CASE("OutputFile removes the stale temporaries of killed processes, only those") {
  TempDir d;
  const std::string dest = d.path + "/out";
  auto make = [&](const std::string& name, bool old) {
    std::string p = d.path + "/" + name;
    fs::UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    REQUIRE(fd);
    REQUIRE(fs::write_all(fd.get(), view(std::string_view("plaintext")), p));
    if (old) {
      timespec times[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
      REQUIRE(::futimens(fd.get(), times) == 0);
    }
    return p;
  };
  make(".out.tmp.Ab3xYz", true);    // a killed process's: removed
  make(".out.tmp.Qw9Er7", true);    // another one
  make(".out.tmp.Fresh1", false);   // written since this process started: in use
  make(".other.tmp.Ab3xYz", true);  // another destination's
  make(".out.tmp.Ab3xY", true);     // not our pattern (five characters)
  make(".out.tmp.Ab3x-z", true);    // nor this
  make("out.tmp.Ab3xYz", true);     // nor this (not hidden)
  std::string locked = make(".out.tmp.Lock3d", true);
  fs::UniqueFd holder(::open(locked.c_str(), O_RDONLY | O_CLOEXEC));  // a live OutputFile's
  REQUIRE(::flock(holder.get(), LOCK_EX | LOCK_NB) == 0);
  REQUIRE(::symlink(".out.tmp.Ab3xYz", (d.path + "/.out.tmp.Link12").c_str()) == 0);
  std::string foreign;
  if (::geteuid() == 0) {  // someone else's file is left alone
    foreign = make(".out.tmp.N0tM1n", true);
    REQUIRE(::chown(foreign.c_str(), 65534, 65534) == 0);
  }

  auto f = fs::OutputFile::create(dest, 0644);
  REQUIRE(f);
  std::vector<std::string> names = d.names();
  std::sort(names.begin(), names.end());
  std::vector<std::string> want = {".other.tmp.Ab3xYz", ".out.tmp.Ab3x-z", ".out.tmp.Ab3xY",
                                   ".out.tmp.Fresh1",   ".out.tmp.Link12", ".out.tmp.Lock3d",
                                   "out.tmp.Ab3xYz"};
  if (!foreign.empty())
    want.push_back(".out.tmp.N0tM1n");
  if (!f->temp_path().empty())  // no O_TMPFILE here: the new file has a name
    want.push_back(fs::base_of(f->temp_path()));
  std::sort(want.begin(), want.end());
  CHECK(names == want);
  // Once the lock is gone, the next run removes that one too.
  holder.reset();
  CHECK(fs::remove_stale_temporaries(dest) == 1);
  CHECK_FALSE(fs::exists(locked));
}

TEST_CASE("open_spool gives an unlinked private file") {
  auto s = fs::open_spool(fs::spool_dir());
  REQUIRE(s);
  struct stat st;
  REQUIRE(::fstat(s->get(), &st) == 0);
  CHECK(st.st_nlink == 0);
  CHECK((st.st_mode & 077) == 0);
  CHECK_FALSE(fs::open_spool("/no/such/directory"));
}
