#include "engine/redis/redis_engine.hpp"

#include "broker/log.hpp"
#include "engine/local_engine.hpp"
#include "engine/redis/live_channel.hpp"
#include "net/event_loop.hpp"
#include "routing/publish.hpp"
#include "routing/queue.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <random>
#include <stdexcept>
#include <utility>

namespace broker {

namespace net = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::chrono::milliseconds first_backoff{100}, max_backoff{5000};
constexpr auto watchdog_interval = std::chrono::milliseconds(250);
// Announcements that arrive between SUBSCRIBE and the head read, kept to be fed in once the
// feed starts; past this many the feed reads the stream again instead.
constexpr std::size_t max_early_announcements = 1000;
// Live-only messages handed to Redis and not yet answered, all connections together.
constexpr std::size_t max_live_bytes = 64 * 1024 * 1024;

// FNV-1a: the same on every node and every build, which std::hash is not promised to be.
std::uint64_t stable_hash(std::string_view a, std::string_view b) {
  std::uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](std::string_view s) {
    for (unsigned char ch : s) {
      h ^= ch;
      h *= 1099511628211ULL;
    }
  };
  mix(a);
  mix("\n");
  mix(b);
  return h;
}

std::string read_password(const std::filesystem::path& file) {
  if (file.empty()) return {};
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line))
    throw std::runtime_error(
        fmt::format("cluster.redis.password_file {}: cannot be read", file.string()));
  return line;
}

// What a RECEIPT means with these persistence settings, for the log at connect.
std::string receipt_meaning(std::string_view appendonly, std::string_view appendfsync) {
  if (appendonly != "yes")
    return "a RECEIPT means the message is in Redis's memory: a restart of Redis loses what its "
           "last RDB snapshot does not hold";
  if (appendfsync == "always") return "a RECEIPT means the message is on Redis's disk";
  if (appendfsync == "everysec")
    return "a RECEIPT means the message is in Redis's append-only file: a power loss or OS crash "
           "can lose about the last second";
  return "a RECEIPT means the message is in Redis's append-only file: the OS decides when it "
         "reaches the disk";
}

// CONFIG GET's answer ["name", "value"], or "unknown" (CONFIG may be renamed away).
std::string config_value(error_code ec, const redis::reply& r) {
  if (ec || r.kind != redis::reply::type::array || r.elements.size() != 2) return "unknown";
  return r.elements[1].str;
}

}  // namespace

redis_engine::redis_engine(const config& settings, worker_pool& workers, router& topics,
                           queue_registry& queues, held_bytes& held)
    : settings_(settings),
      workers_(workers),
      topics_(topics),
      queues_(queues),
      held_(held),
      rules_(settings.journal),
      store_(settings.cluster.redis.key_prefix),
      password_(read_password(settings.cluster.redis.password_file)),
      epochs_(std::random_device{}()),
      origin_(fmt::format("{:012x}", epochs_() & 0xffff'ffff'ffffULL)),
      watchdog_(io_) {
  for (const auto& a : settings.cluster.redis.addresses) {
    auto s = std::make_unique<shard>();
    s->address = a;
    s->name = a.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", a.host, a.port)
                                                    : fmt::format("{}:{}", a.host, a.port);
    s->retry = std::make_unique<net::steady_timer>(io_);
    shards_.push_back(std::move(s));
  }
  if (shards_.empty()) throw std::invalid_argument("redis_engine: no cluster.redis.addresses");
  // Before any session subscribes (the engine is made before the listeners open).
  topics_.on_interest([this](std::string_view destination, bool wanted) {
    if (!destination.starts_with("/topic/")) return;  // queues are per node, for now
    net::post(io_, [this, d = std::string(destination), wanted]() mutable {
      set_interest(std::move(d), wanted);
    });
  });
  guard_.emplace(net::make_work_guard(io_));
  thread_ = std::thread([this] {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        log_error("redis engine: {}", e.what());
      }
    }
  });
  net::post(io_, [this] {
    for (auto& s : shards_) connect(*s);
    watchdog();
  });
}

