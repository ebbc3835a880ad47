// libFuzzer target for what a client can send a session: the real broker in-process on
// ephemeral loopback ports, each input written to one fresh connection (build with
// -DSTOMPD_FUZZ=ON and clang; run it with -detect_leaks=0, since the broker's threads
// allocate while an input runs).
//
// Input layout: byte 0 picks the transport, byte 1 the chunking pattern, the rest is what
// the client sends:
//   transport % 3 == 0  STOMP over TCP, the bytes as they are;
//   transport % 3 == 1  STOMP over WebSocket, the bytes cut into text and binary messages
//                       (some of them fragmented);
//   transport % 3 == 2  WebSocket, the bytes written raw after the handshake (Beast's frame
//                       parser, masking, control frames).
// Bit 0x40 of byte 1 puts a valid CONNECT first, so most inputs reach a connected session.
//
// What must hold for every input: the broker closes the connection within a deadline once
// the client has sent everything and half-closed (a hang aborts the run); everything it
// sent back parses as complete STOMP frames; and every 32 inputs a separate client still
// connects, subscribes, publishes with a receipt and receives its message. The limits are
// small so that their paths run.

#include "broker/server.hpp"
#include "stomp/parser.hpp"
#include "stomp_client.hpp"
#include "temp_dir.hpp"
#include "test_config.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto close_deadline = 10s;  // far above any linger or timeout the config below has

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "session_fuzz: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

broker::config fuzz_config(const std::filesystem::path& dir) {
  broker::config c = stompd_test::loopback_config(dir);
  c.limits.frame = {.max_frame_bytes = 4096,
                    .max_header_count = 16,
                    .max_header_line_bytes = 256,
                    .max_body_bytes = 2048};
  c.websocket.max_message_bytes = 4096;
  c.websocket.max_handshake_bytes = 2048;
  c.limits.max_queued_bytes = 64 * 1024;
  c.limits.max_subscriptions_per_connection = 16;
  c.limits.max_queue_messages = 64;
  c.limits.max_queues = 64;
  c.limits.max_journaled_destinations = 256;
  c.limits.max_transactions_per_connection = 4;
  c.limits.max_frames_per_transaction = 16;
  c.limits.max_transaction_bytes = 8 * 1024;
  c.limits.max_pending_store_bytes = 16 * 1024;
  c.limits.connect_timeout = 2s;
  c.limits.write_timeout = 2s;
  c.journal.default_max_messages = 64;
  c.journal.replay_max_messages = 32;
  return c;
}

struct broker_under_test {
  stompd_test::temp_dir dir;
  broker::server server{fuzz_config(dir.path())};
  broker_under_test() { server.start(); }
};

broker_under_test& the_broker() {
  static auto* b = new broker_under_test;  // lives until exit: workers run between inputs
  return *b;
}

// A blocking loopback socket, closed on destruction.
class raw_socket {
 public:
  explicit raw_socket(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    check(fd_ >= 0, "socket()");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "connect()");
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~raw_socket() { ::close(fd_); }
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;

