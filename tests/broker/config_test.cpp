#include "broker/config.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace broker {
namespace {

using namespace std::chrono_literals;

// Every key the config file accepts. The shipped file must list each one, and each must be
// wired to a reader (checked by feeding it a value of the wrong type).
constexpr std::string_view all_keys[] = {
    "tcp.enabled",
    "tcp.host",
    "tcp.port",
    "tcp.tls",
    "websocket.enabled",
    "websocket.host",
    "websocket.port",
    "websocket.path",
    "websocket.max_message_bytes",
    "websocket.tls",
    "websocket.max_handshake_bytes",
    "websocket.allowed_origins",
    "admin.enabled",
    "admin.host",
    "admin.port",
    "admin.token",
    "admin.max_body_bytes",
    "admin.max_header_bytes",
    "admin.read_timeout_ms",
    "admin.max_connections",
    "admin.allowed_origins",
    "admin.allowed_hosts",
    "tls.cert_file",
    "tls.key_file",
    "auth.anonymous",
    "auth.max_passcode_checks_per_address",
    "auth.users",
    "auth.rules",
    "heartbeat.min_interval_ms",
    "heartbeat.max_interval_ms",
    "heartbeat.send_interval_ms",
    "heartbeat.receive_interval_ms",
    "heartbeat.grace_factor",
    "limits.max_frame_bytes",
    "limits.max_header_count",
    "limits.max_header_line_bytes",
    "limits.max_body_bytes",
    "limits.max_queued_bytes",
    "limits.max_queued_frames",
    "limits.max_subscriptions_per_connection",
    "limits.max_destination_bytes",
    "limits.max_queue_messages",
    "limits.max_queues",
    "limits.max_journaled_destinations",
    "limits.default_prefetch",
    "limits.max_transactions_per_connection",
    "limits.max_frames_per_transaction",
    "limits.max_transaction_bytes",
    "limits.max_pending_store_bytes",
    "limits.max_pending_store_bytes_total",
    "limits.connect_timeout_ms",
    "limits.write_timeout_ms",
    "limits.max_connections",
    "limits.max_connections_per_address",
    "limits.max_publish_rate",
    "journal.enabled",
    "journal.durability",
    "journal.replay_max_messages",
    "journal.replay_max_bytes",
    "journal.retention_interval_ms",
    "journal.default_max_messages",
    "journal.default_max_age_ms",
    "journal.destinations",
    "cluster.redis.addresses",
    "cluster.redis.password_file",
    "cluster.redis.db",
    "cluster.redis.key_prefix",
    "cluster.redis.connect_timeout_ms",
    "cluster.redis.command_timeout_ms",
    "threads",
    "log_level",
    "data_dir",
    "server_name",
    "node_name",
};

// `key: value` as YAML, nested when the key is dotted ("tcp.port" -> "tcp:\n  port: 1\n").
std::string yaml_for(std::string_view dotted, std::string_view value, std::size_t depth = 0) {
  const std::string indent(2 * depth, ' ');
  auto dot = dotted.find('.');
  if (dot == std::string_view::npos) return fmt::format("{}{}: {}\n", indent, dotted, value);
  return fmt::format("{}{}:\n", indent, dotted.substr(0, dot)) +
         yaml_for(dotted.substr(dot + 1), value, depth + 1);
}

config_result parse(std::string_view yaml) { return parse_config(yaml, "test.yaml"); }

// The single error `yaml` must produce, as "where: what".
std::string only_error(std::string_view yaml) {
  config_result result = parse(yaml);
  EXPECT_FALSE(result.value.has_value());
  if (result.errors.size() != 1) {
    ADD_FAILURE() << "expected one error, got " << result.errors.size();
    return {};
  }
  return to_string(result.errors[0]);
}

void expect_same_settings(const config& a, const config& b) {
  EXPECT_EQ(a.tcp.enabled, b.tcp.enabled);
  EXPECT_EQ(a.tcp.host, b.tcp.host);
  EXPECT_EQ(a.tcp.port, b.tcp.port);
  EXPECT_EQ(a.websocket.enabled, b.websocket.enabled);
  EXPECT_EQ(a.websocket.host, b.websocket.host);
  EXPECT_EQ(a.websocket.port, b.websocket.port);
  EXPECT_EQ(a.websocket.path, b.websocket.path);
  EXPECT_EQ(a.websocket.max_message_bytes, b.websocket.max_message_bytes);
  EXPECT_EQ(a.admin.enabled, b.admin.enabled);
  EXPECT_EQ(a.admin.host, b.admin.host);
  EXPECT_EQ(a.admin.port, b.admin.port);
  EXPECT_EQ(a.admin.token, b.admin.token);
  EXPECT_EQ(a.admin.max_body_bytes, b.admin.max_body_bytes);
  EXPECT_EQ(a.admin.max_header_bytes, b.admin.max_header_bytes);
  EXPECT_EQ(a.admin.read_timeout, b.admin.read_timeout);
  EXPECT_EQ(a.admin.max_connections, b.admin.max_connections);
  EXPECT_EQ(a.admin.allowed_origins, b.admin.allowed_origins);
  EXPECT_EQ(a.admin.allowed_hosts, b.admin.allowed_hosts);
  EXPECT_EQ(a.auth.max_passcode_checks_per_address, b.auth.max_passcode_checks_per_address);
  EXPECT_EQ(a.auth.users.size(), b.auth.users.size());
  EXPECT_EQ(a.heartbeat.min_interval, b.heartbeat.min_interval);
  EXPECT_EQ(a.heartbeat.max_interval, b.heartbeat.max_interval);
  EXPECT_EQ(a.heartbeat.send_interval, b.heartbeat.send_interval);
  EXPECT_EQ(a.heartbeat.receive_interval, b.heartbeat.receive_interval);
  EXPECT_EQ(a.heartbeat.grace_factor, b.heartbeat.grace_factor);
  EXPECT_EQ(a.limits.frame.max_frame_bytes, b.limits.frame.max_frame_bytes);
  EXPECT_EQ(a.limits.frame.max_header_count, b.limits.frame.max_header_count);
  EXPECT_EQ(a.limits.frame.max_header_line_bytes, b.limits.frame.max_header_line_bytes);
  EXPECT_EQ(a.limits.frame.max_body_bytes, b.limits.frame.max_body_bytes);
  EXPECT_EQ(a.limits.max_queued_bytes, b.limits.max_queued_bytes);
  EXPECT_EQ(a.limits.max_queued_frames, b.limits.max_queued_frames);
  EXPECT_EQ(a.limits.max_subscriptions_per_connection, b.limits.max_subscriptions_per_connection);
  EXPECT_EQ(a.limits.max_destination_bytes, b.limits.max_destination_bytes);
  EXPECT_EQ(a.limits.max_queue_messages, b.limits.max_queue_messages);
  EXPECT_EQ(a.limits.max_queues, b.limits.max_queues);
  EXPECT_EQ(a.limits.max_journaled_destinations, b.limits.max_journaled_destinations);
  EXPECT_EQ(a.limits.default_prefetch, b.limits.default_prefetch);
  EXPECT_EQ(a.limits.max_transactions_per_connection, b.limits.max_transactions_per_connection);
  EXPECT_EQ(a.limits.max_frames_per_transaction, b.limits.max_frames_per_transaction);
  EXPECT_EQ(a.limits.max_transaction_bytes, b.limits.max_transaction_bytes);
  EXPECT_EQ(a.limits.max_pending_store_bytes, b.limits.max_pending_store_bytes);
  EXPECT_EQ(a.limits.max_pending_store_bytes_total, b.limits.max_pending_store_bytes_total);
  EXPECT_EQ(a.limits.connect_timeout, b.limits.connect_timeout);
  EXPECT_EQ(a.limits.write_timeout, b.limits.write_timeout);
  EXPECT_EQ(a.journal.enabled, b.journal.enabled);
  EXPECT_EQ(a.journal.durability, b.journal.durability);
  EXPECT_EQ(a.journal.replay_max_messages, b.journal.replay_max_messages);
  EXPECT_EQ(a.journal.replay_max_bytes, b.journal.replay_max_bytes);
  EXPECT_EQ(a.journal.retention_interval, b.journal.retention_interval);
  EXPECT_EQ(a.journal.default_max_messages, b.journal.default_max_messages);
  EXPECT_EQ(a.journal.default_max_age, b.journal.default_max_age);
  EXPECT_EQ(a.journal.destinations.size(), b.journal.destinations.size());
  EXPECT_EQ(a.threads, b.threads);
  EXPECT_EQ(a.log_level, b.log_level);
  EXPECT_EQ(a.data_dir, b.data_dir);
  EXPECT_EQ(a.server_name, b.server_name);
  EXPECT_EQ(a.node_name, b.node_name);
}

const std::filesystem::path shipped_config =
    std::filesystem::path(STOMPD_SOURCE_DIR) / "conf" / "stompd.yaml";

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A file that is removed again when the test ends.
class temp_file {
 public:
  explicit temp_file(std::string_view text) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            fmt::format("stompd_config_test_{}_{}.yaml", ::getpid(), counter++);
    std::ofstream(path_, std::ios::binary) << text;
  }
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(ConfigTest, DefaultsAreTheDocumentedValues) {
  config c;
  EXPECT_TRUE(c.tcp.enabled);
  EXPECT_EQ(c.tcp.host, "127.0.0.1");
  EXPECT_EQ(c.tcp.port, 61613);
  EXPECT_TRUE(c.websocket.enabled);
  EXPECT_EQ(c.websocket.host, "127.0.0.1");
  EXPECT_EQ(c.websocket.port, 15674);
  EXPECT_EQ(c.websocket.path, "/ws");
  EXPECT_EQ(c.heartbeat.send_interval, 10s);
  EXPECT_EQ(c.heartbeat.grace_factor, 2.0);
  EXPECT_EQ(c.limits.connect_timeout, 10s);
  EXPECT_EQ(c.limits.write_timeout, 30s);
  EXPECT_EQ(c.threads, 0u);
  EXPECT_EQ(c.log_level, log_level::info);
  EXPECT_EQ(c.data_dir, "./data");
  EXPECT_EQ(c.server_name, "stompd");
}

TEST(ConfigTest, AdminListenerDefaultsAreTheDocumentedValues) {
  config c;
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.host, "127.0.0.1");
  EXPECT_EQ(c.admin.port, 61680);
  EXPECT_EQ(c.admin.port, config::admin_listener::default_port);
  EXPECT_EQ(c.admin.token, "");
  EXPECT_EQ(c.admin.max_body_bytes, 1024u * 1024);
  EXPECT_EQ(c.admin.max_header_bytes, 16u * 1024);
  EXPECT_EQ(c.admin.read_timeout, 30s);
  EXPECT_EQ(c.admin.max_connections, 64u);
}

