// Transport security and connection limits on the real broker: TLS for STOMP and WebSocket,
// the WebSocket Origin allow-list, handshake bounds, and connection and publish limits.
#include "broker/server.hpp"
#include "stomp_client.hpp"
#include "temp_dir.hpp"
#include "test_config.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <thread>

namespace {

using stomp::command;
using stompd_test::stomp_client;
using namespace std::chrono_literals;
namespace net = boost::asio;

class SecurityTest : public ::testing::Test {
 protected:
  broker::config settings() { return stompd_test::loopback_config(dir_.path() / "data"); }
  void start(broker::config c) {
    server_ = std::make_unique<broker::server>(std::move(c));
    server_->start();
  }
  // A self-signed certificate for localhost, made now (openssl is a test dependency).
  void make_certificate(broker::config& c) {
    auto cert = dir_.path() / "cert.pem", key = dir_.path() / "key.pem";
    auto cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " +
               key.string() + " -out " + cert.string() + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    c.tls.cert_file = cert;
    c.tls.key_file = key;
  }
  // Sends raw bytes, returns everything the broker answers until it closes (bounded).
  std::string raw_exchange(std::uint16_t port, const std::string& request) {
    net::io_context io;
    net::ip::tcp::socket s(io);
    s.connect({net::ip::make_address("127.0.0.1"), port});
    net::write(s, net::buffer(request));
    std::string reply;
    boost::system::error_code ec;
    std::array<char, 4096> buf{};
    for (int i = 0; i < 100 && !ec; ++i) {
      auto n = s.read_some(net::buffer(buf), ec);
      reply.append(buf.data(), n);
    }
    return reply;
  }

  stompd_test::temp_dir dir_;
  std::unique_ptr<broker::server> server_;
};

TEST_F(SecurityTest, StompOverTlsWorksEndToEnd) {
  auto c = settings();
  c.tcp.tls = true;
  make_certificate(c);
  start(c);
  stomp_client::options o;
  o.port = server_->tcp_port();
  o.tls = true;
  stomp_client sub(o);
  sub.connect();
  sub.subscribe("/topic/secret", "s");
  stomp_client pub(o);
  pub.connect();
  pub.send_with_receipt(stomp::frame(command::send, {{"destination", "/topic/secret"}}, "hush"));
  auto m = sub.receive();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->body, "hush");
}

TEST_F(SecurityTest, WebSocketOverTlsWorksEndToEnd) {
  auto c = settings();
  c.websocket.tls = true;
  make_certificate(c);
  start(c);
  stomp_client::options o;
  o.port = server_->websocket_port();
  o.tls = true;
  o.websocket = true;
  stomp_client client(o);
  EXPECT_EQ(client.subprotocol(), "v12.stomp");
  client.connect();
  client.send_with_receipt(stomp::frame(command::send, {{"destination", "/topic/x"}}, "y"));
}

TEST_F(SecurityTest, PlainTextToATlsListenerIsDroppedWithoutHarm) {
  auto c = settings();
  c.tcp.tls = true;
  make_certificate(c);
  start(c);
  auto reply =
      raw_exchange(server_->tcp_port(), "CONNECT\naccept-version:1.2\n\n" + std::string(1, '\0'));
  EXPECT_EQ(reply.find("CONNECTED"), std::string::npos);
  stomp_client::options o;
  o.port = server_->tcp_port();
  o.tls = true;
  stomp_client ok(o);
  ok.connect();
}

TEST_F(SecurityTest, DisallowedOriginIsRefusedWith403BeforeTheUpgrade) {
  auto c = settings();
  c.websocket.allowed_origins = {"https://lostfound.example"};
  start(c);
  auto upgrade = [&](std::string_view origin) {
    return raw_exchange(server_->websocket_port(),
                        fmt::format("GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{}\r\n",
                                    origin));
  };
  EXPECT_TRUE(upgrade("Origin: https://evil.example\r\n").starts_with("HTTP/1.1 403"));
  EXPECT_TRUE(upgrade("Origin: https://lostfound.example\r\n").starts_with("HTTP/1.1 101"));
  EXPECT_TRUE(upgrade("").starts_with("HTTP/1.1 101"));  // non-browser clients send no Origin
  stomp_client::options o;
  o.port = server_->websocket_port();
  o.websocket = true;
  o.origin = "https://lostfound.example";
  stomp_client good(o);
  good.connect();
}

TEST_F(SecurityTest, OversizedHandshakeGets431) {
  auto c = settings();
  c.websocket.max_handshake_bytes = 1024;
  start(c);
  auto reply =
      raw_exchange(server_->websocket_port(),
                   "GET /ws HTTP/1.1\r\nHost: x\r\nX-Junk: " + std::string(4000, 'a') + "\r\n\r\n");
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 431")) << reply.substr(0, 80);
}

TEST_F(SecurityTest, ConnectionsPerAddressAreBounded) {
  auto c = settings();
  c.limits.max_connections_per_address = 2;
  start(c);
  auto a = std::make_unique<stomp_client>(stomp_client::tcp(server_->tcp_port()));
  auto b = stomp_client::tcp(server_->tcp_port());
  a->connect();
  b.connect();
  auto refused = stomp_client::tcp(server_->tcp_port());
  auto e = refused.receive();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->command, command::error);
  EXPECT_EQ(e->header("message"), "too many connections");
  EXPECT_TRUE(refused.wait_closed());
  a->send_with_receipt(stomp::frame(command::disconnect));
  ASSERT_TRUE(a->wait_closed());
  a.reset();
  // The slot comes back once the session is gone.
  for (int i = 0; i < 100; ++i) {
    auto again = stomp_client::tcp(server_->tcp_port());
    try {
      again.connect();
      return;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(20ms);
    }
  }
  FAIL() << "the freed connection slot never came back";
}

TEST_F(SecurityTest, WebSocketOverTheConnectionLimitGets503) {
  auto c = settings();
  c.limits.max_connections = 1;
  start(c);
  auto a = stomp_client::tcp(server_->tcp_port());
  a.connect();
  auto reply = raw_exchange(server_->websocket_port(), "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 503")) << reply.substr(0, 80);
}

TEST_F(SecurityTest, PublishRateLimitEndsAFloodingConnection) {
  auto c = settings();
  c.limits.max_publish_rate = 50;
  start(c);
  auto flood = stomp_client::tcp(server_->tcp_port());
  flood.connect();
  for (int i = 0; i < 200; ++i)
    flood.send(stomp::frame(command::send, {{"destination", "/topic/spam"}}, "x"));
  std::optional<stomp::frame> e;
  for (;;) {
    e = flood.receive();
    if (!e || e->command == command::error) break;
  }
  ASSERT_TRUE(e);
  EXPECT_EQ(e->header("message"), "publish rate exceeded");
  auto polite = stomp_client::tcp(server_->tcp_port());
  polite.connect();
  polite.send_with_receipt(stomp::frame(command::send, {{"destination", "/topic/spam"}}, "ok"));
}

}  // namespace
