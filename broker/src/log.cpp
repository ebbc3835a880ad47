#include "broker/log.hpp"

#include <fmt/chrono.h>
#include <unistd.h>

#include <array>
#include <chrono>

namespace broker {

namespace detail {
std::atomic<log_level> current_log_level{log_level::info};
}  // namespace detail

namespace {
constexpr std::array<std::string_view, 6> level_names = {"trace", "debug", "info",
                                                         "warn",  "error", "off"};
}  // namespace

std::optional<log_level> parse_log_level(std::string_view name) noexcept {
  for (std::size_t i = 0; i < level_names.size(); ++i)
    if (level_names[i] == name) return static_cast<log_level>(i);
  if (name == "warning") return log_level::warn;
  return std::nullopt;
}

std::string_view to_string(log_level level) noexcept {
  return level_names[static_cast<std::size_t>(level)];
}

void set_log_level(log_level level) noexcept {
  detail::current_log_level.store(level, std::memory_order_relaxed);
}

void detail::write_log(log_level level, fmt::string_view format, fmt::format_args args) noexcept {
  try {
    fmt::memory_buffer line;
    auto now = std::chrono::system_clock::now();
    auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - seconds).count();
    fmt::format_to(std::back_inserter(line), "{:%Y-%m-%dT%H:%M:%S}.{:03}Z {} ", seconds, ms,
                   to_string(level));
    fmt::vformat_to(std::back_inserter(line), format, args);
    line.push_back('\n');
    // One write(2) per line keeps lines from different threads whole; a short write to a
    // full pipe is retried, a failed one dropped (logging must never take the broker down).
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(STDERR_FILENO, p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  } catch (...) {
  }
}

}  // namespace broker
