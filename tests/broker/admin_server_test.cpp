#include "admin/admin_render.hpp"
#include "admin/admin_view.hpp"
#include "admin/server.hpp"
#include "auth/base64.hpp"
#include "auth/principal.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace broker {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// The HTTP listener against a fake broker
// ---------------------------------------------------------------------------------------------

admin::connection_info connection(std::uint64_t id, std::string user, std::string peer,
                                  std::string transport) {
  admin::connection_info c;
  c.id = id;
  c.user = std::move(user);
  c.peer = std::move(peer);
  c.transport = std::move(transport);
  return c;
}

admin::publish_result stored(std::uint64_t seq) {
  admin::publish_result r;
  r.seq = seq;
  r.message_id = std::to_string(seq);
  return r;
}

admin::publish_result routed(std::string message_id) {
  admin::publish_result r;
  r.message_id = std::move(message_id);
  return r;
}

admin::publish_result failed(int status, std::string error) {
  admin::publish_result r;
  r.http_status = status;
  r.error = std::move(error);
  return r;
}

// A broker_view with canned data that records what it was asked. Thread-safe: the admin
// listener calls it from its own thread while tests read it.
class fake_view final : public admin::broker_view {
 public:
  fake_view() {
    for (auto name : {"/topic/b", "/topic/a.1", "/queue/jobs", "/topic/a.2.x"}) {
      admin::destination_info d;
      d.name = name;
      d.type = std::string_view(name).starts_with("/queue/") ? "queue" : "topic";
      d.journaled = d.type == "topic";
      destinations_.push_back(d);
    }
  }

  std::vector<admin::connection_info> connections() override {
    return {connection(2, "bob", "127.0.0.1:2", "tcp"),
            connection(1, "alice", "127.0.0.1:1", "websocket")};
  }
  bool disconnect(std::uint64_t id, std::string reason) override {
    std::lock_guard lock(mutex_);
    kicked_.emplace_back(id, std::move(reason));
    return id == 1 || id == 2;
  }
  std::vector<admin::destination_info> destinations() override { return destinations_; }
  std::optional<admin::destination_info> destination(std::string_view name) override {
    for (auto d : destinations_)
      if (d.name == name) {
        d.subscriptions.push_back({1, "sub-0", "alice", "client-individual", 2});
        return d;
      }
    return std::nullopt;
  }
  std::optional<admin::history_page> history(std::string_view name, std::uint64_t after,
                                             std::size_t limit,
                                             std::optional<std::size_t> last) override {
    {
      std::lock_guard lock(mutex_);
      history_args_ = {after, limit, last};
    }
    if (!name.starts_with("/topic/")) return std::nullopt;
    admin::history_page p;
    p.messages.push_back({after + 1, 1000, {{"content-type", "text/plain"}}, "hello"});
    p.messages.push_back({after + 2, 2000, {}, "\xFF\x01"});
    p.head_seq = after + 2;
    return p;
  }
  std::optional<std::uint64_t> purge(std::string_view name) override {
    if (!name.starts_with("/topic/")) return std::nullopt;
    return 5;
  }
  const std::string& node_name() const override { return node_; }
  admin::broker_stats stats() override {
    admin::broker_stats s;
    s.node = node_;
    s.uptime_seconds = 3;
    s.connections = 2;
    return s;
  }
  admin::metrics collect_metrics() override {
    admin::metrics m;
    m.connections_by_transport["tcp"] = 2;
    return m;
  }
  bool ready() override { return ready_; }

  void publish(std::string destination, std::vector<std::pair<std::string, std::string>> headers,
               std::string body, const auth::principal* who,
               std::function<void(admin::publish_result)> done) override {
    std::lock_guard lock(mutex_);
    published_.push_back({std::move(destination), std::move(headers), std::move(body),
                          who ? std::optional<std::string>(who->user) : std::nullopt});
    pending_ = std::move(done);
    cv_.notify_all();
  }
  std::optional<auth::principal> verify_token(std::string_view token) override {
    if (token != "backend-jwt") return std::nullopt;
    auth::principal p;
    p.user = "backend";
    return p;
  }

