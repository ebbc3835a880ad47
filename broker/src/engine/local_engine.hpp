#pragma once

#include "broker/config.hpp"
#include "engine/engine.hpp"
#include "engine/history.hpp"
#include "routing/presence.hpp"
#include "routing/queue.hpp"

#include <atomic>
#include <filesystem>
#include <memory>

namespace broker {

class queue_registry;
class router;
class worker_pool;
struct shared_metrics;

// Delivers a message that is not stored on this node: to the topic's subscribers through
// `topics`, or into its queue. On w's thread. (engine::route of every engine.)
engine::route_result route_on_node(router& topics, queue_registry& queues, std::size_t w,
                                   const message_ptr& m);

// The single-node engine: journaled destinations are stored in this node's SQLite journal
// (engine/history.hpp), and every message reaches subscribers through the in-process router
// or the queue registry. Durable queues (every /queue/ unless a journal.destinations rule
// says journaled: false) are kept in the journal too: stored before the RECEIPT, removed when
// acknowledged (the engine is the registry's queue_source), and put back in their queues,
// marked redelivered, when the node starts again. With journal.enabled false nothing is
// stored.
//
// Opening the journal throws storage::journal_error (corrupt, newer schema, locked by another
// stompd, unwritable): startup stops with the reason, never a silent fresh start.
class local_engine final : public engine, private queue_source {
 public:
  local_engine(const config& settings, worker_pool& workers, router& topics, queue_registry& queues,
               held_bytes& held, shared_metrics& metrics);
  ~local_engine() override;

  bool journaled(std::string_view destination) const override;
  bool append(std::size_t w, std::string destination, header_list headers, std::string body,
              std::string idempotency_key, append_callback done) override;
  bool stores_queue(std::string_view destination) const noexcept override;
  bool enqueue(std::size_t w, std::string destination, header_list headers, std::string body,
               append_callback done) override;
  route_result route(std::size_t w, const message_ptr& m, std::span<const stomp::header_view>,
                     std::string_view) override;
  // At once: the router delivers every commit after the subscription.
  void when_following(std::size_t, std::string_view, std::function<void()> done) override {
    done();
  }
  void when_stored(std::size_t w, std::function<void()> done) override;
  void drain(std::function<void()> done) override;
  void replay(storage::replay_request request, replay_callback done) override;
  std::vector<storage::destination_stats> stored() const override;
  std::optional<std::uint64_t> purge(std::string_view destination) override;
  std::uint64_t stored_bytes() const override;
  // This node's subscribers are everyone: joins and leaves go through the router.
  void enter_presence(std::size_t w, std::string_view destination, std::string_view user,
                      std::function<void(std::size_t)> counted) override;
  void leave_presence(std::size_t w, std::string_view destination, std::string_view user) override;
  std::vector<presence_info> presence_of(std::span<const std::string> destinations,
                                         std::size_t limit) const override;

 private:
  // queue_source: an acknowledged durable-queue message leaves the journal.
  void settled(const queue& q, const message_ptr& m) override;
  bool shared() const noexcept override { return false; }
  // At start: what the durable queues held when the node stopped goes back into them.
  void restore_queues(held_bytes& held);
  // A join or leave, to the topic's subscribers on this node.
  void announce(std::size_t w, std::string_view destination, std::string_view event,
                std::string_view user, std::size_t count);

  worker_pool& workers_;
  router& topics_;
  queue_registry& queues_;
  held_bytes& held_;
  presence present_;
  std::atomic<std::uint64_t> presence_events_{0};  // numbers their message-ids
  const std::filesystem::path db_path_;
  std::unique_ptr<history> history_;  // null when the journal is off
};

}  // namespace broker