redis_engine::~redis_engine() {
  topics_.on_interest(nullptr);
  net::post(io_, [this] {
    watchdog_.cancel();
    for (auto& s : shards_) {
      s->retry->cancel();
      if (auto c = std::exchange(s->commands, nullptr)) c->close();
      if (auto c = std::exchange(s->subscriber, nullptr)) c->close();
    }
    follows_.clear();
    guard_.reset();
  });
  thread_.join();
}

redis_engine::shard& redis_engine::shard_for(std::string_view destination) {
  return const_cast<shard&>(std::as_const(*this).shard_for(destination));
}

const redis_engine::shard& redis_engine::shard_for(std::string_view destination) const {
  // Rendezvous hashing: adding or removing a Redis moves only the destinations it wins or had.
  const shard* best = shards_.front().get();
  std::uint64_t best_score = 0;
  for (const auto& s : shards_) {
    const auto score = stable_hash(s->name, destination);
    if (score >= best_score) {
      best = s.get();
      best_score = score;
    }
  }
  return *best;
}

bool redis_engine::journaled(std::string_view destination) const {
  return settings_.journal.enabled && destination.starts_with("/topic/") &&
         rules_.policy_for(destination).journaled;
}

// --- connections -----------------------------------------------------------------------------

void redis_engine::connect(shard& s) {
  const auto& r = settings_.cluster.redis;
  s.commands = redis::connection::create(io_);
  s.subscriber = redis::connection::create(io_);
  s.replies_seen = 0;
  s.silent_since.reset();
  for (const auto& c : {s.commands, s.subscriber}) {
    c->on_lost([this, &s, weak = std::weak_ptr<redis::connection>(c)](error_code) {
      auto gone = weak.lock();
      if (gone && (gone == s.commands || gone == s.subscriber))
        lost(s, gone->error_text().empty() ? "the connection was lost" : gone->error_text());
    });
  }
  auto mine = [&s](const std::shared_ptr<redis::connection>& c) {
    return c == s.commands || c == s.subscriber;
  };
  auto why = [](const redis::connection& c, error_code ec) {
    return c.error_text().empty() ? ec.message() : c.error_text();
  };
  s.commands->connect(
      s.address.host, s.address.port, r.connect_timeout,
      [this, &s, c = s.commands, mine, why, timeout = r.connect_timeout](error_code ec) {
        if (!mine(c)) return;  // an attempt given up since
        if (ec) return lost(s, why(*c, ec));
        s.subscriber->connect(s.address.host, s.address.port, timeout,
                              [this, &s, sub = s.subscriber, mine, why](error_code sub_ec) {
                                if (!mine(sub)) return;
                                if (sub_ec) return lost(s, why(*sub, sub_ec));
                                on_connected(s);
                              });
      });
}

void redis_engine::on_connected(shard& s) {
  if (password_.empty()) return set_up(s);
  // The pub/sub connection authenticates first: it does nothing else before it subscribes.
  s.subscriber->command(
      {"AUTH", password_}, [this, &s, sub = s.subscriber](error_code ec, redis::reply r) {
        if (sub != s.subscriber) return;
        if (ec || r.is_error())
          return lost(s, fmt::format("AUTH (pub/sub): {}", ec ? ec.message() : r.str));
        set_up(s);
      });
}

