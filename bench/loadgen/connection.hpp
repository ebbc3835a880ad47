#pragma once

#include "frame_scanner.hpp"
#include "options.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

namespace bench {

// What CONNECT says.
struct credentials {
  std::string login;
  std::string passcode;
  std::string vhost;
  std::string heart_beat = "0,0";
};

// One STOMP 1.2 client connection over TCP or WebSocket (plain ws://, subprotocol v12.stomp),
// for coroutines on one io_context. At most one read and one write may be outstanding at a
// time (Beast's rule), which is how the scenarios use it: one reader coroutine per connection
// and one writer. Every operation reports errors as codes, never exceptions.
class connection {
 public:
  connection(boost::asio::any_io_executor ex, std::size_t read_buffer_bytes);

  // TCP connect, WebSocket handshake, CONNECT; returns once CONNECTED has been read (an ERROR
  // instead fails with its message in error_detail()).
  boost::asio::awaitable<std::error_code> open(const target& t, const credentials& c);

  // Sends `bytes` (whole frames) as one WebSocket message or one TCP write.
  boost::asio::awaitable<std::error_code> write(std::string_view bytes);

  // Reads what has arrived into scanner().
  boost::asio::awaitable<std::error_code> read_some();

  frame_scanner& scanner() noexcept { return scanner_; }

  // Closes the socket at once (no DISCONNECT). Cancels pending operations.
  void close() noexcept;

  const std::string& error_detail() const noexcept { return error_detail_; }
  // The broker's heart-beat from CONNECTED ("sx,sy"), and its server header.
  const std::string& server_heart_beat() const noexcept { return server_heart_beat_; }
  const std::string& server() const noexcept { return server_; }

 private:
  using tcp = boost::asio::ip::tcp;
  boost::beast::websocket::stream<tcp::socket> ws_;  // TCP targets use ws_.next_layer() only
  bool websocket_ = false;
  std::size_t read_chunk_bytes_;  // least free space asked of the scanner per read
  frame_scanner scanner_;
  std::string error_detail_;
  std::string server_heart_beat_;
  std::string server_;
};

}  // namespace bench
