// esession-counters: recovers the counter each encrypted stanza used, for the CLI tests.
//
// Usage: esession-counters --home SNAPSHOT --account JID --peer FULLJID [--window N] [-q]
//                          [FILE...]
//
// SNAPSHOT is a copy of the sender's home taken before the stanzas were encrypted. The tool
// opens it with Store, takes the active session of the account with the peer, and reads its
// sending MAC key and counter S. Each input line (FILE..., or stdin; a file named '-' is stdin)
// is one stanza written by `esession encrypt`; for every <c/> in it (the stanza's own and one
// inside <error/>) the tool finds the counter C in [S, S+N) with
//   HMAC(send MAC key, m_content | mpi(C)) == <mac/>
// (m_content: the children of <c/> but <mac/>, serialized as the receiver does), and the number
// of counter values it consumed: ceil(len(data)/16), or 1 for a <c/> without content.
// The search starts where the previous stanza ended (one encrypt process writes its counters in
// increasing order; give sequential runs' outputs in order) and goes outwards in both
// directions over the window.
//
// Prints one line per <c/>: "FILE:LINE OFFSET BLOCKS" (OFFSET = C - S), then a summary line.
// Exit status: 0 every <c/> matched and no two ranges [C, C+BLOCKS) overlap; 1 an overlap or a
// stanza matching no counter in the window; 2 bad usage or an unparsable line; 3 the snapshot
// cannot be opened.
// Snapshot access writes the (unchanged) state back into the snapshot: use a copy.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "crypto/ctr.hpp"
#include "crypto/hash.hpp"
#include "engine/session_record.hpp"
#include "session/session.hpp"
#include "session/v1/record.hpp"
#include "store/store.hpp"
#include "xml/element.hpp"

using namespace esession;

namespace {

struct Range {
  uint64_t start = 0, blocks = 0;
  std::string where;
};

int usage(const char* why) {
  std::fprintf(stderr,
               "esession-counters: %s\nusage: esession-counters --home SNAPSHOT --account JID "
               "--peer FULLJID [--window N] [-q] [FILE...]\n",
               why);
  return 2;
}

// collect_c returns the <c/> elements of a stanza: its own and one inside <error/>.
std::vector<const xml::Element*> collect_c(const xml::Element& st) {
  std::vector<const xml::Element*> out;
  for (const auto& ch : st.children) {
    if (ch.is("c", xml::kNsC))
      out.push_back(&ch);
    else if (ch.is("error", xml::kNsClient))
      for (const auto& g : ch.children)
        if (g.is("c", xml::kNsC))
          out.push_back(&g);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string home, account, peer;
  uint64_t window = 1 << 20;
  bool quiet = false;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& dst) {
      if (i + 1 >= argc)
        return false;
      dst = argv[++i];
      return true;
    };
    if (a == "--home") {
      if (!value(home))
        return usage("--home needs a value");
    } else if (a == "--account") {
      if (!value(account))
        return usage("--account needs a value");
    } else if (a == "--peer") {
      if (!value(peer))
        return usage("--peer needs a value");
    } else if (a == "--window") {
      std::string w;
      if (!value(w))
        return usage("--window needs a value");
      try {
        window = std::stoull(w);
      } catch (...) {
        return usage("bad --window");
      }
    } else if (a == "-q" || a == "--quiet") {
      quiet = true;
    } else if (a.size() > 1 && a[0] == '-' && a != "-") {
      return usage(("unknown option " + a).c_str());
    } else {
      files.push_back(a);
    }
  }
  if (window == 0)
    return usage("--window must be at least 1");
  if (home.empty() || account.empty() || peer.empty())
    return usage("--home, --account and --peer are required");
  if (files.empty())
    files.push_back("-");

  // The snapshot's session: sending MAC key and counter.
  auto store = Store::open(home);
  if (!store) {
    std::fprintf(stderr, "esession-counters: %s\n", store.error().detail.c_str());
    return 3;
  }
  auto acc = store->get_account(account);
  if (!acc || !*acc) {
    std::fprintf(stderr, "esession-counters: no account %s in %s\n", account.c_str(), home.c_str());
    return 3;
  }
  auto rec = store->find_active_session((*acc)->id, peer);
  if (!rec || !*rec) {
    std::fprintf(stderr, "esession-counters: no active session with %s in %s\n", peer.c_str(),
                 home.c_str());
    return 3;
  }
  auto blob = store->read_session_state((*rec)->id);
  if (!blob) {
    std::fprintf(stderr, "esession-counters: %s\n", blob.error().detail.c_str());
    return 3;
  }
  auto ss = StoredSession::decode(view(*blob));
  if (!ss) {
    std::fprintf(stderr, "esession-counters: %s\n", ss.error().detail.c_str());
    return 3;
  }
  auto session = Session::deserialize(view(ss->session));
  if (!session) {
    std::fprintf(stderr, "esession-counters: %s\n", session.error().detail.c_str());
    return 3;
  }
  const v1::SessionParams& p = session->v1()->params();
  const HashAlg h = session->suite().hash;
  const SecretBytes mac_key = p.send.mac;
  const Counter128 start = p.send_ctr;
  if (!quiet)
    std::printf("# send counter at snapshot: %s\n", start.hex().c_str());

