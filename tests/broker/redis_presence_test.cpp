#include "engine/redis/presence_store.hpp"
#include "redis_fixture.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

// Presence across nodes (x-presence) as Redis keeps it, against a real redis-server of the
// test's own: two "nodes" are two node names on one connection, and a second connection
// listens to the channel the joins and leaves go to.

namespace {

using broker::redis::presence_store;
using stompd_test::RedisConnectionTest;
using namespace std::chrono_literals;

using event = std::tuple<std::string, std::string, std::size_t>;  // kind, user, count

class RedisPresenceStoreTest : public RedisConnectionTest {
 protected:
  void SetUp() override {
    c_ = connected();
    load(store_, *c_);
    listener_ = connected();
    bool subscribed = false;
    listener_->subscribe(
        channel,
        [this](std::string payload) {
          auto e = presence_store::parse_event(payload);
          ASSERT_TRUE(e) << payload;
          events_.emplace_back(e->kind, e->user, e->count);
        },
        [&](boost::system::error_code ec) {
          EXPECT_FALSE(ec) << ec.message();
          subscribed = true;
        });
    run_until([&] { return subscribed; });
  }
  void TearDown() override {
    c_->close();
    listener_->close();
  }

  std::size_t enter(std::string_view node, std::string_view user) {
    std::optional<presence_store::present> p;
    store_.enter(*c_, room, channel, node, user, [&](presence_store::present got) { p = got; });
    run_until([&] { return p.has_value(); });
    EXPECT_FALSE(p->ec) << p->ec.message() << ": " << p->error;
    return p->count;
  }
  presence_store::present members(std::size_t limit = 100) {
    std::optional<presence_store::present> p;
    store_.members(*c_, room, channel, limit, [&](presence_store::present got) { p = got; });
    run_until([&] { return p.has_value(); });
    EXPECT_FALSE(p->ec) << p->ec.message() << ": " << p->error;
    return *p;
  }
  // The events published so far: those of every call answered before a members() call.
  std::vector<event> events() {
    members();  // every call before it was answered, so its events were published
    run_for(50ms);
    return std::exchange(events_, {});
  }

  const std::string room = "/topic/room.7";
  const std::string channel = "{stompd-test:/topic/room.7}:new";
  presence_store store_{"stompd-test:", 400ms};
  std::shared_ptr<broker::redis::connection> c_, listener_;
  std::vector<event> events_;
};

TEST_F(RedisPresenceStoreTest, AUserCountsOnceWhateverNodesHaveItAndJoinsOnce) {
  EXPECT_EQ(enter("node-a", "alice"), 1u);
  EXPECT_EQ(enter("node-b", "alice"), 1u);  // her phone, on another node
  EXPECT_EQ(enter("node-a", "alice"), 1u);  // entering again only renews
  EXPECT_EQ(enter("node-b", "bob"), 2u);
  EXPECT_EQ(events(), (std::vector<event>{{"join", "alice", 1}, {"join", "bob", 2}}));
}

TEST_F(RedisPresenceStoreTest, AUserLeavesWithTheLastNodeThatHasIt) {
  enter("node-a", "alice");
  enter("node-b", "alice");
  enter("node-a", "council");
  events();
  store_.leave(*c_, room, channel, "node-a", "alice");
  EXPECT_EQ(events(), std::vector<event>{});
  EXPECT_EQ(members().count, 2u);
  store_.leave(*c_, room, channel, "node-b", "alice");
  store_.leave(*c_, room, channel, "node-b", "alice");  // once only
  EXPECT_EQ(events(), (std::vector<event>{{"leave", "alice", 1}}));
  EXPECT_EQ(members().members, std::vector<std::string>{"council"});
}

TEST_F(RedisPresenceStoreTest, TheUsersOfANodeThatStopsRenewingLeaveAfterTheTimeout) {
  enter("node-a", "alice");
  enter("node-b", "bob");
  enter("node-a", "carol");
  enter("node-b", "carol");  // also on the node that lives
  events();
  // node-b keeps vouching; node-a (killed) does not.
  for (int i = 0; i < 8; ++i) {
    store_.renew(*c_, room, channel, "node-b", {"bob", "carol"});
    run_for(100ms);
  }
  EXPECT_EQ(events(), (std::vector<event>{{"leave", "alice", 2}}));
  EXPECT_EQ(members().members, (std::vector<std::string>{"bob", "carol"}));
}

TEST_F(RedisPresenceStoreTest, MembersAreSortedAndLimitedAndTheCountIsAll) {
  for (auto user : {"dave", "alice", "carol", "bob"}) enter("node-a", user);
  auto p = members(2);
  EXPECT_EQ(p.count, 4u);
  EXPECT_EQ(p.members, (std::vector<std::string>{"alice", "bob"}));
}

TEST(RedisPresenceEventTest, OnlyPresenceEventsParse) {
  auto e = presence_store::parse_event("presence join 3 a user with spaces");
  ASSERT_TRUE(e);
  EXPECT_EQ(
      std::tie(e->kind, e->count, e->user),
      std::make_tuple(std::string("join"), std::size_t{3}, std::string("a user with spaces")));
  EXPECT_FALSE(presence_store::parse_event("7 1700000000000 ab12 0\n"));  // an announcement
  EXPECT_FALSE(presence_store::parse_event("0123456789ab 5 0\nbody"));    // a live message
  EXPECT_FALSE(presence_store::parse_event("presence wave 3 alice"));
  EXPECT_FALSE(presence_store::parse_event("presence join x alice"));
  EXPECT_FALSE(presence_store::parse_event("presence join 3"));
}

}  // namespace
