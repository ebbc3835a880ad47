#include "admin/request.hpp"

#include "auth/base64.hpp"
#include "routing/publish.hpp"
#include "stomp/decimal.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/url/authority_view.hpp>
#include <boost/url/encoding_opts.hpp>
#include <boost/url/param.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/url_view.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace beast = boost::beast;
namespace json = boost::json;
namespace urls = boost::urls;

namespace broker::admin {

namespace {

// The message for a target that starts with '/' but that Boost.URL refused: a malformed
// escape, said where, or a character RFC 3986 §2 wants percent-encoded ('{', '"', a space,
// raw UTF-8, a '#' fragment, ...).
std::string why_not_origin_form(std::string_view target) {
  auto q = target.find('?');
  if (!urls::make_pct_string_view(target.substr(0, q))) return "bad percent-encoding in the path";
  if (q != std::string_view::npos && !urls::make_pct_string_view(target.substr(q + 1)))
    return "bad percent-encoding in the query";
  return "the request target has a character that must be percent-encoded (RFC 3986)";
}

}  // namespace

std::optional<request_target> parse_target(std::string_view target, std::string& error) {
  if (!target.starts_with('/')) {  // "*", "http://host/path", ...
    error = "the request target must be a path";
    return std::nullopt;
  }
  auto parsed = urls::parse_origin_form(target);
  if (!parsed) {
    error = why_not_origin_form(target);
    return std::nullopt;
  }
  const urls::url_view& url = *parsed;
  request_target t;
  t.path = std::string(url.encoded_path());
  // segments() splits before it decodes, so %2F stays inside its segment.
  for (std::string segment : url.segments()) t.segments.push_back(std::move(segment));
  if (t.segments.size() > 1 && t.segments.back().empty()) t.segments.pop_back();  // "/x/"
  // With space_as_plus, '+' in the query is a space (HTML form encoding, which curl and
  // Python's urlencode produce); in the path it stays a '+'.
  for (const urls::param& p : url.params(urls::encoding_opts(true))) {
    if (p.key.empty() && !p.has_value) continue;  // "a=1&&b=2", a lone "?"
    t.query.emplace_back(p.key, p.value);
  }
  return t;
}

std::optional<bad_request> query_params::only(
    std::initializer_list<std::string_view> allowed) const {
  for (std::size_t i = 0; i < q_.size(); ++i) {
    const auto& key = q_[i].first;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      return bad_request{fmt::format("unknown parameter: {}", key)};
    for (std::size_t j = 0; j < i; ++j)
      if (q_[j].first == key) return bad_request{fmt::format("repeated parameter: {}", key)};
  }
  return std::nullopt;
}

const std::string* query_params::get(std::string_view key) const {
  for (const auto& [k, v] : q_)
    if (k == key) return &v;
  return nullptr;
}

std::uint64_t query_params::number(std::string_view key, std::uint64_t fallback, std::uint64_t min,
                                   std::uint64_t max, std::optional<bad_request>& error) const {
  const std::string* text = get(key);
  if (!text) return fallback;
  auto value = stomp::parse_decimal<std::uint64_t>(*text);
  if (!value || *value < min || *value > max) {
    if (!error)
      error = bad_request{
          fmt::format("{}: expected an integer from {} to {}, got '{}'", key, min, max, *text)};
    return fallback;
  }
  return *value;
}

std::string_view bearer_token(std::string_view value) {
  constexpr std::string_view scheme = "bearer ";
  if (value.size() <= scheme.size() || !beast::iequals(value.substr(0, scheme.size()), scheme))
    return {};
  value.remove_prefix(scheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  return value;
}

bool is_json(std::string_view content_type) {
  auto media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  constexpr std::string_view json_suffix = "+json";
  return beast::iequals(media, "application/json") ||
         (media.size() > json_suffix.size() &&
          beast::iequals(media.substr(media.size() - json_suffix.size()), json_suffix));
}

bool is_allowed_host(std::string_view host, std::string_view listener_host,
                     const std::vector<std::string>& allowed_hosts) {
  if (host.empty()) return true;
  auto authority = urls::parse_authority(host);
  if (!authority || authority->has_userinfo()) return false;
  if (authority->host_type() != urls::host_type::name) return true;  // IPv4, IPv6, IPvFuture
  const std::string name = authority->host();                        // percent-decoded
  if (beast::iequals(name, "localhost") || beast::iequals(name, listener_host)) return true;
  return std::any_of(allowed_hosts.begin(), allowed_hosts.end(),
                     [&](const std::string& h) { return beast::iequals(name, h); });
}

bool is_allowed_origin(std::string_view origin, std::string_view scheme, std::string_view host,
                       const std::vector<std::string>& allowed_origins) {
  if (beast::iequals(origin, "null")) return false;
  if (!host.empty() && origin.size() == scheme.size() + 3 + host.size() &&
      beast::iequals(origin.substr(0, scheme.size()), scheme) &&
      origin.substr(scheme.size(), 3) == "://" &&
      beast::iequals(origin.substr(scheme.size() + 3), host))
    return true;
  return std::any_of(allowed_origins.begin(), allowed_origins.end(),
                     [&](const std::string& o) { return beast::iequals(origin, o); });
}

bool has_line_break_or_nul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

std::optional<bad_request> check_header(std::string_view name, std::string_view value) {
  if (name.empty() || name.find(':') != std::string_view::npos || has_line_break_or_nul(name))
    return bad_request{fmt::format("bad header name: '{}'", name)};
  if (has_line_break_or_nul(value))
    return bad_request{fmt::format("header {}: line breaks and NUL are not allowed", name)};
  // The publish path's list (a SEND may not pass these on either), in any letter case: an
  // HTTP client's "Destination" is refused rather than published as a header of its own.
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (is_reserved_header(lower) && lower != idempotency_header)
    return bad_request{fmt::format("header {} is set by the broker", name)};
  return std::nullopt;
}

std::optional<bad_request> parse_json_publish(std::string_view text, publish_request& out) {
  auto bad = [](std::string message) { return bad_request{std::move(message)}; };
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

}  // namespace broker::admin
