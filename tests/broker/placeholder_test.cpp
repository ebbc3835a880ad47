#include "auth/placeholder.hpp"

#include <gtest/gtest.h>

namespace broker::auth {
namespace {

TEST(PlaceholderTest, ExpandUserReplacesEveryPlaceholder) {
  EXPECT_EQ(detail::expand_user("/a/{user}.{user}", "bo"), "/a/bo.bo");
  EXPECT_EQ(detail::expand_user("/a/b", "x.y"), "/a/b");  // nothing to expand: unchanged
  EXPECT_FALSE(detail::expand_user("/a/{user}", "x.y"));
  EXPECT_FALSE(detail::has_unknown_placeholder("/a/{user}-x"));
  EXPECT_TRUE(detail::has_unknown_placeholder("/a/{user"));
  EXPECT_TRUE(detail::has_unknown_placeholder("/a/}"));
}

}  // namespace
}  // namespace broker::auth
