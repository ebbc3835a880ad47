#pragma once

#include "engine/redis/connection.hpp"
#include "redis_server.hpp"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// A real redis-server of the test's own, and a client connection to it driven by the test's
// io_context: the base of the Redis engine's store tests.

namespace stompd_test {

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
  std::shared_ptr<broker::redis::connection> connected() {
    auto c = broker::redis::connection::create(io_);
    std::optional<boost::system::error_code> result;
    c->connect(redis_.host(), redis_.port(), 5s, [&](auto ec) { result = ec; });
    run_until([&] { return result.has_value(); });
    EXPECT_FALSE(*result) << result->message() << ": " << c->error_text();
    return c;
  }
  // One command and its reply.
  broker::redis::reply call(broker::redis::connection& c, std::vector<std::string> args) {
    std::optional<broker::redis::reply> r;
    c.command(args, [&](boost::system::error_code ec, broker::redis::reply got) {
      EXPECT_FALSE(ec) << ec.message();
      r = std::move(got);
    });
    run_until([&] { return r.has_value(); });
    return r.value_or(broker::redis::reply{});
  }

  // Loads a store's function library.
  template <typename Store>
  void load(const Store& store, broker::redis::connection& c) {
    std::optional<boost::system::error_code> loaded;
    store.load(c, [&](boost::system::error_code ec, std::string why) {
      EXPECT_FALSE(ec) << why;
      loaded = ec;
    });
    run_until([&] { return loaded.has_value(); });
  }

  stompd_test::redis_server redis_;
  boost::asio::io_context io_;
};

}  // namespace stompd_test
