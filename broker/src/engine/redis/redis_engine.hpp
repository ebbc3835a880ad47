#pragma once

#include "broker/config.hpp"
#include "engine/engine.hpp"
#include "engine/journal_rules.hpp"
#include "engine/redis/connection.hpp"
#include "engine/redis/ordered_feed.hpp"
#include "engine/redis/presence_store.hpp"
#include "engine/redis/queue_store.hpp"
#include "engine/redis/stream_store.hpp"
#include "routing/presence.hpp"
#include "routing/queue.hpp"
#include "routing/router.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace broker {

class worker_pool;

// The engine of several nodes (docs/CLUSTER.md): journaled topics are stored in Redis
// (stream_store: one stream per destination, x-seq given by a server-side function) and every
// node follows the destinations its subscribers want through pub/sub (ordered_feed: in x-seq
// order, exactly once, gaps filled from the stream). Destinations are spread over
// cluster.redis.addresses by a consistent hash of the name. Live-only topics reach the other
// nodes through pub/sub too ({...}:live, at most once). Queues are Redis streams with one
// consumer group (queue_store): the node's queue registry takes from them what its consumers
// can take, and settles what they acknowledge (the engine is the registry's queue_source).
//
// Who is subscribed to each topic is kept across the nodes too (presence_store): each node
// vouches for its own users, and joins and leaves travel on the destination's channel.
//
// Files: redis_engine.cpp (construction and the engine interface), shards.cpp (the
// connections to each Redis), follows.cpp (following destinations for subscribers),
// queues.cpp (queues shared by the nodes), presence.cpp (who is in each topic).
//
// Its own thread runs an io_context with every Redis connection: per Redis, one for commands
// (pipelined) and one for pub/sub. Workers hand it work by posting; it hands results back the
// same way, so no lock is shared with the workers' hot path.
//
// Failure: a Redis that cannot be reached, or stops answering for command_timeout, fails the
// appends and replays waiting on it (the SENDs get an ERROR, never a RECEIPT), makes ready()
// false, and is reconnected with back-off; the feeds then catch up from the streams.
class redis_engine final : public engine, private queue_source {
 public:
  redis_engine(const config& settings, worker_pool& workers, router& topics, queue_registry& queues,
               held_bytes& held);
  ~redis_engine() override;

  bool journaled(std::string_view destination) const override;
  bool append(std::size_t w, std::string destination, header_list headers, std::string body,
              std::string idempotency_key, append_callback done) override;
  bool stores_queue(std::string_view) const noexcept override { return true; }
  bool enqueue(std::size_t w, std::string destination, header_list headers, std::string body,
               append_callback done) override;
  route_result route(std::size_t w, const message_ptr& m,
                     std::span<const stomp::header_view> passed, std::string_view body) override;
  void when_following(std::size_t w, std::string_view destination,
                      std::function<void()> done) override;
  void when_stored(std::size_t w, std::function<void()> done) override;
  void drain(std::function<void()> done) override;
  void replay(storage::replay_request request, replay_callback done) override;
  std::vector<storage::destination_stats> stored() const override;
  std::optional<std::uint64_t> purge(std::string_view destination) override;
  std::uint64_t stored_bytes() const override;
  void enter_presence(std::size_t w, std::string_view destination, std::string_view user,
                      std::function<void(std::size_t)> counted) override;
  void leave_presence(std::size_t w, std::string_view destination, std::string_view user) override;
  std::vector<presence_info> presence_of(std::span<const std::string> destinations,
                                         std::size_t limit) const override;
  bool ready() const override { return ready_.load(std::memory_order_relaxed); }
  counters statistics() const override {
    return {reconnects_.load(std::memory_order_relaxed),
            live_dropped_.load(std::memory_order_relaxed)};
  }