  std::vector<Range> ranges;
  size_t unmatched = 0, stanzas = 0;
  uint64_t hint = 0;  // where the previous stanza ended (carried from one input to the next)
  for (const auto& f : files) {
    std::ifstream file;
    std::istream* in = &std::cin;
    if (f != "-") {
      file.open(f);
      if (!file) {
        std::fprintf(stderr, "esession-counters: cannot read %s\n", f.c_str());
        return 2;
      }
      in = &file;
    }
    std::string line;
    size_t lineno = 0;
    while (std::getline(*in, line)) {
      ++lineno;
      if (line.find_first_not_of(" \t\r") == std::string::npos)
        continue;
      std::string where = f + ":" + std::to_string(lineno);
      auto st = xml::parse(line, xml::kNsClient);
      if (!st) {
        std::fprintf(stderr, "esession-counters: %s: not a stanza: %s\n", where.c_str(),
                     st.error().detail.c_str());
        return 2;
      }
      ++stanzas;
      auto cs = collect_c(*st);
      if (cs.empty()) {
        std::fprintf(stderr, "esession-counters: %s: no <c/> in the stanza\n", where.c_str());
        ++unmatched;
        continue;
      }
      for (const xml::Element* c : cs) {
        std::string m_content;
        const xml::Element *mac = nullptr, *data = nullptr;
        for (const auto& ch : c->children) {
          if (ch.is_text())
            continue;
          if (ch.is("mac", xml::kNsC)) {
            mac = &ch;
            continue;
          }
          if (ch.is("data", xml::kNsC))
            data = &ch;
          m_content += xml::serialize(ch, c->ns);
        }
        if (!mac) {
          std::fprintf(stderr, "esession-counters: %s: <c/> without <mac/>\n", where.c_str());
          ++unmatched;
          continue;
        }
        auto want = unbase64(mac->text_content());
        uint64_t blocks = 1;
        if (data) {
          auto d = unbase64(data->text_content());
          if (!want || !d) {
            std::fprintf(stderr, "esession-counters: %s: bad Base64\n", where.c_str());
            ++unmatched;
            continue;
          }
          blocks = std::max<uint64_t>(1, ctr_blocks(d->size()));
        }
        if (!want) {
          std::fprintf(stderr, "esession-counters: %s: bad Base64\n", where.c_str());
          ++unmatched;
          continue;
        }
        // Search outwards from the hint: hint, hint+1, hint-1, hint+2, ... within the window.
        bool found = false;
        uint64_t k = 0;
        const uint64_t h0 = std::min(hint, window - 1);
        for (uint64_t d = 0; !found && (d <= h0 || h0 + d < window); ++d) {
          for (int side = 0; side < 2 && !found; ++side) {
            if (side == 0 ? h0 + d >= window : (d == 0 || d > h0))
              continue;
            k = side == 0 ? h0 + d : h0 - d;
            Bytes mpi = start.add(k).mpi();
            SecretBytes got = hmac_parts(h, view(mac_key), {view(m_content), view(mpi)});
            found = ct_equal(view(got), view(*want));
          }
        }
        if (!found) {
          std::fprintf(stderr, "esession-counters: %s: no counter in [S, S+%llu) matches\n",
                       where.c_str(), static_cast<unsigned long long>(window));
          ++unmatched;
          continue;
        }
        hint = k + blocks;
        if (!quiet)
          std::printf("%s %llu %llu\n", where.c_str(), static_cast<unsigned long long>(k),
                      static_cast<unsigned long long>(blocks));
        ranges.push_back(Range{k, blocks, where});
      }
    }
  }

  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.start < b.start; });
  size_t overlaps = 0;
  uint64_t used = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    used += ranges[i].blocks;
    if (i + 1 < ranges.size() && ranges[i + 1].start < ranges[i].start + ranges[i].blocks) {
      ++overlaps;
      std::fprintf(
          stderr, "esession-counters: counter reuse: %s [%llu, %llu) and %s [%llu, %llu)\n",
          ranges[i].where.c_str(), static_cast<unsigned long long>(ranges[i].start),
          static_cast<unsigned long long>(ranges[i].start + ranges[i].blocks),
          ranges[i + 1].where.c_str(), static_cast<unsigned long long>(ranges[i + 1].start),
          static_cast<unsigned long long>(ranges[i + 1].start + ranges[i + 1].blocks));
    }
  }
  uint64_t span = ranges.empty() ? 0 : ranges.back().start + ranges.back().blocks;
  std::printf(
      "# stanzas %zu, ranges %zu, unmatched %zu, overlaps %zu, blocks used %llu, span %llu\n",
      stanzas, ranges.size(), unmatched, overlaps, static_cast<unsigned long long>(used),
      static_cast<unsigned long long>(span));
  return (unmatched || overlaps) ? 1 : 0;
}
