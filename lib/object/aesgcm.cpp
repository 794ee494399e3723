#include "object/aesgcm.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "crypto/ossl.hpp"
#include "util/output_file.hpp"

namespace esession::aesgcm {

namespace {

constexpr const char* kAuthFailed =
    "authentication failed: the file was modified or the key is wrong";

Error auth_failed() {
  return fail(Errc::auth_failed, kAuthFailed);
}

// Gcm is one AES-256-GCM operation over one EVP context.
class Gcm {
 public:
  Status init(const FileKey& k, bool encrypt) {
    if (k.key.size() != kKeyBytes || (k.iv.size() != kIvBytes && k.iv.size() != kLegacyIvBytes))
      return fail(Errc::malformed, "an aesgcm key is 32 bytes and its IV 12 or 16 bytes");
    m_ctx = alloc_or_die(EVP_CIPHER_CTX_new(), "AES-GCM context");
    int enc = encrypt ? 1 : 0;
    // The IV length is set before the IV: GCM takes any length, OpenSSL defaults to 12.
    if (EVP_CipherInit_ex(m_ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(m_ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(k.iv.size()),
                            nullptr) != 1 ||
        EVP_CipherInit_ex(m_ctx.get(), nullptr, nullptr, k.key.data(), k.iv.data(), enc) != 1)
      return fail(Errc::internal, "cannot set up AES-256-GCM");
    return {};
  }

  // update encrypts or decrypts |n| bytes from |in| to |out|, which may be |in| itself (GCM is
  // a stream mode: the output is as long as the input).
  Status update(const uint8_t* in, uint8_t* out, size_t n) {
    while (n > 0) {
      int chunk = static_cast<int>(std::min<size_t>(n, 1 << 30));
      int outl = 0;
      if (EVP_CipherUpdate(m_ctx.get(), out, &outl, in, chunk) != 1 || outl != chunk)
        return fail(Errc::internal, "AES-256-GCM failed");
      in += chunk;
      out += chunk;
      n -= static_cast<size_t>(chunk);
    }
    return {};
  }

  Status seal_final(std::array<uint8_t, kTagBytes>& tag) {
    int outl = 0;
    uint8_t none[16];
    if (EVP_EncryptFinal_ex(m_ctx.get(), none, &outl) != 1 || outl != 0 ||
        EVP_CIPHER_CTX_ctrl(m_ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, tag.data()) != 1)
      return fail(Errc::internal, "AES-256-GCM failed");
    return {};
  }

  // open_final compares |tag| with the computed one; OpenSSL compares in constant time
  // (CRYPTO_memcmp in the GCM provider).
  Status open_final(const uint8_t* tag) {
    std::array<uint8_t, kTagBytes> t;
    std::memcpy(t.data(), tag, kTagBytes);
    int outl = 0;
    uint8_t none[16];
    if (EVP_CIPHER_CTX_ctrl(m_ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, t.data()) != 1)
      return fail(Errc::internal, "AES-256-GCM failed");
    if (EVP_DecryptFinal_ex(m_ctx.get(), none, &outl) != 1 || outl != 0)
      return auth_failed();
    return {};
  }

 private:
  UniquePtr<EVP_CIPHER_CTX> m_ctx;
};

// Meter adds up the input read and reports it.
struct Meter {
  const Progress& progress;
  uint64_t done = 0;
  uint64_t total = 0;
  void add(size_t n) {
    done += n;
    if (progress)
      progress(done, total);
  }
};

size_t buffer_size(const StreamOptions& o) {
  return std::clamp<size_t>(o.buffer_bytes, 4096, 64 << 20);
}

// advise tells the kernel that |fd| is read once, front to back (more read-ahead).
void advise_sequential(int fd) {
  if (fs::regular_size(fd) >= 0)
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
}

// Where decrypt_pass sends what it reads: the plaintext to |out_fd|, or the ciphertext as read
// to |spool_fd|, or nothing (a verify pass). Never both: no pass needs both.
struct Sinks {
  int out_fd = -1;
  std::string out_name;
  int spool_fd = -1;
};

// decrypt_pass reads ciphertext || tag from |in_fd| to its end, decrypts, and checks the tag.
// The length is not known in advance (a pipe), so the last kTagBytes read are held back and
// put in front of the next buffer until more input shows they were not the tag. Writing
// happens behind, on a second thread (fs::WriteBehind). Returns the plaintext size.
Result<uint64_t> decrypt_pass(const FileKey& k, int in_fd, const Sinks& to, size_t room,
                              Meter& meter, const std::string& in_name) {
  Gcm gcm;
  ES_TRY(gcm.init(k, false));
  const bool spooling = to.spool_fd >= 0;
  fs::WriteBehind out(spooling ? to.spool_fd : to.out_fd, spooling ? "the spool file" : to.out_name,
                      room + kTagBytes);
  // While spooling, the buffer is being written as read, so the (discarded) plaintext goes
  // elsewhere.
  SecretBytes scratch(spooling ? room : 0);
  std::array<uint8_t, kTagBytes> tail;
  size_t held = 0;
  uint64_t plain = 0;
  for (;;) {
    std::span<uint8_t> buf = out.acquire();
    std::memcpy(buf.data(), tail.data(), held);
    Result<size_t> got = fs::read_some(in_fd, buf.subspan(held, room), in_name);
    if (!got || *got == 0) {
      out.release(buf);
      if (!got)
        return got.error();
      break;
    }
    size_t n = *got;
    meter.add(n);
    size_t have = held + n;
    if (have <= kTagBytes) {
      std::memcpy(tail.data(), buf.data(), have);
      held = have;
      if (spooling)
        out.submit(buf, have - n, n);
      else
        out.release(buf);
      continue;
    }
    size_t body = have - kTagBytes;
    std::memcpy(tail.data(), buf.data() + body, kTagBytes);
    held = kTagBytes;
    if (spooling) {
      out.submit(buf, have - n, n);
      ES_TRY(gcm.update(buf.data(), scratch.data(), body));
    } else {
      ES_TRY(gcm.update(buf.data(), buf.data(), body));
      out.submit(buf, 0, body);
    }
    plain += body;
    if (out.failed())
      break;
  }
  ES_TRY(out.finish());
  if (held < kTagBytes)
    return auth_failed();  // shorter than a tag: truncated, or not an aesgcm file at all
  ES_TRY(gcm.open_final(tail.data()));
  return plain;
}

Error seek_error(const std::string& what) {
  return fail(Errc::io, what + ": cannot seek: " + std::generic_category().message(errno));
}

}  // namespace

FileKey FileKey::generate(RandomSource& rng) {
  FileKey k;
  k.key.resize(kKeyBytes);
  k.iv.resize(kIvBytes);
  rng.fill(k.key);
  rng.fill(k.iv);
  return k;
}

SecretBytes fragment(const FileKey& k) {
  static constexpr char kDigits[] = "0123456789abcdef";
  SecretBytes out;
  out.reserve(2 * (k.iv.size() + k.key.size()));
  for (const SecretBytes* part : {&k.iv, &k.key})
    for (uint8_t b : *part) {
      out.push_back(static_cast<uint8_t>(kDigits[b >> 4]));
      out.push_back(static_cast<uint8_t>(kDigits[b & 15]));
    }
  return out;
}

namespace {

// nibble decodes one hex digit without branching on its value (the digits are key material):
// a non-digit sets |bad|.
uint8_t nibble(uint8_t c, int32_t& bad) {
  int32_t x = c;
  int32_t xl = x | 0x20;  // folds A-F onto a-f and keeps 0-9 as they are
  int32_t is_digit = ~(((x - '0') | ('9' - x)) >> 31);    // -1 when '0' <= x <= '9', else 0
  int32_t is_alpha = ~(((xl - 'a') | ('f' - xl)) >> 31);  // -1 when 'a' <= xl <= 'f', else 0
  bad |= ~(is_digit | is_alpha) & 1;
  return static_cast<uint8_t>((is_digit & (x - '0')) | (is_alpha & (xl - 'a' + 10)));
}

bool is_space(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size())
    return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if ((s[i] | 0x20) != prefix[i])
      return false;
  return true;
}

}  // namespace

Result<FileKey> parse_key(ByteView bytes) {
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  while (!text.empty() && is_space(static_cast<uint8_t>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && is_space(static_cast<uint8_t>(text.back())))
    text.remove_suffix(1);
  if (starts_with_nocase(text, "aesgcm://")) {
    size_t hash = text.find('#');
    if (hash == std::string_view::npos)
      return fail(Errc::malformed, "the aesgcm:// URL has no #fragment with the key");
    text.remove_prefix(hash + 1);
  } else if (text.find("://") != std::string_view::npos) {
    return fail(Errc::malformed, "only an aesgcm:// URL carries the key in its fragment");
  }
  size_t iv_len;
  if (text.size() == kFragmentChars)
    iv_len = kIvBytes;
  else if (text.size() == kLegacyFragmentChars)
    iv_len = kLegacyIvBytes;
  else
    return fail(Errc::malformed, "the key is " + std::to_string(text.size()) +
                                     " characters long; an aesgcm key is " +
                                     std::to_string(kFragmentChars) + " hex digits (" +
                                     std::to_string(kLegacyFragmentChars) + " with a 16-byte IV)");
  SecretBytes raw(text.size() / 2);
  int32_t bad = 0;
  for (size_t i = 0; i < raw.size(); ++i)
    raw[i] = static_cast<uint8_t>(nibble(static_cast<uint8_t>(text[2 * i]), bad) << 4 |
                                  nibble(static_cast<uint8_t>(text[2 * i + 1]), bad));
  if (bad)
    return fail(Errc::malformed, "the key holds a character that is not a hex digit");
  FileKey k;
  k.iv.assign(raw.begin(), raw.begin() + static_cast<ptrdiff_t>(iv_len));
  k.key.assign(raw.begin() + static_cast<ptrdiff_t>(iv_len), raw.end());
  return k;
}

Result<uint64_t> seal(const FileKey& k, int in_fd, int out_fd, const StreamOptions& opts,
                      const std::string& in_name, const std::string& out_name) {
  if (k.iv.size() != kIvBytes)
    return fail(Errc::unsupported, "aesgcm files are sealed with a 12-byte IV only");
  Gcm gcm;
  ES_TRY(gcm.init(k, true));
  advise_sequential(in_fd);
  const size_t room = buffer_size(opts);
  fs::WriteBehind out(out_fd, out_name, room);
  Meter meter{opts.progress};
  meter.total = static_cast<uint64_t>(std::max<int64_t>(fs::regular_size(in_fd), 0));
  uint64_t plain = 0;
  for (;;) {
    std::span<uint8_t> buf = out.acquire();
    Result<size_t> got = fs::read_some(in_fd, buf, in_name);
    if (!got || *got == 0) {
      out.release(buf);
      if (!got)
        return got.error();
      break;
    }
    ES_TRY(gcm.update(buf.data(), buf.data(), *got));
    out.submit(buf, 0, *got);
    plain += *got;
    meter.add(*got);
    if (out.failed())
      break;
  }
  std::span<uint8_t> last = out.acquire();
  std::array<uint8_t, kTagBytes> tag;
  ES_TRY(gcm.seal_final(tag));
  std::memcpy(last.data(), tag.data(), kTagBytes);
  out.submit(last, 0, kTagBytes);
  ES_TRY(out.finish());
  return plain;
}

Result<uint64_t> verify(const FileKey& k, int in_fd, const StreamOptions& opts,
                        const std::string& in_name) {
  advise_sequential(in_fd);
  Meter meter{opts.progress};
  meter.total = static_cast<uint64_t>(std::max<int64_t>(fs::regular_size(in_fd), 0));
  return decrypt_pass(k, in_fd, Sinks{}, buffer_size(opts), meter, in_name);
}

Result<uint64_t> open_to_file(const FileKey& k, int in_fd, const std::string& dest, mode_t mode,
                              const StreamOptions& opts, const std::string& in_name) {
  ES_ASSIGN(fs::OutputFile out, fs::OutputFile::create(dest, mode));
  advise_sequential(in_fd);
  Meter meter{opts.progress};
  meter.total = static_cast<uint64_t>(std::max<int64_t>(fs::regular_size(in_fd), 0));
  // The plaintext goes to the private temporary file; |out| removes it unless committed.
  ES_ASSIGN(uint64_t plain, decrypt_pass(k, in_fd, Sinks{out.fd(), out.path(), -1},
                                         buffer_size(opts), meter, in_name));
  ES_TRY(out.commit());
  return plain;
}

Result<uint64_t> open_to_fd(const FileKey& k, int in_fd, int out_fd, const std::string& spool_dir,
                            const StreamOptions& opts, const std::string& in_name,
                            const std::string& out_name) {
  const size_t room = buffer_size(opts);
  Meter meter{opts.progress};
  int64_t size = fs::regular_size(in_fd);
  off_t start = size >= 0 ? ::lseek(in_fd, 0, SEEK_CUR) : -1;
  if (start >= 0 && start <= size) {
    // A seekable file: check it, rewind, decrypt. If another process writes to the file in
    // between, the second pass may write altered plaintext before its own tag check fails; the
    // size check below only catches a file that grew or shrank. See the header: the caller gets
    // Errc::auth_failed and must discard what it received.
    advise_sequential(in_fd);
    meter.total = 2 * static_cast<uint64_t>(size - start);
    ES_ASSIGN(uint64_t first, decrypt_pass(k, in_fd, Sinks{}, room, meter, in_name));
    if (::lseek(in_fd, start, SEEK_SET) != start)
      return seek_error(in_name);
    ES_ASSIGN(uint64_t second,
              decrypt_pass(k, in_fd, Sinks{out_fd, out_name, -1}, room, meter, in_name));
    if (second != first)
      return fail(Errc::auth_failed, kAuthFailed + std::string(" (it changed while being read)"));
    return second;
  }
  // A pipe: keep a private copy of the ciphertext while checking it, then decrypt the copy,
  // which no one else can change.
  ES_ASSIGN(fs::UniqueFd spool, fs::open_spool(spool_dir));
  ES_ASSIGN(uint64_t first,
            decrypt_pass(k, in_fd, Sinks{-1, {}, spool.get()}, room, meter, in_name));
  if (::lseek(spool.get(), 0, SEEK_SET) != 0)
    return seek_error("the spool file");
  meter.total = 2 * meter.done;
  ES_ASSIGN(uint64_t second, decrypt_pass(k, spool.get(), Sinks{out_fd, out_name, -1}, room, meter,
                                          "the spool file"));
  if (second != first)
    return fail(Errc::io, "the spool file changed while being read");
  return second;
}

}  // namespace esession::aesgcm
