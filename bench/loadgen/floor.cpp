// The floor under any broker's per-delivery cost: small write() calls over a loopback TCP
// connection, with a reader draining the other end, and what each costs in CPU.

#include "proc_stats.hpp"
#include "scenarios.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace bench {

namespace {

// Owns a file descriptor.
class fd_guard {
 public:
  explicit fd_guard(int fd) noexcept : fd_(fd) {}
  ~fd_guard() {
    if (fd_ >= 0) ::close(fd_);
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  int get() const noexcept { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

struct floor_result {
  double writer_cpu_s = 0;
  double reader_cpu_s = 0;
  double wall_s = 0;
};

// `writes` write() calls of `frames_per_write` frames of `frame_bytes` each.
floor_result measure(std::size_t writes, std::size_t frame_bytes, std::size_t frames_per_write) {
  fd_guard listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (listener.get() < 0 || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listener.get(), 1) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("floor: cannot listen on 127.0.0.1");

  floor_result r;
  std::thread reader([&] {
    fd_guard conn(::accept(listener.get(), nullptr, nullptr));
    if (conn.get() < 0) return;
    auto before = thread_cpu();
    std::vector<char> buf(64 * 1024);
    while (::read(conn.get(), buf.data(), buf.size()) > 0) {
    }
    r.reader_cpu_s = thread_cpu().total() - before.total();
  });

  fd_guard out(::socket(AF_INET, SOCK_STREAM, 0));
  int one = 1;
  ::setsockopt(out.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(out.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    listener.reset();
    reader.join();
    throw std::runtime_error("floor: cannot connect to 127.0.0.1");
  }
  std::string payload(frame_bytes * frames_per_write, 'x');
  auto before = thread_cpu();
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < writes; ++i) {
    std::size_t done = 0;
    while (done < payload.size()) {
      auto n = ::write(out.get(), payload.data() + done, payload.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
  }
  r.writer_cpu_s = thread_cpu().total() - before.total();
  out.reset();
  reader.join();
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace

report run_floor(const options& o) {
  // A MESSAGE as stompd sends it: about 90 bytes of headers before the body.
  const std::size_t frame_bytes = o.body_bytes + 90;
  const std::size_t writes = o.count;
  report r;
  r.add("scenario", "floor");
  r.add("frame_bytes", static_cast<std::uint64_t>(frame_bytes));
  auto one = measure(writes, frame_bytes, 1);
  auto per = [](double s, std::size_t n) { return s * 1e6 / static_cast<double>(n); };
  r.add("writes", static_cast<std::uint64_t>(writes));
  r.add("writes_per_s", static_cast<double>(writes) / one.wall_s);
  r.add("writer_cpu_us_per_write", per(one.writer_cpu_s, writes));
  r.add("reader_cpu_us_per_write", per(one.reader_cpu_s, writes));
  r.add("total_cpu_us_per_write", per(one.writer_cpu_s + one.reader_cpu_s, writes));
  // The same frames 64 to a write, as a broker that coalesces sends them.
  constexpr std::size_t coalesced = 64;
  auto many = measure(writes / coalesced, frame_bytes, coalesced);
  std::size_t frames = writes / coalesced * coalesced;
  r.add("coalesced_frames_per_write", static_cast<std::uint64_t>(coalesced));
  r.add("coalesced_writer_cpu_us_per_frame", per(many.writer_cpu_s, frames));
  r.add("coalesced_reader_cpu_us_per_frame", per(many.reader_cpu_s, frames));
  r.add("coalesced_frames_per_s", static_cast<double>(frames) / many.wall_s);
  return r;
}

}  // namespace bench
