#include "transport.hpp"

#include "broker/log.hpp"
#include "session.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <array>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace broker {

namespace {

// How long a closing TCP connection keeps reading (and discarding) after our FIN, so the
// peer's unread input doesn't turn our close into a reset that loses the final ERROR.
constexpr std::chrono::seconds tcp_linger{2};
// Largest HTTP upgrade request accepted.
constexpr std::uint32_t max_handshake_bytes = 8 * 1024;

std::string peer_name(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown";
  auto a = ep.address();
  return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), ep.port())
                   : fmt::format("{}:{}", a.to_string(), ep.port());
}

std::vector<net::const_buffer> to_asio(const std::vector<session::buffer_view>& in);

// STOMP straight over a TCP byte stream.
class tcp_session final : public session {
 public:
  tcp_session(broker_context& ctx, worker& w, tcp::socket s)
      : session(ctx, w, peer_name(s), "tcp"), socket_(std::move(s)) {
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
  }

 private:
  void start_transport() override { transport_ready(); }

  void start_read() override {
    socket_.async_read_some(read_space(),
                            [self = shared_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->on_error(ec, "read");
                              self->on_read(n);
                            });
  }

  void write(const std::vector<buffer_view>& buffers, bool) override {
    net::async_write(socket_, to_asio(buffers),
                     [self = shared_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->on_error(ec, "write");
                       self->on_write_done();
                     });
  }

  void shutdown_transport() override {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return abort_transport();
    timer_.expires_after(tcp_linger);
    timer_.async_wait([self = shared_this()](beast::error_code e) {
      if (!e) self->abort_transport();
    });
    linger();
  }

  void linger() {
    socket_.async_read_some(net::buffer(discard_),
                            [self = shared_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->abort_transport();
                              self->linger();
                            });
  }

  void abort_transport() override {
    beast::error_code ec;
    timer_.cancel();
    socket_.close(ec);
  }

  void on_error(beast::error_code ec, std::string_view what) {
    if (closing_ && ec == net::error::operation_aborted) return;
    bool eof = ec == net::error::eof || ec == net::error::connection_reset;
    fail(eof ? close_reason::peer_closed : close_reason::io_error, what, ec.message());
  }

  std::shared_ptr<tcp_session> shared_this() {
    return std::static_pointer_cast<tcp_session>(shared_from_this());
  }

  tcp::socket socket_;
  std::array<char, 512> discard_;
};

// STOMP over WebSocket (RFC 6455, subprotocols v10.stomp, v11.stomp, v12.stomp). Frames may
// span WebSocket messages and a message may hold several frames: the parser sees a byte
// stream either way. Outbound, the frames of one write go out as one message.
class websocket_session final : public session {
 public:
  websocket_session(broker_context& ctx, worker& w, tcp::socket s)
      : session(ctx, w, peer_name(s), "websocket"), ws_(std::move(s)) {
    boost::system::error_code ec;
    ws_.next_layer().set_option(tcp::no_delay(true), ec);
  }

 private:
  void start_transport() override {
    request_.emplace();
    request_->header_limit(max_handshake_bytes);
    request_->body_limit(0);
    handshake_buffer_.emplace(max_handshake_bytes);
    http::async_read(
        ws_.next_layer(), *handshake_buffer_, *request_,
        [self = shared_this()](beast::error_code ec, std::size_t) { self->on_request(ec); });
  }

  void on_request(beast::error_code ec) {
    if (ec) return on_error(ec, "handshake");
    auto& req = request_->get();
    auto target = req.target();
    auto path = target.substr(0, target.find('?'));
    if (!websocket::is_upgrade(req))
      return refuse(http::status::upgrade_required, "this endpoint speaks STOMP over WebSocket");
    if (path != ctx_.settings.websocket.path)
      return refuse(http::status::not_found, "no WebSocket endpoint at this path");

    auto offered = req[http::field::sec_websocket_protocol];
    protocol_ = choose_subprotocol(offered);
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

  void write(const std::vector<buffer_view>& buffers, bool text) override {
    ws_.text(text);
    ws_.async_write(to_asio(buffers), [self = shared_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->on_error(ec, "write");
      self->on_write_done();
    });
  }

  void shutdown_transport() override {
    if (!ws_.is_open()) return abort_transport();
    ws_.async_close(websocket::close_code::normal,
                    [self = shared_this()](beast::error_code) { self->abort_transport(); });
  }

  void abort_transport() override {
    beast::error_code ec;
    timer_.cancel();
    ws_.next_layer().close(ec);
  }

  void on_error(beast::error_code ec, std::string_view what) {
    if (closing_ && ec == net::error::operation_aborted) return;
    bool normal = ec == websocket::error::closed || ec == net::error::eof ||
                  ec == net::error::connection_reset || ec == http::error::end_of_stream;
    fail(normal ? close_reason::peer_closed : close_reason::io_error, what, ec.message());
  }

  std::shared_ptr<websocket_session> shared_this() {
    return std::static_pointer_cast<websocket_session>(shared_from_this());
  }

  websocket::stream<tcp::socket> ws_;
  std::string protocol_;
  // Only during the handshake.
  std::optional<beast::flat_buffer> handshake_buffer_;
  std::optional<http::request_parser<http::empty_body>> request_;
};

std::vector<net::const_buffer> to_asio(const std::vector<session::buffer_view>& in) {
  std::vector<net::const_buffer> out;
  out.reserve(in.size());
  for (const auto& b : in) out.emplace_back(b.data, b.size);
  return out;
}

}  // namespace

void start_tcp_session(broker_context& ctx, worker& w, tcp::socket socket) {
  std::make_shared<tcp_session>(ctx, w, std::move(socket))->run();
}

void start_websocket_session(broker_context& ctx, worker& w, tcp::socket socket) {
  std::make_shared<websocket_session>(ctx, w, std::move(socket))->run();
}

}  // namespace broker
