#include "admin/stored_stats_cache.hpp"

#include <utility>

namespace broker::admin {

stored_stats_cache::stored_stats_cache(std::function<stats()> fetch, clock::duration ttl,
                                       std::function<clock::time_point()> now)
    : fetch_(std::move(fetch)), ttl_(ttl), now_(std::move(now)) {}

std::shared_ptr<const stored_stats_cache::stats> stored_stats_cache::get() {
  std::lock_guard lock(mutex_);
  const auto now = now_();
  if (!value_ || now - fetched_at_ >= ttl_) {
    value_ = std::make_shared<const stats>(fetch_());
    fetched_at_ = now;
  }
  return value_;
}

void stored_stats_cache::invalidate() {
  std::lock_guard lock(mutex_);
  value_.reset();
}

}  // namespace broker::admin
