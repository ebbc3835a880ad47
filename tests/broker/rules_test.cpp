#include "auth/rules.hpp"

#include "auth/placeholder.hpp"
#include "auth_test_helpers.hpp"
#include "broker/destination_pattern.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker::auth {
namespace {

principal user(std::string name, std::vector<std::string> roles = {}) {
  principal p;
  p.user = std::move(name);
  p.roles = std::move(roles);
  return p;
}

TEST(AuthorizerTest, UserRuleGrantsTheNamedUserOnly) {
  const auto a = make_authorizer({{.users = {"alice"}, .subscribe = {"/topic/news.**"}}});
  EXPECT_TRUE(a.allows(user("alice"), action::subscribe, "/topic/news.sport"));
  EXPECT_FALSE(a.allows(user("bob"), action::subscribe, "/topic/news.sport"));
  EXPECT_FALSE(a.allows(user("alice"), action::subscribe, "/topic/weather"));
}

TEST(AuthorizerTest, SubscribeGrantDoesNotAllowSend) {
  const auto a = make_authorizer({{.users = {"alice"}, .subscribe = {"/topic/news"}}});
  EXPECT_TRUE(a.allows(user("alice"), action::subscribe, "/topic/news"));
  EXPECT_FALSE(a.allows(user("alice"), action::send, "/topic/news"));
}

TEST(AuthorizerTest, RoleRuleGrantsEveryHolderOfTheRole) {
  const auto a = make_authorizer({{.roles = {"tutor"}, .send = {"/topic/room.*"}}});
  EXPECT_TRUE(a.allows(user("carol", {"staff", "tutor"}), action::send, "/topic/room.7"));
  EXPECT_FALSE(a.allows(user("dave", {"student"}), action::send, "/topic/room.7"));
  EXPECT_FALSE(a.allows(user("tutor"), action::send, "/topic/room.7"));  // a name, not a role
}

TEST(AuthorizerTest, WildcardUserGrantsEveryPrincipal) {
  const auto a = make_authorizer({{.users = {"*"}, .subscribe = {"/topic/public.**"}}});
  EXPECT_TRUE(a.allows(user("anyone"), action::subscribe, "/topic/public.x"));
  EXPECT_FALSE(a.allows(user("anyone"), action::subscribe, "/topic/private.x"));
}

principal of_kind(principal_kind kind, std::string name) {
  principal p = user(std::move(name));
  p.kind = kind;
  return p;
}

TEST(AuthorizerTest, WildcardUserDoesNotGrantTheAnonymousPrincipal) {
  const auto a = make_authorizer({{.users = {"*"}, .subscribe = {"/topic/members"}}});
  EXPECT_TRUE(
      a.allows(of_kind(principal_kind::user, "alice"), action::subscribe, "/topic/members"));
  EXPECT_TRUE(a.allows(of_kind(principal_kind::token, "bob"), action::subscribe, "/topic/members"));
  EXPECT_FALSE(a.allows(of_kind(principal_kind::anonymous, "anonymous"), action::subscribe,
                        "/topic/members"));
}

TEST(AuthorizerTest, AnonymousIsGrantedOnlyByItsOwnName) {
  const auto a = make_authorizer({{.users = {"anonymous"}, .subscribe = {"/topic/lobby"}}});
  EXPECT_TRUE(
      a.allows(of_kind(principal_kind::anonymous, "anonymous"), action::subscribe, "/topic/lobby"));
  EXPECT_FALSE(a.allows(of_kind(principal_kind::token, "anonymous"), action::subscribe,
                        "/topic/lobby"));  // a token whose sub is "anonymous"
}

TEST(AuthorizerTest, TokenSubjectDoesNotShareAStaticUsersGrants) {
  const auto a = make_authorizer({{.users = {"council"}, .send = {"/topic/council"}},
                                  {.subjects = {"alice"}, .send = {"/topic/alice"}}});
  EXPECT_TRUE(a.allows(of_kind(principal_kind::user, "council"), action::send, "/topic/council"));
  EXPECT_FALSE(a.allows(of_kind(principal_kind::token, "council"), action::send, "/topic/council"));
  EXPECT_TRUE(a.allows(of_kind(principal_kind::token, "alice"), action::send, "/topic/alice"));
  EXPECT_FALSE(a.allows(of_kind(principal_kind::user, "alice"), action::send, "/topic/alice"));
}

TEST(AuthorizerTest, WildcardSubjectGrantsTokenHoldersOnly) {
  const auto a = make_authorizer({{.subjects = {"*"}, .subscribe = {"/topic/app"}}});
  EXPECT_TRUE(a.allows(of_kind(principal_kind::token, "x"), action::subscribe, "/topic/app"));
  EXPECT_FALSE(a.allows(of_kind(principal_kind::user, "x"), action::subscribe, "/topic/app"));
  EXPECT_FALSE(
      a.allows(of_kind(principal_kind::anonymous, "anonymous"), action::subscribe, "/topic/app"));
}

TEST(AuthorizerTest, UserPlaceholderLimitsEachUserToTheirOwnDestinations) {
  const auto a = make_authorizer({{.roles = {"student"}, .subscribe = {"/topic/dm.{user}.*"}}});
  const auto alice = user("alice", {"student"});
  EXPECT_TRUE(a.allows(alice, action::subscribe, "/topic/dm.alice.inbox"));
  EXPECT_FALSE(a.allows(alice, action::subscribe, "/topic/dm.bob.inbox"));
  EXPECT_FALSE(a.allows(alice, action::subscribe, "/topic/dm.alice"));
  EXPECT_TRUE(a.allows(user("bob", {"student"}), action::subscribe, "/topic/dm.bob.inbox"));
}

TEST(AuthorizerTest, TokenGrantsAllowWithoutAnyRule) {
  const auto a = make_authorizer({});
  auto p = user("alice");
  EXPECT_FALSE(a.allows(p, action::send, "/app/chat"));
  p.token_grants.add(action::send, *destination_pattern::parse("/app/chat", nullptr));
  EXPECT_TRUE(a.allows(p, action::send, "/app/chat"));
  EXPECT_FALSE(a.allows(p, action::subscribe, "/app/chat"));
}

TEST(AuthorizerTest, DeniesByDefault) {
  const auto a = make_authorizer({{.users = {"alice"}, .subscribe = {"/topic/**"}}});
  EXPECT_FALSE(a.allows(user("bob"), action::subscribe, "/topic/a"));
  EXPECT_FALSE(a.allows(user("bob"), action::send, "/topic/a"));
  EXPECT_TRUE(make_authorizer({}).permissions_for(user("alice")).empty());
}

TEST(AuthorizerTest, AllowAllAllowsEverything) {
  const auto p = authorizer::allow_all().permissions_for(user("anyone"));
  EXPECT_TRUE(p.grants_everything());
  EXPECT_TRUE(p.allows(action::send, "/queue/anything"));
  EXPECT_TRUE(p.allows(action::subscribe, "/topic/a.b.c"));
}

// Placeholder-unsafe names are refused rather than escaped (rules.hpp, `rule`): their `{user}`
// patterns grant nothing, while their other grants still apply.
TEST(AuthorizerTest, UserNameWithSeparatorOrStarCannotWidenAPlaceholder) {
  const auto a = make_authorizer({
      {.users = {"*"}, .subscribe = {"/topic/dm.{user}", "/topic/dm.{user}.*"}},
      {.users = {"*"}, .subscribe = {"/topic/public"}},
  });
  for (std::string_view name : {"*", "**", "bob.*", "bob.**", "bob/x", "bob.inbox", "a*"}) {
    const auto p = a.permissions_for(user(std::string(name)));
    EXPECT_FALSE(p.allows(action::subscribe, "/topic/dm.bob")) << name;
    EXPECT_FALSE(p.allows(action::subscribe, "/topic/dm.bob.inbox")) << name;
    EXPECT_FALSE(p.allows(action::subscribe, "/topic/dm.bob.inbox.x")) << name;
    EXPECT_TRUE(p.allows(action::subscribe, "/topic/public")) << name;
    EXPECT_EQ(p.patterns(action::subscribe), std::vector<std::string>{"/topic/public"}) << name;
  }
  EXPECT_FALSE(is_placeholder_safe(""));
  EXPECT_FALSE(is_placeholder_safe("a.b"));
  EXPECT_TRUE(is_placeholder_safe("alice-smith_2"));
}

TEST(AuthorizerTest, WildcardPrefixesKeepTheMatcherSemantics) {
  const auto a = make_authorizer({{.users = {"*"},
                                   .subscribe = {"/topic/lost-item.**", "**", "/topic/*.room"},
                                   .send = {"/topic/lost-item.**", "*/x"}}});
  const auto p = a.permissions_for(user("u"));
  EXPECT_TRUE(p.allows(action::send, "/topic/lost-item"));  // "**" may match nothing
  EXPECT_TRUE(p.allows(action::send, "/topic/lost-item.42.room.7"));
  EXPECT_FALSE(p.allows(action::send, "/topic/lost-items"));
  // Issue 12: the '.' before "**" matches only '.', so the grant stops at "/topic/lost-item/".
  EXPECT_FALSE(p.allows(action::send, "/topic/lost-item/42"));
  EXPECT_FALSE(p.allows(action::send, "/topic/lost-item/42.room.7"));
  EXPECT_FALSE(p.allows(action::send, "/topic/lost/item"));
  EXPECT_TRUE(p.allows(action::send, "a/x"));
  EXPECT_FALSE(p.allows(action::send, "a.x"));
  EXPECT_TRUE(p.allows(action::subscribe, "/queue/anything.at.all"));
}

TEST(AuthorizerTest, PermissionsMergeRulesAndTokenGrants) {
  const auto a = make_authorizer({
      {.users = {"alice"}, .send = {"/app/a"}},
      {.roles = {"r"}, .send = {"/app/{user}"}},
  });
  auto p = user("alice", {"r"});
  p.token_grants.add(action::send, *destination_pattern::parse("/app/token", nullptr));
  const auto perms = a.permissions_for(p);
  EXPECT_EQ(perms.patterns(action::send),
            (std::vector<std::string>{"/app/token", "/app/a", "/app/alice"}));
}

TEST(AuthorizerTest, CreateCollectsEveryProblemWithItsRule) {
  const auto r = authorizer::create({
      {.users = {"alice"}, .subscribe = {"/topic/ok"}},
      {.subscribe = {"/topic/a"}},                                        // applies to nobody
      {.users = {"alice"}},                                               // grants nothing
      {.users = {"alice"}, .subscribe = {"/topic/a*"}, .send = {""}},     // two bad patterns
      {.roles = {"r"}, .send = {"/topic/{username}", "/topic/{user}*"}},  // placeholders
      {.users = {""}, .send = {"/x"}},
  });
  EXPECT_FALSE(r.value);
  std::vector<std::size_t> rules;
  for (const auto& e : r.errors) rules.push_back(e.rule);
  EXPECT_EQ(rules, (std::vector<std::size_t>{1, 2, 3, 3, 4, 4, 5}));
  EXPECT_TRUE(contains(r.errors[0].what, "applies to nobody")) << r.errors[0].what;
  EXPECT_TRUE(contains(r.errors[1].what, "grants nothing")) << r.errors[1].what;
  EXPECT_TRUE(contains(r.errors[2].what, "subscribe[0]")) << r.errors[2].what;
  EXPECT_TRUE(contains(r.errors[4].what, "unknown placeholder")) << r.errors[4].what;
}

}  // namespace
}  // namespace broker::auth
