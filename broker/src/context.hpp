#pragma once

#include "auth/security.hpp"
#include "broker/config.hpp"
#include "metrics.hpp"
#include "net/connection_limiter.hpp"
#include "net/event_loop.hpp"
#include "routing/publish.hpp"
#include "routing/queue.hpp"
#include "routing/router.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace broker {

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
  // After the router and queues, so it is destroyed first: sessions freed with the event
  // loops still reach them.
  worker_pool workers;
  // The publish and replay paths and the engine behind them, built at start() (opening the
  // journal can fail). Declared after `workers` so it is destroyed first: the engine's last
  // callbacks post to the workers' event loops.
  std::unique_ptr<publisher> publishing;
  std::atomic<std::uint64_t> next_session_id{1};
  shared_metrics metrics;
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> slow_consumer_closes{0};
  const std::string server_header;  // CONNECTED's `server`: "stompd/0.1.0"
};

}  // namespace broker
