#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace broker::admin {

class broker_view;

// The admin listener's settings (config: `admin: {enabled, host, port, token}`).
struct admin_settings {
  bool enabled = true;
  std::string host = "127.0.0.1";
  std::uint16_t port = 61680;  // 0: ephemeral, the bound port is logged
  // The admin bearer token every /api/ request must carry ("Authorization: Bearer ...").
  // Empty: no authentication, which is only sensible on a loopback address (a warning is
  // logged otherwise). /healthz, /readyz and /metrics never need it.
  std::string token;
  // Largest request body accepted (POST /api/publish); more gets 413.
  std::size_t max_body_bytes = 1024 * 1024;
  // Largest request line plus headers; more gets 431.
  std::size_t max_header_bytes = 16 * 1024;
  // A request (headers and body) must arrive within this time of the previous response, or
  // of the connection being accepted; an idle keep-alive connection is closed after it.
  std::chrono::milliseconds read_timeout{30'000};
  // Concurrent admin connections; more are answered 503 and closed.
  std::size_t max_connections = 64;
};

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
  server(admin_settings settings, broker_view& view);
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
