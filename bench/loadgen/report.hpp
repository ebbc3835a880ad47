#pragma once

#include "histogram.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace bench {

// Percentiles of a latency histogram recorded in nanoseconds, in microseconds.
struct latency_summary {
  std::uint64_t count = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0, mean_us = 0;
};
latency_summary summarize(const histogram& ns);

// A scenario's result: named values in insertion order, each name carrying its unit
// (deliveries_per_s, broker_cpu_us_per_delivery). Printed as one JSON object or as aligned
// text lines for people.
class report {
 public:
  using value = std::variant<std::int64_t, double, std::string, latency_summary>;

  void add(std::string key, std::int64_t v) { items_.emplace_back(std::move(key), v); }
  void add(std::string key, std::uint64_t v) {
    items_.emplace_back(std::move(key), static_cast<std::int64_t>(v));
  }
  void add(std::string key, double v) { items_.emplace_back(std::move(key), v); }
  void add(std::string key, std::string v) { items_.emplace_back(std::move(key), std::move(v)); }
  void add(std::string key, const char* v) { add(std::move(key), std::string(v)); }
  void add(std::string key, latency_summary v) { items_.emplace_back(std::move(key), v); }

  std::string json() const;
  std::string text() const;

 private:
  std::vector<std::pair<std::string, value>> items_;
};

}  // namespace bench
