#pragma once

#include "broker/config.hpp"

#include <filesystem>
#include <utility>

namespace stompd_test {

// A broker for in-process tests: TCP and WebSocket on ephemeral loopback ports, no admin
// listener (its default port may be taken), two workers so routing crosses threads, no log
// output, its journal in `data_dir`.
inline broker::config loopback_config(std::filesystem::path data_dir) {
  broker::config c;
  c.tcp.port = 0;
  c.websocket.port = 0;
  c.admin.enabled = false;
  c.threads = 2;
  c.log_level = broker::log_level::off;
  c.data_dir = std::move(data_dir);
  return c;
}

}  // namespace stompd_test
