#pragma once

#include <chrono>
#include <cstdint>

namespace broker {

// A token bucket holding one second's worth of events at `rate_per_second`: bursts up to the
// rate pass, a sustained excess does not. 0 means unlimited. Used for limits.max_publish_rate
// (SENDs per connection). Not thread-safe: one connection's.
class token_bucket {
 public:
  explicit token_bucket(std::uint64_t rate_per_second) : rate_(rate_per_second) {}

  // Takes one token at time `now`; false when none is left.
  bool take(std::chrono::steady_clock::time_point now);

 private:
  std::uint64_t rate_;
  double tokens_ = 0;
  std::chrono::steady_clock::time_point refilled_{};  // epoch: never taken, the bucket is full
};

}  // namespace broker