  struct publish_call {
    std::string destination;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::optional<std::string> user;  // nullopt: as admin
  };

  // Waits for a publish, then completes it from another thread, as the broker would.
  publish_call complete_publish(admin::publish_result r) {
    std::unique_lock lock(mutex_);
    EXPECT_TRUE(cv_.wait_for(lock, 5s, [&] { return pending_ != nullptr; }));
    auto done = std::move(pending_);
    pending_ = nullptr;
    auto call = published_.back();
    lock.unlock();
    std::thread([done = std::move(done), r = std::move(r)] {
      if (done) done(r);
    }).join();
    return call;
  }

  bool has_pending() {
    std::lock_guard lock(mutex_);
    return pending_ != nullptr || !published_.empty();
  }

  // The done callback of a publish not completed yet.
  std::function<void(admin::publish_result)> take_pending() {
    std::unique_lock lock(mutex_);
    EXPECT_TRUE(cv_.wait_for(lock, 5s, [&] { return pending_ != nullptr; }));
    return std::exchange(pending_, nullptr);
  }

  std::vector<std::pair<std::uint64_t, std::string>> kicked() {
    std::lock_guard lock(mutex_);
    return kicked_;
  }
  std::tuple<std::uint64_t, std::size_t, std::optional<std::size_t>> history_args() {
    std::lock_guard lock(mutex_);
    return history_args_;
  }

  std::atomic<bool> ready_{true};

 private:
  std::vector<admin::destination_info> destinations_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<std::uint64_t, std::string>> kicked_;
  std::tuple<std::uint64_t, std::size_t, std::optional<std::size_t>> history_args_;
  std::vector<publish_call> published_;
  std::function<void(admin::publish_result)> pending_;
  std::string node_ = "node-a:61613";
};

constexpr std::string_view token = "s3cret-admin-token";

struct reply {
  unsigned status = 0;
  http::fields headers;
  std::string body;
  json::value json() const { return json::parse(body); }
};

// A request as bytes, for tests that send it and read the response separately.
std::string raw_request(http::verb method, std::string target, std::string_view bearer,
                        std::string body, std::string_view content_type = {}) {
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!bearer.empty()) req.set(http::field::authorization, fmt::format("Bearer {}", bearer));
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  req.body() = std::move(body);
  req.prepare_payload();
  std::ostringstream out;
  out << req;
  return out.str();
}

// A blocking HTTP/1.1 client on one connection (keep-alive), with deadlines.
class client {
 public:
  explicit client(std::uint16_t port) : socket_(io_) {
    socket_.connect({net::ip::make_address("127.0.0.1"), port});
    timeval tv{5, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  reply call(http::verb method, std::string target, std::string_view bearer = token,
             std::string body = {}, std::string_view content_type = {}) {
    send_raw(raw_request(method, std::move(target), bearer, std::move(body), content_type));
    return read();
  }

  reply read() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(socket_, buffer_, parser);
    auto res = parser.release();
    reply r;
    r.status = res.result_int();
    for (const auto& f : res) r.headers.set(f.name_string(), f.value());
    r.body = std::move(res.body());
    return r;
  }

  void send_raw(std::string_view bytes) { net::write(socket_, net::buffer(bytes)); }

  // True when the server closes the connection (EOF or reset) within the receive timeout.
  bool closed_by_server() {
    char c;
    beast::error_code ec;
    socket_.read_some(net::buffer(&c, 1), ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }

 private:
  net::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }

  void start(config::admin_listener s) {
    s.port = 0;
    if (s.token.empty() && !no_token_) s.token = std::string(token);
    server_.emplace(s, view_);
    server_->start();
    ASSERT_NE(server_->port(), 0);
  }
  void restart(config::admin_listener s, bool no_token = false) {
    server_.reset();
    no_token_ = no_token;
    start(std::move(s));
  }

  reply get(std::string target, std::string_view bearer = token) {
    return client(server_->port()).call(http::verb::get, std::move(target), bearer);
  }

  fake_view view_;
  bool no_token_ = false;
  std::optional<admin::server> server_;
};

TEST_F(AdminServerTest, HealthzReadyzAndMetricsNeedNoToken) {
  auto h = get("/healthz", "");
  EXPECT_EQ(h.status, 200u);
  EXPECT_EQ(h.body, "ok\n");
  EXPECT_EQ(get("/readyz", "").status, 200u);
  view_.ready_ = false;
  auto r = get("/readyz", "");
  EXPECT_EQ(r.status, 503u);
  auto m = get("/metrics", "");
  EXPECT_EQ(m.status, 200u);
  EXPECT_EQ(m.headers[http::field::content_type], admin::prometheus_content_type);
  EXPECT_NE(m.body.find("stompd_connections{transport=\"tcp\"} 2\n"), std::string::npos);
}

TEST_F(AdminServerTest, ApiWithoutTokenIs401WithBearerChallenge) {
  auto r = get("/api/stats", "");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.headers[http::field::www_authenticate], "Bearer realm=\"stompd-admin\"");
  EXPECT_TRUE(r.json().at("error").is_string());
}

