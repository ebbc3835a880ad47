#pragma once

#include "auth/security.hpp"
#include "broker/config.hpp"
#include "engine/history.hpp"
#include "metrics.hpp"
#include "net/connection_limiter.hpp"
#include "routing/queue.hpp"
#include "routing/router.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace broker {

class session;

// One event loop on one thread. Connections are pinned to a worker at accept, so a session's
// state is only ever touched on its worker's thread and needs no strand or lock.
struct worker {
  explicit worker(std::size_t i) : index(i), io(1) {}
  std::size_t index;
  // Declared before `io` so it outlives it: destroying `io` destroys pending handlers, and
  // with them sessions, which unregister themselves here.
  std::unordered_set<session*> sessions;  // this worker's live sessions; its thread only
  worker_metrics stats;
  boost::asio::io_context io;
  // Sessions with frames queued and no write in flight, written after the current burst of
  // handlers (run_event_loop): everything one burst of reads, routed messages and journal
  // commits sends to a connection goes out in one write. Its thread only. Declared after `io`, so
  // the sessions it holds are released while their timers' event loop still exists.
  std::vector<std::shared_ptr<session>> to_flush;
};

// What every session shares: settings, routing, counters. Outlives all sessions.
struct broker_context {
  explicit broker_context(config c);

  const config settings;
  router topics;
  queue_registry queues;
  connection_limiter connections;
  // Authentication and authorization, built at start() from settings.auth.
  std::unique_ptr<broker::security> security;
  // Server certificate and key when a listener has tls: true; shared by all TLS sessions.
  std::unique_ptr<boost::asio::ssl::context> tls;
  // Last, so it is destroyed first: sessions freed with the event loops still reach
  // the router and queues.
  std::vector<std::unique_ptr<worker>> workers;
  // Null when journal.enabled is false. Declared after `workers` so it is destroyed first:
  // its last callbacks post to the workers' event loops.
  std::unique_ptr<history> journal;
  std::atomic<std::uint64_t> next_session_id{1};
  shared_metrics metrics;
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> slow_consumer_closes{0};
  const std::string server_header;  // CONNECTED's `server`: "stompd/0.1.0"
};

}  // namespace broker
