#include "admin/admin_server.hpp"

#include "admin/admin_render.hpp"
#include "admin/admin_view.hpp"
#include "auth/base64.hpp"
#include "auth/principal.hpp"
#include "broker/destination_pattern.hpp"
#include "broker/log.hpp"
#include "net/url.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;

namespace broker {

namespace {

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// A response has this long to be written; a client that stops reading is dropped.
constexpr std::chrono::seconds write_timeout{30};
// After an error response that closes the connection, how long unread request bytes are
// drained, so the close doesn't turn into a reset that loses the response.
constexpr std::chrono::seconds close_linger{2};
constexpr std::size_t default_page_limit = 100;
constexpr std::size_t max_page_limit = 1000;
constexpr std::string_view realm = "stompd-admin";

// Headers a publisher may not set: the broker computes them, or they mean something else in
// a SEND (STOMP 1.2, "SEND", "MESSAGE").
constexpr std::array<std::string_view, 9> reserved_headers = {
    "destination", "content-length", "message-id", "subscription", "ack",
    "receipt",     "transaction",    "x-seq",      "x-replayed"};

// ---------------------------------------------------------------------------------------------
// Request targets: percent-decoded path segments and query parameters
// ---------------------------------------------------------------------------------------------

struct parsed_target {
  std::string path;                   // as sent, for messages and logs
  std::vector<std::string> segments;  // decoded: "/api/destinations/%2Ftopic%2Fa" has 3
  std::vector<std::pair<std::string, std::string>> query;
};

std::optional<parsed_target> parse_target(std::string_view target, std::string* error) {
  parsed_target t;
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (path.empty() || path.front() != '/') {
    *error = "the request target must be a path";
    return std::nullopt;
  }
  t.path = std::string(path);
  // Split first, then decode: an encoded '/' (%2F) stays inside its segment, which is how a
  // destination name travels as one segment.
  for (std::size_t start = 1;;) {
    auto end = path.find('/', start);
    auto raw = path.substr(start, end == std::string_view::npos ? path.npos : end - start);
    auto segment = percent_decode(raw, false);
    if (!segment) {
      *error = "bad percent-encoding in the path";
      return std::nullopt;
    }
    t.segments.push_back(std::move(*segment));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  if (t.segments.size() > 1 && t.segments.back().empty()) t.segments.pop_back();  // "/x/"
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      auto amp = query.find('&');
      auto item = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
      if (item.empty()) continue;
      auto eq = item.find('=');
      auto key = percent_decode(item.substr(0, eq), true);
      auto value = percent_decode(
          eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1), true);
      if (!key || !value) {
        *error = "bad percent-encoding in the query";
        return std::nullopt;
      }
      t.query.emplace_back(std::move(*key), std::move(*value));
    }
  }
  return t;
}

// A problem with the request, answered with {"error": message}.
struct api_error {
  http::status status;
  std::string message;
};

// Query parameters of one request, checked against what its endpoint accepts.
class query_params {
 public:
  explicit query_params(const std::vector<std::pair<std::string, std::string>>& q) : q_(q) {}

  // An unknown or repeated parameter is an error, so a typo (?prefx=) is not silently a
  // request for everything.
  std::optional<api_error> only(std::initializer_list<std::string_view> allowed) const {
    for (std::size_t i = 0; i < q_.size(); ++i) {
      const auto& key = q_[i].first;
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        return api_error{http::status::bad_request, fmt::format("unknown parameter: {}", key)};
      for (std::size_t j = 0; j < i; ++j)
        if (q_[j].first == key)
          return api_error{http::status::bad_request, fmt::format("repeated parameter: {}", key)};
    }
    return std::nullopt;
  }

  const std::string* get(std::string_view key) const {
    for (const auto& [k, v] : q_)
      if (k == key) return &v;
    return nullptr;
  }

