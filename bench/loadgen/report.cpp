#include "report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace bench {

latency_summary summarize(const histogram& ns) {
  auto us = [](std::uint64_t v) { return static_cast<double>(v) / 1000.0; };
  latency_summary s;
  s.count = ns.count();
  s.p50_us = us(ns.percentile(50));
  s.p90_us = us(ns.percentile(90));
  s.p99_us = us(ns.percentile(99));
  s.p999_us = us(ns.percentile(99.9));
  s.max_us = us(ns.max());
  s.mean_us = ns.mean() / 1000.0;
  return s;
}

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  return fmt::format("{:.6g}", v);
}

std::string human_number(double v) {
  if (!std::isfinite(v)) return "n/a";
  double a = std::fabs(v);
  if (a >= 100) return fmt::format("{:.0f}", v);
  if (a >= 10) return fmt::format("{:.1f}", v);
  return fmt::format("{:.3g}", v);
}

}  // namespace

std::string report::json() const {
  std::string out = "{";
  bool first = true;
  for (const auto& [key, v] : items_) {
    out += first ? "" : ", ";
    first = false;
    out += json_string(key) + ": ";
    if (auto* i = std::get_if<std::int64_t>(&v)) {
      out += fmt::format("{}", *i);
    } else if (auto* d = std::get_if<double>(&v)) {
      out += json_number(*d);
    } else if (auto* s = std::get_if<std::string>(&v)) {
      out += json_string(*s);
    } else {
      const auto& l = std::get<latency_summary>(v);
      out += fmt::format(
          "{{\"count\": {}, \"p50\": {}, \"p90\": {}, \"p99\": {}, \"p99_9\": {}, \"max\": {}, "
          "\"mean\": {}}}",
          l.count, json_number(l.p50_us), json_number(l.p90_us), json_number(l.p99_us),
          json_number(l.p999_us), json_number(l.max_us), json_number(l.mean_us));
    }
  }
  return out + "}";
}

std::string report::text() const {
  std::size_t width = 0;
  for (const auto& item : items_) width = std::max(width, item.first.size());
  std::string out;
  for (const auto& [key, v] : items_) {
    out += fmt::format("  {:<{}}  ", key, width);
    if (auto* i = std::get_if<std::int64_t>(&v)) {
      out += fmt::format("{}", *i);
    } else if (auto* d = std::get_if<double>(&v)) {
      out += human_number(*d);
    } else if (auto* s = std::get_if<std::string>(&v)) {
      out += *s;
    } else {
      const auto& l = std::get<latency_summary>(v);
      out += fmt::format("p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})", human_number(l.p50_us),
                         human_number(l.p90_us), human_number(l.p99_us), human_number(l.p999_us),
                         human_number(l.max_us), l.count);
    }
    out += '\n';
  }
  return out;
}

}  // namespace bench
