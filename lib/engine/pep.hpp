// The XEP-0163 (PEP) stanzas of offline sessions (XEP-0187 §3.1-3.4): creating the options'
// node, publishing the options, withdrawing them, and finding them in what a server returns.
#pragma once

#include <optional>
#include <string>

#include "store/store.hpp"
#include "xml/element.hpp"

namespace esession {

inline constexpr std::string_view kNsPubsub = "http://jabber.org/protocol/pubsub";
// The options' nodes: for presence subscribers, and for anyone.
inline constexpr std::string_view kNodeSubscribers =
    "http://www.xmpp.org/extensions/xep-0187.html#ns";
inline constexpr std::string_view kNodeAnyone = "http://www.xmpp.org/extensions/xep-0116.html#ns";

std::string_view offline_node(OfflineAudience a);

// pep_create_node is the iq that creates |a|'s node: never pushed to subscribers, never sent
// as a last item, with the presence (subscribers) or open (anyone) access model. A server that
// has the node already answers it with a conflict error, which is harmless.
xml::Element pep_create_node(OfflineAudience a, const std::string& id);
// pep_publish is the iq that publishes |item_payload| in |a|'s node; without a payload, an
// empty <item/>, which withdraws the options (XEP-0187 §3.4).
xml::Element pep_publish(OfflineAudience a, const std::string& id,
                         const std::optional<xml::Element>& item_payload);
// pep_items_request is Bob's iq asking |peer|'s server for |a|'s options (XEP-0187 §3.2).
xml::Element pep_items_request(OfflineAudience a, const std::string& peer, const std::string& id);
// find_options returns the options form in |published|: an iq result with <pubsub><items/>,
// an <items/>, an <item/> or the <x/> itself (the last item holding one, as a server lists its
// newest last). nullptr when there is none.
const xml::Element* find_options(const xml::Element& published);

}  // namespace esession
