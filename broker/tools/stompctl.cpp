// stompctl: the command-line client of stompd's admin HTTP API (docs/OPERATING.md).
//
// One request per run, so the HTTP exchange is linear: resolve, connect, write, read, under
// one deadline, on a private io_context. Tables for people by default, the API's own JSON
// with --json; the exit status tells scripts what went wrong (see usage()).
#include "admin/admin_render.hpp"
#include "auth/base64.hpp"
#include "auth/passcode.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#ifndef STOMPD_VERSION
#error "STOMPD_VERSION is defined by broker/CMakeLists.txt"
#endif

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;

namespace {

// Exit statuses: documented in usage(), relied on by scripts.
enum exit_status : int {
  exit_ok = 0,
  exit_usage = 1,        // bad command line or input
  exit_unreachable = 2,  // no connection, timeout, or not an HTTP answer
  exit_auth = 3,         // 401 (token missing or wrong) or 403 (publish denied)
  exit_not_found = 4,    // 404: unknown destination, connection, or not journaled
  exit_api = 5,          // any other API error (400, 405, 413, 5xx, an unexpected answer)
};

constexpr std::string_view default_url = "http://127.0.0.1:61680";
constexpr std::chrono::seconds default_timeout{10};

// Ends the run with a one-line message on stderr and an exit status.
struct failure {
  int status;
  std::string message;
};

[[noreturn]] void fail(int status, std::string message) {
  throw failure{status, std::move(message)};
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

struct option_spec {
  std::string_view name;        // without "--"
  std::string_view value_name;  // empty for a switch
  std::string_view help;
  bool repeatable = false;
};

struct command_spec {
  std::string_view name;
  std::string_view synopsis;  // arguments and options after the name
  std::string_view summary;   // one line for the command list
  std::size_t min_args;
  std::size_t max_args;
  std::vector<option_spec> options;
  std::string_view details;  // more help: what it prints, examples
};

const std::vector<option_spec> global_options = {
    {"url", "URL", "admin API address (default: $STOMPCTL_URL, else http://127.0.0.1:61680)"},
    {"token", "TOKEN", "admin token (default: $STOMPCTL_TOKEN, which ps does not show)"},
    {"json", "", "print the API's JSON instead of a table"},
    {"timeout", "SECONDS", "give up on the broker after this long (default: 10)"},
    {"help", "", "print help (for a command: stompctl COMMAND --help)"},
    {"version", "", "print the version"},
};

const std::vector<command_spec> commands = {
    {"destinations",
     "[--prefix P | --pattern P] [--offset N] [--limit N]",
     "list destinations",
     0,
     0,
     {{"prefix", "P", "only names starting with P, e.g. /queue/"},
      {"pattern", "P", "only names matching P: '*' one segment, '**' any, e.g. /topic/chat.**"},
      {"offset", "N", "skip the first N (sorted by name)"},
      {"limit", "N", "show at most N, 1 to 1000 (default: 100)"}},
     "Prints NAME, TYPE, SUBS (subscribers), IN and OUT (messages since start), RATE\n"
     "(published per second over ~10 s), STORED and LAST-SEQ (journaled destinations) and\n"
     "QUEUED (queues: messages waiting for a consumer).\n"
     "\n"
     "Examples:\n"
     "  stompctl destinations\n"
     "  stompctl destinations --pattern '/topic/lost-item.**'\n"
     "  stompctl destinations --prefix /queue/ --json | jq '.destinations[].name'\n"},
    {"destination",
     "NAME",
     "one destination and its subscriptions",
     1,
     1,
     {},
     "Example:\n"
     "  stompctl destination /topic/lost-item.42.room.7\n"},
    {"history",
     "NAME [--last N | --after S [--limit N]]",
     "stored messages of a journaled destination",
     1,
     1,
     {{"last", "N", "the newest N messages, 1 to 1000"},
      {"after", "S", "messages with x-seq greater than S (default: 0, from the oldest)"},
      {"limit", "N", "at most N messages after S, 1 to 1000 (default: 100)"}},
     "Prints SEQ (x-seq), AGE, SIZE and the start of each BODY; a body that is not UTF-8\n"
     "shows as <binary>. --json has every header and the whole body (\"body\", or\n"
     "\"body_base64\" when it is not UTF-8).\n"
     "\n"
     "Examples:\n"
     "  stompctl history /topic/lost-item.42.room.7 --last 20\n"
     "  stompctl history /topic/lost-item.42.room.7 --after 120 --limit 1000 --json\n"},
    {"purge",
     "NAME",
     "delete a destination's stored messages (x-seq continues)",
     1,
     1,
     {},
     "Example:\n"
     "  stompctl purge /topic/lost-item.42.room.7\n"},
    {"connections",
     "",
     "list client connections",
     0,
     0,
     {},
     "Prints ID, USER, PEER, TRANSPORT, VERSION (STOMP), SUBS, QUEUED (outbound bytes not yet\n"
     "written), IN and OUT (messages) and CONNECTED.\n"},
    {"kick",
     "ID",
     "disconnect a connection (it gets an ERROR frame)",
     1,
     1,
     {},
     "The client receives ERROR with message \"disconnected by administrator\"; ID is from\n"
     "stompctl connections.\n"
     "\n"
     "Example:\n"
     "  stompctl kick 42\n"},
    {"stats", "", "broker statistics", 0, 0, {}, ""},
    {"publish",
     "NAME [BODY|-] [--header K=V ...] [--content-type TYPE]",
     "publish a message",
     1,
     2,
     {{"header", "K=V", "a message header (repeatable)", true},
      {"content-type", "TYPE", "the content-type header, e.g. application/json"}},
     "The body is BODY, or standard input when BODY is - or missing. Returns once the broker\n"
     "has stored the message (journaled destinations) or routed it, and prints its x-seq and\n"
     "message-id. With the admin token it may publish anywhere; with a backend's JWT as\n"
     "--token (when the broker has auth.jwt) it may publish where that backend may SEND.\n"
     "\n"
     "Examples:\n"
     "  stompctl publish /topic/lost-item.42.room.7 'Is this your umbrella?'\n"
     "  echo '{\"found\":true}' | stompctl publish /queue/jobs --content-type application/json\n"
     "  stompctl publish /topic/alerts - --header priority=high < alert.txt\n"},
    {"passwd",
     "",
     "hash a passcode for auth.users (needs no broker)",
     0,
     0,
     {},
     "Reads the passcode from the terminal without echoing it (twice, to catch typos), or one\n"
     "line from standard input when that is not a terminal, and prints the hash to put in\n"
     "auth.users[].passcode; the same as stompd --hash-passcode.\n"
     "\n"
     "Example:\n"
     "  stompctl passwd\n"},
};

std::string option_help(const std::vector<option_spec>& options) {
  std::string text;
  for (const auto& o : options) {
    std::string left = fmt::format("--{}", o.name);
    if (!o.value_name.empty()) left += fmt::format(" {}", o.value_name);
    text += fmt::format("  {:<19}  {}\n", left, o.help);
  }
  return text;
}

std::string usage() {
  std::string text =
      "stompctl: manage a running stompd through its admin API.\n"
      "\n"
      "Usage: stompctl [--url URL] [--token TOKEN] [--json] COMMAND [ARGS]\n"
      "\n"
      "Commands:\n";
  for (const auto& c : commands) text += fmt::format("  {:<14}{}\n", c.name, c.summary);
  text += "\nOptions (before or after the command):\n" + option_help(global_options);
  text +=
      "\n"
      "Destination names are given as they are (/topic/room); stompctl encodes them.\n"
      "`stompctl COMMAND --help` describes each command.\n"
      "\n"
      "Exit status:\n"
      "  0  success\n"
      "  1  usage error (bad command line or input)\n"
      "  2  broker unreachable: no connection, timeout, or not an admin API at --url\n"
      "  3  authentication failed (401: token missing or wrong) or publish denied (403)\n"
      "  4  not found (404: no such destination or connection, or not journaled)\n"
      "  5  any other API error (bad parameter, server error)\n"
      "\n"
      "Examples:\n"
      "  export STOMPCTL_TOKEN=...            the admin token from admin.token\n"
      "  stompctl stats\n"
      "  stompctl destinations --prefix /topic/\n"
      "  stompctl history /topic/lost-item.42.room.7 --last 10\n"
      "  stompctl --url http://10.0.0.5:61680 connections --json\n";
  return text;
}

std::string command_usage(const command_spec& c) {
  std::string text = fmt::format("stompctl {}: {}.\n\nUsage: stompctl {}{}{}\n", c.name, c.summary,
                                 c.name, c.synopsis.empty() ? "" : " ", c.synopsis);
  if (!c.options.empty()) text += "\nOptions:\n" + option_help(c.options);
  if (!c.details.empty()) text += fmt::format("\n{}", c.details);
  text +=
      "\nGlobal options (--url, --token, --json, --timeout) and exit statuses: stompctl --help\n";
  return text;
}

struct command_line {
  const command_spec* command = nullptr;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> options;  // the command's, in order
  std::optional<std::string> url;
  std::optional<std::string> token;
  bool json = false;
  std::chrono::seconds timeout = default_timeout;
  bool help = false;
  bool version = false;

  const std::string* option(std::string_view name) const {
    for (const auto& [k, v] : options)
      if (k == name) return &v;
    return nullptr;
  }
};

const option_spec* find_option(const std::vector<option_spec>& list, std::string_view name) {
  for (const auto& o : list)
    if (o.name == name) return &o;
  return nullptr;
}

std::uint64_t parse_number(std::string_view what, std::string_view text, std::uint64_t min,
                           std::uint64_t max) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < min ||
      value > max)
    fail(exit_usage,
         fmt::format("{}: expected a whole number from {} to {}, got '{}'", what, min, max, text));
  return value;
}

