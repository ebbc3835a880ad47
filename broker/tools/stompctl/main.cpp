// stompctl: the command-line client of stompd's admin HTTP API (docs/OPERATING.md).
//
// One request per run, so the HTTP exchange is linear: resolve, connect, write, read, under
// one deadline, on a private io_context. Tables for people by default, the API's own JSON
// with --json; the exit status tells scripts what went wrong (see usage()).
//
// command_line.cpp parses argv and --url, admin_client.cpp talks HTTP, commands.cpp runs
// each command and tables.cpp formats what it prints.
#include "stompctl/admin_client.hpp"
#include "stompctl/command_line.hpp"
#include "stompctl/commands.hpp"
#include "stompctl/failure.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#ifndef STOMPD_VERSION
#error "STOMPD_VERSION is defined by broker/CMakeLists.txt"
#endif

namespace {

using namespace stompctl;

int run(int argc, char** argv) {
  const command_line cl = parse_command_line(argc, argv);
  if (cl.version) {
    fmt::print("stompctl {}\n", STOMPD_VERSION);
    return exit_ok;
  }
  if (cl.help) {
    fmt::print("{}", cl.command ? command_usage(*cl.command) : usage());
    return exit_ok;
  }
  if (!cl.command) {
    std::fputs(usage().c_str(), stderr);
    return exit_usage;
  }
  check_arguments(cl);

  std::string url = cl.url ? *cl.url : "";
  if (url.empty())
    if (const char* env = std::getenv("STOMPCTL_URL")) url = env;
  if (url.empty()) url = default_url();
  std::string token = cl.token ? *cl.token : "";
  if (!cl.token)
    if (const char* env = std::getenv("STOMPCTL_TOKEN")) token = env;

  // passwd needs no broker, so a bad --url must not stop it.
  endpoint_url where = cl.command->name == "passwd" ? endpoint_url{} : parse_url(url);
  return run_command(cl, admin_client(where, token, cl.timeout));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const failure& f) {
    std::fflush(stdout);
    std::fprintf(stderr, "stompctl: %s\n", f.message.c_str());
    return f.status;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "stompctl: %s\n", e.what());
    return exit_api;
  }
}
