#pragma once

#include "broker/config.hpp"

#include <string>
#include <vector>

namespace broker {

// The command line, resolved into a config: the config file (--config FILE; without it
// conf/stompd.yaml when that exists, else the built-in defaults) with the everyday flags
// applied on top, the way `redis-server --port` or `nats-server -p` work:
//   --tcp HOST:PORT | off, --ws HOST:PORT | off, --data DIR, --log-level LEVEL, --threads N
// plus --help and --version.
struct startup {
  enum class action { run, print_and_exit, fail };
  action what = action::fail;
  config settings;                   // meaningful when what == run
  std::string output;                // --help / --version text
  std::vector<config_error> errors;  // every problem found, for what == fail
};

startup parse_command_line(int argc, const char* const* argv);

}  // namespace broker