command_line parse_command_line(int argc, char** argv) {
  command_line cl;
  std::vector<std::string_view> words(argv + 1, argv + argc);
  bool options_done = false;
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string_view w = words[i];
    if (options_done || w == "-" || !w.starts_with("-")) {
      if (!cl.command) {
        for (const auto& c : commands)
          if (c.name == w) cl.command = &c;
        if (!cl.command)
          fail(exit_usage, fmt::format("unknown command '{}' (see stompctl --help)", w));
      } else {
        cl.args.emplace_back(w);
      }
      continue;
    }
    if (w == "--") {
      options_done = true;
      continue;
    }
    if (w == "-h") w = "--help";
    if (w == "-V") w = "--version";
    if (!w.starts_with("--")) fail(exit_usage, fmt::format("unknown option '{}'", w));
    std::string_view name = w.substr(2);
    std::optional<std::string_view> inline_value;
    if (auto eq = name.find('='); eq != std::string_view::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const option_spec* spec = find_option(global_options, name);
    bool global = spec != nullptr;
    if (!spec && cl.command) spec = find_option(cl.command->options, name);
    if (!spec)
      fail(exit_usage, cl.command
                           ? fmt::format("{}: unknown option '--{}' (see stompctl {} "
                                         "--help)",
                                         cl.command->name, name, cl.command->name)
                           : fmt::format("unknown option '--{}' (see stompctl --help)", name));
    std::string value;
    if (!spec->value_name.empty()) {
      if (inline_value) {
        value = std::string(*inline_value);
      } else if (i + 1 < words.size()) {
        value = std::string(words[++i]);
      } else {
        fail(exit_usage, fmt::format("--{} needs a value ({})", name, spec->value_name));
      }
    } else if (inline_value) {
      fail(exit_usage, fmt::format("--{} takes no value", name));
    }
    if (global) {
      if (name == "url") cl.url = value;
      if (name == "token") cl.token = value;
      if (name == "json") cl.json = true;
      if (name == "help") cl.help = true;
      if (name == "version") cl.version = true;
      if (name == "timeout")
        cl.timeout = std::chrono::seconds(parse_number("--timeout", value, 1, 3600));
    } else {
      if (!spec->repeatable && cl.option(name))
        fail(exit_usage, fmt::format("--{} given twice", name));
      cl.options.emplace_back(std::string(name), std::move(value));
    }
  }
  return cl;
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

struct endpoint_url {
  std::string text;  // as given, for messages
  std::string host;
  std::string port;
  std::string base_path;  // "" or "/prefix" when the API sits behind a proxy path
};

endpoint_url parse_url(std::string text) {
  endpoint_url u;
  u.text = text;
  std::string_view rest = text;
  if (auto scheme = rest.find("://"); scheme != std::string_view::npos) {
    auto name = rest.substr(0, scheme);
    if (name == "https")
      fail(exit_usage,
           "https:// is not supported: the admin listener speaks plain HTTP (keep it "
           "on loopback, or reach it through an SSH tunnel)");
    if (name != "http") fail(exit_usage, fmt::format("--url: unsupported scheme '{}'", name));
    rest.remove_prefix(scheme + 3);
  }
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    u.base_path = std::string(path);
  }
  std::string_view port;
  if (authority.starts_with("[")) {  // [::1]:61680
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      fail(exit_usage, fmt::format("--url: bad host in {}", text));
    u.host = std::string(authority.substr(1, close - 1));
    auto after = authority.substr(close + 1);
    if (after.starts_with(":")) port = after.substr(1);
  } else {
    auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) fail(exit_usage, fmt::format("--url: no host in '{}'", text));
  u.port = port.empty() ? "80" : std::string(port);
  parse_number("--url port", u.port, 1, 65535);
  return u;
}

