#pragma once

#include "admin/admin_view.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace broker {

// Adds without a read-modify-write instruction: for counters with a single writer thread
// (a worker's own), read by the admin thread. Relaxed: statistics, not synchronisation.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Counters one worker thread writes and the admin thread reads. One per worker, on its own
// cache lines, so counting a delivery never contends with another core.
struct alignas(64) worker_metrics {
  static constexpr std::size_t commands = 15;  // stomp::command values
  std::array<std::atomic<std::uint64_t>, commands> frames_in{};
  std::array<std::atomic<std::uint64_t>, commands> frames_out{};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::atomic<std::uint64_t> messages_in{0};   // SENDs accepted
  std::atomic<std::uint64_t> messages_out{0};  // MESSAGEs queued to subscribers
};

// A histogram with fixed bounds, safe to observe from any thread.
class atomic_histogram {
 public:
  explicit atomic_histogram(std::vector<double> bounds);
  void observe(double value) noexcept;
  admin::histogram snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket, not cumulative
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Broker-wide metrics written from several threads (journal, sessions on any worker).
struct shared_metrics {
  atomic_histogram replay_seconds{{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}};
  atomic_histogram journal_commit_seconds{
      {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}};
  atomic_histogram journal_batch_size{{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}};
  std::atomic<std::uint64_t> replays{0};
  // Open connections by transport: tcp, tcp+tls, websocket, websocket+tls.
  std::array<std::atomic<std::int64_t>, 4> connections{};
};

// Index of a transport name in shared_metrics::connections.
std::size_t transport_index(std::string_view transport) noexcept;
extern const std::array<std::string_view, 4> transport_names;

}  // namespace broker
