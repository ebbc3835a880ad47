#include "scenarios.hpp"

#include "engine.hpp"
#include "proc_stats.hpp"
#include "stomp/serializer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <stdexcept>

namespace net = boost::asio;

namespace bench {

namespace {

constexpr auto as_tuple_awaitable = net::as_tuple(net::use_awaitable);
constexpr std::size_t traffic_buffer_bytes = 64 * 1024;
constexpr std::size_t idle_buffer_bytes = 2 * 1024;  // heart-beats and the odd ERROR

std::int64_t seconds_ns(double s) { return static_cast<std::int64_t>(s * 1e9); }

steady::time_point at_ns(std::int64_t ns) {
  return steady::time_point(
      std::chrono::duration_cast<steady::duration>(std::chrono::nanoseconds(ns)));
}

// Summed over --broker-pid's processes; nullopt without any, or when one can't be read.
std::optional<double> broker_cpu_seconds(const options& o) {
  if (o.broker_pids.empty()) return std::nullopt;
  double total = 0;
  for (int pid : o.broker_pids) {
    auto s = process_cpu_seconds(pid);
    if (!s) return std::nullopt;
    total += *s;
  }
  return total;
}

std::optional<std::uint64_t> broker_rss_kib(const options& o) {
  if (o.broker_pids.empty()) return std::nullopt;
  std::uint64_t total = 0;
  for (int pid : o.broker_pids) {
    auto kib = process_rss_kib(pid);
    if (!kib) return std::nullopt;
    total += *kib;
  }
  return total;
}

// The broker's CPU and this process's, sampled together at the edges of the window.
struct cpu_sample {
  std::optional<double> broker_s;
  cpu_times self;
  std::optional<double> machine_s;
  static cpu_sample take(const options& o) {
    return {broker_cpu_seconds(o), self_cpu(), machine_busy_seconds()};
  }
};

void add_cpu(report& r, const options& o, const cpu_sample& a, const cpu_sample& b, double seconds,
             std::uint64_t units, const char* unit) {
  if (a.broker_s && b.broker_s) {
    double cpu = *b.broker_s - *a.broker_s;
    r.add("broker_cpu_s", cpu);
    r.add("broker_cpu_pct", 100.0 * cpu / seconds);
    if (units > 0)
      r.add(fmt::format("broker_cpu_us_per_{}", unit), cpu * 1e6 / static_cast<double>(units));
    if (auto rss = broker_rss_kib(o)) r.add("broker_rss_kib", *rss);
  }
  double user = b.self.user - a.self.user, sys = b.self.system - a.self.system;
  r.add("generator_cpu_s", user + sys);
  r.add("generator_user_s", user);
  r.add("generator_sys_s", sys);
  r.add("generator_cpu_pct", 100.0 * (user + sys) / seconds);
  if (units > 0)
    r.add(fmt::format("generator_cpu_us_per_{}", unit),
          (user + sys) * 1e6 / static_cast<double>(units));
  // Everything else the machine ran meanwhile (other processes, the kernel's own threads),
  // in % of one core: high values mean the figures above were measured on a busy machine.
  if (a.machine_s && b.machine_s) {
    double other = *b.machine_s - *a.machine_s - (user + sys);
    if (a.broker_s && b.broker_s) other -= *b.broker_s - *a.broker_s;
    r.add("other_cpu_pct", std::max(0.0, 100.0 * other / seconds));
  }
}

void add_errors(report& r, const engine& e) {
  auto t = e.sum();
  r.add("error_frames", t.error_frames);
  r.add("lost_connections", t.lost_connections);
  r.add("errors", static_cast<std::uint64_t>(e.errors()));
  if (auto first = e.first_error(); !first.empty()) r.add("first_error", first);
}

void add_header(report& r, const options& o, const engine& e) {
  r.add("scenario", std::string(to_string(o.scenario)));
  std::string urls;
  for (const auto& t : o.targets) {
    if (!urls.empty()) urls += ',';
    urls += t.url();
  }
  r.add("target", urls);
  if (!e.clients().empty() && !e.clients().front()->conn.server().empty())
    r.add("server", e.clients().front()->conn.server());
  if (!o.label.empty()) r.add("label", o.label);
  r.add("threads", static_cast<std::uint64_t>(o.threads));
}

// How a publisher paces itself.
struct publish_plan {
  double rate = 0;            // messages/s for this publisher; 0: as fast as allowed
  std::int64_t start_ns = 0;  // first scheduled send (plus the publisher's offset)
  std::int64_t end_ns = 0;    // nothing is scheduled at or after this
  std::size_t batch = 64;     // most frames per write
  std::size_t body_bytes = 128;
  std::size_t window = 0;    // unthrottled: most messages ahead of the slowest subscriber
  bool receipts = false;     // every SEND asks for a receipt "p<ts>"
  std::size_t inflight = 0;  // unthrottled with receipts: most receipts awaited
  std::vector<std::string> extra_headers;  // "name:value"
};

// Sends SENDs on a constant-rate schedule (each stamped x-bench-ts with its *scheduled* time,
// so a broker that slows the publisher down shows as latency), or unthrottled (stamped with
// the send time), bounded by a closed-loop window or receipts in flight when asked.
net::awaitable<void> publish_loop(engine& e, client& c, publish_plan plan, std::int64_t offset_ns) {
  auto& w = c.worker;
  auto& d = *c.publish_to;
  net::steady_timer timer(co_await net::this_coro::executor);
  const std::string body(plan.body_bytes, 'x');
  const std::int64_t interval = plan.rate > 0 ? static_cast<std::int64_t>(1e9 / plan.rate) : 0;
  const std::int64_t window_begin = e.window_begin(), window_end = e.window_end();
  std::vector<stomp::header_view> headers{{"destination", d.name}, {"x-bench-ts", ""}};
  if (plan.receipts) headers.push_back({"receipt", ""});
  for (const auto& h : plan.extra_headers) {
    auto colon = h.find(':');
    headers.push_back(
        {std::string_view(h).substr(0, colon), std::string_view(h).substr(colon + 1)});
  }
  char ts_text[24];
  char receipt_text[25];
  std::string out;
  out.reserve(plan.batch * (plan.body_bytes + 128));
  std::int64_t next = plan.start_ns + offset_ns;
  while (!e.stopping() && c.alive) {
    std::int64_t now = now_ns();
    if (now >= plan.end_ns) break;
    if (interval != 0 && next > now) {
      timer.expires_at(at_ns(next));
      co_await timer.async_wait(as_tuple_awaitable);
      continue;
    }
    std::size_t allowance = plan.batch;
    if (interval == 0 && plan.receipts) {
      if (c.inflight >= plan.inflight) {
        c.wake.expires_at(steady::time_point::max());  // the reader cancels it on a receipt
        co_await c.wake.async_wait(as_tuple_awaitable);
        continue;
      }
      allowance = std::min(allowance, plan.inflight - c.inflight);
    }
    if (interval == 0 && plan.window != 0 && !d.subscribers.empty()) {
      auto ahead = [&d] {
        std::uint64_t slowest = UINT64_MAX;
        for (const auto* s : d.subscribers) slowest = std::min(slowest, s->received.get());
        std::uint64_t sent = d.sent.load(std::memory_order_relaxed);
        return sent - std::min(sent, slowest);
      };
      const std::uint64_t now_ahead = ahead();
      if (now_ahead >= plan.window) {
        // Sleeps until a subscriber's reader wakes us: flag first, then look again, so a
        // delivery between the two is not missed (see engine::wake_publishers). The timeout
        // only bounds the wait should the connection stall.
        c.window_wait.store(true);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (ahead() >= plan.window) {
          c.wake.expires_after(std::chrono::milliseconds(100));
          co_await c.wake.async_wait(as_tuple_awaitable);
        }
        c.window_wait.store(false);
        continue;
      }
      allowance = std::min<std::uint64_t>(allowance, plan.window - now_ahead);
    }
    out.clear();
    std::size_t k = 0, in_window = 0;
    while (k < allowance) {
      std::int64_t ts = interval != 0 ? next : now;
      if (interval != 0 && (next > now || next >= plan.end_ns)) break;
      auto [end, ec] = std::to_chars(ts_text, ts_text + sizeof ts_text, ts);
      headers[1].value = std::string_view(ts_text, static_cast<std::size_t>(end - ts_text));
      if (plan.receipts) {
        receipt_text[0] = 'p';
        std::copy(ts_text, end, receipt_text + 1);
        headers[2].value = std::string_view(receipt_text, headers[1].value.size() + 1);
      }
      stomp::serialize(out, stomp::command::send, headers, body, stomp::version::v1_2);
      ++k;
      if (ts >= window_begin && ts < window_end) ++in_window;
      if (interval != 0) next += interval;
    }
    if (k == 0) {
      if (interval != 0 && next >= plan.end_ns) break;
      continue;
    }
    // How late the first frame of this write is against its schedule: the generator's own
    // lag (timer slack, a busy core) or the broker refusing to read, which TCP makes us wait.
    if (interval != 0 && now >= window_begin && now < window_end)
      w.send_lag.record(
          static_cast<std::uint64_t>(now - (next - interval * static_cast<std::int64_t>(k))));
    d.sent.fetch_add(k, std::memory_order_relaxed);
    if (plan.receipts) c.inflight += k;
    if (auto ec = co_await c.conn.write(out)) {
      if (!e.stopping()) e.record_error(fmt::format("SEND: {}", ec.message()));
      break;
    }
    w.sent.add(k);
    w.sent_in_window.add(in_window);
  }
  e.publishers_done.fetch_add(1);
}

}  // namespace

report run_traffic(const options& o) {
  engine e(o);
  std::vector<client*> publishers;
  if (o.scenario == scenario::fanout || o.scenario == scenario::journal) {
    bool fanout = o.scenario == scenario::fanout;
    auto& d = e.add_destination(!o.destination.empty() ? o.destination
                                : fanout               ? "/topic/bench.fanout"
                                                       : "/topic/bench.journal");
    // Publishers first, so round-robin spreads them over the workers.
    for (std::size_t i = 0; i < o.publishers; ++i) {
      auto& c = e.add_client(traffic_buffer_bytes);
      c.publish_to = &d;
      d.publishers.push_back(&c);
      publishers.push_back(&c);
    }
    for (std::size_t i = 0; fanout && i < o.subscribers; ++i) {
      auto& c = e.add_client(traffic_buffer_bytes);
      c.subscribe_to = &d;
      d.subscribers.push_back(&c);
    }
  } else {
    std::string prefix = !o.destination.empty() ? o.destination : "/topic/bench.room";
    for (std::size_t r = 0; r < o.rooms; ++r) {
      auto& d = e.add_destination(fmt::format("{}.{}", prefix, r));
      for (std::size_t k = 0; k < o.members; ++k) {
        // Small buffers: a member of a small room receives little at a time.
        auto& c = e.add_client(16 * 1024);
        c.publish_to = c.subscribe_to = &d;
        d.publishers.push_back(&c);
        d.subscribers.push_back(&c);
        publishers.push_back(&c);
      }
    }
  }
  if (publishers.empty()) throw std::runtime_error("no publishers: nothing to measure");
  e.open_all(std::chrono::duration<double>(60.0 + static_cast<double>(e.clients().size()) / 200));

  publish_plan plan;
  plan.rate = o.total_rate > 0 ? o.total_rate / static_cast<double>(publishers.size()) : o.rate;
  plan.start_ns = now_ns() + 100'000'000;
  const std::int64_t window_begin = plan.start_ns + seconds_ns(o.warmup.count());
  const std::int64_t window_end = window_begin + seconds_ns(o.duration.count());
  plan.end_ns = window_end;
  plan.batch = o.batch;
  plan.body_bytes = o.body_bytes;
  plan.window = o.window;
  plan.receipts = o.scenario == scenario::journal;
  plan.inflight = std::max<std::size_t>(1, o.inflight);
  plan.extra_headers = o.send_headers;
  e.set_window(window_begin, window_end);
  // Publishers are spread evenly over one interval so a thousand rooms don't send in bursts.
  const double interval_ns = plan.rate > 0 ? 1e9 / plan.rate : 0;
  for (std::size_t i = 0; i < publishers.size(); ++i) {
    auto offset = static_cast<std::int64_t>(interval_ns * static_cast<double>(i) /
                                            static_cast<double>(publishers.size()));
    e.spawn(*publishers[i],
            [&e, plan, offset](client& c) { return publish_loop(e, c, plan, offset); });
  }

  e.progress_until(window_begin, "warmup");
  auto cpu0 = cpu_sample::take(o);
  auto t0 = e.sum();
  e.progress_until(window_end, "measure");
  auto cpu1 = cpu_sample::take(o);
  auto t1 = e.sum();

  // Drain: until every owed delivery (and receipt) arrived, nothing arrived for 2 s, or
  // --drain passed.
  const bool journal = o.scenario == scenario::journal;
  std::uint64_t last_seen = 0;
  std::int64_t last_change = now_ns();
  e.progress_until(window_end + seconds_ns(o.drain.count()), "drain", [&] {
    auto t = e.sum();
    if (e.publishers_done.load() < publishers.size()) return false;
    std::uint64_t seen = t.delivered + t.receipts;
    if (seen != last_seen) {
      last_seen = seen;
      last_change = now_ns();
    }
    bool complete = journal ? t.receipts >= t.sent : t.delivered >= e.expected_deliveries();
    return complete || now_ns() - last_change > 2'000'000'000;
  });
  auto final_totals = e.sum();
  std::uint64_t expected = e.expected_deliveries();
  std::size_t subscribers_with_loss = 0;
  for (const auto& d : e.destinations())
    for (const auto* s : d->subscribers)
      if (s->received.get() < d->sent.load()) ++subscribers_with_loss;
  e.stop();

  const double secs = o.duration.count();
  report r;
  add_header(r, o, e);
  if (o.scenario == scenario::rooms) {
    r.add("rooms", static_cast<std::uint64_t>(o.rooms));
    r.add("members", static_cast<std::uint64_t>(o.members));
  } else {
    r.add("publishers", static_cast<std::uint64_t>(o.publishers));
    if (!journal) r.add("subscribers", static_cast<std::uint64_t>(o.subscribers));
  }
  r.add("connections", static_cast<std::uint64_t>(e.clients().size()));
  r.add("body_bytes", static_cast<std::uint64_t>(o.body_bytes));
  r.add("rate_per_publisher", plan.rate);
  if (plan.rate == 0)
    r.add("pacing", journal    ? fmt::format("unthrottled, {} receipts in flight", plan.inflight)
                    : o.window ? fmt::format("closed loop, window {}", o.window)
                               : std::string("unthrottled, open loop"));
  r.add("warmup_s", o.warmup.count());
  r.add("duration_s", secs);
  r.add("sent", final_totals.sent);
  r.add("messages_per_s", static_cast<double>(t1.sent - t0.sent) / secs);
  if (!journal) {
    auto delivered = t1.delivered_in_window - t0.delivered_in_window;
    r.add("deliveries_per_s", static_cast<double>(delivered) / secs);
    r.add("expected_deliveries", expected);
    r.add("received_deliveries", final_totals.delivered);
    r.add("loss",
          static_cast<std::int64_t>(expected) - static_cast<std::int64_t>(final_totals.delivered));
    r.add("loss_pct", expected ? 100.0 *
                                     (static_cast<double>(expected) -
                                      static_cast<double>(final_totals.delivered)) /
                                     static_cast<double>(expected)
                               : 0.0);
    r.add("subscribers_with_loss", static_cast<std::uint64_t>(subscribers_with_loss));
    r.add("latency_us", summarize(e.delivery_latency()));
    if (plan.rate > 0) r.add("send_lag_us", summarize(e.send_lag()));
    add_cpu(r, o, cpu0, cpu1, secs, delivered, "delivery");
  } else {
    auto receipted = t1.receipts_in_window - t0.receipts_in_window;
    r.add("receipted_per_s", static_cast<double>(receipted) / secs);
    r.add("receipts", final_totals.receipts);
    r.add("unreceipted", static_cast<std::int64_t>(final_totals.sent) -
                             static_cast<std::int64_t>(final_totals.receipts));
    r.add("receipt_latency_us", summarize(e.receipt_latency()));
    if (plan.rate > 0) r.add("send_lag_us", summarize(e.send_lag()));
    add_cpu(r, o, cpu0, cpu1, secs, receipted, "message");
  }
  add_errors(r, e);
  return r;
}

namespace {

// Sends an EOL every `every` (STOMP 1.2, "Heart-beating") until the run stops.
net::awaitable<void> heartbeat_loop(engine& e, client& c, std::chrono::milliseconds every) {
  while (!e.stopping() && c.alive) {
    c.wake.expires_after(every);
    co_await c.wake.async_wait(as_tuple_awaitable);
    if (e.stopping() || !c.alive) break;
    if (auto ec = co_await c.conn.write("\n")) break;
  }
}

// "cx,cy" to a pair of milliseconds; 0,0 when malformed.
std::pair<std::uint64_t, std::uint64_t> parse_heart_beat(std::string_view hb) {
  auto comma = hb.find(',');
  if (comma == std::string_view::npos) return {0, 0};
  return {parse_u64(hb.substr(0, comma)).value_or(0), parse_u64(hb.substr(comma + 1)).value_or(0)};
}

}  // namespace

report run_idle(const options& o) {
  auto fd_limit = raise_open_file_limit();
  if (o.connections + 64 > fd_limit)
    throw std::runtime_error(
        fmt::format("{} connections need more file descriptors than the limit of {} (ulimit -Hn)",
                    o.connections, fd_limit));
  engine e(o);
  std::optional<std::uint64_t> rss_before;
  rss_before = broker_rss_kib(o);
  auto self_rss_before = process_rss_kib(static_cast<int>(getpid()));
  for (std::size_t i = 0; i < o.connections; ++i) e.add_client(idle_buffer_bytes);
  auto started = now_ns();
  e.open_all(std::chrono::duration<double>(120.0 + static_cast<double>(o.connections) / 100));
  double connect_s = static_cast<double>(now_ns() - started) / 1e9;

  // Heart-beats as negotiated: we send every max(cx, sy) when both are non-zero.
  auto [cx, cy] = parse_heart_beat(o.heart_beat);
  for (const auto& c : e.clients()) {
    auto [sx, sy] = parse_heart_beat(c->conn.server_heart_beat());
    if (cx == 0 || sy == 0) continue;
    std::chrono::milliseconds every(std::max(cx, sy));
    e.spawn(*c, [&e, every](client& cl) { return heartbeat_loop(e, cl, every); });
  }
  (void)cy;
  e.progress_until(now_ns() + 1'000'000'000, "settle");
  auto cpu0 = cpu_sample::take(o);
  std::optional<std::uint64_t> rss_connected;
  rss_connected = broker_rss_kib(o);
  e.progress_until(now_ns() + seconds_ns(o.hold.count()), "hold");
  auto cpu1 = cpu_sample::take(o);
  std::optional<std::uint64_t> rss_end;
  rss_end = broker_rss_kib(o);
  auto self_rss_end = process_rss_kib(static_cast<int>(getpid()));
  std::size_t alive = 0;
  for (const auto& c : e.clients()) alive += c->alive ? 1 : 0;
  e.stop();

  report r;
  add_header(r, o, e);
  r.add("connections", static_cast<std::uint64_t>(o.connections));
  r.add("heart_beat", o.heart_beat);
  r.add("connect_s", connect_s);
  r.add("connections_per_s", static_cast<double>(o.connections) / connect_s);
  r.add("hold_s", o.hold.count());
  r.add("alive_at_end", static_cast<std::uint64_t>(alive));
  if (rss_before && rss_connected && rss_end) {
    r.add("broker_rss_before_kib", *rss_before);
    r.add("broker_rss_connected_kib", *rss_connected);
    r.add("broker_rss_end_kib", *rss_end);
    r.add("broker_rss_per_connection_kib",
          (static_cast<double>(*rss_end) - static_cast<double>(*rss_before)) /
              static_cast<double>(o.connections));
  }
  if (self_rss_before && self_rss_end)
    r.add("generator_rss_per_connection_kib",
          (static_cast<double>(*self_rss_end) - static_cast<double>(*self_rss_before)) /
              static_cast<double>(o.connections));
  add_cpu(r, o, cpu0, cpu1, o.hold.count(), 0, "");
  add_errors(r, e);
  return r;
}

namespace {

// Stores the history to replay: `count` SENDs, the last with receipt "fill", which the
// journal answers only once all of them are committed.
net::awaitable<void> fill_loop(engine& e, client& c, std::size_t count, std::size_t body_bytes,
                               std::size_t batch) {
  const std::string body(body_bytes, 'x');
  std::string out;
  char ts_text[24];
  for (std::size_t sent = 0; sent < count && !e.stopping();) {
    out.clear();
    for (std::size_t k = 0; k < batch && sent < count; ++k, ++sent) {
      auto [end, ec] = std::to_chars(ts_text, ts_text + sizeof ts_text, now_ns());
      std::vector<stomp::header_view> h{
          {"destination", c.publish_to->name},
          {"x-bench-ts", std::string_view(ts_text, static_cast<std::size_t>(end - ts_text))}};
      if (sent + 1 == count) h.push_back({"receipt", "fill"});
      stomp::serialize(out, stomp::command::send, h, body, stomp::version::v1_2);
    }
    if (auto ec = co_await c.conn.write(out)) {
      e.record_error(fmt::format("SEND: {}", ec.message()));
      co_return;
    }
  }
}

// SUBSCRIBE with x-replay:last:N and a receipt "r<ts>", wait for the RECEIPT (the reader
// records its latency), UNSUBSCRIBE; `count` times or until `end_ns`.
net::awaitable<void> replay_loop(engine& e, client& c, std::string destination, std::size_t n,
                                 std::size_t count, std::int64_t end_ns) {
  std::string out;
  std::string replay = fmt::format("last:{}", n);
  for (std::size_t i = 0; i < count && !e.stopping() && c.alive && now_ns() < end_ns; ++i) {
    auto id = fmt::format("rp{}", i);
    auto receipt = fmt::format("r{}", now_ns());
    const stomp::header_view sub[] = {{"id", id},
                                      {"destination", destination},
                                      {"ack", "auto"},
                                      {"x-replay", replay},
                                      {"receipt", receipt}};
    out.clear();
    stomp::serialize(out, stomp::command::subscribe, sub, {}, stomp::version::v1_2);
    c.replay_done = false;
    if (auto ec = co_await c.conn.write(out)) break;
    auto deadline = steady::now() + std::chrono::seconds(30);
    while (!c.replay_done && c.alive && !e.stopping() && steady::now() < deadline) {
      c.wake.expires_at(deadline);
      co_await c.wake.async_wait(as_tuple_awaitable);
    }
    if (!c.replay_done) {
      if (!e.stopping()) e.record_error("no RECEIPT for a replay within 30 s");
      break;
    }
    c.worker.replayed_messages.add(c.replay_count);
    const stomp::header_view unsub[] = {{"id", id}};
    out.clear();
    stomp::serialize(out, stomp::command::unsubscribe, unsub, {}, stomp::version::v1_2);
    if (auto ec = co_await c.conn.write(out)) break;
  }
  e.publishers_done.fetch_add(1);
}

}  // namespace

report run_replay(const options& o) {
  engine e(o);
  auto name = !o.destination.empty()
                  ? o.destination
                  : fmt::format("/topic/bench.replay.{}.{}", getpid(), std::time(nullptr));
  auto& d = e.add_destination(name);
  auto& filler = e.add_client(traffic_buffer_bytes);
  filler.publish_to = &d;
  std::vector<client*> replayers;
  for (std::size_t i = 0; i < o.connections; ++i)
    replayers.push_back(&e.add_client(traffic_buffer_bytes));
  e.open_all(std::chrono::duration<double>(60.0));

  auto n = o.replay_messages;
  e.spawn(filler, [&e, n, &o](client& c) { return fill_loop(e, c, n, o.body_bytes, o.batch); });
  if (!e.progress_until(now_ns() + 120'000'000'000, "fill", [&] { return e.fill_done.load(); }))
    throw std::runtime_error(
        fmt::format("history of {} messages not stored within 120 s: {}", n, e.first_error()));

  auto begin = now_ns();
  auto end = begin + seconds_ns(o.duration.count());
  e.set_window(begin, INT64_MAX);
  auto cpu0 = cpu_sample::take(o);
  for (auto* c : replayers)
    e.spawn(*c, [&e, name, n, &o, end](client& cl) {
      return replay_loop(e, cl, name, n, o.count, end);
    });
  e.progress_until(end + 31'000'000'000, "replay",
                   [&] { return e.publishers_done.load() == replayers.size(); });
  auto secs = static_cast<double>(now_ns() - begin) / 1e9;
  auto cpu1 = cpu_sample::take(o);
  auto t = e.sum();
  e.stop();

  report r;
  add_header(r, o, e);
  r.add("destination", name);
  r.add("history_messages", static_cast<std::uint64_t>(n));
  r.add("body_bytes", static_cast<std::uint64_t>(o.body_bytes));
  r.add("connections", static_cast<std::uint64_t>(o.connections));
  r.add("replays", t.receipts);
  r.add("replays_per_s", static_cast<double>(t.receipts) / secs);
  r.add("replayed_per_replay",
        t.receipts ? static_cast<double>(t.replayed_messages) / static_cast<double>(t.receipts)
                   : 0.0);
  r.add("messages_received", t.delivered);
  r.add("replay_latency_us", summarize(e.receipt_latency()));
  add_cpu(r, o, cpu0, cpu1, secs, t.receipts, "replay");
  add_errors(r, e);
  return r;
}

}  // namespace bench
