#pragma once

#include "admin/admin_view.hpp"
#include "routing/message.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <string_view>

// How the admin view (admin_view.hpp) is shown: JSON for the admin HTTP API, the Prometheus
// text format for /metrics, and humanised numbers for stompctl's tables. Pure functions of
// their arguments: no I/O, no clock (callers pass "now"), no logging; thread-safe.
namespace broker::admin {

// ---------------------------------------------------------------------------------------------
// JSON (the admin API's wire format; docs/OPERATING.md lists every field)
// ---------------------------------------------------------------------------------------------

boost::json::object to_json(const connection_info& c);
boost::json::object to_json(const subscription_info& s);
// `subscriptions` is included only when `with_subscriptions` (GET /api/destinations/{name}).
boost::json::object to_json(const destination_info& d, bool with_subscriptions);
// {seq, timestamp_ms, headers: {name: value}, body | body_base64}. Repeated header names keep
// the first value, which is the one STOMP 1.2 says a receiver uses ("Repeated Header
// Entries"). A body that is valid UTF-8 goes out as "body", anything else as "body_base64"
// (RFC 4648 §4), so binary messages survive the trip through JSON unchanged.
boost::json::object to_json(const stored_message& m);
boost::json::object to_json(const broker_stats& s);

// Compact JSON text, like boost::json::serialize, except that numbers with a fraction are
// written the short way ("3.4", not Boost's "3.4E0") and non-finite numbers, which JSON cannot
// express, as null.
std::string to_text(const boost::json::value& v);

// True when `bytes` is well-formed UTF-8: the broker's own check (message.hpp), which also
// decides between WebSocket text and binary messages.
inline bool is_valid_utf8(std::string_view bytes) noexcept { return broker::is_utf8(bytes); }

// ---------------------------------------------------------------------------------------------
// Prometheus text exposition format 0.0.4
// ---------------------------------------------------------------------------------------------

// The media type /metrics answers with.
inline constexpr std::string_view prometheus_content_type =
    "text/plain; version=0.0.4; charset=utf-8";

// Every metric as HELP, TYPE and sample lines, names prefixed "stompd_". `s` adds the gauges
// the broker_stats carry (uptime, destinations, journal size, resident memory).
std::string render_prometheus(const metrics& m, const broker_stats& s);

// A label value with '\\', '"' and newline escaped, as the format requires.
std::string escape_label_value(std::string_view v);
// A HELP text with '\\' and newline escaped.
std::string escape_help(std::string_view v);
// A sample value or `le` bound: shortest round-trip form, "+Inf", "-Inf" or "NaN".
std::string format_sample_value(double v);

// ---------------------------------------------------------------------------------------------
// Humanised numbers for people (stompctl tables)
// ---------------------------------------------------------------------------------------------

// 0 B, 999 B, 1.0 KiB, 1.2 KiB, 15 KiB, 3.4 MiB, 1.1 GiB: one decimal below 10, none above.
std::string human_bytes(std::uint64_t bytes);
// 950, 1.2k, 15k, 3.4M, 2.1G (SI steps of 1000).
std::string human_count(double n);
// A per-second rate: "0/s", "0.5/s", "12/s", "3.4k/s".
std::string human_rate(double per_second);
// A time span: "45s", "3m", "2h 5m", "3d 4h".
std::string human_duration(double seconds);
// How long before `now_ms` something happened (both Unix ms): "just now", "45s ago", "3m ago";
// "-" for 0 (never), "in the future" for clock skew.
std::string human_age(std::int64_t then_ms, std::int64_t now_ms);

}  // namespace broker::admin
