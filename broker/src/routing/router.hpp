#pragma once

#include "routing/message.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace broker {

// Receives topic messages, always on the thread of the worker it subscribed from.
class topic_subscriber {
 public:
  virtual void on_topic_message(const message_ptr& m, std::uint64_t subscription_key) = 0;

 protected:
  ~topic_subscriber() = default;
};

// Transparent hashing so a std::string_view finds a std::string key without a copy.
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
template <typename T>
using string_map = std::unordered_map<std::string, T, string_hash, std::equal_to<>>;

// Routes /topic/ messages to subscribers across worker threads.
//
// Each worker (an event loop on its own thread) keeps its own table of the subscriptions made
// from its connections, touched only on that thread, so subscribing and delivering take no
// lock. A small sharded index records which workers have subscribers of a destination; a
// publish reads it under one shard's mutex, delivers to its own worker's subscribers inline
// and sets the message aside for each other worker that has any; flush() posts what was set
// aside, one task per worker. The event loop flushes after each burst of handlers, so fan-out
// costs one post per remote worker per burst, not per message or per subscriber, and no lock
// is shared by all destinations.
//
// Order: messages of one publisher reach each subscriber in publish order (inline delivery
// happens in call order, a worker's set-aside messages keep it, and posts to one worker run
// FIFO).
class router {
 public:
  static constexpr std::size_t max_workers = 64;  // worker sets are 64-bit masks

  // Runs `task` on worker `w`'s thread, later; thread-safe.
  using post_function = std::function<void(std::size_t w, std::function<void()> task)>;

  router(std::size_t workers, post_function post);
  router(const router&) = delete;
  router& operator=(const router&) = delete;

  // Told when a destination gains its first subscriber on this node (true) or loses its last
  // (false), for an engine that must follow other nodes' messages for it. Called with the
  // destination's shard lock held, so the calls for one destination come in order; it must
  // not call back into the router. Set before the first subscribe.
  using interest_function = std::function<void(std::string_view destination, bool wanted)>;
  void on_interest(interest_function f) { interest_ = std::move(f); }

  // On worker w's thread. `s` must stay valid until unsubscribed on the same thread.
  void subscribe(std::size_t w, std::string_view destination, topic_subscriber* s,
                 std::uint64_t subscription_key);
  void unsubscribe(std::size_t w, std::string_view destination, topic_subscriber* s,
                   std::uint64_t subscription_key);

  // On worker `from`'s thread: delivers inline to `from`'s subscribers, and sets the message
  // aside for the other workers with subscribers until flush(from).
  void publish(std::size_t from, const message_ptr& m);
  // On worker `from`'s thread: posts what publish(from, …) set aside, one task per worker.
  void flush(std::size_t from);

  // From any thread, e.g. the journal's writer: posts one task per worker carrying every
  // message of the batch that worker has subscribers for, in batch order.
  void publish_batch(const std::vector<message_ptr>& batch);

  // Counters for the admin API, relaxed: they are statistics, not synchronisation.
  struct counters {
    std::atomic<std::uint64_t> published{0};
    std::atomic<std::uint64_t> delivered{0};
  };
  const counters& stats() const noexcept { return counters_; }

  // Destinations with at least one subscriber on any worker; thread-safe.
  std::size_t destination_count() const;

  // Per destination with subscribers, for the admin API; thread-safe.
  struct destination_stats {
    std::string name;
    std::size_t subscribers = 0;
    std::uint64_t published = 0;
    std::uint64_t delivered = 0;
  };
  std::vector<destination_stats> snapshot() const;

 private:
  struct local_subscription {
    topic_subscriber* subscriber;
    std::uint64_t key;
  };
  using local_table = string_map<std::vector<local_subscription>>;

  struct entry {
    std::uint64_t workers = 0;  // bit per worker with subscribers
    std::size_t subscribers = 0;
    std::uint64_t published = 0;
    std::uint64_t delivered = 0;  // published × subscribers at the time
  };
  struct shard {
    mutable std::mutex mutex;
    string_map<entry> destinations;
  };
  // Under the shard's lock: counts a message and returns the workers to deliver it to.
  std::uint64_t count_publish(std::string_view destination);
  static constexpr std::size_t shard_count = 16;

  shard& shard_for(std::string_view destination) noexcept;
  void deliver_local(std::size_t w, const message_ptr& m);

  // Messages published on one worker and waiting for flush(), per destination worker.
  // Touched only on the publishing worker's thread; aligned so two workers' outboxes never
  // share a cache line.
  struct alignas(64) outbox {
    std::uint64_t workers = 0;  // bit per worker with messages waiting
    std::vector<std::vector<message_ptr>> waiting;
  };

  std::vector<local_table> tables_;  // one per worker
  std::vector<outbox> outboxes_;     // one per publishing worker
  std::array<shard, shard_count> shards_;
  post_function post_;
  interest_function interest_;
  counters counters_;
};

}  // namespace broker
