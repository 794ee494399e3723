// esession key: our native signing keys (PEM/PKCS#8 files in the home, 0600).
#include <cerrno>
#include <cstring>

#include "commands.hpp"

namespace esession::cli {

namespace {

struct KeyOpts {
  std::string type = "ed25519";
  int bits = 3072;
  bool make_default = false;
  std::string which;  // a fingerprint or a unique prefix of one (default: the default key)
  bool secret = false;
  std::string file;  // import: a PEM file, or "-" for stdin
};

std::string normalize_fpr(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != ' ' && c != ':')
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

KeyRecord find_key(Context& ctx, const std::string& which) {
  const Account& a = ctx.account();
  auto keys = check(ctx.store().list_keys(a.id));
  if (which.empty()) {
    for (const auto& k : keys)
      if (a.default_key && k.id == *a.default_key)
        return k;
    fail_with(Errc::malformed, "the account has no default key",
              "make one with: esession key generate");
  }
  std::string want = normalize_fpr(which);
  if (want.size() < 8)
    fail_with(Errc::malformed, "give at least 8 hex digits of the fingerprint");
  std::optional<KeyRecord> hit;
  for (const auto& k : keys)
    if (k.fingerprint.rfind(want, 0) == 0) {
      if (hit)
        fail_with(Errc::malformed, "several keys match " + which, "give more digits");
      hit = k;
    }
  if (!hit)
    fail_with(Errc::malformed, "no key matches " + which, "list them with: esession key list");
  return *hit;
}

int run_generate(Context& ctx, const KeyOpts& o) {
  const Account& a = ctx.account();
  Result<PrivateKey> k = fail(Errc::malformed, "unknown key type '" + o.type + "'");
  KeyKind kind = KeyKind::ed25519;
  if (o.type == "ed25519") {
    k = PrivateKey::generate_ed25519();
  } else if (o.type == "rsa") {
    if (o.bits < kMinRsaBits || o.bits > 8192)
      fail_with(Errc::malformed, "--bits must be between 2048 and 8192");
    k = PrivateKey::generate_rsa(o.bits);
    kind = KeyKind::rsa;
  }
  PrivateKey key = check(std::move(k), "key types: ed25519, rsa");
  std::string fpr = fingerprint_of(key.public_key());
  std::string rel = check(ctx.store().write_key_file(fpr.substr(0, 16) + ".pem", view(key.pem())));
  KeyRecord rec = check(ctx.store().add_key(a.id, kind, fpr, rel));
  if (o.make_default || !a.default_key)
    check(ctx.store().set_default_key(a.id, rec.id));
  ctx.status("KEY_CREATED", std::string(key_kind_name(kind)) + " " + fpr);
  ctx.info(std::string("created ") + (kind == KeyKind::rsa ? "an RSA" : "an Ed25519") +
           " key for " + a.jid + " in " + ctx.store().home() + "/" + rel);
  std::printf("%s\n", group_hex(fpr).c_str());
  return kExitOk;
}

int run_list(Context& ctx) {
  const Account& a = ctx.account();
  auto keys = check(ctx.store().list_keys(a.id));
  if (ctx.json()) {
    std::printf("[");
    for (size_t i = 0; i < keys.size(); ++i)
      std::printf("%s{\"type\":%s,\"fingerprint\":%s,\"default\":%s,\"created\":%lld}",
                  i ? "," : "", json_escape(key_kind_name(keys[i].kind)).c_str(),
                  json_escape(keys[i].fingerprint).c_str(),
                  a.default_key && *a.default_key == keys[i].id ? "true" : "false",
                  static_cast<long long>(keys[i].created));
    std::printf("]\n");
    return kExitOk;
  }
  for (const auto& k : keys)
    std::printf("%-8s %s%s\n", std::string(key_kind_name(k.kind)).c_str(),
                group_hex(k.fingerprint).c_str(),
                a.default_key && *a.default_key == k.id ? "  (default)" : "");
  return kExitOk;
}

int run_show(Context& ctx, const KeyOpts& o, bool only_fpr) {
  KeyRecord k = find_key(ctx, o.which);
  if (only_fpr) {
    if (ctx.json())
      std::printf("{\"fingerprint\":%s}\n", json_escape(k.fingerprint).c_str());
    else
      std::printf("%s\n", group_hex(k.fingerprint).c_str());
    return kExitOk;
  }
  PrivateKey key = load_private_key(ctx, k);
  const Account& a = ctx.account();
  bool dflt = a.default_key && *a.default_key == k.id;
  if (ctx.json()) {
    std::printf("{\"type\":%s,\"bits\":%d,\"fingerprint\":%s,\"default\":%s,\"file\":%s}\n",
                json_escape(key_kind_name(k.kind)).c_str(), key.public_key().bits(),
                json_escape(k.fingerprint).c_str(), dflt ? "true" : "false",
                json_escape(k.path ? *k.path : "").c_str());
    return kExitOk;
  }
  std::printf("type:        %s (%d bits)\nfingerprint: %s\nfile:        %s/%s\ndefault:     %s\n",
              std::string(key_kind_name(k.kind)).c_str(), key.public_key().bits(),
              group_hex(k.fingerprint).c_str(), ctx.store().home().c_str(),
              k.path ? k.path->c_str() : "", dflt ? "yes" : "no");
  return kExitOk;
}

int run_export(Context& ctx, const KeyOpts& o) {
  KeyRecord k = find_key(ctx, o.which);
  PrivateKey key = load_private_key(ctx, k);
  if (o.secret) {
    SecretBytes pem = key.pem();
    std::fwrite(pem.data(), 1, pem.size(), stdout);
  } else {
    std::fputs(key.public_key().pem().c_str(), stdout);
  }
  return kExitOk;
}

// read_all reads a whole file ("-" for stdin) into memory that is wiped when freed.
SecretBytes read_all(const std::string& path) {
  FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (!f)
    fail_with(Errc::io, "cannot open " + path + ": " + std::strerror(errno));
  SecretBytes out;
  uint8_t buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    out.insert(out.end(), buf, buf + n);
    if (out.size() > (1 << 20))
      fail_with(Errc::malformed, path + " is too large for a key file");
  }
  cleanse(buf, sizeof buf);
  bool bad = std::ferror(f);
  if (f != stdin)
    std::fclose(f);
  if (bad)
    fail_with(Errc::io, "reading " + path + " failed");
  return out;
}

int run_import(Context& ctx, const KeyOpts& o) {
  const Account& a = ctx.account();
  SecretBytes pem = read_all(o.file);
  PrivateKey key =
      check(PrivateKey::from_pem(string_of(view(pem))),
            "give an unencrypted PKCS#8 or traditional PEM private key (RSA, DSA or Ed25519)");
  KeyKind kind = key.type() == KeyType::rsa   ? KeyKind::rsa
                 : key.type() == KeyType::dsa ? KeyKind::dsa
                                              : KeyKind::ed25519;
  std::string fpr = fingerprint_of(key.public_key());
  if (check(ctx.store().get_key(a.id, fpr)))
    fail_with(Errc::malformed, "the account already has key " + group_hex(fpr.substr(0, 16)));
  // Stored as we write keys ourselves (PKCS#8), whatever PEM flavour it came in.
  std::string rel = check(ctx.store().write_key_file(fpr.substr(0, 16) + ".pem", view(key.pem())));
  KeyRecord rec = check(ctx.store().add_key(a.id, kind, fpr, rel));
  if (o.make_default || !a.default_key)
    check(ctx.store().set_default_key(a.id, rec.id));
  ctx.status("KEY_CREATED", std::string(key_kind_name(kind)) + " " + fpr);
  ctx.info("imported a " + std::string(key_kind_name(kind)) + " key for " + a.jid);
  std::printf("%s\n", group_hex(fpr).c_str());
  return kExitOk;
}

int run_delete(Context& ctx, const KeyOpts& o) {
  if (o.which.empty())
    fail_with(Errc::malformed, "name the key to delete by its fingerprint");
  KeyRecord k = find_key(ctx, o.which);
  check(ctx.store().delete_key(k.id));
  ctx.status("KEY_DELETED", k.fingerprint);
  ctx.info("deleted key " + group_hex(k.fingerprint));
  return kExitOk;
}

}  // namespace

