#include "filter.hpp"

#include <cerrno>
#include <cstring>

namespace esession::cli {

void write_text(const std::string& text, FILE* f) {
  if (std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fflush(f) != 0)
    fail_with(Errc::io, std::string("writing output: ") + std::strerror(errno));
}

std::string peer_of(const std::string& given, const xml::Element& st, const char* attr) {
  std::string p = given.empty() ? st.attr_or(attr) : given;
  Result<std::string> r = prep_jid(p);
  return r ? std::move(r).value() : p;
}

int run_control(Context& ctx, const FilterOpts& o, bool terminate) {
  const std::string peer = prepared_jid(o.peer, JidKind::full, "--to");
  Endpoint ep = endpoint(ctx);
  SystemRandom rng;
  Outcome out = terminate ? ep.terminate(peer, rng) : ep.rekey(peer, rng);
  if (out.error)
    throw failure_of(out, peer);
  for (const auto& m : out.send)
    write_stanza(m, stdout, out.style);
  render(ctx, out.events);
  return kExitOk;
}

}  // namespace esession::cli
