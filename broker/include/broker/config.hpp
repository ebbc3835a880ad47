#pragma once

#include "broker/log.hpp"
#include "stomp/parser.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace broker {

// Everything stompd can be told, with the built-in defaults as member initializers.
// conf/stompd.yaml documents every key; load_config() in config.cpp is the only code that
// knows YAML. Units are in the names (or the types, for std::chrono members).
struct config {
  struct listener {
    bool enabled = true;
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;  // 0: ephemeral, the bound port is logged
    bool tls = false;        // TLS with tls.cert_file / tls.key_file (stomp+ssl, wss)
  };

  // Each listener's default port is a named constant, written once: options.cpp's --help
  // quotes them.
  struct tcp_listener : listener {
    static constexpr std::uint16_t default_port = 61613;
    tcp_listener() { port = default_port; }
  };

  struct websocket_listener : listener {
    static constexpr std::uint16_t default_port = 15674;
    websocket_listener() { port = default_port; }
    std::string path = "/ws";
    // Largest WebSocket message accepted; a STOMP frame may also span several messages.
    std::size_t max_message_bytes = 4 * 1024 * 1024;
    // The HTTP upgrade request, headers included.
    std::size_t max_handshake_bytes = 8 * 1024;
    // Browsers send Origin; a request whose Origin is not listed gets 403 (cross-site
    // WebSocket hijacking). Empty: any origin. Requests without Origin (non-browser clients)
    // are not affected.
    std::vector<std::string> allowed_origins;
  };

  // The admin HTTP API, /metrics and health checks (docs/OPERATING.md). Its limits bound
  // what one admin client can make the broker hold or wait for.
  struct admin_listener : listener {
    static constexpr std::uint16_t default_port = 61680;
    admin_listener() { port = default_port; }
    // Bearer token every /api/ request must carry ("Authorization: Bearer ..."). Empty: no
    // authentication, only sensible on a loopback address (a warning is logged otherwise).
    // /healthz, /readyz and /metrics never need it.
    std::string token;
    // Largest request body accepted (POST /api/publish); more gets 413.
    std::size_t max_body_bytes = 1024 * 1024;
    // Largest request line plus headers; more gets 431.
    std::size_t max_header_bytes = 16 * 1024;
    // A request (headers and body) must arrive within this time of the previous response, or
    // of the connection being accepted; an idle keep-alive connection is closed after it.
    std::chrono::milliseconds read_timeout{30'000};
    // Concurrent admin connections; more are closed as soon as they are accepted.
    std::size_t max_connections = 64;
    // Browser defences for /api/ (403 otherwise), whether or not a token is set. Origins
    // ("https://ops.example") whose pages may call the API besides the listener's own:
    // without this any web page the operator opens could publish. Empty: none.
    std::vector<std::string> allowed_origins;
    // Host names the API answers to besides IP literals, `localhost` and `host`: a DNS
    // rebinding page names its own host. Empty: none.
    std::vector<std::string> allowed_hosts;
  };

  struct tls_settings {
    std::filesystem::path cert_file;  // PEM: certificate chain
    std::filesystem::path key_file;   // PEM: private key
  };

  // Who may connect, and what they may do once connected (README "Security").
  struct auth_settings {
    // Anyone may connect without credentials, as user "anonymous". The development default.
    bool anonymous = true;
    struct user {
      std::string name;
      std::string passcode;  // a hash from `stompd --hash-passcode`; plain text is refused
      std::vector<std::string> roles;
    };
    std::vector<user> users;
    // Passcode checks (PBKDF2, ~125 ms of CPU each) waiting or running for one remote
    // address; more CONNECTs from it are refused. Without it one host could fill the
    // verifier's queue (256 in all) and lock everyone else out.
    std::size_t max_passcode_checks_per_address = 4;
    struct jwt_settings {
      bool enabled = false;
      std::string algorithm = "HS256";        // HS256, RS256 or ES256
      std::string secret;                     // HS256
      std::filesystem::path public_key_file;  // RS256 / ES256, PEM
      std::string issuer;                     // checked when set
      std::string audience;                   // checked when set
      std::chrono::milliseconds leeway{30'000};
      std::string user_claim = "sub";
      std::string roles_claim = "roles";
      std::string grants_claim = "stomp";  // {"subscribe": [...], "send": [...]}
      bool close_on_expiry = true;         // false: a token is only checked at CONNECT
    };
    jwt_settings jwt;
    // Grants by destination pattern, with {user} for the principal's name. Without any rule
    // everyone may do everything (anonymous development setups), unless jwt is enabled: then
    // a token's grants are all it gets, and anyone else gets nothing. With rules, what no
    // rule (nor a token's grants) allows is denied.
    struct rule {
      // Static users' names, "anonymous" for the anonymous principal, or "*" for every
      // authenticated principal (static users and token holders, not anonymous).
      std::vector<std::string> users;
      std::vector<std::string> roles;
      // Bearer tokens' subjects, or "*" for every token holder; never static users.
      std::vector<std::string> subjects;
      std::vector<std::string> subscribe;
      std::vector<std::string> send;
    };
    std::vector<rule> rules;
  };