void redis_engine::set_up(shard& s) {
  // Pipelined: AUTH and SELECT first, so everything after runs as that user, in that db.
  auto c = s.commands;
  auto first_error = std::make_shared<std::string>();
  auto check = [first_error](std::string what) {
    return [first_error, what = std::move(what)](error_code ec, redis::reply r) {
      if (!first_error->empty()) return;
      if (ec)
        *first_error = fmt::format("{}: {}", what, ec.message());
      else if (r.is_error())
        *first_error = fmt::format("{}: {}", what, r.str);
    };
  };
  if (!password_.empty()) c->command({"AUTH", password_}, check("AUTH"));
  if (settings_.cluster.redis.db != 0)
    c->command({"SELECT", std::to_string(settings_.cluster.redis.db)}, check("SELECT"));
  store_.load(*c, [first_error](error_code ec, std::string error) {
    if (first_error->empty() && (ec || !error.empty()))
      *first_error = fmt::format("FUNCTION LOAD: {}", error.empty() ? ec.message() : error);
  });
  auto appendonly = std::make_shared<std::string>();
  c->command({"CONFIG", "GET", "appendonly"},
             [appendonly](error_code ec, redis::reply r) { *appendonly = config_value(ec, r); });
  c->command({"CONFIG", "GET", "appendfsync"}, [this, &s, c, first_error, appendonly](
                                                   error_code ec, redis::reply r) {
    if (c != s.commands) return;
    if (!first_error->empty()) return lost(s, *first_error);
    const auto appendfsync = config_value(ec, r);
    log_info("redis connected address={} appendonly={} appendfsync={}: {}", s.name, *appendonly,
             appendfsync, receipt_meaning(*appendonly, appendfsync));
    s.refusal.clear();
    if (settings_.journal.durability == config::journal_settings::durability_mode::power &&
        (*appendonly != "yes" || appendfsync != "always")) {
      s.refusal = fmt::format(
          "journal.durability is power, but Redis {} has appendonly {} and appendfsync {}: "
          "SENDs to journaled destinations are refused until it has appendonly yes and "
          "appendfsync always",
          s.name, *appendonly, appendfsync);
      log_error("{}", s.refusal);
    }
    if (s.was_up) reconnects_.fetch_add(1, std::memory_order_relaxed);
    s.was_up = true;
    s.up = true;
    s.backoff = std::chrono::milliseconds(0);
    // The watchdog counts silence from now, not from before the outage.
    s.replies_seen = c->replies();
    s.silent_since.reset();
    update_ready();
    // The new pub/sub connection follows nothing yet: every destination wanted comes back,
    // and each feed catches up with what was stored meanwhile.
    for (auto& [name, f] : follows_)
      if (f->home == &s) start_follow(*f);
  });
}

void redis_engine::lost(shard& s, std::string_view why) {
  if (!s.commands && !s.subscriber) return;
  if (s.up || s.backoff == std::chrono::milliseconds(0))
    log_warn("redis unreachable address={}: {}; retrying", s.name, why);
  s.up = false;
  update_ready();
  // Pending commands fail now (their SENDs get an ERROR), not when a reconnect gives up.
  if (auto c = std::exchange(s.commands, nullptr)) c->close();
  if (auto c = std::exchange(s.subscriber, nullptr)) c->close();
  for (auto& [name, f] : follows_)
    if (f->home == &s) run_waiting(*f);
  s.backoff = std::clamp(s.backoff * 2, first_backoff, max_backoff);
  s.retry->expires_after(s.backoff);
  s.retry->async_wait([this, &s](error_code ec) {
    if (!ec) connect(s);
  });
}

void redis_engine::update_ready() {
  bool all = true;
  for (const auto& s : shards_) all = all && s->up && s->refusal.empty();
  ready_.store(all, std::memory_order_relaxed);
}

void redis_engine::watchdog() {
  // A Redis that stopped answering (paused, swapping, a network that drops silently) holds
  // RECEIPTs forever unless something gives up on it: command_timeout does.
  const auto now = std::chrono::steady_clock::now();
  for (auto& s : shards_) {
    auto& c = s->commands;
    if (!c) continue;  // set-up too: a Redis that accepts and never answers is given up on
    if (c->pending() == 0 || c->replies() != s->replies_seen) {
      s->replies_seen = c->replies();
      s->silent_since.reset();
    } else if (!s->silent_since) {
      // Counted from the first tick that sees it: never less than the timeout after the
      // command was sent, at most one tick more.
      s->silent_since = now;
    } else if (now - *s->silent_since >= settings_.cluster.redis.command_timeout) {
      lost(*s, fmt::format("no reply for {} ms (cluster.redis.command_timeout_ms)",
                           settings_.cluster.redis.command_timeout.count()));
    }
  }
  watchdog_.expires_after(watchdog_interval);
  watchdog_.async_wait([this](error_code ec) {
    if (!ec) watchdog();
  });
}

