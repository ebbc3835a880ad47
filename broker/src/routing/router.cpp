#include "routing/router.hpp"

#include <algorithm>
#include <cassert>
#include <stdexcept>
#include <utility>

namespace broker {

router::router(std::size_t workers, post_function post)
    : tables_(workers), outboxes_(workers), post_(std::move(post)) {
  if (workers == 0 || workers > max_workers)
    throw std::invalid_argument("router: worker count must be 1.." + std::to_string(max_workers));
  for (auto& o : outboxes_) o.waiting.resize(workers);
}

router::shard& router::shard_for(std::string_view destination) noexcept {
  return shards_[string_hash{}(destination) % shard_count];
}

void router::subscribe(std::size_t w, std::string_view destination, topic_subscriber* s,
                       std::uint64_t subscription_key) {
  assert(w < tables_.size());
  auto& subs = tables_[w][std::string(destination)];
  subs.push_back({s, subscription_key});
  // Visible to publishers on other workers before the subscription counts as made (a RECEIPT
  // the caller sends next happens after).
  auto& sh = shard_for(destination);
  std::lock_guard lock(sh.mutex);
  auto& e = sh.destinations[std::string(destination)];
  if (e.workers == 0 && interest_) interest_(destination, true);
  e.workers |= std::uint64_t{1} << w;
  ++e.subscribers;
}

void router::unsubscribe(std::size_t w, std::string_view destination, topic_subscriber* s,
                         std::uint64_t subscription_key) {
  assert(w < tables_.size());
  auto& table = tables_[w];
  auto it = table.find(destination);
  if (it == table.end()) return;
  auto& subs = it->second;
  auto removed = std::erase_if(subs, [&](const local_subscription& l) {
    return l.subscriber == s && l.key == subscription_key;
  });
  if (removed == 0) return;
  bool last_here = subs.empty();
  if (last_here) table.erase(it);
  auto& sh = shard_for(destination);
  std::lock_guard lock(sh.mutex);
  auto e = sh.destinations.find(destination);
  if (e == sh.destinations.end()) return;
  e->second.subscribers -= std::min(e->second.subscribers, removed);
  if (last_here) e->second.workers &= ~(std::uint64_t{1} << w);
  if (e->second.workers == 0) {
    sh.destinations.erase(e);
    if (interest_) interest_(destination, false);
  }
}

std::uint64_t router::count_publish(std::string_view destination) {
  auto& sh = shard_for(destination);
  std::lock_guard lock(sh.mutex);
  auto e = sh.destinations.find(destination);
  if (e == sh.destinations.end()) return 0;
  ++e->second.published;
  e->second.delivered += e->second.subscribers;
  return e->second.workers;
}

void router::publish(std::size_t from, const message_ptr& m) {
  counters_.published.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t mask = count_publish(m->destination);
  const std::uint64_t self = std::uint64_t{1} << from;
  if (mask & self) deliver_local(from, m);
  mask &= ~self;
  if (mask == 0) return;
  auto& out = outboxes_[from];
  out.workers |= mask;
  for (std::size_t w = 0; mask != 0; ++w, mask >>= 1)
    if (mask & 1) out.waiting[w].push_back(m);
}

void router::flush(std::size_t from) {
  auto& out = outboxes_[from];
  std::uint64_t mask = std::exchange(out.workers, 0);
  for (std::size_t w = 0; mask != 0; ++w, mask >>= 1) {
    if ((mask & 1) == 0) continue;
    post_(w, [this, w, messages = std::exchange(out.waiting[w], {})] {
      for (const auto& m : messages) deliver_local(w, m);
    });
  }
}

void router::publish_batch(const std::vector<message_ptr>& batch) {
  counters_.published.fetch_add(batch.size(), std::memory_order_relaxed);
  std::vector<std::vector<message_ptr>> per_worker(tables_.size());
  for (const auto& m : batch) {
    std::uint64_t mask = count_publish(m->destination);
    for (std::size_t w = 0; mask != 0; ++w, mask >>= 1)
      if (mask & 1) per_worker[w].push_back(m);
  }
  for (std::size_t w = 0; w < per_worker.size(); ++w) {
    if (per_worker[w].empty()) continue;
    post_(w, [this, w, messages = std::move(per_worker[w])] {
      for (const auto& m : messages) deliver_local(w, m);
    });
  }
}

void router::deliver_local(std::size_t w, const message_ptr& m) {
  auto& table = tables_[w];
  auto it = table.find(m->destination);
  if (it == table.end()) return;  // the last subscriber left while the task was queued
  // Subscribers never unsubscribe synchronously from inside on_topic_message (a session
  // that must close posts its close), so the vector is stable during the loop.
  for (const auto& sub : it->second) sub.subscriber->on_topic_message(m, sub.key);
  counters_.delivered.fetch_add(it->second.size(), std::memory_order_relaxed);
}

std::size_t router::destination_count() const {
  std::size_t n = 0;
  for (const auto& sh : shards_) {
    std::lock_guard lock(sh.mutex);
    n += sh.destinations.size();
  }
  return n;
}

std::vector<router::destination_stats> router::snapshot() const {
  std::vector<destination_stats> out;
  for (const auto& sh : shards_) {
    std::lock_guard lock(sh.mutex);
    for (const auto& [name, e] : sh.destinations)
      out.push_back({name, e.subscribers, e.published, e.delivered});
  }
  return out;
}

}  // namespace broker
