#include "broker/log.hpp"
#include "engine/redis/live_channel.hpp"
#include "engine/redis/redis_engine.hpp"
#include "routing/publish.hpp"

#include <fmt/format.h>

#include <utility>

// Following the destinations this node's subscribers want (redis_engine::follow): the
// feed's start, the channel subscription and its catch-up, and delivering what arrives.

namespace broker {

namespace net = boost::asio;
using boost::system::error_code;

namespace {

// Announcements that arrive between SUBSCRIBE and the head read, kept to be fed in once the
// feed starts; past this many the feed reads the stream again instead.
constexpr std::size_t max_early_announcements = 1000;

}  // namespace

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
    const auto channel = channel_of(destination);
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
      channel_of(f.destination),
      [this, d = f.destination, g = f.generation](std::string payload) {
        auto* here = find_follow(d, g);
        if (!here) return;
        if (auto e = redis::presence_store::parse_event(payload))
          return on_presence(*here, std::move(*e));
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
          return soon([this, d, g] {
            if (auto* again = find_follow(d, g); again && again->home->up) subscribe(*again);
          });
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

std::string redis_engine::channel_of(std::string_view destination) const {
  return journaled(destination)
             ? store_.channel(destination)
             : redis::live_channel(settings_.cluster.redis.key_prefix, destination);
}

void redis_engine::after_follow_starts(const std::string& destination, std::function<void()> step) {
  auto it = follows_.find(destination);
  if (it != follows_.end() && !it->second->started() && it->second->home->up)
    return it->second->until_ready.push_back(std::move(step));
  step();
}

void redis_engine::run_waiting(follow& f) {
  for (auto& task : std::exchange(f.until_ready, {})) task();
}

void redis_engine::publish_delivered() {
  if (delivered_.empty()) return;
  topics_.publish_batch(delivered_);
  delivered_.clear();
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

}  // namespace broker
