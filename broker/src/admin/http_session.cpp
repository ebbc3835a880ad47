#include "admin/http_session.hpp"

#include "admin/routes.hpp"
#include "broker/log.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <utility>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace broker::admin {

namespace {

// A response has this long to be written; a client that stops reading is dropped.
constexpr std::chrono::seconds write_timeout{30};
// After an error response that closes the connection, how long unread request bytes are
// drained, so the close doesn't turn into a reset that loses the response.
constexpr std::chrono::seconds close_linger{2};

}  // namespace

http_session::http_session(const config::admin_listener& settings, routes& api, tcp::socket socket)
    : settings_(settings), api_(api), stream_(std::move(socket)) {
  beast::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  peer_ = ec ? "unknown" : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

void http_session::run() { do_read(); }

void http_session::send(response res) {
  if (closed_) return;
  res.version(version_);
  res.keep_alive(keep_alive_);
  res.prepare_payload();
  do_write(std::move(res), !keep_alive_);
}

void http_session::close() {
  closed_ = true;
  beast::error_code ec;
  stream_.socket().close(ec);
}

void http_session::do_read() {
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
      settings_.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(settings_.max_body_bytes);
  // One deadline for the whole request, headers and body: a slow trickle can't hold a
  // connection open for longer than read_timeout.
  stream_.expires_after(settings_.read_timeout);
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read_header(ec); });
}

void http_session::on_read_header(beast::error_code ec) {
  if (ec) return on_read_error(ec);
  const auto& req = parser_->get();
  version_ = req.version();
  keep_alive_ = req.keep_alive();
  if (auto length = parser_->content_length(); length && *length > settings_.max_body_bytes)
    return reject(http::status::payload_too_large,
                  fmt::format("body larger than {} bytes", settings_.max_body_bytes));
  // curl sends Expect: 100-continue before a large body and waits for this (RFC 9110
  // §10.1.1); without it every such upload would stall for a second.
  if (beast::iequals(req[http::field::expect], "100-continue") && !parser_->is_done()) {
    static constexpr std::string_view continue_response = "HTTP/1.1 100 Continue\r\n\r\n";
    return net::async_write(stream_, net::buffer(continue_response),
                            [self = shared_from_this()](beast::error_code e, std::size_t) {
                              if (e) return self->fail(e, "write");
                              self->do_read_body();
                            });
  }
  do_read_body();
}

void http_session::do_read_body() {
  http::async_read(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
}

void http_session::on_read(beast::error_code ec) {
  if (ec) return on_read_error(ec);
  stream_.expires_never();  // a publish may wait for the journal; stop() still ends it
  request req = parser_->release();
  keep_alive_ = req.keep_alive();
  auto self = shared_from_this();
  auto res = api_.handle(self, req);
  if (res) send(std::move(*res));
}

void http_session::on_read_error(beast::error_code ec) {
  if (ec == http::error::body_limit)
    return reject(http::status::payload_too_large,
                  fmt::format("body larger than {} bytes", settings_.max_body_bytes));
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
    return reject(http::status::request_header_fields_too_large,
                  fmt::format("request headers larger than {} bytes", settings_.max_header_bytes));
  if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message)
    return reject(http::status::bad_request, fmt::format("malformed request: {}", ec.message()));
  fail(ec, "read");
}

// An error found before a whole request was read: answer, then close, since the rest of the
// stream can't be trusted to be the next request.
void http_session::reject(http::status status, std::string message) {
  log_warn("admin request refused peer={} status={} reason=\"{}\"", peer_,
           static_cast<unsigned>(status), message);
  keep_alive_ = false;
  auto res = error_response(status, message);
  res.version(11);
  res.keep_alive(false);
  res.prepare_payload();
  do_write(std::move(res), true);
}

void http_session::do_write(response res, bool close_after) {
  res_ = std::move(res);
  stream_.expires_after(write_timeout);
  http::async_write(stream_, res_,
                    [self = shared_from_this(), close_after](beast::error_code ec, std::size_t) {
                      self->on_write(ec, close_after);
                    });
}

void http_session::on_write(beast::error_code ec, bool close_after) {
  if (ec) return fail(ec, "write");
  res_ = {};
  if (closed_) return;
  if (close_after) return do_linger();
  do_read();
}

// Our FIN first, then read and discard what the client still sends (a body we refused) for a
// short while, so closing doesn't reset the connection under the response.
void http_session::do_linger() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close();
  stream_.expires_after(close_linger);
  buffer_.clear();
  do_linger_more();
}

void http_session::do_linger_more() {
  stream_.async_read_some(buffer_.prepare(16 * 1024),
                          [self = shared_from_this()](beast::error_code e, std::size_t) {
                            if (e) return self->close();
                            self->do_linger_more();
                          });
}

// Timeouts, resets and a client closing between requests are a normal end.
void http_session::fail(beast::error_code ec, std::string_view what) {
  if (ec == net::error::operation_aborted || ec == http::error::end_of_stream ||
      ec == net::error::eof || ec == net::error::connection_reset || ec == beast::error::timeout ||
      closed_) {
    if (ec == http::error::end_of_stream) {
      beast::error_code e;
      stream_.socket().shutdown(tcp::socket::shutdown_send, e);
    }
    return;
  }
  log_debug("admin connection failed peer={} {}: {}", peer_, what, ec.message());
}

}  // namespace broker::admin
