#include "net/event_loop.hpp"

#include "routing/router.hpp"

#include <boost/asio/post.hpp>

namespace broker {

worker_pool::worker_pool(std::size_t count) {
  workers_.reserve(count);
  for (std::size_t i = 0; i < count; ++i) workers_.push_back(std::make_unique<worker>(i));
}

void worker_pool::post(std::size_t w, std::function<void()> task) {
  boost::asio::post(workers_[w]->io, std::move(task));
}

void run_event_loop(worker& w, router& topics) {
  // Handlers run in bursts of what is ready, and the posts to other workers and the writes
  // they asked for start after each burst: a connection that several handlers of a burst sent
  // to (one per routed message, one per WebSocket message read) gets one write, and another
  // worker one task. The bound keeps a busy worker's first frames from waiting behind an
  // endless stream of ready handlers.
  constexpr int burst = 256;
  while (w.io.run_one() != 0) {
    for (int i = 1; i < burst && w.io.poll_one() != 0; ++i) {
    }
    topics.flush(w.index);  // first, so other workers start on their share meanwhile
    // By index: a write that starts never queues another, but nothing here depends on that.
    for (std::size_t i = 0; i < w.to_flush.size(); ++i) w.to_flush[i]->write_now();
    w.to_flush.clear();  // keeps its capacity for the next burst
  }
}

}  // namespace broker
