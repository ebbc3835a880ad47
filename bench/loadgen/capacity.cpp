// The generator's own receive capacity: an in-process WebSocket server (its own thread) plays
// a broker that coalesces 64 MESSAGE frames per WebSocket message, as stompd does, and the
// generator's ordinary subscriber path (engine::read_loop, one thread) absorbs them.

#include "engine.hpp"
#include "proc_stats.hpp"
#include "scenarios.hpp"
#include "stomp/serializer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <fmt/format.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace bench {

namespace {

constexpr auto as_tuple_awaitable = net::as_tuple(net::use_awaitable);
constexpr std::size_t frames_per_message = 64;

// Reads from `ws` until a whole frame (up to its NUL) has arrived; returns its command.
net::awaitable<std::string> read_frame(websocket::stream<tcp::socket>& ws, std::string& pending) {
  beast::flat_buffer buf;
  for (;;) {
    auto nul = pending.find('\0');
    if (nul != std::string::npos) {
      auto frame = pending.substr(0, nul);
      pending.erase(0, nul + 1);
      while (!pending.empty() && (pending.front() == '\n' || pending.front() == '\r'))
        pending.erase(0, 1);
      co_return std::string(frame_command(frame));
    }
    auto [ec, n] = co_await ws.async_read(buf, as_tuple_awaitable);
    if (ec) co_return std::string();
    pending.append(static_cast<const char*>(buf.data().data()), buf.size());
    buf.consume(buf.size());
  }
}

// One fake broker session: CONNECTED, the subscription's RECEIPT, then MESSAGEs until stop.
net::awaitable<void> push_session(tcp::socket s, std::shared_ptr<const std::string> payload,
                                  std::shared_ptr<std::atomic<bool>> stop) {
  websocket::stream<tcp::socket> ws(std::move(s));
  ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
    res.set(beast::http::field::sec_websocket_protocol, "v12.stomp");
  }));
  auto [ec] = co_await ws.async_accept(as_tuple_awaitable);
  if (ec) co_return;
  std::string pending;
  if (co_await read_frame(ws, pending) != "CONNECT") co_return;
  std::string out;
  const stomp::header_view connected[] = {{"version", "1.2"}, {"heart-beat", "0,0"}};
  stomp::serialize(out, stomp::command::connected, connected, {}, stomp::version::v1_2);
  std::tie(ec, std::ignore) = co_await ws.async_write(net::buffer(out), as_tuple_awaitable);
  if (ec || co_await read_frame(ws, pending) != "SUBSCRIBE") co_return;
  out.clear();
  const stomp::header_view receipt[] = {{"receipt-id", "sub"}};
  stomp::serialize(out, stomp::command::receipt, receipt, {}, stomp::version::v1_2);
  std::tie(ec, std::ignore) = co_await ws.async_write(net::buffer(out), as_tuple_awaitable);
  while (!ec && !stop->load(std::memory_order_relaxed))
    std::tie(ec, std::ignore) = co_await ws.async_write(net::buffer(*payload), as_tuple_awaitable);
}

net::awaitable<void> accept_loop(tcp::acceptor& acceptor,
                                 std::shared_ptr<const std::string> payload,
                                 std::shared_ptr<std::atomic<bool>> stop) {
  for (;;) {
    auto [ec, s] = co_await acceptor.async_accept(as_tuple_awaitable);
    if (ec) co_return;
    s.set_option(tcp::no_delay(true), ec);
    net::co_spawn(acceptor.get_executor(), push_session(std::move(s), payload, stop),
                  net::detached);
  }
}

// 64 MESSAGE frames as stompd would coalesce them: subscription, message-id, destination,
// x-bench-ts (long past, so no latency is recorded), content-length, body.
std::string make_payload(std::size_t body_bytes) {
  std::string out;
  const std::string body(body_bytes, 'x');
  for (std::size_t i = 0; i < frames_per_message; ++i) {
    auto id = fmt::format("1-{}", i);
    const stomp::header_view h[] = {{"subscription", "1"},
                                    {"message-id", id},
                                    {"destination", "/topic/bench.capacity"},
                                    {"x-bench-ts", "1"}};
    stomp::serialize(out, stomp::command::message, h, body, stomp::version::v1_2);
  }
  return out;
}

}  // namespace

report run_capacity(const options& o) {
  // The server side: its own thread and io_context.
  net::io_context server_io{1};
  tcp::acceptor acceptor(server_io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  auto payload = std::make_shared<const std::string>(make_payload(o.body_bytes));
  auto stop = std::make_shared<std::atomic<bool>>(false);
  net::co_spawn(server_io, accept_loop(acceptor, payload, stop), net::detached);
  std::promise<cpu_times> server_cpu;
  std::thread server([&] {
    server_io.run();
    server_cpu.set_value(thread_cpu());
  });

  options local = o;
  target here;
  here.websocket = true;
  here.port = acceptor.local_endpoint().port();
  here.path = "/ws";
  local.targets = {here};
  local.threads = 1;
  report r;
  {
    engine e(local);
    auto& d = e.add_destination("/topic/bench.capacity");
    for (std::size_t i = 0; i < o.subscribers; ++i) {
      auto& c = e.add_client(64 * 1024);
      c.subscribe_to = &d;
    }
    e.open_all(std::chrono::duration<double>(60.0));
    auto begin = now_ns() + static_cast<std::int64_t>(1e9 * o.warmup.count());
    auto end = begin + static_cast<std::int64_t>(1e9 * o.duration.count());
    e.set_window(begin, end);
    e.progress_until(begin, "warmup");
    // The receive thread's own CPU, read on that thread at both edges of the window.
    std::promise<cpu_times> at_begin, at_end;
    net::post(e.clients().front()->worker.io, [&] { at_begin.set_value(thread_cpu()); });
    auto cpu0 = at_begin.get_future().get();
    auto t0 = e.sum();
    e.progress_until(end, "measure");
    net::post(e.clients().front()->worker.io, [&] { at_end.set_value(thread_cpu()); });
    auto cpu1 = at_end.get_future().get();
    auto t1 = e.sum();
    stop->store(true);
    e.stop();

    double secs = o.duration.count();
    auto delivered = t1.delivered_in_window - t0.delivered_in_window;
    double cpu = cpu1.total() - cpu0.total();
    r.add("scenario", "capacity");
    r.add("subscribers", static_cast<std::uint64_t>(o.subscribers));
    r.add("frames_per_websocket_message", static_cast<std::uint64_t>(frames_per_message));
    r.add("frame_bytes", static_cast<std::uint64_t>(payload->size() / frames_per_message));
    r.add("deliveries_per_s", static_cast<double>(delivered) / secs);
    r.add("receive_thread_cpu_pct", 100.0 * cpu / secs);
    r.add("receive_thread_user_s", cpu1.user - cpu0.user);
    r.add("receive_thread_sys_s", cpu1.system - cpu0.system);
    r.add("receive_cpu_us_per_delivery",
          delivered ? cpu * 1e6 / static_cast<double>(delivered) : 0.0);
    r.add("capacity_per_core_deliveries_per_s",
          cpu > 0 ? static_cast<double>(delivered) / cpu : 0.0);
    r.add("error_frames", e.sum().error_frames);
    r.add("errors", static_cast<std::uint64_t>(e.errors()));
  }
  acceptor.close();
  server_io.stop();
  server.join();
  auto scpu = server_cpu.get_future().get();
  r.add("server_thread_cpu_s", scpu.total());
  return r;
}

}  // namespace bench
