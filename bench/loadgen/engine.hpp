#pragma once

#include "connection.hpp"
#include "histogram.hpp"
#include "options.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace bench {

using steady = std::chrono::steady_clock;

// Nanoseconds on the steady clock: what x-bench-ts carries (sender and receiver are this
// process, so one clock serves both).
inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

// A counter written by one thread and read by others (progress lines): a relaxed load and
// store instead of a locked read-modify-write on the receive path.
class counter {
 public:
  void add(std::uint64_t n) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

struct client;

// A destination the scenario publishes to, and who subscribes to it.
struct destination {
  std::string name;
  std::atomic<std::uint64_t> sent{0};  // SENDs written to it by every publisher
  std::vector<client*> subscribers;
  std::vector<client*> publishers;  // woken by its subscribers' reads (closed loop)
};

// One I/O thread and its io_context; everything of a client happens on its worker's thread.
// Histograms are touched only by that thread and read after it is joined.
struct worker {
  boost::asio::io_context io{1};
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard;
  std::thread thread;
  histogram delivery_latency;  // MESSAGEs whose scheduled send time is in the window
  histogram receipt_latency;   // RECEIPTs (publish receipts, replays) in the window
  histogram send_lag;          // paced publishers: how late each write started (generator)
  counter sent, sent_in_window;
  counter delivered, delivered_in_window;
  counter receipts, receipts_in_window;
  counter replayed_messages;
  counter error_frames, lost_connections;
};

// One connection of the scenario and its role.
struct client {
  client(bench::worker& w, std::size_t buffer_bytes);

  bench::worker& worker;
  bench::connection conn;
  boost::asio::steady_timer wake;  // a publisher or replayer waits here; the reader cancels it
  destination* publish_to = nullptr;
  destination* subscribe_to = nullptr;
  counter received;  // MESSAGE frames
  // A closed-loop publisher waiting for its window to open: the reader of any subscriber of
  // its destination that receives something wakes it (on its own worker).
  std::atomic<bool> window_wait{false};
  std::size_t inflight = 0;  // publish receipts awaited (worker thread only)
  bool replay_done = false;  // worker thread only
  std::uint64_t replay_count = 0;
  bool alive = false;
};

// Runs the workers and the clients of one scenario: opens connections with bounded
// concurrency, reads every connection (counting and timing MESSAGEs and RECEIPTs), and stops
// everything it started. Scenario code adds clients and spawns its publishers.
class engine {
 public:
  explicit engine(const options& o);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  destination& add_destination(std::string name);
  client& add_client(std::size_t buffer_bytes);  // on the next worker, round-robin
  const std::vector<std::unique_ptr<client>>& clients() const noexcept { return clients_; }
  const std::vector<std::unique_ptr<destination>>& destinations() const noexcept {
    return destinations_;
  }

  // Connects every client (and subscribes those with subscribe_to, with a receipt), starts
  // their readers, waits until all are live. Throws with the first failure's reason, or when
  // `timeout` passes first.
  void open_all(std::chrono::duration<double> timeout);

  // Runs `fn(client&)` as a coroutine on the client's worker.
  void spawn(client& c, std::function<boost::asio::awaitable<void>(client&)> fn);

  // The measured window [begin, end) in now_ns() time: deliveries received in it count
  // toward rates, messages scheduled in it toward latency.
  void set_window(std::int64_t begin_ns, std::int64_t end_ns) noexcept;
  std::int64_t window_begin() const noexcept { return window_begin_.load(); }
  std::int64_t window_end() const noexcept { return window_end_.load(); }

  struct totals {
    std::uint64_t sent = 0, sent_in_window = 0, delivered = 0, delivered_in_window = 0,
                  receipts = 0, receipts_in_window = 0, replayed_messages = 0, error_frames = 0,
                  lost_connections = 0;
  };
  totals sum() const;
  // MESSAGEs owed to subscribers for what was sent: sum over destinations of sent x subscribers.
  std::uint64_t expected_deliveries() const;

  // Closes every connection, stops and joins the workers. Idempotent. After it, merged
  // histograms may be read.
  void stop();
  histogram delivery_latency() const;
  histogram receipt_latency() const;
  histogram send_lag() const;

  // Sleeps until `until_ns` (or until `done()` says so, checked every 50 ms), printing a
  // progress line on stderr every second unless --no-progress. False when it timed out.
  bool progress_until(std::int64_t until_ns, std::string_view phase,
                      const std::function<bool()>& done = {});

  void record_error(const std::string& what);
  std::string first_error() const;
  std::size_t errors() const noexcept { return error_count_.load(); }

  const options& opts() const noexcept { return opt_; }
  const credentials& creds() const noexcept { return cred_; }
  bool stopping() const noexcept { return stopping_.load(std::memory_order_relaxed); }

  std::atomic<std::size_t> publishers_done{0};
  std::atomic<bool> fill_done{false};

 private:
  boost::asio::awaitable<void> open_some(std::vector<client*> list, std::size_t first,
                                         std::size_t step);
  boost::asio::awaitable<void> read_loop(client& c);
  void on_receipt(client& c, std::string_view frame, std::int64_t now);
  // After a subscriber of `d` received MESSAGEs: wakes its publishers waiting for the window.
  void wake_publishers(destination& d);

  const options& opt_;
  credentials cred_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<std::unique_ptr<destination>> destinations_;
  std::vector<std::unique_ptr<client>> clients_;
  std::atomic<std::size_t> opened_{0}, open_failed_{0}, subscribed_{0};
  std::atomic<std::int64_t> window_begin_{INT64_MAX}, window_end_{INT64_MAX};
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;
  mutable std::mutex error_mutex_;
  std::string first_error_;
  std::atomic<std::size_t> error_count_{0};
};

}  // namespace bench
