// Session: the record layer of each profile behind one type, and the termination form every
// profile shares (XEP-0155 §7).
#include "session/session.hpp"

#include "session/codec.hpp"
#include "session/v1/record.hpp"

namespace esession {

namespace {

// Format is one record layer's state format: its magic and its reader.
struct Format {
  std::string_view magic;
  Result<std::unique_ptr<RecordLayer>> (*read)(ByteView state);
};

template <class Layer>
Result<std::unique_ptr<RecordLayer>> read_layer(ByteView state) {
  ES_ASSIGN(Layer layer, Layer::deserialize(state));
  return std::unique_ptr<RecordLayer>(std::make_unique<Layer>(std::move(layer)));
}

// kFormats lists every record layer's state format; a profile adds its line.
constexpr Format kFormats[] = {
    {v1::CtrHmacRecord::kMagic, &read_layer<v1::CtrHmacRecord>},
};

}  // namespace

Session::Session(std::unique_ptr<RecordLayer> layer) : m_layer(std::move(layer)) {}
Session::Session(const Session& other) : m_layer(other.m_layer->clone()) {}
Session& Session::operator=(const Session& other) {
  if (this != &other)
    m_layer = other.m_layer->clone();
  return *this;
}
Session::~Session() = default;

Result<Received> Session::decrypt(const xml::Element& stanza) {
  SystemRandom rng;
  return decrypt(stanza, rng);
}

Result<Session> Session::deserialize(ByteView state) {
  codec::Reader r(state, "session state");
  ES_ASSIGN(ByteView magic, r.fixed(4, "magic"));
  for (const Format& f : kFormats)
    if (std::equal(magic.begin(), magic.end(), view(f.magic).begin())) {
      ES_ASSIGN(std::unique_ptr<RecordLayer> layer, f.read(state));
      return Session(std::move(layer));
    }
  return fail(Errc::malformed, "session state: magic: not an esession session state");
}

const v1::CtrHmacRecord* Session::v1() const {
  return dynamic_cast<const v1::CtrHmacRecord*>(m_layer.get());
}

bool is_stanza_kind(std::string_view name) {
  return name == "message" || name == "presence" || name == "iq";
}

xml::Element terminate_form(std::string_view type, std::string_view field_type) {
  xml::Element feature("feature", std::string(xml::kNsFeatureNeg));
  xml::Element x("x", std::string(xml::kNsData));
  x.set_attr("type", type);
  xml::add_field(x, "FORM_TYPE", field_type).value("urn:xmpp:ssn");
  xml::add_field(x, "terminate", field_type).value("1");
  feature.add(std::move(x));
  return feature;
}

std::optional<std::string> terminate_form_type(const xml::Element& e) {
  if (!e.is("feature", xml::kNsFeatureNeg))
    return std::nullopt;
  const xml::Element* x = xml::find_form(e);
  if (!x)
    return std::nullopt;
  auto form = xml::parse_form(*x);
  if (!form || form->form_type() != "urn:xmpp:ssn")
    return std::nullopt;
  auto t = form->value("terminate");
  if (!t || xml::parse_bool(*t) != true)
    return std::nullopt;
  return form->type;
}

}  // namespace esession
