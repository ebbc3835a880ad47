#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>

namespace broker {

// The broker's only logging facade: one line per event on stderr,
//   2026-11-22T10:45:54.123Z info listening transport=stomp address=127.0.0.1:61613
// with key=value context. Formats are checked at compile time by fmt. Thread-safe: each line
// is written with a single write(2). Never pass passcodes or tokens.
enum class log_level : std::uint8_t { trace, debug, info, warn, error, off };

std::optional<log_level> parse_log_level(std::string_view name) noexcept;
std::string_view to_string(log_level level) noexcept;

void set_log_level(log_level level) noexcept;

namespace detail {
extern std::atomic<log_level> current_log_level;
void write_log(log_level level, fmt::string_view format, fmt::format_args args) noexcept;
}  // namespace detail

inline bool log_enabled(log_level level) noexcept {
  return level >= detail::current_log_level.load(std::memory_order_relaxed);
}

template <typename... Args>
void log(log_level level, fmt::format_string<Args...> format, Args&&... args) {
  if (log_enabled(level)) detail::write_log(level, format, fmt::make_format_args(args...));
}

#define STOMPD_LOG_FN(name)                                             \
  template <typename... Args>                                           \
  void log_##name(fmt::format_string<Args...> format, Args&&... args) { \
    log(log_level::name, format, std::forward<Args>(args)...);          \
  }
STOMPD_LOG_FN(trace)
STOMPD_LOG_FN(debug)
STOMPD_LOG_FN(info)
STOMPD_LOG_FN(warn)
STOMPD_LOG_FN(error)
#undef STOMPD_LOG_FN

}  // namespace broker
