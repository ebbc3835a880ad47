#include "admin/routes.hpp"

#include "admin/admin_render.hpp"
#include "admin/http_session.hpp"
#include "auth/principal.hpp"
#include "broker/destination_pattern.hpp"
#include "broker/log.hpp"
#include "stomp/decimal.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

namespace broker::admin {

namespace {

constexpr std::size_t default_page_limit = 100;
constexpr std::size_t max_page_limit = 1000;

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> d{};
  unsigned int n = 0;
  if (EVP_Digest(s.data(), s.size(), d.data(), &n, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");  // OpenSSL broken: startup or request fails
  return d;
}

// The bearer token of `req`: nullopt without an Authorization header, "" for one that is not
// "Bearer <token>".
std::optional<std::string_view> bearer_token(const request& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return std::nullopt;
  return admin::bearer_token(it->value());
}

// Whether `segments` spell the route path `pattern` ("/api/destinations/{name}", where
// "{...}" matches any one segment); `param` is set to the segment it matched.
bool matches(std::string_view pattern, const std::vector<std::string>& segments,
             std::string_view& param) {
  for (const std::string& segment : segments) {
    if (!pattern.starts_with('/')) return false;
    pattern.remove_prefix(1);
    auto part = pattern.substr(0, pattern.find('/'));
    pattern.remove_prefix(part.size());
    if (part.starts_with('{'))
      param = segment;
    else if (part != segment)
      return false;
  }
  return pattern.empty();
}

}  // namespace

// Where broker threads hand publish results back to the admin thread. Closed by
// close_publishes(), after which late results are dropped instead of being posted to an
// event loop that is gone.
struct publish_gate {
  std::mutex mutex;
  routes* owner = nullptr;  // null once closed

