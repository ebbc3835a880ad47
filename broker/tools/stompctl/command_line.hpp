#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stompctl {

// What stompctl's command line is made of; the tables in command_line.cpp list every
// command and option once, for both the parser and the help text.

struct option_spec {
  std::string_view name;        // without "--"
  std::string_view value_name;  // empty for a switch
  std::string_view help;
  bool repeatable = false;
};

struct command_spec {
  std::string_view name;
  std::string_view synopsis;  // arguments and options after the name
  std::string_view summary;   // one line for the command list
  std::size_t min_args;
  std::size_t max_args;
  std::vector<option_spec> options;
  std::string_view details;  // more help: what it prints, examples
};

// stompd's default admin address: http://127.0.0.1 and config::admin_listener::default_port.
std::string default_url();
constexpr std::chrono::seconds default_timeout{10};

// A parsed command line. Global options may come before or after the command; a command's
// own options only after it.
struct command_line {
  const command_spec* command = nullptr;  // null: none given
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> options;  // the command's, in order
  std::optional<std::string> url;
  std::optional<std::string> token;
  bool json = false;
  std::chrono::seconds timeout = default_timeout;
  bool help = false;
  bool version = false;

  // The value of the command's option `name`; null when not given.
  const std::string* option(std::string_view name) const;
};

// Parses argv (argv[0] is the program). Fails with exit_usage, and a message naming the
// word at fault, on an unknown command or option, a missing or unexpected value, a repeated
// option that is not repeatable, or a bad --timeout.
command_line parse_command_line(int argc, const char* const* argv);

// After --help and --version are handled: fails with exit_usage when the command's number
// of arguments is wrong or its first argument is empty.
void check_arguments(const command_line& cl);

// The help: usage() for `stompctl --help`, command_usage() for `stompctl COMMAND --help`.
std::string usage();
std::string command_usage(const command_spec& c);

// `text` as a whole decimal number from `min` to `max` (stomp::parse_decimal); fails with
// exit_usage and a message that starts with `what` otherwise.
std::uint64_t parse_number(std::string_view what, std::string_view text, std::uint64_t min,
                           std::uint64_t max);

// Where the admin API is, from --url.
struct endpoint_url {
  std::string text;  // as given, for messages
  std::string host;  // an IPv6 address without its brackets
  std::string port;
  std::string base_path;  // "" or "/prefix" when the API sits behind a proxy path
};

// http://HOST[:PORT][/PATH], parsed as an RFC 3986 URI (Boost.URL); "http://" may be left
// out, and the port defaults to 80. Fails with exit_usage on anything else, https:// among
// it (the admin listener speaks plain HTTP).
endpoint_url parse_url(std::string_view text);

}  // namespace stompctl
