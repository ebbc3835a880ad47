#pragma once

#include "broker/config.hpp"

#include <cstdint>
#include <memory>

namespace broker::admin {

class broker_view;

// The admin HTTP API (docs/OPERATING.md): JSON under /api/, Prometheus text at /metrics,
// /healthz and /readyz. A pimpl, so its users see no Beast; inside, the way Beast's advanced
// server example is built: a listener (listener.hpp) accepts http_sessions (http_session.hpp),
// which hand each request to the routes (routes.hpp).
//
// Threading: the listener runs its own io_context on its own thread, because broker_view
// calls may block briefly while they gather from every worker, and must never run on a
// worker. start() and stop() are called from one controlling thread (the server's). start()
// binds and throws std::runtime_error naming the address when it can't; stop() closes the
// listener and every admin connection, and joins the thread; it is idempotent and run by the
// destructor. A publish the broker has not answered by then gets no response.
//
// The view must outlive the server (or at least its stop()).
class server {
 public:
  // Keeps a copy of `settings` (config: `admin:`, limits included).
  server(const config::admin_listener& settings, broker_view& view);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  void start();
  // The bound port (useful with port 0); 0 before start().
  std::uint16_t port() const;
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace broker::admin
