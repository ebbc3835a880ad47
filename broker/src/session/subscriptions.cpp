#include "broker/log.hpp"
#include "session/session.hpp"
#include "stomp/decimal.hpp"
#include "stomp/serializer.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>

// Subscriptions: SUBSCRIBE (with x-replay history first), UNSUBSCRIBE, ACK/NACK, and the
// delivery of topic and queue messages into the outbox.

namespace net = boost::asio;

namespace broker {

using stomp::command;
using stomp::header_view;
using clock = std::chrono::steady_clock;

void session::handle_subscribe(const stomp::frame_view& f) {
  auto dest = f.header("destination");
  if (!dest) return protocol_error("missing header", "SUBSCRIBE requires 'destination'", &f);
  // Replay (x-replay) is a subscription too: the same rule covers history.
  if (!check_destination(*dest, f) || !authorized(auth::action::subscribe, *dest, f)) return;
  auto id = f.header("id");
  if (!id && version_ != stomp::version::v1_0)
    return protocol_error("missing header", "SUBSCRIBE requires 'id' in STOMP 1.1 and 1.2", &f);
  std::string sub_id(id ? *id : *dest);  // 1.0: the destination identifies the subscription
  if (subscription_keys_.contains(sub_id))
    return protocol_error("duplicate subscription",
                          fmt::format("subscription id '{}' is already in use", sub_id), &f);
  if (subscriptions_.size() >= ctx_.settings.limits.max_subscriptions_per_connection)
    return protocol_error("too many subscriptions",
                          fmt::format("limit is {} per connection",
                                      ctx_.settings.limits.max_subscriptions_per_connection),
                          &f);
  ack_mode mode = ack_mode::auto_ack;
  if (auto a = f.header("ack")) {
    if (*a == "client")
      mode = ack_mode::client;
    else if (*a == "client-individual")
      mode = ack_mode::client_individual;
    else if (*a != "auto")
      return protocol_error(
          "invalid ack mode",
          fmt::format("ack must be auto, client or client-individual, got '{}'", *a), &f);
  }
  std::size_t prefetch = ctx_.settings.limits.default_prefetch;
  if (auto p = f.header("prefetch-count")) {
    auto n = stomp::parse_decimal<std::size_t>(*p);
    if (!n)
      return protocol_error("invalid prefetch-count",
                            fmt::format("prefetch-count must be an integer, got '{}'", *p), &f);
    prefetch = *n;  // 0: unbounded, as in RabbitMQ
  }

  std::optional<storage::replay_request> replay;
  if (auto x = f.header("x-replay")) {
    replay = parse_replay(*x);
    if (!replay)
      return protocol_error(
          "invalid x-replay",
          fmt::format("invalid x-replay header value '{}': expected last:N, after:SEQ, "
                      "since:UNIX_MS or before:SEQ",
                      *x),
          &f);
    if (auto problem = older_history_problem(f, *replay); !problem.empty())
      return protocol_error("invalid x-replay", problem, &f);
    if (auto problem = ctx_.publishing->replay_problem(*dest); !problem.empty())
      return protocol_error("history not kept", problem, &f);
    // The epoch the client's after:SEQ was seen in: another one numbers other messages.
    if (auto e = f.header("x-epoch")) replay->epoch = std::string(*e);
  }

  bool wants_presence = false;
  if (auto p = f.header("x-presence")) {
    if (*p != "true" && *p != "false")
      return protocol_error("invalid x-presence",
                            fmt::format("x-presence must be true or false, got '{}'", *p), &f);
    wants_presence = *p == "true";
    if (wants_presence && !dest->starts_with("/topic/"))
      return protocol_error("invalid x-presence", "x-presence is for /topic/ destinations", &f);
  }

  auto key = next_key_++;
  subscription sub;
  sub.id = sub_id;
  sub.destination = std::string(*dest);
  sub.mode = mode;
  sub.is_queue = dest->starts_with("/queue/");
  sub.history_only = replay && replay->mode == storage::replay_request::kind::before;
  sub.presence = wants_presence;
  sub.key = key;
  stomp::shared_message::head(sub.head, sub.id, {}, version_);
  if (mode != ack_mode::auto_ack && version_ == stomp::version::v1_2)
    sub.ack_prefix = fmt::format("ack:{}-", key);
  auto& stored = subscriptions_.emplace(key, std::move(sub)).first->second;
  std::erase(ended_history_ids_, sub_id);  // the id names a new subscription now
  subscription_keys_.emplace(std::move(sub_id), key);
  if (stored.is_queue) {
    // The consumer is registered by raw pointer: release_resources() removes it before this
    // session can go away, and deliveries reach us by post (on_queue_message).
    stored.q = ctx_.queues.with_queue(stored.destination,
                                      [&](queue& q) { q.add_consumer(this, key, mode, prefetch); });
    if (!stored.q) {  // limits.max_queues: nothing was registered, so forget the subscription
      auto why = ctx_.publishing->limit_refusal(publisher::status::too_many_queues, *dest);
      subscription_keys_.erase(stored.id);
      subscriptions_.erase(key);
      return protocol_error(why.message, why.detail, &f);
    }
  } else if (!stored.history_only) {
    ctx_.topics.subscribe(worker_.index, stored.destination, this, key);
    enter_presence(stored);
  }
  log_debug("session={} subscribed id={} destination={}", id_, stored.id, stored.destination);
  auto receipt = f.header("receipt");
  if (!replay && receipt && !stored.is_queue) {
    // The RECEIPT promises every message published after it; a shared engine first follows
    // the topic (for a journaled one, learns where its sequence stands); the local one at once.
    ctx_.publishing->when_following(
        worker_.index, stored.destination,
        [weak = weak_from_this(), key, held = receipts_.hold(*receipt)] {
          auto self = weak.lock();
          if (!self || self->closing_) return;
          auto it = self->subscriptions_.find(key);
          if (it == self->subscriptions_.end()) return self->complete_receipt(held);
          self->complete_subscribe_receipt(it->second, held);
        });
    return;
  }
  if (!replay) return send_receipt(f);
  // Subscribed first, read second: whatever is committed after the read started arrives
  // live and waits in `pending`; on_replay() drops what the read already returned.
  stored.replaying = true;
  stored.replay = std::move(*replay);
  if (auto r = f.header("receipt")) stored.replay_receipt = receipts_.hold(*r);
  replay_queue_.push_back(key);
  start_next_replay();
}

std::string session::older_history_problem(const stomp::frame_view& f,
                                           storage::replay_request& r) const {
  auto limit = f.header("x-replay-limit");
  if (r.mode != storage::replay_request::kind::before)
    return limit ? "x-replay-limit goes with x-replay: before:SEQ only" : "";
  if (r.value == 0) return "x-replay: before:SEQ needs a SEQ of 1 or more";
  // Its end is its RECEIPT: without one a client could not tell the page is complete.
  if (!f.header("receipt")) return "x-replay: before:SEQ needs a receipt header";
  if (limit) {
    auto n = stomp::parse_decimal<std::size_t>(*limit);
    if (!n || *n == 0)
      return fmt::format("x-replay-limit must be a count of 1 or more, got '{}'", *limit);
    r.limit = *n;
  }
  return {};
}

void session::enter_presence(subscription& sub) {
  if (sub.presence) sub.counted = std::make_shared<presence_count>();
  ctx_.publishing->enter_presence(worker_.index, sub.destination, user_,
                                  [counted = sub.counted](std::size_t n) {
                                    if (!counted) return;
                                    counted->n = n;
                                    if (auto then = std::exchange(counted->then, nullptr)) then(n);
                                  });
}

void session::leave_presence(const subscription& sub) {
  ctx_.publishing->leave_presence(worker_.index, sub.destination, user_);
}

void session::complete_subscribe_receipt(const subscription& sub, receipt_order::ticket t,
                                         std::vector<receipt_order::header> said) {
  if (!sub.counted) return complete_receipt(t, std::move(said));
  auto finish = [weak = weak_from_this(), t, said = std::move(said)](std::size_t n) mutable {
    auto self = weak.lock();
    if (!self || self->closing_) return;
    said.push_back({"x-presence-count", fmt::format("{}", n)});
    self->complete_receipt(t, std::move(said));
  };
  if (sub.counted->n) return finish(*sub.counted->n);
  sub.counted->then = std::move(finish);
}

void session::start_next_replay() {
  while (!replay_in_flight_ && outbox_.replay_bytes() == 0 && !replay_queue_.empty() && !closing_) {
    auto key = replay_queue_.front();
    replay_queue_.pop_front();
    auto it = subscriptions_.find(key);
    if (it == subscriptions_.end()) continue;  // unsubscribed while waiting
    replay_in_flight_ = true;
    replay_started_ = clock::now();
    ctx_.publishing->replay(worker_.index, it->second.destination, it->second.replay,
                            [weak = weak_from_this(), key](storage::replay_result&& r) {
                              if (auto self = weak.lock()) self->on_replay(key, std::move(r));
                            });
  }
}

void session::on_replay(std::uint64_t key, storage::replay_result&& r) {
  replay_in_flight_ = false;
  ctx_.metrics.replays.fetch_add(1, std::memory_order_relaxed);
  ctx_.metrics.replay_seconds.observe(
      std::chrono::duration<double>(clock::now() - replay_started_).count());
  if (closing_) return;
  auto it = subscriptions_.find(key);
  if (it == subscriptions_.end()) return start_next_replay();
  auto& sub = it->second;
  if (r.ec) {
    log_error("session={} replay failed destination={}: {}", id_, sub.destination, r.ec.message());
    return send_error_and_close(close_reason::protocol_error, "history unavailable", r.ec.message(),
                                receipts_.id(sub.replay_receipt));
  }
  for (const auto& rec : r.records)
    deliver(sub, make_stored_message(ctx_.held, rec, r.epoch, true), false, true);
  if (sub.replay_receipt) {
    std::vector<receipt_order::header> said = {
        {"x-replay-count", fmt::format("{}", r.records.size())},
        {"x-head-seq", fmt::format("{}", r.head_seq)},
        {"x-replay-complete", r.complete ? "true" : "false"},
        {"x-epoch", r.epoch}};
    if (sub.history_only) said.push_back({"x-replay-older", r.older ? "true" : "false"});
    complete_subscribe_receipt(sub, *std::exchange(sub.replay_receipt, std::nullopt),
                               std::move(said));
  }
  if (sub.history_only) {
    // Older messages only, and they are sent: the subscription ends, its id free again.
    log_debug("session={} sent older history destination={} count={} older={}", id_,
              sub.destination, r.records.size(), r.older);
    subscription_keys_.erase(sub.id);
    if (ended_history_ids_.size() == 64) ended_history_ids_.erase(ended_history_ids_.begin());
    ended_history_ids_.push_back(std::move(sub.id));
    subscriptions_.erase(it);
    return start_next_replay();
  }
  // Live messages that arrived meanwhile, and any still on their way, that the read already
  // returned are dropped (last_seq), so history and live meet with no gap and no duplicate:
  // every commit after the read began is published after we subscribed, so it comes live.
  auto pending = std::move(sub.pending);
  sub.replaying = false;
  sub.pending.clear();
  pending_live_bytes_ -= sub.pending_bytes;
  sub.pending_bytes = 0;
  sub.last_seq = r.head_seq;
  sub.last_epoch = r.epoch;
  for (const auto& m : pending) {
    if (!sub.advance(*m)) continue;
    deliver(sub, m, false);
  }
  log_debug("session={} replayed destination={} count={} head_seq={} complete={}", id_,
            sub.destination, r.records.size(), r.head_seq, r.complete);
  start_next_replay();
}

void session::handle_unsubscribe(const stomp::frame_view& f) {
  auto id = f.header("id");
  if (!id && version_ == stomp::version::v1_0) id = f.header("destination");
  if (!id) return protocol_error("missing header", "UNSUBSCRIBE requires 'id'", &f);
  auto k = subscription_keys_.find(std::string(*id));
  if (k == subscription_keys_.end()) {
    // A page of older history ended by itself: leaving it again is no mistake.
    auto ended = std::find(ended_history_ids_.begin(), ended_history_ids_.end(), *id);
    if (ended == ended_history_ids_.end())
      return protocol_error("unknown subscription",
                            fmt::format("no subscription with id '{}'", *id), &f);
    ended_history_ids_.erase(ended);
    return send_receipt(f);
  }
  auto key = k->second;
  subscription_keys_.erase(k);
  auto it = subscriptions_.find(key);
  pending_live_bytes_ -= it->second.pending_bytes;
  // Left before its history came: the SUBSCRIBE's receipt goes now, without replay headers,
  // or every receipt after it would wait for ever.
  if (auto held = std::exchange(it->second.replay_receipt, std::nullopt)) complete_receipt(*held);
  if (it->second.is_queue) {
    end_queue_subscription(it->second, true);
  } else if (!it->second.history_only) {
    ctx_.topics.unsubscribe(worker_.index, it->second.destination, this, key);
    leave_presence(it->second);
  }
  subscriptions_.erase(it);
  send_receipt(f);
}

bool session::handle_ack(const stomp::frame_view& f, bool positive, bool check_only) {
  const char* what = positive ? "ACK" : "NACK";
  // Which subscription and delivery: 1.2 uses the MESSAGE's `ack` value as `id`
  // ("<subscription key>-<message-id>"); 1.1 uses subscription + message-id; 1.0 only
  // message-id.
  std::string_view message_id;
  std::vector<std::uint64_t> candidates;
  if (version_ == stomp::version::v1_2) {
    auto id = f.header("id");
    if (!id) {
      protocol_error("missing header", fmt::format("{} requires 'id'", what), &f);
      return false;
    }
    auto dash = id->find('-');
    std::uint64_t key = 0;
    if (dash != std::string_view::npos)
      key = stomp::parse_decimal<std::uint64_t>(id->substr(0, dash)).value_or(0);
    if (key == 0 || !subscriptions_.contains(key)) {
      protocol_error("unknown ack id",
                     fmt::format("{} id '{}' matches no message delivered here", what, *id), &f);
      return false;
    }
    message_id = id->substr(dash + 1);
    candidates.push_back(key);
  } else {
    auto mid = f.header("message-id");
    if (!mid) {
      protocol_error("missing header", fmt::format("{} requires 'message-id'", what), &f);
      return false;
    }
    message_id = *mid;
    if (auto sub = f.header("subscription"); sub && version_ == stomp::version::v1_1) {
      auto k = subscription_keys_.find(std::string(*sub));
      if (k == subscription_keys_.end()) {
        protocol_error("unknown subscription", fmt::format("no subscription with id '{}'", *sub),
                       &f);
        return false;
      }
      candidates.push_back(k->second);
    } else {
      for (const auto& entry : subscriptions_) candidates.push_back(entry.first);
    }
  }
  for (auto key : candidates) {
    const auto& sub = subscriptions_.at(key);
    if (!sub.is_queue || sub.mode == ack_mode::auto_ack) {
      // Topic deliveries are not tracked: acknowledging one is accepted and has no effect.
      if (candidates.size() == 1) return true;
      continue;
    }
    bool cumulative = sub.mode == ack_mode::client;
    bool found = check_only ? sub.q->awaiting(this, key, message_id)
                 : positive ? sub.q->ack(this, key, message_id, cumulative)
                            : sub.q->nack(this, key, message_id, cumulative);
    if (found) return true;
  }
  protocol_error(
      "unknown message",
      fmt::format("{} for message '{}', which is not awaiting acknowledgement", what, message_id),
      &f);
  return false;
}

void session::on_topic_message(const message_ptr& m, std::uint64_t key) {
  if (closing_ || condemned_) return;
  auto it = subscriptions_.find(key);
  if (it == subscriptions_.end()) return;
  auto& sub = it->second;
  if (m->presence && !sub.presence) return;  // a join or leave: for those who asked
  if (!sub.replaying) {
    if (!sub.advance(*m)) return;  // the replay delivered it
    return deliver(sub, m, false);
  }
  // Bounded like the outbound queue, in frames and in bytes together with it: history that
  // takes too long to read must not let live messages pile up without limit.
  const auto size = m->encoded.tail(version_).size();
  sub.pending.push_back(m);
  sub.pending_bytes += size;
  pending_live_bytes_ += size;
  const auto& limits = ctx_.settings.limits;
  if (sub.pending.size() > limits.max_queued_frames ||
      pending_live_bytes_ + outbox_.bytes() - outbox_.replay_bytes() > limits.max_queued_bytes)
    condemn_slow_consumer();
}

void session::on_queue_message(const message_ptr& m, std::uint64_t key, bool redelivered) {
  // Any thread, with the queue's mutex held: hop to our worker. A session already gone by
  // then leaves the message in the queue's unacknowledged list, which its removal requeued.
  net::post(worker_.io, [weak = weak_from_this(), m, key, redelivered] {
    auto self = weak.lock();
    if (!self || self->closing_) return;
    auto it = self->subscriptions_.find(key);
    if (it != self->subscriptions_.end()) self->deliver(it->second, m, redelivered);
  });
}

void session::deliver(const subscription& sub, const message_ptr& m, bool redelivered,
                      bool replayed) {
  outbox::entry o;
  o.replayed = replayed;
  constexpr std::string_view redelivered_header = "redelivered:true\n";
  if (sub.ack_prefix.empty() && !redelivered && sub.head.size() <= o.inline_head.size()) {
    // The common case (auto ack, first delivery): the head is the subscription's, copied.
    std::copy(sub.head.begin(), sub.head.end(), o.inline_head.begin());
    o.inline_size = static_cast<std::uint8_t>(sub.head.size());
  } else {
    o.bytes.reserve(sub.head.size() + sub.ack_prefix.size() + m->id.size() + 20);
    o.bytes = sub.head;
    if (!sub.ack_prefix.empty()) {
      o.bytes += sub.ack_prefix;
      stomp::append_escaped(o.bytes, m->id, version_);
      o.bytes += '\n';
    }
    if (redelivered) o.bytes += redelivered_header;
  }
  o.tail = m->encoded.tail(version_);
  o.msg = m;
  if (sub.is_queue) {
    // Bounded by the queue's write window, and reported back once written.
    o.credit_key = sub.key;
    o.credit_bytes = queue::delivery_bytes(*m);
  }
  ++messages_out_;
  bump(stats_.messages_out);
  bump(stats_.frames_out[static_cast<std::size_t>(command::message)]);
  enqueue(std::move(o));
}

}  // namespace broker