  // Writes all of `bytes`, reading what the broker sends meanwhile (so neither side blocks
  // on a full buffer). False once the broker has closed or reset the connection.
  bool write(std::string_view bytes, std::string& received) {
    while (!bytes.empty()) {
      pollfd p{fd_, POLLIN | POLLOUT, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      if (p.revents & POLLIN) {
        if (!read_some(received)) return false;
      } else if (p.revents & POLLOUT) {
        const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
      } else {
        return false;  // POLLERR / POLLHUP
      }
    }
    return true;
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // Waits up to `timeout` for bytes and reads them; false once the broker has closed.
  bool read_for(std::string& received, std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return true;
    return read_some(received);
  }

  // Reads until the broker closes; aborts the run if it does not within the deadline.
  void read_until_closed(std::string& received) {
    const auto deadline = clock_type::now() + close_deadline;
    while (clock_type::now() < deadline)
      if (!read_for(received, 100ms)) return;
    fail("the broker kept a connection open after the client sent everything");
  }

 private:
  bool read_some(std::string& received) {
    char buf[16 * 1024];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    received.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_;
};

// One client WebSocket frame, masked (with a fixed key: masking is the client's duty, the
// key's value is not).
std::string ws_frame(std::uint8_t opcode, bool fin, std::string_view payload) {
  static constexpr std::uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  std::string out;
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
  const std::size_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(0x80 | n));
  } else {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  }
  out.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
  return out;
}

// The 101 response's end, or false when the broker refused or closed.
bool websocket_handshake(raw_socket& s, std::string& received) {
  static constexpr std::string_view request =
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: v12.stomp, v11.stomp, v10.stomp\r\n\r\n";
  if (!s.write(request, received)) return false;
  const auto deadline = clock_type::now() + close_deadline;
  while (received.find("\r\n\r\n") == std::string::npos) {
    if (clock_type::now() > deadline) fail("no WebSocket handshake response");
    if (!s.read_for(received, 100ms)) return false;
  }
  check(received.starts_with("HTTP/1.1 101"), "the WebSocket handshake was refused");
  received.erase(0, received.find("\r\n\r\n") + 4);
  return true;
}

// Server WebSocket frames (unmasked) → their payloads concatenated; close frames end it.
std::string ws_payloads(std::string_view in) {
  std::string out;
  while (in.size() >= 2) {
    const auto b0 = static_cast<std::uint8_t>(in[0]);
    const auto b1 = static_cast<std::uint8_t>(in[1]);
    check((b1 & 0x80) == 0, "the broker masked a frame it sent");
    std::size_t len = b1 & 0x7f, at = 2;
    if (len == 126) {
      if (in.size() < 4) break;
      len = (static_cast<std::size_t>(static_cast<std::uint8_t>(in[2])) << 8) |
            static_cast<std::uint8_t>(in[3]);
      at = 4;
    } else if (len == 127) {
      if (in.size() < 10) break;
      len = 0;
      for (int i = 2; i < 10; ++i) len = (len << 8) | static_cast<std::uint8_t>(in[i]);
      at = 10;
    }
    if (in.size() < at + len) break;  // cut off by a reset: the broker may abort
    const std::uint8_t opcode = b0 & 0x0f;
    if (opcode == 0x8) break;
    if (opcode <= 0x2) out.append(in.substr(at, len));
    in.remove_prefix(at + len);
  }
  return out;
}

// Everything the broker sent must be STOMP frames (heart-beats between them allowed). The
// last one may be cut short only when the broker reset the connection, which a reset-on-
// linger close does; so only the complete ones are checked.
void check_stomp_output(std::string_view out) {
  stomp::parser p;
  p.set_version(stomp::version::v1_0);  // no escapes: accepts 1.0, 1.1 and 1.2 output alike
  p.feed(out);
  stomp::frame_view f;
  std::error_code ec;
  while (!(ec = p.next(f))) {
  }
  check(ec == stomp::errc::need_more, "the broker sent something that is not a STOMP frame");
}

void check_broker_serves_a_fresh_client() {
  auto c = stompd_test::stomp_client::tcp(the_broker().server.tcp_port());
  c.connect();
  c.subscribe("/topic/fuzz-health", "h");
  auto before = c.send_with_receipt(stomp::frame(
      stomp::command::send, {{"destination", "/topic/fuzz-health"}}, std::string("ping")));
  bool got = false;
  for (const auto& f : before) got = got || f.body == "ping";
  if (!got) {
    auto m = c.receive(5s);
    got = m && m->body == "ping";
  }
  check(got, "a fresh client was not served");
}

constexpr std::string_view connect_frame = "CONNECT\naccept-version:1.0,1.1,1.2\nhost:x\n\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static std::uint64_t runs = 0;
  const int transport = data[0] % 3;
  const std::uint8_t pattern = data[1];
  std::string input(reinterpret_cast<const char*>(data + 2), size - 2);
  if (pattern & 0x40) input.insert(0, std::string(connect_frame) + '\0');

  auto& b = the_broker();
  const bool websocket = transport != 0;
  raw_socket s(websocket ? b.server.websocket_port() : b.server.tcp_port());
  std::string received;
  std::minstd_rand rng(pattern);
  const std::size_t max_chunk = (pattern & 0x3f) + 1u;
  bool open = !websocket || websocket_handshake(s, received);
  std::string_view rest = input;
  while (open && !rest.empty()) {
    const std::size_t n = std::min<std::size_t>(rest.size(), 1 + rng() % max_chunk);
    const std::string_view chunk = rest.substr(0, n);
    rest.remove_prefix(n);
    if (transport == 1) {
      // A message, sometimes as a first fragment plus a continuation.
      const std::uint8_t opcode = (rng() & 1) ? 0x1 : 0x2;
      if (chunk.size() > 1 && (rng() % 4) == 0) {
        const std::size_t cut = chunk.size() / 2;
        open = s.write(ws_frame(opcode, false, chunk.substr(0, cut)), received) &&
               s.write(ws_frame(0x0, true, chunk.substr(cut)), received);
      } else {
        open = s.write(ws_frame(opcode, true, chunk), received);
      }
    } else {
      open = s.write(chunk, received);
    }
  }
  s.shutdown_write();
  s.read_until_closed(received);

  if (transport == 0) check_stomp_output(received);
  if (transport == 1) check_stomp_output(ws_payloads(received));
  if (++runs % 32 == 0) check_broker_serves_a_fresh_client();
  return 0;
}
