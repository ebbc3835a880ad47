#include "metrics.hpp"

#include <algorithm>

namespace broker {

const std::array<std::string_view, 4> transport_names = {"tcp", "tcp+tls", "websocket",
                                                         "websocket+tls"};

std::size_t transport_index(std::string_view transport) noexcept {
  auto it = std::find(transport_names.begin(), transport_names.end(), transport);
  return it == transport_names.end() ? 0 : static_cast<std::size_t>(it - transport_names.begin());
}

atomic_histogram::atomic_histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void atomic_histogram::observe(double value) noexcept {
  auto bucket = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                         bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double old = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(old, old + value, std::memory_order_relaxed)) {
  }
}

admin::histogram atomic_histogram::snapshot() const {
  admin::histogram h;
  h.bounds = bounds_;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    h.counts.push_back(cumulative);
  }
  h.count = count_.load(std::memory_order_relaxed);
  h.sum = sum_.load(std::memory_order_relaxed);
  return h;
}

}  // namespace broker
