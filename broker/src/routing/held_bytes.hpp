#pragma once

#include <atomic>
#include <cstddef>
#include <utility>

namespace broker {

// What the broker holds of its clients' messages, all connections together, against
// limits.max_held_bytes_total: every published message from its making to its last
// reference (in a queue, in outboxes, behind a replay, in a commit's batch), counted once
// however many subscribers share it, and the frames of open transactions. Over the limit,
// connections stop being read after their next SEND until it is back under (session's
// push-back), and the admin API's publish answers 503: the broker-wide bound behind the
// per-connection budgets, the way RabbitMQ's memory alarm blocks publishers.
//
// Thread-safe: one relaxed counter, touched once when a message is made and once when it is
// freed (not per delivery).
class held_bytes {
 public:
  explicit held_bytes(std::size_t limit) noexcept : limit_(limit) {}
  held_bytes(const held_bytes&) = delete;
  held_bytes& operator=(const held_bytes&) = delete;

  // A share of the count, given back when destroyed. Move-only; empty when default-made.
  class claim {
   public:
    claim() = default;
    claim(held_bytes& owner, std::size_t n) noexcept : owner_(&owner) { grow(n); }
    claim(claim&& o) noexcept
        : owner_(std::exchange(o.owner_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
    claim& operator=(claim&& o) noexcept {
      if (this != &o) {
        release();
        owner_ = std::exchange(o.owner_, nullptr);
        bytes_ = std::exchange(o.bytes_, 0);
      }
      return *this;
    }
    ~claim() { release(); }

    void grow(std::size_t n) noexcept {
      bytes_ += n;
      owner_->bytes_.fetch_add(n, std::memory_order_relaxed);
    }
    std::size_t bytes() const noexcept { return bytes_; }

   private:
    void release() noexcept {
      if (owner_ && bytes_ != 0) owner_->bytes_.fetch_sub(bytes_, std::memory_order_relaxed);
      bytes_ = 0;
    }
    held_bytes* owner_ = nullptr;
    std::size_t bytes_ = 0;
  };

  std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  std::size_t limit() const noexcept { return limit_; }
  bool over() const noexcept { return bytes() > limit_; }

 private:
  std::atomic<std::size_t> bytes_{0};
  const std::size_t limit_;
};

}  // namespace broker
