#pragma once

#include "routing/message.hpp"
#include "stomp/frame.hpp"
#include "storage/journal.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace broker {

class presence;

// Why an engine did not store a message it was asked to (append_result::ec), besides the
// store's own failures.
enum class engine_errc {
  queue_full = 1,  // the queue already holds limits.max_queue_messages waiting messages
};
const std::error_category& engine_category() noexcept;
inline std::error_code make_error_code(engine_errc e) noexcept {
  return {static_cast<int>(e), engine_category()};
}

// What keeps messages and carries them to subscribers: the part behind the publish path
// (routing/publish.hpp). Sessions and the admin API never call it directly, so they do not
// know which engine they talk to.
//
// The node-local engine (local_engine) journals in SQLite and fans out through the in-process
// router; a shared engine (Redis streams and pub/sub) keeps history and fans out across nodes
// behind the same calls.
//
// Threading: every member is thread-safe. Calls that name a worker `w` are made on w's thread,
// and their callbacks run on w's thread too, unless a comment says otherwise.
class engine {
 public:
  using header_list = std::vector<std::pair<std::string, std::string>>;
  using append_callback = std::function<void(const storage::append_result&)>;
  using replay_callback = std::function<void(storage::replay_result&&)>;
  // too_many_queues: a new /queue/ while limits.max_queues exist; nothing was accepted.
  enum class route_result { routed, queue_full, too_many_queues };

  virtual ~engine() = default;

  // True when `destination` keeps history: its messages are stored with an x-seq before they
  // are delivered, and x-replay can read them back. The one place this is decided.
  virtual bool journaled(std::string_view destination) const = 0;

  // Stores a message of a journaled destination, then delivers it to every subscriber in
  // x-seq order. `done` runs on w's thread once the message is stored (or failed), before
  // its delivery reaches w's subscribers. False, and `done` never runs, when `destination`
  // has no history yet and limits.max_journaled_destinations already do: nothing was
  // accepted, and destinations that have history keep working. `idempotency_key` (the
  // SEND's x-idempotency-key, or ""): a key the destination stored within
  // journal.idempotency_window_ms stores and delivers nothing, and `done` gets the first
  // append's x-seq with duplicate set.
  virtual bool append(std::size_t w, std::string destination, header_list headers, std::string body,
                      std::string idempotency_key, append_callback done) = 0;

  // True when a SEND to queue `destination` is stored before its RECEIPT (enqueue()): a
  // durable queue in this node's journal, or any queue in a shared store, from which each
  // node's registry takes what its consumers can take (queue_source). False: the message
  // waits in this node's memory only, put there by route().
  virtual bool stores_queue(std::string_view destination) const noexcept = 0;
  // Stores a message for queue `destination` of an engine that stores_queue() it; `done` as
  // for append (seq 0; ec engine_errc::queue_full when limits.max_queue_messages wait). False,
  // and `done` never runs, when the queue is new here and limits.max_queues exist.
  virtual bool enqueue(std::size_t w, std::string destination, header_list headers,
                       std::string body, append_callback done) = 0;

  // Delivers a message that is not stored: to a topic's subscribers (on every node, with a
  // shared engine), or into this node's queue, which may be full. On w's thread. `passed` and
  // `body` are what `m` was made from, for an engine that carries it to other nodes.
  virtual route_result route(std::size_t w, const message_ptr& m,
                             std::span<const stomp::header_view> passed, std::string_view body) = 0;

  // `done` runs on w's thread once every message of topic `destination` published from now on
  // reaches the subscribers w made before this call: what a SUBSCRIBE's RECEIPT promises. A
  // shared engine must first follow the topic, and learn where a journaled one's sequence
  // stands.
  virtual void when_following(std::size_t w, std::string_view destination,
                              std::function<void()> done) = 0;
  // `done` runs on w's thread once every append made before this call has completed.
  virtual void when_stored(std::size_t w, std::function<void()> done) = 0;
  // The same from any thread, for shutdown: `done` runs on an engine thread.
  virtual void drain(std::function<void()> done) = 0;

  // Presence (x-presence) of topic `destination`: `user` began a subscription there on
  // worker w (enter) or ended one (leave). The engine counts the users present, each once
  // however many subscriptions and connections it has (on this node, or across the nodes
  // with a shared engine), and delivers each join and leave as a message marked presence to
  // the topic's subscribers. `counted` runs on w's thread, always, with the number present
  // once `user` counts.
  virtual void enter_presence(std::size_t w, std::string_view destination, std::string_view user,
                              std::function<void(std::size_t)> counted) = 0;
  virtual void leave_presence(std::size_t w, std::string_view destination,
                              std::string_view user) = 0;
  // For the admin API, from any thread: who is present in each of `destinations`, the first
  // `limit` users sorted.
  struct presence_info {
    std::size_t count = 0;
    std::vector<std::string> members;
  };
  virtual std::vector<presence_info> presence_of(std::span<const std::string> destinations,
                                                 std::size_t limit) const = 0;

  // Reads a journaled destination's history. `done` runs on an engine thread (any thread).
  virtual void replay(storage::replay_request request, replay_callback done) = 0;

  // For the admin API, from any thread: what is stored per destination, sorted by name;
  // purging a destination's history (nullopt: not journaled); bytes the store takes.
  virtual std::vector<storage::destination_stats> stored() const = 0;
  virtual std::optional<std::uint64_t> purge(std::string_view destination) = 0;
  virtual std::uint64_t stored_bytes() const = 0;

  // False while the store can't take messages (a shared store unreachable): /readyz.
  virtual bool ready() const { return true; }
  // For /metrics: connections to a shared store made again after one was lost; live
  // messages not passed to other nodes because what waited to go had reached its budget.
  struct counters {
    std::uint64_t reconnects = 0;
    std::uint64_t live_not_shared = 0;
  };
  virtual counters statistics() const { return {}; }

 protected:
  // presence_of() from a node's own tally: the whole answer on one node, and what a shared
  // engine answers for a destination whose store does not.
  static std::vector<presence_info> presence_on_node(const presence& tally,
                                                     std::span<const std::string> destinations,
                                                     std::size_t limit);
};

}  // namespace broker

template <>
struct std::is_error_code_enum<broker::engine_errc> : std::true_type {};
