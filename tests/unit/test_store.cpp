// The home directory and the state database: permissions, migrations, the typed API, and the
// counter-reservation guarantee of update_session across processes and SIGKILL.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>

#include "store/sqlite.hpp"
#include "store/store.hpp"
#include "util/fs.hpp"

using namespace esession;

namespace {

namespace sfs = std::filesystem;

// TempDir is a fresh private directory, removed with everything in it at the end of a test.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/esession-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    sfs::remove_all(path, ec);
  }
  std::string sub(const std::string& name) const { return path + "/" + name; }
};

unsigned mode_of(const std::string& path) {
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

SecretBytes counter_blob(uint64_t v) {
  SecretBytes b(8);
  for (int i = 0; i < 8; ++i)
    b[static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (56 - 8 * i));
  return b;
}

uint64_t counter_of(const SecretBytes& b) {
  uint64_t v = 0;
  for (uint8_t c : b)
    v = v << 8 | c;
  return v;
}

// increment reserves the next counter value in the session blob and returns it.
Result<uint64_t> increment(Store& store, int64_t id) {
  return store.update_session(id, [](SecretBytes& state) -> Result<uint64_t> {
    if (state.size() != 8)
      return fail(Errc::malformed, "bad counter blob");
    uint64_t next = counter_of(state) + 1;
    state = counter_blob(next);
    return next;
  });
}

// read_counter reads the counter without changing it (the function fails on purpose, so the
// transaction rolls back).
uint64_t read_counter(Store& store, int64_t id) {
  uint64_t seen = 0;
  auto r = store.update_session(id, [&](SecretBytes& state) -> Status {
    seen = counter_of(state);
    return fail(Errc::wrong_state, "read only");
  });
  REQUIRE_FALSE(r);
  REQUIRE(r.error().detail == "read only");
  return seen;
}

// make_counter_session creates an account and a session whose blob is a zero counter.
int64_t make_counter_session(const std::string& home) {
  auto store = Store::open(home);
  REQUIRE(store);
  auto acct = store->create_account("alice@example.org/pda");
  REQUIRE(acct);
  auto s =
      store->create_session(NewSession{acct->id, "bob@example.com/laptop", "t1"}, counter_blob(0));
  REQUIRE(s);
  return s->id;
}

// child_loop runs in a forked child: |n| increments (forever if n < 0), each reserved value
// written to |fd| after update_session returned. Exits without running any destructor of the
// parent's objects.
[[noreturn]] void child_loop(const std::string& home, int64_t id, int n, int fd) {
  auto store = Store::open(home);
  if (!store) {
    std::fprintf(stderr, "child: %s\n", store.error().detail.c_str());
    ::_exit(2);
  }
  for (int i = 0; n < 0 || i < n; ++i) {
    auto v = increment(*store, id);
    if (!v) {
      std::fprintf(stderr, "child: %s\n", v.error().detail.c_str());
      ::_exit(3);
    }
    uint64_t value = v.value();
    if (::write(fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value))
      ::_exit(4);
  }
  ::_exit(0);
}

std::vector<uint64_t> read_values(int fd) {
  std::vector<uint64_t> out;
  uint64_t v;
  for (;;) {
    ssize_t n = ::read(fd, &v, sizeof v);
    if (n == 0)
      return out;
    if (n < 0 && errno == EINTR)
      continue;
    REQUIRE(n == static_cast<ssize_t>(sizeof v));
    out.push_back(v);
  }
}

}  // namespace

TEST_CASE("home resolution: --home, ESESSION_HOME, XDG_DATA_HOME, HOME") {
  fs::HomeEnv env{"/e", "/x", "/h"};
  CHECK(fs::resolve_home(std::string("/explicit"), env).value() == "/explicit");
  CHECK(fs::resolve_home(std::string(""), env).error().code == Errc::malformed);
  CHECK(fs::resolve_home(std::nullopt, env).value() == "/e");
  env.esession_home.clear();
  CHECK(fs::resolve_home(std::nullopt, env).value() == "/x/esession");
  env.xdg_data_home = "relative/ignored";
  CHECK(fs::resolve_home(std::nullopt, env).value() == "/h/.local/share/esession");
  env.user_home.clear();
  CHECK(fs::resolve_home(std::nullopt, env).error().code == Errc::io);
}

