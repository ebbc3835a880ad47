#pragma once

#include "auth/principal.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker::admin {

// What the admin API shows, as plain data. Filled by the broker (server.cpp), rendered by the
// admin HTTP listener (JSON, Prometheus text) and by stompctl; none of them sees sessions,
// the router or the journal directly.

struct connection_info {
  std::uint64_t id = 0;
  std::string user;       // authenticated principal; "" before CONNECT
  std::string peer;       // "127.0.0.1:51122"
  std::string transport;  // "tcp", "tcp+tls", "websocket", "websocket+tls"
  std::string version;    // negotiated STOMP version, "" before CONNECT
  std::size_t subscriptions = 0;
  std::size_t queued_bytes = 0;         // outbound, not yet written
  std::uint64_t messages_in = 0;        // SENDs received
  std::uint64_t messages_out = 0;       // MESSAGEs delivered
  std::int64_t connected_since_ms = 0;  // Unix time, ms
};

struct subscription_info {
  std::uint64_t connection = 0;
  std::string id;  // the client's subscription id
  std::string user;
  std::string ack_mode;     // "auto", "client", "client-individual"
  std::size_t unacked = 0;  // queue subscriptions in client ack modes
};

struct destination_info {
  std::string name;
  std::string type;  // "topic" or "queue"
  std::size_t subscribers = 0;
  std::uint64_t messages_in = 0;   // published since start
  std::uint64_t messages_out = 0;  // delivered since start
  double rate_in = 0;              // published per second, over the last ~10 s
  bool journaled = false;
  std::uint64_t last_seq = 0;        // journaled only
  std::uint64_t stored = 0;          // journaled only: messages kept
  std::int64_t oldest_ms = 0;        // journaled only: oldest stored, Unix ms; 0 if none
  std::size_t queued = 0;            // queues only: messages waiting for a consumer
  std::size_t present = 0;           // topics only: users subscribed (x-presence), all nodes'
  std::vector<std::string> members;  // filled by destination() only: the first 100 of them
  std::vector<subscription_info> subscriptions;  // filled by destination() only
};

struct stored_message {
  std::uint64_t seq = 0;
  std::int64_t timestamp_ms = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // raw bytes; the renderer decides text or base64
};

struct history_page {
  std::vector<stored_message> messages;
  std::uint64_t head_seq = 0;
  bool complete = true;
  std::string epoch;  // what numbers the seqs (x-epoch)
};

struct broker_stats {
  std::string node;  // node_name
  double uptime_seconds = 0;
  std::size_t connections = 0;
  std::size_t destinations = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t messages_out = 0;
  double rate_in = 0;  // per second, last ~10 s
  double rate_out = 0;
  std::uint64_t journal_bytes = 0;  // the SQLite file and its WAL
  std::uint64_t rss_bytes = 0;
  std::uint64_t held_bytes = 0;  // messages and open transactions (limits.max_held_bytes_total)
};

// A Prometheus histogram: cumulative counts per upper bound (le), plus sum and count.
struct histogram {
  std::vector<double> bounds;         // seconds (or units of the metric), ascending
  std::vector<std::uint64_t> counts;  // cumulative, one per bound
  double sum = 0;
  std::uint64_t count = 0;
};

// Every metric /metrics exposes; names and labels as exposed (without the "stompd_" prefix).
struct metrics {
  std::map<std::string, std::uint64_t> connections_by_transport;  // gauge
  std::map<std::string, std::uint64_t> frames_in_by_command;      // counter
  std::map<std::string, std::uint64_t> frames_out_by_command;     // counter
  std::uint64_t messages_published = 0;
  std::uint64_t messages_delivered = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t slow_consumer_disconnects = 0;
  std::uint64_t auth_failures = 0;
  std::uint64_t replays = 0;
  histogram replay_seconds;
  histogram journal_commit_seconds;
  histogram journal_batch_size;
  // The store behind the journal (SQLite, or Redis with cluster.redis).
  bool store_ready = true;             // /readyz's view of it
  std::uint64_t store_failures = 0;    // journaled SENDs the store failed to take
  std::uint64_t store_reconnects = 0;  // connections to a shared store made again
  std::uint64_t live_not_shared = 0;   // live messages other nodes did not get (budget)
};

struct publish_result {
  int http_status = 200;  // 200, or 400 (bad destination), 403 (denied), 503 (journal failed)
  std::string error;      // when not 200
  std::uint64_t seq = 0;  // journaled destinations
  std::string message_id;
  std::string epoch;       // with seq
  bool duplicate = false;  // a retry of an x-idempotency-key: seq is the first publish's
};

// The broker as the admin listener sees it. Implemented by the server; thread-safe; calls
// may block briefly (they gather from every worker), so call them from the admin listener's
// own thread, never from a worker.
class broker_view {
 public:
  virtual ~broker_view() = default;

  virtual std::vector<connection_info> connections() = 0;
  // Sends the connection an ERROR (message `reason`) and closes it. False if no such id.
  virtual bool disconnect(std::uint64_t id, std::string reason) = 0;

  virtual std::vector<destination_info> destinations() = 0;
  virtual std::optional<destination_info> destination(std::string_view name) = 0;

  // Stored history: after `after` (exclusive) up to `limit` messages, or the `last` N when set.
  // nullopt when the destination is not journaled.
  virtual std::optional<history_page> history(std::string_view name, std::uint64_t after,
                                              std::size_t limit,
                                              std::optional<std::size_t> last) = 0;
  // Deletes stored history; the sequence continues. Returns messages deleted, nullopt when
  // the destination is not journaled.
  virtual std::optional<std::uint64_t> purge(std::string_view name) = 0;

  virtual broker_stats stats() = 0;
  // This node's name (config node_name, or <hostname>:<port>).
  virtual const std::string& node_name() const = 0;
  virtual metrics collect_metrics() = 0;
  // True once listeners are up and the journal is open.
  virtual bool ready() = 0;

  // Publishes on behalf of `who` under the same authorization as a STOMP SEND (nullptr: the
  // admin token's holder, who may send anywhere); `done` runs on some broker thread once the
  // message is stored (journaled destinations) or routed.
  virtual void publish(std::string destination,
                       std::vector<std::pair<std::string, std::string>> headers, std::string body,
                       const auth::principal* who, std::function<void(publish_result)> done) = 0;

  // For POST /api/publish with a backend's bearer token instead of the admin token: the
  // principal when auth.jwt is on and the token verifies.
  virtual std::optional<auth::principal> verify_token(std::string_view token) = 0;
};

}  // namespace broker::admin
