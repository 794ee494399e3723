// --format esession: one stanza with forward secrecy, without a session to keep. The object is
// a one-message offline session (XEP-0187 §3.3 with terminate=1, formats/offline.md): sealed
// from the recipient's published offline options, opened once by the recipient, whose
// options' secrets make it readable until they are destroyed.
#include "engine/pep.hpp"
#include "identity.hpp"
#include "seal.hpp"

namespace esession::cli {

namespace {

void refuse_other_options(const ObjectOpts& o, const char* verb) {
  if (!o.key_out.empty() || !o.key_file.empty() || o.key_fd >= 0 || !o.identity.empty() ||
      !o.mode.empty() || o.allow_unsigned || o.error_reply)
    fail_with(Errc::malformed,
              std::string("esession objects take none of --key-out, --key-file, --key-fd, "
                          "--identity, --mode, --allow-unsigned, --error-reply"),
              std::string("esession ") + verb + " --format esession" +
                  (std::string(verb) == "seal" ? " -r JID --options FILE" : ""));
  if (!is_stdio(o.output))
    fail_with(Errc::malformed,
              "esession objects are stanzas, written to standard output: -o "
              "is not supported",
              "redirect standard output instead");
  if (!o.signers.empty())
    fail_with(Errc::malformed, "-i does not apply: the account's default key signs");
}

}  // namespace

int seal_esession(Context& ctx, const ObjectOpts& o) {
  refuse_other_options(o, "seal");
  if (o.recipients.size() != 1 || o.options.empty())
    fail_with(Errc::malformed,
              "--format esession seals for one recipient, from its published offline options",
              "esession seal --format esession -r JID --options FILE (see esession-offline(1))");
  const std::string to = prepared_jid(o.recipients[0], JidKind::bare, "-r");
  xml::Element published = read_published(o.options);
  std::unique_ptr<Signer> signer =
      required_signer(ctx, "an esession object is signed, and the account has no key");
  Endpoint ep = endpoint(ctx);
  SystemRandom rng;
  return for_each_stanza(ctx, o, xml::kMaxStanza, false, [&](xml::Element& st) {
    if (st.name != "message")
      fail_with(Errc::malformed, "only a <message/> can be sealed as an esession object");
    NegotiationOptions opts;
    opts.signer = signer.get();
    opts.content = st;
    opts.terminate_after_content = true;
    Outcome out = ep.start_offline(to, published, std::move(opts), rng);
    render(ctx, out.events);
    if (out.error)
      throw failure_of(out, to);
    write_stanza(out.send.at(0), stdout, out.style);
  });
}

int open_esession(Context& ctx, const ObjectOpts& o) {
  refuse_other_options(o, "open");
  if (!o.recipients.empty() || !o.options.empty())
    fail_with(Errc::malformed, "-r and --options are for seal");
  Endpoint ep = endpoint(ctx);
  SystemRandom rng;
  return for_each_stanza(ctx, o, xml::kMaxStanza, true, [&](xml::Element& st) {
    if (!read_offline_request(st))
      fail_with(Errc::malformed, "the <" + st.name +
                                     "/> stanza is not an esession object (an "
                                     "offline request)");
    std::vector<xml::Element> one = {st};
    Batch b = ep.incoming(one, rng);
    if (b.fatal)
      throw Failure{*b.fatal, {}};
    const Outcome& r = b.results.at(0);
    render(ctx, r.events);
    if (r.error)
      throw failure_of(r, st.attr_or("from"));
    for (const auto& d : r.deliver)
      write_stanza(d, stdout, r.style);
  });
}

}  // namespace esession::cli
