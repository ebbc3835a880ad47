#include "admin/admin_render.hpp"

#include "auth/base64.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <fmt/format.h>

#include <cassert>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>

namespace json = boost::json;

namespace broker::admin {

namespace {

// Rates are estimates over ~10 s; three decimals is more than they mean, and keeps
// 3.4 from showing as 3.3999999999999999.
double round_rate(double r) {
  if (!std::isfinite(r)) return 0;
  return std::round(r * 1000) / 1000;
}

void append_text(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      break;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      break;
    case json::kind::int64:
      fmt::format_to(std::back_inserter(out), "{}", v.get_int64());
      break;
    case json::kind::uint64:
      fmt::format_to(std::back_inserter(out), "{}", v.get_uint64());
      break;
    case json::kind::double_: {
      double d = v.get_double();
      if (std::isfinite(d))
        fmt::format_to(std::back_inserter(out), "{}", d);  // shortest round-trip form
      else
        out += "null";
      break;
    }
    case json::kind::string:
      out += json::serialize(v.get_string());  // quoted and escaped
      break;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out += ',';
        first = false;
        append_text(out, item);
      }
      out += ']';
      break;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.get_object()) {
        if (!first) out += ',';
        first = false;
        out += json::serialize(json::string_view(key));
        out += ':';
        append_text(out, item);
      }
      out += '}';
      break;
    }
  }
}