// --- following destinations ------------------------------------------------------------------

redis_engine::follow* redis_engine::find_follow(std::string_view destination,
                                                std::uint64_t generation) {
  auto it = follows_.find(destination);
  if (it == follows_.end() || it->second->generation != generation) return nullptr;
  return it->second.get();
}

void redis_engine::set_interest(std::string destination, bool wanted) {
  auto it = follows_.find(destination);
  if (!wanted) {
    if (it == follows_.end()) return;
    auto& f = *it->second;
    auto& sub = f.home->subscriber;
    const auto channel = f.live
                             ? redis::live_channel(settings_.cluster.redis.key_prefix, destination)
                             : store_.channel(destination);
    if (sub && sub->subscribed(channel)) sub->unsubscribe(channel);
    run_waiting(f);
    follows_.erase(it);
    return;
  }
  if (it != follows_.end()) return;
  auto f = std::make_unique<follow>();
  f->destination = destination;
  f->home = &shard_for(destination);
  f->generation = ++generations_;
  f->live = !journaled(f->destination);
  auto& ref = *f;
  follows_.emplace(std::move(destination), std::move(f));
  start_follow(ref);
}

// Following a destination starts two things at once: the head is read, and the feed starts
// there (a subscriber that subscribed before the read gets everything stored after it); and
// the channel is subscribed. Once Redis confirmed the SUBSCRIBE the head is read again, and
// the feed catches up with what was stored between the two, announced before the
// subscription took effect. After a reconnect only the second step is needed.
void redis_engine::start_follow(follow& f) {
  if (!f.home->up) return;  // on_connected() starts it
  if (!f.feed && !f.live) read_head(f);
  subscribe(f);
}

void redis_engine::subscribe(follow& f) {
  auto& s = *f.home;
  f.subscribed = false;
  f.early.clear();
  f.missed_early = false;
  s.subscriber->subscribe(
      f.live ? redis::live_channel(settings_.cluster.redis.key_prefix, f.destination)
             : store_.channel(f.destination),
      [this, d = f.destination, g = f.generation](std::string payload) {
        auto* here = find_follow(d, g);
        if (!here) return;
        if (here->live) return on_live(*here, payload);
        auto a = redis::stream_store::parse_announcement(payload);
        if (!a) return log_warn("redis: an announcement on {} that is not one", d);
        a->record.destination = d;
        if (!here->feed) {
          if (here->early.size() < max_early_announcements)
            here->early.push_back(std::move(*a));
          else
            here->missed_early = true;
          return;
        }
        here->feed->on_announcement(std::move(*a));
        publish_delivered();
      },
      [this, d = f.destination, g = f.generation, sub = s.subscriber](error_code ec) {
        auto* here = find_follow(d, g);
        if (!here || sub != here->home->subscriber) return;
        if (ec == redis::errc::already_subscribed) {
          // Leaving from an earlier follow, not yet confirmed: try again shortly.
          auto t = std::make_shared<net::steady_timer>(io_, std::chrono::milliseconds(20));
          t->async_wait([this, t, d, g](error_code) {
            if (auto* again = find_follow(d, g); again && again->home->up) subscribe(*again);
          });
          return;
        }
        if (ec) return;  // the connection ended: lost() and on_connected() take it from here
        here->subscribed = true;
        if (here->live) return run_waiting(*here);
        read_head(*here);
      });
}

