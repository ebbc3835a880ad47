#include "routing/publish.hpp"

#include "net/event_loop.hpp"
#include "stomp/decimal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace broker {

namespace {

bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

// Adapts a callback to publish_listener for publishes that are not a session's (the admin
// API's). The engine holds listeners weakly, so this one owns itself until it has heard: the
// engine always answers an append, with errc::closed when shutting down.
struct callback_listener final : publish_listener {
  explicit callback_listener(std::function<void(const storage::append_result&)> f)
      : done(std::move(f)) {}
  void on_stored(std::uint64_t, const storage::append_result& r) override {
    auto keep = std::move(self);  // released when this returns
    done(r);
  }
  std::function<void(const storage::append_result&)> done;
  std::shared_ptr<callback_listener> self;
};

}  // namespace

std::string destination_problem(std::string_view d, std::size_t max_bytes) {
  std::string_view problem;
  if (d.empty())
    problem = "is empty";
  else if (d.size() > max_bytes)
    problem = "is too long";
  else if (std::any_of(d.begin(), d.end(), is_control))
    problem = "contains a control character";
  else if (!((d.starts_with("/topic/") && d.size() > 7) ||
             (d.starts_with("/queue/") && d.size() > 7)))
    problem = "must start with /topic/ or /queue/ followed by a name";
  if (problem.empty()) return {};
  std::string shown(d.substr(0, 128));
  std::replace_if(shown.begin(), shown.end(), is_control, '?');
  return fmt::format("destination '{}' {}", shown, problem);
}

bool is_reserved_header(std::string_view name) noexcept {
  // x-presence*: only the broker's join and leave events carry them, so none can be faked.
  static constexpr std::array<std::string_view, 15> reserved = {"destination",
                                                                "receipt",
                                                                "transaction",
                                                                "content-length",
                                                                "message-id",
                                                                "subscription",
                                                                "ack",
                                                                "redelivered",
                                                                "x-seq",
                                                                "x-epoch",
                                                                "x-replayed",
                                                                idempotency_header,
                                                                "x-presence",
                                                                "x-presence-user",
                                                                "x-presence-count"};
  return std::find(reserved.begin(), reserved.end(), name) != reserved.end();
}

header_views passable_headers(std::span<const stomp::header_view> headers) {
  header_views passed;
  for (const auto& h : headers) {
    if (is_reserved_header(h.name)) continue;
    if (std::any_of(passed.begin(), passed.end(),
                    [&](const stomp::header_view& x) { return x.name == h.name; }))
      continue;
    passed.push_back(h);
  }
  return passed;
}

message_ptr make_live_message(held_bytes& budget, std::string_view destination,
                              std::string message_id, std::span<const stomp::header_view> passed,
                              std::string_view body) {
  header_views headers;
  headers.push_back({"destination", destination});
  headers.push_back({"message-id", message_id});
  headers.insert(headers.end(), passed.begin(), passed.end());
  stomp::shared_message encoded(headers, body);
  bool text = is_utf8(encoded.tail(stomp::version::v1_2));
  return std::make_shared<const message>(budget, std::string(destination), std::move(message_id),
                                         std::move(encoded), text);
}

message_ptr make_stored_message(held_bytes& budget, const storage::record& r,
                                std::string_view epoch, bool replayed) {
  auto seq = fmt::format("{}", r.seq);
  std::vector<stomp::header_view> headers;
  headers.reserve(r.headers.size() + 5);
  headers.push_back({"destination", r.destination});
  headers.push_back({"message-id", seq});
  headers.push_back({"x-seq", seq});
  headers.push_back({"x-epoch", epoch});
  if (replayed) headers.push_back({"x-replayed", "true"});
  for (const auto& [name, value] : r.headers) headers.push_back({name, value});
  stomp::shared_message encoded(headers, r.body);
  bool text = is_utf8(encoded.tail(stomp::version::v1_2));
  auto m = std::make_shared<message>(budget, r.destination, std::move(seq), std::move(encoded),
                                     text, r.seq);
  m->epoch = epoch;
  return m;
}

