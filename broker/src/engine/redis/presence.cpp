#include "engine/redis/redis_engine.hpp"
#include "net/event_loop.hpp"
#include "routing/publish.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <utility>

// Who is in each topic across the nodes (x-presence): this node's users entered and left in
// Redis (presence_store), vouched for while the node lives, and the joins and leaves Redis
// announces delivered to this node's subscribers.

namespace broker {

namespace net = boost::asio;
using boost::system::error_code;

void redis_engine::enter_presence(std::size_t w, std::string_view destination,
                                  std::string_view user, std::function<void(std::size_t)> counted) {
  // Counted here first, so a vouch() from now on includes the user. Entered in Redis every
  // time (not only for the node's first subscription of the user): the RECEIPT's count is
  // Redis's, and entering again only renews.
  present_.enter(destination, user);
  net::post(io_, [this, w, d = std::string(destination), u = std::string(user),
                  counted = std::move(counted)]() mutable {
    auto step = [this, w, d, u, counted = std::move(counted)] {
      auto answer = [this, w, d, counted](std::optional<std::size_t> n) {
        // Redis unreachable: this node's own count is the best there is.
        workers_.post(w, [counted, n = n.value_or(present_.count(d))] { counted(n); });
      };
      auto& s = shard_for(d);
      if (!s.up) return answer(std::nullopt);
      presence_store_.enter(*s.commands, d, channel_of(d), origin_, u,
                            [answer](redis::presence_store::present p) {
                              answer(p.ec ? std::nullopt : std::optional(p.count));
                            });
    };
    // Once the topic is followed (the subscription made the follow, posted before this), so
    // the join reaches this node's subscribers too, the user's own among them, as on one node.
    after_follow_starts(d, std::move(step));
  });
}

void redis_engine::leave_presence(std::size_t, std::string_view destination,
                                  std::string_view user) {
  // Only the node's last subscription of the user leaves Redis. If Redis can't be told now,
  // the entry is no longer vouched for, and times out.
  if (!present_.leave(destination, user)) return;
  net::post(io_, [this, d = std::string(destination), u = std::string(user)] {
    // Behind an enter still waiting for the follow, never before it.
    after_follow_starts(d, [this, d, u] {
      auto& s = shard_for(d);
      if (s.up) presence_store_.leave(*s.commands, d, channel_of(d), origin_, u);
    });
  });
}

std::vector<engine::presence_info> redis_engine::presence_of(
    std::span<const std::string> destinations, std::size_t limit) const {
  using list = std::vector<presence_info>;
  // What this node alone knows, for a destination whose Redis does not answer.
  list out = presence_on_node(present_, destinations, limit);
  // Copied: after a timeout the step may still run, once this call has returned.
  std::vector<std::string> names(destinations.begin(), destinations.end());
  auto asked = ask<list>(
      [this, out, names = std::move(names), limit](std::function<void(list)> done) mutable {
        auto g = std::make_shared<gathering<list>>();
        g->found = std::move(out);
        g->done = std::move(done);
        for (std::size_t i = 0; i < names.size(); ++i) {
          const auto& s = shard_for(names[i]);
          if (!s.up) continue;
          ++g->left;
          presence_store_.members(*s.commands, names[i], channel_of(names[i]), limit,
                                  [g, i](redis::presence_store::present p) {
                                    if (!p.ec) g->found[i] = {p.count, std::move(p.members)};
                                    g->one();
                                  });
        }
        g->one();
      });
  return asked ? std::move(*asked) : out;
}

void redis_engine::on_presence(const follow& f, redis::presence_store::event e) {
  delivered_.push_back(make_presence_message(
      held_, f.destination, fmt::format("presence-{}-{}", origin_, ++presence_events_), e.kind,
      e.user, e.count));
  publish_delivered();
}

void redis_engine::vouch() {
  for (auto& [destination, users] : present_.rooms()) {
    auto& s = shard_for(destination);
    if (s.up)
      presence_store_.renew(*s.commands, destination, channel_of(destination), origin_, users);
  }
  presence_timer_.expires_after(settings_.cluster.redis.presence_timeout / 3);
  presence_timer_.async_wait([this](error_code ec) {
    if (!ec) vouch();
  });
}

}  // namespace broker