  // A decimal integer in [min, max]; `fallback` when absent.
  std::uint64_t number(std::string_view key, std::uint64_t fallback, std::uint64_t min,
                       std::uint64_t max, std::optional<api_error>& error) const {
    const std::string* text = get(key);
    if (!text) return fallback;
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc{} || end != text->data() + text->size() || value < min || value > max) {
      if (!error)
        error = api_error{
            http::status::bad_request,
            fmt::format("{}: expected an integer from {} to {}, got '{}'", key, min, max, *text)};
      return fallback;
    }
    return value;
  }

 private:
  const std::vector<std::pair<std::string, std::string>>& q_;
};

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

response make_response(http::status status, std::string_view content_type, std::string body) {
  response res{status, 11};
  res.set(http::field::server, "stompd");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

response json_response(http::status status, const json::value& v) {
  return make_response(status, "application/json", admin::to_text(v) + "\n");
}

response error_response(http::status status, std::string_view message) {
  return json_response(status, json::object{{"error", message}});
}

response error_response(const api_error& e) { return error_response(e.status, e.message); }

response method_not_allowed(std::string_view allowed) {
  auto res = error_response(http::status::method_not_allowed,
                            fmt::format("method not allowed; allowed: {}", allowed));
  res.set(http::field::allow, allowed);
  return res;
}

// RFC 6750 §3: a request without credentials gets the bare challenge; one with a bad
// token is told so (error="invalid_token").
response unauthorized(bool token_given) {
  auto res =
      error_response(http::status::unauthorized, token_given ? "wrong token"
                                                             : "missing token: send Authorization: "
                                                               "Bearer <admin token>");
  res.set(http::field::www_authenticate,
          token_given ? fmt::format("Bearer realm=\"{}\", error=\"invalid_token\"", realm)
                      : fmt::format("Bearer realm=\"{}\"", realm));
  return res;
}

// The token of "Authorization: Bearer <token>" (RFC 6750 §2.1; the scheme is
// case-insensitive). nullopt when there is no such header; "" for a malformed one.
std::optional<std::string_view> bearer_token(const request& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return std::nullopt;
  std::string_view value = it->value();
  constexpr std::string_view scheme = "bearer ";
  if (value.size() <= scheme.size() || !beast::iequals(value.substr(0, scheme.size()), scheme))
    return std::string_view{};
  value.remove_prefix(scheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  return value;
}

using digest = std::array<unsigned char, 32>;

digest sha256(std::string_view s) {
  digest d{};
  unsigned int n = 0;
  if (EVP_Digest(s.data(), s.size(), d.data(), &n, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");  // OpenSSL broken: startup or request fails
  return d;
}

bool is_json(std::string_view content_type) {
  auto media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  constexpr std::string_view json_suffix = "+json";
  return beast::iequals(media, "application/json") ||
         (media.size() > json_suffix.size() &&
          beast::iequals(media.substr(media.size() - json_suffix.size()), json_suffix));
}

bool has_line_break_or_nul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

std::optional<api_error> check_header(std::string_view name, std::string_view value) {
  if (name.empty() || name.find(':') != std::string_view::npos || has_line_break_or_nul(name))
    return api_error{http::status::bad_request, fmt::format("bad header name: '{}'", name)};
  if (has_line_break_or_nul(value))
    return api_error{http::status::bad_request,
                     fmt::format("header {}: line breaks and NUL are not allowed", name)};
  for (auto reserved : reserved_headers)
    if (beast::iequals(name, reserved))
      return api_error{http::status::bad_request,
                       fmt::format("header {} is set by the broker", name)};
  return std::nullopt;
}

struct publish_request {
  std::string destination;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// {"destination": "...", "body": "..." | "body_base64": "...", "headers": {"k": "v"}}
std::optional<api_error> parse_json_publish(std::string_view text, publish_request& out) {
  auto bad = [](std::string message) {
    return api_error{http::status::bad_request, std::move(message)};
  };
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return bad(fmt::format("body is not valid JSON: {}", ec.message()));
  if (!v.is_object()) return bad("body must be a JSON object");
  bool have_body = false;
  for (const auto& [key, item] : v.get_object()) {
    if (key == "destination") {
      if (!item.is_string()) return bad("destination must be a string");
      out.destination = std::string(item.get_string());
    } else if (key == "body" || key == "body_base64") {
      if (have_body) return bad("give body or body_base64, not both");
      have_body = true;
      if (!item.is_string()) return bad(fmt::format("{} must be a string", std::string(key)));
      if (key == "body") {
        out.body = std::string(item.get_string());
      } else {
        auto bytes = auth::detail::base64_decode(item.get_string());
        if (!bytes) return bad("body_base64 is not valid base64 (RFC 4648, with padding)");
        out.body = std::move(*bytes);
      }
    } else if (key == "headers") {
      if (!item.is_object()) return bad("headers must be an object of strings");
      for (const auto& [name, value] : item.get_object()) {
        if (!value.is_string())
          return bad(fmt::format("header {} must be a string", std::string(name)));
        out.headers.emplace_back(std::string(name), std::string(value.get_string()));
      }
    } else {
      return bad(fmt::format("unknown field: {}", std::string(key)));
    }
  }
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The listener and its connections
// ---------------------------------------------------------------------------------------------

namespace {

class http_session;
struct listener_state;

// Where broker threads hand publish results back to the admin thread. Closed by stop(), after
// which late results are dropped instead of being posted to an event loop that is gone.
struct publish_gate {
  std::mutex mutex;
  listener_state* owner = nullptr;  // null once closed

  void deliver(std::uint64_t id, admin::publish_result result);  // any thread
};

// Everything the listener owns; admin_server::impl is just this.
struct listener_state {
  listener_state(admin_settings s, admin::broker_view& v)
      : settings(std::move(s)),
        view(v),
        token_digest(sha256(settings.token)),
        gate(std::make_shared<publish_gate>()) {}

  // On the admin thread.
  void do_accept();
  std::optional<response> handle(const std::shared_ptr<http_session>& s, const request& req);
  std::optional<response> route(const std::shared_ptr<http_session>& s, const request& req,
                                const parsed_target& t);
  void on_published(std::uint64_t id, admin::publish_result result);
  void close_all();

  bool is_admin_token(std::string_view presented) const;
  std::optional<response> check_admin(const request& req, const http_session& s,
                                      const parsed_target& t) const;

  response list_destinations(const query_params& q);
  response get_destination(const std::string& name, const query_params& q);
  response get_history(const std::string& name, const query_params& q);
  response purge_history(const std::string& name, const query_params& q);
  response list_connections(const query_params& q);
  response get_connection(const std::string& id_text, const query_params& q);
  response kick(const std::string& id_text, const query_params& q);
  response get_stats(const query_params& q);
  response get_metrics(const query_params& q);
  std::optional<response> publish(const std::shared_ptr<http_session>& s, const request& req,
                                  const parsed_target& t);

  const admin_settings settings;
  admin::broker_view& view;
  const digest token_digest;
  std::shared_ptr<publish_gate> gate;
  // Connections waiting for the broker to store a published message, by request id; the
  // map keeps them alive meanwhile. Admin thread only.
  std::unordered_map<std::uint64_t, std::shared_ptr<http_session>> awaiting_publish;
  std::uint64_t next_publish_id = 1;
  std::vector<std::weak_ptr<http_session>> sessions;  // admin thread only
  std::uint16_t bound_port = 0;
  std::thread thread;
  bool started = false;
  bool stopped = false;
  // Last, so they are destroyed first: handlers still queued hold sessions, which hold
  // sockets of this io_context and a reference to this impl.
  net::io_context io{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  tcp::acceptor acceptor{io};
};

void publish_gate::deliver(std::uint64_t id, admin::publish_result result) {
  std::lock_guard lock(mutex);
  if (!owner) return;
  net::post(owner->io, [o = owner, id, r = std::move(result)]() mutable {
    o->on_published(id, std::move(r));
  });
}

// One admin HTTP connection: HTTP/1.1 with keep-alive, one request at a time (no pipelining:
// the next read starts once the response is written). On the admin thread; owned by its
// pending operations, or by awaiting_publish while the broker stores a published message.
class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(listener_state& server, tcp::socket socket)
      : server_(server), stream_(std::move(socket)) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    peer_ = ec ? "unknown" : fmt::format("{}:{}", ep.address().to_string(), ep.port());
  }

  void run() { do_read(); }
  const std::string& peer() const noexcept { return peer_; }

  // Answers the current request; the connection continues or closes as the request asked.
  void send(response res) {
    if (closed_) return;
    res.version(version_);
    res.keep_alive(keep_alive_);
    res.prepare_payload();
    do_write(std::move(res), !keep_alive_);
  }

  // stop(): no response, no linger.
  void close() {
    closed_ = true;
    beast::error_code ec;
    stream_.socket().close(ec);
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
        server_.settings.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser_->body_limit(server_.settings.max_body_bytes);
    // One deadline for the whole request, headers and body: a slow trickle can't hold a
    // connection open for longer than read_timeout.
    stream_.expires_after(server_.settings.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_read_header(ec);
                            });
  }

  void on_read_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    const auto& req = parser_->get();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    if (auto length = parser_->content_length();
        length && *length > server_.settings.max_body_bytes)
      return reject(http::status::payload_too_large,
                    fmt::format("body larger than {} bytes", server_.settings.max_body_bytes));
    // curl sends Expect: 100-continue before a large body and waits for this (RFC 9110
    // §10.1.1); without it every such upload would stall for a second.
    if (beast::iequals(req[http::field::expect], "100-continue") && !parser_->is_done()) {
      static constexpr std::string_view continue_response = "HTTP/1.1 100 Continue\r\n\r\n";
      return net::async_write(stream_, net::buffer(continue_response),
                              [self = shared_from_this()](beast::error_code e, std::size_t) {
                                if (e) return self->fail(e, "write");
                                self->do_read_body();
                              });
    }
    do_read_body();
  }

  void do_read_body() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    stream_.expires_never();  // a publish may wait for the journal; stop() still ends it
    request req = parser_->release();
    keep_alive_ = req.keep_alive();
    auto self = shared_from_this();
    auto res = server_.handle(self, req);
    if (res) send(std::move(*res));
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::body_limit)
      return reject(http::status::payload_too_large,
                    fmt::format("body larger than {} bytes", server_.settings.max_body_bytes));
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
      return reject(
          http::status::request_header_fields_too_large,
          fmt::format("request headers larger than {} bytes", server_.settings.max_header_bytes));
    if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message)
      return reject(http::status::bad_request, fmt::format("malformed request: {}", ec.message()));
    fail(ec, "read");
  }

  // An error found before a whole request was read: answer, then close, since the rest of
  // the stream can't be trusted to be the next request.
  void reject(http::status status, std::string message) {
    log_warn("admin request refused peer={} status={} reason=\"{}\"", peer_,
             static_cast<unsigned>(status), message);
    keep_alive_ = false;
    auto res = error_response(status, message);
    res.version(11);
    res.keep_alive(false);
    res.prepare_payload();
    do_write(std::move(res), true);
  }

  void do_write(response res, bool close_after) {
    res_ = std::move(res);
    stream_.expires_after(write_timeout);
    http::async_write(stream_, res_,
                      [self = shared_from_this(), close_after](beast::error_code ec, std::size_t) {
                        self->on_write(ec, close_after);
                      });
  }

  void on_write(beast::error_code ec, bool close_after) {
    if (ec) return fail(ec, "write");
    res_ = {};
    if (closed_) return;
    if (close_after) return do_linger();
    do_read();
  }

  // Our FIN first, then read and discard what the client still sends (a body we refused) for
  // a short while, so closing doesn't reset the connection under the response.
  void do_linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    stream_.expires_after(close_linger);
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(16 * 1024),
                            [self = shared_from_this()](beast::error_code e, std::size_t) {
                              if (e) return self->close();
                              self->do_linger_more();
                            });
  }

  void do_linger_more() {
    stream_.async_read_some(buffer_.prepare(16 * 1024),
                            [self = shared_from_this()](beast::error_code e, std::size_t) {
                              if (e) return self->close();
                              self->do_linger_more();
                            });
  }

  // Timeouts, resets and a client closing between requests are a normal end.
  void fail(beast::error_code ec, std::string_view what) {
    if (ec == net::error::operation_aborted || ec == http::error::end_of_stream ||
        ec == net::error::eof || ec == net::error::connection_reset ||
        ec == beast::error::timeout || closed_) {
      if (ec == http::error::end_of_stream) {
        beast::error_code e;
        stream_.socket().shutdown(tcp::socket::shutdown_send, e);
      }
      return;
    }
    log_debug("admin connection failed peer={} {}: {}", peer_, what, ec.message());
  }

  listener_state& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  response res_;  // the response being written; must live until the write completes
  std::string peer_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool closed_ = false;
};

}  // namespace