// One decimal below 10, none from 10 on: "1.2 KiB", "15 KiB", like `ls -h`.
std::string scaled(double value, std::string_view unit) {
  if (value < 9.95) return fmt::format("{:.1f}{}", value, unit);
  return fmt::format("{:.0f}{}", value, unit);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

json::object to_json(const connection_info& c) {
  return {{"id", c.id},
          {"user", c.user},
          {"peer", c.peer},
          {"transport", c.transport},
          {"version", c.version},
          {"subscriptions", c.subscriptions},
          {"queued_bytes", c.queued_bytes},
          {"messages_in", c.messages_in},
          {"messages_out", c.messages_out},
          {"connected_since_ms", c.connected_since_ms}};
}

json::object to_json(const subscription_info& s) {
  return {{"connection", s.connection},
          {"id", s.id},
          {"user", s.user},
          {"ack_mode", s.ack_mode},
          {"unacked", s.unacked}};
}

json::object to_json(const destination_info& d, bool with_subscriptions) {
  json::object o{{"name", d.name},
                 {"type", d.type},
                 {"subscribers", d.subscribers},
                 {"messages_in", d.messages_in},
                 {"messages_out", d.messages_out},
                 {"rate_in", round_rate(d.rate_in)},
                 {"journaled", d.journaled},
                 {"last_seq", d.last_seq},
                 {"stored", d.stored},
                 {"oldest_ms", d.oldest_ms},
                 {"queued", d.queued},
                 {"present", d.present}};
  if (with_subscriptions) {
    json::array subs;
    subs.reserve(d.subscriptions.size());
    for (const auto& s : d.subscriptions) subs.emplace_back(to_json(s));
    o["subscriptions"] = std::move(subs);
    json::array members;
    for (const auto& m : d.members) members.emplace_back(m);
    o["members"] = std::move(members);
  }
  return o;
}

json::object to_json(const stored_message& m) {
  json::object headers;
  for (const auto& [name, value] : m.headers)
    if (!headers.contains(name)) headers[name] = value;  // the first one counts
  json::object o{{"seq", m.seq}, {"timestamp_ms", m.timestamp_ms}, {"headers", std::move(headers)}};
  if (is_valid_utf8(m.body))
    o["body"] = m.body;
  else
    o["body_base64"] = auth::detail::base64_encode(m.body);
  return o;
}

json::object to_json(const broker_stats& s) {
  return {{"node", s.node},
          {"uptime_seconds", std::round(s.uptime_seconds * 1000) / 1000},
          {"connections", s.connections},
          {"destinations", s.destinations},
          {"messages_in", s.messages_in},
          {"messages_out", s.messages_out},
          {"rate_in", round_rate(s.rate_in)},
          {"rate_out", round_rate(s.rate_out)},
          {"journal_bytes", s.journal_bytes},
          {"rss_bytes", s.rss_bytes},
          {"held_bytes", s.held_bytes}};
}

std::string to_text(const json::value& v) {
  std::string out;
  append_text(out, v);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

namespace {

// The text exposition format escapes backslash and newline everywhere, and the double quote
// only inside a label value.
std::string escape_exposition(std::string_view v, bool quotes) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && quotes)
      out += "\\\"";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string escape_label_value(std::string_view v) { return escape_exposition(v, true); }

std::string escape_help(std::string_view v) { return escape_exposition(v, false); }

std::string format_sample_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

namespace {

class exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(out(), "# HELP stompd_{} {}\n# TYPE stompd_{} {}\n", name, escape_help(help),
                   name, type);
  }

  void sample(std::string_view name, std::uint64_t value) {
    fmt::format_to(out(), "stompd_{} {}\n", name, value);
  }
  void sample(std::string_view name, double value) {
    fmt::format_to(out(), "stompd_{} {}\n", name, format_sample_value(value));
  }
  void labelled(std::string_view name, std::string_view label, std::string_view label_value,
                std::uint64_t value) {
    fmt::format_to(out(), "stompd_{}{{{}=\"{}\"}} {}\n", name, label,
                   escape_label_value(label_value), value);
  }

  void gauge(std::string_view name, std::string_view help, double value) {
    family(name, "gauge", help);
    sample(name, value);
  }
  void gauge(std::string_view name, std::string_view help, std::uint64_t value) {
    family(name, "gauge", help);
    sample(name, value);
  }
  void counter(std::string_view name, std::string_view help, std::uint64_t value) {
    family(name, "counter", help);
    sample(name, value);
  }
  void by_label(std::string_view name, std::string_view type, std::string_view help,
                std::string_view label, const std::map<std::string, std::uint64_t>& values) {
    family(name, type, help);
    for (const auto& [key, value] : values) labelled(name, label, key, value);
  }

  // Buckets are cumulative and end with le="+Inf", which equals _count.
  void histogram(std::string_view name, std::string_view help, const admin::histogram& h) {
    assert(h.bounds.size() == h.counts.size());
    family(name, "histogram", help);
    std::size_t n = std::min(h.bounds.size(), h.counts.size());
    for (std::size_t i = 0; i < n; ++i) {
      if (std::isinf(h.bounds[i]) && h.bounds[i] > 0) break;  // +Inf comes from count below
      fmt::format_to(out(), "stompd_{}_bucket{{le=\"{}\"}} {}\n", name,
                     format_sample_value(h.bounds[i]), h.counts[i]);
    }
    fmt::format_to(out(), "stompd_{}_bucket{{le=\"+Inf\"}} {}\n", name, h.count);
    fmt::format_to(out(), "stompd_{}_sum {}\n", name, format_sample_value(h.sum));
    fmt::format_to(out(), "stompd_{}_count {}\n", name, h.count);
  }

  std::string take() { return std::move(text_); }

 private:
  std::back_insert_iterator<std::string> out() { return std::back_inserter(text_); }
  std::string text_;
};

}  // namespace

