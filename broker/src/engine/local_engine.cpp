#include "engine/local_engine.hpp"

#include "broker/log.hpp"
#include "net/event_loop.hpp"
#include "routing/publish.hpp"
#include "routing/queue.hpp"
#include "routing/router.hpp"

#include <fmt/format.h>

#include <system_error>

namespace broker {

namespace {

std::uint64_t size_of(const std::filesystem::path& p) {
  std::error_code ec;
  auto n = std::filesystem::file_size(p, ec);
  return ec ? 0 : n;
}

}  // namespace

local_engine::local_engine(const config& settings, worker_pool& workers, router& topics,
                           queue_registry& queues, held_bytes& held, shared_metrics& metrics)
    : workers_(workers),
      topics_(topics),
      queues_(queues),
      held_(held),
      db_path_(settings.data_dir / "stompd.db") {
  if (!settings.journal.enabled) return;
  history_ = std::make_unique<history>(settings, workers, topics, queues, held, metrics);
  // Before any session subscribes (the engine is made before the listeners open).
  queues_.set_source(this);
  restore_queues(held);
}

local_engine::~local_engine() {
  // The event loops have ended: no queue calls the source any more.
  if (history_) queues_.set_source(nullptr);
}

void local_engine::restore_queues(held_bytes& held) {
  std::size_t restored = 0, left = 0;
  for (const auto& r : history_->queued_at_start()) {
    // Perhaps delivered before the stop, perhaps not: marked redelivered either way.
    auto m = make_queued_message(held, r);
    if (queues_.with_queue(r.destination, [&](queue& q) { q.supply({{std::move(m), true}}); }))
      ++restored;
    else
      ++left;  // limits.max_queues: still stored, for a start with a higher limit
  }
  if (restored > 0) log_info("journal: {} queued messages restored to their queues", restored);
  if (left > 0)
    log_warn("journal: {} queued messages stay stored: their queues exceed limits.max_queues",
             left);
}

bool local_engine::stores_queue(std::string_view destination) const noexcept {
  return history_ && history_->policy_for(destination).journaled;
}

bool local_engine::enqueue(std::size_t w, std::string destination, header_list headers,
                           std::string body, append_callback done) {
  // A place in the queue is taken before the store, and given back if the store fails: the
  // bound holds for SENDs in flight too.
  bool reserved = false;
  if (!queues_.with_queue(destination, [&](queue& q) { reserved = q.reserve(); })) return false;
  if (!reserved) {
    storage::append_result refused;
    refused.ec = engine_errc::queue_full;
    workers_.post(w, [done = std::move(done), refused] { done(refused); });
    return true;
  }
  history_->enqueue(w, std::move(destination), std::move(headers), std::move(body),
                    std::move(done));
  return true;
}

void local_engine::settled(const queue& q, const message_ptr& m) {
  if (m->seq != 0) history_->remove(q.name(), m->seq);  // 0: a queue kept in memory only
}

bool local_engine::journaled(std::string_view destination) const {
  // Only topics keep history; a queue's messages live in the queue until acknowledged.
  return history_ && destination.starts_with("/topic/") &&
         history_->policy_for(destination).journaled;
}

bool local_engine::append(std::size_t w, std::string destination, header_list headers,
                          std::string body, std::string idempotency_key, append_callback done) {
  return history_->append(w, std::move(destination), std::move(headers), std::move(body),
                          std::move(idempotency_key), std::move(done));
}

engine::route_result route_on_node(router& topics, queue_registry& queues, std::size_t w,
                                   const message_ptr& m) {
  using result = engine::route_result;
  if (m->destination.starts_with("/topic/")) {
    topics.publish(w, m);
    return result::routed;
  }
  bool accepted = false;
  if (!queues.with_queue(m->destination, [&](queue& q) { accepted = q.enqueue(m); }))
    return result::too_many_queues;
  return accepted ? result::routed : result::queue_full;
}

engine::route_result local_engine::route(std::size_t w, const message_ptr& m,
                                         std::span<const stomp::header_view>, std::string_view) {
  return route_on_node(topics_, queues_, w, m);
}

void local_engine::when_stored(std::size_t w, std::function<void()> done) {
  if (!history_) return done();
  history_->flush([this, w, done = std::move(done)]() mutable {
    // Moved into the posted task, so whatever it owns is released on w, not the writer.
    workers_.post(w, std::move(done));
  });
}

void local_engine::drain(std::function<void()> done) {
  if (!history_) return done();
  history_->flush(std::move(done));
}

void local_engine::replay(storage::replay_request request, replay_callback done) {
  if (!history_) {
    storage::replay_result r;
    r.ec = make_error_code(storage::errc::closed);
    return done(std::move(r));
  }
  history_->replay(std::move(request), std::move(done));
}

std::vector<storage::destination_stats> local_engine::stored() const {
  if (!history_) return {};
  return history_->journal().stats();
}

std::optional<std::uint64_t> local_engine::purge(std::string_view destination) {
  if (!journaled(destination)) return std::nullopt;
  return history_->journal().purge(destination);
}

std::uint64_t local_engine::stored_bytes() const {
  if (!history_) return 0;
  return size_of(db_path_) + size_of(db_path_.string() + "-wal");
}

void local_engine::enter_presence(std::size_t w, std::string_view destination,
                                  std::string_view user, std::function<void(std::size_t)> counted) {
  if (auto now = present_.enter(destination, user)) announce(w, destination, "join", user, *now);
  counted(present_.count(destination));
}

void local_engine::leave_presence(std::size_t w, std::string_view destination,
                                  std::string_view user) {
  if (auto now = present_.leave(destination, user)) announce(w, destination, "leave", user, *now);
}

void local_engine::announce(std::size_t w, std::string_view destination, std::string_view event,
                            std::string_view user, std::size_t count) {
  topics_.publish(
      w, make_presence_message(held_, destination, fmt::format("presence-{}", ++presence_events_),
                               event, user, count));
}

std::vector<engine::presence_info> local_engine::presence_of(
    std::span<const std::string> destinations, std::size_t limit) const {
  return presence_on_node(present_, destinations, limit);
}

}  // namespace broker
