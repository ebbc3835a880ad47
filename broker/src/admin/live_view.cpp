#include "admin/live_view.hpp"

#include "routing/publish.hpp"
#include "routing/router.hpp"
#include "session/session.hpp"

#include <boost/asio/post.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>

namespace net = boost::asio;

namespace broker {

namespace {

constexpr auto gather_timeout = std::chrono::seconds(2);
constexpr std::size_t samples_kept = 11;    // one a second: rates over the last ~10 s
constexpr std::size_t members_shown = 100;  // of a topic's users present

// Runs fn(worker&) on every worker's thread and returns the results, in worker order. A
// worker that doesn't answer in time (it would have to be stuck) is left out.
template <typename Fn>
auto on_each_worker(broker_context& ctx, Fn fn) {
  using result = decltype(fn(*ctx.workers[0]));
  std::vector<std::future<result>> futures;
  for (auto& w : ctx.workers) {
    auto task = std::make_shared<std::packaged_task<result()>>([&w = *w, fn] { return fn(w); });
    futures.push_back(task->get_future());
    net::post(w->io, [task] { (*task)(); });
  }
  std::vector<result> out;
  for (auto& f : futures)
    if (f.wait_for(gather_timeout) == std::future_status::ready) out.push_back(f.get());
  return out;
}

std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

// How old the journal's per-destination counts in /metrics, /api/stats and /api/destinations
// may be: a scrape costs at most one counting query a second.
constexpr auto stored_stats_ttl = std::chrono::seconds(1);

live_view::live_view(broker_context& ctx)
    : ctx_(ctx),
      sampler_(ctx.workers[0]->io),
      stored_([&ctx] { return ctx.publishing->store().stored(); }, stored_stats_ttl) {}

live_view::sample live_view::take_sample() const {
  sample s;
  s.at = std::chrono::steady_clock::now();
  for (const auto& w : ctx_.workers) {
    s.in += w->stats.messages_in.load(std::memory_order_relaxed);
    s.out += w->stats.messages_out.load(std::memory_order_relaxed);
  }
  for (const auto& t : ctx_.topics.snapshot()) s.published[t.name] = t.published;
  for (const auto& [name, q] : ctx_.queues.snapshot()) s.published[name] = q.enqueued;
  return s;
}

void live_view::start_sampler() {
  net::post(ctx_.workers[0]->io, [this] { on_sample_timer(); });
}

void live_view::stop_sampler() {
  net::post(ctx_.workers[0]->io, [this] { sampler_.cancel(); });
}

void live_view::on_sample_timer() {
  auto s = take_sample();
  {
    std::lock_guard lock(samples_mutex_);
    samples_.push_back(std::move(s));
    if (samples_.size() > samples_kept) samples_.pop_front();
  }
  sampler_.expires_after(std::chrono::seconds(1));
  sampler_.async_wait([this](boost::system::error_code ec) {
    if (!ec) on_sample_timer();
  });
}

double live_view::rate(std::uint64_t sample::*field) const {
  std::lock_guard lock(samples_mutex_);
  if (samples_.size() < 2) return 0;
  const auto& a = samples_.front();
  const auto& b = samples_.back();
  double seconds = std::chrono::duration<double>(b.at - a.at).count();
  return seconds > 0 ? static_cast<double>(b.*field - a.*field) / seconds : 0;
}

double live_view::destination_rate(std::string_view name) const {
  std::lock_guard lock(samples_mutex_);
  if (samples_.size() < 2) return 0;
  const auto& a = samples_.front();
  const auto& b = samples_.back();
  auto ia = a.published.find(name), ib = b.published.find(name);
  if (ib == b.published.end()) return 0;
  std::uint64_t before = ia == a.published.end() ? 0 : ia->second;
  double seconds = std::chrono::duration<double>(b.at - a.at).count();
  return seconds > 0 && ib->second >= before ? static_cast<double>(ib->second - before) / seconds
                                             : 0;
}

std::vector<admin::connection_info> live_view::connections() {
  std::vector<admin::connection_info> all;
  for (auto& part : on_each_worker(ctx_, [](worker& w) {
         std::vector<admin::connection_info> v;
         for (const auto* s : w.sessions) v.push_back(s->info());
         return v;
       }))
    all.insert(all.end(), part.begin(), part.end());
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return all;
}

bool live_view::disconnect(std::uint64_t id, std::string reason) {
  auto found = on_each_worker(ctx_, [id, reason](worker& w) {
    for (auto* s : w.sessions) {
      if (s->id() != id) continue;
      s->kick(reason);
      return true;
    }
    return false;
  });
  return std::find(found.begin(), found.end(), true) != found.end();
}

std::vector<admin::destination_info> live_view::gather_destinations() {
  std::map<std::string, admin::destination_info, std::less<>> by_name;
  auto get = [&](const std::string& name) -> admin::destination_info& {
    auto& d = by_name[name];
    if (d.name.empty()) {
      d.name = name;
      d.type = name.starts_with("/queue/") ? "queue" : "topic";
      d.journaled = ctx_.publishing->journaled(name);
    }
    return d;
  };
  const auto topics = ctx_.topics.snapshot();
  std::vector<std::string> topic_names;
  topic_names.reserve(topics.size());
  for (const auto& t : topics) topic_names.push_back(t.name);
  auto present = ctx_.publishing->presence_of(topic_names, 0);  // counts only
  for (std::size_t i = 0; i < topics.size(); ++i) {
    const auto& t = topics[i];
    auto& d = get(t.name);
    d.subscribers = t.subscribers;
    d.present = present[i].count;
    d.messages_in = t.published;
    d.messages_out = t.delivered;
  }
  for (const auto& [name, q] : ctx_.queues.snapshot()) {
    auto& d = get(name);
    d.subscribers = q.consumers;
    d.messages_in = q.enqueued;
    d.messages_out = q.delivered;
    d.queued = q.waiting;
  }
  for (const auto& j : *stored_.get()) {
    auto& d = get(j.destination);
    d.last_seq = j.last_seq;
    d.stored = j.stored;
    d.oldest_ms = j.oldest_ms;
  }
  std::vector<admin::destination_info> out;
  out.reserve(by_name.size());
  for (auto& [name, d] : by_name) {
    d.rate_in = destination_rate(name);
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<admin::destination_info> live_view::destinations() { return gather_destinations(); }

std::optional<admin::destination_info> live_view::destination(std::string_view name) {
  for (auto& d : gather_destinations()) {
    if (d.name != name) continue;
    for (auto& part : on_each_worker(ctx_, [n = std::string(name)](worker& w) {
           std::vector<admin::subscription_info> v;
           for (const auto* s : w.sessions) s->collect_subscriptions(n, v);
           return v;
         }))
      d.subscriptions.insert(d.subscriptions.end(), part.begin(), part.end());
    if (d.type == "topic") {
      const std::string names[] = {d.name};
      auto present = ctx_.publishing->presence_of(names, members_shown);
      d.present = present.front().count;
      d.members = std::move(present.front().members);
    }
    return std::move(d);
  }
  return std::nullopt;
}

std::optional<admin::history_page> live_view::history(std::string_view name, std::uint64_t after,
                                                      std::size_t limit,
                                                      std::optional<std::size_t> last) {
  if (!ctx_.publishing->journaled(name)) return std::nullopt;
  storage::replay_request req;
  req.destination = std::string(name);
  req.mode = last ? storage::replay_request::kind::last : storage::replay_request::kind::page;
  req.value = last ? *last : after;
  req.max_messages = last ? *last : limit;
  req.max_bytes = ctx_.settings.journal.replay_max_bytes;
  std::promise<storage::replay_result> promise;
  auto future = promise.get_future();
  ctx_.publishing->store().replay(
      std::move(req), [&promise](storage::replay_result&& r) { promise.set_value(std::move(r)); });
  auto r = future.get();  // the journal always answers, also when shutting down
  if (r.ec) throw std::runtime_error(r.ec.message());
  admin::history_page page;
  page.head_seq = r.head_seq;
  page.complete = r.complete;
  page.epoch = std::move(r.epoch);
  for (auto& rec : r.records)
    page.messages.push_back(
        {rec.seq, rec.timestamp_ms, std::move(rec.headers), std::move(rec.body)});
  return page;
}

std::optional<std::uint64_t> live_view::purge(std::string_view name) {
  auto deleted = ctx_.publishing->store().purge(name);
  stored_.invalidate();  // the purged destination shows its new count at once
  return deleted;
}

admin::broker_stats live_view::stats() {
  admin::broker_stats s;
  s.node = ctx_.node_name;
  s.uptime_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx_.started).count();
  s.connections = ctx_.connections.active();
  s.destinations = gather_destinations().size();
  for (const auto& w : ctx_.workers) {
    s.messages_in += w->stats.messages_in.load(std::memory_order_relaxed);
    s.messages_out += w->stats.messages_out.load(std::memory_order_relaxed);
  }
  s.rate_in = rate(&sample::in);
  s.rate_out = rate(&sample::out);
  s.journal_bytes = ctx_.publishing->store().stored_bytes();
  s.rss_bytes = resident_bytes();
  s.held_bytes = ctx_.held.bytes();
  return s;
}

admin::metrics live_view::collect_metrics() {
  admin::metrics m;
  for (std::size_t i = 0; i < transport_names.size(); ++i)
    m.connections_by_transport[std::string(transport_names[i])] = static_cast<std::uint64_t>(
        std::max<std::int64_t>(0, ctx_.metrics.connections[i].load(std::memory_order_relaxed)));
  for (std::size_t c = 0; c < worker_metrics::commands; ++c) {
    std::uint64_t in = 0, out = 0;
    for (const auto& w : ctx_.workers) {
      in += w->stats.frames_in[c].load(std::memory_order_relaxed);
      out += w->stats.frames_out[c].load(std::memory_order_relaxed);
    }
    auto name = std::string(stomp::to_string(static_cast<stomp::command>(c)));
    m.frames_in_by_command[name] = in;
    m.frames_out_by_command[name] = out;
  }
  for (const auto& w : ctx_.workers) {
    m.messages_published += w->stats.messages_in.load(std::memory_order_relaxed);
    m.messages_delivered += w->stats.messages_out.load(std::memory_order_relaxed);
    m.bytes_in += w->stats.bytes_in.load(std::memory_order_relaxed);
    m.bytes_out += w->stats.bytes_out.load(std::memory_order_relaxed);
  }
  m.slow_consumer_disconnects = ctx_.slow_consumer_closes.load(std::memory_order_relaxed);
  m.auth_failures = ctx_.security ? ctx_.security->failures.load(std::memory_order_relaxed) : 0;
  m.replays = ctx_.metrics.replays.load(std::memory_order_relaxed);
  m.replay_seconds = ctx_.metrics.replay_seconds.snapshot();
  m.journal_commit_seconds = ctx_.metrics.journal_commit_seconds.snapshot();
  m.journal_batch_size = ctx_.metrics.journal_batch_size.snapshot();
  const auto& store = ctx_.publishing->store();
  m.store_ready = store.ready();
  m.store_failures = ctx_.publishing->store_failures();
  const auto counted = store.statistics();
  m.store_reconnects = counted.reconnects;
  m.live_not_shared = counted.live_not_shared;
  return m;
}

void live_view::publish(std::string destination,
                        std::vector<std::pair<std::string, std::string>> headers, std::string body,
                        const auth::principal* who,
                        std::function<void(admin::publish_result)> done) {
  // Runs as a SEND would, on worker 0: validation, authorization, journal or router.
  net::post(ctx_.workers[0]->io, [this, destination = std::move(destination),
                                  headers = std::move(headers), body = std::move(body),
                                  who = who ? std::optional<auth::principal>(*who) : std::nullopt,
                                  done = std::move(done)]() mutable {
    if (auto problem = destination_problem(destination, ctx_.settings.limits.max_destination_bytes);
        !problem.empty())
      return done({400, std::move(problem), 0, {}, {}});
    if (who &&
        !ctx_.security->authorizer.permissions_for(*who).allows(auth::action::send, destination))
      return done(
          {403, fmt::format("user '{}' may not send to '{}'", who->user, destination), 0, {}, {}});
    bump(ctx_.workers[0]->stats.messages_in);  // counted like a SEND (we are on its thread)
    ctx_.publishing->publish_from_admin(
        0, std::move(destination), std::move(headers), std::move(body),
        [done = std::move(done)](publisher::admin_result r) {
          done({r.status, std::move(r.error), r.seq, std::move(r.message_id), std::move(r.epoch),
                r.duplicate});
        });
  });
}

std::optional<auth::principal> live_view::verify_token(std::string_view token) {
  if (!ctx_.security || !ctx_.security->jwt) return std::nullopt;
  auto r = ctx_.security->jwt->verify(token);
  return r.value;
}

}  // namespace broker
