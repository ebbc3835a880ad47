#pragma once

#include "admin/response.hpp"
#include "broker/config.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace broker::admin {

class routes;

// One admin HTTP connection: HTTP/1.1 with keep-alive, one request at a time (no pipelining:
// the next read starts once the response is written), each handed to the routes. Enforces
// the settings' header and body limits and read timeout.
//
// On the admin thread; owned by its pending operations, or by the routes while the broker
// stores a published message. The settings and the routes outlive it (server::impl owns
// them). Errors end the connection: an unreadable request is answered (400, 413, 431) and the
// connection closed after a short linger; a failed read or write just closes it.
class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(const config::admin_listener& settings, routes& api,
               boost::asio::ip::tcp::socket socket);

  void run();
  const std::string& peer() const noexcept { return peer_; }

  // Answers the current request; the connection continues or closes as the request asked.
  void send(response res);

  // server::stop(): no response, no linger.
  void close();

 private:
  void do_read();
  void on_read_header(boost::beast::error_code ec);
  void do_read_body();
  void on_read(boost::beast::error_code ec);
  void on_read_error(boost::beast::error_code ec);
  void reject(boost::beast::http::status status, std::string message);
  void do_write(response res, bool close_after);
  void on_write(boost::beast::error_code ec, bool close_after);
  void do_linger();
  void do_linger_more();
  void fail(boost::beast::error_code ec, std::string_view what);

  const config::admin_listener& settings_;
  routes& api_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  response res_;  // the response being written; must live until the write completes
  std::string peer_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool closed_ = false;
};

}  // namespace broker::admin
