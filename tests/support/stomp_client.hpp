#pragma once

#include "stomp/frame.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stompd_test {

using namespace std::chrono_literals;

// A small blocking STOMP client for tests, over TCP or WebSocket, loopback only. Every wait
// has a deadline, so a broker that misbehaves fails the test instead of hanging it.
class stomp_client {
 public:
  struct options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    bool websocket = false;
    std::string path = "/ws";
    std::vector<std::string> subprotocols = {"v12.stomp", "v11.stomp", "v10.stomp"};
    bool tls = false;    // TLS first (no certificate verification: tests use self-signed ones)
    std::string target;  // WebSocket request target; default: path
    std::string origin;  // WebSocket Origin header, when set
  };

  explicit stomp_client(const options& o);
  ~stomp_client();
  stomp_client(stomp_client&&) noexcept;
  stomp_client& operator=(stomp_client&&) noexcept;

  static stomp_client tcp(std::uint16_t port);
  static stomp_client websocket(std::uint16_t port);

  // The subprotocol the server chose (WebSocket only).
  const std::string& subprotocol() const;

  void send(const stomp::frame& f);
  void send_raw(std::string_view bytes);  // exactly these bytes (one WebSocket message)

  // Next frame, skipping heart-beats; nullopt on timeout or when the peer closed.
  std::optional<stomp::frame> receive(std::chrono::milliseconds timeout = 5s);
  // Waits until the peer closes; false if it is still open after the timeout.
  bool wait_closed(std::chrono::milliseconds timeout = 5s);
  // Heart-beats (EOLs) seen so far.
  std::size_t heartbeats() const;

  // CONNECT (accept-version 1.2 unless given), returns CONNECTED or throws.
  stomp::frame connect(std::vector<stomp::header> extra = {});
  // SUBSCRIBE with a receipt, waiting for it. Throws when anything else arrives.
  void subscribe(std::string_view destination, std::string_view id,
                 std::vector<stomp::header> extra = {});
  // Sends `f` with a receipt header and waits for that RECEIPT; returns frames that arrived
  // before it (e.g. MESSAGEs).
  std::vector<stomp::frame> send_with_receipt(stomp::frame f);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace stompd_test
