#pragma once

#include "storage/journal.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace broker::admin {

// What the journal stores per destination (storage::journal::stats()), for /metrics,
// /api/stats and /api/destinations, fetched at most once per `ttl` whatever the request
// rate. A fetch counts every destination's rows on a reader connection, so without this an
// unauthenticated scraper polling /metrics could keep the journal's readers busy and
// compete with replays (issue 12 item 14). Counts are up to `ttl` old; invalidate() after a
// purge so the purged destination shows its new count at once.
//
// Thread-safe: concurrent callers within one expiry wait for one fetch rather than each
// running their own. Owned by live_view; `fetch` must outlive it.
class stored_stats_cache {
 public:
  using clock = std::chrono::steady_clock;
  using stats = std::vector<storage::destination_stats>;

  stored_stats_cache(std::function<stats()> fetch, clock::duration ttl,
                     std::function<clock::time_point()> now = &clock::now);

  // The cached value, fetched again when older than ttl. Exceptions from `fetch` propagate
  // and leave nothing cached.
  std::shared_ptr<const stats> get();
  void invalidate();

 private:
  const std::function<stats()> fetch_;
  const clock::duration ttl_;
  const std::function<clock::time_point()> now_;
  std::mutex mutex_;
  std::shared_ptr<const stats> value_;  // null: nothing cached
  clock::time_point fetched_at_{};
};

}  // namespace broker::admin
