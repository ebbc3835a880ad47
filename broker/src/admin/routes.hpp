#pragma once

#include "admin/admin_view.hpp"
#include "admin/request.hpp"
#include "admin/response.hpp"
#include "broker/config.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/verb.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace broker::admin {

class http_session;
struct publish_gate;

// The admin API's route table and its handlers: which method on which path does what, who
// may call it, and what it answers (docs/OPERATING.md lists them). Owned by server::impl.
//
// Threading: everything runs on the admin thread, except close_publishes(), and the
// broker_view callbacks of a publish, which may come from any broker thread and are posted
// to `io`. Errors: a bad request is answered with its status and {"error": ...}; a
// broker_view that throws costs its request a 500, never the listener.
class routes {
 public:
  routes(const config::admin_listener& settings, broker_view& view, boost::asio::io_context& io);
  ~routes();
  routes(const routes&) = delete;
  routes& operator=(const routes&) = delete;

  // The response to `req`, or nullopt when it comes later: a publish is answered through
  // `s->send()` once the broker has stored or routed the message.
  std::optional<response> handle(const std::shared_ptr<http_session>& s, const request& req);

  // From now on publish results are dropped instead of posted to `io`, which may be about to
  // stop. Any thread; server::stop() calls it before it joins the admin thread.
  void close_publishes();
  // Forgets the connections waiting for a publish result (they get no response). Admin
  // thread, or after it has ended.
  void drop_pending();

 private:
  // One request, as a handler sees it.
  struct call {
    const std::shared_ptr<http_session>& session;
    const request& req;
    const request_target& target;
    const query_params& query;
    std::string_view param;  // the {name} or {id} segment of the route, decoded; else ""
  };
  using handler = std::optional<response> (routes::*)(const call&);

  // Who may call a route.
  enum class access {
    open,   // anyone: probes and scrapers carry no secret
    admin,  // the admin token's holder
    self,   // the handler decides (POST /api/publish also takes a backend's token)
  };

  struct route {
    std::string_view path;  // "/api/destinations/{name}": "{...}" matches any one segment
    access who;
    struct method {
      boost::beast::http::verb verb = boost::beast::http::verb::unknown;
      handler run = nullptr;
    };
    std::array<method, 2> methods;  // unused slots have no handler
  };
  static const route table_[];

  static const route* find(const request_target& t, std::string_view& param);
  std::optional<response> dispatch(const std::shared_ptr<http_session>& s, const request& req,
                                   const request_target& t);

  // 403 for an /api/ request a browser was tricked into: Host not ours (DNS rebinding) or
  // Origin not allowed (a cross-site page); nullopt otherwise.
  std::optional<response> check_browser(const request& req, const http_session& s,
                                        const request_target& t) const;
  bool is_admin_token(std::string_view presented) const;
  std::optional<response> check_admin(const request& req, const http_session& s,
                                      const request_target& t) const;

  std::optional<response> healthz(const call& c);
  std::optional<response> readyz(const call& c);
  std::optional<response> get_metrics(const call& c);
  std::optional<response> list_destinations(const call& c);
  std::optional<response> get_destination(const call& c);
  std::optional<response> get_history(const call& c);
  std::optional<response> purge_history(const call& c);
  std::optional<response> list_connections(const call& c);
  std::optional<response> get_connection(const call& c);
  std::optional<response> kick(const call& c);
  std::optional<response> get_stats(const call& c);
  std::optional<response> publish(const call& c);

  friend struct publish_gate;
  void on_published(std::uint64_t id, publish_result result);

  const config::admin_listener& settings_;
  broker_view& view_;
  boost::asio::io_context& io_;
  const std::array<unsigned char, 32> token_digest_;  // SHA-256 of settings_.token
  std::shared_ptr<publish_gate> gate_;
  // Connections waiting for the broker to store a published message, by request id; the
  // map keeps them alive meanwhile.
  std::unordered_map<std::uint64_t, std::shared_ptr<http_session>> awaiting_publish_;
  std::uint64_t next_publish_id_ = 1;
};

}  // namespace broker::admin