TEST_CASE("a fresh home: 0700 directory, 0600 database in WAL mode, current schema") {
  TempDir t;
  const std::string home = t.sub("a/b/home");  // missing parents are created too
  {
    auto store = Store::open(home);
    REQUIRE(store);
    CHECK(store->schema_version().value() == Store::kSchemaVersion);
    REQUIRE(store->create_account("alice@example.org/pda"));
  }
  CHECK(mode_of(home) == 0700);
  CHECK(mode_of(t.sub("a")) == 0700);
  CHECK(mode_of(home + "/esession.db") == 0600);
  if (fs::exists(home + "/esession.db-wal"))
    CHECK(mode_of(home + "/esession.db-wal") == 0600);
  auto again = Store::open(home);
  REQUIRE(again);
  CHECK(again->list_accounts().value().size() == 1);
  auto db = sql::Db::open(home + "/esession.db", 1000);
  REQUIRE(db);
  auto jm = db->prepare("PRAGMA journal_mode");
  REQUIRE(jm);
  REQUIRE(jm->step().value());
  CHECK(jm->column_text(0) == "wal");
}

TEST_CASE("migrations run from an empty database; foreign or newer databases are refused") {
  TempDir t;
  const std::string home = t.sub("home");
  REQUIRE(fs::ensure_private_dir(home));
  const std::string db_path = home + "/esession.db";

  SECTION("an existing empty file is migrated") {
    REQUIRE(fs::write_file_exclusive(db_path, {}));
    auto store = Store::open(home);
    REQUIRE(store);
    CHECK(store->schema_version().value() == Store::kSchemaVersion);
  }
  SECTION("a database of something else is left alone") {
    REQUIRE(fs::write_file_exclusive(db_path, {}));
    {
      auto db = sql::Db::open(db_path, 1000);
      REQUIRE(db);
      REQUIRE(db->exec("CREATE TABLE other (x)"));
    }
    auto store = Store::open(home);
    REQUIRE_FALSE(store);
    CHECK(store.error().code == Errc::io);
    CHECK(contains(store.error().detail, "not an esession database"));
  }
  SECTION("a file that is not a database") {
    std::string junk = "this is not a database, just some text that is long enough.....";
    junk.resize(4096, 'x');
    REQUIRE(fs::write_file_exclusive(db_path, view(junk)));
    auto store = Store::open(home);
    REQUIRE_FALSE(store);
    CHECK(store.error().code == Errc::io);
    CHECK(contains(store.error().detail, db_path));
  }
  SECTION("a newer schema version") {
    {
      auto store = Store::open(home);
      REQUIRE(store);
    }
    {
      auto db = sql::Db::open(db_path, 1000);
      REQUIRE(db);
      REQUIRE(db->exec("INSERT INTO schema_version (version, applied) VALUES (99, 0)"));
    }
    auto store = Store::open(home);
    REQUIRE_FALSE(store);
    CHECK(store.error().code == Errc::io);
    CHECK(contains(store.error().detail, "schema version 99 is newer"));
    // Untouched: the version is still 99 and the tables are there.
    auto db = sql::Db::open(db_path, 1000);
    REQUIRE(db);
    auto v =
        db->prepare("SELECT max(version), (SELECT count(*) FROM accounts) FROM schema_version");
    REQUIRE(v);
    REQUIRE(v->step().value());
    CHECK(v->column_int64(0) == 99);
  }
  SECTION("a version 1 database is brought to the current version, keeping its data") {
    {
      auto store = Store::open(home);
      REQUIRE(store);
      int64_t acct = store->create_account("alice@example.org/pda")->id;
      REQUIRE(store->record_peer_key(acct, "bob@example.com", "fp1", TrustSource::sas, true));
    }
    {
      // Undo migrations 3 and 2 by hand: what a database of esession 0.1 (schema v1) looks
      // like.
      auto db = sql::Db::open(db_path, 1000);
      REQUIRE(db);
      REQUIRE(db->exec("DROP INDEX accounts_one_default"));
      REQUIRE(db->exec("ALTER TABLE accounts DROP COLUMN is_default"));
      REQUIRE(db->exec("DELETE FROM schema_version WHERE version = 3"));
      for (const char* c : {"pki_kind", "pki_status", "pki_detail", "pki_checked"})
        REQUIRE(db->exec(std::string("ALTER TABLE peer_keys DROP COLUMN ") + c));
      REQUIRE(db->exec("DELETE FROM schema_version WHERE version = 2"));
    }
    auto store = Store::open(home);
    REQUIRE(store);
    CHECK(store->schema_version().value() == Store::kSchemaVersion);
    auto acct = store->get_account("alice@example.org/pda").value();
    REQUIRE(acct);
    CHECK_FALSE(acct->is_default);
    auto peer = store->get_peer(acct->id, "bob@example.com").value();
    REQUIRE(peer);
    auto t1 = store->get_trust(peer->id, "fp1").value();
    REQUIRE(t1);
    CHECK(t1->verified);
    CHECK(t1->pki_kind.empty());
    CHECK(store->set_key_pki(t1->id, "openpgp", "valid", "ABCD"));
  }
}

