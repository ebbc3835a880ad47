#include "admin/response.hpp"

#include "admin/admin_render.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/json/object.hpp>
#include <fmt/format.h>

#include <utility>

namespace http = boost::beast::http;
namespace json = boost::json;

namespace broker::admin {

namespace {
constexpr std::string_view realm = "stompd-admin";
}  // namespace

response make_response(http::status status, std::string_view content_type, std::string body) {
  response res{status, 11};
  res.set(http::field::server, "stompd");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

response json_response(http::status status, const json::value& v) {
  return make_response(status, "application/json", to_text(v) + "\n");
}

response error_response(http::status status, std::string_view message) {
  return json_response(status, json::object{{"error", message}});
}

response error_response(const bad_request& e) {
  return error_response(http::status::bad_request, e.message);
}

response method_not_allowed(std::string_view allowed) {
  auto res = error_response(http::status::method_not_allowed,
                            fmt::format("method not allowed; allowed: {}", allowed));
  res.set(http::field::allow, allowed);
  return res;
}

response unauthorized(bool token_given) {
  auto res =
      error_response(http::status::unauthorized, token_given ? "wrong token"
                                                             : "missing token: send Authorization: "
                                                               "Bearer <admin token>");
  res.set(http::field::www_authenticate,
          token_given ? fmt::format("Bearer realm=\"{}\", error=\"invalid_token\"", realm)
                      : fmt::format("Bearer realm=\"{}\"", realm));
  return res;
}

}  // namespace broker::admin