 private:
  // One Redis primary and the connections to it.
  struct shard {
    config::cluster_settings::redis_settings::address address;
    std::string name;  // "host:port", for logs
    std::shared_ptr<redis::connection> commands, subscriber;
    bool up = false;      // both connections ready, the library loaded
    bool was_up = false;  // once: a later set-up is a reconnect
    std::string refusal;  // why appends are refused although connected (durability)
    std::chrono::milliseconds backoff{0};
    std::unique_ptr<boost::asio::steady_timer> retry;
    // The command watchdog: the reply count it last saw, and since when commands have been
    // pending with no reply (unset: not silent).
    std::uint64_t replies_seen = 0;
    std::optional<std::chrono::steady_clock::time_point> silent_since;
  };
  // One destination this node's subscribers want, followed from its shard's channel.
  // Callbacks find it again by (destination, generation): a follow ended and begun again
  // is another one.
  struct follow {
    std::string destination;
    std::uint64_t generation = 0;
    bool live = false;  // a live-only topic: its channel, no feed, at most once
    shard* home = nullptr;
    bool subscribed = false;                  // Redis confirmed the SUBSCRIBE
    std::optional<redis::ordered_feed> feed;  // from when subscribed and the head was read
    // Announcements between the SUBSCRIBE and the head read, fed in once the feed starts.
    std::vector<redis::stream_store::announcement> early;
    bool missed_early = false;  // more than that: the stream is read again
    // Replays and SUBSCRIBE receipts waiting for the start.
    std::vector<std::function<void()>> until_ready;
    // Where a subscriber may count on every message from now on: the feed's start, or for a
    // live-only topic the channel subscribed.
    bool started() const noexcept { return live ? subscribed : feed.has_value(); }
  };

  // A queue this node's consumers take from: its messages held here (taken, and not yet
  // settled or given back) are renewed while the node lives.
  struct shared_queue {
    std::string destination;
    std::uint64_t generation = 0;
    shard* home = nullptr;
    const queue* local = nullptr;  // the registry's queue it supplies (identity only)
    std::weak_ptr<queue> local_alive;
    bool subscribed = false;  // to the ready channel
    bool taking = false;      // a take in flight
    bool again = false;       // told of new messages while taking
    bool drained = false;     // the last take got less than it asked for
    std::set<std::string> held;
  };

  shard& shard_for(std::string_view destination);
  const shard& shard_for(std::string_view destination) const;

  // Engine thread only, from here on.
  void connect(shard& s);
  void on_connected(shard& s);
  void set_up(shard& s);  // once connected (and the pub/sub connection authenticated)
  void lost(shard& s, std::string_view why);
  void update_ready();
  void watchdog();
  follow* find_follow(std::string_view destination, std::uint64_t generation);
  void set_interest(std::string destination, bool wanted);
  void start_follow(follow& f);
  void subscribe(follow& f);
  void on_live(follow& f, std::string_view payload);
  void read_head(follow& f);
  void run_waiting(follow& f);
  // Runs `step` once `destination`'s follow has started (at once if it has, or there is none,
  // or its Redis is down), after the steps already waiting: SUBSCRIBE receipts, replays and
  // presence changes keep their order.
  void after_follow_starts(const std::string& destination, std::function<void()> step);
  void publish_delivered();
  // The channel `destination`'s followers listen on: its announcements', or a live-only
  // topic's messages'.
  std::string channel_of(std::string_view destination) const;
  // Presence, engine thread: a join or leave from the channel; this node's users vouched for
  // again (every third of cluster.redis.presence_timeout).
  void on_presence(const follow& f, redis::presence_store::event e);
  void vouch();
  // queue_source, from any thread: handed to the engine thread.
  bool shared() const noexcept override { return true; }
  void hungry(const std::shared_ptr<queue>& q) override;
  void settled(const queue& q, const message_ptr& m) override;
  void returned(const queue& q, std::vector<message_ptr> messages) override;
  // Engine thread, from here on.
  shared_queue* find_queue(std::string_view destination, std::uint64_t generation);
  void on_hungry(std::string destination, std::weak_ptr<queue> q);
  void subscribe(shared_queue& sq);
  void take(shared_queue& sq);
  void on_taken(std::string destination, std::uint64_t generation, std::size_t asked,
                redis::queue_store::taken t);
  void give_back(shard& s, std::string_view destination, std::vector<std::string> ids);
  void settle_soon(std::string_view destination, std::string id);
  void settle_now();
  void queue_tick();
  void resume_queues(shard& s);  // once s is set up again
  void lose_queues(shard& s);
  // The epoch an append proposes, taken only when the destination has none in Redis (new, or
  // its data lost).
  std::string propose_epoch();
  // An answer to one of worker w's appends or enqueues, for the engine thread to call: it is
  // passed to w in turn (take_turn), and `then` runs right after.
  using turn_answer = std::function<void(storage::append_result, std::function<void()> then)>;
  turn_answer answer_for(std::size_t w, append_callback done);
  // True when `name` is in `known` or could be added within `limit` (added then).
  bool admit(std::unordered_set<std::string, string_hash, std::equal_to<>>& known,
             std::size_t limit, const std::string& name);
  // Runs `step` on the engine thread shortly (a subscription still being left).
  void soon(std::function<void()> step);
  // `done` once every command made before on every connected Redis was answered.
  void when_all_answered(std::function<void()> done);
  // A place in worker w's line of answers (take it when the request is made), and the answer
  // for it: `answer` runs on the engine thread once every earlier one of w's has.
  std::uint64_t take_turn(std::size_t w);
  void answer_in_turn(std::size_t w, std::uint64_t turn, std::function<void()> answer);
  // Runs `step` on the engine thread and waits for what it hands `done`, up to the command
  // timeout (for the admin API, which calls from its own thread).
  template <typename T>
  std::optional<T> ask(std::function<void(std::function<void(T)>)> step) const;
  // What several Redis calls of one ask() gather: `done` gets `found` once one() was called
  // as many times as `left` (1 for the caller's own, plus one per call made).
  template <typename T>
  struct gathering {
    T found;
    std::size_t left = 1;
    std::function<void(T)> done;
    void one() {
      if (--left == 0) done(std::move(found));
    }
  };

