// stompd: loads the config, builds the server, runs it until SIGINT/SIGTERM.
#include "auth/passcode.hpp"
#include "broker/log.hpp"
#include "broker/options.hpp"
#include "broker/server.hpp"

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  auto startup = broker::parse_command_line(argc, argv);
  switch (startup.what) {
    case broker::startup::action::print_and_exit:
      std::fputs(startup.output.c_str(), stdout);
      return 0;
    case broker::startup::action::fail:
      for (const auto& e : startup.errors)
        std::fprintf(stderr, "stompd: %s: %s\n", e.where.c_str(), e.what.c_str());
      std::fputs("stompd: not started (see --help)\n", stderr);
      return 2;
    case broker::startup::action::hash_passcode: {
      // One line from stdin (a pipe, or typed: `stompd --hash-passcode < file` keeps it out
      // of the shell history); the hash goes to stdout for conf/stompd.yaml.
      std::string passcode;
      if (!std::getline(std::cin, passcode) || passcode.empty()) {
        std::fputs("stompd: --hash-passcode reads a non-empty passcode from standard input\n",
                   stderr);
        return 2;
      }
      std::printf("%s\n", broker::auth::hash_passcode(passcode).c_str());
      return 0;
    }
    case broker::startup::action::run:
      break;
  }
  try {
    broker::server server(std::move(startup.settings));
    return server.run_until_signalled();
  } catch (const std::exception& e) {
    broker::log_error("fatal: {}", e.what());
    return 1;
  }
}
