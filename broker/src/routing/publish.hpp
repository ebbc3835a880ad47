#pragma once

#include "broker/config.hpp"
#include "engine/engine.hpp"
#include "routing/message.hpp"
#include "stomp/frame.hpp"

#include <boost/container/small_vector.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker {

class worker_pool;

// The one publish path and the one replay path, shared by STOMP sessions and the admin API's
// POST /api/publish. It decides journaled-or-live (through the engine), keeps the reserved
// headers out of what subscribers see, names every MESSAGE (message-id, x-seq) and answers
// with what a RECEIPT needs. Whatever stores and fans out messages sits behind `engine`.

// "" when `d` is a valid destination, else what is wrong with it, naming it (printable and
// cut to 128 bytes): "destination '/x' must start with /topic/ or /queue/ followed by a name".
std::string destination_problem(std::string_view d, std::size_t max_bytes);

// Headers a SEND may not pass on to subscribers: the broker sets them, or they concern only
// the SEND itself. The admin API refuses them in a publish request, except the one a
// publisher sets for itself, idempotency_header.
bool is_reserved_header(std::string_view name) noexcept;

// A SEND's idempotency key: a retry with the same key to the same journaled destination,
// within journal.idempotency_window_ms, gets the first one's RECEIPT (x-seq, x-epoch, and
// x-duplicate: true) and stores and delivers nothing. At most max_idempotency_key_bytes.
inline constexpr std::string_view idempotency_header = "x-idempotency-key";
inline constexpr std::size_t max_idempotency_key_bytes = 256;

// The sender's headers that subscribers see: reserved ones are dropped, and a repeated header
// counts once, first value wins (STOMP 1.2, "Repeated Header Entries").
// Held inline for up to 16 headers: this runs for every SEND.
using header_views = boost::container::small_vector<stomp::header_view, 16>;
header_views passable_headers(std::span<const stomp::header_view> headers);

// A MESSAGE for a destination that is not journaled, with message-id `message_id`. Messages
// count themselves in `budget` while they live.
message_ptr make_live_message(held_bytes& budget, std::string_view destination,
                              std::string message_id, std::span<const stomp::header_view> passed,
                              std::string_view body);
// The MESSAGE for a stored record: message-id and x-seq from its seq, x-epoch (what numbers
// it), and x-replayed:true when it is being replayed rather than delivered live.
message_ptr make_stored_message(held_bytes& budget, const storage::record& r,
                                std::string_view epoch, bool replayed);

// The MESSAGE for a durable queue's stored record: message-id from its seq (unique in the
// queue, across restarts), no x-seq (a queue has no sequence for consumers); m->seq keeps
// the seq, for removing it once acknowledged.
message_ptr make_queued_message(held_bytes& budget, const storage::record& r);

// A presence event (x-presence: join or leave) of topic `destination`: `user` came or went,
// `count` users are there now. For the subscriptions that asked for them only.
message_ptr make_presence_message(held_bytes& budget, std::string_view destination,
                                  std::string message_id, std::string_view event,
                                  std::string_view user, std::size_t count);

// x-replay: "last:N", "after:SEQ", "since:UNIX_MS" or "before:SEQ", decimal; nullopt when
// malformed.
std::optional<storage::replay_request> parse_replay(std::string_view value);

// Hears that a journaled publish was stored (r.seq is its x-seq) or failed (r.ec), on the
// thread of the worker that published it.
class publish_listener {
 public:
  virtual void on_stored(std::uint64_t ticket, const storage::append_result& r) = 0;

 protected:
  ~publish_listener() = default;
};

class publisher {
 public:
  // What a SEND carries in. `destination` is valid (destination_problem() is empty) and the
  // sender may send to it; the headers are as sent.
  struct request {
    std::string_view destination;
    std::span<const stomp::header_view> headers;
    std::string_view body;
    // A live message's id is "<sender>-<sender_seq>": unique per broker run.
    std::string_view sender;
    std::uint64_t sender_seq = 0;
  };
  enum class status {
    routed,  // live: delivered to the router or queued, nothing to wait for
    // journaled, or a queue the engine shares: the listener hears on_stored(ticket, ...)
    // once it is stored
    storing,
    queue_full,  // live queue at its limit: nothing was accepted
    // A broker-wide bound (issue 11), nothing accepted; destinations that exist keep working:
    too_many_queues,      // a new /queue/ while limits.max_queues exist
    too_many_journaled,   // a new journaled topic while max_journaled_destinations have history
    bad_idempotency_key,  // x-idempotency-key empty or longer than max_idempotency_key_bytes
  };
  // The ERROR for too_many_queues and too_many_journaled: its `message` header, and a detail
  // naming the destination and the config key. The same words for SEND, SUBSCRIBE and the
  // admin API.
  struct refusal {
    std::string_view message;
    std::string detail;
  };
  refusal limit_refusal(status s, std::string_view destination) const;
  // The ERROR detail (or HTTP error) for bad_idempotency_key.
  static std::string bad_key_detail();