  struct heartbeat_settings {
    // The broker honours the intervals a client asks for in CONNECT's heart-beat, held within
    // [min_interval, max_interval]: a client asking for 1 s gets heart-beats every 1 s and is
    // expected to send every 1 s. Above max_interval the broker sends at max_interval (more
    // often than asked, which keeps proxies and NATs from dropping the connection) and takes
    // the client at its word for what it sends (STOMP 1.2, "Heart-beating").
    std::chrono::milliseconds min_interval{1'000};
    std::chrono::milliseconds max_interval{60'000};
    // What CONNECTED offers in a direction the client asks for none (so none are agreed);
    // zero turns that direction off whatever the client asks.
    std::chrono::milliseconds send_interval{10'000};
    std::chrono::milliseconds receive_interval{10'000};
    // A connection silent for its agreed interval × grace_factor is closed.
    double grace_factor = 2.0;
  };

  struct limits_settings {
    stomp::parser_limits frame;                      // max_frame_bytes, max_header_count, ...
    std::size_t max_queued_bytes = 4 * 1024 * 1024;  // outbound queue per connection
    std::size_t max_queued_frames = 65'536;
    std::size_t max_subscriptions_per_connection = 1024;
    std::size_t max_destination_bytes = 512;
    // Messages held by one /queue/ destination while no consumer takes them.
    std::size_t max_queue_messages = 100'000;
    // /queue/ destinations in the broker at once (each holds up to max_queue_messages): a
    // client naming a new queue per SEND or SUBSCRIBE. Existing queues keep working.
    std::size_t max_queues = 10'000;
    // Destinations the journal keeps a sequence for, ever (a purged or retention-emptied
    // destination still counts: its x-seq continues): a client naming a new journaled topic
    // per SEND. A SEND that would journal one more gets an ERROR; existing ones keep working.
    std::size_t max_journaled_destinations = 100'000;
    // Unacknowledged messages per subscription when the client sets no prefetch-count.
    std::size_t default_prefetch = 1000;
    std::size_t max_transactions_per_connection = 64;
    std::size_t max_frames_per_transaction = 10'000;
    // Bytes (bodies and headers) buffered in one connection's open transactions together:
    // BEGIN, then SENDs that are only applied at COMMIT, must not hold unbounded memory.
    std::size_t max_transaction_bytes = 16 * 1024 * 1024;
    // Bytes of one connection's journaled SENDs handed to the journal and not yet stored.
    // Past it the broker stops reading that connection until the journal catches up, so a
    // flooding publisher waits instead of the broker buffering for it (and other rooms'
    // publishers are not queued behind it).
    std::size_t max_pending_store_bytes = 8 * 1024 * 1024;
    // The same for all connections together: past it every publisher to a journaled
    // destination is paused until the journal's backlog is back under it.
    std::size_t max_pending_store_bytes_total = 256 * 1024 * 1024;
    // Bytes of messages the broker holds for all clients together (in queues, outboxes,
    // behind replays, in commit batches; each message once however many share it) plus
    // open transactions' frames. Past it every connection stops being read after its next
    // SEND until the total is back under, and the admin API's publish answers 503.
    std::size_t max_held_bytes_total = 1024 * 1024 * 1024;
    // A connection pushed back (not read) this long by any of the budgets above is closed
    // with an ERROR naming them: what it held goes back (unacknowledged queue messages) or
    // is dropped (open transactions, never accepted), so a connection that both publishes
    // and holds what would free the budget cannot wait forever, nor can a vanished peer.
    std::chrono::milliseconds max_push_back{30'000};
    // Time between accept and a CONNECT frame before the connection is dropped.
    std::chrono::milliseconds connect_timeout{10'000};
    // A write to a connection that doesn't complete in this long ends it (a peer that stopped
    // reading holds its connection, descriptor and buffers no longer, even while its outbound
    // queue is within its budget). One write is at most 32 KiB of coalesced frames, or one
    // frame.
    std::chrono::milliseconds write_timeout{30'000};
    std::size_t max_connections = 100'000;
    std::size_t max_connections_per_address = 0;  // 0: no limit per remote address
    std::size_t max_publish_rate = 0;             // SENDs per second per connection; 0: no limit
  };

  // The message journal: what is stored, for how long, and how much one replay may return.
  struct journal_settings {
    bool enabled = true;
    // process: survives a crash of stompd (SQLite WAL, synchronous=NORMAL); power: also an OS
    // crash or power loss (synchronous=FULL, an fsync per commit).
    enum class durability_mode { process, power } durability = durability_mode::process;
    // Caps on one x-replay: larger requests get the newest messages up to the cap and
    // x-replay-complete:false.
    std::size_t replay_max_messages = 10'000;
    std::size_t replay_max_bytes = 8 * 1024 * 1024;
    std::chrono::milliseconds retention_interval{1000};
    // A SEND's x-idempotency-key is remembered this long (across restarts): a retry with it
    // gets the first SEND's RECEIPT, and nothing is stored again.
    std::chrono::milliseconds idempotency_window{10LL * 60 * 1000};
    // Group commit (storage::journal_options::commit_window): appends within this long of
    // the first waiting one share its transaction. At most this much more RECEIPT and
    // delivery latency, for far less CPU and I/O per message at chat rates; 0: off.
    std::chrono::milliseconds commit_window{2};

    // Retention of a /topic/ destination that no rule matches: the newest
    // default_max_messages, none older than default_max_age (0: no limit). Finite by
    // default, so a topic nobody configured does not grow the journal forever.
    std::uint64_t default_max_messages = 10'000;
    std::chrono::milliseconds default_max_age{30LL * 24 * 60 * 60 * 1000};  // 30 days

    // First matching rule wins. Without a match, /topic/ destinations are journaled with the
    // default retention above and /queue/ destinations are never journaled.
    struct rule {
      std::string pattern;  // destination_pattern syntax: "/topic/lost-item.**"
      bool journaled = true;
      std::uint64_t max_messages = 0;        // 0: no limit
      std::chrono::milliseconds max_age{0};  // 0: no limit
    };
    std::vector<rule> destinations;
  };

  // Several nodes sharing rooms and history through Redis (docs/CLUSTER.md). Without
  // addresses the node is on its own and journals in SQLite under data_dir.
  struct cluster_settings {
    struct redis_settings {
      struct address {
        std::string host;  // an IP address
        std::uint16_t port = 6379;
      };
      // Independent primaries; destinations are spread over them by a consistent hash of the
      // name. Empty: no Redis.
      std::vector<address> addresses;
      std::filesystem::path password_file;  // "": no AUTH; else its first line is the password
      std::uint32_t db = 0;
      std::string key_prefix = "stompd:";
      std::chrono::milliseconds connect_timeout{2000};
      // A command unanswered this long counts the connection as lost: pending SENDs get an
      // ERROR, and the node reconnects.
      std::chrono::milliseconds command_timeout{5000};
      // A queue message held by a node that stopped renewing its hold this long (the node
      // died) goes to a consumer on another node.
      std::chrono::milliseconds queue_redelivery_timeout{30000};
      // Presence (x-presence): a node silent this long (killed) no longer vouches for its
      // users; each one it alone had leaves.
      std::chrono::milliseconds presence_timeout{15000};
    } redis;
    bool enabled() const noexcept { return !redis.addresses.empty(); }
  };

  tcp_listener tcp;
  websocket_listener websocket;
  admin_listener admin;
  tls_settings tls;
  auth_settings auth;
  heartbeat_settings heartbeat;
  limits_settings limits;
  journal_settings journal;
  cluster_settings cluster;
  // Worker threads, each running its own event loop with the connections pinned to it
  // (docs/ARCHITECTURE.md); 0 means one per core.
  std::size_t threads = 0;
  static constexpr std::size_t max_threads = 64;  // the config file and --threads check it
  broker::log_level log_level = broker::log_level::info;
  std::filesystem::path data_dir = "./data";
  // Written into CONNECTED's `server` header.
  std::string server_name = "stompd";
  // This node's name in logs, the admin API and /metrics, so several nodes can be told
  // apart; "" means <hostname>:<port of the first listener>, settled once listening.
  std::string node_name;
};

// "HOST:PORT" (HOST an IPv4 or IPv6 address, IPv6 in brackets) into `out`; what is wrong with
// `text`, or "". For cluster.redis.addresses and --redis.
std::string parse_redis_address(std::string_view text,
                                config::cluster_settings::redis_settings::address& out);

// A config file problem, with where it is: "conf/stompd.yaml:12: limits.max_queued_bytes:
// must be at least 1, got 0".
struct config_error {
  // "file:line"; just "file" when it cannot be read; "--flag" or "command line" for flags.
  std::string where;
  std::string what;
};

// "where: what", the way a compiler prints a diagnostic.
std::string to_string(const config_error& error);

// Reads `path` over the defaults. Collects every problem (unknown key, wrong type, out of
// range) instead of stopping at the first; returns the config only when there are none.
struct config_result {
  std::optional<config> value;
  std::vector<config_error> errors;
};
config_result load_config(const std::filesystem::path& path);
config_result parse_config(std::string_view yaml, std::string_view file_name, config base = {});

}  // namespace broker
