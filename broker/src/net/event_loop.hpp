#pragma once

#include "metrics.hpp"

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <unordered_set>
#include <vector>

namespace broker {

class router;
class session;

// Output that waits for the end of its worker's burst of handlers (run_event_loop): a
// connection queues frames from several handlers and writes them together.
class deferred_write {
 public:
  virtual void write_now() = 0;

 protected:
  ~deferred_write() = default;
};

// One event loop on one thread. Connections are pinned to a worker at accept, so a session's
// state is only ever touched on its worker's thread and needs no strand or lock.
struct worker {
  explicit worker(std::size_t i) : index(i), io(1) {}
  std::size_t index;
  // Declared before `io` so it outlives it: destroying `io` destroys pending handlers, and
  // with them sessions, which unregister themselves here.
  std::unordered_set<session*> sessions;  // this worker's live sessions; its thread only
  worker_metrics stats;
  boost::asio::io_context io;
  // Output queued during the current burst of handlers, written after it: everything one
  // burst of reads, routed messages and journal commits sends to a connection goes out in one
  // write. Its thread only. Declared after `io`, so the sessions it holds are released while
  // their timers' event loop still exists.
  std::vector<std::shared_ptr<deferred_write>> to_flush;
};

// The broker's workers, and the one way other threads hand them work. Built before anything
// that posts (router, journal) and destroyed after the sessions it runs.
class worker_pool {
 public:
  explicit worker_pool(std::size_t count);

  // Runs `task` on worker `w`'s thread, later, in FIFO order with other posts to `w`;
  // thread-safe.
  void post(std::size_t w, std::function<void()> task);

  std::size_t size() const noexcept { return workers_.size(); }
  const std::unique_ptr<worker>& operator[](std::size_t w) const noexcept { return workers_[w]; }
  auto begin() const noexcept { return workers_.begin(); }
  auto end() const noexcept { return workers_.end(); }

 private:
  std::vector<std::unique_ptr<worker>> workers_;
};

// Runs worker `w`'s event loop on the calling thread until it stops. After each burst of
// ready handlers it posts what `topics` set aside for other workers, then starts the writes
// the burst asked for (worker::to_flush).
void run_event_loop(worker& w, router& topics);

}  // namespace broker
