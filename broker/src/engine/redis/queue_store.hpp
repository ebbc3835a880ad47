#pragma once

#include "engine/redis/connection.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker::redis {

// A /queue/ destination's messages in Redis, shared by every node:
//   {<prefix><destination>}:queue  a stream, one entry per message waiting or held by a
//                                  consumer, fields h (headers) and b (body), with one
//                                  consumer group "stompd" in which each node is a consumer
//   {<prefix><destination>}:ready  the channel that says "something to take" (an empty
//                                  message): a SEND, or a node giving messages back
// A node takes messages (XREADGROUP: they enter its pending list), hands them to its own
// consumers, and settles each once acknowledged (XACK and XDEL together), so the stream holds
// exactly what is not yet acknowledged. Messages in the pending list of a node that stopped
// renewing them (touch()) for the redelivery timeout (a killed node), or given back by a node
// whose consumers left, are claimed by the next node that takes.
//
// Library "stompd_queues", loaded by load(), does the steps that must be atomic.
class queue_store {
 public:
  using header_list = std::vector<std::pair<std::string, std::string>>;
  struct entry {
    std::string id;  // the stream entry's id, "<ms>-<n>": the MESSAGE's message-id
    header_list headers;
    std::string body;
    bool redelivered = false;  // claimed from another consumer, who may have had it
  };
  struct taken {
    boost::system::error_code ec;  // server_error: `error` says what Redis said
    std::string error;
    std::vector<entry> entries;  // claimed ones first, then new ones in stream order
  };
  struct queued {
    boost::system::error_code ec;
    std::string error;
    bool full = false;  // max_waiting already wait: nothing was stored
    std::string id;     // else the entry's: the MESSAGE's message-id
  };

  explicit queue_store(std::string key_prefix) : prefix_(std::move(key_prefix)) {}

  void load(connection& c, std::function<void(boost::system::error_code, std::string)> done) const;
  // Stores a message unless `max_waiting` messages already wait (held ones not counted), and
  // says so on the ready channel.
  void enqueue(connection& c, std::string_view destination, const header_list& headers,
               std::string_view body, std::size_t max_waiting,
               std::function<void(queued)> done) const;
  // Up to `count` messages for `consumer`: first those nobody renewed for `redelivery`, then
  // new ones.
  void take(connection& c, std::string_view destination, std::string_view consumer,
            std::size_t count, std::chrono::milliseconds redelivery,
            std::function<void(taken)> done) const;
  // Acknowledged: gone from the group and the stream.
  void settle(connection& c, std::string_view destination, const std::vector<std::string>& ids,
              std::function<void(boost::system::error_code)> done) const;
  // Still held by `consumer`: their idle time starts again.
  void touch(connection& c, std::string_view destination, std::string_view consumer,
             const std::vector<std::string>& ids,
             std::function<void(boost::system::error_code)> done) const;
  // No longer wanted by `consumer`: marked idle for a week, so the next take by any node
  // claims them, and announced on the ready channel.
  void give_back(connection& c, std::string_view destination, std::string_view consumer,
                 const std::vector<std::string>& ids,
                 std::function<void(boost::system::error_code)> done) const;

  std::string key(std::string_view destination) const;
  std::string channel(std::string_view destination) const;

  // Ids per settle, touch or give_back call: the Lua stack takes a few thousand arguments.
  static constexpr std::size_t max_ids_per_call = 500;

 private:
  std::string prefix_;
};

}  // namespace broker::redis