std::string render_prometheus(const metrics& m, const broker_stats& s) {
  exposition e;
  e.family("node_info", "gauge", "This node's name (node_name), as a label; always 1.");
  e.labelled("node_info", "node", s.node, 1);
  e.gauge("uptime_seconds", "Seconds since the broker started.", s.uptime_seconds);
  e.by_label("connections", "gauge", "Open client connections, by transport.", "transport",
             m.connections_by_transport);
  e.gauge("destinations", "Destinations the broker knows (as listed by GET /api/destinations).",
          static_cast<std::uint64_t>(s.destinations));
  e.by_label("frames_received_total", "counter", "STOMP frames received from clients, by command.",
             "command", m.frames_in_by_command);
  e.by_label("frames_sent_total", "counter", "STOMP frames sent to clients, by command.", "command",
             m.frames_out_by_command);
  e.counter("messages_published_total", "Messages accepted from publishers (SEND).",
            m.messages_published);
  e.counter("messages_delivered_total", "MESSAGE frames delivered to subscribers.",
            m.messages_delivered);
  e.counter("received_bytes_total", "Bytes read from client connections.", m.bytes_in);
  e.counter("sent_bytes_total", "Bytes written to client connections.", m.bytes_out);
  e.counter("slow_consumer_disconnects_total",
            "Connections closed because their outbound queue overflowed.",
            m.slow_consumer_disconnects);
  e.counter("auth_failures_total", "Refused CONNECTs: bad or missing credentials.",
            m.auth_failures);
  e.counter("replays_total", "History replays served (SUBSCRIBE with x-replay).", m.replays);
  e.histogram("replay_duration_seconds",
              "Time from a SUBSCRIBE with x-replay to its history being read.", m.replay_seconds);
  e.histogram("journal_commit_duration_seconds", "Time to commit one journal transaction.",
              m.journal_commit_seconds);
  e.histogram("journal_batch_messages", "Messages committed per journal transaction.",
              m.journal_batch_size);
  e.gauge("journal_size_bytes",
          "Size of the journal: the SQLite file and its WAL, or Redis's used memory.",
          s.journal_bytes);
  e.gauge("store_ready", "1 while the journal's store takes messages (Redis reachable), else 0.",
          static_cast<std::uint64_t>(m.store_ready ? 1 : 0));
  e.counter("store_failures_total", "Journaled SENDs the store failed to take (each got ERROR).",
            m.store_failures);
  e.counter("store_reconnects_total", "Connections to a shared store (Redis) made again.",
            m.store_reconnects);
  e.counter("live_not_shared_total",
            "Live-only messages other nodes did not get: what waited for Redis was at its budget.",
            m.live_not_shared);
  e.gauge("resident_memory_bytes", "Resident memory of the broker process.", s.rss_bytes);
  e.gauge("held_bytes",
          "Messages held for clients and open transactions (limits.max_held_bytes_total).",
          s.held_bytes);
  return e.take();
}

// ---------------------------------------------------------------------------------------------
// Humanised numbers
// ---------------------------------------------------------------------------------------------

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  constexpr std::string_view units[] = {" KiB", " MiB", " GiB", " TiB", " PiB", " EiB"};
  double v = static_cast<double>(bytes) / 1024;
  std::size_t u = 0;
  // 1023.96 KiB would round to "1024 KiB": move up once the rounded value reaches 1024.
  while (v >= 1023.5 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return scaled(v, units[u]);
}

std::string human_count(double n) {
  if (!std::isfinite(n) || n < 0) n = 0;
  if (n < 999.5) {
    if (n == std::floor(n) || n >= 9.95) return fmt::format("{:.0f}", n);
    return fmt::format("{:.1f}", n);
  }
  constexpr std::string_view units[] = {"k", "M", "G", "T", "P", "E"};
  double v = n / 1000;
  std::size_t u = 0;
  while (v >= 999.5 && u + 1 < std::size(units)) {
    v /= 1000;
    ++u;
  }
  return scaled(v, units[u]);
}

std::string human_rate(double per_second) { return human_count(per_second) + "/s"; }

std::string human_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  auto s = static_cast<std::uint64_t>(seconds);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m", s / 60);
  if (s < 86400) {
    auto m = (s % 3600) / 60;
    return m ? fmt::format("{}h {}m", s / 3600, m) : fmt::format("{}h", s / 3600);
  }
  auto h = (s % 86400) / 3600;
  return h ? fmt::format("{}d {}h", s / 86400, h) : fmt::format("{}d", s / 86400);
}

std::string human_age(std::int64_t then_ms, std::int64_t now_ms) {
  if (then_ms == 0) return "-";
  if (then_ms > now_ms + 1000) return "in the future";
  std::int64_t ms = now_ms - then_ms;
  if (ms < 1000) return "just now";
  return human_duration(static_cast<double>(ms) / 1000) + " ago";
}

}  // namespace broker::admin