message_ptr make_queued_message(held_bytes& budget, const storage::record& r) {
  auto id = fmt::format("{}", r.seq);
  std::vector<stomp::header_view> headers;
  headers.reserve(r.headers.size() + 2);
  headers.push_back({"destination", r.destination});
  headers.push_back({"message-id", id});
  for (const auto& [name, value] : r.headers) headers.push_back({name, value});
  stomp::shared_message encoded(headers, r.body);
  bool text = is_utf8(encoded.tail(stomp::version::v1_2));
  return std::make_shared<message>(budget, r.destination, std::move(id), std::move(encoded), text,
                                   r.seq);
}

message_ptr make_presence_message(held_bytes& budget, std::string_view destination,
                                  std::string message_id, std::string_view event,
                                  std::string_view user, std::size_t count) {
  const auto n = fmt::format("{}", count);
  const stomp::header_view headers[] = {{"destination", destination},
                                        {"message-id", message_id},
                                        {"x-presence", event},
                                        {"x-presence-user", user},
                                        {"x-presence-count", n}};
  stomp::shared_message encoded(headers, {});
  bool text = is_utf8(encoded.tail(stomp::version::v1_2));
  auto m = std::make_shared<message>(budget, std::string(destination), std::move(message_id),
                                     std::move(encoded), text);
  m->presence = true;
  return m;
}

std::optional<storage::replay_request> parse_replay(std::string_view v) {
  using kind = storage::replay_request::kind;
  storage::replay_request r;
  std::string_view number;
  if (v.starts_with("last:")) {
    r.mode = kind::last;
    number = v.substr(5);
  } else if (v.starts_with("after:")) {
    r.mode = kind::after;
    number = v.substr(6);
  } else if (v.starts_with("since:")) {
    r.mode = kind::since;
    number = v.substr(6);
  } else if (v.starts_with("before:")) {
    r.mode = kind::before;
    number = v.substr(7);
  } else {
    return std::nullopt;
  }
  auto value = stomp::parse_decimal<std::uint64_t>(number);
  if (!value) return std::nullopt;
  r.value = *value;
  return r;
}

publisher::publisher(const config& settings, worker_pool& workers, held_bytes& held,
                     std::unique_ptr<engine> e)
    : settings_(settings), workers_(workers), held_(held), engine_(std::move(e)) {}

publisher::status publisher::publish(std::size_t w, const request& r,
                                     std::weak_ptr<publish_listener> listener,
                                     std::uint64_t ticket) {
  std::string_view key;
  for (const auto& h : r.headers) {
    if (h.name != idempotency_header) continue;
    if (h.value.empty() || h.value.size() > max_idempotency_key_bytes)
      return status::bad_idempotency_key;
    key = h.value;
    break;  // the first one counts, as for every repeated header
  }
  auto passed = passable_headers(r.headers);
  // A stored queue's message is stored like a journaled topic's: the RECEIPT after the store
  // answered.
  const bool stored_queue =
      r.destination.starts_with("/queue/") && engine_->stores_queue(r.destination);
  if (stored_queue || engine_->journaled(r.destination)) {
    engine::header_list kept;
    kept.reserve(passed.size());
    for (const auto& h : passed) kept.emplace_back(h.name, h.value);
    // The RECEIPT waits for the commit (a backend may tell its own client "stored"), and so
    // does delivery: the engine delivers once the message is stored.
    const auto bytes = store_bytes(r);
    pending_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    auto done = [this, bytes, listener = std::move(listener),
                 ticket](const storage::append_result& a) {
      pending_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
      if (a.ec && a.ec != engine_errc::queue_full)
        store_failures_.fetch_add(1, std::memory_order_relaxed);
      if (auto l = listener.lock()) l->on_stored(ticket, a);
    };
    const bool accepted =
        stored_queue ? engine_->enqueue(w, std::string(r.destination), std::move(kept),
                                        std::string(r.body), std::move(done))
                     : engine_->append(w, std::string(r.destination), std::move(kept),
                                       std::string(r.body), std::string(key), std::move(done));
    if (accepted) return status::storing;
    pending_bytes_.fetch_sub(bytes, std::memory_order_relaxed);  // refused: never pending
    return stored_queue ? status::too_many_queues : status::too_many_journaled;
  }
  auto m = make_live_message(held_, r.destination, fmt::format("{}-{}", r.sender, r.sender_seq),
                             passed, r.body);
  switch (engine_->route(w, m, passed, r.body)) {
    case engine::route_result::routed:
      return status::routed;
    case engine::route_result::queue_full:
      return status::queue_full;
    case engine::route_result::too_many_queues:
      return status::too_many_queues;
  }
  return status::queue_full;  // not reached: every route_result is handled above
}

