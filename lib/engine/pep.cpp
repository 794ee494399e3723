#include "engine/pep.hpp"

#include "xml/form.hpp"

namespace esession {

namespace {

bool is_options(const xml::Element& e) {
  if (!e.is("x", xml::kNsData))
    return false;
  auto f = xml::parse_form(e);
  return f && f->form_type() == "urn:xmpp:ssn";
}

xml::Element pubsub_iq(const std::string& type, const std::string& id) {
  xml::Element iq("iq", std::string(xml::kNsClient));
  iq.set_attr("type", type);
  iq.set_attr("id", id);
  return iq;
}

}  // namespace

std::string_view offline_node(OfflineAudience a) {
  return a == OfflineAudience::anyone ? kNodeAnyone : kNodeSubscribers;
}

xml::Element pep_create_node(OfflineAudience a, const std::string& id) {
  xml::Element iq = pubsub_iq("set", id);
  xml::Element& ps = iq.add(xml::Element("pubsub", std::string(kNsPubsub)));
  ps.add(xml::Element("create", std::string(kNsPubsub))).set_attr("node", offline_node(a));
  xml::Element& conf = ps.add(xml::Element("configure", std::string(kNsPubsub)));
  xml::Element x("x", std::string(xml::kNsData));
  x.set_attr("type", "submit");
  xml::add_field(x, "FORM_TYPE", "hidden").value("http://jabber.org/protocol/pubsub#node_config");
  xml::add_field(x, "pubsub#deliver_notifications").value("0");
  xml::add_field(x, "pubsub#send_last_published_item").value("never");
  xml::add_field(x, "pubsub#access_model")
      .value(a == OfflineAudience::anyone ? "open" : "presence");
  conf.add(std::move(x));
  return iq;
}

xml::Element pep_publish(OfflineAudience a, const std::string& id,
                         const std::optional<xml::Element>& item_payload) {
  xml::Element iq = pubsub_iq("set", id);
  xml::Element& ps = iq.add(xml::Element("pubsub", std::string(kNsPubsub)));
  xml::Element& pub = ps.add(xml::Element("publish", std::string(kNsPubsub)));
  pub.set_attr("node", offline_node(a));
  xml::Element& item = pub.add(xml::Element("item", std::string(kNsPubsub)));
  if (item_payload)
    item.add(*item_payload);
  return iq;
}

xml::Element pep_items_request(OfflineAudience a, const std::string& peer, const std::string& id) {
  xml::Element iq = pubsub_iq("get", id);
  iq.set_attr("to", peer);
  xml::Element& ps = iq.add(xml::Element("pubsub", std::string(kNsPubsub)));
  ps.add(xml::Element("items", std::string(kNsPubsub))).set_attr("node", offline_node(a));
  return iq;
}

const xml::Element* find_options(const xml::Element& published) {
  if (is_options(published))
    return &published;
  const xml::Element* found = nullptr;
  for (const auto* c : published.element_children())
    if (const xml::Element* x = find_options(*c))
      found = x;  // the last one
  return found;
}

}  // namespace esession