TEST_CASE("the default account: at most one, migrated from version 2") {
  TempDir t;
  const std::string home = t.sub("home");
  const std::string db_path = home + "/esession.db";
  int64_t a = 0, b = 0;
  {
    auto store = Store::open(home);
    REQUIRE(store);
    a = store->create_account("alice@example.org/pda")->id;
    b = store->create_account("alice@example.org/phone")->id;
  }
  {
    // A version 2 database has no is_default column (and none of version 4's tables).
    auto db = sql::Db::open(db_path, 1000);
    REQUIRE(db);
    REQUIRE(db->exec("DROP TABLE offline_seen"));
    REQUIRE(db->exec("DROP TABLE offline_sets"));
    REQUIRE(db->exec("DROP INDEX accounts_one_default"));
    REQUIRE(db->exec("ALTER TABLE accounts DROP COLUMN is_default"));
    REQUIRE(db->exec("DELETE FROM schema_version WHERE version >= 3"));
  }
  auto store = Store::open(home);
  REQUIRE(store);
  CHECK(store->schema_version().value() == Store::kSchemaVersion);
  auto defaults = [&] {
    std::vector<int64_t> out;
    auto all = store->list_accounts();
    REQUIRE(all);
    for (const auto& acc : *all)
      if (acc.is_default)
        out.push_back(acc.id);
    return out;
  };
  CHECK(defaults().empty());
  REQUIRE(store->set_default_account(a));
  CHECK(defaults() == std::vector<int64_t>{a});
  REQUIRE(store->set_default_account(b));
  CHECK(defaults() == std::vector<int64_t>{b});
  CHECK(store->get_account("alice@example.org/phone").value()->is_default);
  CHECK(store->set_default_account(b + 100).error().code == Errc::wrong_state);
  CHECK(defaults() == std::vector<int64_t>{b});  // a failed change keeps the old default
  REQUIRE(store->set_default_account(std::nullopt));
  CHECK(defaults().empty());
}

