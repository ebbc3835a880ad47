#include "stompctl/commands.hpp"

#include "admin/admin_render.hpp"
#include "auth/base64.hpp"
#include "auth/passcode.hpp"
#include "stompctl/failure.hpp"
#include "stompctl/tables.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stompctl {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

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
  if (str(d, "type") == "topic") {
    std::string who;
    if (auto it = d.find("members"); it != d.end() && it->value().is_array())
      for (const auto& m : it->value().get_array())
        if (m.is_string())
          who += fmt::format("{}{}", who.empty() ? "" : ", ", m.get_string().c_str());
    rows.emplace_back("present", fmt::format("{}{}", u64(d, "present"),
                                             who.empty() ? "" : fmt::format(" ({})", who)));
  }
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
                       {"node", str(s, "node")},
                       {"uptime", a::human_duration(f64(s, "uptime_seconds"))},
                       {"connections", fmt::format("{}", u64(s, "connections"))},
                       {"destinations", fmt::format("{}", u64(s, "destinations"))},
                       {"messages in", fmt::format("{} ({})", u64(s, "messages_in"),
                                                   a::human_rate(f64(s, "rate_in")))},
                       {"messages out", fmt::format("{} ({})", u64(s, "messages_out"),
                                                    a::human_rate(f64(s, "rate_out")))},
                       {"journal", a::human_bytes(u64(s, "journal_bytes"))},
                       {"memory (RSS)", a::human_bytes(u64(s, "rss_bytes"))},
                       {"messages held", a::human_bytes(u64(s, "held_bytes"))},
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

}  // namespace

int run_command(const command_line& cl, const admin_client& client) {
  const context ctx{cl, client};
  const std::string_view name = cl.command->name;
  if (name == "destinations") return cmd_destinations(ctx);
  if (name == "destination") return cmd_destination(ctx);
  if (name == "history") return cmd_history(ctx);
  if (name == "purge") return cmd_purge(ctx);
  if (name == "connections") return cmd_connections(ctx);
  if (name == "kick") return cmd_kick(ctx);
  if (name == "stats") return cmd_stats(ctx);
  if (name == "publish") return cmd_publish(ctx);
  return cmd_passwd(ctx);
}

}  // namespace stompctl
