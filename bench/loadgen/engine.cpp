#include "engine.hpp"

#include "frame_scanner.hpp"
#include "stomp/serializer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <stdexcept>

namespace net = boost::asio;

namespace bench {

client::client(bench::worker& w, std::size_t buffer_bytes)
    : worker(w), conn(w.io.get_executor(), buffer_bytes), wake(w.io) {}

engine::engine(const options& o) : opt_(o) {
  cred_.login = o.login;
  cred_.passcode = o.passcode;
  cred_.vhost = o.vhost;
  cred_.heart_beat = o.heart_beat;
  for (unsigned i = 0; i < o.threads; ++i) {
    auto w = std::make_unique<worker>();
    w->guard.emplace(w->io.get_executor());
    auto* raw = w.get();
    w->thread = std::thread([raw] { raw->io.run(); });
    workers_.push_back(std::move(w));
  }
}

engine::~engine() { stop(); }

destination& engine::add_destination(std::string name) {
  destinations_.push_back(std::make_unique<destination>());
  destinations_.back()->name = std::move(name);
  return *destinations_.back();
}

client& engine::add_client(std::size_t buffer_bytes) {
  auto& w = *workers_[clients_.size() % workers_.size()];
  clients_.push_back(std::make_unique<client>(w, buffer_bytes));
  return *clients_.back();
}

void engine::spawn(client& c, std::function<net::awaitable<void>(client&)> fn) {
  net::co_spawn(c.worker.io, fn(c), [this](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      record_error(fmt::format("coroutine failed: {}", ex.what()));
    }
  });
}

void engine::set_window(std::int64_t begin_ns, std::int64_t end_ns) noexcept {
  window_end_.store(end_ns);
  window_begin_.store(begin_ns);
}

void engine::record_error(const std::string& what) {
  error_count_.fetch_add(1);
  std::lock_guard lock(error_mutex_);
  if (first_error_.empty()) first_error_ = what;
}

std::string engine::first_error() const {
  std::lock_guard lock(error_mutex_);
  return first_error_;
}

void engine::open_all(std::chrono::duration<double> timeout) {
  std::size_t subscribers = 0;
  for (const auto& c : clients_) subscribers += c->subscribe_to ? 1 : 0;
  // Each worker opens its own clients with its share of the concurrency, each opener going
  // through the list one connection at a time, so a listen backlog never overflows.
  std::size_t per_worker = std::max<std::size_t>(
      1, opt_.connect_concurrency / std::max<std::size_t>(1, workers_.size()));
  for (const auto& w : workers_) {
    std::vector<client*> mine;
    for (const auto& c : clients_)
      if (&c->worker == w.get()) mine.push_back(c.get());
    std::size_t openers = std::min(per_worker, mine.size());
    for (std::size_t i = 0; i < openers; ++i)
      net::co_spawn(w->io, open_some(mine, i, openers), net::detached);
  }
  auto deadline = now_ns() + static_cast<std::int64_t>(timeout.count() * 1e9);
  bool all = progress_until(deadline, "connecting", [&] {
    return opened_.load() + open_failed_.load() == clients_.size() &&
           (open_failed_.load() > 0 || subscribed_.load() == subscribers);
  });
  if (open_failed_.load() > 0)
    throw std::runtime_error(fmt::format("{} of {} connections failed; first: {}",
                                         open_failed_.load(), clients_.size(), first_error()));
  if (!all)
    throw std::runtime_error(fmt::format(
        "timed out after {:.0f} s: {} of {} connections open, {} of {} subscriptions confirmed",
        timeout.count(), opened_.load(), clients_.size(), subscribed_.load(), subscribers));
}

net::awaitable<void> engine::open_some(std::vector<client*> list, std::size_t first,
                                       std::size_t step) {
  for (std::size_t i = first; i < list.size() && !stopping(); i += step) {
    client& c = *list[i];
    if (auto ec = co_await c.conn.open(opt_.targets[i % opt_.targets.size()], cred_)) {
      record_error(c.conn.error_detail());
      open_failed_.fetch_add(1);
      continue;
    }
    c.alive = true;
    net::co_spawn(c.worker.io, read_loop(c), net::detached);
    if (c.subscribe_to) {
      const stomp::header_view h[] = {
          {"id", "1"}, {"destination", c.subscribe_to->name}, {"ack", "auto"}, {"receipt", "sub"}};
      std::string out;
      stomp::serialize(out, stomp::command::subscribe, h, {}, stomp::version::v1_2);
      if (auto ec = co_await c.conn.write(out)) {
        record_error(fmt::format("SUBSCRIBE: {}", ec.message()));
        open_failed_.fetch_add(1);
        continue;
      }
    }
    opened_.fetch_add(1);
  }
}

