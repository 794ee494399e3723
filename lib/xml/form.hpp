// XEP-0004 data forms inside XEP-0020 feature negotiation, and XEP-0116 §6.2 normalization.
#pragma once

#include <optional>
#include <set>

#include "xml/element.hpp"

namespace esession::xml {

// NormStyle selects the normalization of XEP-0116 §6.2.
enum class NormStyle {
  spec,  // C14N-like: sorted attributes, empty elements as <a></a>, no xmlns, no inter-element text
  gajim,  // G4: empty elements as <a />, xmlns where the namespace changes, all text kept
};

// normalize returns the normalized serialization of |e| within a parent namespace |parent_ns|.
std::string normalize(const Element& e, std::string_view parent_ns, NormStyle style);

// normalize_form_content returns Form_X: the concatenation of the normalized children of the
// <x/> element |x|, skipping <field/>s whose var is in |skip_vars| (for form_A2 and form_B2).
std::string normalize_form_content(const Element& x, NormStyle style,
                                   const std::set<std::string>& skip_vars = {});

// Field is one parsed <field/>.
struct Field {
  std::string var;
  std::string type;  // as sent; may be empty
  std::vector<std::string> values;
  std::vector<std::string> options;  // the <value/> of each <option/>, in order
  bool required = false;
};

// Form is a parsed data form.
struct Form {
  std::string type;  // form, submit, result, cancel
  std::vector<Field> fields;

  const Field* field(std::string_view var) const;
  // value returns the single value of a field; error if absent or multi-valued.
  Result<std::string> value(std::string_view var) const;
  // single returns the one value, or the one option of a field (XEP-0217 §4.2 accepts both for
  // fixed parameters); nullopt if absent.
  std::optional<std::string> offered_single(std::string_view var) const;
  // choices returns the options of a list field, or its values when it has no options
  // (hidden fields carry fixed values).
  std::vector<std::string> choices(std::string_view var) const;
  // form_type returns the FORM_TYPE hidden value, or empty.
  std::string form_type() const;
};

// parse_form reads <x xmlns='jabber:x:data'/>; duplicate vars are an error.
// parse_form reads a data form. A form with a namespace-qualified attribute, a duplicate field
// or an option without exactly one value is malformed; |bad_field|, if given, then receives the
// var of the field at fault (empty if none is).
Result<Form> parse_form(const Element& x, std::string* bad_field = nullptr);

// find_form returns the <x xmlns='jabber:x:data'/> directly inside |wrapper|, or nullptr.
const Element* find_form(const Element& wrapper);

// FieldBuilder appends children to a <field/> in call order, which is the wire order.
class FieldBuilder {
 public:
  explicit FieldBuilder(Element& field) : m_f(field) {}
  FieldBuilder& value(std::string_view v);
  FieldBuilder& option(std::string_view v, std::string_view label = {});
  FieldBuilder& required();

 private:
  Element& m_f;
};

// add_field appends <field var=.. [type=..]/> to |x|; attribute order is var then type.
FieldBuilder add_field(Element& x, std::string_view var, std::string_view type = {});

// is_true parses an XEP-0004 boolean ("1"/"true" or "0"/"false"); nullopt if neither.
std::optional<bool> parse_bool(std::string_view v);

}  // namespace esession::xml
