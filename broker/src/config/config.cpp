#include "broker/config.hpp"

#include "broker/destination_pattern.hpp"
#include "config/yaml_schema.hpp"
#include "stomp/decimal.hpp"

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <utility>

namespace broker {

std::string to_string(const config_error& error) {
  return error.where.empty() ? error.what : fmt::format("{}: {}", error.where, error.what);
}

std::string parse_redis_address(std::string_view text,
                                config::cluster_settings::redis_settings::address& out) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return fmt::format("expected HOST:PORT, got '{}'", text);
  std::string_view host = text.substr(0, colon);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  boost::asio::ip::make_address(std::string(host), ec);
  // hiredis resolves names with a blocking call: an address keeps the event loop unblocked.
  if (ec) return fmt::format("expected an IP address as HOST, got '{}'", host);
  auto port = stomp::parse_decimal<std::uint16_t>(text.substr(colon + 1));
  if (!port || *port == 0)
    return fmt::format("port must be between 1 and 65535, got '{}'", text.substr(colon + 1));
  out = {std::string(host), *port};
  return {};
}

namespace {

using namespace yaml_schema;

// Bounds the heart-beat deadline for the same reason; 100 silent intervals is already lax.
constexpr double max_grace_factor = 100.0;

std::string url_path(const std::string& value) {
  return value.starts_with('/') ? "" : fmt::format("must start with '/', got '{}'", value);
}

// A passcode in the config must be a hash: a plain-text one would be readable by anyone who
// can read the file.
std::string hashed_passcode(const std::string& value) {
  return value.starts_with("pbkdf2-sha256$")
             ? ""
             : "must be a hash made by `stompd --hash-passcode` (plain-text passcodes are refused)";
}

std::string jwt_algorithm(const std::string& value) {
  return value == "HS256" || value == "RS256" || value == "ES256"
             ? ""
             : fmt::format("expected HS256, RS256 or ES256, got '{}'", value);
}

reader read_redis_addresses(std::vector<config::cluster_settings::redis_settings::address>& out) {
  return [&out](const YAML::Node& node) -> std::string {
    std::vector<std::string> texts;
    if (auto error = read_string_list(texts)(node); !error.empty()) return error;
    std::vector<config::cluster_settings::redis_settings::address> parsed(texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i)
      if (auto error = parse_redis_address(texts[i], parsed[i]); !error.empty()) return error;
    out = std::move(parsed);
    return {};
  };
}

reader read_log_level(log_level& out) {
  return [&out](const YAML::Node& node) -> std::string {
    std::optional<log_level> level;
    if (node.IsScalar()) level = parse_log_level(node.Scalar());
    if (!level)
      return fmt::format("expected trace, debug, info, warn, error or off, got {}", describe(node));
    out = *level;
    return {};
  };
}

reader read_durability(config::journal_settings::durability_mode& out) {
  return [&out](const YAML::Node& node) -> std::string {
    const std::string* text = plain_scalar(node);
    if (text && *text == "process")
      out = config::journal_settings::durability_mode::process;
    else if (text && *text == "power")
      out = config::journal_settings::durability_mode::power;
    else
      return fmt::format("expected process or power, got {}", describe(node));
    return {};
  };
}

reader read_pattern(std::string& out) {
  return [&out](const YAML::Node& node) -> std::string {
    if (!node.IsScalar()) return fmt::format("expected a pattern, got {}", describe(node));
    std::string error;
    if (!destination_pattern::parse(node.Scalar(), &error)) return error;
    out = node.Scalar();
    return {};
  };
}

std::vector<entry> listener_keys(config::listener& l, std::vector<entry> more = {}) {
  std::vector<entry> keys = {
      {"enabled", read_bool(l.enabled)},
      {"host", read_string(l.host)},
      {"port", read_uint(l.port)},  // 0: ephemeral
      {"tls", read_bool(l.tls)},
  };
  keys.insert(keys.end(), std::make_move_iterator(more.begin()),
              std::make_move_iterator(more.end()));
  return keys;
}

// Every key the config file may hold, bound to the field of `c` it sets. conf/stompd.yaml
// documents each one; adding a key is one line here, one there, and a test.
std::vector<entry> schema(config& c) {
  auto& frame = c.limits.frame;
  auto& limits = c.limits;
  return {
      {"tcp", listener_keys(c.tcp)},
      {"websocket",
       listener_keys(c.websocket,
                     {
                         {"path", read_string(c.websocket.path, url_path)},
                         {"max_message_bytes", read_positive(c.websocket.max_message_bytes)},
                         {"max_handshake_bytes",
                          read_uint(c.websocket.max_handshake_bytes, 512, 1024 * 1024)},
                         {"allowed_origins", read_string_list(c.websocket.allowed_origins)},
                     })},
      {"admin",
       {
           {"enabled", read_bool(c.admin.enabled)},
           {"host", read_string(c.admin.host)},
           {"port", read_uint(c.admin.port)},
           {"token", read_string(c.admin.token, any_string)},
           {"max_body_bytes", read_positive(c.admin.max_body_bytes)},
           {"max_header_bytes", read_uint(c.admin.max_header_bytes, 512, 1024 * 1024)},
           {"read_timeout_ms", read_ms(c.admin.read_timeout, 1)},
           {"max_connections", read_positive(c.admin.max_connections)},
           {"allowed_origins", read_string_list(c.admin.allowed_origins)},
           {"allowed_hosts", read_string_list(c.admin.allowed_hosts)},
       }},
      {"tls",
       {
           {"cert_file", read_path(c.tls.cert_file, any_string)},
           {"key_file", read_path(c.tls.key_file, any_string)},
       }},
      {"auth",
       {
           {"anonymous", read_bool(c.auth.anonymous)},
           {"max_passcode_checks_per_address",
            read_uint(c.auth.max_passcode_checks_per_address, 1, 256)},  // 256: the whole queue
           {"users", list_item([&users = c.auth.users]() -> std::vector<entry> {
              auto& u = users.emplace_back();
              return {
                  {"name", read_string(u.name), true},
                  {"passcode", read_string(u.passcode, hashed_passcode), true},
                  {"roles", read_string_list(u.roles)},
              };
            })},
           {"jwt",
            {
                {"enabled", read_bool(c.auth.jwt.enabled)},
                {"algorithm", read_string(c.auth.jwt.algorithm, jwt_algorithm)},
                {"secret", read_string(c.auth.jwt.secret, any_string)},
                {"public_key_file", read_path(c.auth.jwt.public_key_file, any_string)},
                {"issuer", read_string(c.auth.jwt.issuer, any_string)},
                {"audience", read_string(c.auth.jwt.audience, any_string)},
                {"leeway_ms", read_ms(c.auth.jwt.leeway, 0)},
                {"user_claim", read_string(c.auth.jwt.user_claim)},
                {"roles_claim", read_string(c.auth.jwt.roles_claim)},
                {"grants_claim", read_string(c.auth.jwt.grants_claim)},
                {"close_on_expiry", read_bool(c.auth.jwt.close_on_expiry)},
            }},
           {"rules", list_item([&rules = c.auth.rules]() -> std::vector<entry> {
              auto& r = rules.emplace_back();
              return {
                  {"users", read_string_list(r.users)},
                  {"roles", read_string_list(r.roles)},
                  {"subjects", read_string_list(r.subjects)},
                  {"subscribe", read_string_list(r.subscribe)},
                  {"send", read_string_list(r.send)},
              };
            })},
       }},
      {"heartbeat",
       {
           {"min_interval_ms", read_ms(c.heartbeat.min_interval, 1)},
           {"max_interval_ms", read_ms(c.heartbeat.max_interval, 1)},
           {"send_interval_ms", read_ms(c.heartbeat.send_interval, 0)},  // 0: never sends
           {"receive_interval_ms", read_ms(c.heartbeat.receive_interval, 0)},
           {"grace_factor", read_double(c.heartbeat.grace_factor, 1.0, max_grace_factor)},
       }},
      {"limits",
       {
           {"max_frame_bytes", read_positive(frame.max_frame_bytes)},
           {"max_header_count", read_positive(frame.max_header_count)},
           {"max_header_line_bytes", read_positive(frame.max_header_line_bytes)},
           {"max_body_bytes", read_positive(frame.max_body_bytes)},
           {"max_queued_bytes", read_positive(limits.max_queued_bytes)},
           {"max_queued_frames", read_positive(limits.max_queued_frames)},
           {"max_subscriptions_per_connection",
            read_positive(limits.max_subscriptions_per_connection)},
           {"max_destination_bytes", read_positive(limits.max_destination_bytes)},
           {"max_queue_messages", read_positive(limits.max_queue_messages)},
           {"max_queues", read_positive(limits.max_queues)},
           {"max_journaled_destinations", read_positive(limits.max_journaled_destinations)},
           {"default_prefetch", read_positive(limits.default_prefetch)},
           {"max_transactions_per_connection",
            read_positive(limits.max_transactions_per_connection)},
           {"max_frames_per_transaction", read_positive(limits.max_frames_per_transaction)},
           {"max_transaction_bytes", read_positive(limits.max_transaction_bytes)},
           {"max_pending_store_bytes", read_positive(limits.max_pending_store_bytes)},
           {"max_pending_store_bytes_total", read_positive(limits.max_pending_store_bytes_total)},
           {"max_held_bytes_total", read_positive(limits.max_held_bytes_total)},
           {"max_push_back_ms", read_ms(limits.max_push_back, 1)},
           {"connect_timeout_ms", read_ms(limits.connect_timeout, 1)},
           {"write_timeout_ms", read_ms(limits.write_timeout, 1)},
           {"max_connections", read_positive(limits.max_connections)},
           {"max_connections_per_address", read_uint(limits.max_connections_per_address)},
           {"max_publish_rate", read_uint(limits.max_publish_rate)},
       }},
      {"journal",
       {
           {"enabled", read_bool(c.journal.enabled)},
           {"durability", read_durability(c.journal.durability)},
           {"replay_max_messages", read_positive(c.journal.replay_max_messages)},
           {"replay_max_bytes", read_positive(c.journal.replay_max_bytes)},
           {"retention_interval_ms", read_ms(c.journal.retention_interval, 10)},
           {"idempotency_window_ms", read_ms(c.journal.idempotency_window, 1)},
           {"commit_window_ms", read_ms(c.journal.commit_window, 0)},
           {"default_max_messages", read_uint(c.journal.default_max_messages)},   // 0: no limit
           {"default_max_age_ms", read_retention_ms(c.journal.default_max_age)},  // 0: no limit
           {"destinations", list_item([&rules = c.journal.destinations]() -> std::vector<entry> {
              auto& r = rules.emplace_back();
              return {
                  {"pattern", read_pattern(r.pattern), true},
                  {"journaled", read_bool(r.journaled)},
                  {"max_messages", read_uint(r.max_messages)},
                  {"max_age_ms", read_retention_ms(r.max_age)},  // 0: no limit
              };
            })},
       }},
      {"cluster",
       {
           {"redis",
            {
                {"addresses", read_redis_addresses(c.cluster.redis.addresses)},
                {"password_file", read_path(c.cluster.redis.password_file, any_string)},
                {"db", read_uint(c.cluster.redis.db, 0, 15)},
                {"key_prefix", read_string(c.cluster.redis.key_prefix, any_string)},
                {"connect_timeout_ms", read_ms(c.cluster.redis.connect_timeout, 1)},
                {"command_timeout_ms", read_ms(c.cluster.redis.command_timeout, 1)},
                {"queue_redelivery_timeout_ms",
                 read_ms(c.cluster.redis.queue_redelivery_timeout, 100)},
                {"presence_timeout_ms", read_ms(c.cluster.redis.presence_timeout, 300)},
            }},
       }},
      {"threads", read_uint(c.threads, 0, config::max_threads)},  // 0: one per core
      {"log_level", read_log_level(c.log_level)},
      {"data_dir", read_path(c.data_dir)},
      {"server_name", read_string(c.server_name)},
      {"node_name", read_string(c.node_name, any_string)},  // "": <hostname>:<port>
  };
}

// Levenshtein distance, for "did you mean" on misspelt keys.
// Settings that are each fine alone but not together.
void check_consistency(const config& c, std::string_view file, std::vector<config_error>& errors) {
  auto fail = [&](std::string what) { errors.push_back({std::string(file), std::move(what)}); };
  if ((c.tcp.enabled && c.tcp.tls) || (c.websocket.enabled && c.websocket.tls)) {
    if (c.tls.cert_file.empty() || c.tls.key_file.empty())
      fail("a listener has tls: true, so tls.cert_file and tls.key_file must be set");
  }
  const auto& jwt = c.auth.jwt;
  if (jwt.enabled && jwt.algorithm == "HS256" && jwt.secret.empty())
    fail("auth.jwt.algorithm HS256 needs auth.jwt.secret");
  if (jwt.enabled && jwt.algorithm != "HS256" && jwt.public_key_file.empty())
    fail(fmt::format("auth.jwt.algorithm {} needs auth.jwt.public_key_file", jwt.algorithm));
  if (c.heartbeat.min_interval > c.heartbeat.max_interval)
    fail(fmt::format("heartbeat.min_interval_ms ({}) is above heartbeat.max_interval_ms ({})",
                     c.heartbeat.min_interval.count(), c.heartbeat.max_interval.count()));
  if (!c.auth.anonymous && c.auth.users.empty() && !jwt.enabled)
    fail(
        "auth.anonymous is false but there are no auth.users and auth.jwt is off: nobody could "
        "connect");
}

}  // namespace

