// esession key: the keys we identify with. Native keys are PEM/PKCS#8 files in the home (0600,
// optionally encrypted with scrypt); an X.509 identity is such a file plus its certificate
// chain; an OpenPGP key stays in GnuPG and is only bound here.
//
// Every key is named by the SHA-256 fingerprint of its DER SubjectPublicKeyInfo, whatever its
// kind, so a peer compares the same string for each.
#include <cerrno>
#include <cstring>
#include <ctime>

#include "commands.hpp"
#include "crypto/x509.hpp"
#include "openpgp/openpgp.hpp"

namespace esession::cli {

namespace {

struct KeyOpts {
  std::string type = "ed25519";
  int bits = 3072;
  bool make_default = false;
  bool protect = false;
  std::string which;  // a fingerprint or a unique prefix of one (default: the default key)
  bool secret = false;
  std::string file;     // import: a PEM or PKCS#12 file, or "-" for stdin
  std::string openpgp;  // import: bind this GnuPG key (a fingerprint or a JID)
  bool openpgp_given = false;
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

KeyKind kind_of(KeyType t) {
  return t == KeyType::rsa ? KeyKind::rsa : t == KeyType::dsa ? KeyKind::dsa : KeyKind::ed25519;
}

std::string_view text_of(const SecretBytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

bool is_encrypted_file(Context& ctx, const KeyRecord& k) {
  if (!k.path)
    return false;
  return PrivateKey::is_encrypted_pem(text_of(check(ctx.store().read_key_file(*k.path))));
}

// public_key_of returns a key's public half without asking for a passphrase: from the
// certificate, from GnuPG, from the public PEM kept beside an encrypted native key, or from an
// unencrypted key file.
PublicKey public_key_of(Context& ctx, const KeyRecord& k) {
  if (k.kind == KeyKind::x509)
    return check(check(Certificate::all_from_pem(string_of(view(k.data)))).front().public_key());
  if (k.kind == KeyKind::openpgp) {
    auto gpg = check(openpgp::GnuPG::open(ctx.globals().gnupg_home));
    return check(gpg.primary_key(string_of(view(k.data)))).key;
  }
  if (!k.data.empty())
    return check(PublicKey::from_pem(string_of(view(k.data))));
  return load_private_key(ctx, k).public_key();
}

// store_private_key writes |key| into the home, encrypted under |pass| when given, and records
// it with |kind|, |data| and |fpr|.
KeyRecord store_private_key(Context& ctx, const PrivateKey& key, KeyKind kind, ByteView data,
                            const std::string& fpr, const std::optional<SecretBytes>& pass,
                            bool make_default) {
  const Account& a = ctx.account();
  if (check(ctx.store().get_key(a.id, fpr)))
    fail_with(Errc::malformed, "the account already has key " + group_hex(fpr.substr(0, 16)));
  SecretBytes pem = pass ? check(key.pem_encrypted(view(*pass))) : key.pem();
  std::string rel = check(ctx.store().write_key_file(fpr.substr(0, 16) + ".pem", view(pem)));
  KeyRecord rec = check(ctx.store().add_key(a.id, kind, fpr, rel, data));
  if (make_default || !a.default_key)
    check(ctx.store().set_default_key(a.id, rec.id));
  ctx.status("KEY_CREATED", {key_kind_name(kind), fpr});
  return rec;
}

int run_generate(Context& ctx, const KeyOpts& o) {
  const Account& a = ctx.account();
  Result<PrivateKey> k = fail(Errc::malformed, "unknown key type '" + o.type + "'");
  if (o.type == "ed25519") {
    k = PrivateKey::generate_ed25519();
  } else if (o.type == "rsa") {
    if (o.bits < kMinRsaBits || o.bits > 8192)
      fail_with(Errc::malformed, "--bits must be between 2048 and 8192");
    k = PrivateKey::generate_rsa(o.bits);
  }
  PrivateKey key = check(std::move(k), "key types: ed25519, rsa");
  std::optional<SecretBytes> pass;
  if (o.protect)
    pass = read_passphrase(ctx, "passphrase for the new key", true);
  std::string fpr = fingerprint_of(key.public_key());
  std::string pub = key.public_key().pem();
  KeyRecord rec =
      store_private_key(ctx, key, kind_of(key.type()), view(pub), fpr, pass, o.make_default);
  ctx.info(std::string("created ") + (key.type() == KeyType::rsa ? "an RSA" : "an Ed25519") +
           " key for " + a.jid + " in " + ctx.store().home() + "/" + *rec.path +
           (pass ? " (passphrase-protected)" : ""));
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

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

// KeyFacts is what `key show` and `key fingerprint` print besides the fingerprint.
struct KeyFacts {
  std::string openpgp_fpr;  // OpenPGP keys
  std::optional<Certificate> cert;
};

KeyFacts facts_of(const KeyRecord& k) {
  KeyFacts f;
  if (k.kind == KeyKind::openpgp)
    f.openpgp_fpr = string_of(view(k.data));
  if (k.kind == KeyKind::x509)
    f.cert = check(Certificate::all_from_pem(string_of(view(k.data)))).front();
  return f;
}

int run_show(Context& ctx, const KeyOpts& o, bool only_fpr) {
  KeyRecord k = find_key(ctx, o.which);
  KeyFacts f = facts_of(k);
  if (only_fpr) {
    if (ctx.json()) {
      std::string extra;
      if (!f.openpgp_fpr.empty())
        extra = ",\"openpgp_fingerprint\":" + json_escape(f.openpgp_fpr);
      if (f.cert)
        extra = ",\"certificate_sha256\":" + json_escape(hex(f.cert->sha256()));
      std::printf("{\"fingerprint\":%s%s}\n", json_escape(k.fingerprint).c_str(), extra.c_str());
    } else {
      std::printf("%s\n", group_hex(k.fingerprint).c_str());
    }
    return kExitOk;
  }
  PublicKey pub = public_key_of(ctx, k);
  const Account& a = ctx.account();
  bool dflt = a.default_key && *a.default_key == k.id;
  bool protect = is_encrypted_file(ctx, k);
  std::string file = k.path ? ctx.store().home() + "/" + *k.path : "";
  if (ctx.json()) {
    std::string extra;
    if (!f.openpgp_fpr.empty())
      extra = ",\"openpgp_fingerprint\":" + json_escape(f.openpgp_fpr);
    if (f.cert)
      extra = ",\"certificate\":{\"subject\":" + json_escape(f.cert->subject()) +
              ",\"issuer\":" + json_escape(f.cert->issuer()) +
              ",\"not_before\":" + std::to_string(f.cert->not_before()) +
              ",\"not_after\":" + std::to_string(f.cert->not_after()) +
              ",\"sha256\":" + json_escape(hex(f.cert->sha256())) + "}";
    std::printf(
        "{\"type\":%s,\"algorithm\":%s,\"bits\":%d,\"fingerprint\":%s,\"default\":%s,"
        "\"file\":%s,\"protected\":%s%s}\n",
        json_escape(key_kind_name(k.kind)).c_str(),
        json_escape(key_kind_name(kind_of(pub.type()))).c_str(), pub.bits(),
        json_escape(k.fingerprint).c_str(), dflt ? "true" : "false", json_escape(file).c_str(),
        protect ? "true" : "false", extra.c_str());
    return kExitOk;
  }
  std::printf("type:        %s (%s, %d bits)\nfingerprint: %s\n",
              std::string(key_kind_name(k.kind)).c_str(),
              std::string(key_kind_name(kind_of(pub.type()))).c_str(), pub.bits(),
              group_hex(k.fingerprint).c_str());
  if (f.cert) {
    std::vector<std::string> names;
    for (const auto& n : f.cert->xmpp_addrs())
      names.push_back("xmpp:" + n);
    for (const auto& n : f.cert->uris())
      names.push_back(n);
    for (const auto& n : f.cert->dns_names())
      names.push_back("DNS:" + n);
    std::printf(
        "subject:     %s\nissuer:      %s\nnames:       %s\nvalid:       %s to %s\n"
        "certificate: %s (SHA-256)\n",
        f.cert->subject().c_str(), f.cert->issuer().c_str(), join(names).c_str(),
        utc_time(f.cert->not_before()).c_str(), utc_time(f.cert->not_after()).c_str(),
        group_hex(hex(f.cert->sha256())).c_str());
  }
  if (!f.openpgp_fpr.empty())
    std::printf("OpenPGP:     %s (in GnuPG)\n", group_hex(f.openpgp_fpr).c_str());
  if (k.path)
    std::printf("file:        %s%s\n", file.c_str(), protect ? " (passphrase-protected)" : "");
  std::printf("default:     %s\n", dflt ? "yes" : "no");
  return kExitOk;
}

int run_export(Context& ctx, const KeyOpts& o) {
  KeyRecord k = find_key(ctx, o.which);
  if (k.kind == KeyKind::openpgp) {
    if (o.secret)
      fail_with(Errc::unsupported, "OpenPGP secret keys stay in GnuPG",
                "export it with: gpg --export-secret-keys " + string_of(view(k.data)));
    auto gpg = check(openpgp::GnuPG::open(ctx.globals().gnupg_home));
    std::fputs(check(gpg.export_public_armored(string_of(view(k.data)))).c_str(), stdout);
    return kExitOk;
  }
  if (o.secret) {
    // The file as stored: an encrypted key stays encrypted.
    SecretBytes pem = check(ctx.store().read_key_file(*k.path));
    std::fwrite(pem.data(), 1, pem.size(), stdout);
  }
  if (k.kind == KeyKind::x509)
    std::fwrite(k.data.data(), 1, k.data.size(), stdout);  // the certificate chain
  else if (!o.secret)
    std::fputs(public_key_of(ctx, k).pem().c_str(), stdout);
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

// import_openpgp binds a secret key of GnuPG, named by fingerprint or by its xmpp: User ID.
int import_openpgp(Context& ctx, const KeyOpts& o) {
  const Account& a = ctx.account();
  auto gpg = check(openpgp::GnuPG::open(ctx.globals().gnupg_home));
  std::string which = o.openpgp.empty() ? bare_jid(a.jid) : o.openpgp;
  std::string fpr =
      check(gpg.find_secret_key(which),
            "make one with: gpg --quick-gen-key xmpp:" + bare_jid(a.jid) + " ed25519 sign");
  openpgp::KeyPacket p = check(gpg.primary_key(fpr));
  std::string ours = fingerprint_of(p.key);
  if (check(ctx.store().get_key(a.id, ours)))
    fail_with(Errc::malformed, "the account already has key " + group_hex(ours.substr(0, 16)));
  KeyRecord rec = check(ctx.store().add_key(a.id, KeyKind::openpgp, ours, std::nullopt, view(fpr)));
  if (o.make_default || !a.default_key)
    check(ctx.store().set_default_key(a.id, rec.id));
  ctx.status("KEY_CREATED", {"openpgp", ours});
  ctx.info("bound the OpenPGP key " + group_hex(fpr) + " (it stays in GnuPG)");
  std::printf("%s\n", group_hex(ours).c_str());
  return kExitOk;
}

int run_import(Context& ctx, const KeyOpts& o) {
  if (o.openpgp_given) {
    if (!o.file.empty())
      fail_with(Errc::malformed, "give either a file or --openpgp, not both");
    return import_openpgp(ctx, o);
  }
  if (o.file.empty())
    fail_with(Errc::malformed, "name a PEM or PKCS#12 file (or - for stdin), or use --openpgp");
  SecretBytes data = read_all(o.file);
  std::string_view text = text_of(data);
  bool pem = text.find("-----BEGIN ") != std::string_view::npos;
  bool has_cert = text.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos;
  // The passphrase is asked for only when the file needs one, and then protects the stored
  // copy too.
  std::optional<SecretBytes> pass;
  if (o.protect || (pem && PrivateKey::is_encrypted_pem(text)))
    pass = read_passphrase(ctx, "passphrase for the key", o.protect);
  if (has_cert || !pem) {
    auto id = load_x509_identity(
        view(data), pass ? std::optional<ByteView>(view(*pass)) : std::optional<ByteView>());
    if (!id && id.error().code == Errc::not_acceptable && !pass) {
      pass = read_passphrase(ctx, "passphrase for " + o.file);
      id = load_x509_identity(view(data), view(*pass));
    }
    X509Identity xi = check(std::move(id),
                            "give a certificate (leaf first, then intermediates) and its private "
                            "key in PEM, or a PKCS#12 file");
    PublicKey pub = check(xi.chain.front().public_key());
    std::string chain;
    for (const auto& c : xi.chain)
      chain += c.pem();
    std::string fpr = fingerprint_of(pub);
    store_private_key(ctx, xi.key, KeyKind::x509, view(chain), fpr, pass, o.make_default);
    ctx.info("imported an X.509 identity for " + ctx.account().jid + ": " +
             xi.chain.front().subject());
    if (!x509_names_jid(xi.chain.front(), bare_jid(ctx.account().jid)))
      ctx.warn("the certificate does not name " + bare_jid(ctx.account().jid) +
               " (XmppAddr or xmpp: URI): peers will not count it as valid");
    std::printf("%s\n", group_hex(fpr).c_str());
    return kExitOk;
  }
  std::optional<ByteView> pv;
  if (pass)
    pv = view(*pass);
  PrivateKey key = check(PrivateKey::from_pem(text, pv),
                         "give a PKCS#8 or traditional PEM private key (RSA, DSA or Ed25519)");
  std::string fpr = fingerprint_of(key.public_key());
  std::string pub = key.public_key().pem();
  // Stored as we write keys ourselves (PKCS#8, scrypt when protected), whatever PEM flavour it
  // came in.
  store_private_key(ctx, key, kind_of(key.type()), view(pub), fpr, pass, o.make_default);
  ctx.info("imported a " + std::string(key_kind_name(kind_of(key.type()))) + " key for " +
           ctx.account().jid + (pass ? " (passphrase-protected)" : ""));
  std::printf("%s\n", group_hex(fpr).c_str());
  return kExitOk;
}

int run_delete(Context& ctx, const KeyOpts& o) {
  if (o.which.empty())
    fail_with(Errc::malformed, "name the key to delete by its fingerprint");
  KeyRecord k = find_key(ctx, o.which);
  check(ctx.store().delete_key(k.id));
  ctx.status("KEY_DELETED", {k.fingerprint});
  ctx.info("deleted key " + group_hex(k.fingerprint) +
           (k.kind == KeyKind::openpgp ? " (the OpenPGP key stays in GnuPG)" : ""));
  return kExitOk;
}

}  // namespace

void add_key(CLI::App& app, Context& ctx, Action& action) {
  auto o = std::make_shared<KeyOpts>();
  auto* key = app.add_subcommand("key", "manage the keys we identify with");
  key->require_subcommand(1);
  auto* gen = key->add_subcommand("generate", "create a signing key (Ed25519 or RSA)");
  value_is(gen->add_option("--type", o->type, "ed25519 (default) or rsa"), ValueKind::choice,
           {"ed25519", "rsa"});
  gen->add_option("--bits", o->bits, "RSA modulus size (default 3072)");
  gen->add_flag("--default", o->make_default, "make it the account's default key");
  gen->add_flag("--protect", o->protect, "encrypt the key file under a passphrase (scrypt)");
  gen->callback([&ctx, &action, o] { action = [&ctx, o] { return run_generate(ctx, *o); }; });
  auto* list = key->add_subcommand("list", "list the account's keys");
  list->callback([&ctx, &action] { action = [&ctx] { return run_list(ctx); }; });
  auto* show = key->add_subcommand("show", "show a key (default: the default key)");
  show->add_option("key", o->which, "fingerprint or a unique prefix of it");
  show->callback([&ctx, &action, o] { action = [&ctx, o] { return run_show(ctx, *o, false); }; });
  auto* fp = key->add_subcommand("fingerprint", "print a key's SHA-256 fingerprint");
  fp->add_option("key", o->which, "fingerprint or a unique prefix of it");
  fp->callback([&ctx, &action, o] { action = [&ctx, o] { return run_show(ctx, *o, true); }; });
  auto* exp = key->add_subcommand(
      "export", "write a key to stdout: the public key, certificate chain or OpenPGP key");
  exp->add_option("key", o->which, "fingerprint or a unique prefix of it");
  exp->add_flag("--secret", o->secret, "also the private key file, as stored (native, X.509)");
  exp->callback([&ctx, &action, o] { action = [&ctx, o] { return run_export(ctx, *o); }; });
  auto* imp = key->add_subcommand(
      "import", "import a private key or X.509 identity (PEM, PKCS#12), or bind an OpenPGP key");
  value_is(imp->add_option("file", o->file, "the PEM or PKCS#12 file, or - for stdin"),
           ValueKind::file);
  imp->add_option("--openpgp", o->openpgp,
                  "bind a GnuPG secret key: its fingerprint, or a JID for User ID xmpp:JID "
                  "(default: the account's)")
      ->expected(0, 1);
  imp->add_flag("--default", o->make_default, "make it the account's default key");
  imp->add_flag("--protect", o->protect, "encrypt the stored key under a passphrase (scrypt)");
  imp->callback([&ctx, &action, o, imp] {
    action = [&ctx, o, imp] {
      o->openpgp_given = imp->count("--openpgp") > 0;
      return run_import(ctx, *o);
    };
  });
  auto* del = key->add_subcommand("delete", "delete a key and its file");
  del->add_option("key", o->which, "fingerprint or a unique prefix of it")->required();
  del->callback([&ctx, &action, o] { action = [&ctx, o] { return run_delete(ctx, *o); }; });
}

}  // namespace esession::cli
