#include "net/transport.hpp"

#include "broker/log.hpp"
#include "session/session.hpp"

#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <array>
#include <type_traits>

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace broker {

namespace {

using plain_stream = tcp::socket;
using tls_stream = ssl::stream<tcp::socket>;
template <typename Stream>
constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

std::string peer_name(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown";
  auto a = ep.address();
  return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), ep.port())
                   : fmt::format("{}:{}", a.to_string(), ep.port());
}

template <typename Stream>
Stream make_stream(broker_context& ctx, tcp::socket s) {
  if constexpr (is_tls<Stream>)
    return Stream(std::move(s), *ctx.tls);
  else
    return s;
}

std::array<net::const_buffer, 2> to_asio(const std::array<session::buffer_view, 2>& in) {
  return {net::const_buffer(in[0].data, in[0].size), net::const_buffer(in[1].data, in[1].size)};
}

bool is_normal_end(const beast::error_code& ec) {
  return ec == net::error::eof || ec == net::error::connection_reset ||
         ec == websocket::error::closed || ec == http::error::end_of_stream ||
         ec == ssl::error::stream_truncated;
}

// STOMP straight over a TCP byte stream, optionally in TLS.
template <typename Stream>
class tcp_session final : public session {
 public:
  tcp_session(broker_context& ctx, worker& w, tcp::socket s, connection_limiter::slot slot)
      : session(ctx, w, peer_name(s), is_tls<Stream> ? "tcp+tls" : "tcp", std::move(slot)),
        stream_(make_stream<Stream>(ctx, std::move(s))) {
    boost::system::error_code ec;
    beast::get_lowest_layer(stream_).set_option(tcp::no_delay(true), ec);
  }

 private:
  void start_transport() override {
    if constexpr (is_tls<Stream>) {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = shared_this()](beast::error_code ec) {
                                if (ec) return self->on_error(ec, "tls handshake");
                                self->transport_ready();
                              });
    } else {
      transport_ready();
    }
  }

  void start_read() override {
    stream_.async_read_some(read_space(),
                            [self = shared_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->on_error(ec, "read");
                              self->on_read(n);
                            });
  }

  void write(std::array<buffer_view, 2> buffers, bool) override {
    net::async_write(stream_, to_asio(buffers),
                     [self = shared_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->on_error(ec, "write");
                       self->on_write_done();
                     });
  }

  // Bounded by the session's close deadline (session::close_linger), which aborts whatever
  // is still running: the close_notify exchange, or the linger below.
  void shutdown_transport() override {
    if constexpr (is_tls<Stream>) {
      stream_.async_shutdown(
          [self = shared_this()](beast::error_code) { self->abort_transport(); });
    } else {
      beast::error_code ec;
      stream_.shutdown(tcp::socket::shutdown_send, ec);
      if (ec) return abort_transport();
      linger();
    }
  }

  void linger() {
    stream_.async_read_some(net::buffer(discard_),
                            [self = shared_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->abort_transport();
                              self->linger();
                            });
  }

  void abort_transport() override {
    beast::error_code ec;
    timer_.cancel();
    beast::get_lowest_layer(stream_).close(ec);
  }

  void reset_transport() override {
    beast::error_code ec;
    beast::get_lowest_layer(stream_).set_option(net::socket_base::linger(true, 0), ec);
    abort_transport();
  }

  void on_error(beast::error_code ec, std::string_view what) {
    if (closing_ && ec == net::error::operation_aborted) return;
    fail(is_normal_end(ec) ? close_reason::peer_closed : close_reason::io_error, what,
         ec.message());
  }

  std::shared_ptr<tcp_session> shared_this() {
    return std::static_pointer_cast<tcp_session>(shared_from_this());
  }

  Stream stream_;
  std::array<char, 256> discard_;
};

// The first `name` parameter of the request target's query, percent-decoded ('+' is a space,
// as browsers encode forms); "" when absent. A target whose query is malformed (a bad escape)
// yields its raw value: it then fails verification like any bad token, rather than
// vanishing and letting the connection fall back to anonymous.
std::string query_parameter(std::string_view target, std::string_view name) {
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return {};
  for (const auto& p : url->encoded_params()) {
    if (p.key != name || !p.has_value) continue;
    auto decoded = boost::urls::make_pct_string_view(p.value);
    if (!decoded) return std::string(p.value);
    boost::urls::encoding_opts plus_is_space;
    plus_is_space.space_as_plus = true;
    return decoded->decode(plus_is_space);
  }
  return {};
}