void redis_engine::read_head(follow& f) {
  storage::replay_request head_only;
  head_only.destination = f.destination;
  head_only.mode = storage::replay_request::kind::last;
  head_only.value = 0;
  store_.replay(*f.home->commands, head_only,
                [this, d = f.destination, g = f.generation](redis::stream_store::history h) {
                  auto* here = find_follow(d, g);
                  if (!here) return;
                  if (h.ec) return run_waiting(*here);  // the connection ended: lost() retries
                  if (!here->feed) {
                    here->feed.emplace(
                        h.head_seq, h.epoch,
                        [this](storage::record&& r, const std::string& epoch) {
                          delivered_.push_back(make_stored_message(held_, r, epoch, false));
                        },
                        [this, d, g](std::uint64_t after, std::size_t count,
                                     std::function<void(redis::stream_store::history)> done) {
                          auto* filling = find_follow(d, g);
                          if (!filling || !filling->home->up) {
                            redis::stream_store::history failed;
                            failed.ec = redis::errc::not_connected;
                            return done(std::move(failed));
                          }
                          store_.read_after(*filling->home->commands, d, after, count,
                                            [this, done = std::move(done)](auto read) {
                                              done(std::move(read));
                                              publish_delivered();
                                            });
                        });
                  } else {
                    here->feed->catch_up(h.head_seq, h.epoch);  // subscribed, or reconnected
                  }
                  for (auto& a : std::exchange(here->early, {}))
                    here->feed->on_announcement(std::move(a));
                  if (std::exchange(here->missed_early, false)) read_head(*here);
                  publish_delivered();
                  run_waiting(*here);
                });
}

void redis_engine::run_waiting(follow& f) {
  for (auto& task : std::exchange(f.until_ready, {})) task();
}

void redis_engine::publish_delivered() {
  if (delivered_.empty()) return;
  topics_.publish_batch(delivered_);
  delivered_.clear();
}

std::string redis_engine::propose_epoch() {
  // A fresh one each time: a destination whose data Redis lost must not get back an epoch
  // it had, or the x-seqs it gives out again would read as ones already seen.
  return fmt::format("{:012x}", epochs_() & 0xffff'ffff'ffffULL);
}

// --- the engine interface --------------------------------------------------------------------

bool redis_engine::append(std::size_t w, std::string destination, header_list headers,
                          std::string body, append_callback done) {
  {
    std::lock_guard lock(known_mutex_);
    if (!known_.contains(destination)) {
      if (known_.size() >= settings_.limits.max_journaled_destinations) return false;
      known_.insert(destination);
    }
  }
  storage::record r;
  r.destination = std::move(destination);
  r.headers = std::move(headers);
  r.body = std::move(body);
  net::post(io_, [this, w, r = std::move(r), done = std::move(done)]() mutable {
    auto& s = shard_for(r.destination);
    auto answer = [this, w, done = std::move(done)](storage::append_result result) mutable {
      workers_.post(w, [done = std::move(done), result = std::move(result)] { done(result); });
    };
    if (!s.up || !s.refusal.empty()) {
      storage::append_result failed;
      failed.ec = error_code(s.up ? redis::errc::weaker_durability : redis::errc::not_connected);
      return answer(std::move(failed));
    }
    const auto retention = rules_.policy_for(r.destination).retention;
    // What this node has delivered of the destination: Redis behind it in the same epoch
    // lost writes, and the append starts a new epoch.
    redis::stream_store::seen known;
    if (auto it = follows_.find(r.destination); it != follows_.end() && it->second->feed)
      known = {it->second->feed->epoch(), it->second->feed->delivered()};
    known.max_age = retention.max_age;
    // Shared by the command (which copies it into its arguments) and the reply's handler.
    auto stored = std::make_shared<storage::record>(std::move(r));
    store_.append(
        *s.commands, *stored, retention.max_messages, propose_epoch(), known,
        [this, &s, stored, answer = std::move(answer)](redis::stream_store::appended a) mutable {
          storage::append_result result;
          result.ec = a.ec;
          result.seq = a.seq;
          result.timestamp_ms = a.timestamp_ms;
          result.epoch = a.epoch;
          if (!a.error.empty()) log_error("redis {}: {}", s.name, a.error);
          // The RECEIPT is posted before the delivery: it reaches the publisher first.
          answer(std::move(result));
          if (a.ec) return;
          // Our own message reaches our subscribers now, not after its announcement's round
          // trip; the announcement is then a duplicate the feed drops.
          auto it = follows_.find(stored->destination);
          if (it == follows_.end() || !it->second->feed) return;
          stored->seq = a.seq;
          stored->timestamp_ms = a.timestamp_ms;
          it->second->feed->on_announcement({std::move(*stored), std::move(a.epoch)});
          publish_delivered();
        });
  });
  return true;
}

