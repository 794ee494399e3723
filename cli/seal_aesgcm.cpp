// XEP-0454 aesgcm files for `seal --file` / `open --file`: lib/object/aesgcm.hpp does the
// work; the key is a URL fragment that goes to a file or a descriptor, never to argv or the
// environment.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/random.hpp"
#include "object/aesgcm.hpp"
#include "seal.hpp"

namespace esession::cli {

namespace {

constexpr size_t kMaxKeyText = 64 << 10;  // a key file, or a URL with the key in its fragment

// refuse_keys_options: aesgcm has no recipients or signers; its key is the URL.
void refuse_keys_options(const ObjectOpts& o) {
  if (!o.recipients.empty() || !o.signers.empty())
    fail_with(Errc::malformed, "aesgcm has no recipients or signers (-r, -i): its key is the URL",
              "use a format with recipients, or share the aesgcm:// URL");
}

// read_key reads the key text from --key-file or --key-fd into memory that is wiped.
SecretBytes read_key(Context& ctx, const ObjectOpts& o) {
  fs::UniqueFd own;
  int fd = o.key_fd;
  std::string name = "--key-fd " + std::to_string(o.key_fd);
  if (!o.key_file.empty()) {
    name = o.key_file;
    own.reset(::open(o.key_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!own)
      fail_with(Errc::io, o.key_file + ": cannot open: " + errno_text());
    fd = own.get();
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
      ctx.warn(o.key_file + " can be read by others (mode " +
               std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
               std::to_string(st.st_mode & 7) + "); anyone who can read it can open the file");
  }
  SecretBytes text(kMaxKeyText + 1);
  size_t done = 0;
  for (;;) {
    size_t n = check(fs::read_some(fd, {text.data() + done, text.size() - done}, name));
    if (n == 0)
      break;
    done += n;
    if (done > kMaxKeyText)
      fail_with(Errc::malformed, name + ": too long for a key");
  }
  text.resize(done);
  return text;
}

}  // namespace

int seal_aesgcm(Context& ctx, const ObjectOpts& o) {
  refuse_keys_options(o);
  if (o.key_out.empty() && o.key_fd < 0)
    fail_with(Errc::malformed,
              "aesgcm needs somewhere to put the key: --key-out FILE or --key-fd N",
              "the key never goes into the command line or the environment; e.g. "
              "--key-out photo.key");
  if (!o.key_out.empty() && (o.key_out == o.output || o.key_out == o.input))
    fail_with(Errc::malformed,
              "--key-out names the " + std::string(o.key_out == o.output ? "output" : "input") +
                  " file too",
              "keep the key in a file of its own");
  Output out = plan_output(o);
  if (out.path.empty() && out.fd == o.key_fd)
    fail_with(Errc::malformed, "--key-fd " + std::to_string(o.key_fd) + " is the output as well",
              "send the key to another descriptor, or the ciphertext to a file with -o");
  fs::UniqueFd in_own;
  int in_fd = open_input(o, in_own);
  std::string in_name = is_stdio(o.input) ? "standard input" : o.input;

  std::optional<fs::OutputFile> file = sealed_file(out);

  SystemRandom rng;
  aesgcm::FileKey key = aesgcm::FileKey::generate(rng);
  SecretBytes frag = aesgcm::fragment(key);
  frag.push_back('\n');
  // The key is written before the ciphertext: an existing --key-out fails early, and a reader of
  // --key-fd that wants the key first does not wait for the end of a long file.
  if (!o.key_out.empty())
    check(fs::write_file_exclusive(o.key_out, view(frag), 0600),
          "choose another file name for --key-out; an existing key file is never replaced");
  else
    check(fs::write_all(o.key_fd, view(frag), "--key-fd " + std::to_string(o.key_fd)));
  auto forget_key = [&] {
    if (!o.key_out.empty())
      (void)fs::remove_file(o.key_out);
  };

  ProgressBar bar(ctx, "sealing", fs::regular_size(in_fd));
  aesgcm::StreamOptions so;
  so.progress = bar.callback();
  Result<uint64_t> r = aesgcm::seal(key, in_fd, out.fd, so, in_name, out.name);
  bar.clear();
  Status committed = r && file ? file->commit() : Status{};
  if (!r || !committed) {
    forget_key();  // a key for a file that does not exist is of no use
    if (!r)
      check(std::move(r));
    check(committed);
  }
  ctx.status("SEALED", {"aesgcm", std::to_string(*r)});
  ctx.info("sealed " + human_size(*r) + " (aesgcm)" +
           (o.key_out.empty() ? "" : "; the key is in " + o.key_out + ": keep it secret"));
  return kExitOk;
}

int open_aesgcm(Context& ctx, const ObjectOpts& o) {
  refuse_keys_options(o);
  if (o.key_file.empty() && o.key_fd < 0)
    fail_with(Errc::malformed, "aesgcm needs the key: --key-file FILE or --key-fd N",
              "the key is the #fragment of the aesgcm:// URL; give the URL or its fragment in "
              "a file");
  // main has checked that --key-fd is open for reading.
  if (o.key_fd == 0 && is_stdio(o.input))
    fail_with(Errc::malformed, "--key-fd 0 is standard input, which holds the file",
              "name the input file, or pass the key on another descriptor");
  std::string key_name = o.key_file.empty() ? "--key-fd " + std::to_string(o.key_fd) : o.key_file;
  SecretBytes text = read_key(ctx, o);
  Result<aesgcm::FileKey> parsed = aesgcm::parse_key(view(text));
  if (!parsed)
    fail_with(parsed.error().code, key_name + ": " + parsed.error().detail,
              "give the aesgcm:// URL, or its fragment of 88 (or 96) hex digits");
  aesgcm::FileKey key = std::move(parsed).value();
  fs::UniqueFd in_own;
  int in_fd = open_input(o, in_own);
  std::string in_name = is_stdio(o.input) ? "standard input" : o.input;
  Output out = plan_output(o);

  ProgressBar bar(ctx, "opening", fs::regular_size(in_fd));
  aesgcm::StreamOptions so;
  so.progress = bar.callback();
  Result<uint64_t> r =
      out.path.empty()
          ? aesgcm::open_to_fd(key, in_fd, out.fd, fs::spool_dir(), so, in_name, out.name)
          : aesgcm::open_to_file(key, in_fd, out.path, 0600, so, in_name);
  bar.clear();
  uint64_t n = check(std::move(r));
  ctx.status("OPENED", {"aesgcm", std::to_string(n)});
  ctx.debug("opened " + human_size(n) + " (aesgcm)");
  return kExitOk;
}

}  // namespace esession::cli