  // Callbacks that run "on w's thread" are posted through `workers`; messages count
  // themselves in `held`.
  publisher(const config& settings, worker_pool& workers, held_bytes& held,
            std::unique_ptr<engine> e);

  // On worker w's thread.
  status publish(std::size_t w, const request& r, std::weak_ptr<publish_listener> listener,
                 std::uint64_t ticket);
  // `done` runs on w's thread once every publish made on w before it is stored: a RECEIPT
  // that must come after them (DISCONNECT, COMMIT).
  void when_stored(std::size_t w, std::function<void()> done);
  // `done` runs on w's thread once the subscribers w made to topic `destination` get every
  // message published from now on: a SUBSCRIBE's RECEIPT comes after it
  // (engine::when_following).
  void when_following(std::size_t w, std::string_view destination, std::function<void()> done) {
    engine_->when_following(w, destination, std::move(done));
  }

  // x-presence: engine::enter_presence, leave_presence and presence_of.
  void enter_presence(std::size_t w, std::string_view destination, std::string_view user,
                      std::function<void(std::size_t)> counted) {
    engine_->enter_presence(w, destination, user, std::move(counted));
  }
  void leave_presence(std::size_t w, std::string_view destination, std::string_view user) {
    engine_->leave_presence(w, destination, user);
  }
  std::vector<engine::presence_info> presence_of(std::span<const std::string> destinations,
                                                 std::size_t limit) const {
    return engine_->presence_of(destinations, limit);
  }

  bool journaled(std::string_view destination) const { return engine_->journaled(destination); }
  // Bytes of journaled publishes handed to the engine and not yet stored, all senders
  // together (for limits.max_pending_store_bytes_total); any thread.
  std::size_t pending_bytes() const noexcept {
    return pending_bytes_.load(std::memory_order_relaxed);
  }
  // Journaled publishes the engine failed to store (each got an ERROR); any thread.
  std::uint64_t store_failures() const noexcept {
    return store_failures_.load(std::memory_order_relaxed);
  }
  // What a publish of `r` counts against the pending-store budgets.
  static std::size_t store_bytes(const request& r) noexcept;
  // "" when x-replay may be used on `destination`, else the ERROR's detail.
  std::string replay_problem(std::string_view destination) const;
  // Reads the history `r` asks for (parse_replay) of `destination` within the configured
  // caps (journal.replay_max_messages, replay_max_bytes); `done` runs on w's thread.
  void replay(std::size_t w, std::string_view destination, storage::replay_request r,
              std::function<void(storage::replay_result&&)> done);

  // POST /api/publish, on worker w's thread, as a SEND from the admin API: the caller has
  // checked the destination (destination_problem) and who may send to it. `done` runs on w's
  // thread once the message is stored (journaled) or routed, or at once when its queue is
  // full.
  struct admin_result {
    int status = 200;  // HTTP status
    std::string error;
    std::uint64_t seq = 0;
    std::string message_id;
    std::string epoch;       // with seq
    bool duplicate = false;  // a retry of an idempotency key: seq is the first publish's
  };
  void publish_from_admin(std::size_t w, std::string destination,
                          std::vector<std::pair<std::string, std::string>> headers,
                          std::string body, std::function<void(admin_result)> done);

  // The engine's stores, for the admin API and shutdown.
  engine& store() noexcept { return *engine_; }
  const engine& store() const noexcept { return *engine_; }

 private:
  const config& settings_;
  worker_pool& workers_;
  held_bytes& held_;
  std::unique_ptr<engine> engine_;
  std::atomic<std::uint64_t> admin_messages_{0};  // names the admin API's live messages
  std::atomic<std::size_t> pending_bytes_{0};
  std::atomic<std::uint64_t> store_failures_{0};
};

}  // namespace broker