// STOMP over WebSocket (RFC 6455, subprotocols v10.stomp, v11.stomp, v12.stomp), optionally in
// TLS (wss). Frames may span WebSocket messages and a message may hold several frames: the
// parser sees a byte stream either way. Outbound, the frames of one write go out as one
// message.
template <typename Stream>
class websocket_session final : public session {
 public:
  websocket_session(broker_context& ctx, worker& w, tcp::socket s, connection_limiter::slot slot)
      : session(ctx, w, peer_name(s), is_tls<Stream> ? "websocket+tls" : "websocket",
                std::move(slot)),
        ws_(make_stream<Stream>(ctx, std::move(s))) {
    boost::system::error_code ec;
    beast::get_lowest_layer(ws_).set_option(tcp::no_delay(true), ec);
  }

 private:
  void start_transport() override {
    if constexpr (is_tls<Stream>) {
      ws_.next_layer().async_handshake(ssl::stream_base::server,
                                       [self = shared_this()](beast::error_code ec) {
                                         if (ec) return self->on_error(ec, "tls handshake");
                                         self->read_request();
                                       });
    } else {
      read_request();
    }
  }

  void read_request() {
    const auto limit = ctx_.settings.websocket.max_handshake_bytes;
    request_.emplace();
    request_->header_limit(static_cast<std::uint32_t>(limit));
    request_->body_limit(0);
    handshake_buffer_.emplace(limit);
    http::async_read(
        ws_.next_layer(), *handshake_buffer_, *request_,
        [self = shared_this()](beast::error_code ec, std::size_t) { self->on_request(ec); });
  }

  void on_request(beast::error_code ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
      return refuse(http::status::request_header_fields_too_large, "handshake request too large");
    if (ec) return on_error(ec, "handshake");
    auto& req = request_->get();
    auto target = req.target();
    auto path = target.substr(0, target.find('?'));
    if (!websocket::is_upgrade(req))
      return refuse(http::status::upgrade_required, "this endpoint speaks STOMP over WebSocket");
    if (path != ctx_.settings.websocket.path)
      return refuse(http::status::not_found, "no WebSocket endpoint at this path");
    const auto& origins = ctx_.settings.websocket.allowed_origins;
    if (auto origin = req[http::field::origin];
        !origin.empty() && !origins.empty() &&
        std::find(origins.begin(), origins.end(), origin) == origins.end()) {
      log_warn("session={} websocket origin refused origin={}", id(), std::string_view(origin));
      return refuse(http::status::forbidden, "origin not allowed");
    }
    // Browsers can't set headers on a WebSocket: a bearer token may come in the URL. It is
    // kept for CONNECT and never logged (nothing logs the request target).
    transport_token_ = query_parameter(target, "access_token");

    protocol_ = choose_subprotocol(req[http::field::sec_websocket_protocol]);
    ws_.set_option(websocket::stream_base::timeout{
        ctx_.settings.limits.connect_timeout,  // handshake and close handshake
        websocket::stream_base::none(),        // idleness is what STOMP heart-beats are for
        false});
    ws_.set_option(websocket::stream_base::decorator(
        [protocol = protocol_, server = ctx_.server_header](websocket::response_type& res) {
          res.set(http::field::server, server);
          if (!protocol.empty()) res.set(http::field::sec_websocket_protocol, protocol);
        }));
    ws_.read_message_max(ctx_.settings.websocket.max_message_bytes);
    ws_.auto_fragment(false);
    ws_.async_accept(req, [self = shared_this()](beast::error_code e) {
      self->handshake_buffer_.reset();
      self->request_.reset();
      if (e) return self->on_error(e, "accept");
      log_debug("session={} websocket subprotocol={}", self->id(),
                self->protocol_.empty() ? "none" : self->protocol_);
      self->transport_ready();
    });
  }

