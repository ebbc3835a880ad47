#pragma once

#include "broker/config.hpp"

#include <cstdint>
#include <memory>

namespace broker {

// The broker: listeners, worker threads, routing. A pimpl, so that code including this
// (main, tests) sees no Asio or Beast.
//
// start() binds every enabled listener and starts the workers; it throws std::system_error
// when a port can't be bound. stop() shuts down gracefully: stop accepting, flush what is
// queued, close every session, join the workers (forcing them after a deadline). Both are
// called from one controlling thread; stop() is idempotent and run by the destructor.
class server {
 public:
  explicit server(config settings);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  void start();
  void stop();

  // Bound ports (useful with port 0); 0 when that listener is disabled.
  std::uint16_t tcp_port() const noexcept;
  std::uint16_t websocket_port() const noexcept;

  // start(), then block until SIGINT or SIGTERM, then stop(). Returns the exit status.
  int run_until_signalled();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace broker
