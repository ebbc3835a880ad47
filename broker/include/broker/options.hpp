#pragma once

#include "broker/config.hpp"

#include <string>
#include <vector>

namespace broker {

// The command line, resolved into a config: the config file (--config FILE; without it
// conf/stompd.yaml when that exists, else the built-in defaults) with the everyday flags
// applied on top, the way `redis-server --port` or `nats-server -p` work:
//   --tcp HOST:PORT | off, --ws HOST:PORT | off, --data DIR, --log-level LEVEL, --threads N
// plus --hash-passcode, --help and --version.
struct startup {
  // hash_passcode: read a passcode from standard input, print the hash auth.users needs.
  enum class action { run, print_and_exit, hash_passcode, fail };
  action what = action::fail;
  config settings;                   // meaningful when what == run
  std::string output;                // --help / --version text
  std::vector<config_error> errors;  // every problem found, for what == fail
};

startup parse_command_line(int argc, const char* const* argv);

}  // namespace broker