TEST_F(AdminServerTest, ApiWithWrongTokenIs401InvalidToken) {
  auto r = get("/api/stats", "s3cret-admin-tokeN");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.headers[http::field::www_authenticate],
            "Bearer realm=\"stompd-admin\", error=\"invalid_token\"");
  EXPECT_EQ(get("/api/stats", "s3cret-admin-token-and-more").status, 401u);
  EXPECT_EQ(get("/api/stats", token).status, 200u);
}

TEST_F(AdminServerTest, NoTokenConfiguredMeansNoAuthentication) {
  restart({}, true);
  EXPECT_EQ(get("/api/stats", "").status, 200u);
}

// A request as a browser page would send it, with Host and (when not empty) Origin.
std::string browser_request(http::verb method, std::string target, std::string_view host,
                            std::string_view origin, std::string body = {},
                            std::string_view content_type = {}) {
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, host);
  if (!origin.empty()) req.set(http::field::origin, origin);
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  req.body() = std::move(body);
  req.prepare_payload();
  std::ostringstream out;
  out << req;
  return out.str();
}

// Issue 12 item 5: with no admin token, a page on another site could publish with a
// text/plain POST, and one that rebound its name to 127.0.0.1 could read the API.
TEST_F(AdminServerTest, CrossSiteRequestIs403EvenWithoutAToken) {
  restart({}, true);
  client c(server_->port());
  c.send_raw(browser_request(http::verb::post, "/api/publish", "127.0.0.1:61680",
                             "http://evil.example", R"({"destination":"/topic/a","body":"x"})",
                             "application/json"));
  auto r = c.read();
  EXPECT_EQ(r.status, 403u);
  EXPECT_NE(std::string(r.json().at("error").as_string()).find("Origin"), std::string::npos);
  c.send_raw(browser_request(http::verb::get, "/api/stats", "127.0.0.1:61680", "null"));
  EXPECT_EQ(c.read().status, 403u);
  EXPECT_FALSE(view_.has_pending());
}

TEST_F(AdminServerTest, SameOriginAndAllowedOriginsAreServed) {
  config::admin_listener s;
  s.allowed_origins = {"https://ops.example"};
  restart(s, true);
  client c(server_->port());
  c.send_raw(
      browser_request(http::verb::get, "/api/stats", "127.0.0.1:61680", "http://127.0.0.1:61680"));
  EXPECT_EQ(c.read().status, 200u);
  c.send_raw(
      browser_request(http::verb::get, "/api/stats", "localhost:61680", "HTTPS://OPS.example"));
  EXPECT_EQ(c.read().status, 200u);
  c.send_raw(browser_request(http::verb::get, "/api/stats", "localhost:61680",
                             "https://ops.example.evil"));
  EXPECT_EQ(c.read().status, 403u);
}

