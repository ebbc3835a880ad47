#include "frame_scanner.hpp"

#include <algorithm>

namespace bench {

frame_scanner::frame_scanner(std::size_t capacity_bytes)
    : buf_(new char[capacity_bytes]), capacity_(capacity_bytes) {}

std::span<char> frame_scanner::prepare(std::size_t min_bytes) {
  if (capacity_ - end_ < min_bytes) {
    std::size_t live = end_ - begin_;
    if (capacity_ - live < min_bytes) {
      // One frame larger than the buffer: grow, keeping the partial frame.
      std::size_t grown = std::max(capacity_ * 2, live + min_bytes);
      std::unique_ptr<char[]> bigger(new char[grown]);
      std::memcpy(bigger.get(), buf_.get() + begin_, live);
      buf_ = std::move(bigger);
      capacity_ = grown;
    } else {
      std::memmove(buf_.get(), buf_.get() + begin_, live);
    }
    begin_ = 0;
    end_ = live;
  }
  return {buf_.get() + end_, capacity_ - end_};
}

std::string_view frame_command(std::string_view frame) noexcept {
  auto eol = frame.find('\n');
  auto line = frame.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

std::optional<std::string_view> frame_header(std::string_view frame,
                                             std::string_view name) noexcept {
  const char* p = frame.data();
  const char* end = p + frame.size();
  // Skip the command line.
  auto* eol = static_cast<const char*>(std::memchr(p, '\n', frame.size()));
  if (eol == nullptr) return std::nullopt;
  p = eol + 1;
  while (p < end) {
    eol = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    const char* line_end = eol ? eol : end;
    std::size_t len = static_cast<std::size_t>(line_end - p);
    if (len > 0 && p[len - 1] == '\r') --len;
    if (len == 0) return std::nullopt;  // blank line: end of the headers
    if (len > name.size() && p[name.size()] == ':' && std::memcmp(p, name.data(), name.size()) == 0)
      return std::string_view(p + name.size() + 1, len - name.size() - 1);
    if (eol == nullptr) break;
    p = eol + 1;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_u64(std::string_view digits) noexcept {
  if (digits.empty() || digits.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

}  // namespace bench
