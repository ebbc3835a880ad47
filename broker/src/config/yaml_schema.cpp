#include "config/yaml_schema.hpp"

#include "stomp/decimal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iterator>
#include <map>
#include <utility>

namespace broker::yaml_schema {

namespace {

// The longest duration a key may hold: one day. Timers compute now() + interval ×
// grace_factor in nanoseconds, so an unbounded value would overflow the clock.
constexpr std::uint64_t max_duration_ms = 24 * 60 * 60 * 1000;
// A retention age may exceed max_duration_ms; 100 years is far from overflowing int64
// milliseconds.
constexpr std::uint64_t max_retention_ms = 100ULL * 365 * 24 * 60 * 60 * 1000;

bool is_digits(std::string_view text) {
  return !text.empty() && std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; });
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string unknown_key(const std::string& name, std::string_view key,
                        const std::vector<entry>& keys) {
  const entry* best = nullptr;
  std::size_t best_distance = 3;  // further than this is a different word, not a typo
  for (const entry& e : keys) {
    if (std::size_t d = edit_distance(key, e.key); d < best_distance) {
      best = &e;
      best_distance = d;
    }
  }
  if (!best) return fmt::format("unknown key '{}'", name);
  std::string_view prefix = std::string_view(name).substr(0, name.size() - key.size());
  return fmt::format("unknown key '{}' (did you mean '{}{}'?)", name, prefix, best->key);
}

}  // namespace

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return node.Tag() == "!" ? fmt::format("the quoted string \"{}\"", node.Scalar())
                               : fmt::format("'{}'", node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "an empty value";
  }
}

const std::string* plain_scalar(const YAML::Node& node) {
  return node.IsScalar() && node.Tag() == "?" ? &node.Scalar() : nullptr;
}

std::string read_integer(const YAML::Node& node, std::uint64_t min, std::uint64_t max,
                         std::uint64_t& out) {
  const std::string* text = plain_scalar(node);
  std::string_view digits = text ? std::string_view(*text) : std::string_view();
  bool negative = digits.starts_with('-');
  if (negative) digits.remove_prefix(1);
  if (!is_digits(digits)) return fmt::format("expected an integer, got {}", describe(node));
  auto parsed = stomp::parse_decimal<std::uint64_t>(digits);  // nullopt: past 64 bits
  std::uint64_t value = parsed.value_or(0);
  bool too_large = !parsed || value > max;
  if ((negative && value != 0) || too_large || value < min) {
    if (max == std::numeric_limits<std::uint64_t>::max())
      return fmt::format("must be at least {}, got {}", min, *text);
    return fmt::format("must be between {} and {}, got {}", min, max, *text);
  }
  out = value;
  return {};
}

reader read_positive(std::size_t& out) { return read_uint(out, 1); }

reader read_ms(std::chrono::milliseconds& out, std::uint64_t min) {
  return [&out, min](const YAML::Node& node) {
    std::uint64_t value = 0;
    std::string error = read_integer(node, min, max_duration_ms, value);
    if (error.empty()) out = std::chrono::milliseconds(value);
    return error;
  };
}

reader read_retention_ms(std::chrono::milliseconds& out) {
  return [&out](const YAML::Node& node) {
    std::uint64_t value = 0;
    std::string error = read_integer(node, 0, max_retention_ms, value);
    if (error.empty()) out = std::chrono::milliseconds(value);
    return error;
  };
}

reader read_double(double& out, double min, double max) {
  return [&out, min, max](const YAML::Node& node) -> std::string {
    const std::string* text = plain_scalar(node);
    double value = 0;
    std::from_chars_result parsed{};
    if (text) parsed = std::from_chars(text->data(), text->data() + text->size(), value);
    if (!text || parsed.ec != std::errc() || parsed.ptr != text->data() + text->size() ||
        !std::isfinite(value))
      return fmt::format("expected a number, got {}", describe(node));
    if (value < min || value > max)
      return fmt::format("must be between {} and {}, got {}", min, max, *text);
    out = value;
    return {};
  };
}

reader read_bool(bool& out) {
  return [&out](const YAML::Node& node) -> std::string {
    static constexpr std::string_view yes[] = {"true", "True", "TRUE"};
    static constexpr std::string_view no[] = {"false", "False", "FALSE"};
    const std::string* text = plain_scalar(node);
    if (text && std::ranges::find(yes, *text) != std::end(yes)) {
      out = true;
    } else if (text && std::ranges::find(no, *text) != std::end(no)) {
      out = false;
    } else {
      return fmt::format("expected true or false, got {}", describe(node));
    }
    return {};
  };
}