// RFC 3986 §2.3: everything but the unreserved characters is percent-encoded, so a
// destination name ("/topic/a.b") travels as one path segment.
std::string percent_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

struct http_reply {
  unsigned status = 0;
  std::string body;
};

class admin_client {
 public:
  admin_client(endpoint_url url, std::string token, std::chrono::seconds timeout)
      : url_(std::move(url)), token_(std::move(token)), timeout_(timeout) {}

  // The reply, whatever its status; fails with exit_unreachable when there is none.
  http_reply call(http::verb method, const std::string& target, std::string body = {},
                  std::string_view content_type = {}) const {
    http::request<http::string_body> req{method, url_.base_path + target, 11};
    req.set(http::field::host, url_.host.find(':') != std::string::npos
                                   ? fmt::format("[{}]:{}", url_.host, url_.port)
                                   : fmt::format("{}:{}", url_.host, url_.port));
    req.set(http::field::user_agent, "stompctl/" STOMPD_VERSION);
    req.set(http::field::accept, "application/json");
    req.keep_alive(false);
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    req.body() = std::move(body);
    req.prepare_payload();

    net::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // history pages can be big
    beast::error_code error;
    std::string_view stage = "resolve";

    // One deadline for the whole exchange.
    auto deadline = std::chrono::steady_clock::now() + timeout_;
    resolver.async_resolve(
        url_.host, url_.port, [&](beast::error_code ec, tcp::resolver::results_type results) {
          if (ec) return void(error = ec);
          stage = "connect";
          stream.expires_at(deadline);
          stream.async_connect(results, [&](beast::error_code ec2, const tcp::endpoint&) {
            if (ec2) return void(error = ec2);
            stage = "send";
            http::async_write(stream, req, [&](beast::error_code ec3, std::size_t) {
              if (ec3) return void(error = ec3);
              stage = "read";
              http::async_read(stream, buffer, parser, [&](beast::error_code ec4, std::size_t) {
                if (ec4) error = ec4;
              });
            });
          });
        });
    io.run_until(deadline + std::chrono::seconds(1));  // the resolver has no deadline of its own
    if (!error && !parser.is_done()) error = beast::error::timeout;
    if (error) {
      std::string why = error == beast::error::timeout
                            ? fmt::format("no answer within {} s", timeout_.count())
                            : error.message();
      fail(exit_unreachable,
           fmt::format("cannot reach the admin API at {} ({} failed: {}); is stompd running with "
                       "its admin listener there? (--url, STOMPCTL_URL)",
                       url_.text, stage, why));
    }
    auto res = parser.release();
    return {res.result_int(), std::move(res.body())};
  }

