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

}  // namespace

redis_engine::redis_engine(const config& settings, worker_pool& workers, router& topics,
                           queue_registry& queues, held_bytes& held)
    : settings_(settings),
      workers_(workers),
      topics_(topics),
      queues_(queues),
      held_(held),
      rules_(settings.journal),
      store_(settings.cluster.redis.key_prefix, settings.journal.idempotency_window),
      queue_store_(settings.cluster.redis.key_prefix),
      password_(read_password(settings.cluster.redis.password_file)),
      epochs_(std::random_device{}()),
      origin_(fmt::format("{:012x}", epochs_() & 0xffff'ffff'ffffULL)),
      lines_(workers.size()),
      watchdog_(io_),
      queue_timer_(io_),
      consumer_(fmt::format("stompd-{}", origin_)),
      presence_store_(settings.cluster.redis.key_prefix, settings.cluster.redis.presence_timeout),
      presence_timer_(io_) {
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
  queues_.set_source(this);
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
    queue_tick();
    vouch();
  });
}

redis_engine::~redis_engine() {
  topics_.on_interest(nullptr);
  // The event loops have ended: no queue calls the source any more.
  queues_.set_source(nullptr);
  {
    // What the queues settled and gave back as their sessions closed reaches Redis before the
    // connections close, or is claimed by another node after the redelivery timeout.
    auto flushed = std::make_shared<std::promise<void>>();
    net::post(io_, [this, flushed] {
      settle_now();
      when_all_answered([flushed] { flushed->set_value(); });
    });
    flushed->get_future().wait_for(settings_.cluster.redis.command_timeout);
  }
  net::post(io_, [this] {
    watchdog_.cancel();
    queue_timer_.cancel();
    presence_timer_.cancel();
    for (auto& s : shards_) {
      s->retry->cancel();
      if (auto c = std::exchange(s->commands, nullptr)) c->close();
      if (auto c = std::exchange(s->subscriber, nullptr)) c->close();
    }
    follows_.clear();
    shared_queues_.clear();
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

std::string redis_engine::propose_epoch() {
  // A fresh one each time: a destination whose data Redis lost must not get back an epoch
  // it had, or the x-seqs it gives out again would read as ones already seen.
  return fmt::format("{:012x}", epochs_() & 0xffff'ffff'ffffULL);
}

// --- the engine interface --------------------------------------------------------------------

bool redis_engine::append(std::size_t w, std::string destination, header_list headers,
                          std::string body, std::string idempotency_key, append_callback done) {
  if (!admit(known_, settings_.limits.max_journaled_destinations, destination)) return false;
  storage::record r;
  r.destination = std::move(destination);
  r.headers = std::move(headers);
  r.body = std::move(body);
  r.idempotency_key = std::move(idempotency_key);
  net::post(io_, [this, w, r = std::move(r), done = std::move(done)]() mutable {
    auto& s = shard_for(r.destination);
    auto answer = answer_for(w, std::move(done));
    if (!s.up || !s.refusal.empty()) {
      storage::append_result failed;
      failed.ec = error_code(s.up ? redis::errc::weaker_durability : redis::errc::not_connected);
      return answer(std::move(failed), nullptr);
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
          result.duplicate = a.duplicate;
          if (!a.error.empty()) log_error("redis {}: {}", s.name, a.error);
          // A retry of an idempotency key: delivered the first time.
          if (a.ec || a.duplicate) return answer(std::move(result), nullptr);
          // The RECEIPT is posted before the delivery: it reaches the publisher first. Our own
          // message reaches our subscribers then, not after its announcement's round trip;
          // the announcement is a duplicate the feed drops.
          answer(std::move(result), [this, stored, epoch = std::move(a.epoch), seq = a.seq,
                                     ts = a.timestamp_ms]() mutable {
            auto it = follows_.find(stored->destination);
            if (it == follows_.end() || !it->second->feed) return;
            stored->seq = seq;
            stored->timestamp_ms = ts;
            it->second->feed->on_announcement({std::move(*stored), std::move(epoch)});
            publish_delivered();
          });
        });
  });
  return true;
}

bool redis_engine::admit(std::unordered_set<std::string, string_hash, std::equal_to<>>& known,
                         std::size_t limit, const std::string& name) {
  std::lock_guard lock(known_mutex_);
  if (known.contains(name)) return true;
  if (known.size() >= limit) return false;
  known.insert(name);
  return true;
}

void redis_engine::soon(std::function<void()> step) {
  auto t = std::make_shared<net::steady_timer>(io_, std::chrono::milliseconds(20));
  t->async_wait([t, step = std::move(step)](error_code) { step(); });
}

redis_engine::turn_answer redis_engine::answer_for(std::size_t w, append_callback done) {
  return [this, w, turn = take_turn(w), done = std::move(done)](
             storage::append_result result, std::function<void()> then) mutable {
    answer_in_turn(w, turn,
                   [this, w, done = std::move(done), result = std::move(result),
                    then = std::move(then)]() mutable {
                     workers_.post(
                         w, [done = std::move(done), result = std::move(result)] { done(result); });
                     if (then) then();
                   });
  };
}

std::uint64_t redis_engine::take_turn(std::size_t w) {
  auto& line = lines_[w];
  line.answers.emplace_back();
  return line.front + line.answers.size() - 1;
}

void redis_engine::answer_in_turn(std::size_t w, std::uint64_t turn, std::function<void()> answer) {
  auto& line = lines_[w];
  line.answers[turn - line.front] = std::move(answer);
  while (!line.answers.empty() && line.answers.front()) {
    auto next = std::move(line.answers.front());
    line.answers.pop_front();
    ++line.front;
    next();
  }
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
    after_follow_starts(
        d, [this, w, done = std::move(done)]() mutable { workers_.post(w, std::move(done)); });
  });
}

void redis_engine::when_stored(std::size_t w, std::function<void()> done) {
  net::post(io_, [this, w, done = std::move(done)]() mutable {
    when_all_answered(
        [this, w, done = std::move(done)]() mutable { workers_.post(w, std::move(done)); });
  });
}

void redis_engine::drain(std::function<void()> done) {
  net::post(io_, [this, done = std::move(done)]() mutable {
    settle_now();  // acknowledgements, and what the queues gave back, are answered too
    when_all_answered(std::move(done));
  });
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
                      r.older = h.older;
                      done(std::move(r));
                    });
    };
    // A subscriber's replay reads after its destination's feed has read the head: then the
    // replay's head is at or past the feed's, and everything after it comes live.
    after_follow_starts(request.destination, std::move(read));
  });
}

std::vector<storage::destination_stats> redis_engine::stored() const {
  using list = std::vector<storage::destination_stats>;
  auto out = ask<list>([this](std::function<void(list)> done) {
    auto g = std::make_shared<gathering<list>>();
    g->done = std::move(done);
    for (auto& s : shards_) {
      if (!s->up) continue;
      ++g->left;
      store_.destinations(
          *s->commands, settings_.limits.max_journaled_destinations,
          [this, g, c = s->commands](error_code ec, std::vector<std::string> names) {
            if (!ec) {
              for (auto& name : names) {
                ++g->left;
                store_.stats_of(*c, name, [g](redis::stream_store::stats st) {
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
  auto out = ask<std::uint64_t>([this](std::function<void(std::uint64_t)> done) {
    auto total = std::make_shared<std::uint64_t>(0);
    auto left = std::make_shared<std::size_t>(1);
    auto one = [total, left, done = std::move(done)] {
      if (--*left == 0) done(*total);
    };
    for (auto& s : shards_) {
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
