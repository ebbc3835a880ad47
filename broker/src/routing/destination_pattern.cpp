#include "broker/destination_pattern.hpp"

#include <boost/container/small_vector.hpp>
#include <fmt/format.h>

#include <algorithm>

namespace broker {

namespace {

// Calls f(separator, segment) for each segment of `s`, split at '.' and '/'; the first
// segment's separator is '\0'.
template <typename F>
void for_each_segment(std::string_view s, F&& f) {
  char separator = '\0';
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '.' || s[i] == '/') {
      f(separator, s.substr(start, i - start));
      if (i < s.size()) separator = s[i];
      start = i + 1;
    }
  }
}

struct segment_view {
  char separator;
  std::string_view text;
};

}  // namespace

std::optional<destination_pattern> destination_pattern::parse(std::string_view text,
                                                              std::string* error) {
  if (text.empty()) {
    if (error) *error = "a pattern must not be empty";
    return std::nullopt;
  }
  destination_pattern p;
  p.text_ = std::string(text);
  bool ok = true;
  for_each_segment(text, [&](char separator, std::string_view segment) {
    kind k = segment == "**" ? kind::any : segment == "*" ? kind::one : kind::literal;
    if (k == kind::literal && segment.find('*') != std::string_view::npos && ok) {
      ok = false;
      if (error)
        *error =
            fmt::format("'*' and '**' must be whole segments, got '{}' in '{}'", segment, text);
    }
    p.tokens_.push_back({separator, k, std::string(segment)});
  });
  if (!ok) return std::nullopt;
  const auto wildcards = std::count_if(p.tokens_.begin(), p.tokens_.end(),
                                       [](const token& t) { return t.k != kind::literal; });
  if (wildcards == 0) {
    p.shape_ = shape::exact;
  } else if (wildcards == 1 && p.tokens_.back().k == kind::any) {
    // "a.b.**": "a.b" itself, or "a.b", the separator written before "**" (which, like every
    // separator in a pattern, matches only itself), then anything.
    p.shape_ = p.tokens_.size() == 1 ? shape::everything : shape::prefix;
    p.prefix_size_ = p.text_.size() - 3;
  }
  return p;
}

bool destination_pattern::matches(std::string_view destination) const {
  // Checked on every SEND and SUBSCRIBE (journal rules, permissions).
  switch (shape_) {
    case shape::exact:
      return destination == text_;
    case shape::everything:
      return true;
    case shape::prefix: {
      // "/topic/lost-item.**" takes "/topic/lost-item" and "/topic/lost-item.<anything>", never
      // "/topic/lost-item/<anything>": a grant or journal rule reaches no further than it says.
      const std::string_view prefix = std::string_view(text_).substr(0, prefix_size_);
      return destination.starts_with(prefix) && (destination.size() == prefix.size() ||
                                                 destination[prefix.size()] == text_[prefix_size_]);
    }
    case shape::general:
      break;
  }
  return matches_general(destination);
}

bool destination_pattern::matches_general(std::string_view destination) const {
  // No allocation for destinations of up to 16 segments against patterns of up to 15.
  boost::container::small_vector<segment_view, 16> d;
  for_each_segment(destination, [&](char separator, std::string_view segment) {
    d.push_back({separator, segment});
  });
  const std::size_t np = tokens_.size(), nd = d.size();
  // reach[i * (nd + 1) + j]: the first i pattern tokens can match the first j destination
  // segments. Patterns are short, so the table is small; no backtracking blow-up with "**".
  boost::container::small_vector<char, 256> reach((np + 1) * (nd + 1), 0);
  auto at = [&](std::size_t i, std::size_t j) -> char& { return reach[i * (nd + 1) + j]; };
  at(0, 0) = 1;
  for (std::size_t i = 1; i <= np; ++i) {
    const auto& t = tokens_[i - 1];
    // For "**": `run` says it has taken destination segments up to j, at least one. Its first
    // segment must follow the separator written before "**" (".**" never starts at a '/');
    // the segments after that are the destination's own, joined by '.' or '/'. With none
    // taken, the separator before "**" goes with it ("a.**" matches "a").
    bool run = false;
    for (std::size_t j = 0; j <= nd; ++j) {
      if (t.k == kind::any) {
        run = j > 0 && (run || (at(i - 1, j - 1) && d[j - 1].separator == t.separator));
        at(i, j) = at(i - 1, j) || run;
      } else if (j > 0 && at(i - 1, j - 1) && d[j - 1].separator == t.separator) {
        at(i, j) = t.k == kind::one || t.segment == d[j - 1].text;
      }
    }
  }
  return at(np, nd) != 0;
}

}  // namespace broker
