#pragma once

#include "stompctl/command_line.hpp"

#include <boost/beast/http/verb.hpp>
#include <boost/json/fwd.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace stompctl {

struct http_reply {
  unsigned status = 0;
  std::string body;
};

// The HTTP client of the admin API: one request per call, each on a private io_context, so
// the exchange is linear (resolve, connect, write, read) under one deadline. Fails with
// exit_unreachable when there is no answer; any answer, whatever its status, is returned.
class admin_client {
 public:
  admin_client(endpoint_url url, std::string token, std::chrono::seconds timeout);

  // The reply, whatever its status; fails with exit_unreachable when there is none.
  http_reply call(boost::beast::http::verb method, const std::string& target, std::string body = {},
                  std::string_view content_type = {}) const;

  const endpoint_url& url() const { return url_; }

 private:
  endpoint_url url_;
  std::string token_;
  std::chrono::seconds timeout_;
};

// The body of a reply as JSON; fails with exit_unreachable when it is not JSON (then --url
// is not stompd's admin listener).
boost::json::value parse_json(const http_reply& reply, const endpoint_url& url);

// A reply that is not 2xx ends the run, with the API's error message and an exit status
// for the HTTP status (401 and 403: exit_auth, 404: exit_not_found, others: exit_api).
void check(const http_reply& reply, const endpoint_url& url);

// RFC 3986 §2.3: everything but the unreserved characters is percent-encoded, so a
// destination name ("/topic/a.b") travels as one path segment.
std::string percent_encode(std::string_view s);

}  // namespace stompctl
