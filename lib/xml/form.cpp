#include "xml/form.hpp"

#include <algorithm>

namespace esession::xml {

namespace {

// qualified_attr finds an attribute with a namespace prefix in |e| or below.
const std::string* qualified_attr(const Element& e) {
  for (const auto& a : e.attrs)
    if (a.first.find(':') != std::string::npos)
      return &a.first;
  for (const auto& c : e.children)
    if (const std::string* q = qualified_attr(c))
      return q;
  return nullptr;
}

void norm(std::string& out, const Element& e, std::string_view parent_ns, NormStyle style) {
  if (e.is_text()) {
    append_c14n_text(out, e.text);
    return;
  }
  bool has_element_child = std::any_of(e.children.begin(), e.children.end(),
                                       [](const Element& c) { return !c.is_text(); });
  out += '<';
  out += e.name;
  if (style == NormStyle::gajim && !e.ns.empty() && e.ns != parent_ns) {
    out += " xmlns=\"";
    out += escape_attr(e.ns);
    out += '"';
  }
  std::vector<const std::pair<std::string, std::string>*> attrs;
  for (const auto& a : e.attrs)
    attrs.push_back(&a);
  std::sort(attrs.begin(), attrs.end(), [](auto* a, auto* b) { return a->first < b->first; });
  for (const auto* a : attrs) {
    out += ' ';
    out += a->first;
    out += "=\"";
    out += escape_attr(a->second, /*escape_gt=*/false);  // C14N attribute escaping
    out += '"';
  }
  std::string inner;
  for (const auto& c : e.children) {
    if (c.is_text() && style == NormStyle::spec && has_element_child)
      continue;
    norm(inner, c, e.ns, style);
  }
  if (style == NormStyle::gajim && inner.empty()) {
    out += " />";
    return;
  }
  out += '>';
  out += inner;
  out += "</";
  out += e.name;
  out += '>';
}

}  // namespace

std::string normalize(const Element& e, std::string_view parent_ns, NormStyle style) {
  std::string out;
  norm(out, e, parent_ns, style);
  return out;
}

std::string normalize_form_content(const Element& x, NormStyle style,
                                   const std::set<std::string>& skip_vars) {
  std::string out;
  for (const auto& c : x.children) {
    if (c.is_text())
      continue;  // text between the children of <x/> is never included
    if (c.is("field", kNsData) && c.attr("var") && skip_vars.count(*c.attr("var")))
      continue;
    norm(out, c, x.ns, style);
  }
  return out;
}

const Field* Form::field(std::string_view var) const {
  for (const auto& f : fields)
    if (f.var == var)
      return &f;
  return nullptr;
}

Result<std::string> Form::value(std::string_view var) const {
  const Field* f = field(var);
  if (!f)
    return fail(Errc::malformed, "missing field '" + std::string(var) + "'");
  if (f->values.size() != 1)
    return fail(Errc::malformed, "field '" + std::string(var) + "' must have exactly one value");
  return f->values.front();
}

std::optional<std::string> Form::offered_single(std::string_view var) const {
  const Field* f = field(var);
  if (!f)
    return std::nullopt;
  if (f->values.size() == 1 && f->options.empty())
    return f->values.front();
  if (f->values.empty() && f->options.size() == 1)
    return f->options.front();
  return std::nullopt;
}

std::vector<std::string> Form::choices(std::string_view var) const {
  const Field* f = field(var);
  if (!f)
    return {};
  return f->options.empty() ? f->values : f->options;
}

std::string Form::form_type() const {
  const Field* f = field("FORM_TYPE");
  return (f && f->values.size() == 1) ? f->values.front() : std::string();
}

Result<Form> parse_form(const Element& x, std::string* bad_field) {
  if (!x.is("x", kNsData))
    return fail(Errc::malformed, "expected a jabber:x:data form");
  // formats §1.5: normalization has no place for a namespace-qualified attribute.
  if (const std::string* q = qualified_attr(x)) {
    for (const auto& c : x.children)
      if (bad_field && c.is("field", kNsData) && qualified_attr(c))
        *bad_field = c.attr_or("var");
    return fail(Errc::malformed,
                "a namespace-qualified attribute (" + q->substr(0, 64) + ") in a data form");
  }
  Form form;
  form.type = x.attr_or("type");
  for (const auto& c : x.children) {
    if (!c.is("field", kNsData))
      continue;
    Field f;
    f.var = c.attr_or("var");
    f.type = c.attr_or("type");
    if (f.var.empty())
      return fail(Errc::malformed, "form field without 'var'");
    if (form.field(f.var)) {
      if (bad_field)
        *bad_field = f.var;
      return fail(Errc::malformed, "duplicate form field '" + f.var + "'");
    }
    for (const auto& v : c.children) {
      if (v.is("value", kNsData)) {
        f.values.push_back(v.text_content());
      } else if (v.is("option", kNsData)) {
        const Element* ov = v.child("value", kNsData);
        if (!ov || v.count_children("value", kNsData) != 1) {
          if (bad_field)
            *bad_field = f.var;
          return fail(Errc::malformed, "option of field '" + f.var + "' needs exactly one value");
        }
        f.options.push_back(ov->text_content());
      } else if (v.is("required", kNsData)) {
        f.required = true;
      }
    }
    form.fields.push_back(std::move(f));
  }
  return form;
}

const Element* find_form(const Element& wrapper) {
  return wrapper.child("x", kNsData);
}

FieldBuilder& FieldBuilder::value(std::string_view v) {
  m_f.add_text_child("value", v);
  return *this;
}

FieldBuilder& FieldBuilder::option(std::string_view v, std::string_view label) {
  Element o("option", m_f.ns);
  if (!label.empty())
    o.set_attr("label", label);
  o.add_text_child("value", v);
  m_f.add(std::move(o));
  return *this;
}

FieldBuilder& FieldBuilder::required() {
  m_f.add(Element("required", m_f.ns));
  return *this;
}

FieldBuilder add_field(Element& x, std::string_view var, std::string_view type) {
  Element f("field", std::string(kNsData));
  f.set_attr("var", var);
  if (!type.empty())
    f.set_attr("type", type);
  return FieldBuilder(x.add(std::move(f)));
}

std::optional<bool> parse_bool(std::string_view v) {
  if (v == "1" || v == "true")
    return true;
  if (v == "0" || v == "false")
    return false;
  return std::nullopt;
}

}  // namespace esession::xml