TEST_CASE("permission refusals: home, database and key files readable by others") {
  TempDir t;
  const std::string home = t.sub("home");
  REQUIRE(Store::open(home));

  SECTION("home 0755") {
    REQUIRE(::chmod(home.c_str(), 0755) == 0);
    auto store = Store::open(home);
    REQUIRE_FALSE(store);
    CHECK(store.error().code == Errc::io);
    CHECK(contains(store.error().detail, home));
    CHECK(contains(store.error().detail, "chmod 700 " + home));
  }
  SECTION("database 0644") {
    REQUIRE(::chmod((home + "/esession.db").c_str(), 0644) == 0);
    auto store = Store::open(home);
    REQUIRE_FALSE(store);
    CHECK(contains(store.error().detail, "chmod 600 " + home + "/esession.db"));
  }
  SECTION("key file 0644") {
    auto store = Store::open(home);
    REQUIRE(store);
    auto rel = store->write_key_file("k.pem", view(std::string_view("-----BEGIN PRIVATE KEY")));
    REQUIRE(rel);
    CHECK(mode_of(home + "/" + rel.value()) == 0600);
    CHECK(mode_of(home + "/keys") == 0700);
    REQUIRE(store->read_key_file(rel.value()));
    REQUIRE(::chmod((home + "/" + rel.value()).c_str(), 0640) == 0);
    auto r = store->read_key_file(rel.value());
    REQUIRE_FALSE(r);
    CHECK(contains(r.error().detail, "chmod 600"));
    CHECK(fs::check_private_file(home + "/" + rel.value()).error().code == Errc::io);
    CHECK(store->read_key_file("../outside.pem").error().code == Errc::malformed);
  }
  SECTION("a symbolic link instead of the database") {
    REQUIRE(::rename((home + "/esession.db").c_str(), (home + "/real.db").c_str()) == 0);
    REQUIRE(::symlink("real.db", (home + "/esession.db").c_str()) == 0);
    auto store = Store::open(home);
    REQUIRE_FALSE(store);
    CHECK(contains(store.error().detail, "symbolic link"));
  }
}

TEST_CASE("key files are created exclusively; atomic_replace replaces whole files") {
  TempDir t;
  const std::string home = t.sub("home");
  auto store = Store::open(home);
  REQUIRE(store);
  REQUIRE(store->write_key_file("a.pem", view(std::string_view("first"))));
  auto again = store->write_key_file("a.pem", view(std::string_view("second")));
  REQUIRE_FALSE(again);
  CHECK(again.error().code == Errc::io);
  CHECK(contains(again.error().detail, "already exists"));
  CHECK(string_of(view(store->read_key_file("keys/a.pem").value())) == "first");
  // A symbolic link in the way is not followed.
  REQUIRE(::symlink("/tmp/esession-should-not-exist", (home + "/keys/b.pem").c_str()) == 0);
  CHECK_FALSE(store->write_key_file("b.pem", view(std::string_view("x"))));
  CHECK_FALSE(fs::exists("/tmp/esession-should-not-exist"));
  for (const char* bad : {"../x.pem", ".hidden", "a/b", "", "sp ace"})
    CHECK(store->write_key_file(bad, {}).error().code == Errc::malformed);

  const std::string f = t.sub("file");
  REQUIRE(fs::atomic_replace(f, view(std::string_view("one"))));
  REQUIRE(fs::atomic_replace(f, view(std::string_view("two"))));
  CHECK(mode_of(f) == 0600);
  CHECK(string_of(view(fs::read_private_file(f).value())) == "two");
  CHECK(sfs::directory_iterator(t.path) != sfs::directory_iterator());
  for (const auto& e : sfs::directory_iterator(t.path))
    CHECK_FALSE(contains(e.path().filename().string(), ".tmp."));
}