TEST(ConfigTest, EmptyDocumentKeepsDefaults) {
  config_result result = parse("");
  ASSERT_TRUE(result.value.has_value());
  EXPECT_TRUE(result.errors.empty());
  expect_same_settings(*result.value, config{});
}

TEST(ConfigTest, DocumentOfOnlyCommentsKeepsDefaults) {
  config_result result = parse("# nothing set\n\n   # still nothing\n");
  ASSERT_TRUE(result.value.has_value());
  expect_same_settings(*result.value, config{});
}

// The one exception: the development guest user (issue 13), as RabbitMQ ships one.
TEST(ConfigTest, ShippedConfigLoadsAndEqualsTheDefaultsBesidesTheGuestUser) {
  config_result result = load_config(shipped_config);
  for (const config_error& e : result.errors) ADD_FAILURE() << to_string(e);
  ASSERT_TRUE(result.value.has_value());
  ASSERT_EQ(result.value->auth.users.size(), 1u);
  EXPECT_EQ(result.value->auth.users[0].name, "guest");
  EXPECT_TRUE(result.value->auth.users[0].passcode.starts_with("pbkdf2-sha256$"));
  config expected;
  expected.auth.users = result.value->auth.users;
  expect_same_settings(*result.value, expected);
}

TEST(ConfigTest, HeartBeatFloorAboveTheCeilingIsRefused) {
  EXPECT_EQ(
      only_error("heartbeat: {min_interval_ms: 5000, max_interval_ms: 1000}\n"),
      "test.yaml: heartbeat.min_interval_ms (5000) is above heartbeat.max_interval_ms (1000)");
}

