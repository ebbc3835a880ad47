// held_bytes: what messages and open transactions count against limits.max_held_bytes_total.
#include "routing/held_bytes.hpp"

#include "routing/publish.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace {

using broker::held_bytes;

TEST(HeldBytesTest, AClaimCountsUntilItIsDestroyedAndMovesWithoutCountingTwice) {
  held_bytes held(100);
  {
    held_bytes::claim a(held, 60);
    EXPECT_EQ(held.bytes(), 60u);
    EXPECT_FALSE(held.over());
    a.grow(50);
    EXPECT_EQ(held.bytes(), 110u);
    EXPECT_TRUE(held.over());
    held_bytes::claim b(std::move(a));
    EXPECT_EQ(held.bytes(), 110u);
    EXPECT_EQ(b.bytes(), 110u);
    held_bytes::claim c(held, 5);
    c = std::move(b);  // c's own 5 are given back
    EXPECT_EQ(held.bytes(), 110u);
  }
  EXPECT_EQ(held.bytes(), 0u);
}

TEST(HeldBytesTest, AMessageCountsItselfOnceHoweverManyShareIt) {
  held_bytes held(1 << 20);
  const stomp::header_view h[] = {{"content-type", "text/plain"}};
  auto m = broker::make_live_message(held, "/topic/a", "1-1", h, std::string(1000, 'x'));
  const auto one = held.bytes();
  EXPECT_GT(one, 1000u);
  EXPECT_LT(one, 1000u + 512u);
  std::vector<broker::message_ptr> outboxes(100, m);  // a hundred subscribers' deliveries
  EXPECT_EQ(held.bytes(), one);
  m.reset();
  EXPECT_EQ(held.bytes(), one);
  outboxes.clear();
  EXPECT_EQ(held.bytes(), 0u);
}

TEST(HeldBytesTest, StoredMessagesCountToo) {
  held_bytes held(1 << 20);
  storage::record r;
  r.destination = "/topic/a";
  r.seq = 7;
  r.body = std::string(500, 'y');
  auto m = broker::make_stored_message(held, r, "3f2a9c01d4e7", true);
  EXPECT_GT(held.bytes(), 500u);
  m.reset();
  EXPECT_EQ(held.bytes(), 0u);
}

}  // namespace
