#include "stompctl/admin_client.hpp"

#include "stompctl/failure.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <utility>

#ifndef STOMPD_VERSION
#error "STOMPD_VERSION is defined by broker/CMakeLists.txt"
#endif

namespace stompctl {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;

std::string percent_encode(std::string_view s) {
  return boost::urls::encode(s, boost::urls::unreserved_chars);
}

admin_client::admin_client(endpoint_url url, std::string token, std::chrono::seconds timeout)
    : url_(std::move(url)), token_(std::move(token)), timeout_(timeout) {}

http_reply admin_client::call(http::verb method, const std::string& target, std::string body,
                              std::string_view content_type) const {
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

json::value parse_json(const http_reply& reply, const endpoint_url& url) {
  boost::system::error_code ec;
  auto v = json::parse(reply.body, ec);
  if (ec)
    fail(exit_unreachable, fmt::format("{} answered HTTP {} without JSON: is it stompd's admin "
                                       "listener?",
                                       url.text, reply.status));
  return v;
}

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

}  // namespace stompctl
