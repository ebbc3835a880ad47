#include "connection.hpp"

#include "stomp/serializer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace bench {

namespace {

constexpr auto as_tuple_awaitable = net::as_tuple(net::use_awaitable);

}  // namespace

connection::connection(net::any_io_executor ex, std::size_t read_buffer_bytes)
    : ws_(tcp::socket(ex)),
      // Most reads are far smaller; up to 16 KiB lets a coalesced WebSocket message or a burst
      // of TCP segments land in one call, while idle sessions keep small buffers.
      read_chunk_bytes_(std::min<std::size_t>(16 * 1024, read_buffer_bytes / 2)),
      scanner_(read_buffer_bytes) {}

net::awaitable<std::error_code> connection::open(const target& t, const credentials& c) {
  websocket_ = t.websocket;
  auto& sock = ws_.next_layer();
  tcp::endpoint ep(net::ip::make_address(t.host), t.port);
  auto [ec] = co_await sock.async_connect(ep, as_tuple_awaitable);
  if (ec) {
    error_detail_ = fmt::format("connect {}: {}", t.url(), ec.message());
    co_return ec;
  }
  sock.set_option(tcp::no_delay(true), ec);
  if (websocket_) {
    ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(beast::http::field::sec_websocket_protocol, "v12.stomp");
      req.set(beast::http::field::user_agent, "stompd-bench");
    }));
    ws_.auto_fragment(false);
    ws_.read_message_max(64 * 1024 * 1024);
    auto host = fmt::format("{}:{}", t.host, t.port);
    std::tie(ec) = co_await ws_.async_handshake(host, t.path, as_tuple_awaitable);
    if (ec) {
      error_detail_ = fmt::format("websocket handshake {}: {}", t.url(), ec.message());
      co_return ec;
    }
    ws_.text(true);
  }

  std::vector<stomp::header_view> h{
      {"accept-version", "1.2"},
      {"host", c.vhost.empty() ? std::string_view(t.host) : std::string_view(c.vhost)},
      {"heart-beat", c.heart_beat}};
  if (!c.login.empty()) h.push_back({"login", c.login});
  if (!c.passcode.empty()) h.push_back({"passcode", c.passcode});
  std::string out;
  stomp::serialize(out, stomp::command::connect, h, {}, stomp::version::v1_2);
  if (auto e = co_await write(out)) {
    error_detail_ = fmt::format("CONNECT: {}", e.message());
    co_return e;
  }
  for (;;) {
    std::string_view cmd;
    bool got = false;
    scanner_.drain([&](std::string_view f) {
      got = true;
      cmd = frame_command(f);
      if (cmd == "CONNECTED") {
        server_heart_beat_ = std::string(frame_header(f, "heart-beat").value_or("0,0"));
        server_ = std::string(frame_header(f, "server").value_or(""));
      } else {
        error_detail_ = fmt::format("expected CONNECTED, got {}: {}", cmd,
                                    frame_header(f, "message").value_or(f.substr(0, 200)));
      }
      return false;  // anything after CONNECTED stays buffered for the reader
    });
    if (got)
      co_return cmd == "CONNECTED" ? std::error_code{}
                                   : std::make_error_code(std::errc::connection_refused);
    if (auto e = co_await read_some()) {
      error_detail_ = fmt::format("waiting for CONNECTED: {}", e.message());
      co_return e;
    }
  }
}

net::awaitable<std::error_code> connection::write(std::string_view bytes) {
  if (websocket_) {
    auto [ec, n] =
        co_await ws_.async_write(net::buffer(bytes.data(), bytes.size()), as_tuple_awaitable);
    co_return ec;
  }
  auto [ec, n] = co_await net::async_write(
      ws_.next_layer(), net::buffer(bytes.data(), bytes.size()), as_tuple_awaitable);
  co_return ec;
}

net::awaitable<std::error_code> connection::read_some() {
  auto space = scanner_.prepare(read_chunk_bytes_);
  auto buf = net::buffer(space.data(), space.size());
  if (websocket_) {
    auto [ec, n] = co_await ws_.async_read_some(buf, as_tuple_awaitable);
    scanner_.commit(n);
    co_return ec;
  }
  auto [ec, n] = co_await ws_.next_layer().async_read_some(buf, as_tuple_awaitable);
  scanner_.commit(n);
  co_return ec;
}

void connection::close() noexcept {
  beast::error_code ec;
  ws_.next_layer().shutdown(tcp::socket::shutdown_both, ec);
  ws_.next_layer().close(ec);
}

}  // namespace bench
