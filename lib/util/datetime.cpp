#include "util/datetime.hpp"

#include <cctype>
#include <cstdio>
#include <ctime>

namespace esession {

std::string format_datetime(int64_t seconds) {
  std::time_t tt = static_cast<std::time_t>(seconds);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string format_datetime_ms(int64_t ms) {
  int64_t s = ms / 1000, frac = ms % 1000;
  if (frac < 0) {  // before 1970: the fraction counts up from the second below
    frac += 1000;
    --s;
  }
  std::string out = format_datetime(s);
  char buf[8];
  std::snprintf(buf, sizeof buf, ".%03dZ", static_cast<int>(frac));
  return out.substr(0, out.size() - 1) + buf;
}

std::optional<int64_t> parse_datetime(std::string_view s) {
  auto digits = [&](size_t pos, size_t n) -> std::optional<int> {
    if (pos + n > s.size())
      return std::nullopt;
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i])))
        return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
    return std::nullopt;
  auto y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2), mi = digits(14, 2),
       se = digits(17, 2);
  if (!y || !mo || !d || !h || !mi || !se || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 ||
      *mi > 59 || *se > 60)
    return std::nullopt;
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    size_t start = ++pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])))
      ++pos;
    if (pos == start)
      return std::nullopt;
  }
  int64_t offset = 0;
  if (pos + 1 == s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    offset = 0;
  } else if ((s[pos] == '+' || s[pos] == '-') &&
             ((pos + 6 == s.size() && s[pos + 3] == ':') || pos + 5 == s.size())) {
    // +hh:mm, and +hhmm as deployed clients write it (Profanity 0.13), a concession.
    size_t mm = pos + 5 == s.size() ? pos + 3 : pos + 4;
    auto oh = digits(pos + 1, 2), om = digits(mm, 2);
    if (!oh || !om || *oh > 23 || *om > 59)
      return std::nullopt;
    offset = (*oh * 3600 + *om * 60) * (s[pos] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = *y - 1900;
  tm.tm_mon = *mo - 1;
  tm.tm_mday = *d;
  tm.tm_hour = *h;
  tm.tm_min = *mi;
  tm.tm_sec = *se;
  return static_cast<int64_t>(::timegm(&tm)) - offset;
}

TimeWindow time_window(int64_t stamp, int64_t now, int64_t max_future, int64_t max_age) {
  if (stamp > now + max_future)
    return TimeWindow::future;
  if (now - stamp > max_age)
    return TimeWindow::too_old;
  return TimeWindow::inside;
}

}  // namespace esession