TEST_F(AdminServerTest, RebindingHostIs403ButProbesAndMetricsAnswerAnyHost) {
  restart({}, true);
  client c(server_->port());
  c.send_raw(browser_request(http::verb::get, "/api/stats", "evil.example:61680", ""));
  auto r = c.read();
  EXPECT_EQ(r.status, 403u);
  EXPECT_NE(std::string(r.json().at("error").as_string()).find("Host"), std::string::npos);
  for (std::string_view host : {"127.0.0.1", "[::1]:61680", "LocalHost:1", "10.1.2.3:61680"}) {
    c.send_raw(browser_request(http::verb::get, "/api/stats", host, ""));
    EXPECT_EQ(c.read().status, 200u) << host;
  }
  for (std::string_view path : {"/healthz", "/readyz", "/metrics"}) {
    c.send_raw(browser_request(http::verb::get, std::string(path), "stompd.svc.cluster:61680", ""));
    EXPECT_EQ(c.read().status, 200u) << path;
  }
}

TEST_F(AdminServerTest, ConfiguredHostNamesAreServed) {
  config::admin_listener s;
  s.allowed_hosts = {"stompd.internal"};
  restart(s);
  client c(server_->port());
  auto req = browser_request(http::verb::get, "/api/stats", "stompd.internal:61680", "");
  req.insert(req.find("\r\n") + 2, fmt::format("Authorization: Bearer {}\r\n", token));
  c.send_raw(req);
  EXPECT_EQ(c.read().status, 200u);
}

TEST_F(AdminServerTest, DestinationsAreSortedAndPaged) {
  auto all = get("/api/destinations").json();
  EXPECT_EQ(all.at("total").to_number<std::uint64_t>(), 4u);
  EXPECT_EQ(all.at("destinations").at(0).at("name").as_string(), "/queue/jobs");
  auto page = get("/api/destinations?offset=1&limit=2").json();
  ASSERT_EQ(page.at("destinations").as_array().size(), 2u);
  EXPECT_EQ(page.at("destinations").at(0).at("name").as_string(), "/topic/a.1");
  EXPECT_EQ(page.at("total").to_number<std::uint64_t>(), 4u);
}

TEST_F(AdminServerTest, DestinationsFilterByPrefixOrPattern) {
  auto p = get("/api/destinations?prefix=%2Fqueue%2F").json();
  EXPECT_EQ(p.at("total").to_number<std::uint64_t>(), 1u);
  auto q = get("/api/destinations?pattern=/topic/a.**").json();
  EXPECT_EQ(q.at("total").to_number<std::uint64_t>(), 2u);
  auto one = get("/api/destinations?pattern=/topic/a.*").json();
  EXPECT_EQ(one.at("total").to_number<std::uint64_t>(), 1u);
}

TEST_F(AdminServerTest, BadParametersAre400) {
  for (auto target :
       {"/api/destinations?limit=0", "/api/destinations?limit=1001", "/api/destinations?limit=abc",
        "/api/destinations?prefx=/topic/", "/api/destinations?prefix=a&pattern=b",
        "/api/destinations?pattern=/a*b", "/api/destinations?limit=1&limit=2", "/api/stats?x=1",
        "/api/destinations/%2Ftopic%2Fa.1/messages?last=5&after=1",
        "/api/destinations/%2Ftopic%2Fa.1/messages?after=-1", "/api/destinations/%zz"}) {
    auto r = get(target);
    EXPECT_EQ(r.status, 400u) << target;
    EXPECT_TRUE(r.json().at("error").is_string()) << target;
  }
}

TEST_F(AdminServerTest, TargetThatIsNotAValidUrlIs400WithTheReason) {
  auto brace = get("/api/destinations?pattern=/topic/{user}");
  EXPECT_EQ(brace.status, 400u);
  EXPECT_EQ(brace.json().at("error").as_string(),
            "the request target has a character that must be percent-encoded (RFC 3986)");
  auto escape = get("/api/destinations?prefix=%zz");
  EXPECT_EQ(escape.status, 400u);
  EXPECT_EQ(escape.json().at("error").as_string(), "bad percent-encoding in the query");
}

