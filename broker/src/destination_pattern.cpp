#include "broker/destination_pattern.hpp"

#include <fmt/format.h>

namespace broker {

std::vector<destination_pattern::token> destination_pattern::split(std::string_view s) {
  std::vector<token> out;
  char separator = '\0';
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '.' || s[i] == '/') {
      out.push_back({separator, std::string(s.substr(start, i - start))});
      if (i < s.size()) separator = s[i];
      start = i + 1;
    }
  }
  return out;
}

std::optional<destination_pattern> destination_pattern::parse(std::string_view text,
                                                              std::string* error) {
  if (text.empty()) {
    if (error) *error = "a pattern must not be empty";
    return std::nullopt;
  }
  destination_pattern p;
  p.text_ = std::string(text);
  p.tokens_ = split(text);
  for (const auto& t : p.tokens_) {
    if (t.segment.find('*') != std::string::npos && t.segment != "*" && t.segment != "**") {
      if (error)
        *error =
            fmt::format("'*' and '**' must be whole segments, got '{}' in '{}'", t.segment, text);
      return std::nullopt;
    }
  }
  return p;
}

bool destination_pattern::matches(std::string_view destination) const {
  auto d = split(destination);
  const std::size_t np = tokens_.size(), nd = d.size();
  // reach[i * (nd + 1) + j]: the first i pattern tokens can match the first j destination
  // tokens. Patterns are short, so the table is small; no backtracking blow-up with "**".
  std::vector<char> reach((np + 1) * (nd + 1), 0);
  auto at = [&](std::size_t i, std::size_t j) -> char& { return reach[i * (nd + 1) + j]; };
  at(0, 0) = 1;
  for (std::size_t i = 1; i <= np; ++i) {
    const auto& t = tokens_[i - 1];
    for (std::size_t j = 0; j <= nd; ++j) {
      if (t.segment == "**") {
        at(i, j) = at(i - 1, j) || (j > 0 && at(i, j - 1));
      } else if (j > 0 && at(i - 1, j - 1) && d[j - 1].separator == t.separator) {
        at(i, j) = t.segment == "*" || t.segment == d[j - 1].segment;
      }
    }
  }
  return at(np, nd) != 0;
}

}  // namespace broker