TEST_CASE("accounts and keys") {
  TempDir t;
  auto store = Store::open(t.sub("home"));
  REQUIRE(store);
  auto a = store->create_account("alice@example.org/pda");
  REQUIRE(a);
  CHECK(store->create_account("alice@example.org/pda").error().code == Errc::wrong_state);
  CHECK(store->create_account("").error().code == Errc::malformed);
  CHECK(store->get_account("alice@example.org/pda").value()->id == a->id);
  CHECK_FALSE(store->get_account("nobody@example.org").value());

  auto rel = store->write_key_file("ed.pem", view(std::string_view("pem")));
  REQUIRE(rel);
  auto k = store->add_key(a->id, KeyKind::ed25519, "SHA256:abc", rel.value());
  REQUIRE(k);
  CHECK(store->add_key(a->id, KeyKind::rsa, "SHA256:abc", std::nullopt).error().code ==
        Errc::wrong_state);
  CHECK(store->add_key(a->id, KeyKind::rsa, "", std::nullopt).error().code == Errc::malformed);
  Bytes cert = {1, 2, 3};
  auto k2 = store->add_key(a->id, KeyKind::x509, "SHA256:def", std::nullopt, cert);
  REQUIRE(k2);
  CHECK(store->list_keys(a->id).value().size() == 2);
  CHECK(store->get_key(a->id, "SHA256:def").value()->data == cert);
  CHECK(store->get_key_by_id(k->id).value()->path == rel.value());

  REQUIRE(store->set_default_key(a->id, k->id));
  CHECK(store->get_account("alice@example.org/pda").value()->default_key == k->id);
  REQUIRE(store->delete_key(k->id));
  CHECK_FALSE(store->get_account("alice@example.org/pda").value()->default_key);
  CHECK_FALSE(fs::exists(t.sub("home/keys/ed.pem")));
  CHECK(store->delete_key(k->id).error().code == Errc::wrong_state);
}

TEST_CASE("peers, trust records, retained secrets; forget removes everything of a peer") {
  TempDir t;
  int64_t clock = 1000;
  StoreOptions opts;
  opts.clock = [&] { return clock; };
  auto store = Store::open(t.sub("home"), opts);
  REQUIRE(store);
  int64_t acct = store->create_account("alice@example.org/pda")->id;

  CHECK(store->upsert_peer(acct, "bob@example.com/laptop").error().code == Errc::malformed);
  auto bob = store->upsert_peer(acct, "bob@example.com");
  REQUIRE(bob);
  CHECK(bob->first_seen == 1000);
  REQUIRE(store->set_peer_notes(bob->id, "met at FOSDEM"));
  clock = 2000;
  CHECK(store->upsert_peer(acct, "bob@example.com")->first_seen == 1000);

  // An unverified sighting never lowers a verified record.
  auto tr = store->record_peer_key(acct, "bob@example.com", "fp1", TrustSource::tofu, false);
  REQUIRE(tr);
  CHECK_FALSE(tr->verified);
  tr = store->record_peer_key(acct, "bob@example.com", "fp1", TrustSource::sas, true);
  CHECK(tr->verified);
  CHECK(tr->source == TrustSource::sas);
  clock = 3000;
  tr = store->record_peer_key(acct, "bob@example.com", "fp1", TrustSource::tofu, false);
  CHECK(tr->verified);
  CHECK(tr->source == TrustSource::sas);
  CHECK(tr->first_seen == 2000);
  CHECK(tr->last_seen == 3000);
  REQUIRE(store->set_trust(tr->id, TrustSource::pinned, false));
  CHECK_FALSE(store->get_trust(bob->id, "fp1").value()->verified);
  CHECK(store->list_trust(bob->id).value().size() == 1);
  // What a PKI said of the key, recorded with the time; an unknown kind is refused.
  CHECK(store->get_trust(bob->id, "fp1").value()->pki_kind.empty());
  REQUIRE(store->set_key_pki(tr->id, "x509", "valid", "CN=bob; issued by CN=CA"));
  auto pk = store->get_trust(bob->id, "fp1").value();
  CHECK(pk->pki_kind == "x509");
  CHECK(pk->pki_status == "valid");
  CHECK(pk->pki_detail == "CN=bob; issued by CN=CA");
  CHECK(pk->pki_checked == 3000);
  CHECK(store->set_key_pki(tr->id, "pgp", "valid", "").error().code == Errc::malformed);
  CHECK(store->set_key_pki(tr->id + 100, "x509", "valid", "").error().code == Errc::wrong_state);

  // Retained secrets: one per peer client, replaced atomically, verification inherited.
  auto rs =
      store->replace_retained(acct, "bob@example.com", "laptop", SecretBytes(32, 1), std::nullopt);
  REQUIRE(rs);
  REQUIRE(store->mark_retained_verified(rs->id));
  REQUIRE(
      store->replace_retained(acct, "bob@example.com", "phone", SecretBytes(32, 2), std::nullopt));
  REQUIRE(
      store->replace_retained(acct, "carol@example.net", "pc", SecretBytes(32, 3), std::nullopt));
  auto next =
      store->replace_retained(acct, "bob@example.com", "laptop", SecretBytes(32, 4), rs->id);
  REQUIRE(next);
  CHECK(next->sas_verified);
  auto mine = store->retained_for_peer(acct, "bob@example.com");
  REQUIRE(mine);
  REQUIRE(mine->size() == 2);
  for (const auto& r : mine.value())
    CHECK(r.secret != SecretBytes(32, 1));
  auto others = store->retained_for_other_peers(acct, "bob@example.com");
  REQUIRE(others->size() == 1);
  CHECK(others->front().peer_jid == "carol@example.net");
  CHECK(store->retained_for_peer(acct, "bob@example.com", 4000)->empty());
  // A match from another peer's secrets moves the chain to this peer.
  REQUIRE(store->replace_retained(acct, "bob@example.com", "tablet", SecretBytes(32, 5),
                                  others->front().id));
  CHECK(store->retained_for_other_peers(acct, "bob@example.com")->empty());

  auto s = store->create_session(NewSession{acct, "bob@example.com/laptop", "th"}, counter_blob(0));
  REQUIRE(s);
  REQUIRE(store->put_negotiation(acct, "bob@example.com/phone", "th2", SecretBytes(4, 7)));
  auto carol_s =
      store->create_session(NewSession{acct, "carol@example.net/pc", "th"}, counter_blob(0));
  REQUIRE(carol_s);

  CHECK(store->forget_peer(acct, "bob@example.com").value());
  CHECK_FALSE(store->forget_peer(acct, "bob@example.com").value());
  CHECK_FALSE(store->get_peer(acct, "bob@example.com").value());
  CHECK(store->retained_for_peer(acct, "bob@example.com")->empty());
  CHECK_FALSE(store->get_session(s->id).value());
  CHECK(store->list_negotiations(acct)->empty());
  CHECK(store->get_trust(bob->id, "fp1").value() == std::nullopt);
  // Carol is untouched.
  CHECK(store->get_session(carol_s->id).value());
  CHECK(store->list_peers(acct)->size() == 1);
}

