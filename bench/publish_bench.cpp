// End-to-end publishing through the real broker (in-process, loopback TCP): SENDs with
// receipts, a window of them in flight, to a journaled and to a non-journaled topic, and
// x-replay of the last 1000 messages. Reports messages/s and receipt latency percentiles.
#include "broker/server.hpp"
#include "stomp/parser.hpp"
#include "stomp/serializer.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <random>

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;

struct temp_dir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("stompd-bench-" + std::to_string(std::random_device{}()));
  temp_dir() { std::filesystem::create_directories(path); }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

std::unique_ptr<broker::server> start_broker(const std::filesystem::path& data, bool power) {
  broker::config c;
  c.tcp.port = 0;
  c.websocket.enabled = false;
  c.admin.enabled = false;
  c.threads = 1;
  c.log_level = broker::log_level::off;
  c.data_dir = data;
  c.journal.destinations.push_back({"/topic/plain.**", false, 0, {}});
  if (power) c.journal.durability = broker::config::journal_settings::durability_mode::power;
  auto s = std::make_unique<broker::server>(c);
  s->start();
  return s;
}

// A pipelining STOMP client over a blocking socket.
class client {
 public:
  explicit client(std::uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    socket_.set_option(tcp::no_delay(true));
    write(stomp::serialize(stomp::frame(stomp::command::connect, {{"accept-version", "1.2"}}),
                           stomp::version::v1_2));
    next();
  }
  void write(const std::string& bytes) { net::write(socket_, net::buffer(bytes)); }
  stomp::frame next() {
    stomp::frame_view f;
    for (;;) {
      auto ec = parser_.next(f);
      if (!ec) return stomp::frame(f);
      if (ec != stomp::errc::need_more) throw std::runtime_error(parser_.error().message());
      auto space = parser_.prepare(64 * 1024);
      parser_.commit(socket_.read_some(net::buffer(space.data(), space.size())));
    }
  }

 private:
  net::io_context io_;
  tcp::socket socket_;
  stomp::parser parser_;
};

// Sends `count` SENDs of 128-byte bodies with receipts, `window` in flight; returns each
// receipt's latency.
std::vector<double> publish_with_receipts(client& c, const std::string& destination, int count,
                                          int window) {
  const std::string body(128, 'x');
  std::deque<clock_type::time_point> sent;
  std::vector<double> latency_us;
  latency_us.reserve(count);
  int next_id = 0;
  std::string batch;
  while (static_cast<int>(latency_us.size()) < count) {
    batch.clear();
    while (next_id < count && static_cast<int>(sent.size()) < window) {
      const std::string id = std::to_string(next_id++);
      const stomp::header_view h[] = {{"destination", destination}, {"receipt", id}};
      stomp::serialize(batch, stomp::command::send, h, body, stomp::version::v1_2);
      sent.push_back(clock_type::now());
    }
    if (!batch.empty()) c.write(batch);
    auto r = c.next();
    if (r.command != stomp::command::receipt) throw std::runtime_error("expected RECEIPT");
    latency_us.push_back(
        std::chrono::duration<double, std::micro>(clock_type::now() - sent.front()).count());
    sent.pop_front();
  }
  return latency_us;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

void publish_bench(benchmark::State& state, const char* destination, bool power) {
  temp_dir dir;
  auto broker = start_broker(dir.path, power);
  client c(broker->tcp_port());
  const int count = power ? 2000 : 20000;
  std::vector<double> all;
  for (auto _ : state) {
    auto l = publish_with_receipts(c, destination, count, 256);
    all.insert(all.end(), l.begin(), l.end());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * count);
  state.counters["p50_us"] = percentile(all, 0.50);
  state.counters["p99_us"] = percentile(all, 0.99);
}

void BM_PublishWithReceiptNotJournaled(benchmark::State& state) {
  publish_bench(state, "/topic/plain.room", false);
}
void BM_PublishWithReceiptJournaled(benchmark::State& state) {
  publish_bench(state, "/topic/room", false);
}
void BM_PublishWithReceiptJournaledPower(benchmark::State& state) {
  publish_bench(state, "/topic/room", true);
}

void BM_ReplayLast1000(benchmark::State& state) {
  temp_dir dir;
  auto broker = start_broker(dir.path, false);
  client pub(broker->tcp_port());
  publish_with_receipts(pub, "/topic/history", 1000, 256);
  client sub(broker->tcp_port());
  int id = 0;
  for (auto _ : state) {
    auto sid = std::to_string(id++);
    const stomp::header_view h[] = {{"destination", "/topic/history"},
                                    {"id", sid},
                                    {"x-replay", "last:1000"},
                                    {"receipt", sid}};
    std::string f;
    stomp::serialize(f, stomp::command::subscribe, h, {}, stomp::version::v1_2);
    sub.write(f);
    int messages = 0;
    for (;;) {
      auto r = sub.next();
      if (r.command == stomp::command::receipt) break;
      ++messages;
    }
    if (messages != 1000) state.SkipWithError("replay did not return 1000 messages");
    const stomp::header_view u[] = {{"id", sid}};
    f.clear();
    stomp::serialize(f, stomp::command::unsubscribe, u, {}, stomp::version::v1_2);
    sub.write(f);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 1000);
}

}  // namespace

BENCHMARK(BM_PublishWithReceiptNotJournaled)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PublishWithReceiptJournaled)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PublishWithReceiptJournaledPower)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReplayLast1000)->Unit(benchmark::kMillisecond)->UseRealTime();
