#include "routing/presence.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace broker {
namespace {

TEST(PresenceTest, AUserCountsOnceAndLeavesWithTheLastSubscription) {
  presence p;
  EXPECT_EQ(p.enter("/topic/r", "alice"), 1u);
  EXPECT_EQ(p.enter("/topic/r", "bob"), 2u);
  EXPECT_EQ(p.enter("/topic/r", "alice"), std::nullopt) << "a second device: still one";
  EXPECT_EQ(p.count("/topic/r"), 2u);
  EXPECT_EQ(p.members("/topic/r", 10), (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(p.leave("/topic/r", "alice"), std::nullopt) << "one of her subscriptions is left";
  EXPECT_EQ(p.leave("/topic/r", "alice"), 1u);
  EXPECT_EQ(p.leave("/topic/r", "alice"), std::nullopt) << "not there any more";
  EXPECT_EQ(p.leave("/topic/r", "bob"), 0u);
  EXPECT_EQ(p.count("/topic/r"), 0u);
  EXPECT_TRUE(p.members("/topic/r", 10).empty());
}

TEST(PresenceTest, RoomsAreSeparateAndMembersAreCapped) {
  presence p;
  for (const char* u : {"d", "c", "b", "a"}) p.enter("/topic/one", u);
  p.enter("/topic/two", "z");
  EXPECT_EQ(p.members("/topic/one", 2), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.count("/topic/two"), 1u);
  EXPECT_EQ(p.leave("/topic/two", "a"), std::nullopt);
}

}  // namespace
}  // namespace broker