TEST_CASE("sessions: create, find, status, delete") {
  TempDir t;
  int64_t clock = 100;
  StoreOptions opts;
  opts.clock = [&] { return clock; };
  auto store = Store::open(t.sub("home"), opts);
  REQUIRE(store);
  int64_t acct = store->create_account("alice@example.org/pda")->id;
  const std::string bob = "bob@example.com/laptop";

  auto s1 = store->create_session(NewSession{acct, bob, "t1"}, counter_blob(1));
  REQUIRE(s1);
  clock = 200;
  auto s2 = store->create_session(
      NewSession{acct, bob, "t2", SessionRole::responder, SessionFlow::three_message},
      counter_blob(2));
  REQUIRE(s2);
  CHECK(store->create_session(NewSession{acct, bob, "t1"}, counter_blob(9)).error().code ==
        Errc::wrong_state);
  CHECK(store->create_session(NewSession{acct, "", "t1"}, counter_blob(9)).error().code ==
        Errc::malformed);

  CHECK(store->find_session(acct, bob, "t2").value()->role == SessionRole::responder);
  CHECK(store->find_session(acct, bob, "t2").value()->flow == SessionFlow::three_message);
  CHECK(store->find_active_session(acct, bob).value()->id == s2->id);
  clock = 300;
  // Using (or looking at) a session never changes which one is selected: the newest.
  REQUIRE(increment(*store, s1->id));
  CHECK(store->find_active_session(acct, bob).value()->id == s2->id);
  REQUIRE(store->set_session_status(s2->id, SessionStatus::ended));
  CHECK(store->find_active_session(acct, bob).value()->id == s1->id);
  REQUIRE(store->set_session_status(s2->id, SessionStatus::active));
  REQUIRE(store->set_session_status(s1->id, SessionStatus::ended));
  CHECK(store->find_active_session(acct, bob).value()->id == s2->id);
  // Listed newest first; found by thread whatever the peer.
  CHECK(store->list_sessions(acct)->front().id == s2->id);
  CHECK(store->find_sessions_by_thread(acct, "t1")->size() == 1);
  CHECK(store->find_sessions_by_thread(acct, "t9")->empty());
  // read_session_state reads without writing: |updated| stays.
  clock = 400;
  auto before = store->get_session(s2->id).value();
  CHECK(store->read_session_state(s2->id).value() == counter_blob(2));
  CHECK(store->get_session(s2->id).value()->updated == before->updated);
  CHECK(store->read_session_state(999).error().code == Errc::no_session);
  CHECK_FALSE(store->find_active_session(acct, "bob@example.com/phone").value());
  // An ended session's thread can be reused.
  auto s3 = store->create_session(NewSession{acct, bob, "t1"}, counter_blob(5));
  REQUIRE(s3);
  CHECK_FALSE(store->get_session(s1->id).value());
  CHECK(store->list_sessions(acct)->size() == 2);
  REQUIRE(store->delete_session(s2->id));
  CHECK(store->delete_session(s2->id).error().code == Errc::no_session);
  CHECK(store->list_sessions(acct)->size() == 1);
}

