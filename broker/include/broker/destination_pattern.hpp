#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace broker {

// A destination pattern such as "/topic/lost-item.**" or "/topic/lost-item.*.room.*".
//
// Destinations and patterns are split into segments at '.' and '/'. In a pattern a segment
// "*" matches exactly one segment and "**" any number of segments, none included; every
// other segment, and every separator, matches itself. So "/topic/lost-item.**" matches
// "/topic/lost-item", "/topic/lost-item.42" and "/topic/lost-item.42.room.7" but not
// "/topic/lost-item/42" (the '.' before "**" matches only a '.'), and "/topic/*.room"
// matches "/topic/a.room" but not "/topic/a.b.room". The segments that "**" takes are joined
// by whatever separators the destination has: "/topic/**" matches "/topic/a/b.c". With no
// segment taken, the separator before "**" goes too: "a.**" matches "a". Segments may be
// empty ("/topic/a." has an empty last segment), and "*" and "**" match empty segments too.
// These rules bound auth grants and journal rules (README "History" and "Security").
class destination_pattern {
 public:
  // nullopt, with the reason in *error, when `text` is empty or uses '*' inside a segment.
  static std::optional<destination_pattern> parse(std::string_view text, std::string* error);

  bool matches(std::string_view destination) const;
  const std::string& text() const noexcept { return text_; }

 private:
  enum class kind : std::uint8_t { literal, one, any };  // "name", "*", "**"
  struct token {
    char separator;  // '.', '/', or '\0' for the first segment
    kind k;
    std::string segment;
  };

  // Most patterns are a name or a prefix followed by "**": matched by comparing strings.
  enum class shape : std::uint8_t { exact, prefix, everything, general };
  bool matches_general(std::string_view destination) const;

  std::string text_;
  std::vector<token> tokens_;
  shape shape_ = shape::general;
  std::size_t prefix_size_ = 0;  // shape::prefix: text_ without its final separator and "**"
};

}  // namespace broker