  // Prefer the newest STOMP version the client offers. A client offering none of ours is
  // still accepted, without the header (RFC 6455 4.2.2); STOMP negotiates on CONNECT anyway.
  static std::string choose_subprotocol(std::string_view offered) {
    for (std::string_view ours : {"v12.stomp", "v11.stomp", "v10.stomp"}) {
      std::string_view rest = offered;
      while (!rest.empty()) {
        auto comma = rest.find(',');
        auto token = rest.substr(0, comma);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
          token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
          token.remove_suffix(1);
        if (token == ours) return std::string(ours);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
    return {};
  }

  void refuse(http::status status, std::string_view why) {
    log_debug("session={} websocket handshake refused: {} {}", id(), static_cast<int>(status), why);
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::server, ctx_.server_header);
    res->set(http::field::content_type, "text/plain");
    res->set(http::field::connection, "close");
    res->body() = std::string(why) + "\n";
    res->prepare_payload();
    http::async_write(ws_.next_layer(), *res,
                      [self = shared_this(), res](beast::error_code, std::size_t) {
                        self->fail(close_reason::protocol_error, "handshake", "refused");
                      });
  }

  void start_read() override {
    ws_.async_read_some(read_space(), [self = shared_this()](beast::error_code ec, std::size_t n) {
      if (ec) return self->on_error(ec, "read");
      self->on_read(n);
    });
  }

  void write(std::array<buffer_view, 2> buffers, bool text) override {
    ws_.text(text);
    ws_.async_write(to_asio(buffers), [self = shared_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->on_error(ec, "write");
      self->on_write_done();
    });
  }

  // Bounded by the session's close deadline (session::close_linger) as well as by the
  // stream's close-handshake timeout.
  void shutdown_transport() override {
    if (!ws_.is_open()) return abort_transport();
    ws_.async_close(websocket::close_code::normal,
                    [self = shared_this()](beast::error_code) { self->abort_transport(); });
  }

  void abort_transport() override {
    beast::error_code ec;
    timer_.cancel();
    beast::get_lowest_layer(ws_).close(ec);
  }

  void reset_transport() override {
    beast::error_code ec;
    beast::get_lowest_layer(ws_).set_option(net::socket_base::linger(true, 0), ec);
    abort_transport();
  }

  void on_error(beast::error_code ec, std::string_view what) {
    if (closing_ && ec == net::error::operation_aborted) return;
    fail(is_normal_end(ec) ? close_reason::peer_closed : close_reason::io_error, what,
         ec.message());
  }

  std::shared_ptr<websocket_session> shared_this() {
    return std::static_pointer_cast<websocket_session>(shared_from_this());
  }

  websocket::stream<Stream> ws_;
  std::string protocol_;
  // Only during the handshake.
  std::optional<beast::flat_buffer> handshake_buffer_;
  std::optional<http::request_parser<http::empty_body>> request_;
};

}  // namespace

void start_tcp_session(broker_context& ctx, worker& w, tcp::socket socket,
                       connection_limiter::slot slot, bool tls) {
  if (tls)
    std::make_shared<tcp_session<tls_stream>>(ctx, w, std::move(socket), std::move(slot))->run();
  else
    std::make_shared<tcp_session<plain_stream>>(ctx, w, std::move(socket), std::move(slot))->run();
}

void start_websocket_session(broker_context& ctx, worker& w, tcp::socket socket,
                             connection_limiter::slot slot, bool tls) {
  if (tls)
    std::make_shared<websocket_session<tls_stream>>(ctx, w, std::move(socket), std::move(slot))
        ->run();
  else
    std::make_shared<websocket_session<plain_stream>>(ctx, w, std::move(socket), std::move(slot))
        ->run();
}

void refuse_connection(tcp::socket socket, bool websocket, bool tls, std::string_view why) {
  if (!tls) {
    std::string reply = websocket
                            ? fmt::format(
                                  "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: {}\r\nConnection: close\r\n\r\n{}\n",
                                  why.size() + 1, why)
                            : fmt::format(
                                  "ERROR\nmessage:too many connections\ncontent-type:text/plain\n"
                                  "content-length:{}\n\n{}\n",
                                  why.size() + 1, why) +
                                  std::string(1, '\0');
    // A fresh socket's send buffer takes this at once; if not, the refusal is just a close.
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    socket.write_some(net::buffer(reply), ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }
  boost::system::error_code ec;
  socket.close(ec);
}

}  // namespace broker
