#include "session/token_bucket.hpp"

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

TEST(TokenBucketTest, ZeroRateNeverRefuses) {
  broker::token_bucket b(0);
  auto t = clock_type::now();
  for (int i = 0; i < 10'000; ++i) EXPECT_TRUE(b.take(t));
}

TEST(TokenBucketTest, ABurstUpToTheRatePassesThenTheNextIsRefused) {
  broker::token_bucket b(5);
  auto t = clock_type::now();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.take(t)) << i;
  EXPECT_FALSE(b.take(t));
}

TEST(TokenBucketTest, RefillsAtTheRateAndNeverBeyondOneSecondsWorth) {
  broker::token_bucket b(10);
  auto t = clock_type::now();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b.take(t));
  EXPECT_FALSE(b.take(t));
  EXPECT_TRUE(b.take(t + 100ms));  // one token back after a tenth of a second
  EXPECT_FALSE(b.take(t + 100ms));
  t += 1h;  // a long pause refills to the rate, not to 36,000
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.take(t)) << i;
  EXPECT_FALSE(b.take(t));
}

}  // namespace