TEST_F(AdminServerTest, DestinationNameIsOnePercentEncodedSegment) {
  auto r = get("/api/destinations/%2Ftopic%2Fa.1");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto d = r.json();
  EXPECT_EQ(d.at("name").as_string(), "/topic/a.1");
  EXPECT_EQ(d.at("subscriptions").at(0).at("ack_mode").as_string(), "client-individual");
  auto raw = get("/api/destinations//topic/a.1");
  EXPECT_EQ(raw.status, 404u);
  EXPECT_NE(raw.body.find("percent-encode"), std::string::npos);
  auto unknown = get("/api/destinations/%2Ftopic%2Fnope");
  EXPECT_EQ(unknown.status, 404u);
  EXPECT_EQ(unknown.json().at("error").as_string(), "no such destination: /topic/nope");
}

TEST_F(AdminServerTest, HistoryRendersTextAndBinaryBodies) {
  auto r = get("/api/destinations/%2Ftopic%2Fa.1/messages?after=10&limit=2");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto h = r.json();
  EXPECT_EQ(view_.history_args(),
            std::make_tuple(std::uint64_t{10}, std::size_t{2}, std::optional<std::size_t>{}));
  EXPECT_EQ(h.at("messages").at(0).at("seq").to_number<std::uint64_t>(), 11u);
  EXPECT_EQ(h.at("messages").at(0).at("body").as_string(), "hello");
  EXPECT_EQ(h.at("messages").at(1).at("body_base64").as_string(), "/wE=");
  EXPECT_EQ(h.at("head_seq").to_number<std::uint64_t>(), 12u);
  EXPECT_TRUE(h.at("complete").as_bool());

  get("/api/destinations/%2Ftopic%2Fa.1/messages?last=3");
  EXPECT_EQ(view_.history_args(),
            std::make_tuple(std::uint64_t{0}, std::size_t{100}, std::optional<std::size_t>{3}));
  EXPECT_EQ(get("/api/destinations/%2Fqueue%2Fjobs/messages").status, 404u);
}

TEST_F(AdminServerTest, PurgeReturnsTheCountDeleted) {
  client c(server_->port());
  auto r = c.call(http::verb::delete_, "/api/destinations/%2Ftopic%2Fa.1/messages");
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(r.json().at("deleted").to_number<std::uint64_t>(), 5u);
  EXPECT_EQ(c.call(http::verb::delete_, "/api/destinations/%2Fqueue%2Fjobs/messages").status, 404u);
}

TEST_F(AdminServerTest, ConnectionsAreSortedAndKickSendsTheAdministratorReason) {
  auto list = get("/api/connections").json();
  EXPECT_EQ(list.at("connections").at(0).at("id").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(list.at("connections").at(1).at("user").as_string(), "bob");
  EXPECT_EQ(get("/api/connections/2").json().at("peer").as_string(), "127.0.0.1:2");
  client c(server_->port());
  EXPECT_EQ(c.call(http::verb::delete_, "/api/connections/2").status, 200u);
  EXPECT_EQ(c.call(http::verb::delete_, "/api/connections/99").status, 404u);
  EXPECT_EQ(c.call(http::verb::delete_, "/api/connections/x1").status, 400u);
  auto kicked = view_.kicked();
  ASSERT_EQ(kicked.size(), 2u);
  EXPECT_EQ(kicked[0],
            std::make_pair(std::uint64_t{2}, std::string("disconnected by administrator")));
}

TEST_F(AdminServerTest, WrongMethodIs405WithAllow) {
  client c(server_->port());
  auto r = c.call(http::verb::post, "/api/destinations");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(r.headers[http::field::allow], "GET");
  auto p = c.call(http::verb::get, "/api/publish");
  EXPECT_EQ(p.status, 405u);
  EXPECT_EQ(p.headers[http::field::allow], "POST");
  EXPECT_EQ(c.call(http::verb::get, "/nope").status, 404u);
  EXPECT_EQ(c.call(http::verb::get, "/api/nope").status, 404u);
}

TEST_F(AdminServerTest, OneConnectionServesManyRequests) {
  client c(server_->port());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.call(http::verb::get, "/api/stats").status, 200u);
}

