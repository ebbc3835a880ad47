#pragma once

#include "auth/security.hpp"
#include "broker/config.hpp"
#include "metrics.hpp"
#include "net/connection_limiter.hpp"
#include "net/event_loop.hpp"
#include "routing/held_bytes.hpp"
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
//
// Members are destroyed in reverse declaration order, and the order below is what makes that
// safe. Shutdown (server::stop) runs first and in this order: stop accepting, stop the
// producers that post to the workers (the passcode verifier; the journal is drained), close
// the sessions and let the event loops end, then stop the journal writer; only then is this
// destroyed.
struct broker_context {
  explicit broker_context(config c);

  const config settings;
  // The counters come first, so they are destroyed last: sessions write them until they are
  // freed (with the event loops, or with checks abandoned on the verifier), and the journal
  // writer's last commits observe the histograms.
  std::atomic<std::uint64_t> next_session_id{1};
  shared_metrics metrics;
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // Before everything that holds messages (router, queues, workers' sessions, the engine):
  // each message gives its bytes back when it is freed.
  held_bytes held;
  std::atomic<std::uint64_t> slow_consumer_closes{0};
  const std::string server_header;  // CONNECTED's `server`: "stompd/0.1.0"
  // settings.node_name, or <hostname>:<port>: set by server::start once listening, before any
  // worker or the admin listener runs, and not changed after.
  std::string node_name;
  router topics;
  queue_registry queues;
  connection_limiter connections;  // sessions give their slots back when freed
  // Server certificate and key when a listener has tls: true; shared by all TLS sessions,
  // so it outlives them (and the workers that free them).
  std::unique_ptr<boost::asio::ssl::context> tls;
  // After the router and queues, so it is destroyed first: sessions freed with the event
  // loops still reach them.
  worker_pool workers;
  // Authentication and authorization, built at start() from settings.auth. After `workers`,
  // so it is destroyed first: its verifier pool posts results to the workers' event loops,
  // and the passcode checks it still holds own sessions, whose timers need those loops. By
  // then server::stop() has stopped and joined the pool; destroying it frees the abandoned
  // checks and their sessions on the destroying thread, with no event loop running.
  std::unique_ptr<broker::security> security;
  // The publish and replay paths and the engine behind them, built at start() (opening the
  // journal can fail). Declared after `workers` so it is destroyed first: the engine's last
  // callbacks post to the workers' event loops, and its writer thread observes `metrics`.
  // server::stop() resets it once the event loops have ended.
  std::unique_ptr<publisher> publishing;
};

}  // namespace broker
