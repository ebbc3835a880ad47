#include "session/token_bucket.hpp"

#include <algorithm>

namespace broker {

bool token_bucket::take(std::chrono::steady_clock::time_point now) {
  if (rate_ == 0) return true;
  const auto full = static_cast<double>(rate_);
  if (refilled_ == std::chrono::steady_clock::time_point{}) {
    tokens_ = full;
  } else {
    std::chrono::duration<double> elapsed = now - refilled_;
    tokens_ = std::min(full, tokens_ + elapsed.count() * full);
  }
  refilled_ = now;
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

}  // namespace broker