  const config& settings_;
  worker_pool& workers_;
  router& topics_;
  queue_registry& queues_;
  held_bytes& held_;
  journal_rules rules_;
  redis::stream_store store_;
  redis::queue_store queue_store_;
  const std::string password_;  // cluster.redis.password_file's first line

  std::mt19937_64 epochs_;    // engine thread
  const std::string origin_;  // names this run in live messages it shares
  // Live messages on their way to Redis; past max_live_bytes new ones go to this node's
  // subscribers only (live is at most once).
  std::atomic<std::size_t> live_bytes_{0};
  std::atomic<std::uint64_t> live_dropped_{0};
  mutable boost::asio::io_context io_;
  std::vector<std::unique_ptr<shard>> shards_;
  string_map<std::unique_ptr<follow>> follows_;
  std::uint64_t generations_ = 0;
  std::vector<message_ptr> delivered_;  // by the feeds, handed to the router in one batch
  // Per worker, the answers to its appends in the order they were made: a session counts on
  // that, and destinations on different Redis primaries answer in any order.
  struct answer_line {
    std::uint64_t front = 0;                    // the turn of answers.front()
    std::deque<std::function<void()>> answers;  // empty: not answered yet
  };
  std::vector<answer_line> lines_;
  boost::asio::steady_timer watchdog_;
  std::atomic<bool> ready_{false};
  std::atomic<std::uint64_t> reconnects_{0};

  string_map<std::unique_ptr<shared_queue>> shared_queues_;
  // Acknowledged queue messages, settled in one call per queue soon after.
  string_map<std::vector<std::string>> to_settle_;
  bool settle_posted_ = false;
  boost::asio::steady_timer queue_timer_;
  std::chrono::steady_clock::time_point last_touch_;
  const std::string consumer_;  // this run's name in the queues' consumer group

  // The users this node's subscriptions have in each topic, which it vouches for.
  presence present_;
  redis::presence_store presence_store_;
  boost::asio::steady_timer presence_timer_;
  std::uint64_t presence_events_ = 0;  // engine thread: numbers their message-ids here

  // Destinations this node has written or followed, for limits.max_journaled_destinations;
  // queues it has sent to, for limits.max_queues.
  mutable std::mutex known_mutex_;
  std::unordered_set<std::string, string_hash, std::equal_to<>> known_, known_queues_;

  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::thread thread_;
};

template <typename T>
std::optional<T> redis_engine::ask(std::function<void(std::function<void(T)>)> step) const {
  auto promise = std::make_shared<std::promise<T>>();
  auto future = promise->get_future();
  boost::asio::post(io_, [step = std::move(step), promise] {
    step([promise](T value) { promise->set_value(std::move(value)); });
  });
  if (future.wait_for(settings_.cluster.redis.command_timeout) != std::future_status::ready)
    return std::nullopt;
  return future.get();
}

}  // namespace broker
