#include "routing/queue.hpp"

#include <algorithm>

namespace broker {

queue::queue(std::string name, std::size_t max_messages, write_window window,
             const std::atomic<queue_source*>* source)
    : name_(std::move(name)), max_messages_(max_messages), window_(window), source_(source) {}

std::size_t queue::delivery_bytes(const message& m) noexcept {
  return m.encoded.tail(stomp::version::v1_2).size();
}

bool queue::enqueue(message_ptr m) {
  std::lock_guard lock(mutex_);
  if (waiting_.size() >= max_messages_) return false;
  ++enqueued_;
  waiting_.push_back({std::move(m), false});
  dispatch();
  return true;
}

bool queue::reserve() {
  std::lock_guard lock(mutex_);
  if (waiting_.size() + reserved_ >= max_messages_) return false;
  ++reserved_;
  return true;
}

void queue::unreserve() {
  std::lock_guard lock(mutex_);
  if (reserved_ > 0) --reserved_;
}

void queue::supply(std::vector<supplied> messages, std::size_t reserved) {
  std::lock_guard lock(mutex_);
  reserved_ -= std::min(reserved, reserved_);
  for (auto& m : messages) waiting_.push_back({std::move(m.msg), m.redelivered});
  hungry_ = false;
  dispatch();
  tell_source({});
}

std::size_t queue::wanted() const {
  std::lock_guard lock(mutex_);
  return wanted_locked();
}

std::size_t queue::wanted_locked() const noexcept {
  std::size_t room = 0;
  for (const auto& c : consumers_) {
    if (c.unwritten_bytes >= window_.bytes || c.unwritten >= window_.frames) continue;
    std::size_t n = window_.frames - c.unwritten;
    if (c.mode != ack_mode::auto_ack && c.prefetch != 0)
      n = std::min(n, c.prefetch > c.unacked.size() ? c.prefetch - c.unacked.size() : 0);
    room += n;
  }
  return room > waiting_.size() ? room - waiting_.size() : 0;
}

void queue::tell_source(std::vector<message_ptr> settled) {
  auto* s = source();
  if (s == nullptr) return;
  for (const auto& m : settled) s->settled(*this, m);
  if (!s->shared()) return;
  if (consumers_.empty()) {
    // Nobody here takes them: what waits goes back (and the source stops taking for us).
    std::vector<message_ptr> back;
    back.reserve(waiting_.size());
    for (auto& e : waiting_) back.push_back(std::move(e.msg));
    waiting_.clear();
    hungry_ = false;
    return s->returned(*this, std::move(back));
  }
  if (!hungry_ && wanted_locked() > 0) {
    hungry_ = true;
    s->hungry(shared_from_this());
  }
}

void queue::add_consumer(queue_consumer* c, std::uint64_t key, ack_mode mode,
                         std::size_t prefetch) {
  std::lock_guard lock(mutex_);
  consumers_.push_back({c, key, mode, prefetch, {}, 0, 0});
  dispatch();
  tell_source({});
}

void queue::remove_consumer(const queue_consumer* c, std::uint64_t key) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(consumers_.begin(), consumers_.end(),
                         [&](const consumer& x) { return x.raw == c && x.key == key; });
  if (it == consumers_.end()) return;
  // Unacknowledged messages go back to the head in their original order, marked
  // redelivered; an auto-ack one was never written, so it goes back as it was.
  const bool client_mode = it->mode != ack_mode::auto_ack;
  for (auto u = it->unacked.rbegin(); u != it->unacked.rend(); ++u)
    waiting_.push_front({std::move(u->msg), client_mode || u->redelivered});
  auto index = static_cast<std::size_t>(it - consumers_.begin());
  consumers_.erase(it);
  if (next_ > index) --next_;
  if (next_ >= consumers_.size()) next_ = 0;
  dispatch();
  tell_source({});
}

queue::consumer* queue::find(const queue_consumer* c, std::uint64_t key) {
  for (auto& x : consumers_)
    if (x.raw == c && x.key == key) return &x;
  return nullptr;
}

bool queue::settle(const queue_consumer* c, std::uint64_t key, std::string_view message_id,
                   bool cumulative, bool requeue) {
  std::lock_guard lock(mutex_);
  consumer* con = find(c, key);
  if (con == nullptr) return false;
  auto& unacked = con->unacked;
  auto it = std::find_if(unacked.begin(), unacked.end(),
                         [&](const entry& e) { return e.msg->id == message_id; });
  if (it == unacked.end()) return false;
  auto first = cumulative ? unacked.begin() : it;
  auto last = std::next(it);
  std::vector<message_ptr> settled;
  if (requeue) {
    // Back to the head, keeping their order, ahead of messages that never went out.
    for (auto u = std::make_reverse_iterator(last); u != std::make_reverse_iterator(first); ++u)
      waiting_.push_front({std::move(u->msg), true});
  } else if (source() != nullptr) {
    for (auto u = first; u != last; ++u) settled.push_back(std::move(u->msg));
  }
  unacked.erase(first, last);
  dispatch();
  tell_source(std::move(settled));
  return true;
}