  const endpoint_url& url() const { return url_; }

 private:
  endpoint_url url_;
  std::string token_;
  std::chrono::seconds timeout_;
};

json::value parse_json(const http_reply& reply, const endpoint_url& url) {
  boost::system::error_code ec;
  auto v = json::parse(reply.body, ec);
  if (ec)
    fail(exit_unreachable, fmt::format("{} answered HTTP {} without JSON: is it stompd's admin "
                                       "listener?",
                                       url.text, reply.status));
  return v;
}

// A reply that is not 2xx ends the run, with the API's error message and the status.
void check(const http_reply& reply, const endpoint_url& url) {
  if (reply.status >= 200 && reply.status < 300) return;
  std::string message;
  boost::system::error_code ec;
  auto v = json::parse(reply.body, ec);
  if (!ec && v.is_object() && v.as_object().contains("error") &&
      v.as_object().at("error").is_string())
    message = std::string(v.as_object().at("error").get_string());
  else
    message = fmt::format("HTTP {} from {}", reply.status, url.text);
  switch (reply.status) {
    case 401:
      fail(exit_auth, fmt::format("authentication failed: {}; give the admin token with --token "
                                  "or STOMPCTL_TOKEN",
                                  message));
    case 403:
      fail(exit_auth, fmt::format("not allowed: {}", message));
    case 404:
      fail(exit_not_found, message);
    default:
      fail(exit_api, fmt::format("{} (HTTP {})", message, reply.status));
  }
}

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