TEST_CASE("update_session: commit on success, rollback on failure") {
  TempDir t;
  const std::string home = t.sub("home");
  int64_t id = make_counter_session(home);
  auto store = Store::open(home);
  REQUIRE(store);
  CHECK(increment(*store, id).value() == 1);
  CHECK(increment(*store, id).value() == 2);

  auto failed = store->update_session(id, [](SecretBytes& state) -> Result<int> {
    state = counter_blob(1000);  // modified, then the function fails
    return fail(Errc::auth_failed, "bad MAC");
  });
  REQUIRE_FALSE(failed);
  CHECK(failed.error().code == Errc::auth_failed);
  CHECK(failed.error().detail == "bad MAC");
  CHECK(read_counter(*store, id) == 2);

  // The status can change in the same transaction, and is rolled back with the state.
  auto ended = store->update_session(id, [](SecretBytes&, SessionStatus& status) -> Status {
    status = SessionStatus::closing;
    return {};
  });
  REQUIRE(ended);
  CHECK(store->get_session(id).value()->status == SessionStatus::closing);
  auto nope = store->update_session(id, [](SecretBytes&, SessionStatus& status) -> Status {
    status = SessionStatus::ended;
    return fail(Errc::internal, "no");
  });
  REQUIRE_FALSE(nope);
  CHECK(store->get_session(id).value()->status == SessionStatus::closing);

  CHECK(increment(*store, 999).error().code == Errc::no_session);

  // Another process holding the write lock makes us wait, then we proceed.
  auto other = sql::Db::open(home + "/esession.db", 1000);
  REQUIRE(other);
  REQUIRE(other->exec("BEGIN IMMEDIATE"));
  StoreOptions quick;
  quick.busy_timeout_ms = 200;
  auto impatient = Store::open(home, quick);
  REQUIRE(impatient);
  auto busy = increment(*impatient, id);
  REQUIRE_FALSE(busy);
  CHECK(busy.error().code == Errc::io);
  REQUIRE(other->exec("COMMIT"));
  CHECK(increment(*impatient, id).value() == 3);
}

TEST_CASE("8 processes x 200 update_session calls never reuse a counter") {
  TempDir t;
  const std::string home = t.sub("home");
  int64_t id = make_counter_session(home);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  constexpr int kChildren = 8, kEach = 200;
  std::vector<pid_t> pids;
  for (int c = 0; c < kChildren; ++c) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      child_loop(home, id, kEach, fds[1]);
    }
    pids.push_back(pid);
  }
  ::close(fds[1]);
  std::vector<uint64_t> values = read_values(fds[0]);
  ::close(fds[0]);
  for (pid_t pid : pids) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  std::set<uint64_t> unique(values.begin(), values.end());
  CHECK(values.size() == kChildren * kEach);
  CHECK(unique.size() == values.size());
  CHECK(*unique.begin() == 1);
  CHECK(*unique.rbegin() == kChildren * kEach);
  auto store = Store::open(home);
  REQUIRE(store);
  CHECK(read_counter(*store, id) == kChildren * kEach);
}

