#pragma once

#include "routing/message.hpp"
#include "routing/router.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace broker {

enum class ack_mode : std::uint8_t { auto_ack, client, client_individual };

class queue;

// Where a queue's messages are kept besides the queue: this node's journal (durable queues),
// or a store shared with other nodes (docs/CLUSTER.md), from which the queue takes its
// messages as its consumers can take them. Either way the queue says which messages are done
// with. Called with the queue's mutex held, from
// whichever thread changed the queue: it must only hand the call to its own thread (post),
// never call back into the queue synchronously.
class queue_source {
 public:
  // Acknowledged (or written, in ack mode auto): gone for good.
  virtual void settled(const queue& q, const message_ptr& m) = 0;
  // True when other nodes take from the same store: then the queue also says when it is
  // hungry, and gives back what waits once no consumer is left here. False (a store of this
  // node's, such as the journal of durable queues): messages wait here for the next consumer.
  virtual bool shared() const noexcept = 0;
  // Shared only: q's consumers can take more than waits here (q.wanted() says how many).
  virtual void hungry(const std::shared_ptr<queue>&) {}
  // Shared only: no consumer is left here; these waited, and go back for other nodes'.
  virtual void returned(const queue&, std::vector<message_ptr>) {}

 protected:
  ~queue_source() = default;
};

// Takes messages from a queue. on_queue_message is called with the queue's mutex held, from
// whichever thread dispatched, so it must only hand the message to its own thread (post) and
// never call back into the queue synchronously.
class queue_consumer {
 public:
  virtual void on_queue_message(const message_ptr& m, std::uint64_t subscription_key,
                                bool redelivered) = 0;

 protected:
  ~queue_consumer() = default;
};

// A /queue/ destination: competing consumers, each message to exactly one of them,
// round-robin among those with credit. Messages wait (bounded) while nobody can take them.
//
// Credit has two parts. Every consumer has a write window: at most `window.frames`
// deliveries (and about `window.bytes` of them) handed over and not yet written to its
// socket, so a backlog waits here instead of flooding one connection's outbox, and a
// consumer that stops reading is held back rather than cut off. In the client ack modes a
// consumer also has prefetch credit: a delivered message stays owned by the queue until
// acknowledged, and a NACK, an UNSUBSCRIBE or a disconnect puts it back at the head, marked
// redelivered. An auto-ack delivery is settled when it is written (written()); one that a
// consumer lost before writing it goes back to the head as it was.
//
// Thread-safe: one mutex per queue, held only to move messages between lists and to post
// deliveries (posting under the lock keeps each consumer's order FIFO).
// A consumer's write window (see queue): deliveries handed over and not yet written.
struct queue_write_window {
  std::size_t frames = 64;
  std::size_t bytes = 256 * 1024;  // a larger single message still goes, alone
};

class queue : public std::enable_shared_from_this<queue> {
 public:
  using write_window = queue_write_window;
  // With a `source` (the registry's, set by a shared engine), messages come from it and go
  // back to it: see queue_source.
  queue(std::string name, std::size_t max_messages, write_window window = {},
        const std::atomic<queue_source*>* source = nullptr);

  const std::string& name() const noexcept { return name_; }

  // False when the queue already holds max_messages waiting messages.
  bool enqueue(message_ptr m);
  // From the source: messages for the consumers here (redelivered: someone may have had them
  // before). Without consumers any more, they go straight back.
  struct supplied {
    message_ptr msg;
    bool redelivered = false;
  };
  // `reserved`: how many of them had a place reserved (reserve()), released now.
  void supply(std::vector<supplied> messages, std::size_t reserved = 0);
  // A place for a message on its way to the queue's store (a durable queue's SEND): false
  // when max_messages wait or are on their way. Released by supply() or unreserve().
  bool reserve();
  void unreserve();
  // How many more messages the consumers could take than wait here now: their write windows'
  // frames and, in the client ack modes, their prefetch left.
  std::size_t wanted() const;

  // `c` must call remove_consumer() before it is destroyed; until then the queue calls
  // c->on_queue_message() for each message it hands out.
  void add_consumer(queue_consumer* c, std::uint64_t key, ack_mode mode, std::size_t prefetch);
  // Puts the consumer's unacknowledged messages back at the head of the queue.
  void remove_consumer(const queue_consumer* c, std::uint64_t key);

