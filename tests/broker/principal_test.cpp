#include "auth/principal.hpp"

#include "broker/destination_pattern.hpp"

#include <gtest/gtest.h>

namespace broker::auth {
namespace {

TEST(PermissionsTest, MergeKeepsBothSidesGrants) {
  permissions a, b;
  a.add(action::send, *destination_pattern::parse("/app/a", nullptr));
  b.add(action::subscribe, *destination_pattern::parse("/topic/*", nullptr));
  a.merge(b);
  EXPECT_TRUE(a.allows(action::send, "/app/a"));
  EXPECT_TRUE(a.allows(action::subscribe, "/topic/x"));
  EXPECT_FALSE(a.allows(action::send, "/topic/x"));
  a.merge(permissions::all());
  EXPECT_TRUE(a.allows(action::send, "/anything"));
}

}  // namespace
}  // namespace broker::auth