class table {
 public:
  // A column whose title starts with '>' is right-aligned (numbers).
  explicit table(std::vector<std::string_view> titles) {
    for (auto t : titles) {
      bool right = t.starts_with('>');
      if (right) t.remove_prefix(1);
      right_.push_back(right);
      titles_.emplace_back(t);
    }
  }

  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }

  std::string render() const {
    std::vector<std::size_t> width(titles_.size());
    auto measure = [&](const std::vector<std::string>& row) {
      for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
        width[i] = std::max(width[i], display_width(row[i]));
    };
    measure(titles_);
    for (const auto& r : rows_) measure(r);
    std::string out;
    auto line = [&](const std::vector<std::string>& row) {
      std::string text;
      for (std::size_t i = 0; i < width.size(); ++i) {
        const std::string cell = i < row.size() ? row[i] : "";
        std::size_t pad = width[i] - display_width(cell);
        if (i > 0) text += "  ";
        if (right_[i]) text.append(pad, ' ');
        text += cell;
        if (!right_[i] && i + 1 < width.size()) text.append(pad, ' ');
      }
      while (!text.empty() && text.back() == ' ') text.pop_back();
      out += text + "\n";
    };
    line(titles_);
    for (const auto& r : rows_) line(r);
    return out;
  }

 private:
  // Code points, not bytes, so a name with accents still lines up (wide CJK characters and
  // emoji will not; this is a terminal table, not a layout engine).
  static std::size_t display_width(std::string_view s) {
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
  }

  std::vector<std::string> titles_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// "key   value" lines, keys padded to one width.
std::string key_values(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::size_t width = 0;
  for (const auto& [k, v] : rows) width = std::max(width, k.size());
  std::string out;
  for (const auto& [k, v] : rows) out += fmt::format("{:<{}}  {}\n", k, width, v);
  return out;
}

