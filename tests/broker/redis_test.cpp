#include "engine/redis/connection.hpp"
#include "redis_server.hpp"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

// The Redis engine's client against a real redis-server of the test's own.

namespace {

using broker::redis::connection;
using broker::redis::errc;
using broker::redis::reply;
using namespace std::chrono_literals;

class RedisConnectionTest : public ::testing::Test {
 protected:
  // Runs the io_context until `done` holds, or fails after `limit`.
  template <typename Pred>
  void run_until(Pred done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      if (io_.stopped()) io_.restart();  // it stops whenever it runs out of work
      io_.run_for(10ms);
    }
    ASSERT_TRUE(done()) << "timed out";
  }
  void run_for(std::chrono::milliseconds d) {
    if (io_.stopped()) io_.restart();
    io_.run_for(d);
  }
  std::shared_ptr<connection> connected() {
    auto c = connection::create(io_);
    std::optional<boost::system::error_code> result;
    c->connect(redis_.host(), redis_.port(), 5s, [&](auto ec) { result = ec; });
    run_until([&] { return result.has_value(); });
    EXPECT_FALSE(*result) << result->message() << ": " << c->error_text();
    return c;
  }
  // One command and its reply.
  reply call(connection& c, std::vector<std::string> args) {
    std::optional<reply> r;
    c.command(args, [&](boost::system::error_code ec, reply got) {
      EXPECT_FALSE(ec) << ec.message();
      r = std::move(got);
    });
    run_until([&] { return r.has_value(); });
    return r.value_or(reply{});
  }

  stompd_test::redis_server redis_;
  boost::asio::io_context io_;
};

TEST_F(RedisConnectionTest, RepliesOfEveryKindComeBackAsTheyWere) {
  auto c = connected();
  const std::string binary("a\0b\r\nc", 6);
  EXPECT_EQ(call(*c, {"SET", "k", binary}).kind, reply::type::status);
  auto got = call(*c, {"GET", "k"});
  EXPECT_EQ(got.kind, reply::type::string);
  EXPECT_EQ(got.str, binary);
  EXPECT_EQ(call(*c, {"GET", "missing"}).kind, reply::type::nil);
  auto n = call(*c, {"INCRBY", "n", "41"});
  EXPECT_EQ(n.kind, reply::type::integer);
  EXPECT_EQ(n.integer, 41);
  call(*c, {"RPUSH", "l", "x", "y"});
  auto list = call(*c, {"LRANGE", "l", "0", "-1"});
  ASSERT_EQ(list.kind, reply::type::array);
  ASSERT_EQ(list.elements.size(), 2u);
  EXPECT_EQ(list.elements[1].str, "y");
  auto bad = call(*c, {"NOSUCHCOMMAND"});
  EXPECT_TRUE(bad.is_error());
  EXPECT_NE(bad.str.find("unknown command"), std::string::npos) << bad.str;
  c->close();
}

TEST_F(RedisConnectionTest, PipelinedCommandsAnswerInOrder) {
  auto c = connected();
  constexpr int n = 20'000;
  std::vector<long long> seen;
  for (int i = 0; i < n; ++i)
    c->command({"INCR", "counter"}, [&](boost::system::error_code ec, reply r) {
      EXPECT_FALSE(ec);
      seen.push_back(r.integer);
    });
  EXPECT_EQ(c->pending(), static_cast<std::size_t>(n));
  run_until([&] { return seen.size() == n; });
  for (int i = 0; i < n; ++i) ASSERT_EQ(seen[i], i + 1);
  EXPECT_EQ(c->pending(), 0u);
  c->close();
}

TEST_F(RedisConnectionTest, ARefusedConnectionFailsConnect) {
  const auto port = redis_.port();
  redis_.kill();
  auto c = connection::create(io_);
  std::optional<boost::system::error_code> result;
  c->connect("127.0.0.1", port, 5s, [&](auto ec) { result = ec; });
  run_until([&] { return result.has_value(); });
  EXPECT_EQ(*result, errc::connect_failed);
  EXPECT_NE(c->error_text().find("refused"), std::string::npos) << c->error_text();
  std::optional<boost::system::error_code> later;
  c->command({"PING"}, [&](boost::system::error_code ec, reply) { later = ec; });
  run_until([&] { return later.has_value(); });
  EXPECT_EQ(*later, errc::not_connected);
}

TEST_F(RedisConnectionTest, AServerThatDiesFailsPendingCommandsAndReportsTheLoss) {
  auto c = connected();
  std::optional<boost::system::error_code> lost, blocked;
  c->on_lost([&](auto ec) { lost = ec; });
  c->command({"BLPOP", "never", "0"}, [&](boost::system::error_code ec, reply) { blocked = ec; });
  run_for(50ms);  // written, and waiting for a reply
  redis_.kill();
  run_until([&] { return lost.has_value() && blocked.has_value(); });
  EXPECT_EQ(*blocked, errc::connection_lost);
  EXPECT_EQ(*lost, errc::connection_lost);
  EXPECT_FALSE(c->connected());
}

TEST_F(RedisConnectionTest, CloseFailsPendingCommandsAndIsNotALoss) {
  auto c = connected();
  bool lost = false;
  std::optional<boost::system::error_code> blocked;
  c->on_lost([&](auto) { lost = true; });
  c->command({"BLPOP", "never", "0"}, [&](boost::system::error_code ec, reply) { blocked = ec; });
  run_for(50ms);
  c->close();
  run_until([&] { return blocked.has_value(); });
  EXPECT_EQ(*blocked, errc::closed);
  run_for(50ms);
  EXPECT_FALSE(lost);
}

TEST_F(RedisConnectionTest, AConnectionCanBeMadeAgainAfterARestart) {
  auto first = connected();
  redis_.restart();
  run_until([&] { return !first->connected(); });
  auto second = connected();
  EXPECT_EQ(call(*second, {"PING"}).str, "PONG");
  second->close();
}

}  // namespace