TEST(ConfigTest, ShippedConfigListsEveryKey) {
  std::string text = "\n" + read_file(shipped_config);
  for (std::string_view key : all_keys) {
    // Each part of a dotted key must come after its parent's line, indented two more, before
    // a line indented less (comments and blank lines don't end a section).
    std::size_t at = 0;
    std::size_t depth = 0;
    for (std::string_view rest = key; at != std::string::npos; ++depth) {
      const auto dot = rest.find('.');
      const std::string line =
          fmt::format("\n{}{}:", std::string(2 * depth, ' '), rest.substr(0, dot));
      const std::size_t found = text.find(line, at);
      for (std::size_t nl = text.find('\n', at + 1); found != std::string::npos && nl < found;
           nl = text.find('\n', nl + 1)) {
        const std::size_t indent = text.find_first_not_of(' ', nl + 1) - nl - 1;
        const char first = text[nl + 1 + indent];
        if (depth > 0 && first != '#' && first != '\n' && indent < 2 * depth)
          at = std::string::npos;
      }
      if (at != std::string::npos) at = found;
      if (dot == std::string_view::npos) break;
      rest = rest.substr(dot + 1);
    }
    EXPECT_NE(at, std::string::npos) << key << " is missing from " << shipped_config;
  }
}

TEST(ConfigTest, ReadsEveryKey) {
  config_result result = parse(R"(
tcp: {enabled: false, host: 0.0.0.0, port: 1}
websocket: {enabled: false, host: "::", port: 2, path: /stomp, max_message_bytes: 3}
heartbeat: {min_interval_ms: 3, max_interval_ms: 4, send_interval_ms: 0, receive_interval_ms: 5, grace_factor: 1.5}
limits:
  max_frame_bytes: 11
  max_header_count: 12
  max_header_line_bytes: 13
  max_body_bytes: 14
  max_queued_bytes: 15
  max_queued_frames: 16
  max_subscriptions_per_connection: 17
  max_destination_bytes: 18
  max_queue_messages: 19
  max_queues: 24
  max_journaled_destinations: 25
  default_prefetch: 20
  max_transactions_per_connection: 21
  max_frames_per_transaction: 22
  max_transaction_bytes: 2201
  max_pending_store_bytes: 2202
  max_pending_store_bytes_total: 2203
  connect_timeout_ms: 23
  write_timeout_ms: 24
threads: 4
log_level: debug
data_dir: /var/lib/stompd
server_name: "stompd/test"
node_name: "node-b"
)");
  for (const config_error& e : result.errors) ADD_FAILURE() << to_string(e);
  ASSERT_TRUE(result.value.has_value());
  const config& c = *result.value;
  EXPECT_FALSE(c.tcp.enabled);
  EXPECT_EQ(c.tcp.host, "0.0.0.0");
  EXPECT_EQ(c.tcp.port, 1);
  EXPECT_FALSE(c.websocket.enabled);
  EXPECT_EQ(c.websocket.host, "::");
  EXPECT_EQ(c.websocket.port, 2);
  EXPECT_EQ(c.websocket.path, "/stomp");
  EXPECT_EQ(c.websocket.max_message_bytes, 3u);
  EXPECT_EQ(c.heartbeat.send_interval, 0ms);
  EXPECT_EQ(c.heartbeat.receive_interval, 5ms);
  EXPECT_EQ(c.heartbeat.min_interval, 3ms);
  EXPECT_EQ(c.heartbeat.max_interval, 4ms);
  EXPECT_EQ(c.heartbeat.grace_factor, 1.5);
  EXPECT_EQ(c.limits.frame.max_frame_bytes, 11u);
  EXPECT_EQ(c.limits.frame.max_header_count, 12u);
  EXPECT_EQ(c.limits.frame.max_header_line_bytes, 13u);
  EXPECT_EQ(c.limits.frame.max_body_bytes, 14u);
  EXPECT_EQ(c.limits.max_queued_bytes, 15u);
  EXPECT_EQ(c.limits.max_queued_frames, 16u);
  EXPECT_EQ(c.limits.max_subscriptions_per_connection, 17u);
  EXPECT_EQ(c.limits.max_destination_bytes, 18u);
  EXPECT_EQ(c.limits.max_queue_messages, 19u);
  EXPECT_EQ(c.limits.max_queues, 24u);
  EXPECT_EQ(c.limits.max_journaled_destinations, 25u);
  EXPECT_EQ(c.limits.default_prefetch, 20u);
  EXPECT_EQ(c.limits.max_transactions_per_connection, 21u);
  EXPECT_EQ(c.limits.max_frames_per_transaction, 22u);
  EXPECT_EQ(c.limits.max_transaction_bytes, 2201u);
  EXPECT_EQ(c.limits.max_pending_store_bytes, 2202u);
  EXPECT_EQ(c.limits.max_pending_store_bytes_total, 2203u);
  EXPECT_EQ(c.limits.connect_timeout, 23ms);
  EXPECT_EQ(c.limits.write_timeout, 24ms);
  EXPECT_EQ(c.threads, 4u);
  EXPECT_EQ(c.log_level, log_level::debug);
  EXPECT_EQ(c.data_dir, "/var/lib/stompd");
  EXPECT_EQ(c.server_name, "stompd/test");
  EXPECT_EQ(c.node_name, "node-b");
}