engine::route_result redis_engine::route(std::size_t w, const message_ptr& m,
                                         std::span<const stomp::header_view> passed,
                                         std::string_view body) {
  const auto result = route_on_node(topics_, queues_, w, m);
  if (result != route_result::routed || !m->destination.starts_with("/topic/")) return result;
  // A live-only topic: this node's subscribers have it; the other nodes' get it through
  // Redis, at most once as on one node, within a budget so a Redis that can't keep up costs
  // the other nodes' copies, not this node's memory.
  redis::live_message lm{origin_, m->id, {}, std::string(body)};
  lm.headers.reserve(passed.size());
  for (const auto& h : passed) lm.headers.emplace_back(h.name, h.value);
  auto payload = redis::encode_live(lm);
  const auto bytes = payload.size();
  if (live_bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes > max_live_bytes) {
    live_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    live_dropped_.fetch_add(1, std::memory_order_relaxed);
    return result;
  }
  net::post(io_, [this, d = m->destination, payload = std::move(payload), bytes]() mutable {
    auto& s = shard_for(d);
    auto release = [this, bytes] { live_bytes_.fetch_sub(bytes, std::memory_order_relaxed); };
    if (!s.up) return release();
    s.commands->command(
        {"PUBLISH", redis::live_channel(settings_.cluster.redis.key_prefix, d), std::move(payload)},
        [release](error_code, redis::reply) { release(); });
  });
  return result;
}

void redis_engine::on_live(follow& f, std::string_view payload) {
  auto m = redis::parse_live(payload);
  if (!m) return log_warn("redis: a live message on {} that is not one", f.destination);
  if (m->origin == origin_) return;  // ours: delivered here already
  std::vector<stomp::header_view> headers;
  headers.reserve(m->headers.size());
  for (const auto& [name, value] : m->headers) headers.push_back({name, value});
  delivered_.push_back(make_live_message(held_, f.destination,
                                         fmt::format("{}-{}", m->origin, m->id), headers, m->body));
  publish_delivered();
}

void redis_engine::when_all_answered(std::function<void()> done) {
  // Replies come in command order: a PING answered means every command before it was.
  auto left = std::make_shared<std::size_t>(1);
  auto one = [left, done = std::move(done)]() {
    if (--*left == 0) done();
  };
  for (auto& s : shards_) {
    if (!s->up) continue;
    ++*left;
    s->commands->command({"PING"}, [one](error_code, redis::reply) { one(); });
  }
  one();
}

void redis_engine::when_following(std::size_t w, std::string_view destination,
                                  std::function<void()> done) {
  // Posted after the interest the subscription caused (both from w, FIFO): the follow exists.
  net::post(io_, [this, w, d = std::string(destination), done = std::move(done)]() mutable {
    auto then = [this, w, done = std::move(done)]() mutable { workers_.post(w, std::move(done)); };
    auto it = follows_.find(d);
    if (it != follows_.end() && !it->second->started() && it->second->home->up)
      return it->second->until_ready.push_back(std::move(then));
    then();
  });
}

void redis_engine::when_stored(std::size_t w, std::function<void()> done) {
  net::post(io_, [this, w, done = std::move(done)]() mutable {
    when_all_answered(
        [this, w, done = std::move(done)]() mutable { workers_.post(w, std::move(done)); });
  });
}

void redis_engine::drain(std::function<void()> done) {
  net::post(io_, [this, done = std::move(done)]() mutable { when_all_answered(std::move(done)); });
}