void queue::written(const queue_consumer* c, std::uint64_t key, std::size_t count,
                    std::size_t bytes) {
  std::lock_guard lock(mutex_);
  consumer* con = find(c, key);
  if (con == nullptr) return;
  count = std::min(count, con->unwritten);
  con->unwritten -= count;
  con->unwritten_bytes -= std::min(bytes, con->unwritten_bytes);
  std::vector<message_ptr> settled;
  if (con->mode == ack_mode::auto_ack) {
    // Written is delivered for auto-ack: the oldest `count` leave the queue for good.
    const auto end = con->unacked.begin() + static_cast<std::ptrdiff_t>(count);
    if (source() != nullptr)
      for (auto u = con->unacked.begin(); u != end; ++u) settled.push_back(std::move(u->msg));
    con->unacked.erase(con->unacked.begin(), end);
  }
  dispatch();
  tell_source(std::move(settled));
}

bool queue::awaiting(const queue_consumer* c, std::uint64_t key,
                     std::string_view message_id) const {
  std::lock_guard lock(mutex_);
  for (const auto& x : consumers_) {
    if (x.raw != c || x.key != key || x.mode == ack_mode::auto_ack) continue;
    return std::any_of(x.unacked.begin(), x.unacked.end(),
                       [&](const entry& e) { return e.msg->id == message_id; });
  }
  return false;
}

bool queue::ack(const queue_consumer* c, std::uint64_t key, std::string_view message_id,
                bool cumulative) {
  return settle(c, key, message_id, cumulative, false);
}

bool queue::nack(const queue_consumer* c, std::uint64_t key, std::string_view message_id,
                 bool cumulative) {
  return settle(c, key, message_id, cumulative, true);
}

void queue::dispatch() {
  // Round-robin over consumers with credit; stops when nothing waits or nobody can take more.
  while (!waiting_.empty() && !consumers_.empty()) {
    consumer* chosen = nullptr;
    for (std::size_t tried = 0; tried < consumers_.size(); ++tried) {
      auto& c = consumers_[next_];
      next_ = (next_ + 1) % consumers_.size();
      if (has_credit(c)) {
        chosen = &c;
        break;
      }
    }
    if (chosen == nullptr) return;
    entry e = std::move(waiting_.front());
    waiting_.pop_front();
    chosen->raw->on_queue_message(e.msg, chosen->key, e.redelivered);
    ++delivered_;
    ++chosen->unwritten;
    chosen->unwritten_bytes += delivery_bytes(*e.msg);
    chosen->unacked.push_back(std::move(e));
  }
}

bool queue::has_credit(const consumer& c) const noexcept {
  bool window =
      c.unwritten == 0 || (c.unwritten < window_.frames && c.unwritten_bytes < window_.bytes);
  bool prefetch = c.mode == ack_mode::auto_ack || c.prefetch == 0 || c.unacked.size() < c.prefetch;
  return window && prefetch;
}

bool queue::idle() const {
  std::lock_guard lock(mutex_);
  return waiting_.empty() && consumers_.empty() && reserved_ == 0;
}

queue::stats queue::snapshot() const {
  std::lock_guard lock(mutex_);
  return {consumers_.size(), waiting_.size(), enqueued_, delivered_};
}

std::size_t queue::unacked(const queue_consumer* c, std::uint64_t key) const {
  std::lock_guard lock(mutex_);
  for (const auto& x : consumers_)
    if (x.raw == c && x.key == key) return x.unacked.size();
  return 0;
}

std::size_t queue::depth() const {
  std::lock_guard lock(mutex_);
  return waiting_.size();
}

std::shared_ptr<queue> queue_registry::with_queue(std::string_view name,
                                                  const std::function<void(queue&)>& fn) {
  auto& sh = shard_for(name);
  std::lock_guard lock(sh.mutex);
  auto it = sh.queues.find(name);
  if (it == sh.queues.end()) {
    if (count_.fetch_add(1, std::memory_order_relaxed) >= max_queues_) {
      count_.fetch_sub(1, std::memory_order_relaxed);
      return nullptr;
    }
    it = sh.queues
             .emplace(std::string(name), std::make_shared<queue>(std::string(name), max_messages_,
                                                                 queue::write_window{}, &source_))
             .first;
  }
  fn(*it->second);
  auto q = it->second;
  if (q->idle()) {  // e.g. a rejected enqueue into a fresh queue
    sh.queues.erase(it);
    count_.fetch_sub(1, std::memory_order_relaxed);
  }
  return q;
}

void queue_registry::release(std::string_view name) {
  auto& sh = shard_for(name);
  std::lock_guard lock(sh.mutex);
  auto it = sh.queues.find(name);
  if (it != sh.queues.end() && it->second->idle()) {
    sh.queues.erase(it);
    count_.fetch_sub(1, std::memory_order_relaxed);
  }
}

std::vector<std::pair<std::string, queue::stats>> queue_registry::snapshot() const {
  std::vector<std::pair<std::string, queue::stats>> out;
  for (const auto& sh : shards_) {
    std::lock_guard lock(sh.mutex);
    for (const auto& [name, q] : sh.queues) out.emplace_back(name, q->snapshot());
  }
  return out;
}

std::size_t queue_registry::size() const {
  std::size_t n = 0;
  for (const auto& sh : shards_) {
    std::lock_guard lock(sh.mutex);
    n += sh.queues.size();
  }
  return n;
}

}  // namespace broker
