#include "filter.hpp"

#include <cerrno>
#include <cstring>

namespace esession::cli {

void write_all(const std::vector<xml::Element>& out, FILE* f, xml::SerializeStyle style) {
  std::string buf;
  buf.reserve(out.size() * 512);
  for (const auto& e : out) {
    xml::serialize_append(buf, e, {}, style);
    buf += '\n';
  }
  if (std::fwrite(buf.data(), 1, buf.size(), f) != buf.size() || std::fflush(f) != 0)
    fail_with(Errc::io, std::string("writing output: ") + std::strerror(errno));
}

int run_control(Context& ctx, const FilterOpts& o, bool terminate) {
  const std::string peer = prepared_jid(o.peer, JidKind::full, "--to");
  xml::Element probe("message", std::string(xml::kNsClient));
  SessionRecord rec = find_session_for(ctx, peer, probe);
  SystemRandom rng;
  Compat compat = Compat::spec;
  xml::Element out =
      with_session<xml::Element>(ctx, rec.id, [&](Session& s) -> Result<xml::Element> {
        compat = s.suite().compat;
        return terminate ? s.terminate(rng) : s.rekey(rng);
      });
  out.set_attr("from", ctx.account().jid);
  write_stanza(out, stdout, wire_style(compat));
  ctx.status(terminate ? "TERMINATING" : "REKEY_SENT", {peer, rec.thread});
  return kExitOk;
}

}  // namespace esession::cli
