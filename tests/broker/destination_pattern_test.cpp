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
  EXPECT_TRUE(match("/topic/lost-item.**", "/topic/lost-item."));
  EXPECT_TRUE(match("**", "/anything/at.all"));
  EXPECT_TRUE(match("**", ""));
  EXPECT_TRUE(match(".**", ".a"));
  EXPECT_TRUE(match(".**", ""));
  EXPECT_FALSE(match(".**", "/a"));
  EXPECT_FALSE(match(".**", "a.b"));
  EXPECT_TRUE(match("/topic/*.**", "/topic/a"));  // not a plain prefix: matched in general
  EXPECT_FALSE(match("/topic/*.**", "/topic"));
}

TEST(DestinationPatternTest, SeparatorsMustMatch) {
  EXPECT_FALSE(match("/topic/a.b", "/topic/a/b"));
  EXPECT_FALSE(match("/topic.*", "/topic/a"));
}

// Issue 12: the README's example. The '.' written before "**" matches only a '.', so a grant or
// journal rule for "/topic/lost-item.**" does not reach "/topic/lost-item/..." (the fast path).
TEST(DestinationPatternTest, TrailingDoubleStarDoesNotStartAtASlashAfterADot) {
  EXPECT_FALSE(match("/topic/lost-item.**", "/topic/lost-item/42"));
  EXPECT_FALSE(match("/topic/lost-item.**", "/topic/lost-item/42.room.7"));
  EXPECT_FALSE(match("/topic/lost-item.**", "/topic/lost-item/"));
  EXPECT_FALSE(match("/topic/lost-item.42.**", "/topic/lost-item.42/room"));
  EXPECT_TRUE(match("/topic/lost-item/**", "/topic/lost-item/42"));
  EXPECT_FALSE(match("/topic/lost-item/**", "/topic/lost-item.42"));
}

// The same in the general matcher: "**" that is not a plain trailing prefix.
TEST(DestinationPatternTest, InnerDoubleStarDoesNotStartAtTheOtherSeparator) {
  EXPECT_FALSE(match("/topic/lost-item.**.room", "/topic/lost-item/42.room"));
  EXPECT_TRUE(match("/topic/lost-item.**.room", "/topic/lost-item.42.room"));
  EXPECT_TRUE(match("/topic/lost-item.**.room", "/topic/lost-item.room"));  // "**" took none
  EXPECT_FALSE(match("/topic/lost-item.**.room", "/topic/lost-item/room"));
  EXPECT_FALSE(match("/topic/*.**", "/topic/a/b"));
  EXPECT_TRUE(match("/topic/*.**", "/topic/a.b"));
  EXPECT_FALSE(match("/topic/lost-item.*.**", "/topic/lost-item.42/x"));
  EXPECT_FALSE(match("/topic/lost-item.*.**", "/topic/lost-item/42.x"));
}

// After its first segment "**" takes the destination's segments whatever joins them, as the
// README says ("any number of them", segments end at '.' or '/').
TEST(DestinationPatternTest, DoubleStarTakesLaterSegmentsAfterEitherSeparator) {
  EXPECT_TRUE(match("/topic/lost-item.**", "/topic/lost-item.42/x"));
  EXPECT_TRUE(match("/topic/**", "/topic/a/b/c"));
  EXPECT_TRUE(match("/topic/**", "/topic/a.b"));
  EXPECT_TRUE(match("/topic/**.room", "/topic/a/b.room"));
  EXPECT_FALSE(match("/topic/**.room", "/topic/a/b/room"));
}

TEST(DestinationPatternTest, StarTakesOneSegmentAndDoubleStarAnyNumber) {
  EXPECT_FALSE(match("/topic/a.*", "/topic/a"));
  EXPECT_TRUE(match("/topic/a.*", "/topic/a.b"));
  EXPECT_FALSE(match("/topic/a.*", "/topic/a.b.c"));
  EXPECT_FALSE(match("/topic/a.*", "/topic/a/b"));
  EXPECT_FALSE(match("/topic/a.*", "/topic/a.b/c"));
  EXPECT_TRUE(match("/topic/a.**", "/topic/a"));
  EXPECT_TRUE(match("/topic/a.**", "/topic/a.b"));
  EXPECT_TRUE(match("/topic/a.**", "/topic/a.b.c"));
  EXPECT_FALSE(match("/topic/*", "/topic/a.b"));
  EXPECT_TRUE(match("/topic/*/x", "/topic/a/x"));
  EXPECT_FALSE(match("/topic/*/x", "/topic/a.b/x"));
}

// "a." ends in an empty segment, "a..b" has one in the middle: "*" and "**" take them like any
// other segment, and a literal does not.
TEST(DestinationPatternTest, EmptySegmentsAreSegments) {
  EXPECT_TRUE(match("/topic/a.*", "/topic/a."));
  EXPECT_FALSE(match("/topic/a.*", "/topic/a..b"));
  EXPECT_TRUE(match("/topic/a.*.b", "/topic/a..b"));
  EXPECT_TRUE(match("/topic/a.**", "/topic/a..b"));
  EXPECT_TRUE(match("/topic/*", "/topic/"));
  EXPECT_TRUE(match("/topic/**", "/topic//x"));
  EXPECT_FALSE(match("/topic/a.b", "/topic/a..b"));
  EXPECT_FALSE(match("/topic/a.**", "/topic/a/"));
  EXPECT_FALSE(match("/topic/a.*.**", "/topic/a./x"));
  EXPECT_TRUE(match("/topic/a.*.**", "/topic/a..x"));
}

// "p.**" is matched by comparing strings, "p.**.**" (the same set) by the segment matcher:
// they must agree on every edge.
TEST(DestinationPatternTest, PrefixFastPathAgreesWithTheSegmentMatcher) {
  for (std::string_view prefix : {"/topic/lost-item.", "/topic/lost-item/", "/topic/a.b."}) {
    const std::string fast = std::string(prefix) + "**";
    const std::string general = fast + std::string(1, prefix.back()) + "**";
    for (std::string_view d :
         {"/topic/lost-item", "/topic/lost-item.42", "/topic/lost-item/42", "/topic/lost-item.",
          "/topic/lost-item/", "/topic/lost-item.42/x", "/topic/lost-item/42.x",
          "/topic/lost-itemX", "/topic/lost-ite", "/topic/a.b", "/topic/a.b.c", "/topic/a.b/c",
          "/topic/a/b", "", "/"}) {
      EXPECT_EQ(match(fast, d), match(general, d)) << fast << " vs " << general << " on " << d;
    }
  }
}

TEST(DestinationPatternTest, RejectsStarInsideASegment) {
  std::string error;
  EXPECT_FALSE(destination_pattern::parse("/topic/a*", &error));
  EXPECT_NE(error.find("whole segments"), std::string::npos);
  EXPECT_FALSE(destination_pattern::parse("", &error));
}

}  // namespace
}  // namespace broker