// Accessors that tolerate a field the broker did not send (an older or newer stompd).
std::uint64_t u64(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->value().is_uint64()) return it->value().get_uint64();
  if (it->value().is_int64())
    return static_cast<std::uint64_t>(std::max<std::int64_t>(0, it->value().get_int64()));
  if (it->value().is_double())
    return static_cast<std::uint64_t>(std::max(0.0, it->value().get_double()));
  return 0;
}
std::int64_t i64(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->value().is_int64()) return it->value().get_int64();
  if (it->value().is_uint64()) return static_cast<std::int64_t>(it->value().get_uint64());
  if (it->value().is_double()) return static_cast<std::int64_t>(it->value().get_double());
  return 0;
}
double f64(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_number()) return 0;
  return it->value().to_number<double>();
}
std::string str(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return std::string(it->value().get_string());
}
bool boolean(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_bool() && it->value().get_bool();
}
const json::array& array(const json::object& o, std::string_view key) {
  static const json::array none;
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_array()) return none;
  return it->value().get_array();
}
std::string or_dash(std::string s) { return s.empty() ? "-" : s; }

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The start of a text body on one line: control characters shown as escapes, cut at
// `max_chars` code points.
std::string preview(std::string_view body, std::size_t max_chars) {
  std::string out;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(body[i]);
    if ((c & 0xC0) != 0x80) {
      if (chars == max_chars) {
        out += "...";
        break;
      }
      ++chars;
    }
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (c < 0x20 || c == 0x7F)
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

struct context {
  const command_line& cl;
  const admin_client& client;

  // GET or DELETE target; the JSON value of a 2xx reply (printed as is with --json).
  std::optional<json::value> request(http::verb method, const std::string& target,
                                     std::string body = {},
                                     std::string_view content_type = {}) const {
    auto reply = client.call(method, target, std::move(body), content_type);
    check(reply, client.url());
    auto v = parse_json(reply, client.url());
    if (cl.json) {
      std::fputs(reply.body.c_str(), stdout);
      if (!reply.body.ends_with('\n')) std::fputc('\n', stdout);
      return std::nullopt;
    }
    if (!v.is_object())
      fail(exit_api,
           fmt::format("unexpected answer from {}: not a JSON object", client.url().text));
    return v;
  }
};

std::string query_string(const std::vector<std::pair<std::string_view, const std::string*>>& q) {
  std::string out;
  for (const auto& [k, v] : q) {
    if (!v) continue;
    out += out.empty() ? '?' : '&';
    out += fmt::format("{}={}", k, percent_encode(*v));
  }
  return out;
}

int cmd_destinations(const context& ctx) {
  const auto& cl = ctx.cl;
  if (cl.option("prefix") && cl.option("pattern"))
    fail(exit_usage, "destinations: give --prefix or --pattern, not both");
  if (const auto* o = cl.option("offset")) parse_number("--offset", *o, 0, 4'294'967'295);
  if (const auto* l = cl.option("limit")) parse_number("--limit", *l, 1, 1000);
  auto v = ctx.request(http::verb::get,
                       "/api/destinations" + query_string({{"prefix", cl.option("prefix")},
                                                           {"pattern", cl.option("pattern")},
                                                           {"offset", cl.option("offset")},
                                                           {"limit", cl.option("limit")}}));
  if (!v) return exit_ok;
  const auto& o = v->get_object();
  const auto& list = array(o, "destinations");
  auto total = u64(o, "total");
  auto offset = u64(o, "offset");
  if (list.empty()) {
    fmt::print("{}\n", total == 0 ? "no destinations" : "no destinations at this offset");
    return exit_ok;
  }
  table t({"NAME", "TYPE", ">SUBS", ">IN", ">OUT", ">RATE", ">STORED", ">LAST-SEQ", ">QUEUED"});
  for (const auto& item : list) {
    if (!item.is_object()) continue;
    const auto& d = item.get_object();
    bool journaled = boolean(d, "journaled");
    bool queue = str(d, "type") == "queue";
    t.add({str(d, "name"), str(d, "type"), fmt::format("{}", u64(d, "subscribers")),
           broker::admin::human_count(static_cast<double>(u64(d, "messages_in"))),
           broker::admin::human_count(static_cast<double>(u64(d, "messages_out"))),
           broker::admin::human_rate(f64(d, "rate_in")),
           journaled ? fmt::format("{}", u64(d, "stored")) : "-",
           journaled ? fmt::format("{}", u64(d, "last_seq")) : "-",
           queue ? fmt::format("{}", u64(d, "queued")) : "-"});
  }
  fmt::print("{}", t.render());
  if (offset > 0 || list.size() < total)
    fmt::print("showing {}-{} of {} (--offset {} for more)\n", offset + 1, offset + list.size(),
               total, offset + list.size());
  return exit_ok;
}

int cmd_destination(const context& ctx) {
  const auto& name = ctx.cl.args[0];
  auto v = ctx.request(http::verb::get, "/api/destinations/" + percent_encode(name));
  if (!v) return exit_ok;
  const auto& d = v->get_object();
  auto now = now_ms();
  std::vector<std::pair<std::string, std::string>> rows = {
      {"name", str(d, "name")},
      {"type", str(d, "type")},
      {"subscribers", fmt::format("{}", u64(d, "subscribers"))},
      {"messages in",
       fmt::format("{} ({})", u64(d, "messages_in"), broker::admin::human_rate(f64(d, "rate_in")))},
      {"messages out", fmt::format("{}", u64(d, "messages_out"))},
  };
  if (boolean(d, "journaled")) {
    rows.emplace_back("journaled", "yes");
    rows.emplace_back("stored", fmt::format("{}", u64(d, "stored")));
    rows.emplace_back("last x-seq", fmt::format("{}", u64(d, "last_seq")));
    rows.emplace_back("oldest stored", broker::admin::human_age(i64(d, "oldest_ms"), now));
  } else {
    rows.emplace_back("journaled", "no");
  }
  if (str(d, "type") == "queue") rows.emplace_back("queued", fmt::format("{}", u64(d, "queued")));
  fmt::print("{}", key_values(rows));
  const auto& subs = array(d, "subscriptions");
  if (subs.empty()) {
    fmt::print("\nno subscriptions\n");
    return exit_ok;
  }
  table t({">CONNECTION", "SUBSCRIPTION", "USER", "ACK", ">UNACKED"});
  for (const auto& item : subs) {
    if (!item.is_object()) continue;
    const auto& s = item.get_object();
    t.add({fmt::format("{}", u64(s, "connection")), str(s, "id"), or_dash(str(s, "user")),
           str(s, "ack_mode"), fmt::format("{}", u64(s, "unacked"))});
  }
  fmt::print("\n{}", t.render());
  return exit_ok;
}

int cmd_history(const context& ctx) {
  const auto& cl = ctx.cl;
  const auto& name = cl.args[0];
  if (cl.option("last") && (cl.option("after") || cl.option("limit")))
    fail(exit_usage, "history: give --last, or --after and --limit, not both");
  if (const auto* l = cl.option("last")) parse_number("--last", *l, 1, 1000);
  if (const auto* a = cl.option("after"))
    parse_number("--after", *a, 0, std::numeric_limits<std::uint64_t>::max());
  if (const auto* l = cl.option("limit")) parse_number("--limit", *l, 1, 1000);
  auto v = ctx.request(http::verb::get, "/api/destinations/" + percent_encode(name) + "/messages" +
                                            query_string({{"last", cl.option("last")},
                                                          {"after", cl.option("after")},
                                                          {"limit", cl.option("limit")}}));
  if (!v) return exit_ok;
  const auto& o = v->get_object();
  const auto& messages = array(o, "messages");
  auto now = now_ms();
  if (messages.empty()) {
    fmt::print("no stored messages (head x-seq {})\n", u64(o, "head_seq"));
  } else {
    table t({">SEQ", "AGE", ">SIZE", "BODY"});
    for (const auto& item : messages) {
      if (!item.is_object()) continue;
      const auto& m = item.get_object();
      std::string body;
      std::size_t size = 0;
      if (m.contains("body")) {
        auto text = str(m, "body");
        size = text.size();
        body = preview(text, 60);
      } else {
        auto bytes = broker::auth::detail::base64_decode(str(m, "body_base64"));
        size = bytes ? bytes->size() : 0;
        body = "<binary>";
      }
      t.add({fmt::format("{}", u64(m, "seq")),
             broker::admin::human_age(i64(m, "timestamp_ms"), now),
             broker::admin::human_bytes(size), body});
    }
    fmt::print("{}", t.render());
    fmt::print("{} message{}, head x-seq {}\n", messages.size(), messages.size() == 1 ? "" : "s",
               u64(o, "head_seq"));
  }
  if (o.contains("complete") && !boolean(o, "complete"))
    fmt::print("older messages asked for are no longer stored\n");
  return exit_ok;
}

int cmd_purge(const context& ctx) {
  const auto& name = ctx.cl.args[0];
  auto v =
      ctx.request(http::verb::delete_, "/api/destinations/" + percent_encode(name) + "/messages");
  if (!v) return exit_ok;
  auto n = u64(v->get_object(), "deleted");
  fmt::print("deleted {} stored message{} of {}\n", n, n == 1 ? "" : "s", name);
  return exit_ok;
}

int cmd_connections(const context& ctx) {
  auto v = ctx.request(http::verb::get, "/api/connections");
  if (!v) return exit_ok;
  const auto& list = array(v->get_object(), "connections");
  if (list.empty()) {
    fmt::print("no connections\n");
    return exit_ok;
  }
  auto now = now_ms();
  table t({">ID", "USER", "PEER", "TRANSPORT", "VERSION", ">SUBS", ">QUEUED", ">IN", ">OUT",
           "CONNECTED"});
  for (const auto& item : list) {
    if (!item.is_object()) continue;
    const auto& c = item.get_object();
    t.add({fmt::format("{}", u64(c, "id")), or_dash(str(c, "user")), str(c, "peer"),
           str(c, "transport"), or_dash(str(c, "version")),
           fmt::format("{}", u64(c, "subscriptions")),
           broker::admin::human_bytes(u64(c, "queued_bytes")),
           broker::admin::human_count(static_cast<double>(u64(c, "messages_in"))),
           broker::admin::human_count(static_cast<double>(u64(c, "messages_out"))),
           broker::admin::human_age(i64(c, "connected_since_ms"), now)});
  }
  fmt::print("{}", t.render());
  return exit_ok;
}

int cmd_kick(const context& ctx) {
  const auto& id = ctx.cl.args[0];
  parse_number("ID", id, 0, std::numeric_limits<std::uint64_t>::max());
  auto v = ctx.request(http::verb::delete_, "/api/connections/" + id);
  if (!v) return exit_ok;
  fmt::print("disconnected connection {}\n", id);
  return exit_ok;
}

int cmd_stats(const context& ctx) {
  auto v = ctx.request(http::verb::get, "/api/stats");
  if (!v) return exit_ok;
  const auto& s = v->get_object();
  namespace a = broker::admin;
  fmt::print("{}", key_values({
                       {"uptime", a::human_duration(f64(s, "uptime_seconds"))},
                       {"connections", fmt::format("{}", u64(s, "connections"))},
                       {"destinations", fmt::format("{}", u64(s, "destinations"))},
                       {"messages in", fmt::format("{} ({})", u64(s, "messages_in"),
                                                   a::human_rate(f64(s, "rate_in")))},
                       {"messages out", fmt::format("{} ({})", u64(s, "messages_out"),
                                                    a::human_rate(f64(s, "rate_out")))},
                       {"journal", a::human_bytes(u64(s, "journal_bytes"))},
                       {"memory (RSS)", a::human_bytes(u64(s, "rss_bytes"))},
                   }));
  return exit_ok;
}

std::string read_all_stdin() {
  std::string body;
  char chunk[65536];
  std::size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, stdin)) > 0) body.append(chunk, n);
  if (std::ferror(stdin)) fail(exit_usage, "publish: could not read the body from stdin");
  return body;
}

