// fuzz_xml_form: xml::parse, data forms and XEP-0116 §6.2 normalization.
//
// The input is parsed as a stanza. Every <x xmlns='jabber:x:data'/> in it goes through
// parse_form, the Form accessors and normalize_form_content in both styles. The stanza is then
// serialized and parsed again: that must succeed, give the same serialization, and every form
// must normalize exactly as before (both parties hash normalized forms, one of them after the
// stanza crossed the wire).
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "xml/form.hpp"

using namespace esession;

namespace {

void collect_forms(const xml::Element& e, std::vector<const xml::Element*>& out) {
  if (e.is("x", xml::kNsData))
    out.push_back(&e);
  for (const auto& c : e.children)
    if (!c.is_text())
      collect_forms(c, out);
}

// FormDigest is everything the form functions derive from one <x/>.
struct FormDigest {
  bool parsed = false;
  std::string summary;  // the parsed form, flattened
  std::string spec, gajim, spec_skip, gajim_skip;
  bool operator==(const FormDigest&) const = default;
};

FormDigest digest(const xml::Element& x) {
  FormDigest d;
  d.spec = xml::normalize_form_content(x, xml::NormStyle::spec);
  d.gajim = xml::normalize_form_content(x, xml::NormStyle::gajim);
  // form_A2 / form_B2 style: some vars left out.
  const std::set<std::string> skip = {"FORM_TYPE", "nonce", "dhkeys", "identity", "mac"};
  d.spec_skip = xml::normalize_form_content(x, xml::NormStyle::spec, skip);
  d.gajim_skip = xml::normalize_form_content(x, xml::NormStyle::gajim, skip);
  (void)xml::normalize(x, {}, xml::NormStyle::spec);
  (void)xml::normalize(x, {}, xml::NormStyle::gajim);
  auto form = xml::parse_form(x);
  if (!form)
    return d;
  d.parsed = true;
  std::string& s = d.summary;
  s = form->type + "|" + form->form_type();
  for (const auto& f : form->fields) {
    s += "|" + f.var + "/" + f.type + (f.required ? "/r" : "");
    fuzz::check(form->field(f.var) == &f, "Form::field does not find its own field");
    auto v = form->value(f.var);
    fuzz::check(v.has_value() == (f.values.size() == 1), "Form::value disagrees with the values");
    if (auto single = form->offered_single(f.var))
      s += "=" + *single;
    for (const auto& c : form->choices(f.var)) {
      s += "," + c;
      (void)xml::parse_bool(c);
    }
  }
  return d;
}

// drop_empty_text removes empty text nodes (an empty CDATA section makes one): "<a></a>" and
// "<a/>" are the same element, and normalization does not tell them apart either.
void drop_empty_text(xml::Element& e) {
  std::erase_if(e.children, [](const xml::Element& c) { return c.is_text() && c.text.empty(); });
  for (auto& c : e.children)
    drop_empty_text(c);
}

// round_trip serializes |e| with |ns| in scope, parses that with |ns| as the default namespace,
// checks that this succeeds and serializes the same, and returns the new tree.
xml::Element round_trip(const xml::Element& e, std::string_view ns) {
  std::string wire = xml::serialize(e, ns);
  auto again = xml::parse(wire, ns);
  if (!again) {
    std::fprintf(stderr, "re-parse of\n  %s\nfailed: %s\n", wire.c_str(),
                 again.error().detail.c_str());
    fuzz::check(false, "the serialization of a parsed stanza does not parse");
  }
  std::string wire2 = xml::serialize(*again, ns);
  if (wire2 != wire) {
    std::fprintf(stderr, "first:  %s\nsecond: %s\n", wire.c_str(), wire2.c_str());
    fuzz::check(false, "serialize(parse(serialize(e))) differs from serialize(e)");
  }
  return std::move(again).value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view doc = fuzz::as_text(data, size);
  auto first = xml::parse(doc, xml::kNsClient);
  if (!first)
    return 0;
  std::vector<const xml::Element*> forms;
  collect_forms(*first, forms);
  std::vector<FormDigest> digests;
  for (const auto* x : forms)
    digests.push_back(digest(*x));

  (void)xml::serialize(*first, {}, xml::SerializeStyle{true});
  drop_empty_text(*first);
  // In the context it was parsed in (default namespace jabber:client), and standalone.
  round_trip(*first, xml::kNsClient);
  auto again = round_trip(*first, {});
  std::vector<const xml::Element*> forms2;
  collect_forms(again, forms2);
  fuzz::check(forms2.size() == forms.size(), "the round trip changed the number of forms");
  for (size_t i = 0; i < forms2.size(); ++i)
    fuzz::check(digest(*forms2[i]) == digests[i], "the round trip changed a form's normalization");
  return 0;
}
