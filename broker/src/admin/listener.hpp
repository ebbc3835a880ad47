#pragma once

#include "broker/config.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace broker::admin {

class http_session;
class routes;

// Accepts admin connections and starts an http_session for each, up to the settings'
// max_connections; more are closed at once. Owned by server::impl, with the settings and
// routes it refers to.
//
// Threading: open() runs on the controlling thread before the admin thread starts; run()
// and close() on the admin thread (or before it runs). Errors: open() throws
// boost::system::system_error (address taken, bad address, ...) and leaves nothing open; a
// failed accept is logged and the next one started.
class listener {
 public:
  listener(boost::asio::io_context& io, const config::admin_listener& settings, routes& api);

  void open(const boost::asio::ip::tcp::endpoint& endpoint);
  // The bound port (useful with port 0); 0 before open().
  std::uint16_t port() const noexcept { return port_; }

  void run();
  // Stops accepting and closes every admin connection, without a response.
  void close();

 private:
  void do_accept();
  void on_accept(boost::beast::error_code ec, boost::asio::ip::tcp::socket socket);

  const config::admin_listener& settings_;
  routes& api_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::vector<std::weak_ptr<http_session>> sessions_;  // admin thread only
};

}  // namespace broker::admin