config_result parse_config(std::string_view yaml, std::string_view file_name, config base) {
  config_result result;
  reader_context context(file_name, result.errors);
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(yaml));
  } catch (const YAML::Exception& e) {
    context.fail(e.mark, fmt::format("invalid YAML: {}", e.msg));
    return result;
  }
  // An empty file, or one of only comments, has no document and means "all defaults".
  if (documents.size() > 1)
    context.fail(documents[1].Mark(), "expected one YAML document, found a second one");
  if (!documents.empty() && !documents[0].IsNull()) {
    if (documents[0].IsMap()) {
      context.read_mapping(documents[0], schema(base), "");
    } else {
      context.fail(documents[0].Mark(),
                   fmt::format("expected a mapping of settings, got {}", describe(documents[0])));
    }
  }
  if (result.errors.empty()) check_consistency(base, file_name, result.errors);
  if (result.errors.empty()) result.value = std::move(base);
  return result;
}

config_result load_config(const std::filesystem::path& path) {
  auto cannot_read = [&](std::string_view why) {
    config_result result;
    result.errors.push_back({path.string(), fmt::format("cannot read: {}", why)});
    return result;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return cannot_read("is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return cannot_read(std::strerror(errno));
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return cannot_read(std::strerror(errno));
  return parse_config(text, path.string());
}

}  // namespace broker