publisher::refusal publisher::limit_refusal(status s, std::string_view destination) const {
  if (s == status::too_many_queues)
    return {"too many queues",
            fmt::format("queue '{}' cannot be created: the broker already has {} queues "
                        "(limits.max_queues)",
                        destination, settings_.limits.max_queues)};
  return {"too many journaled destinations",
          fmt::format("destination '{}' cannot be journaled: the journal already keeps {} "
                      "destinations (limits.max_journaled_destinations)",
                      destination, settings_.limits.max_journaled_destinations)};
}

std::string publisher::bad_key_detail() {
  return fmt::format("{} must be 1 to {} bytes", idempotency_header, max_idempotency_key_bytes);
}

std::size_t publisher::store_bytes(const request& r) noexcept {
  std::size_t n = r.destination.size() + r.body.size();
  for (const auto& h : r.headers) n += h.name.size() + h.value.size() + 2;
  return n;
}

void publisher::when_stored(std::size_t w, std::function<void()> done) {
  engine_->when_stored(w, std::move(done));
}

std::string publisher::replay_problem(std::string_view destination) const {
  if (engine_->journaled(destination)) return {};
  return fmt::format("x-replay: destination '{}' is not journaled", destination);
}

void publisher::replay(std::size_t w, std::string_view destination, storage::replay_request r,
                       std::function<void(storage::replay_result&&)> done) {
  r.destination = std::string(destination);
  r.max_messages = settings_.journal.replay_max_messages;
  r.max_bytes = settings_.journal.replay_max_bytes;
  engine_->replay(std::move(r), [this, w, done = std::move(done)](storage::replay_result&& res) {
    workers_.post(w, [done, res = std::move(res)]() mutable { done(std::move(res)); });
  });
}

void publisher::publish_from_admin(std::size_t w, std::string destination,
                                   std::vector<std::pair<std::string, std::string>> headers,
                                   std::string body, std::function<void(admin_result)> done) {
  std::vector<stomp::header_view> views;
  views.reserve(headers.size());
  for (const auto& [name, value] : headers) views.push_back({name, value});
  // A STOMP producer would stop being read here; an HTTP one is told to come back.
  if (held_.over())
    return done({503,
                 fmt::format("the broker holds {} bytes of messages, over "
                             "limits.max_held_bytes_total ({}); retry later",
                             held_.bytes(), held_.limit()),
                 0,
                 {},
                 {}});
  auto n = admin_messages_.fetch_add(1, std::memory_order_relaxed) + 1;
  auto listener = std::make_shared<callback_listener>([done](const storage::append_result& r) {
    if (r.ec) return done({503, r.ec.message(), 0, {}, {}});
    if (r.seq == 0) return done({200, {}, 0, r.message_id, {}});  // a queue's: no x-seq
    done({200, {}, r.seq, fmt::format("{}", r.seq), r.epoch, r.duplicate});
  });
  request r{destination, views, body, "admin", n};
  listener->self = listener;
  auto outcome = publish(w, r, listener, 0);
  if (outcome != status::storing) listener->self.reset();  // it will hear nothing
  switch (outcome) {
    case status::storing:
      return;  // the listener answers
    case status::queue_full:
      return done({503, fmt::format("queue '{}' is full", destination), 0, {}, {}});
    case status::too_many_queues:
    case status::too_many_journaled:
      return done({503, limit_refusal(outcome, destination).detail, 0, {}, {}});
    case status::bad_idempotency_key:
      return done({400, bad_key_detail(), 0, {}, {}});
    case status::routed:
      return done({200, {}, 0, fmt::format("admin-{}", n), {}});
  }
}

}  // namespace broker
