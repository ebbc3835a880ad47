#include "broker/destination_pattern.hpp"

#include <gtest/gtest.h>

namespace broker {
namespace {

bool match(std::string_view pattern, std::string_view destination) {
  std::string error;
  auto p = destination_pattern::parse(pattern, &error);
  EXPECT_TRUE(p.has_value()) << error;
  return p && p->matches(destination);
}

TEST(DestinationPatternTest, LiteralMatchesOnlyItself) {
  EXPECT_TRUE(match("/topic/a.b", "/topic/a.b"));
  EXPECT_FALSE(match("/topic/a.b", "/topic/a.c"));
  EXPECT_FALSE(match("/topic/a.b", "/topic/a.b.c"));
  EXPECT_FALSE(match("/topic/a.b", "/topic/a"));
}

TEST(DestinationPatternTest, StarMatchesExactlyOneSegment) {
  EXPECT_TRUE(match("/topic/lost-item.*.room.*", "/topic/lost-item.42.room.7"));
  EXPECT_FALSE(match("/topic/lost-item.*.room.*", "/topic/lost-item.42.room"));
  EXPECT_FALSE(match("/topic/*.room", "/topic/a.b.room"));
}

TEST(DestinationPatternTest, DoubleStarMatchesAnyNumberOfSegmentsIncludingNone) {
  EXPECT_TRUE(match("/topic/lost-item.**", "/topic/lost-item"));
  EXPECT_TRUE(match("/topic/lost-item.**", "/topic/lost-item.42"));
  EXPECT_TRUE(match("/topic/lost-item.**", "/topic/lost-item.42.room.7"));
  EXPECT_TRUE(match("/topic/**", "/topic/a/b.c"));
  EXPECT_FALSE(match("/topic/**", "/queue/a"));
  EXPECT_TRUE(match("/topic/**.room", "/topic/a.b.room"));
}

// A trailing "**" is matched by comparing the prefix; these pin down its edges.
TEST(DestinationPatternTest, TrailingDoubleStarNeedsASeparatorAfterThePrefix) {
  EXPECT_FALSE(match("/topic/lost-item.**", "/topic/lost-itemX"));
  EXPECT_FALSE(match("/topic/lost-item.**", "/topic/lost-ite"));
  EXPECT_TRUE(match("/topic/lost-item.**", "/topic/lost-item/x"));  // "**" spans '/' too
  EXPECT_TRUE(match("/topic/lost-item.**", "/topic/lost-item."));
  EXPECT_TRUE(match("**", "/anything/at.all"));
  EXPECT_TRUE(match("**", ""));
  EXPECT_TRUE(match(".**", "/a"));
  EXPECT_FALSE(match(".**", "a.b"));
  EXPECT_TRUE(match("/topic/*.**", "/topic/a"));  // not a plain prefix: matched in general
  EXPECT_FALSE(match("/topic/*.**", "/topic"));
}

TEST(DestinationPatternTest, SeparatorsMustMatch) {
  EXPECT_FALSE(match("/topic/a.b", "/topic/a/b"));
  EXPECT_FALSE(match("/topic.*", "/topic/a"));
}

TEST(DestinationPatternTest, RejectsStarInsideASegment) {
  std::string error;
  EXPECT_FALSE(destination_pattern::parse("/topic/a*", &error));
  EXPECT_NE(error.find("whole segments"), std::string::npos);
  EXPECT_FALSE(destination_pattern::parse("", &error));
}

}  // namespace
}  // namespace broker
