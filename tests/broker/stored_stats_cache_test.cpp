#include "admin/stored_stats_cache.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace broker::admin {
namespace {

using namespace std::chrono_literals;

// A journal stand-in that counts its stats queries, and a clock the test moves.
struct fixture {
  std::atomic<int> fetches{0};
  stored_stats_cache::clock::time_point now{};
  stored_stats_cache cache{[this] {
                             ++fetches;
                             return stored_stats_cache::stats{
                                 {.destination = "/topic/a", .stored = std::uint64_t(fetches)}};
                           },
                           1s, [this] { return now; }};
};

// Issue 12 item 14: every /metrics or /api/stats scrape counted every destination's rows.
TEST(StoredStatsCacheTest, ScrapesWithinTheTtlCauseOneQuery) {
  fixture f;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(f.cache.get()->at(0).stored, 1u);
    f.now += 9ms;  // 100 scrapes over 0.9 s
  }
  EXPECT_EQ(f.fetches, 1);
}

TEST(StoredStatsCacheTest, QueriesAgainOnceTheTtlHasPassed) {
  fixture f;
  f.cache.get();
  f.now += 1s;
  EXPECT_EQ(f.cache.get()->at(0).stored, 2u);
  f.now += 999ms;
  f.cache.get();
  EXPECT_EQ(f.fetches, 2);
}

TEST(StoredStatsCacheTest, InvalidateMakesTheNextGetQuery) {
  fixture f;
  f.cache.get();
  f.cache.invalidate();
  EXPECT_EQ(f.cache.get()->at(0).stored, 2u);
  EXPECT_EQ(f.fetches, 2);
}

TEST(StoredStatsCacheTest, ConcurrentScrapesShareOneQuery) {
  fixture f;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 50; ++j) f.cache.get();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(f.fetches, 1);
}

TEST(StoredStatsCacheTest, FailedQueryCachesNothing) {
  int calls = 0;
  stored_stats_cache cache(
      [&]() -> stored_stats_cache::stats {
        if (++calls == 1) throw std::runtime_error("journal busy");
        return {};
      },
      1s);
  EXPECT_THROW(cache.get(), std::runtime_error);
  EXPECT_NO_THROW(cache.get());
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace broker::admin