void add_key(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<KeyOpts>();
  auto* key = app.add_subcommand("key", "manage our signing keys");
  key->require_subcommand(1);
  auto* gen = key->add_subcommand("generate", "create a signing key (Ed25519 or RSA)");
  gen->add_option("--type", o->type, "ed25519 (default) or rsa");
  gen->add_option("--bits", o->bits, "RSA modulus size (default 3072)");
  gen->add_flag("--default", o->make_default, "make it the account's default key");
  gen->callback([&ctx, &action, o] { action = [&ctx, o] { return run_generate(ctx, *o); }; });
  auto* list = key->add_subcommand("list", "list the account's keys");
  list->callback([&ctx, &action] { action = [&ctx] { return run_list(ctx); }; });
  auto* show = key->add_subcommand("show", "show a key (default: the default key)");
  show->add_option("key", o->which, "fingerprint or a unique prefix of it");
  show->callback([&ctx, &action, o] { action = [&ctx, o] { return run_show(ctx, *o, false); }; });
  auto* fp = key->add_subcommand("fingerprint", "print a key's SHA-256 fingerprint");
  fp->add_option("key", o->which, "fingerprint or a unique prefix of it");
  fp->callback([&ctx, &action, o] { action = [&ctx, o] { return run_show(ctx, *o, true); }; });
  auto* exp = key->add_subcommand("export", "write a key as PEM to stdout (public by default)");
  exp->add_option("key", o->which, "fingerprint or a unique prefix of it");
  exp->add_flag("--secret", o->secret, "export the private key (PKCS#8 PEM, unencrypted)");
  exp->callback([&ctx, &action, o] { action = [&ctx, o] { return run_export(ctx, *o); }; });
  auto* imp = key->add_subcommand("import", "import a private key from a PEM file");
  imp->add_option("file", o->file, "the PEM file, or - for stdin")->required();
  imp->add_flag("--default", o->make_default, "make it the account's default key");
  imp->callback([&ctx, &action, o] { action = [&ctx, o] { return run_import(ctx, *o); }; });
  auto* del = key->add_subcommand("delete", "delete a key and its file");
  del->add_option("key", o->which, "fingerprint or a unique prefix of it")->required();
  del->callback([&ctx, &action, o] { action = [&ctx, o] { return run_delete(ctx, *o); }; });
}

}  // namespace esession::cli