TEST(ConfigTest, UnsetKeysKeepTheBaseValues) {
  config base;
  base.threads = 7;
  base.tcp.host = "10.0.0.1";
  config_result result = parse_config("tcp: {port: 1234}\n", "test.yaml", base);
  ASSERT_TRUE(result.value.has_value());
  EXPECT_EQ(result.value->threads, 7u);
  EXPECT_EQ(result.value->tcp.host, "10.0.0.1");
  EXPECT_EQ(result.value->tcp.port, 1234);
}

TEST(ConfigTest, SectionWithEveryKeyCommentedOutKeepsDefaults) {
  config_result result = parse("tcp:\n  # port: 1\nthreads: 2\n");
  ASSERT_TRUE(result.value.has_value());
  EXPECT_EQ(result.value->tcp.port, 61613);
  EXPECT_EQ(result.value->threads, 2u);
}

TEST(ConfigTest, AcceptsCapitalisedBooleans) {
  config_result result = parse("tcp: {enabled: FALSE}\nwebsocket: {enabled: True}\n");
  ASSERT_TRUE(result.value.has_value());
  EXPECT_FALSE(result.value->tcp.enabled);
  EXPECT_TRUE(result.value->websocket.enabled);
}

TEST(ConfigTest, AcceptsPortZeroForAnEphemeralPort) {
  config_result result = parse("tcp: {port: 0}\n");
  ASSERT_TRUE(result.value.has_value());
  EXPECT_EQ(result.value->tcp.port, 0);
}

TEST(ConfigTest, AcceptsWholeNumberGraceFactor) {
  config_result result = parse("heartbeat: {grace_factor: 3}\n");
  ASSERT_TRUE(result.value.has_value());
  EXPECT_EQ(result.value->heartbeat.grace_factor, 3.0);
}

TEST(ConfigTest, EveryKeyRejectsAValueOfTheWrongTypeNamingTheFullKey) {
  for (std::string_view key : all_keys) {
    std::string error = only_error(yaml_for(key, "{a: 1}"));
    const auto line = 1 + std::count(key.begin(), key.end(), '.');
    EXPECT_EQ(error.substr(0, error.find(" expected")),
              fmt::format("test.yaml:{}: {}:", line, key));
    EXPECT_NE(error.find("got a mapping"), std::string::npos) << error;
  }
}

