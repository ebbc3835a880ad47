#include "redis_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <thread>

extern char** environ;

namespace stompd_test {
namespace {

using namespace std::chrono_literals;

std::string binary() {
  const char* env = std::getenv("STOMPD_REDIS_SERVER");
  std::string path = env != nullptr && *env != '\0' ? env : "/usr/bin/redis-server";
  if (!std::filesystem::exists(path))
    throw std::runtime_error("no redis-server at " + path +
                             ": run scripts/install-deps test (Debian's redis-server), or set "
                             "STOMPD_REDIS_SERVER");
  return path;
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A port the kernel just gave out and took back: free unless someone races us for it, in
// which case redis-server fails to bind and start() tries another.
std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  auto a = loopback(0);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free loopback port");
  ::close(fd);
  return ntohs(a.sin_port);
}

// True once something on `port` answers PING with +PONG.
bool answers_ping(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  auto a = loopback(port);
  bool ok = false;
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    timeval tv{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    constexpr std::string_view ping = "PING\r\n";
    char buf[16] = {};
    ok = ::write(fd, ping.data(), ping.size()) == static_cast<ssize_t>(ping.size()) &&
         ::read(fd, buf, sizeof buf) >= 5 && std::string_view(buf, 5) == "+PONG";
  }
  if (fd >= 0) ::close(fd);
  return ok;
}

}  // namespace

redis_server::redis_server(std::vector<std::string> extra) : extra_(std::move(extra)) {
  for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) {
    port_ = free_port();
    start();
  }
  if (pid_ < 0)
    throw std::runtime_error("redis-server did not start; see its log in " + dir_.path().string());
}

redis_server::~redis_server() { kill(); }

void redis_server::start() {
  const std::string bin = binary();
  std::vector<std::string> args = {
      bin,         "--port",    std::to_string(port_),       "--bind", host_, "--dir",
      dir_.path(), "--logfile", (dir_.path() / "redis.log"), "--save", "",    "--daemonize",
      "no"};
  args.insert(args.end(), extra_.begin(), extra_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawn(&pid, bin.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("cannot run " + bin);
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (answers_ping(port_)) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: the port was taken?
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(20ms);
  }
  kill();
}

void redis_server::kill() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void redis_server::restart() {
  kill();
  start();
  if (pid_ < 0) throw std::runtime_error("redis-server did not restart on its port");
}

}  // namespace stompd_test
