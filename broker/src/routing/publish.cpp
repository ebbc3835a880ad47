#include "routing/publish.hpp"

#include "metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>

namespace broker {

namespace {

bool is_reserved_header(std::string_view name) {
  return name == "destination" || name == "receipt" || name == "transaction" ||
         name == "content-length" || name == "message-id" || name == "subscription" ||
         name == "ack" || name == "redelivered" || name == "x-seq" || name == "x-replayed";
}

bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

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

message_ptr make_live_message(std::string_view destination, std::string message_id,
                              std::span<const stomp::header_view> passed, std::string_view body) {
  header_views headers;
  headers.push_back({"destination", destination});
  headers.push_back({"message-id", message_id});
  headers.insert(headers.end(), passed.begin(), passed.end());
  stomp::shared_message encoded(headers, body);
  bool text = is_utf8(encoded.tail(stomp::version::v1_2));
  return std::make_shared<const message>(std::string(destination), std::move(message_id),
                                         std::move(encoded), text);
}

route_result route(broker_context& ctx, std::size_t w, const message_ptr& m) {
  if (m->destination.starts_with("/topic/")) {
    ctx.topics.publish(w, m);
    return route_result::routed;
  }
  bool accepted = false;
  ctx.queues.with_queue(m->destination, [&](queue& q) { accepted = q.enqueue(m); });
  return accepted ? route_result::routed : route_result::queue_full;
}

void publish_from_admin(broker_context& ctx, worker& w, std::string destination,
                        std::vector<std::pair<std::string, std::string>> headers, std::string body,
                        const auth::principal* who,
                        std::function<void(admin::publish_result)> done) {
  if (auto problem = destination_problem(destination, ctx.settings.limits.max_destination_bytes);
      !problem.empty())
    return done({400, problem, 0, {}});
  if (who &&
      !ctx.security->authorizer.permissions_for(*who).allows(auth::action::send, destination))
    return done(
        {403, fmt::format("user '{}' may not send to '{}'", who->user, destination), 0, {}});
  bump(w.stats.messages_in);  // counted like a SEND (we are on w's thread)
  std::vector<stomp::header_view> views;
  for (const auto& [name, value] : headers) views.push_back({name, value});
  auto passed = passable_headers(views);
  if (ctx.journal && destination.starts_with("/topic/") &&
      ctx.journal->policy_for(destination).journaled) {
    history::header_list kept;
    for (const auto& h : passed) kept.emplace_back(h.name, h.value);
    ctx.journal->append(w.index, destination, std::move(kept), std::move(body),
                        [done = std::move(done)](const storage::append_result& r) {
                          if (r.ec) return done({503, r.ec.message(), 0, {}});
                          done({200, {}, r.seq, fmt::format("{}", r.seq)});
                        });
    return;
  }
  static std::atomic<std::uint64_t> admin_messages{0};
  auto id = fmt::format("admin-{}", admin_messages.fetch_add(1) + 1);
  auto m = make_live_message(destination, id, passed, body);
  if (route(ctx, w.index, m) == route_result::queue_full)
    return done({503, fmt::format("queue '{}' is full", destination), 0, {}});
  done({200, {}, 0, std::move(id)});
}

}  // namespace broker