TEST_CASE("SIGKILL at random moments: the database opens and counters never go back") {
  TempDir t;
  const std::string home = t.sub("home");
  int64_t id = make_counter_session(home);
  std::mt19937 prng(12345);
  std::set<uint64_t> reported;
  uint64_t last_db = 0;
  constexpr int kRounds = 60;
  int progressed = 0;
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pids[2];
    for (pid_t& pid : pids) {
      pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        ::close(fds[0]);
        child_loop(home, id, -1, fds[1]);
      }
    }
    ::close(fds[1]);
    ::usleep(static_cast<useconds_t>(std::uniform_int_distribution<int>(1000, 40000)(prng)));
    for (pid_t pid : pids)
      ::kill(pid, SIGKILL);
    for (pid_t pid : pids) {
      int status = 0;
      REQUIRE(::waitpid(pid, &status, 0) == pid);
      CHECK(WIFSIGNALED(status));  // killed, not failed on its own
    }
    std::vector<uint64_t> values = read_values(fds[0]);
    ::close(fds[0]);
    uint64_t max_reported = 0;
    for (uint64_t v : values) {
      CHECK(reported.insert(v).second);  // never handed out twice, across all crashes
      max_reported = std::max(max_reported, v);
    }
    auto store = Store::open(home);
    REQUIRE(store);
    uint64_t now_db = read_counter(*store, id);
    CHECK(now_db >= last_db);
    CHECK(now_db >= max_reported);
    if (now_db > last_db)
      ++progressed;
    last_db = now_db;
  }
  // Most kills land while the children are reserving counters, not while they start up.
  CHECK(progressed >= kRounds / 2);
  auto db = sql::Db::open(home + "/esession.db", 1000);
  REQUIRE(db);
  auto ic = db->prepare("PRAGMA integrity_check");
  REQUIRE(ic);
  REQUIRE(ic->step().value());
  CHECK(ic->column_text(0) == "ok");
}

TEST_CASE("atomically: several calls commit together, or none of them does") {
  TempDir t;
  auto store = Store::open(t.sub("home"));
  REQUIRE(store);
  auto acct = store->create_account("alice@example.org/pda");
  REQUIRE(acct);
  // A failure after two successful calls keeps neither.
  Status st = store->atomically([&]() -> Status {
    ES_TRY(store->upsert_peer(acct->id, "bob@example.com"));
    ES_TRY(store->create_session(NewSession{acct->id, "bob@example.com/laptop", "t1"},
                                 counter_blob(0)));
    return fail(Errc::wrong_state, "changed my mind");
  });
  REQUIRE_FALSE(st);
  CHECK(st.error().detail == "changed my mind");
  CHECK_FALSE(store->get_peer(acct->id, "bob@example.com").value());
  CHECK(store->list_sessions(acct->id).value().empty());
  // An exception rolls back too.
  CHECK_THROWS(store->atomically([&]() -> Status {
    REQUIRE(store->upsert_peer(acct->id, "carol@example.net"));
    throw std::runtime_error("boom");
  }));
  CHECK_FALSE(store->get_peer(acct->id, "carol@example.net").value());
  // A failed inner call is rolled back alone; the others commit.
  st = store->atomically([&]() -> Status {
    ES_TRY(store->upsert_peer(acct->id, "bob@example.com"));
    CHECK_FALSE(store->create_account("alice@example.org/pda"));  // exists: refused
    return {};
  });
  REQUIRE(st);
  CHECK(store->get_peer(acct->id, "bob@example.com").value());
  CHECK(store->list_accounts().value().size() == 1);
}