struct admin_server::impl : listener_state {
  using listener_state::listener_state;
};

void listener_state::do_accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      log_error("accept failed transport=admin: {}", ec.message());
    } else {
      std::erase_if(sessions, [](const auto& w) { return w.expired(); });
      if (sessions.size() >= settings.max_connections) {
        log_warn("connection refused transport=admin: {} admin connections open", sessions.size());
        beast::error_code e;
        socket.close(e);
      } else {
        auto s = std::make_shared<http_session>(*this, std::move(socket));
        sessions.push_back(s);
        s->run();
      }
    }
    do_accept();
  });
}

void listener_state::close_all() {
  beast::error_code ec;
  acceptor.close(ec);
  for (auto& w : sessions)
    if (auto s = w.lock()) s->close();
  sessions.clear();
  awaiting_publish.clear();
}

bool listener_state::is_admin_token(std::string_view presented) const {
  if (settings.token.empty()) return false;
  // Comparing fixed-size digests with CRYPTO_memcmp takes the same time wherever they differ,
  // and says nothing about the token's length.
  return CRYPTO_memcmp(sha256(presented).data(), token_digest.data(), token_digest.size()) == 0;
}

std::optional<response> listener_state::check_admin(const request& req, const http_session& s,
                                                    const parsed_target& t) const {
  if (settings.token.empty()) return std::nullopt;
  auto token = bearer_token(req);
  if (token && is_admin_token(*token)) return std::nullopt;
  log_warn("admin request refused peer={} method={} path={} reason={}", s.peer(),
           std::string_view(req.method_string()), t.path, token ? "wrong token" : "no token");
  return unauthorized(token.has_value());
}

