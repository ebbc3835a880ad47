#include "broker/log.hpp"
#include "engine/redis/redis_engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

// The connections to each Redis primary (redis_engine::shard): connecting, setting up
// (AUTH, SELECT, the function library, the persistence check), losing them and reconnecting
// with back-off, and the watchdog that gives up on a Redis that stops answering.

namespace broker {

namespace net = boost::asio;
using boost::system::error_code;

namespace {

constexpr std::chrono::milliseconds first_backoff{100}, max_backoff{5000};
constexpr auto watchdog_interval = std::chrono::milliseconds(250);

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
  auto loaded = [first_error](error_code ec, std::string error) {
    if (first_error->empty() && (ec || !error.empty()))
      *first_error = fmt::format("FUNCTION LOAD: {}", error.empty() ? ec.message() : error);
  };
  store_.load(*c, loaded);
  queue_store_.load(*c, loaded);
  presence_store_.load(*c, loaded);
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
    resume_queues(s);
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
  lose_queues(s);
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

}  // namespace broker
