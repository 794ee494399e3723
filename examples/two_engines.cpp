// two_engines: how a client embeds esession. Alice and Bob each own an Endpoint over a home of
// their own; this program plays the network between them. They negotiate an encrypted session
// (XEP-0116, four messages, SAS), then Alice sends Bob a message, a presence and an iq, which
// Bob's endpoint decrypts and hands to "the application" (here: standard output).
//
//   two_engines [DIR]    (DIR: where the two homes go; default: a fresh directory under /tmp)
//
// Built against the installed package:  c++ -std=c++20 two_engines.cpp \
//     $(pkg-config --cflags --libs esession)    or, with CMake, find_package(esession).
#include <esession/engine/endpoint.hpp>

#include <stdlib.h>

#include <cstdio>
#include <string>
#include <vector>

using namespace esession;

namespace {

// The parties' JIDs. A real client has them from its XMPP connection.
constexpr const char* kAlice = "alice@example.org/pda";
constexpr const char* kBob = "bob@example.com/laptop";

[[noreturn]] void die(const std::string& what, const std::optional<Error>& e) {
  std::fprintf(stderr, "two_engines: %s: %s\n", what.c_str(), e ? e->detail.c_str() : "failed");
  std::exit(1);
}

// Party is one side: its store (the home: a SQLite database and key files) and its account.
struct Party {
  Store store;
  Account account;
};

Party open_party(const std::string& home, const char* jid) {
  auto store = Store::open(home);
  if (!store)
    die("opening " + home, store.error());
  auto account = store->create_account(jid);
  if (!account)
    die("creating the account " + std::string(jid), account.error());
  return Party{std::move(store).value(), std::move(account).value()};
}

// show prints what an endpoint reported, as a front end would render its events.
void show(const char* who, const Events& events) {
  for (const Event& e : events) {
    std::printf("%s: %s", who, std::string(event_keyword(e.kind)).c_str());
    for (const std::string& f : status_fields(e))
      std::printf(" %s", f.c_str());
    std::printf("\n");
  }
}

// deliver hands |from|'s output to |to| as the network would, and returns what |to| made of it.
Outcome deliver(const char* who, const Outcome& from, Endpoint& to, RandomSource& rng) {
  if (from.error)
    die("negotiation", from.error);
  Batch b = to.incoming(from.send, rng);
  if (b.fatal)
    die("the store", b.fatal);
  Outcome all;
  for (Outcome& r : b.results) {
    if (r.error)
      die(who, r.error);
    show(who, r.events);
    for (auto& s : r.send)
      all.send.push_back(std::move(s));
    for (auto& s : r.deliver)
      all.deliver.push_back(std::move(s));
  }
  return all;
}

xml::Element stanza(const char* kind, const char* child, const char* text) {
  xml::Element st(kind, std::string(xml::kNsClient));
  st.set_attr("to", kBob);
  if (std::string_view(kind) == "iq") {
    st.set_attr("type", "get");
    st.set_attr("id", "v1");
  }
  st.add_text_child(child, text);
  return st;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  if (argc > 1) {
    dir = argv[1];
  } else {
    char tmpl[] = "/tmp/two-engines-XXXXXX";
    if (!::mkdtemp(tmpl))
      die("mkdtemp", Error{Errc::io, "cannot make a directory"});
    dir = tmpl;
  }
  Party a = open_party(dir + "/alice", kAlice);
  Party b = open_party(dir + "/bob", kBob);
  Endpoint alice(a.store, a.account), bob(b.store, b.account);
  SystemRandom rng;

  // Alice offers; Bob's endpoint reports the request, and Bob's client answers it.
  NegotiationOptions opts;  // defaults: four messages, MODP 15/16/14, AES-CTR, SAS
  Outcome offer = alice.negotiate(kBob, opts, rng);
  show("alice", offer.events);
  Batch seen = bob.incoming(offer.send, rng);
  if (seen.results.empty() || seen.results[0].refusal != Refusal::negotiation_request)
    die("bob", Error{Errc::wrong_state, "expected a negotiation request"});
  Outcome answer = bob.respond(offer.send.at(0), kAlice, opts, rng);
  show("bob", answer.events);
  Outcome m3 = deliver("alice", answer, alice, rng);
  Outcome m4 = deliver("bob", m3, bob, rng);
  deliver("alice", m4, alice, rng);

  // Now Alice's application sends; Bob's receives.
  std::vector<xml::Element> out = {stanza("message", "body", "hello, Bob"),
                                   stanza("presence", "status", "reading"),
                                   stanza("iq", "query", "version?")};
  Batch sealed = alice.outgoing(out, rng);
  if (sealed.fatal)
    die("alice's store", sealed.fatal);
  Outcome wire;
  for (Outcome& r : sealed.results) {
    if (r.error)
      die("alice encrypting", r.error);
    for (auto& s : r.send)
      wire.send.push_back(std::move(s));
  }
  Outcome got = deliver("bob", wire, bob, rng);
  for (const xml::Element& st : got.deliver)
    std::printf("bob's application: %s\n", xml::serialize(st).c_str());
  return got.deliver.size() == 3 ? 0 : 1;
}