  // `message_id` names a delivery to this consumer. cumulative (ack mode client) settles
  // it and every earlier delivery to the subscription. False when the id is unknown.
  bool ack(const queue_consumer* c, std::uint64_t key, std::string_view message_id,
           bool cumulative);
  bool nack(const queue_consumer* c, std::uint64_t key, std::string_view message_id,
            bool cumulative);
  // True when `message_id` is a delivery to this consumer awaiting acknowledgement.
  bool awaiting(const queue_consumer* c, std::uint64_t key, std::string_view message_id) const;
  // The consumer wrote its oldest `count` unwritten deliveries to its socket, `bytes` of
  // them (each delivery counted as delivery_bytes()): their window credit comes back, and
  // auto-ack ones are settled.
  void written(const queue_consumer* c, std::uint64_t key, std::size_t count, std::size_t bytes);
  // What one delivery of `m` counts against a write window.
  static std::size_t delivery_bytes(const message& m) noexcept;

  // Nothing waiting and nobody subscribed: the registry may drop it.
  bool idle() const;
  std::size_t depth() const;

  struct stats {
    std::size_t consumers = 0;
    std::size_t waiting = 0;
    std::uint64_t enqueued = 0;   // since the queue was made
    std::uint64_t delivered = 0;  // deliveries, redeliveries included
  };
  stats snapshot() const;
  // Unacknowledged messages of one consumer's subscription.
  std::size_t unacked(const queue_consumer* c, std::uint64_t key) const;

 private:
  struct entry {
    message_ptr msg;
    bool redelivered = false;
  };
  struct consumer {
    queue_consumer* raw;
    std::uint64_t key;
    ack_mode mode;
    std::size_t prefetch;  // 0: unbounded
    // In delivery order: client modes, delivered and not yet acknowledged; auto-ack, handed
    // over and not yet written. The last `unwritten` of them are not written yet.
    std::deque<entry> unacked;
    std::size_t unwritten = 0;
    std::size_t unwritten_bytes = 0;
  };
  bool has_credit(const consumer& c) const noexcept;
  std::size_t wanted_locked() const noexcept;
  queue_source* source() const noexcept {
    return source_ ? source_->load(std::memory_order_acquire) : nullptr;
  }
  // With mutex_ held: tells the source what changed (settled messages, hunger, a queue left
  // without consumers).
  void tell_source(std::vector<message_ptr> settled);

  consumer* find(const queue_consumer* c, std::uint64_t key);
  bool settle(const queue_consumer* c, std::uint64_t key, std::string_view message_id,
              bool cumulative, bool requeue);
  void dispatch();  // with mutex_ held

  const std::string name_;
  const std::size_t max_messages_;
  const write_window window_;
  const std::atomic<queue_source*>* const source_;
  bool hungry_ = false;       // told the source so, and nothing came since
  std::size_t reserved_ = 0;  // places taken by reserve()
  mutable std::mutex mutex_;
  std::deque<entry> waiting_;
  std::vector<consumer> consumers_;
  std::size_t next_ = 0;  // round-robin position in consumers_
  std::uint64_t enqueued_ = 0;
  std::uint64_t delivered_ = 0;
};

// Owns the live /queue/ destinations. A queue exists while it holds messages or consumers;
// operations run under the registry shard's lock so a queue can't be dropped between being
// found and being used. At most `max_queues` exist at once (limits.max_queues): each may
// hold max_messages_per_queue messages, so without it a client naming a new queue per SEND
// could make the broker hold any number of them.
class queue_registry {
 public:
  queue_registry(std::size_t max_messages_per_queue, std::size_t max_queues)
      : max_messages_(max_messages_per_queue), max_queues_(max_queues) {}

  // Runs fn(queue&) on the named queue, creating it if needed. Returns the queue, which a
  // consumer keeps for its acks; null, without running fn, when the queue does not exist and
  // max_queues already do (existing queues keep working).
  std::shared_ptr<queue> with_queue(std::string_view name, const std::function<void(queue&)>& fn);
  // Drops the queue if it is idle.
  void release(std::string_view name);

  std::size_t size() const;

  std::vector<std::pair<std::string, queue::stats>> snapshot() const;

  // A shared engine's store, for the queues made from now on and those that exist (null:
  // queues are this node's alone). Set before sessions subscribe, cleared before the source
  // is destroyed.
  void set_source(queue_source* s) noexcept { source_.store(s, std::memory_order_release); }

 private:
  struct shard {
    mutable std::mutex mutex;
    string_map<std::shared_ptr<queue>> queues;
  };
  static constexpr std::size_t shard_count = 16;
  shard& shard_for(std::string_view name) noexcept {
    return shards_[string_hash{}(name) % shard_count];
  }

  const std::size_t max_messages_;
  const std::size_t max_queues_;
  // Queues in every shard: reserved before a queue is made, released when one is dropped,
  // so concurrent creations on several shards never pass max_queues_ together.
  std::atomic<std::size_t> count_{0};
  std::atomic<queue_source*> source_{nullptr};
  std::array<shard, shard_count> shards_;
};

}  // namespace broker
