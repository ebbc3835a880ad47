#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace bench {

// Splits a STOMP byte stream into frames with the least work the receive path can do: one
// memchr for each frame's NUL, nothing else until a caller asks for a header.
//
// It relies on bodies never containing NUL, which holds for every frame stompd-bench sends
// (and so receives back); content-length is not consulted. Heart-beat EOLs between frames
// are skipped. Reads go straight into its buffer (prepare/commit); a frame cut by a read is
// moved to the front once, when space runs out. Not thread-safe: one per connection.
class frame_scanner {
 public:
  explicit frame_scanner(std::size_t capacity_bytes);

  // Writable space of at least `min_bytes` after the buffered bytes.
  std::span<char> prepare(std::size_t min_bytes);
  void commit(std::size_t n) noexcept { end_ += n; }

  // Calls f(frame) for every complete frame buffered, the frame without its NUL; a frame
  // stays valid only during its call. Stops early when f returns false.
  template <class F>
  void drain(F&& f) {
    char* base = buf_.get();
    while (begin_ < end_) {
      while (begin_ < end_ && (base[begin_] == '\n' || base[begin_] == '\r')) ++begin_;
      if (begin_ == end_) break;
      auto* nul = static_cast<char*>(std::memchr(base + begin_, '\0', end_ - begin_));
      if (nul == nullptr) break;
      std::string_view frame(base + begin_, static_cast<std::size_t>(nul - (base + begin_)));
      begin_ = static_cast<std::size_t>(nul - base) + 1;
      if (!f(frame)) break;
    }
    if (begin_ == end_) begin_ = end_ = 0;
  }

  std::size_t buffered_bytes() const noexcept { return end_ - begin_; }

 private:
  std::unique_ptr<char[]> buf_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// The command line of a frame ("MESSAGE"), without a trailing CR.
std::string_view frame_command(std::string_view frame) noexcept;

// The raw value of the first header `name` (STOMP 1.2: the first occurrence wins), looked up
// line by line in the frame's head; not unescaped, which the numeric and identifier headers
// the generator reads never need.
std::optional<std::string_view> frame_header(std::string_view frame,
                                             std::string_view name) noexcept;

// Decimal digits to an unsigned integer; nullopt when empty, not all digits, or too long.
std::optional<std::uint64_t> parse_u64(std::string_view digits) noexcept;

}  // namespace bench
