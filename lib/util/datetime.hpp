// XEP-0082 DateTime, the profile of RFC 3339 that XMPP uses (XEP-0373's <time/>, RFC 3923's
// CPIM DateTime): CCYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm|-hh:mm).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace esession {

// format_datetime writes |seconds| since the epoch in UTC: 2026-11-26T16:04:05Z (the year in
// four digits, always). format_datetime_ms writes |ms| with milliseconds:
// 2026-11-26T16:04:05.123Z.
std::string format_datetime(int64_t seconds);
std::string format_datetime_ms(int64_t ms);

// parse_datetime reads a DateTime as seconds since the epoch: digits where digits belong, a
// fraction of any length (ignored), and Z (or z) or an offset of at most 23:59. Nothing else,
// but for one concession to deployed clients: an offset without its colon (+hhmm, as Profanity
// 0.13 writes XEP-0373's <time/>), which XEP-0082 does not allow. format_datetime never writes
// one.
std::optional<int64_t> parse_datetime(std::string_view s);

// TimeWindow is where a sender's timestamp falls against our clock.
enum class TimeWindow {
  inside,
  future,   // more than the allowed seconds ahead: a wrong clock, or a forgery
  too_old,  // more than the allowed seconds behind: a replay, or a long delay
};

// time_window places |stamp| against |now| (both seconds since the epoch): future if it is more
// than |max_future| seconds ahead, too_old if more than |max_age| seconds behind.
TimeWindow time_window(int64_t stamp, int64_t now, int64_t max_future, int64_t max_age);

}  // namespace esession