net::awaitable<void> engine::read_loop(client& c) {
  auto& scanner = c.conn.scanner();
  auto& w = c.worker;
  for (;;) {
    // One clock reading per read: every frame of a read arrived at the same time.
    const std::int64_t now = now_ns();
    const std::int64_t begin = window_begin_.load(std::memory_order_relaxed);
    const std::int64_t end = window_end_.load(std::memory_order_relaxed);
    const bool in_window = now >= begin && now < end;
    std::uint64_t messages = 0;
    scanner.drain([&](std::string_view f) {
      switch (f.empty() ? '\0' : f.front()) {
        case 'M': {  // MESSAGE
          ++messages;
          if (auto ts = frame_header(f, "x-bench-ts")) {
            auto t = parse_u64(*ts);
            if (t && static_cast<std::int64_t>(*t) >= begin && static_cast<std::int64_t>(*t) < end)
              w.delivery_latency.record(
                  static_cast<std::uint64_t>(now - static_cast<std::int64_t>(*t)));
          }
          break;
        }
        case 'R':  // RECEIPT
          on_receipt(c, f, now);
          break;
        case 'E':  // ERROR: the broker closes the connection next
          w.error_frames.add(1);
          record_error(fmt::format("ERROR frame: {}",
                                   frame_header(f, "message").value_or(f.substr(0, 200))));
          break;
        default:
          break;
      }
      return true;
    });
    if (messages != 0) {
      c.received.add(messages);
      w.delivered.add(messages);
      if (in_window) w.delivered_in_window.add(messages);
      if (c.subscribe_to) wake_publishers(*c.subscribe_to);
    }
    if (auto ec = co_await c.conn.read_some()) {
      c.alive = false;
      c.wake.cancel();
      if (!stopping()) {
        w.lost_connections.add(1);
        record_error(fmt::format("connection lost: {}", ec.message()));
      }
      co_return;
    }
  }
}

void engine::wake_publishers(destination& d) {
  // Pairs with the fence in publish_loop's window wait (scenarios.cpp): either the publisher
  // sees our count, or we see its flag.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (client* p : d.publishers) {
    if (!p->window_wait.load(std::memory_order_relaxed) || !p->window_wait.exchange(false))
      continue;
    net::post(p->worker.io, [p] { p->wake.cancel(); });
  }
}

void engine::on_receipt(client& c, std::string_view f, std::int64_t now) {
  auto id = frame_header(f, "receipt-id");
  if (!id || id->empty()) return;
  if (*id == "sub") {
    subscribed_.fetch_add(1);
    return;
  }
  if (*id == "fill") {
    fill_done.store(true);
    return;
  }
  auto& w = c.worker;
  w.receipts.add(1);
  auto ts = parse_u64(id->substr(1));
  if (now >= window_begin() && now < window_end()) w.receipts_in_window.add(1);
  if (ts && static_cast<std::int64_t>(*ts) >= window_begin() &&
      static_cast<std::int64_t>(*ts) < window_end())
    w.receipt_latency.record(static_cast<std::uint64_t>(now - static_cast<std::int64_t>(*ts)));
  if (id->front() == 'p') {
    if (c.inflight > 0) --c.inflight;
    c.wake.cancel();
  } else if (id->front() == 'r') {
    c.replay_count = parse_u64(frame_header(f, "x-replay-count").value_or("")).value_or(0);
    c.replay_done = true;
    c.wake.cancel();
  }
}

engine::totals engine::sum() const {
  totals t;
  for (const auto& w : workers_) {
    t.sent += w->sent.get();
    t.sent_in_window += w->sent_in_window.get();
    t.delivered += w->delivered.get();
    t.delivered_in_window += w->delivered_in_window.get();
    t.receipts += w->receipts.get();
    t.receipts_in_window += w->receipts_in_window.get();
    t.replayed_messages += w->replayed_messages.get();
    t.error_frames += w->error_frames.get();
    t.lost_connections += w->lost_connections.get();
  }
  return t;
}

std::uint64_t engine::expected_deliveries() const {
  std::uint64_t n = 0;
  for (const auto& d : destinations_) n += d->sent.load() * d->subscribers.size();
  return n;
}

bool engine::progress_until(std::int64_t until_ns, std::string_view phase,
                            const std::function<bool()>& done) {
  auto last = sum();
  std::int64_t started = now_ns(), last_print = started;
  for (;;) {
    if (done && done()) return true;
    std::int64_t now = now_ns();
    if (now >= until_ns) return !done;
    if (opt_.progress && now - last_print >= 1'000'000'000) {
      auto t = sum();
      double secs = static_cast<double>(now - last_print) / 1e9;
      auto rate = [&](std::uint64_t a, std::uint64_t b) {
        return static_cast<double>(a - b) / secs;
      };
      std::size_t alive = 0;
      for (const auto& c : clients_) alive += c->alive ? 1 : 0;
      std::fprintf(stderr,
                   "[%s %5.1fs] conns %zu sent %.0f/s delivered %.0f/s receipts %.0f/s "
                   "errors %zu lost %llu\n",
                   std::string(phase).c_str(), static_cast<double>(now - started) / 1e9, alive,
                   rate(t.sent, last.sent), rate(t.delivered, last.delivered),
                   rate(t.receipts, last.receipts), errors(),
                   static_cast<unsigned long long>(t.lost_connections));
      last = t;
      last_print = now;
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::clamp<std::int64_t>((until_ns - now) / 1'000'000, 1, 50)));
  }
}

void engine::stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  for (const auto& c : clients_) {
    client* raw = c.get();
    net::post(c->worker.io, [raw] {
      raw->conn.close();
      raw->wake.cancel();
    });
  }
  for (const auto& w : workers_) w->guard.reset();
  // Handlers finish once their sockets are closed; whatever still runs after 3 s is cut.
  auto deadline = now_ns() + 3'000'000'000;
  for (const auto& w : workers_) {
    while (!w->io.stopped() && now_ns() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    w->io.stop();
    if (w->thread.joinable()) w->thread.join();
  }
}

histogram engine::delivery_latency() const {
  histogram h;
  for (const auto& w : workers_) h.merge(w->delivery_latency);
  return h;
}

histogram engine::send_lag() const {
  histogram h;
  for (const auto& w : workers_) h.merge(w->send_lag);
  return h;
}

histogram engine::receipt_latency() const {
  histogram h;
  for (const auto& w : workers_) h.merge(w->receipt_latency);
  return h;
}

}  // namespace bench