void redis_engine::replay(storage::replay_request request, replay_callback done) {
  net::post(io_, [this, request = std::move(request), done = std::move(done)]() mutable {
    auto read = [this, request, done = std::move(done)]() mutable {
      auto& s = shard_for(request.destination);
      if (!s.up) {
        storage::replay_result failed;
        failed.ec = error_code(redis::errc::not_connected);
        return done(std::move(failed));
      }
      store_.replay(*s.commands, request, rules_.policy_for(request.destination).retention.max_age,
                    [&s, done = std::move(done)](redis::stream_store::history h) {
                      if (!h.error.empty()) log_error("redis {}: {}", s.name, h.error);
                      storage::replay_result r;
                      r.ec = h.ec;
                      r.epoch = std::move(h.epoch);
                      r.records = std::move(h.records);
                      r.head_seq = h.head_seq;
                      r.complete = h.complete;
                      done(std::move(r));
                    });
    };
    // A subscriber's replay reads after its destination's feed has read the head: then the
    // replay's head is at or past the feed's, and everything after it comes live.
    auto it = follows_.find(request.destination);
    if (it != follows_.end() && !it->second->feed && it->second->home->up)
      return it->second->until_ready.push_back(std::move(read));
    read();
  });
}

template <typename T>
std::optional<T> redis_engine::ask(std::function<void(std::function<void(T)>)> step) const {
  auto promise = std::make_shared<std::promise<T>>();
  auto future = promise->get_future();
  net::post(io_, [step = std::move(step), promise] {
    step([promise](T value) { promise->set_value(std::move(value)); });
  });
  if (future.wait_for(settings_.cluster.redis.command_timeout) != std::future_status::ready)
    return std::nullopt;
  return future.get();
}

std::vector<storage::destination_stats> redis_engine::stored() const {
  using list = std::vector<storage::destination_stats>;
  auto self = const_cast<redis_engine*>(this);  // the engine thread's state, touched there
  auto out = ask<list>([self](std::function<void(list)> done) {
    struct gather {
      list found;
      std::size_t left = 1;
      std::function<void(list)> done;
      void one() {
        if (--left == 0) done(std::move(found));
      }
    };
    auto g = std::make_shared<gather>();
    g->done = std::move(done);
    for (auto& s : self->shards_) {
      if (!s->up) continue;
      ++g->left;
      self->store_.destinations(
          *s->commands, self->settings_.limits.max_journaled_destinations,
          [self, g, c = s->commands](error_code ec, std::vector<std::string> names) {
            if (!ec) {
              for (auto& name : names) {
                ++g->left;
                self->store_.stats_of(*c, name, [g](redis::stream_store::stats st) {
                  if (!st.ec) g->found.push_back(std::move(st.value));
                  g->one();
                });
              }
            }
            g->one();
          });
    }
    g->one();
  });
  if (!out) return {};
  std::ranges::sort(*out, {}, &storage::destination_stats::destination);
  return std::move(*out);
}

std::optional<std::uint64_t> redis_engine::purge(std::string_view destination) {
  if (!journaled(destination)) return std::nullopt;
  auto out = ask<std::optional<std::uint64_t>>(
      [this, d = std::string(destination)](std::function<void(std::optional<std::uint64_t>)> done) {
        auto& s = shard_for(d);
        if (!s.up) return done(std::nullopt);
        store_.purge(*s.commands, d, [done](error_code ec, std::uint64_t n) {
          done(ec ? std::nullopt : std::optional<std::uint64_t>(n));
        });
      });
  return out ? *out : std::nullopt;
}

std::uint64_t redis_engine::stored_bytes() const {
  auto self = const_cast<redis_engine*>(this);
  auto out = ask<std::uint64_t>([self](std::function<void(std::uint64_t)> done) {
    auto total = std::make_shared<std::uint64_t>(0);
    auto left = std::make_shared<std::size_t>(1);
    auto one = [total, left, done = std::move(done)] {
      if (--*left == 0) done(*total);
    };
    for (auto& s : self->shards_) {
      if (!s->up) continue;
      ++*left;
      s->commands->command({"INFO", "memory"}, [total, one](error_code ec, redis::reply r) {
        constexpr std::string_view key = "used_memory:";
        if (auto at = r.str.find(key); !ec && at != std::string::npos)
          *total += std::strtoull(r.str.c_str() + at + key.size(), nullptr, 10);
        one();
      });
    }
    one();
  });
  return out.value_or(0);
}

}  // namespace broker
