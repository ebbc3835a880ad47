#pragma once

#include <string>

namespace stompctl {

// Exit statuses: documented in usage(), relied on by scripts.
enum exit_status : int {
  exit_ok = 0,
  exit_usage = 1,        // bad command line or input
  exit_unreachable = 2,  // no connection, timeout, or not an HTTP answer
  exit_auth = 3,         // 401 (token missing or wrong) or 403 (publish denied)
  exit_not_found = 4,    // 404: unknown destination, connection, or not journaled
  exit_api = 5,          // any other API error (400, 405, 413, 5xx, an unexpected answer)
};

// Ends the run with a one-line message on stderr and an exit status: thrown by fail(),
// caught only in main(). stompctl makes one request per run, so giving up is the whole of
// its error handling.
struct failure {
  int status;
  std::string message;
};

[[noreturn]] void fail(int status, std::string message);

}  // namespace stompctl