int cmd_publish(const context& ctx) {
  const auto& cl = ctx.cl;
  const auto& name = cl.args[0];
  std::string body = cl.args.size() > 1 && cl.args[1] != "-" ? cl.args[1] : read_all_stdin();
  json::object headers;
  for (const auto& [k, v] : cl.options) {
    if (k == "header") {
      auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0)
        fail(exit_usage, fmt::format("--header: expected NAME=VALUE, got '{}'", v));
      headers[v.substr(0, eq)] = v.substr(eq + 1);
    } else if (k == "content-type") {
      headers["content-type"] = v;
    }
  }
  json::object request{{"destination", name}, {"headers", std::move(headers)}};
  if (broker::admin::is_valid_utf8(body))
    request["body"] = body;
  else
    request["body_base64"] = broker::auth::detail::base64_encode(body);
  auto v = ctx.request(http::verb::post, "/api/publish", broker::admin::to_text(request),
                       "application/json");
  if (!v) return exit_ok;
  const auto& o = v->get_object();
  if (o.contains("x-seq"))
    fmt::print("published to {}: x-seq {}, message-id {}\n", name, u64(o, "x-seq"),
               str(o, "message-id"));
  else
    fmt::print("published to {}: message-id {}\n", name, str(o, "message-id"));
  return exit_ok;
}

