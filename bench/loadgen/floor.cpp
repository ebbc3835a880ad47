// The floor under any broker's per-delivery cost: small write() calls over loopback TCP, with
// a reader draining the other end, and what each costs in CPU. Three shapes: a tight loop of
// writes on one connection, the same frames 64 to a write, and the fan-out pattern at a fixed
// rate (one frame to each of S connections per tick, a reader waiting in epoll), which is
// what a broker delivering a message to S subscribers can do at best with one write each.

#include "proc_stats.hpp"
#include "scenarios.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
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
  fd_guard(fd_guard&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  fd_guard& operator=(fd_guard&&) = delete;
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

// A listening socket on 127.0.0.1 with a kernel-chosen port, and that address.
fd_guard listen_loopback(sockaddr_in& addr, int backlog) {
  fd_guard listener(::socket(AF_INET, SOCK_STREAM, 0));
  addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener.get() < 0 || ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listener.get(), backlog) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("floor: cannot listen on 127.0.0.1");
  return listener;
}

fd_guard connect_loopback(const sockaddr_in& addr) {
  fd_guard out(::socket(AF_INET, SOCK_STREAM, 0));
  int one = 1;
  ::setsockopt(out.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(out.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("floor: cannot connect to 127.0.0.1");
  return out;
}

struct floor_result {
  double writer_cpu_s = 0;
  double reader_cpu_s = 0;
  double wall_s = 0;
};

// `writes` write() calls of `frames_per_write` frames of `frame_bytes` each.
floor_result measure(std::size_t writes, std::size_t frame_bytes, std::size_t frames_per_write) {
  sockaddr_in addr;
  fd_guard listener = listen_loopback(addr, 1);
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
  std::optional<fd_guard> out;
  try {
    out.emplace(connect_loopback(addr));
  } catch (...) {
    listener.reset();
    reader.join();
    throw;
  }
  std::string payload(frame_bytes * frames_per_write, 'x');
  auto before = thread_cpu();
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < writes; ++i) {
    std::size_t done = 0;
    while (done < payload.size()) {
      auto n = ::write(out->get(), payload.data() + done, payload.size() - done);
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

// Fan-out at a fixed rate: every tick, one frame to each of `connections` sockets; a reader
// thread waits in epoll and reads whatever is ready, as a subscriber's client does. Each
// write finds its connection idle, so it pays the whole loopback path (segment, receive,
// ACK, waking the reader) alone: the floor of a delivery that is its own write.
floor_result measure_paced(std::size_t connections, double ticks_per_s,
                           std::chrono::duration<double> duration, std::size_t frame_bytes) {
  sockaddr_in addr;
  fd_guard listener = listen_loopback(addr, static_cast<int>(connections));
  std::vector<fd_guard> outs, ins;
  for (std::size_t i = 0; i < connections; ++i) {
    outs.push_back(connect_loopback(addr));
    ins.emplace_back(::accept(listener.get(), nullptr, nullptr));
    if (ins.back().get() < 0) throw std::runtime_error("floor: accept failed");
  }
  fd_guard ep(::epoll_create1(0));
  for (std::size_t i = 0; i < connections; ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, ins[i].get(), &ev) != 0)
      throw std::runtime_error("floor: epoll_ctl failed");
  }
  const auto ticks = static_cast<std::size_t>(duration.count() * ticks_per_s);
  const std::size_t expected = ticks * connections * frame_bytes;
  floor_result r;
  std::thread reader([&] {
    auto before = thread_cpu();
    std::vector<char> buf(64 * 1024);
    std::vector<epoll_event> events(connections);
    std::size_t got = 0;
    while (got < expected) {
      int n = ::epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), 1000);
      if (n <= 0) break;  // a second with nothing: the writer stopped early
      for (int i = 0; i < n; ++i) {
        auto k = ::read(ins[events[i].data.u64].get(), buf.data(), buf.size());
        if (k > 0) got += static_cast<std::size_t>(k);
      }
    }
    r.reader_cpu_s = thread_cpu().total() - before.total();
  });
  std::string frame(frame_bytes, 'x');
  const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(1.0 / ticks_per_s));
  auto before = thread_cpu();
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t t = 0; t < ticks; ++t) {
    std::this_thread::sleep_until(t0 + period * static_cast<long>(t));
    for (auto& out : outs)
      if (::write(out.get(), frame.data(), frame.size()) <= 0) break;
  }
  r.writer_cpu_s = thread_cpu().total() - before.total();
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
  // The fan-out pattern at a fixed rate: --subscribers connections, --rate ticks/s (default
  // 100, i.e. 10,000 writes/s to 100 connections) for --duration seconds.
  const double ticks_per_s = o.rate > 0 ? o.rate : 100;
  auto paced = measure_paced(o.subscribers, ticks_per_s, o.duration, frame_bytes);
  const auto paced_writes =
      static_cast<std::size_t>(o.duration.count() * ticks_per_s) * o.subscribers;
  r.add("paced_connections", static_cast<std::uint64_t>(o.subscribers));
  r.add("paced_writes_per_s", static_cast<double>(paced_writes) / paced.wall_s);
  r.add("paced_writer_cpu_us_per_write", per(paced.writer_cpu_s, paced_writes));
  r.add("paced_reader_cpu_us_per_write", per(paced.reader_cpu_s, paced_writes));
  return r;
}

}  // namespace bench
