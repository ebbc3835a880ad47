#include "stomp_client.hpp"

#include "stomp/parser.hpp"
#include "stomp/serializer.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <deque>
#include <functional>
#include <stdexcept>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace stompd_test {

namespace {

// One connection of any of the four kinds (TCP or WebSocket, each with or without TLS).
struct connection {
  virtual ~connection() = default;
  virtual void async_read_some(net::mutable_buffer b,
                               std::function<void(beast::error_code, std::size_t)> h) = 0;
  virtual void write(std::string_view bytes) = 0;
  virtual void cancel() = 0;
};

template <typename Stream>
struct raw_connection final : connection {
  explicit raw_connection(Stream s) : stream(std::move(s)) {}
  void async_read_some(net::mutable_buffer b,
                       std::function<void(beast::error_code, std::size_t)> h) override {
    stream.async_read_some(b, std::move(h));
  }
  void write(std::string_view bytes) override {
    net::write(stream, net::buffer(bytes.data(), bytes.size()));
  }
  void cancel() override {
    beast::error_code ec;
    beast::get_lowest_layer(stream).cancel(ec);
  }
  Stream stream;
};

template <typename Stream>
struct ws_connection final : connection {
  explicit ws_connection(Stream s) : ws(std::move(s)) {}
  void async_read_some(net::mutable_buffer b,
                       std::function<void(beast::error_code, std::size_t)> h) override {
    ws.async_read_some(b, std::move(h));
  }
  void write(std::string_view bytes) override { ws.write(net::buffer(bytes.data(), bytes.size())); }
  void cancel() override {
    beast::error_code ec;
    beast::get_lowest_layer(ws).cancel(ec);
  }
  websocket::stream<Stream> ws;
};

using tls_stream = net::ssl::stream<tcp::socket>;

}  // namespace

struct stomp_client::impl {
  net::io_context io;
  net::ssl::context tls{net::ssl::context::tls_client};
  std::unique_ptr<connection> conn;
  std::string subprotocol;
  stomp::parser parser;
  std::deque<stomp::frame> frames;
  bool closed = false;
  std::array<char, 64 * 1024> buf{};
  int receipt_counter = 0;

  // Reads once, with a deadline; false on timeout.
  bool read_some(std::chrono::milliseconds timeout) {
    bool done = false;
    conn->async_read_some(net::buffer(buf), [&](beast::error_code ec, std::size_t n) {
      done = true;
      if (ec) {
        closed = true;
        return;
      }
      parser.feed(std::string_view(buf.data(), n));
      stomp::frame_view f;
      for (;;) {
        auto e = parser.next(f);
        if (e == stomp::errc::need_more) break;
        if (e)
          throw std::runtime_error("test client: bad frame from broker: " +
                                   parser.error().message());
        frames.emplace_back(f);
      }
    });
    io.restart();
    io.run_for(timeout);
    if (!done) {
      // Cancel and let the handler run, so nothing refers to this frame afterwards.
      conn->cancel();
      io.restart();
      io.run();
      closed = false;
      return false;
    }
    return true;
  }

  template <typename Stream>
  void websocket_handshake(Stream s, const options& o) {
    auto c = std::make_unique<ws_connection<Stream>>(std::move(s));
    std::string offered;
    for (const auto& p : o.subprotocols) offered += (offered.empty() ? "" : ", ") + p;
    c->ws.set_option(websocket::stream_base::decorator(
        [offered, origin = o.origin](websocket::request_type& req) {
          if (!offered.empty()) req.set(beast::http::field::sec_websocket_protocol, offered);
          if (!origin.empty()) req.set(beast::http::field::origin, origin);
        }));
    websocket::response_type res;
    c->ws.handshake(res, o.host + ":" + std::to_string(o.port),
                    o.target.empty() ? o.path : o.target);
    subprotocol = std::string(res[beast::http::field::sec_websocket_protocol]);
    conn = std::move(c);
  }
};