std::string not_empty(const std::string& value) { return value.empty() ? "must not be empty" : ""; }

std::string any_string(const std::string&) { return {}; }

reader read_string(std::string& out, string_check check) {
  return [&out, check](const YAML::Node& node) {
    if (!node.IsScalar()) return fmt::format("expected a string, got {}", describe(node));
    std::string error = check(node.Scalar());
    if (error.empty()) out = node.Scalar();
    return error;
  };
}

reader read_string_list(std::vector<std::string>& out) {
  return [&out](const YAML::Node& node) -> std::string {
    if (node.IsScalar()) {
      out = {node.Scalar()};
      return {};
    }
    if (!node.IsSequence())
      return fmt::format("expected a list of strings, got {}", describe(node));
    std::vector<std::string> values;
    for (const auto& item : node) {
      if (!item.IsScalar())
        return fmt::format("expected a list of strings, found {} in it", describe(item));
      values.push_back(item.Scalar());
    }
    out = std::move(values);
    return {};
  };
}

reader read_path(std::filesystem::path& out, string_check check) {
  return [&out, check](const YAML::Node& node) {
    std::string text;
    std::string error = read_string(text, check)(node);
    if (error.empty()) out = text;
    return error;
  };
}

void reader_context::fail(const YAML::Mark& mark, std::string what) {
  std::string where =
      mark.is_null() ? std::string(file_name_) : fmt::format("{}:{}", file_name_, mark.line + 1);
  errors_.push_back({std::move(where), std::move(what)});
}

void reader_context::read_mapping(const YAML::Node& node, const std::vector<entry>& keys,
                                  const std::string& prefix) {
  std::map<std::string, int, std::less<>> seen;  // key -> line where first set
  for (const auto& item : node) {
    const YAML::Node& key = item.first;
    const YAML::Node& value = item.second;
    // Errors point at the key: an empty value's mark is already on the next line.
    if (!key.IsScalar()) {
      fail(key.Mark(), fmt::format("{}expected a key name, got {}",
                                   prefix.empty() ? "" : prefix + ": ", describe(key)));
      continue;
    }
    std::string name = prefix.empty() ? key.Scalar() : prefix + "." + key.Scalar();
    if (auto [first, inserted] = seen.emplace(key.Scalar(), key.Mark().line); !inserted) {
      fail(key.Mark(),
           fmt::format("duplicate key '{}' (first set on line {})", name, first->second + 1));
      continue;
    }
    auto known = std::ranges::find(keys, std::string_view(key.Scalar()), &entry::key);
    if (known == keys.end()) {
      fail(key.Mark(), unknown_key(name, key.Scalar(), keys));
    } else if (known->read) {
      if (std::string error = known->read(value); !error.empty())
        fail(key.Mark(), fmt::format("{}: {}", name, error));
    } else if (known->item) {
      read_list(key, value, known->item, name);
    } else if (value.IsMap()) {
      read_mapping(value, known->section, name);
    } else if (!value.IsNull()) {  // a section with every key commented out is fine
      fail(key.Mark(),
           fmt::format("{}: expected a mapping of settings, got {}", name, describe(value)));
    }
  }
  for (const entry& e : keys)
    if (e.required && !seen.contains(e.key))
      fail(node.Mark(), fmt::format("{}{}: missing", prefix.empty() ? "" : prefix + ".", e.key));
}

void reader_context::read_list(const YAML::Node& key, const YAML::Node& value,
                               const list_item& item, const std::string& name) {
  if (value.IsNull()) return;
  if (!value.IsSequence()) {
    fail(key.Mark(), fmt::format("{}: expected a list, got {}", name, describe(value)));
    return;
  }
  for (std::size_t i = 0; i < value.size(); ++i) {
    auto element = fmt::format("{}[{}]", name, i);
    if (!value[i].IsMap())
      fail(value[i].Mark(),
           fmt::format("{}: expected a mapping of settings, got {}", element, describe(value[i])));
    else
      read_mapping(value[i], item(), element);
  }
}

}  // namespace broker::yaml_schema
