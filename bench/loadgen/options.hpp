#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bench {

enum class scenario { fanout, rooms, idle, journal, replay, floor, capacity };

// Where to connect: always a loopback address (parse_target refuses anything else).
struct target {
  bool websocket = true;
  std::string host = "127.0.0.1";  // numeric loopback address
  std::uint16_t port = 15674;
  std::string path = "/ws";
  std::string url() const;
};

// Everything the command line sets; defaults are the member initializers.
struct options {
  bench::scenario scenario = scenario::fanout;
  // --url A[,B...]: the clients are spread over them round robin (several nodes of a
  // cluster); one by default.
  std::vector<bench::target> targets{bench::target{}};
  std::string login;
  std::string passcode;
  std::string vhost;  // CONNECT's host header; empty: the target's host (RabbitMQ wants "/")
  std::string heart_beat = "0,0";  // CONNECT's heart-beat: cx,cy in ms

  unsigned threads = 1;  // one io_context each
  std::chrono::duration<double> warmup{2.0};
  std::chrono::duration<double> duration{10.0};
  std::chrono::duration<double> drain{10.0};  // longest wait for stragglers after sending
  std::chrono::duration<double> hold{10.0};   // idle: how long the sessions are held

  double rate = 0;             // messages/s per publisher; 0 with total_rate 0: unthrottled
  double total_rate = 0;       // messages/s over all publishers (overrides rate)
  std::size_t window = 0;      // fanout/rooms: max messages a publisher is ahead of its slowest
                               // subscriber (closed loop); 0: open loop
  std::size_t inflight = 128;  // journal: receipts outstanding per publisher when unthrottled
  std::size_t batch = 64;      // most SEND frames one write carries
  std::size_t body_bytes = 128;

  std::size_t publishers = 1;
  std::size_t subscribers = 100;
  std::size_t rooms = 1000;
  std::size_t members = 2;
  std::size_t connections = 1000;  // idle sessions; replay: parallel replayers
  std::size_t connect_concurrency = 256;
  std::size_t replay_messages = 1000;  // replay: history size and x-replay:last:N
  std::size_t count = 200;             // replay: replays per connection; floor: writes

  std::string destination;                // default per scenario
  std::vector<std::string> send_headers;  // extra "name:value" headers on every SEND
  std::vector<int> broker_pids;           // --broker-pid P[,Q...]: their CPU and RSS, summed
  bool json = false;
  bool progress = true;
  std::string label;
};

// Parses argv. Returns nullopt after printing help (exit 0); throws std::runtime_error with a
// message on bad usage.
std::optional<options> parse_options(int argc, char** argv);

// "ws://127.0.0.1:15674/ws", "stomp://127.0.0.1:61613" or "tcp://..."; "localhost" means
// 127.0.0.1. Throws unless the address is loopback.
target parse_target(const std::string& url);

std::string_view to_string(scenario s) noexcept;

}  // namespace bench
