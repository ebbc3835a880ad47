#include "broker/config.hpp"

#include "broker/destination_pattern.hpp"
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

// The longest duration a key may hold: one day. Timers compute now() + interval ×
// grace_factor in nanoseconds, so an unbounded value would overflow the clock.
constexpr std::uint64_t max_duration_ms = 24 * 60 * 60 * 1000;
// Bounds the heart-beat deadline for the same reason; 100 silent intervals is already lax.
constexpr double max_grace_factor = 100.0;

// Reads one YAML value into the config field it was made for. Returns "" on success, else
// what is wrong with the value ("expected an integer, got 'abc'"); the caller adds where.
using reader = std::function<std::string(const YAML::Node&)>;

struct entry;
// For a list of mappings: appends a new element and returns the keys that fill it.
using list_item = std::function<std::vector<entry>()>;

// One key of a mapping: a value read by `read`, a nested mapping listed in `section`, or a
// list of mappings each read with the keys `item` returns. A `required` key must be present.
struct entry {
  entry(std::string_view k, reader r, bool req = false)
      : key(k), read(std::move(r)), required(req) {}
  entry(std::string_view k, std::vector<entry> s) : key(k), section(std::move(s)) {}
  entry(std::string_view k, list_item i) : key(k), item(std::move(i)) {}

  std::string_view key;
  reader read;
  std::vector<entry> section;
  list_item item;
  bool required = false;
};

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return node.Tag() == "!" ? fmt::format("the quoted string \"{}\"", node.Scalar())
                               : fmt::format("'{}'", node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "an empty value";
  }
}

// The text of an unquoted scalar, or null: in YAML `port: "61613"` is a string, so it is not
// taken where a number or a boolean is expected.
const std::string* plain_scalar(const YAML::Node& node) {
  return node.IsScalar() && node.Tag() == "?" ? &node.Scalar() : nullptr;
}

bool is_digits(std::string_view text) {
  return !text.empty() && std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; });
}

// Reads a decimal integer within [min, max]. A '-' sign and values beyond 64 bits are parsed
// (not rejected as "not an integer") so the range error can quote them.
std::string read_integer(const YAML::Node& node, std::uint64_t min, std::uint64_t max,
                         std::uint64_t& out) {
  const std::string* text = plain_scalar(node);
  std::string_view digits = text ? std::string_view(*text) : std::string_view();
  bool negative = digits.starts_with('-');
  if (negative) digits.remove_prefix(1);
  if (!is_digits(digits)) return fmt::format("expected an integer, got {}", describe(node));
  auto parsed = stomp::parse_decimal<std::uint64_t>(digits);  // nullopt: past 64 bits
  std::uint64_t value = parsed.value_or(0);
  bool too_large = !parsed || value > max;
  if ((negative && value != 0) || too_large || value < min) {
    if (max == std::numeric_limits<std::uint64_t>::max())
      return fmt::format("must be at least {}, got {}", min, *text);
    return fmt::format("must be between {} and {}, got {}", min, max, *text);
  }
  out = value;
  return {};
}

template <typename T>
reader read_uint(T& out, std::uint64_t min = 0, std::uint64_t max = std::numeric_limits<T>::max()) {
  return [&out, min, max](const YAML::Node& node) {
    std::uint64_t value = 0;
    std::string error = read_integer(node, min, max, value);
    if (error.empty()) out = static_cast<T>(value);
    return error;
  };
}

// A size or count where zero would make the broker useless (every frame rejected, ...).
reader read_positive(std::size_t& out) { return read_uint(out, 1); }

reader read_ms(std::chrono::milliseconds& out, std::uint64_t min) {
  return [&out, min](const YAML::Node& node) {
    std::uint64_t value = 0;
    std::string error = read_integer(node, min, max_duration_ms, value);
    if (error.empty()) out = std::chrono::milliseconds(value);
    return error;
  };
}

// A retention age: compared with message timestamps, never added to a clock, so it may
// exceed max_duration_ms; 100 years is far from overflowing int64 milliseconds. (The
// README's "30 days" rule was refused by the one-day bound before.)
constexpr std::uint64_t max_retention_ms = 100ULL * 365 * 24 * 60 * 60 * 1000;
reader read_retention_ms(std::chrono::milliseconds& out) {
  return [&out](const YAML::Node& node) {
    std::uint64_t value = 0;
    std::string error = read_integer(node, 0, max_retention_ms, value);
    if (error.empty()) out = std::chrono::milliseconds(value);
    return error;
  };
}

reader read_double(double& out, double min, double max) {
  return [&out, min, max](const YAML::Node& node) -> std::string {
    const std::string* text = plain_scalar(node);
    double value = 0;
    std::from_chars_result parsed{};
    if (text) parsed = std::from_chars(text->data(), text->data() + text->size(), value);
    if (!text || parsed.ec != std::errc() || parsed.ptr != text->data() + text->size() ||
        !std::isfinite(value))
      return fmt::format("expected a number, got {}", describe(node));
    if (value < min || value > max)
      return fmt::format("must be between {} and {}, got {}", min, max, *text);
    out = value;
    return {};
  };
}

// YAML 1.2 core schema booleans only: YAML 1.1's yes/no/on/off surprise people (`off` is
// also a log level), so they are rejected with a hint rather than guessed.
reader read_bool(bool& out) {
  return [&out](const YAML::Node& node) -> std::string {
    static constexpr std::string_view yes[] = {"true", "True", "TRUE"};
    static constexpr std::string_view no[] = {"false", "False", "FALSE"};
    const std::string* text = plain_scalar(node);
    if (text && std::ranges::find(yes, *text) != std::end(yes)) {
      out = true;
    } else if (text && std::ranges::find(no, *text) != std::end(no)) {
      out = false;
    } else {
      return fmt::format("expected true or false, got {}", describe(node));
    }
    return {};
  };
}