stomp_client::stomp_client(const options& o) : impl_(std::make_unique<impl>()) {
  auto& m = *impl_;
  tcp::socket s(m.io);
  s.connect(tcp::endpoint(net::ip::make_address(o.host), o.port));
  s.set_option(tcp::no_delay(true));
  if (o.tls) {
    m.tls.set_verify_mode(net::ssl::verify_none);
    tls_stream t(std::move(s), m.tls);
    t.handshake(net::ssl::stream_base::client);
    if (o.websocket)
      m.websocket_handshake(std::move(t), o);
    else
      m.conn = std::make_unique<raw_connection<tls_stream>>(std::move(t));
  } else if (o.websocket) {
    m.websocket_handshake(std::move(s), o);
  } else {
    m.conn = std::make_unique<raw_connection<tcp::socket>>(std::move(s));
  }
}

stomp_client::~stomp_client() = default;
stomp_client::stomp_client(stomp_client&&) noexcept = default;
stomp_client& stomp_client::operator=(stomp_client&&) noexcept = default;

stomp_client stomp_client::tcp(std::uint16_t port) {
  options o;
  o.port = port;
  return stomp_client(o);
}

stomp_client stomp_client::websocket(std::uint16_t port) {
  options o;
  o.port = port;
  o.websocket = true;
  return stomp_client(o);
}

const std::string& stomp_client::subprotocol() const { return impl_->subprotocol; }

void stomp_client::send(const stomp::frame& f) {
  send_raw(stomp::serialize(f, impl_->parser.version()));
}

void stomp_client::send_raw(std::string_view bytes) { impl_->conn->write(bytes); }

std::optional<stomp::frame> stomp_client::receive(std::chrono::milliseconds timeout) {
  auto& m = *impl_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (m.frames.empty() && !m.closed) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !m.read_some(left)) return std::nullopt;
  }
  if (m.frames.empty()) return std::nullopt;
  auto f = std::move(m.frames.front());
  m.frames.pop_front();
  return f;
}

bool stomp_client::wait_closed(std::chrono::milliseconds timeout) {
  auto& m = *impl_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!m.closed) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !m.read_some(left)) return false;
  }
  return true;
}

std::size_t stomp_client::heartbeats() const { return impl_->parser.heartbeats(); }

stomp::frame stomp_client::connect(std::vector<stomp::header> extra) {
  stomp::frame f(stomp::command::connect);
  bool has_version = false;
  for (const auto& h : extra) has_version |= h.name == "accept-version";
  if (!has_version) f.headers.push_back({"accept-version", "1.2"});
  f.headers.push_back({"host", "localhost"});
  for (auto& h : extra) f.headers.push_back(std::move(h));
  send(f);
  auto r = receive();
  if (!r || r->command != stomp::command::connected)
    throw std::runtime_error("test client: expected CONNECTED, got " +
                             (r ? std::string(stomp::to_string(r->command)) + ": " +
                                      std::string(r->header("message").value_or(""))
                                : std::string("nothing")));
  auto v = r->header("version").value_or("1.0");
  impl_->parser.set_version(v == "1.2"   ? stomp::version::v1_2
                            : v == "1.1" ? stomp::version::v1_1
                                         : stomp::version::v1_0);
  return *r;
}

void stomp_client::subscribe(std::string_view destination, std::string_view id,
                             std::vector<stomp::header> extra) {
  stomp::frame f(stomp::command::subscribe,
                 {{"destination", std::string(destination)}, {"id", std::string(id)}});
  for (auto& h : extra) f.headers.push_back(std::move(h));
  auto before = send_with_receipt(std::move(f));
  if (!before.empty()) throw std::runtime_error("test client: unexpected frame before RECEIPT");
}

std::vector<stomp::frame> stomp_client::send_with_receipt(stomp::frame f) {
  auto id = "r-" + std::to_string(++impl_->receipt_counter);
  f.headers.push_back({"receipt", id});
  send(f);
  std::vector<stomp::frame> before;
  for (;;) {
    auto r = receive();
    if (!r) throw std::runtime_error("test client: no RECEIPT " + id);
    if (r->command == stomp::command::receipt && r->header("receipt-id") == id) return before;
    if (r->command == stomp::command::error)
      throw std::runtime_error("test client: ERROR " +
                               std::string(r->header("message").value_or("")) + ": " + r->body);
    before.push_back(std::move(*r));
  }
}

}  // namespace stompd_test
