#pragma once

#include "routing/router.hpp"

#include <array>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker {

// Who is in each topic: the principals with at least one subscription to it on this node. A
// user with several subscriptions or connections counts once, and leaves with the last one
// (anonymous connections are all the one user "anonymous"). Each engine keeps one: the local
// engine's is the whole answer, the Redis engine's what this node vouches for across the
// nodes (engine::enter_presence). Bounded by the subscriptions that exist: an entry lives as
// long as one of them. Thread-safe: one mutex per shard of destinations.
class presence {
 public:
  // A subscription of `user` to `destination` began. When it is the user's first there, the
  // number of users present now (the user joined); else nullopt.
  std::optional<std::size_t> enter(std::string_view destination, std::string_view user);
  // One ended. When it was the user's last there, the number still present (the user left).
  std::optional<std::size_t> leave(std::string_view destination, std::string_view user);

  std::size_t count(std::string_view destination) const;
  // The users present, sorted, at most `limit` of them.
  std::vector<std::string> members(std::string_view destination, std::size_t limit) const;
  // Every destination with someone present, and who (unsorted): what a shared engine keeps
  // vouching for.
  std::vector<std::pair<std::string, std::vector<std::string>>> rooms() const;

 private:
  struct shard {
    mutable std::mutex mutex;
    // destination -> user -> subscriptions
    string_map<string_map<std::size_t>> rooms;
  };
  static constexpr std::size_t shard_count = 16;
  shard& shard_for(std::string_view d) noexcept { return shards_[string_hash{}(d) % shard_count]; }
  const shard& shard_for(std::string_view d) const noexcept {
    return shards_[string_hash{}(d) % shard_count];
  }
  std::array<shard, shard_count> shards_;
};

}  // namespace broker
