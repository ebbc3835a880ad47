#pragma once

#include "temp_dir.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace stompd_test {

// A real redis-server for a test: its own free loopback port and its own directory, never the
// system service; SIGKILLed when destroyed. The binary is STOMPD_REDIS_SERVER, else
// /usr/bin/redis-server (Debian's redis-server package; scripts/install-deps test). Without it
// the constructor throws, naming what to install: a Redis test that quietly did not run would
// look like one that passed.
class redis_server {
 public:
  // `extra`: more redis-server arguments, e.g. {"--appendonly", "yes"}. Nothing is persisted
  // unless they say so.
  explicit redis_server(std::vector<std::string> extra = {});
  ~redis_server();
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  const std::string& host() const noexcept { return host_; }
  // SIGKILL, as a crash: the data directory stays.
  void kill();
  // Starts it again on the same port and directory (after kill()).
  void restart();

 private:
  void start();

  temp_dir dir_;
  std::vector<std::string> extra_;
  std::string host_ = "127.0.0.1";
  std::uint16_t port_ = 0;
  int pid_ = -1;
};

}  // namespace stompd_test