TEST(ConfigTest, ReadsTheClusterSettings) {
  config_result result = parse(R"(
cluster:
  redis:
    addresses: ["127.0.0.1:6379", "[::1]:6380"]
    password_file: /etc/stompd/redis.pass
    db: 3
    key_prefix: "app:"
    connect_timeout_ms: 100
    command_timeout_ms: 200
)");
  for (const config_error& e : result.errors) ADD_FAILURE() << to_string(e);
  ASSERT_TRUE(result.value.has_value());
  const auto& r = result.value->cluster.redis;
  ASSERT_EQ(r.addresses.size(), 2u);
  EXPECT_EQ(r.addresses[0].host, "127.0.0.1");
  EXPECT_EQ(r.addresses[0].port, 6379);
  EXPECT_EQ(r.addresses[1].host, "::1");
  EXPECT_EQ(r.addresses[1].port, 6380);
  EXPECT_EQ(r.password_file, "/etc/stompd/redis.pass");
  EXPECT_EQ(r.db, 3u);
  EXPECT_EQ(r.key_prefix, "app:");
  EXPECT_EQ(r.connect_timeout.count(), 100);
  EXPECT_EQ(r.command_timeout.count(), 200);
  EXPECT_TRUE(result.value->cluster.enabled());
  EXPECT_FALSE(config{}.cluster.enabled());  // one node, SQLite, unless Redis is named
}

TEST(ConfigTest, ARedisAddressMustBeAnIpAddressAndAPort) {
  EXPECT_EQ(only_error("cluster: {redis: {addresses: [\"redis.local:6379\"]}}\n"),
            "test.yaml:1: cluster.redis.addresses: expected an IP address as HOST, got "
            "'redis.local'");
  EXPECT_EQ(only_error("cluster: {redis: {addresses: [\"127.0.0.1\"]}}\n"),
            "test.yaml:1: cluster.redis.addresses: expected HOST:PORT, got '127.0.0.1'");
  EXPECT_EQ(only_error("cluster: {redis: {addresses: [\"127.0.0.1:0\"]}}\n"),
            "test.yaml:1: cluster.redis.addresses: port must be between 1 and 65535, got '0'");
  EXPECT_EQ(only_error("cluster: {redis: {db: 16}}\n"),
            "test.yaml:1: cluster.redis.db: must be between 0 and 15, got 16");
}

TEST(ConfigTest, ReadsJournalDestinationRulesInOrder) {
  config_result result = parse(R"(
journal:
  durability: power
  destinations:
    - pattern: /topic/lost-item.**
      max_messages: 100
      max_age_ms: 60000
    - pattern: /topic/typing.*
      journaled: false
)");
  for (const config_error& e : result.errors) ADD_FAILURE() << to_string(e);
  ASSERT_TRUE(result.value.has_value());
  const auto& j = result.value->journal;
  EXPECT_EQ(j.durability, config::journal_settings::durability_mode::power);
  ASSERT_EQ(j.destinations.size(), 2u);
  EXPECT_EQ(j.destinations[0].pattern, "/topic/lost-item.**");
  EXPECT_TRUE(j.destinations[0].journaled);
  EXPECT_EQ(j.destinations[0].max_messages, 100u);
  EXPECT_EQ(j.destinations[0].max_age, 60s);
  EXPECT_EQ(j.destinations[1].pattern, "/topic/typing.*");
  EXPECT_FALSE(j.destinations[1].journaled);
}

TEST(ConfigTest, RejectsDestinationRuleWithoutPatternOrWithBadOne) {
  config_result result = parse(R"(
journal:
  destinations:
    - max_messages: 5
    - pattern: /topic/a*
    - pattern: /topic/b
      colour: blue
)");
  ASSERT_EQ(result.errors.size(), 3u);
  EXPECT_EQ(to_string(result.errors[0]), "test.yaml:4: journal.destinations[0].pattern: missing");
  EXPECT_NE(to_string(result.errors[1]).find("journal.destinations[1].pattern: '*' and '**'"),
            std::string::npos)
      << to_string(result.errors[1]);
  EXPECT_EQ(to_string(result.errors[2]),
            "test.yaml:7: unknown key 'journal.destinations[2].colour'");
}

// Issue 11: broker-wide bounds on queues and journaled destinations, and a finite retention
// for topics no rule names.
TEST(ConfigTest, ReadsDestinationBoundsAndDefaultRetention) {
  config_result result = parse(R"(
limits: {max_queues: 3, max_journaled_destinations: 4}
journal: {default_max_messages: 0, default_max_age_ms: 5000}
)");
  for (const config_error& e : result.errors) ADD_FAILURE() << to_string(e);
  ASSERT_TRUE(result.value.has_value());
  EXPECT_EQ(result.value->limits.max_queues, 3u);
  EXPECT_EQ(result.value->limits.max_journaled_destinations, 4u);
  EXPECT_EQ(result.value->journal.default_max_messages, 0u);
  EXPECT_EQ(result.value->journal.default_max_age, 5s);
}