// Checks a string value; returns "" when it is acceptable.
using string_check = std::string (*)(const std::string&);

std::string not_empty(const std::string& value) { return value.empty() ? "must not be empty" : ""; }

// For settings where "" means "not set".
std::string any_string(const std::string&) { return {}; }

std::string url_path(const std::string& value) {
  return value.starts_with('/') ? "" : fmt::format("must start with '/', got '{}'", value);
}

reader read_string(std::string& out, string_check check = not_empty) {
  return [&out, check](const YAML::Node& node) {
    if (!node.IsScalar()) return fmt::format("expected a string, got {}", describe(node));
    std::string error = check(node.Scalar());
    if (error.empty()) out = node.Scalar();
    return error;
  };
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

// A list of strings; a single string is taken as a list of one.
reader read_string_list(std::vector<std::string>& out) {
  return [&out](const YAML::Node& node) -> std::string {
    if (node.IsScalar()) {
      out = {node.Scalar()};
      return {};
    }
    if (!node.IsSequence())
      return fmt::format("expected a list of strings, got {}", describe(node));
    std::vector<std::string> values;
    for (const auto& item : node) {
      if (!item.IsScalar())
        return fmt::format("expected a list of strings, found {} in it", describe(item));
      values.push_back(item.Scalar());
    }
    out = std::move(values);
    return {};
  };
}

reader read_path(std::filesystem::path& out, string_check check = not_empty) {
  return [&out, check](const YAML::Node& node) {
    std::string text;
    std::string error = read_string(text, check)(node);
    if (error.empty()) out = text;
    return error;
  };
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
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string unknown_key(const std::string& name, std::string_view key,
                        const std::vector<entry>& keys) {
  const entry* best = nullptr;
  std::size_t best_distance = 3;  // further than this is a different word, not a typo
  for (const entry& e : keys) {
    if (std::size_t d = edit_distance(key, e.key); d < best_distance) {
      best = &e;
      best_distance = d;
    }
  }
  if (!best) return fmt::format("unknown key '{}'", name);
  std::string_view prefix = std::string_view(name).substr(0, name.size() - key.size());
  return fmt::format("unknown key '{}' (did you mean '{}{}'?)", name, prefix, best->key);
}

// Walks the document against the schema, collecting every problem rather than stopping.
class reader_context {
 public:
  reader_context(std::string_view file_name, std::vector<config_error>& errors)
      : file_name_(file_name), errors_(errors) {}

  void fail(const YAML::Mark& mark, std::string what) {
    std::string where =
        mark.is_null() ? std::string(file_name_) : fmt::format("{}:{}", file_name_, mark.line + 1);
    errors_.push_back({std::move(where), std::move(what)});
  }

  void read_mapping(const YAML::Node& node, const std::vector<entry>& keys,
                    const std::string& prefix) {
    std::map<std::string, int, std::less<>> seen;  // key -> line where first set
    for (const auto& item : node) {
      const YAML::Node& key = item.first;
      const YAML::Node& value = item.second;
      // Errors point at the key: an empty value's mark is already on the next line.
      if (!key.IsScalar()) {
        fail(key.Mark(), fmt::format("{}expected a key name, got {}",
                                     prefix.empty() ? "" : prefix + ": ", describe(key)));
        continue;
      }
      std::string name = prefix.empty() ? key.Scalar() : prefix + "." + key.Scalar();
      if (auto [first, inserted] = seen.emplace(key.Scalar(), key.Mark().line); !inserted) {
        fail(key.Mark(),
             fmt::format("duplicate key '{}' (first set on line {})", name, first->second + 1));
        continue;
      }
      auto known = std::ranges::find(keys, std::string_view(key.Scalar()), &entry::key);
      if (known == keys.end()) {
        fail(key.Mark(), unknown_key(name, key.Scalar(), keys));
      } else if (known->read) {
        if (std::string error = known->read(value); !error.empty())
          fail(key.Mark(), fmt::format("{}: {}", name, error));
      } else if (known->item) {
        read_list(key, value, known->item, name);
      } else if (value.IsMap()) {
        read_mapping(value, known->section, name);
      } else if (!value.IsNull()) {  // a section with every key commented out is fine
        fail(key.Mark(),
             fmt::format("{}: expected a mapping of settings, got {}", name, describe(value)));
      }
    }
    for (const entry& e : keys)
      if (e.required && !seen.contains(e.key))
        fail(node.Mark(), fmt::format("{}{}: missing", prefix.empty() ? "" : prefix + ".", e.key));
  }

  void read_list(const YAML::Node& key, const YAML::Node& value, const list_item& item,
                 const std::string& name) {
    if (value.IsNull()) return;
    if (!value.IsSequence()) {
      fail(key.Mark(), fmt::format("{}: expected a list, got {}", name, describe(value)));
      return;
    }
    for (std::size_t i = 0; i < value.size(); ++i) {
      auto element = fmt::format("{}[{}]", name, i);
      if (!value[i].IsMap())
        fail(value[i].Mark(), fmt::format("{}: expected a mapping of settings, got {}", element,
                                          describe(value[i])));
      else
        read_mapping(value[i], item(), element);
    }
  }

 private:
  std::string_view file_name_;
  std::vector<config_error>& errors_;
};

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