// Echo is off while a passcode is typed; a signal in the middle must not leave it off.
termios saved_terminal;
void restore_terminal_and_die(int signo) {
  ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_terminal);
  std::signal(signo, SIG_DFL);
  std::raise(signo);
}

std::string read_hidden(std::string_view prompt) {
  if (::tcgetattr(STDIN_FILENO, &saved_terminal) != 0) fail(exit_usage, "passwd: no terminal");
  termios quiet = saved_terminal;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  auto old_int = std::signal(SIGINT, restore_terminal_and_die);
  auto old_term = std::signal(SIGTERM, restore_terminal_and_die);
  // Echo off before the prompt, and TCSANOW rather than TCSAFLUSH, so nothing typed after
  // the prompt appears is echoed or discarded.
  ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  std::fputs(std::string(prompt).c_str(), stderr);
  std::fflush(stderr);
  std::string line;
  bool ok = static_cast<bool>(std::getline(std::cin, line));
  ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_terminal);
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  std::fputc('\n', stderr);
  if (!ok) fail(exit_usage, "passwd: no passcode read");
  return line;
}

int cmd_passwd(const context&) {
  std::string passcode;
  if (::isatty(STDIN_FILENO)) {
    passcode = read_hidden("Passcode: ");
    if (passcode.empty()) fail(exit_usage, "passwd: the passcode is empty");
    if (read_hidden("Again: ") != passcode) fail(exit_usage, "passwd: the passcodes differ");
  } else if (!std::getline(std::cin, passcode) || passcode.empty()) {
    fail(exit_usage, "passwd: reads a non-empty passcode from standard input");
  }
  fmt::print("{}\n", broker::auth::hash_passcode(passcode));
  return exit_ok;
}

int run(int argc, char** argv) {
  auto cl = parse_command_line(argc, argv);
  if (cl.version) {
    fmt::print("stompctl {}\n", STOMPD_VERSION);
    return exit_ok;
  }
  if (cl.help) {
    fmt::print("{}", cl.command ? command_usage(*cl.command) : usage());
    return exit_ok;
  }
  if (!cl.command) {
    std::fputs(usage().c_str(), stderr);
    return exit_usage;
  }
  const auto& c = *cl.command;
  if (cl.args.size() < c.min_args || cl.args.size() > c.max_args)
    fail(exit_usage,
         fmt::format("usage: stompctl {} {} (see stompctl {} --help)", c.name, c.synopsis, c.name));
  if (!cl.args.empty() && cl.args[0].empty())
    fail(exit_usage, fmt::format("{}: the first argument is empty", c.name));

  std::string url = cl.url ? *cl.url : "";
  if (url.empty())
    if (const char* env = std::getenv("STOMPCTL_URL")) url = env;
  if (url.empty()) url = std::string(default_url);
  std::string token = cl.token ? *cl.token : "";
  if (!cl.token)
    if (const char* env = std::getenv("STOMPCTL_TOKEN")) token = env;

  // passwd needs no broker, so a bad --url must not stop it.
  endpoint_url where = c.name == "passwd" ? endpoint_url{} : parse_url(url);
  admin_client client(where, token, cl.timeout);
  context ctx{cl, client};
  if (c.name == "destinations") return cmd_destinations(ctx);
  if (c.name == "destination") return cmd_destination(ctx);
  if (c.name == "history") return cmd_history(ctx);
  if (c.name == "purge") return cmd_purge(ctx);
  if (c.name == "connections") return cmd_connections(ctx);
  if (c.name == "kick") return cmd_kick(ctx);
  if (c.name == "stats") return cmd_stats(ctx);
  if (c.name == "publish") return cmd_publish(ctx);
  return cmd_passwd(ctx);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const failure& f) {
    std::fflush(stdout);
    std::fprintf(stderr, "stompctl: %s\n", f.message.c_str());
    return f.status;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "stompctl: %s\n", e.what());
    return exit_api;
  }
}
