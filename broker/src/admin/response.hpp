#pragma once

#include "admin/request.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <string_view>

// The admin API's requests and responses as Beast messages, and the responses every route
// shares: JSON bodies, {"error": ...}, 405 with Allow, 401 with a Bearer challenge. Every
// response carries `Server: stompd` and `Cache-Control: no-store`.
namespace broker::admin {

using request = boost::beast::http::request<boost::beast::http::string_body>;
using response = boost::beast::http::response<boost::beast::http::string_body>;

response make_response(boost::beast::http::status status, std::string_view content_type,
                       std::string body);
// The value as compact JSON text (admin_render.hpp's to_text) plus a newline.
response json_response(boost::beast::http::status status, const boost::json::value& v);
// {"error": message}
response error_response(boost::beast::http::status status, std::string_view message);
response error_response(const bad_request& e);  // 400
// 405, with `allowed` ("GET, DELETE") as the Allow header.
response method_not_allowed(std::string_view allowed);
// 401 with a WWW-Authenticate challenge (RFC 6750 §3): a request without credentials gets
// the bare challenge, one with a bad token is told so (error="invalid_token").
response unauthorized(bool token_given);

}  // namespace broker::admin
