#include "stompctl/tables.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace stompctl {

namespace json = boost::json;

namespace {

// Code points, not bytes, so a name with accents still lines up (wide CJK characters and
// emoji will not; this is a terminal table, not a layout engine).
std::size_t display_width(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

}  // namespace

table::table(std::vector<std::string_view> titles) {
  for (auto t : titles) {
    bool right = t.starts_with('>');
    if (right) t.remove_prefix(1);
    right_.push_back(right);
    titles_.emplace_back(t);
  }
}

std::string table::render() const {
  std::vector<std::size_t> width(titles_.size());
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], display_width(row[i]));
  };
  measure(titles_);
  for (const auto& r : rows_) measure(r);
  std::string out;
  auto line = [&](const std::vector<std::string>& row) {
    std::string text;
    for (std::size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      std::size_t pad = width[i] - display_width(cell);
      if (i > 0) text += "  ";
      if (right_[i]) text.append(pad, ' ');
      text += cell;
      if (!right_[i] && i + 1 < width.size()) text.append(pad, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  };
  line(titles_);
  for (const auto& r : rows_) line(r);
  return out;
}

std::string key_values(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::size_t width = 0;
  for (const auto& [k, v] : rows) width = std::max(width, k.size());
  std::string out;
  for (const auto& [k, v] : rows) out += fmt::format("{:<{}}  {}\n", k, width, v);
  return out;
}

std::uint64_t u64(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->value().is_uint64()) return it->value().get_uint64();
  if (it->value().is_int64())
    return static_cast<std::uint64_t>(std::max<std::int64_t>(0, it->value().get_int64()));
  if (it->value().is_double())
    return static_cast<std::uint64_t>(std::max(0.0, it->value().get_double()));
  return 0;
}

std::int64_t i64(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->value().is_int64()) return it->value().get_int64();
  if (it->value().is_uint64()) return static_cast<std::int64_t>(it->value().get_uint64());
  if (it->value().is_double()) return static_cast<std::int64_t>(it->value().get_double());
  return 0;
}

double f64(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_number()) return 0;
  return it->value().to_number<double>();
}

std::string str(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return std::string(it->value().get_string());
}

bool boolean(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_bool() && it->value().get_bool();
}

const json::array& array(const json::object& o, std::string_view key) {
  static const json::array none;
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_array()) return none;
  return it->value().get_array();
}

std::string or_dash(std::string s) { return s.empty() ? "-" : s; }

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string preview(std::string_view body, std::size_t max_chars) {
  std::string out;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(body[i]);
    if ((c & 0xC0) != 0x80) {
      if (chars == max_chars) {
        out += "...";
        break;
      }
      ++chars;
    }
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (c < 0x20 || c == 0x7F)
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  return out;
}

}  // namespace stompctl
