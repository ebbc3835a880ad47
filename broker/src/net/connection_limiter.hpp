#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace broker {

// Bounds connections in total and per remote address (limits.max_connections,
// limits.max_connections_per_address), so one host can't take every descriptor.
// Thread-safe: slots are taken on the accepting thread and released wherever a session ends.
class connection_limiter {
 public:
  connection_limiter(std::size_t max_total, std::size_t max_per_address)
      : max_total_(max_total), max_per_address_(max_per_address) {}

  // Held by a session for its life; releases its place on destruction.
  class slot {
   public:
    slot() = default;
    slot(connection_limiter* owner, std::string address)
        : owner_(owner), address_(std::move(address)) {}
    slot(slot&& other) noexcept : owner_(other.owner_), address_(std::move(other.address_)) {
      other.owner_ = nullptr;
    }
    slot& operator=(slot&& other) noexcept;
    ~slot() { release(); }

   private:
    void release() noexcept;
    connection_limiter* owner_ = nullptr;
    std::string address_;
  };

  // A slot, or nullopt when taking one would exceed a limit; `why` then says which.
  std::optional<slot> acquire(const std::string& address, std::string* why);

  std::size_t active() const;

 private:
  void release(const std::string& address) noexcept;

  const std::size_t max_total_;
  const std::size_t max_per_address_;  // 0: no limit
  mutable std::mutex mutex_;
  std::size_t total_ = 0;
  std::unordered_map<std::string, std::size_t> per_address_;
};

}  // namespace broker