std::optional<response> listener_state::handle(const std::shared_ptr<http_session>& s,
                                               const request& req) {
  std::string error;
  auto target = parse_target(req.target(), &error);
  std::optional<response> res;
  if (!target) {
    res = error_response(http::status::bad_request, error);
  } else {
    // Nothing may escape onto the event loop (STYLE.md §7): a broker_view that throws costs
    // this request a 500, not the listener.
    try {
      res = route(s, req, *target);
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

std::optional<response> listener_state::route(const std::shared_ptr<http_session>& s,
                                              const request& req, const parsed_target& t) {
  const auto& seg = t.segments;
  const auto method = req.method();
  const bool get = method == http::verb::get;
  const query_params q(t.query);

  if (seg.size() == 1 && seg[0] == "healthz") {
    if (!get) return method_not_allowed("GET");
    return make_response(http::status::ok, "text/plain; charset=utf-8", "ok\n");
  }
  if (seg.size() == 1 && seg[0] == "readyz") {
    if (!get) return method_not_allowed("GET");
    return view.ready() ? make_response(http::status::ok, "text/plain; charset=utf-8", "ready\n")
                        : make_response(http::status::service_unavailable,
                                        "text/plain; charset=utf-8", "not ready\n");
  }
  if (seg.size() == 1 && seg[0] == "metrics") {
    if (!get) return method_not_allowed("GET");
    return get_metrics(q);
  }
  if (seg.empty() || seg[0] != "api")
    return error_response(http::status::not_found, fmt::format("no such route: {}", t.path));

  // POST /api/publish takes a backend's token as well as the admin token: it checks itself.
  if (seg.size() == 2 && seg[1] == "publish") {
    if (method != http::verb::post) return method_not_allowed("POST");
    return publish(s, req, t);
  }
  if (auto refused = check_admin(req, *s, t)) return refused;

  if (seg.size() == 2 && seg[1] == "destinations") {
    if (!get) return method_not_allowed("GET");
    return list_destinations(q);
  }
  if (seg.size() == 3 && seg[1] == "destinations") {
    if (!get) return method_not_allowed("GET");
    return get_destination(seg[2], q);
  }
  if (seg.size() == 4 && seg[1] == "destinations" && seg[3] == "messages") {
    if (get) return get_history(seg[2], q);
    if (method == http::verb::delete_) return purge_history(seg[2], q);
    return method_not_allowed("GET, DELETE");
  }
  if (seg.size() > 3 && seg[1] == "destinations")
    return error_response(http::status::not_found,
                          fmt::format("no such route: {}; percent-encode the destination name "
                                      "as one path segment, e.g. /api/destinations/%2Ftopic%2Froom",
                                      t.path));
  if (seg.size() == 2 && seg[1] == "connections") {
    if (!get) return method_not_allowed("GET");
    return list_connections(q);
  }
  if (seg.size() == 3 && seg[1] == "connections") {
    if (get) return get_connection(seg[2], q);
    if (method == http::verb::delete_) return kick(seg[2], q);
    return method_not_allowed("GET, DELETE");
  }
  if (seg.size() == 2 && seg[1] == "stats") {
    if (!get) return method_not_allowed("GET");
    return get_stats(q);
  }
  return error_response(http::status::not_found, fmt::format("no such route: {}", t.path));
}

response listener_state::list_destinations(const query_params& q) {
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
  std::optional<api_error> error;
  auto offset = q.number("offset", 0, 0, std::numeric_limits<std::uint32_t>::max(), error);
  auto limit = q.number("limit", default_page_limit, 1, max_page_limit, error);
  if (error) return error_response(*error);

  auto all = view.destinations();
  std::erase_if(all, [&](const admin::destination_info& d) {
    if (prefix) return !d.name.starts_with(*prefix);
    if (pattern) return !pattern->matches(d.name);
    return false;
  });
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  json::array page;
  for (std::size_t i = offset; i < all.size() && page.size() < limit; ++i)
    page.emplace_back(admin::to_json(all[i], false));
  return json_response(http::status::ok, json::object{{"destinations", std::move(page)},
                                                      {"total", all.size()},
                                                      {"offset", offset},
                                                      {"limit", limit}});
}

response listener_state::get_destination(const std::string& name, const query_params& q) {
  if (auto e = q.only({})) return error_response(*e);
  auto d = view.destination(name);
  if (!d)
    return error_response(http::status::not_found, fmt::format("no such destination: {}", name));
  return json_response(http::status::ok, admin::to_json(*d, true));
}

response listener_state::get_history(const std::string& name, const query_params& q) {
  if (auto e = q.only({"after", "limit", "last"})) return error_response(*e);
  if (q.get("last") && (q.get("after") || q.get("limit")))
    return error_response(http::status::bad_request, "give last, or after and limit, not both");
  std::optional<api_error> error;
  auto after = q.number("after", 0, 0, std::numeric_limits<std::uint64_t>::max(), error);
  auto limit = q.number("limit", default_page_limit, 1, max_page_limit, error);
  std::optional<std::size_t> last;
  if (q.get("last")) last = q.number("last", 0, 1, max_page_limit, error);
  if (error) return error_response(*error);

  auto page = view.history(name, after, limit, last);
  if (!page)
    return error_response(http::status::not_found,
                          fmt::format("no stored history: {} is not journaled", name));
  json::array messages;
  messages.reserve(page->messages.size());
  for (const auto& m : page->messages) messages.emplace_back(admin::to_json(m));
  return json_response(http::status::ok, json::object{{"destination", name},
                                                      {"messages", std::move(messages)},
                                                      {"head_seq", page->head_seq},
                                                      {"complete", page->complete}});
}

response listener_state::purge_history(const std::string& name, const query_params& q) {
  if (auto e = q.only({})) return error_response(*e);
  auto deleted = view.purge(name);
  if (!deleted)
    return error_response(http::status::not_found,
                          fmt::format("no stored history: {} is not journaled", name));
  log_info("admin purged destination={} deleted={}", name, *deleted);
  return json_response(http::status::ok,
                       json::object{{"destination", name}, {"deleted", *deleted}});
}

response listener_state::list_connections(const query_params& q) {
  if (auto e = q.only({})) return error_response(*e);
  auto all = view.connections();
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  json::array list;
  list.reserve(all.size());
  for (const auto& c : all) list.emplace_back(admin::to_json(c));
  return json_response(http::status::ok,
                       json::object{{"connections", std::move(list)}, {"total", all.size()}});
}

namespace {
std::optional<std::uint64_t> parse_id(const std::string& text) {
  std::uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return id;
}
}  // namespace

response listener_state::get_connection(const std::string& id_text, const query_params& q) {
  if (auto e = q.only({})) return error_response(*e);
  auto id = parse_id(id_text);
  if (!id)
    return error_response(http::status::bad_request,
                          fmt::format("connection id must be a decimal number, got '{}'", id_text));
  for (const auto& c : view.connections())
    if (c.id == *id) return json_response(http::status::ok, admin::to_json(c));
  return error_response(http::status::not_found, fmt::format("no such connection: {}", *id));
}

response listener_state::kick(const std::string& id_text, const query_params& q) {
  if (auto e = q.only({})) return error_response(*e);
  auto id = parse_id(id_text);
  if (!id)
    return error_response(http::status::bad_request,
                          fmt::format("connection id must be a decimal number, got '{}'", id_text));
  if (!view.disconnect(*id, "disconnected by administrator"))
    return error_response(http::status::not_found, fmt::format("no such connection: {}", *id));
  return json_response(http::status::ok, json::object{{"disconnected", *id}});
}

response listener_state::get_stats(const query_params& q) {
  if (auto e = q.only({})) return error_response(*e);
  return json_response(http::status::ok, admin::to_json(view.stats()));
}

response listener_state::get_metrics(const query_params& q) {
  if (auto e = q.only({})) return error_response(*e);
  auto m = view.collect_metrics();
  auto s = view.stats();
  return make_response(http::status::ok, admin::prometheus_content_type,
                       admin::render_prometheus(m, s));
}

std::optional<response> listener_state::publish(const std::shared_ptr<http_session>& s,
                                                const request& req, const parsed_target& t) {
  // Who is publishing: the admin token's holder (may send anywhere), or a backend with a
  // bearer token the broker's auth.jwt accepts (authorized like its STOMP SEND). Without an
  // admin token configured and without credentials, the caller is the admin.
  std::shared_ptr<const auth::principal> who;
  auto token = bearer_token(req);
  if (!token) {
    if (!settings.token.empty()) {
      log_warn("admin request refused peer={} method=POST path={} reason=no token", s->peer(),
               t.path);
      return unauthorized(false);
    }
  } else if (!is_admin_token(*token)) {
    auto p = token->empty() ? std::nullopt : view.verify_token(*token);
    if (!p) {
      log_warn("admin request refused peer={} method=POST path={} reason=wrong token", s->peer(),
               t.path);
      return unauthorized(true);
    }
    who = std::make_shared<const auth::principal>(std::move(*p));
  }

  publish_request p;
  const query_params q(t.query);
  if (is_json(req[http::field::content_type])) {
    if (auto e = q.only({})) return error_response(*e);
    if (auto e = parse_json_publish(req.body(), p)) return error_response(*e);
  } else {
    if (auto e = q.only({"destination"})) return error_response(*e);
    if (const auto* d = q.get("destination")) p.destination = *d;
    p.body = req.body();
    // curl -d sends this by default; it says nothing about the message.
    auto type = req[http::field::content_type];
    if (!type.empty() && !beast::iequals(type, "application/x-www-form-urlencoded"))
      p.headers.emplace_back("content-type", std::string(type));
  }
  if (p.destination.empty())
    return error_response(http::status::bad_request,
                          "destination is missing (the JSON field, or ?destination= with a raw "
                          "body)");
  if (has_line_break_or_nul(p.destination))
    return error_response(http::status::bad_request, "bad destination");
  for (const auto& [name, value] : p.headers)
    if (auto e = check_header(name, value)) return error_response(*e);

  std::uint64_t id = next_publish_id++;
  awaiting_publish.emplace(id, s);
  try {
    view.publish(std::move(p.destination), std::move(p.headers), std::move(p.body), who.get(),
                 [g = gate, id, who](admin::publish_result r) { g->deliver(id, std::move(r)); });
  } catch (...) {
    awaiting_publish.erase(id);
    throw;
  }
  return std::nullopt;  // on_published() answers
}

void listener_state::on_published(std::uint64_t id, admin::publish_result r) {
  auto it = awaiting_publish.find(id);
  if (it == awaiting_publish.end()) return;  // the connection was closed meanwhile
  auto s = std::move(it->second);
  awaiting_publish.erase(it);
  response res;
  if (r.http_status == 200) {
    json::object o{{"message-id", r.message_id}};
    if (r.seq != 0) o["x-seq"] = r.seq;
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

// ---------------------------------------------------------------------------------------------
// admin_server
// ---------------------------------------------------------------------------------------------

admin_server::admin_server(admin_settings settings, admin::broker_view& view)
    : impl_(std::make_unique<impl>(std::move(settings), view)) {}

admin_server::~admin_server() { stop(); }

void admin_server::start() {
  auto& m = *impl_;
  if (m.started) return;
  const auto& s = m.settings;
  std::string host = s.host == "localhost" ? "127.0.0.1" : s.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  try {
    tcp::endpoint ep(net::ip::make_address(host), s.port);
    m.acceptor.open(ep.protocol());
    m.acceptor.set_option(tcp::acceptor::reuse_address(true));
    m.acceptor.bind(ep);
    m.acceptor.listen(net::socket_base::max_listen_connections);
    m.bound_port = m.acceptor.local_endpoint().port();
    // The server logs the "listening" line with the bound port; only say what it can't.
    if (s.token.empty() && !ep.address().is_loopback())
      log_warn(
          "admin listener address={} has no admin.token: anyone who can reach it can "
          "administer the broker",
          s.host);
    else if (s.token.empty())
      log_info("admin listener has no admin.token: /api/ needs no authentication");
  } catch (const boost::system::system_error& e) {
    beast::error_code ec;
    m.acceptor.close(ec);
    throw std::runtime_error(
        fmt::format("admin listener {}:{}: {}", s.host, s.port, e.code().message()));
  }
  {
    std::lock_guard lock(m.gate->mutex);
    m.gate->owner = &m;
  }
  m.started = true;
  m.do_accept();
  m.guard.emplace(net::make_work_guard(m.io));
  m.thread = std::thread([&m] {
    try {
      m.io.run();
    } catch (const std::exception& e) {
      log_error("admin listener stopped by an exception: {}", e.what());
    }
  });
}

std::uint16_t admin_server::port() const { return impl_->bound_port; }

void admin_server::stop() {
  auto& m = *impl_;
  if (!m.started || m.stopped) return;
  m.stopped = true;
  {
    std::lock_guard lock(m.gate->mutex);
    m.gate->owner = nullptr;
  }
  net::post(m.io, [&m] { m.close_all(); });
  m.guard.reset();
  m.thread.join();
  // Anything left (a handler queued after close_all) goes with the io_context; sessions
  // still held here are destroyed while it exists.
  m.awaiting_publish.clear();
}

}  // namespace broker