TEST(ConfigTest, DestinationBoundsAndDefaultRetentionAreFiniteByDefault) {
  const config c;
  EXPECT_EQ(c.limits.max_queues, 10'000u);
  EXPECT_EQ(c.limits.max_journaled_destinations, 100'000u);
  EXPECT_EQ(c.journal.default_max_messages, 10'000u);
  EXPECT_EQ(c.journal.default_max_age, std::chrono::hours(24 * 30));
}

// A retention age is no timer: the README's 30-day rule loads (the one-day bound of timer
// durations refused it).
TEST(ConfigTest, RetentionAgesMayExceedADay) {
  config_result result = parse(R"(
journal:
  default_max_age_ms: 2592000000
  destinations:
    - pattern: /topic/lost-item.**
      max_age_ms: 31536000000
)");
  for (const config_error& e : result.errors) ADD_FAILURE() << to_string(e);
  ASSERT_TRUE(result.value.has_value());
  EXPECT_EQ(result.value->journal.default_max_age, std::chrono::hours(24 * 30));
  EXPECT_EQ(result.value->journal.destinations.at(0).max_age, std::chrono::hours(24 * 365));
}

TEST(ConfigTest, RejectsZeroDestinationBounds) {
  EXPECT_EQ(only_error("limits:\n  max_queues: 0\n"),
            "test.yaml:2: limits.max_queues: must be at least 1, got 0");
  EXPECT_EQ(only_error("limits:\n  max_journaled_destinations: 0\n"),
            "test.yaml:2: limits.max_journaled_destinations: must be at least 1, got 0");
}

TEST(ConfigTest, RejectsUnknownDurability) {
  EXPECT_EQ(only_error("journal:\n  durability: disk\n"),
            "test.yaml:2: journal.durability: expected process or power, got 'disk'");
}

TEST(ConfigTest, RejectsUnknownTopLevelKey) {
  EXPECT_EQ(only_error("threads: 2\nflavour: vanilla\n"), "test.yaml:2: unknown key 'flavour'");
}

TEST(ConfigTest, RejectsUnknownNestedKeyWithItsDottedName) {
  EXPECT_EQ(only_error("limits:\n  max_frame_bytes: 10\n  max_sandwiches: 3\n"),
            "test.yaml:3: unknown key 'limits.max_sandwiches'");
}

TEST(ConfigTest, SuggestsTheClosestKeyForATypo) {
  EXPECT_EQ(only_error("tcp:\n  prot: 1\n"),
            "test.yaml:2: unknown key 'tcp.prot' (did you mean 'tcp.port'?)");
}

TEST(ConfigTest, RejectsDuplicateKey) {
  EXPECT_EQ(only_error("threads: 1\nlog_level: info\nthreads: 2\n"),
            "test.yaml:3: duplicate key 'threads' (first set on line 1)");
}

TEST(ConfigTest, RejectsNonIntegerWhereAnIntegerIsExpected) {
  EXPECT_EQ(only_error("tcp:\n  port: http\n"),
            "test.yaml:2: tcp.port: expected an integer, got 'http'");
}

TEST(ConfigTest, RejectsQuotedNumberBecauseYamlMakesItAString) {
  EXPECT_EQ(only_error("threads: \"4\"\n"),
            "test.yaml:1: threads: expected an integer, got the quoted string \"4\"");
}

TEST(ConfigTest, RejectsFractionWhereAnIntegerIsExpected) {
  EXPECT_EQ(only_error("limits: {max_body_bytes: 1.5}\n"),
            "test.yaml:1: limits.max_body_bytes: expected an integer, got '1.5'");
}

TEST(ConfigTest, RejectsEmptyValueWhereAnIntegerIsExpected) {
  EXPECT_EQ(only_error("threads:\nlog_level: info\n"),
            "test.yaml:1: threads: expected an integer, got an empty value");
}

TEST(ConfigTest, RejectsYesAsABoolean) {
  EXPECT_EQ(only_error("websocket:\n  enabled: yes\n"),
            "test.yaml:2: websocket.enabled: expected true or false, got 'yes'");
}

TEST(ConfigTest, RejectsListWhereAStringIsExpected) {
  EXPECT_EQ(only_error("server_name: [a, b]\n"),
            "test.yaml:1: server_name: expected a string, got a list");
}

TEST(ConfigTest, RejectsNonNumericGraceFactor) {
  EXPECT_EQ(only_error("heartbeat: {grace_factor: lots}\n"),
            "test.yaml:1: heartbeat.grace_factor: expected a number, got 'lots'");
}

TEST(ConfigTest, RejectsPortAbove65535) {
  EXPECT_EQ(only_error("tcp:\n  port: 65536\n"),
            "test.yaml:2: tcp.port: must be between 0 and 65535, got 65536");
}

TEST(ConfigTest, RejectsNegativePort) {
  EXPECT_EQ(only_error("websocket: {port: -1}\n"),
            "test.yaml:1: websocket.port: must be between 0 and 65535, got -1");
}

TEST(ConfigTest, RejectsIntegerBeyondSixtyFourBits) {
  EXPECT_EQ(only_error("limits: {max_queued_bytes: 99999999999999999999999}\n"),
            "test.yaml:1: limits.max_queued_bytes: must be at least 1, got "
            "99999999999999999999999");
}

TEST(ConfigTest, RejectsZeroSize) {
  EXPECT_EQ(only_error("limits:\n  max_frame_bytes: 0\n"),
            "test.yaml:2: limits.max_frame_bytes: must be at least 1, got 0");
}

TEST(ConfigTest, RejectsZeroConnectTimeout) {
  EXPECT_EQ(only_error("limits: {connect_timeout_ms: 0}\n"),
            "test.yaml:1: limits.connect_timeout_ms: must be between 1 and 86400000, got 0");
  EXPECT_EQ(only_error("limits: {write_timeout_ms: 0}\n"),
            "test.yaml:1: limits.write_timeout_ms: must be between 1 and 86400000, got 0");
}

TEST(ConfigTest, RejectsHeartbeatIntervalLongerThanADay) {
  EXPECT_EQ(only_error("heartbeat: {send_interval_ms: 86400001}\n"),
            "test.yaml:1: heartbeat.send_interval_ms: must be between 0 and 86400000, got "
            "86400001");
}

TEST(ConfigTest, RejectsGraceFactorBelowOne) {
  EXPECT_EQ(only_error("heartbeat:\n  grace_factor: 0.5\n"),
            "test.yaml:2: heartbeat.grace_factor: must be between 1 and 100, got 0.5");
}

TEST(ConfigTest, ReadsAdminListenerLimits) {
  config_result result = parse(R"(
admin:
  token: s3cret
  max_body_bytes: 100
  max_header_bytes: 512
  read_timeout_ms: 250
  max_connections: 2
)");
  for (const config_error& e : result.errors) ADD_FAILURE() << to_string(e);
  ASSERT_TRUE(result.value.has_value());
  const auto& a = result.value->admin;
  EXPECT_EQ(a.token, "s3cret");
  EXPECT_EQ(a.max_body_bytes, 100u);
  EXPECT_EQ(a.max_header_bytes, 512u);
  EXPECT_EQ(a.read_timeout, 250ms);
  EXPECT_EQ(a.max_connections, 2u);
}

TEST(ConfigTest, ReadsAdminBrowserAllowLists) {
  config_result result = parse(
      "admin:\n  allowed_origins: [\"https://ops.example\"]\n  allowed_hosts: stompd.internal\n");
  for (const config_error& e : result.errors) ADD_FAILURE() << to_string(e);
  ASSERT_TRUE(result.value.has_value());
  EXPECT_EQ(result.value->admin.allowed_origins, std::vector<std::string>{"https://ops.example"});
  EXPECT_EQ(result.value->admin.allowed_hosts, std::vector<std::string>{"stompd.internal"});
  EXPECT_TRUE(config{}.admin.allowed_origins.empty());
  EXPECT_TRUE(config{}.admin.allowed_hosts.empty());
}

TEST(ConfigTest, RejectsZeroAdminConnections) {
  EXPECT_EQ(only_error("admin:\n  max_connections: 0\n"),
            "test.yaml:2: admin.max_connections: must be at least 1, got 0");
}

TEST(ConfigTest, RejectsZeroAdminBody) {
  EXPECT_EQ(only_error("admin: {max_body_bytes: 0}\n"),
            "test.yaml:1: admin.max_body_bytes: must be at least 1, got 0");
}

TEST(ConfigTest, RejectsAdminHeaderLimitOutsideItsRange) {
  EXPECT_EQ(only_error("admin:\n  max_header_bytes: 511\n"),
            "test.yaml:2: admin.max_header_bytes: must be between 512 and 1048576, got 511");
  EXPECT_EQ(only_error("admin:\n  max_header_bytes: 1048577\n"),
            "test.yaml:2: admin.max_header_bytes: must be between 512 and 1048576, got 1048577");
}

TEST(ConfigTest, RejectsZeroAdminReadTimeout) {
  EXPECT_EQ(only_error("admin: {read_timeout_ms: 0}\n"),
            "test.yaml:1: admin.read_timeout_ms: must be between 1 and 86400000, got 0");
}

TEST(ConfigTest, CollectsEveryAdminLimitErrorWithItsLine) {
  config_result result = parse("admin:\n  max_connections: 0\n  read_timeout_ms: -5\n");
  EXPECT_FALSE(result.value.has_value());
  ASSERT_EQ(result.errors.size(), 2u);
  EXPECT_EQ(to_string(result.errors[0]),
            "test.yaml:2: admin.max_connections: must be at least 1, got 0");
  EXPECT_EQ(to_string(result.errors[1]),
            "test.yaml:3: admin.read_timeout_ms: must be between 1 and 86400000, got -5");
}

TEST(ConfigTest, ReadsPasscodeChecksPerAddress) {
  EXPECT_EQ(config{}.auth.max_passcode_checks_per_address, 4u);
  config_result result = parse("auth: {max_passcode_checks_per_address: 2}\n");
  ASSERT_TRUE(result.value.has_value());
  EXPECT_EQ(result.value->auth.max_passcode_checks_per_address, 2u);
  EXPECT_EQ(only_error("auth:\n  max_passcode_checks_per_address: 0\n"),
            "test.yaml:2: auth.max_passcode_checks_per_address: must be between 1 and 256, got 0");
}

TEST(ConfigTest, ReadsRuleSubjectsApartFromUsers) {
  config_result result = parse(R"(
auth:
  rules:
    - {users: [council], subjects: [alice, "*"], send: [/topic/a]}
)");
  for (const config_error& e : result.errors) ADD_FAILURE() << to_string(e);
  ASSERT_TRUE(result.value.has_value());
  ASSERT_EQ(result.value->auth.rules.size(), 1u);
  const auto& r = result.value->auth.rules[0];
  EXPECT_EQ(r.users, std::vector<std::string>{"council"});
  EXPECT_EQ(r.subjects, (std::vector<std::string>{"alice", "*"}));
}

TEST(ConfigTest, RejectsWebSocketPathWithoutLeadingSlash) {
  EXPECT_EQ(only_error("websocket: {path: ws}\n"),
            "test.yaml:1: websocket.path: must start with '/', got 'ws'");
}

TEST(ConfigTest, RejectsEmptyHost) {
  EXPECT_EQ(only_error("tcp: {host: ''}\n"), "test.yaml:1: tcp.host: must not be empty");
}

TEST(ConfigTest, RejectsUnknownLogLevel) {
  EXPECT_EQ(only_error("log_level: loud\n"),
            "test.yaml:1: log_level: expected trace, debug, info, warn, error or off, got "
            "'loud'");
}

TEST(ConfigTest, AcceptsOffAsLogLevel) {
  config_result result = parse("log_level: off\n");
  ASSERT_TRUE(result.value.has_value());
  EXPECT_EQ(result.value->log_level, log_level::off);
}

TEST(ConfigTest, RejectsMoreThan64Threads) {
  EXPECT_EQ(only_error("threads: 65\n"), "test.yaml:1: threads: must be between 0 and 64, got 65");
}

TEST(ConfigTest, RejectsSectionThatIsNotAMapping) {
  EXPECT_EQ(only_error("limits: 5\n"),
            "test.yaml:1: limits: expected a mapping of settings, got '5'");
}

TEST(ConfigTest, RejectsDocumentThatIsNotAMapping) {
  EXPECT_EQ(only_error("- tcp\n- websocket\n"),
            "test.yaml:1: expected a mapping of settings, got a list");
}

TEST(ConfigTest, RejectsASecondDocument) {
  EXPECT_EQ(only_error("threads: 1\n---\nthreads: 2\n"),
            "test.yaml:3: expected one YAML document, found a second one");
}

TEST(ConfigTest, ReportsYamlSyntaxErrorWithItsLine) {
  std::string error = only_error("threads: 1\ntcp: {port: 1\nlog_level: info\n");
  EXPECT_TRUE(error.starts_with("test.yaml:")) << error;
  EXPECT_NE(error.find("invalid YAML"), std::string::npos) << error;
  EXPECT_FALSE(error.starts_with("test.yaml:1:")) << error;
}

TEST(ConfigTest, ReportsBadIndentationWithItsLine) {
  std::string error = only_error("tcp:\n  port: 1\n host: x\n");
  EXPECT_TRUE(error.starts_with("test.yaml:3: invalid YAML")) << error;
}

TEST(ConfigTest, CollectsEveryErrorInDocumentOrder) {
  config_result result = parse(R"(tcp:
  port: 70000
  hots: localhost
websocket:
  path: ws
limits:
  max_body_bytes: 0
log_level: chatty
threads: many
)");
  EXPECT_FALSE(result.value.has_value());
  std::vector<std::string> errors;
  for (const config_error& e : result.errors) errors.push_back(to_string(e));
  EXPECT_EQ(errors, (std::vector<std::string>{
                        "test.yaml:2: tcp.port: must be between 0 and 65535, got 70000",
                        "test.yaml:3: unknown key 'tcp.hots' (did you mean 'tcp.host'?)",
                        "test.yaml:5: websocket.path: must start with '/', got 'ws'",
                        "test.yaml:7: limits.max_body_bytes: must be at least 1, got 0",
                        "test.yaml:8: log_level: expected trace, debug, info, warn, error or "
                        "off, got 'chatty'",
                        "test.yaml:9: threads: expected an integer, got 'many'",
                    }));
}

TEST(ConfigTest, LoadConfigReportsErrorsWithTheFilePath) {
  temp_file file("threads: 1\nthreads_per_core: 2\n");
  config_result result = load_config(file.path());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].where, file.path().string() + ":2");
  EXPECT_EQ(result.errors[0].what, "unknown key 'threads_per_core'");
}

TEST(ConfigTest, LoadConfigReadsAFile) {
  temp_file file("server_name: from-file\n");
  config_result result = load_config(file.path());
  ASSERT_TRUE(result.value.has_value());
  EXPECT_EQ(result.value->server_name, "from-file");
}

TEST(ConfigTest, LoadConfigOfAMissingFileCannotRead) {
  std::filesystem::path missing = "/nonexistent/stompd.yaml";
  config_result result = load_config(missing);
  EXPECT_FALSE(result.value.has_value());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].where, "/nonexistent/stompd.yaml");
  EXPECT_TRUE(result.errors[0].what.starts_with("cannot read")) << result.errors[0].what;
}

TEST(ConfigTest, LoadConfigOfADirectoryCannotRead) {
  config_result result = load_config(std::filesystem::temp_directory_path());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].what, "cannot read: is a directory");
}

TEST(ConfigTest, ErrorToStringJoinsWhereAndWhat) {
  EXPECT_EQ(to_string(config_error{"a.yaml:3", "threads: bad"}), "a.yaml:3: threads: bad");
  EXPECT_EQ(to_string(config_error{"", "bad"}), "bad");
}

}  // namespace
}  // namespace broker