  void deliver(std::uint64_t id, publish_result result) {  // any thread
    std::lock_guard lock(mutex);
    if (!owner) return;
    net::post(owner->io_, [o = owner, id, r = std::move(result)]() mutable {
      o->on_published(id, std::move(r));
    });
  }
};

// First match wins. A path under /api/ that no route matches still needs the admin token:
// without it the answer is 401, not 404.
const routes::route routes::table_[] = {
    {"/healthz", access::open, {{{http::verb::get, &routes::healthz}}}},
    {"/readyz", access::open, {{{http::verb::get, &routes::readyz}}}},
    {"/metrics", access::open, {{{http::verb::get, &routes::get_metrics}}}},
    {"/api/publish", access::self, {{{http::verb::post, &routes::publish}}}},
    {"/api/destinations", access::admin, {{{http::verb::get, &routes::list_destinations}}}},
    {"/api/destinations/{name}", access::admin, {{{http::verb::get, &routes::get_destination}}}},
    {"/api/destinations/{name}/messages",
     access::admin,
     {{{http::verb::get, &routes::get_history}, {http::verb::delete_, &routes::purge_history}}}},
    {"/api/connections", access::admin, {{{http::verb::get, &routes::list_connections}}}},
    {"/api/connections/{id}",
     access::admin,
     {{{http::verb::get, &routes::get_connection}, {http::verb::delete_, &routes::kick}}}},
    {"/api/stats", access::admin, {{{http::verb::get, &routes::get_stats}}}},
};

routes::routes(const config::admin_listener& settings, broker_view& view, net::io_context& io)
    : settings_(settings),
      view_(view),
      io_(io),
      token_digest_(sha256(settings.token)),
      gate_(std::make_shared<publish_gate>()) {
  gate_->owner = this;
}

routes::~routes() { close_publishes(); }

void routes::close_publishes() {
  std::lock_guard lock(gate_->mutex);
  gate_->owner = nullptr;
}

void routes::drop_pending() { awaiting_publish_.clear(); }

std::optional<response> routes::handle(const std::shared_ptr<http_session>& s, const request& req) {
  std::string error;
  auto target = parse_target(req.target(), error);
  std::optional<response> res;
  if (!target) {
    res = error_response(http::status::bad_request, error);
  } else {
    // Nothing may escape onto the event loop (STYLE.md §7): a broker_view that throws costs
    // this request a 500, not the listener.
    try {
      res = dispatch(s, req, *target);
    } catch (const std::exception& e) {
      log_error("admin request failed method={} path={}: {}", std::string_view(req.method_string()),
                target->path, e.what());
      res = error_response(http::status::internal_server_error, "internal error");
    }
  }
  if (res)
    log_debug("admin request peer={} method={} path={} status={}", s->peer(),
              std::string_view(req.method_string()), target ? target->path : "?",
              res->result_int());
  return res;
}

const routes::route* routes::find(const request_target& t, std::string_view& param) {
  for (const route& r : table_) {
    std::string_view matched;
    if (matches(r.path, t.segments, matched)) {
      param = matched;
      return &r;
    }
  }
  return nullptr;
}

std::optional<response> routes::dispatch(const std::shared_ptr<http_session>& s, const request& req,
                                         const request_target& t) {
  std::string_view param;
  const route* r = find(t, param);
  const bool under_api = !t.segments.empty() && t.segments[0] == "api";
  // Browsers, before any token: a page on another site (cross-site request forgery) or one
  // that rebound its own name to this address (DNS rebinding) is refused whether or not an
  // admin token is configured. /healthz, /readyz and /metrics are left open to any Host and
  // Origin: scrapers and probes reach them by whatever name or address the network gives,
  // and they answer only counts (docs/SECURITY.md).
  if (under_api)
    if (auto refused = check_browser(req, *s, t)) return refused;
  if (under_api && (!r || r->who == access::admin))
    if (auto refused = check_admin(req, *s, t)) return refused;
  if (!r) {
    if (under_api && t.segments.size() > 3 && t.segments[1] == "destinations")
      return error_response(
          http::status::not_found,
          fmt::format("no such route: {}; percent-encode the destination name "
                      "as one path segment, e.g. /api/destinations/%2Ftopic%2Froom",
                      t.path));
    return error_response(http::status::not_found, fmt::format("no such route: {}", t.path));
  }
  const query_params q(t.query);
  std::string allowed;
  for (const auto& m : r->methods) {
    if (!m.run) continue;
    if (m.verb == req.method()) return (this->*m.run)(call{s, req, t, q, param});
    if (!allowed.empty()) allowed += ", ";
    allowed += http::to_string(m.verb);
  }
  return method_not_allowed(allowed);
}

bool routes::is_admin_token(std::string_view presented) const {
  if (settings_.token.empty()) return false;
  // Comparing fixed-size digests with CRYPTO_memcmp takes the same time wherever they differ,
  // and says nothing about the token's length.
  return CRYPTO_memcmp(sha256(presented).data(), token_digest_.data(), token_digest_.size()) == 0;
}

std::optional<response> routes::check_admin(const request& req, const http_session& s,
                                            const request_target& t) const {
  if (settings_.token.empty()) return std::nullopt;
  auto token = bearer_token(req);
  if (token && is_admin_token(*token)) return std::nullopt;
  log_warn("admin request refused peer={} method={} path={} reason={}", s.peer(),
           std::string_view(req.method_string()), t.path, token ? "wrong token" : "no token");
  return unauthorized(token.has_value());
}

std::optional<response> routes::check_browser(const request& req, const http_session& s,
                                              const request_target& t) const {
  const std::string_view host = req[http::field::host];
  std::string_view reason;
  if (!is_allowed_host(host, settings_.host, settings_.allowed_hosts)) {
    reason = "Host is not this listener's address, localhost or an admin.allowed_hosts name";
  } else if (auto origin = req.find(http::field::origin);
             origin != req.end() &&
             !is_allowed_origin(origin->value(), settings_.tls ? "https" : "http", host,
                                settings_.allowed_origins)) {
    reason = "cross-origin request: Origin is not this listener nor in admin.allowed_origins";
  } else {
    return std::nullopt;
  }
  log_warn("admin request refused peer={} method={} path={} reason=\"{}\"", s.peer(),
           std::string_view(req.method_string()), t.path, reason);
  return error_response(http::status::forbidden, std::string(reason));
}

std::optional<response> routes::healthz(const call&) {
  return make_response(http::status::ok, "text/plain; charset=utf-8", "ok\n");
}

std::optional<response> routes::readyz(const call&) {
  return view_.ready() ? make_response(http::status::ok, "text/plain; charset=utf-8", "ready\n")
                       : make_response(http::status::service_unavailable,
                                       "text/plain; charset=utf-8", "not ready\n");
}

std::optional<response> routes::get_metrics(const call& c) {
  if (auto e = c.query.only({})) return error_response(*e);
  auto m = view_.collect_metrics();
  auto s = view_.stats();
  return make_response(http::status::ok, prometheus_content_type, render_prometheus(m, s));
}

std::optional<response> routes::list_destinations(const call& c) {
  const auto& q = c.query;
  if (auto e = q.only({"prefix", "pattern", "offset", "limit"})) return error_response(*e);
  const std::string* prefix = q.get("prefix");
  const std::string* pattern_text = q.get("pattern");
  if (prefix && pattern_text)
    return error_response(http::status::bad_request, "give prefix or pattern, not both");
  std::optional<destination_pattern> pattern;
  if (pattern_text) {
    std::string why;
    pattern = destination_pattern::parse(*pattern_text, &why);
    if (!pattern) return error_response(http::status::bad_request, fmt::format("pattern: {}", why));
  }
  std::optional<bad_request> error;
  auto offset = q.number("offset", 0, 0, std::numeric_limits<std::uint32_t>::max(), error);
  auto limit = q.number("limit", default_page_limit, 1, max_page_limit, error);
  if (error) return error_response(*error);

  auto all = view_.destinations();
  std::erase_if(all, [&](const destination_info& d) {
    if (prefix) return !d.name.starts_with(*prefix);
    if (pattern) return !pattern->matches(d.name);
    return false;
  });
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  json::array page;
  for (std::size_t i = offset; i < all.size() && page.size() < limit; ++i)
    page.emplace_back(to_json(all[i], false));
  return json_response(http::status::ok, json::object{{"destinations", std::move(page)},
                                                      {"total", all.size()},
                                                      {"offset", offset},
                                                      {"limit", limit}});
}

std::optional<response> routes::get_destination(const call& c) {
  if (auto e = c.query.only({})) return error_response(*e);
  auto d = view_.destination(c.param);
  if (!d)
    return error_response(http::status::not_found, fmt::format("no such destination: {}", c.param));
  return json_response(http::status::ok, to_json(*d, true));
}

std::optional<response> routes::get_history(const call& c) {
  const auto& q = c.query;
  if (auto e = q.only({"after", "limit", "last"})) return error_response(*e);
  if (q.get("last") && (q.get("after") || q.get("limit")))
    return error_response(http::status::bad_request, "give last, or after and limit, not both");
  std::optional<bad_request> error;
  auto after = q.number("after", 0, 0, std::numeric_limits<std::uint64_t>::max(), error);
  auto limit = q.number("limit", default_page_limit, 1, max_page_limit, error);
  std::optional<std::size_t> last;
  if (q.get("last")) last = q.number("last", 0, 1, max_page_limit, error);
  if (error) return error_response(*error);

  auto page = view_.history(c.param, after, limit, last);
  if (!page)
    return error_response(http::status::not_found,
                          fmt::format("no stored history: {} is not journaled", c.param));
  json::array messages;
  messages.reserve(page->messages.size());
  for (const auto& m : page->messages) messages.emplace_back(to_json(m));
  return json_response(http::status::ok, json::object{{"destination", c.param},
                                                      {"messages", std::move(messages)},
                                                      {"head_seq", page->head_seq},
                                                      {"epoch", page->epoch},
                                                      {"complete", page->complete}});
}

std::optional<response> routes::purge_history(const call& c) {
  if (auto e = c.query.only({})) return error_response(*e);
  auto deleted = view_.purge(c.param);
  if (!deleted)
    return error_response(http::status::not_found,
                          fmt::format("no stored history: {} is not journaled", c.param));
  log_info("admin purged destination={} deleted={}", c.param, *deleted);
  return json_response(http::status::ok,
                       json::object{{"destination", c.param}, {"deleted", *deleted}});
}

std::optional<response> routes::list_connections(const call& c) {
  if (auto e = c.query.only({})) return error_response(*e);
  auto all = view_.connections();
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  json::array list;
  list.reserve(all.size());
  for (const auto& info : all) list.emplace_back(to_json(info));
  return json_response(http::status::ok, json::object{{"node", view_.node_name()},
                                                      {"connections", std::move(list)},
                                                      {"total", all.size()}});
}

std::optional<response> routes::get_connection(const call& c) {
  if (auto e = c.query.only({})) return error_response(*e);
  auto id = stomp::parse_decimal<std::uint64_t>(c.param);
  if (!id)
    return error_response(http::status::bad_request,
                          fmt::format("connection id must be a decimal number, got '{}'", c.param));
  for (const auto& info : view_.connections())
    if (info.id == *id) return json_response(http::status::ok, to_json(info));
  return error_response(http::status::not_found, fmt::format("no such connection: {}", *id));
}

std::optional<response> routes::kick(const call& c) {
  if (auto e = c.query.only({})) return error_response(*e);
  auto id = stomp::parse_decimal<std::uint64_t>(c.param);
  if (!id)
    return error_response(http::status::bad_request,
                          fmt::format("connection id must be a decimal number, got '{}'", c.param));
  if (!view_.disconnect(*id, "disconnected by administrator"))
    return error_response(http::status::not_found, fmt::format("no such connection: {}", *id));
  return json_response(http::status::ok, json::object{{"disconnected", *id}});
}

std::optional<response> routes::get_stats(const call& c) {
  if (auto e = c.query.only({})) return error_response(*e);
  return json_response(http::status::ok, to_json(view_.stats()));
}

std::optional<response> routes::publish(const call& c) {
  const auto& req = c.req;
  const auto& s = c.session;
  // Who is publishing: the admin token's holder (may send anywhere), or a backend with a
  // bearer token the broker's auth.jwt accepts (authorized like its STOMP SEND). Without an
  // admin token configured and without credentials, the caller is the admin.
  std::shared_ptr<const auth::principal> who;
  auto token = bearer_token(req);
  if (!token) {
    if (!settings_.token.empty()) {
      log_warn("admin request refused peer={} method=POST path={} reason=no token", s->peer(),
               c.target.path);
      return unauthorized(false);
    }
  } else if (!is_admin_token(*token)) {
    auto p = token->empty() ? std::nullopt : view_.verify_token(*token);
    if (!p) {
      log_warn("admin request refused peer={} method=POST path={} reason=wrong token", s->peer(),
               c.target.path);
      return unauthorized(true);
    }
    who = std::make_shared<const auth::principal>(std::move(*p));
  }

  // JSON only: a cross-site page can send text/plain, form and multipart bodies without a
  // CORS preflight, never application/json.
  if (!is_json(req[http::field::content_type]))
    return error_response(http::status::unsupported_media_type,
                          "Content-Type must be application/json: {\"destination\", \"body\" or "
                          "\"body_base64\", \"headers\"}");
  publish_request p;
  if (auto e = c.query.only({})) return error_response(*e);
  if (auto e = parse_json_publish(req.body(), p)) return error_response(*e);
  if (p.destination.empty())
    return error_response(http::status::bad_request, "destination is missing");
  if (has_line_break_or_nul(p.destination))
    return error_response(http::status::bad_request, "bad destination");
  for (const auto& [name, value] : p.headers)
    if (auto e = check_header(name, value)) return error_response(*e);

  std::uint64_t id = next_publish_id_++;
  awaiting_publish_.emplace(id, s);
  try {
    view_.publish(std::move(p.destination), std::move(p.headers), std::move(p.body), who.get(),
                  [g = gate_, id, who](publish_result r) { g->deliver(id, std::move(r)); });
  } catch (...) {
    awaiting_publish_.erase(id);
    throw;
  }
  return std::nullopt;  // on_published() answers
}

void routes::on_published(std::uint64_t id, publish_result r) {
  auto it = awaiting_publish_.find(id);
  if (it == awaiting_publish_.end()) return;  // the connection was closed meanwhile
  auto s = std::move(it->second);
  awaiting_publish_.erase(it);
  response res;
  if (r.http_status == 200) {
    json::object o{{"message-id", r.message_id}};
    if (r.seq != 0) {
      o["x-seq"] = r.seq;
      o["x-epoch"] = r.epoch;
    }
    if (r.duplicate) o["x-duplicate"] = true;
    res = json_response(http::status::ok, o);
  } else {
    auto status = static_cast<http::status>(r.http_status);
    if (http::to_status_class(status) == http::status_class::unknown)
      status = http::status::internal_server_error;
    res = error_response(status, r.error.empty() ? "publish failed" : r.error);
  }
  log_debug("admin request peer={} method=POST path=/api/publish status={}", s->peer(),
            res.result_int());
  s->send(std::move(res));
}

}  // namespace broker::admin
