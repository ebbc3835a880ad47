#pragma once

#include "engine/redis/connection.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace broker::redis {

// Who is present in each topic across the nodes (x-presence), in Redis:
//   {<prefix><destination>}:presence  a hash, field "<node>\t<user>" for each user a node has
//                                     subscribed there, value the Redis time (ms) until which
//                                     the node vouches for it
// A node vouches again for its users every third of cluster.redis.presence_timeout (renew());
// an entry not renewed in time (its node killed, or cut off) is removed by the next call that
// touches the hash, and the user leaves if no other node has it. Joins and leaves are
// published by the same atomic calls, on the channel the destination's followers already
// listen to (its announcements', or its live messages'), as presence events: so every
// node's subscribers see one join and one leave per user, in the order Redis made them.
//
// Library "stompd_presence", loaded by load().
class presence_store {
 public:
  // A join or leave as it travels on the channel: "presence <join|leave> <count> <user>".
  struct event {
    std::string kind;  // "join" or "leave"
    std::size_t count = 0;
    std::string user;
  };
  struct present {
    boost::system::error_code ec;
    std::string error;
    std::size_t count = 0;
    std::vector<std::string> members;  // members() only: sorted, at most its limit
  };

  explicit presence_store(std::string key_prefix, std::chrono::milliseconds timeout)
      : prefix_(std::move(key_prefix)), timeout_(timeout) {}

  void load(connection& c, std::function<void(boost::system::error_code, std::string)> done) const;
  // `node` has `user` in `destination` now; `done` gets the number present after. Publishes
  // a join on `channel` when no node had the user.
  void enter(connection& c, std::string_view destination, std::string_view channel,
             std::string_view node, std::string_view user, std::function<void(present)> done) const;
  // `node` has `user` no more; publishes a leave when no other node has it.
  void leave(connection& c, std::string_view destination, std::string_view channel,
             std::string_view node, std::string_view user) const;
  // `node` still has `users` in `destination`: vouched for again. An entry it no longer
  // renews (a leave Redis was not told of while unreachable) times out like a dead node's.
  void renew(connection& c, std::string_view destination, std::string_view channel,
             std::string_view node, const std::vector<std::string>& users) const;
  // The number present and the first `limit` users, sorted.
  void members(connection& c, std::string_view destination, std::string_view channel,
               std::size_t limit, std::function<void(present)> done) const;

  std::string key(std::string_view destination) const;
  // nullopt when `payload` is not a presence event (an announcement, a live message).
  static std::optional<event> parse_event(std::string_view payload);

  // Users per renew() call: the Lua stack takes a few thousand arguments.
  static constexpr std::size_t max_users_per_call = 500;

 private:
  std::string prefix_;
  std::chrono::milliseconds timeout_;
};

}  // namespace broker::redis
