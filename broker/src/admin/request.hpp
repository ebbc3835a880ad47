#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// What an admin API request says, taken apart: its target (path segments and query
// parameters), its bearer token, and a publish request's JSON body. Pure functions of their
// arguments, without Beast, so they are tested without a socket; the routes (routes.hpp)
// turn a bad_request into a 400 response.
namespace broker::admin {

// What is wrong with a request, for {"error": message}; always answered with 400.
struct bad_request {
  std::string message;
};

// A request target in origin form (RFC 9112 §3.2.1), decoded.
struct request_target {
  std::string path;                   // as sent, for messages and logs
  std::vector<std::string> segments;  // decoded: "/api/destinations/%2Ftopic%2Fa" has 3
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order, '+' is ' '
};

// Parsed with Boost.URL (RFC 3986 origin form), which splits the path first and then decodes
// each segment, so an encoded '/' (%2F) stays inside its segment: that is how a destination
// name travels as one segment. A trailing '/' adds no segment ("/api/stats/" is
// "/api/stats"), and empty query items ("a=1&&b=2") are skipped. nullopt, with `error` set
// to the message for the 400, when the target is not a path, has a malformed escape, or has
// a character that must be percent-encoded.
std::optional<request_target> parse_target(std::string_view target, std::string& error);

// Query parameters of one request, checked against what its endpoint accepts. Refers to the
// target's parameters, which must outlive it.
class query_params {
 public:
  explicit query_params(const std::vector<std::pair<std::string, std::string>>& q) : q_(q) {}

  // An unknown or repeated parameter is an error, so a typo (?prefx=) is not silently a
  // request for everything.
  std::optional<bad_request> only(std::initializer_list<std::string_view> allowed) const;

  // The value of `key`; null when absent.
  const std::string* get(std::string_view key) const;

  // A decimal integer in [min, max]; `fallback` when absent, and also when it is malformed,
  // in which case `error` is set unless an earlier parameter already set it.
  std::uint64_t number(std::string_view key, std::uint64_t fallback, std::uint64_t min,
                       std::uint64_t max, std::optional<bad_request>& error) const;

 private:
  const std::vector<std::pair<std::string, std::string>>& q_;
};

// The token of an "Authorization: Bearer <token>" header value (RFC 6750 §2.1; the scheme is
// case-insensitive, spaces around the token are dropped); "" when the value is not of that
// form. Refers to `authorization`.
std::string_view bearer_token(std::string_view authorization);

// True for application/json and any application/...+json media type, parameters ignored.
// POST bodies must be JSON: a browser page in another origin can only send text/plain, form
// or multipart bodies without asking first (a CORS preflight, which the API never grants).
bool is_json(std::string_view content_type);

// DNS rebinding defence (a page on evil.example whose name is made to point at 127.0.0.1):
// such a request names the attacker's host in `Host`. True when `host` (a Host header value,
// with or without its port) is an IP literal, which cannot be rebound; `localhost`; the
// listener's own `listener_host`; or one of `allowed_hosts` (names compared without case).
// An empty value (HTTP/1.0 clients send no Host; browsers always do) is allowed too.
bool is_allowed_host(std::string_view host, std::string_view listener_host,
                     const std::vector<std::string>& allowed_hosts);

// Cross-site request defence: a browser names the page's origin in `Origin`. True when it
// is the admin listener's own origin (`scheme`://`host`, where `host` is the request's Host
// header) or one of `allowed_origins` ("https://ops.example", without case); "null" (sandboxed
// pages, file: URLs) never is.
bool is_allowed_origin(std::string_view origin, std::string_view scheme, std::string_view host,
                       const std::vector<std::string>& allowed_origins);

bool has_line_break_or_nul(std::string_view s);

// A header a publisher may set on a message: a STOMP header name, a value without line
// breaks or NUL, and none of the headers the broker sets itself.
std::optional<bad_request> check_header(std::string_view name, std::string_view value);

// What POST /api/publish asks the broker to send.
struct publish_request {
  std::string destination;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// {"destination": "...", "body": "..." | "body_base64": "...", "headers": {"k": "v"}}: fills
// `out` from a JSON publish body. Checks the JSON's shape only; the caller checks the
// destination and every header (check_header).
std::optional<bad_request> parse_json_publish(std::string_view text, publish_request& out);

}  // namespace broker::admin