TEST_F(AdminServerTest, JsonPublishAnswersOnceTheBrokerHasStoredIt) {
  client c(server_->port());
  c.send_raw(
      raw_request(http::verb::post, "/api/publish", token,
                  R"({"destination":"/topic/a.1","body":"hi","headers":{"k":"v","x-app":"1"}})",
                  "application/json"));
  auto call = view_.complete_publish(stored(42));
  EXPECT_EQ(call.destination, "/topic/a.1");
  EXPECT_EQ(call.body, "hi");
  EXPECT_EQ(call.headers.size(), 2u);
  EXPECT_EQ(call.user, std::nullopt);
  auto r = c.read();
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.json().at("x-seq").to_number<std::uint64_t>(), 42u);
  EXPECT_EQ(r.json().at("message-id").as_string(), "42");
  EXPECT_EQ(c.call(http::verb::get, "/api/stats").status, 200u);  // and the connection lives on
}

// Issue 12 item 5: a cross-site page can POST text/plain (or a form) without a CORS
// preflight; the raw-body publish that accepted it is gone, JSON is the only body.
TEST_F(AdminServerTest, PublishWithoutAJsonBodyIs415) {
  client c(server_->port());
  for (std::string_view type :
       {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/octet-stream", ""}) {
    auto r = c.call(http::verb::post, "/api/publish?destination=%2Fqueue%2Fjobs", token,
                    R"({"destination":"/queue/jobs","body":"x"})", type);
    EXPECT_EQ(r.status, 415u) << type;
    EXPECT_NE(std::string(r.json().at("error").as_string()).find("application/json"),
              std::string::npos);
  }
  EXPECT_FALSE(view_.has_pending());
  // Bytes go as body_base64, and a routed (not journaled) message has no x-seq.
  c.send_raw(raw_request(http::verb::post, "/api/publish", token,
                         R"({"destination":"/queue/jobs","body_base64":"AAEC"})",
                         "application/json"));
  auto call = view_.complete_publish(routed("q-7"));
  EXPECT_EQ(call.destination, "/queue/jobs");
  EXPECT_EQ(call.body, std::string("\x00\x01\x02", 3));
  auto r = c.read();
  EXPECT_EQ(r.status, 200u);
  EXPECT_FALSE(r.json().as_object().contains("x-seq"));
}

TEST_F(AdminServerTest, PublishWithABackendTokenPublishesAsItsPrincipal) {
  client c(server_->port());
  c.send_raw(
      "POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Authorization: Bearer backend-jwt\r\nContent-Length: 38\r\n\r\n"
      "{\"destination\":\"/topic/b\",\"body\":\"hi\"}");
  auto call = view_.complete_publish(failed(403, "access refused"));
  EXPECT_EQ(call.user, std::optional<std::string>("backend"));
  auto r = c.read();
  EXPECT_EQ(r.status, 403u);
  EXPECT_EQ(r.json().at("error").as_string(), "access refused");
}

TEST_F(AdminServerTest, PublishRefusesBadTokensAndBadRequests) {
  client c(server_->port());
  EXPECT_EQ(c.call(http::verb::post, "/api/publish?destination=/topic/a", "forged", "x").status,
            401u);
  EXPECT_EQ(c.call(http::verb::post, "/api/publish?destination=/topic/a", "", "x").status, 401u);
  const char* bad_json[] = {
      "not json",
      "[]",
      "{\"body\":\"no destination\"}",
      "{\"destination\":5}",
      "{\"destination\":\"/topic/a\",\"headers\":{\"k\":1}}",
      "{\"destination\":\"/topic/a\",\"headers\":{\"content-length\":\"1\"}}",
      "{\"destination\":\"/topic/a\",\"headers\":{\"a:b\":\"1\"}}",
      "{\"destination\":\"/topic/a\",\"headers\":{\"k\":\"a\\nb\"}}",
      "{\"destination\":\"/topic/a\",\"body\":\"x\",\"body_base64\":\"eA==\"}",
      "{\"destination\":\"/topic/a\",\"body_base64\":\"***\"}",
      "{\"destination\":\"/topic/a\",\"extra\":1}"};
  for (auto body : bad_json) {
    auto r = c.call(http::verb::post, "/api/publish", token, body, "application/json");
    EXPECT_EQ(r.status, 400u) << body;
  }
  EXPECT_EQ(c.call(http::verb::post, "/api/publish", token, "no destination", "text/plain").status,
            415u);
}

TEST_F(AdminServerTest, PublishFailureOfTheJournalIs503) {
  client c(server_->port());
  c.send_raw(
      "POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Authorization: Bearer s3cret-admin-token\r\nContent-Length: 38\r\n\r\n"
      "{\"destination\":\"/topic/b\",\"body\":\"hi\"}");
  view_.complete_publish(failed(503, "journal write failed"));
  EXPECT_EQ(c.read().status, 503u);
}

TEST_F(AdminServerTest, BodyOverTheLimitIs413) {
  config::admin_listener s;
  s.max_body_bytes = 100;
  restart(s);
  client c(server_->port());
  auto r =
      c.call(http::verb::post, "/api/publish?destination=/topic/a", token, std::string(101, 'x'));
  EXPECT_EQ(r.status, 413u);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(AdminServerTest, ExpectContinueGetsAnInterimResponse) {
  client c(server_->port());
  c.send_raw(
      "POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Authorization: Bearer s3cret-admin-token\r\nExpect: 100-continue\r\n"
      "Content-Length: 38\r\n\r\n");
  auto interim = c.read();
  EXPECT_EQ(interim.status, 100u);
  c.send_raw("{\"destination\":\"/topic/b\",\"body\":\"hi\"}");
  auto call = view_.complete_publish(stored(1));
  EXPECT_EQ(call.body, "hi");
  EXPECT_EQ(c.read().status, 200u);
}

TEST_F(AdminServerTest, HugeHeadersAre431) {
  client c(server_->port());
  c.send_raw("GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(20'000, 'a') +
             "\r\n\r\n");
  EXPECT_EQ(c.read().status, 431u);
}

TEST_F(AdminServerTest, MalformedRequestIs400) {
  client c(server_->port());
  c.send_raw("GET\x01 / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(c.read().status, 400u);
}

TEST_F(AdminServerTest, IdleConnectionIsClosedAfterTheReadTimeout) {
  config::admin_listener s;
  s.read_timeout = 200ms;
  restart(s);
  client c(server_->port());
  EXPECT_EQ(c.call(http::verb::get, "/healthz").status, 200u);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(AdminServerTest, StopWithAPublishPendingDropsItsLateResult) {
  client c(server_->port());
  c.send_raw(
      "POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Authorization: Bearer s3cret-admin-token\r\nContent-Length: 38\r\n\r\n"
      "{\"destination\":\"/topic/b\",\"body\":\"hi\"}");
  auto done = view_.take_pending();
  server_->stop();
  EXPECT_TRUE(c.closed_by_server());
  done(stored(1));  // after stop: must be harmless
  server_.reset();
}

TEST_F(AdminServerTest, StartFailsWithTheAddressWhenThePortIsTaken) {
  config::admin_listener s;
  s.port = server_->port();
  admin::server second(s, view_);
  try {
    second.start();
    FAIL() << "start() should have thrown";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(fmt::format("127.0.0.1:{}", s.port)), std::string::npos)
        << e.what();
  }
}

TEST_F(AdminServerTest, TooManyConnectionsAreRefused) {
  config::admin_listener s;
  s.max_connections = 2;
  restart(s);
  client a(server_->port());
  client b(server_->port());
  EXPECT_EQ(a.call(http::verb::get, "/healthz").status, 200u);
  EXPECT_EQ(b.call(http::verb::get, "/healthz").status, 200u);
  client third(server_->port());
  EXPECT_TRUE(third.closed_by_server());
}

}  // namespace
}  // namespace broker
