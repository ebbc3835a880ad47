#include "broker/log.hpp"
#include "engine/redis/redis_engine.hpp"
#include "routing/publish.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <utility>

// Queues shared by the nodes (redis_engine::shared_queue, redis::queue_store): a SEND is
// stored in the queue's stream; a node whose consumers can take messages takes that many
// from Redis (they enter its pending list), and the registry's queue hands them out with its
// ack modes, prefetch and NACK as on one node. Acknowledged messages are settled in Redis;
// what waits when the last consumer here leaves is given back; what a dead node held is
// claimed by another once nobody renewed it for cluster.redis.queue_redelivery_timeout_ms.

namespace broker {

namespace net = boost::asio;
using boost::system::error_code;

namespace {

// Messages per take: a batch large enough for a busy consumer, small enough that one node
// does not take what other nodes' consumers wait for.
constexpr std::size_t max_take = 256;

// Splits `ids` into calls of at most queue_store::max_ids_per_call.
template <typename Call>
void in_batches(const std::vector<std::string>& ids, Call call) {
  for (std::size_t i = 0; i < ids.size(); i += redis::queue_store::max_ids_per_call) {
    const auto end = std::min(ids.size(), i + redis::queue_store::max_ids_per_call);
    call(std::vector<std::string>(ids.begin() + static_cast<std::ptrdiff_t>(i),
                                  ids.begin() + static_cast<std::ptrdiff_t>(end)));
  }
}

}  // namespace

bool redis_engine::enqueue(std::size_t w, std::string destination, header_list headers,
                           std::string body, append_callback done) {
  if (!admit(known_queues_, settings_.limits.max_queues, destination)) return false;
  net::post(io_, [this, w, d = std::move(destination), headers = std::move(headers),
                  body = std::move(body), done = std::move(done)]() mutable {
    auto& s = shard_for(d);
    auto answer = answer_for(w, std::move(done));
    if (!s.up || !s.refusal.empty()) {
      storage::append_result failed;
      failed.ec = error_code(s.up ? redis::errc::weaker_durability : redis::errc::not_connected);
      return answer(std::move(failed), nullptr);
    }
    queue_store_.enqueue(*s.commands, d, headers, body, settings_.limits.max_queue_messages,
                         [&s, answer = std::move(answer)](redis::queue_store::queued q) mutable {
                           if (!q.error.empty()) log_error("redis {}: {}", s.name, q.error);
                           storage::append_result result;
                           result.ec = q.ec;
                           if (!q.ec && q.full) result.ec = engine_errc::queue_full;
                           result.message_id = std::move(q.id);
                           answer(std::move(result), nullptr);
                         });
  });
  return true;
}

// --- queue_source: from the queues, on any thread ----------------------------------------------

void redis_engine::hungry(const std::shared_ptr<queue>& q) {
  net::post(io_, [this, d = q->name(), weak = std::weak_ptr<queue>(q)]() mutable {
    on_hungry(std::move(d), std::move(weak));
  });
}

void redis_engine::settled(const queue& q, const message_ptr& m) {
  net::post(io_, [this, d = q.name(), id = m->id]() mutable { settle_soon(d, std::move(id)); });
}

void redis_engine::returned(const queue& q, std::vector<message_ptr> messages) {
  std::vector<std::string> ids;
  ids.reserve(messages.size());
  for (const auto& m : messages) ids.push_back(m->id);
  net::post(io_, [this, d = q.name(), local = &q, ids = std::move(ids)]() mutable {
    auto it = shared_queues_.find(d);
    // Another queue of the same name may have taken over meanwhile (the registry made a new
    // one for a new consumer): only this queue's entry ends.
    if (it != shared_queues_.end()) {
      for (const auto& id : ids) it->second->held.erase(id);
      if (it->second->local == local) {
        // What it held is all in `ids` now (acknowledgements were posted before this): a
        // take still on its way finds no entry and gives its messages back too.
        auto& sub = it->second->home->subscriber;
        if (sub && sub->subscribed(queue_store_.channel(d)))
          sub->unsubscribe(queue_store_.channel(d));
        shared_queues_.erase(it);
      }
    }
    if (!ids.empty()) give_back(shard_for(d), d, std::move(ids));
  });
}

// --- the engine thread from here on ------------------------------------------------------------

redis_engine::shared_queue* redis_engine::find_queue(std::string_view destination,
                                                     std::uint64_t generation) {
  auto it = shared_queues_.find(destination);
  if (it == shared_queues_.end() || it->second->generation != generation) return nullptr;
  return it->second.get();
}

void redis_engine::on_hungry(std::string destination, std::weak_ptr<queue> q) {
  auto local = q.lock();
  if (!local) return;
  auto it = shared_queues_.find(destination);
  if (it == shared_queues_.end() || it->second->local != local.get()) {
    auto sq = std::make_unique<shared_queue>();
    sq->destination = destination;
    sq->generation = ++generations_;
    sq->home = &shard_for(destination);
    sq->local = local.get();
    sq->local_alive = std::move(q);
    auto& ref = *sq;
    shared_queues_.insert_or_assign(std::move(destination), std::move(sq));
    return subscribe(ref);  // then takes
  }
  auto& sq = *it->second;
  if (sq.subscribed && !sq.drained) take(sq);
}

void redis_engine::subscribe(shared_queue& sq) {
  auto& s = *sq.home;
  sq.subscribed = false;
  if (!s.up) return;  // resume_queues() subscribes once it is back
  s.subscriber->subscribe(
      queue_store_.channel(sq.destination),
      [this, d = sq.destination, g = sq.generation](std::string) {
        auto* here = find_queue(d, g);
        if (!here) return;
        here->drained = false;  // something to take
        take(*here);
      },
      [this, d = sq.destination, g = sq.generation, sub = s.subscriber](error_code ec) {
        auto* here = find_queue(d, g);
        if (!here || sub != here->home->subscriber) return;
        if (ec == redis::errc::already_subscribed) {
          // Leaving from an earlier consumer's time here, not yet confirmed: again shortly.
          return soon([this, d, g] {
            if (auto* again = find_queue(d, g); again && again->home->up) subscribe(*again);
          });
        }
        if (ec) return;  // the connection ended: resume_queues() subscribes again
        here->subscribed = true;
        here->drained = false;
        take(*here);  // what was stored before the subscription took effect
      });
}

void redis_engine::take(shared_queue& sq) {
  if (sq.taking) {
    sq.again = true;
    return;
  }
  auto local = sq.local_alive.lock();
  if (!local || !sq.home->up) return;
  const auto wanted = std::min(local->wanted(), max_take);
  if (wanted == 0) return;
  sq.taking = true;
  sq.again = false;
  queue_store_.take(*sq.home->commands, sq.destination, consumer_, wanted,
                    settings_.cluster.redis.queue_redelivery_timeout,
                    [this, d = sq.destination, g = sq.generation, wanted](
                        redis::queue_store::taken t) { on_taken(d, g, wanted, std::move(t)); });
}

void redis_engine::on_taken(std::string destination, std::uint64_t generation, std::size_t asked,
                            redis::queue_store::taken t) {
  auto* sq = find_queue(destination, generation);
  if (!sq) {
    // The consumers here left while the take was on its way: back for the others.
    std::vector<std::string> ids;
    for (const auto& e : t.entries) ids.push_back(e.id);
    if (!ids.empty()) give_back(shard_for(destination), destination, std::move(ids));
    return;
  }
  sq->taking = false;
  if (t.ec) {
    if (!t.error.empty()) log_error("redis {}: {}", sq->home->name, t.error);
    return;  // a lost connection: resume_queues(); else queue_tick() tries again
  }
  sq->drained = t.entries.size() < asked;
  if (!t.entries.empty()) {
    std::vector<queue::supplied> messages;
    messages.reserve(t.entries.size());
    for (auto& e : t.entries) {
      sq->held.insert(e.id);
      std::vector<stomp::header_view> passed;
      passed.reserve(e.headers.size());
      for (const auto& [name, value] : e.headers) passed.push_back({name, value});
      messages.push_back(
          {make_live_message(held_, destination, e.id, passed, e.body), e.redelivered});
    }
    auto local = sq->local_alive.lock();
    if (local) {
      // Hungry again after these (hungry()) if the consumers can take still more.
      local->supply(std::move(messages));
    } else {
      std::vector<std::string> ids(sq->held.begin(), sq->held.end());
      sq->held.clear();
      give_back(*sq->home, destination, std::move(ids));
      return;
    }
  }
  if (auto* again = find_queue(destination, generation); again && again->again) take(*again);
}

void redis_engine::give_back(shard& s, std::string_view destination, std::vector<std::string> ids) {
  if (!s.up) return;  // held by a consumer name nobody renews: claimed after the timeout
  in_batches(ids, [&](std::vector<std::string> batch) {
    queue_store_.give_back(*s.commands, destination, consumer_, batch, [&s](error_code ec) {
      if (ec && ec != redis::errc::closed)
        log_warn("redis {}: giving back: {}", s.name, ec.message());
    });
  });
}

void redis_engine::settle_soon(std::string_view destination, std::string id) {
  if (auto it = shared_queues_.find(destination); it != shared_queues_.end())
    it->second->held.erase(id);
  auto& ids = to_settle_[std::string(destination)];
  ids.push_back(std::move(id));
  // Acknowledgements that arrive together go in one call per queue.
  if (std::exchange(settle_posted_, true)) return;
  net::post(io_, [this] { settle_now(); });
}

void redis_engine::settle_now() {
  settle_posted_ = false;
  auto batch = std::exchange(to_settle_, {});
  for (auto& entry : batch) {
    const std::string& destination = entry.first;  // a name, not a binding: lambdas take it
    const auto& ids = entry.second;
    auto& s = shard_for(destination);
    if (!s.up) {  // kept for when it is back: settled late is better than delivered twice
      auto& later = to_settle_[destination];
      later.insert(later.end(), ids.begin(), ids.end());
      continue;
    }
    in_batches(ids, [&](std::vector<std::string> part) {
      queue_store_.settle(*s.commands, destination, part,
                          [this, d = destination, part](error_code ec) mutable {
                            if (!ec || ec == redis::errc::closed) return;
                            auto& later = to_settle_[d];  // queue_tick() tries again
                            later.insert(later.end(), part.begin(), part.end());
                          });
    });
  }
}

void redis_engine::queue_tick() {
  // Every third of the redelivery timeout: renews what this node holds before anyone may count
  // it as a dead node's, and claims what dead nodes held (take() claims first). Every tick:
  // settles what failed to settle before.
  const auto redelivery = settings_.cluster.redis.queue_redelivery_timeout;
  const auto now = std::chrono::steady_clock::now();
  const bool renew = now - last_touch_ >= redelivery / 3;
  if (renew) last_touch_ = now;
  for (auto& entry : shared_queues_) {
    auto& sq = entry.second;
    if (!sq->home->up) continue;
    if (renew && !sq->held.empty()) {
      in_batches({sq->held.begin(), sq->held.end()}, [&](std::vector<std::string> batch) {
        queue_store_.touch(*sq->home->commands, sq->destination, consumer_, batch, nullptr);
      });
    }
    // Claiming what a dead node held needs asking; new messages are announced.
    if (renew && sq->subscribed) take(*sq);
  }
  if (!to_settle_.empty() && !settle_posted_) settle_now();
  queue_timer_.expires_after(
      std::clamp(redelivery / 4, std::chrono::milliseconds(25), std::chrono::milliseconds(1000)));
  queue_timer_.async_wait([this](error_code ec) {
    if (!ec) queue_tick();
  });
}

void redis_engine::resume_queues(shard& s) {
  for (auto& [destination, sq] : shared_queues_)
    if (sq->home == &s) subscribe(*sq);
}

void redis_engine::lose_queues(shard& s) {
  for (auto& [destination, sq] : shared_queues_) {
    if (sq->home != &s) continue;
    sq->subscribed = false;
    sq->taking = false;
  }
}

}  // namespace broker
