// The router's fan-out, without sockets: what routing a published message to N subscribers
// costs in the broker's own code, and what building that message costs. Subscribers only
// count what they get, so the figures are the router's share of a delivery; the rest is
// the session's queue and the write (see stompd-bench for the whole path).
#include "routing/publish.hpp"
#include "routing/router.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace {

using broker::message_ptr;
using broker::router;

struct counting_subscriber final : broker::topic_subscriber {
  std::uint64_t got = 0;
  void on_topic_message(const message_ptr& m, std::uint64_t key) override {
    benchmark::DoNotOptimize(m.get());
    got += key;
  }
};

// Workers simulated on one thread: posted tasks wait until run() (an event loop's next turn).
struct queued_workers {
  std::vector<std::vector<std::function<void()>>> tasks;
  explicit queued_workers(std::size_t n) : tasks(n) {}
  router::post_function poster() {
    return [this](std::size_t w, std::function<void()> t) { tasks[w].push_back(std::move(t)); };
  }
  void run() {
    for (auto& q : tasks) {
      for (auto& t : q) t();
      q.clear();
    }
  }
};

// What the messages count themselves in, as in the broker (no limit: nothing reads it here).
broker::held_bytes held{SIZE_MAX};

message_ptr make_message(const std::string& destination) {
  const stomp::header_view h[] = {{"content-type", "text/plain"}};
  return broker::make_live_message(held, destination, "1-1", h, std::string(128, 'x'));
}

// One publisher, N subscribers of its destination on its own worker: delivered inline.
void BM_RouterFanoutLocal(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  queued_workers workers(1);
  router r(1, workers.poster());
  std::vector<counting_subscriber> subs(n);
  for (std::size_t i = 0; i < n; ++i) r.subscribe(0, "/topic/chat.room.1", &subs[i], i + 1);
  auto m = make_message("/topic/chat.room.1");
  for (auto _ : state) r.publish(0, m);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
  state.counters["deliveries/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * static_cast<std::int64_t>(n)),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RouterFanoutLocal)->Arg(1)->Arg(2)->Arg(100)->Arg(1000);

// N subscribers spread over 4 workers, publishes in bursts of 64 then flush() and the other
// workers' tasks run, as the event loop does: one post per remote worker per burst.
void BM_RouterFanoutAcrossWorkers(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t worker_count = 4, burst = 64;
  queued_workers workers(worker_count);
  router r(worker_count, workers.poster());
  std::vector<counting_subscriber> subs(n);
  for (std::size_t i = 0; i < n; ++i)
    r.subscribe(i % worker_count, "/topic/chat.room.1", &subs[i], i + 1);
  auto m = make_message("/topic/chat.room.1");
  for (auto _ : state) {
    for (std::size_t i = 0; i < burst; ++i) r.publish(0, m);
    r.flush(0);
    workers.run();
  }
  const auto deliveries = state.iterations() * static_cast<std::int64_t>(burst * n);
  state.SetItemsProcessed(deliveries);
  state.counters["deliveries/s"] =
      benchmark::Counter(static_cast<double>(deliveries), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RouterFanoutAcrossWorkers)->Arg(4)->Arg(100)->Arg(1000);

// The chat pattern: many rooms of two, each message to one room. Measures the destination
// lookups (shard index and worker table) with 10,000 destinations in them.
void BM_RouterManyRooms(benchmark::State& state) {
  constexpr std::size_t rooms = 10'000, worker_count = 2, burst = 64;
  queued_workers workers(worker_count);
  router r(worker_count, workers.poster());
  std::vector<counting_subscriber> subs(rooms * 2);
  std::vector<message_ptr> messages;
  for (std::size_t i = 0; i < rooms; ++i) {
    auto d = "/topic/lost-item." + std::to_string(i) + ".room.1";
    r.subscribe(0, d, &subs[2 * i], 1);
    r.subscribe(1, d, &subs[2 * i + 1], 1);
    messages.push_back(make_message(d));
  }
  std::size_t next = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < burst; ++i) {
      r.publish(0, messages[next]);
      next = (next + 7919) % rooms;  // not in subscription order
    }
    r.flush(0);
    workers.run();
  }
  const auto deliveries = state.iterations() * static_cast<std::int64_t>(burst * 2);
  state.SetItemsProcessed(deliveries);
  state.counters["deliveries/s"] =
      benchmark::Counter(static_cast<double>(deliveries), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RouterManyRooms);

// Building the shared MESSAGE for a SEND: header filtering, encoding once, the UTF-8 check.
void BM_MakeLiveMessage(benchmark::State& state) {
  const stomp::header_view sent[] = {{"destination", "/topic/chat.room.1"},
                                     {"content-type", "application/json"},
                                     {"receipt", "r-1"},
                                     {"x-client-id", "9f2c"}};
  const std::string body(128, 'x');
  std::uint64_t n = 0;
  for (auto _ : state) {
    auto passed = broker::passable_headers(sent);
    auto m =
        broker::make_live_message(held, "/topic/chat.room.1", std::to_string(++n), passed, body);
    benchmark::DoNotOptimize(m.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MakeLiveMessage);

}  // namespace
