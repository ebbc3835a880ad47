#pragma once

#include <boost/json/fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stompctl {

// A terminal table: a title row, then rows of cells, columns two spaces apart and padded to
// the widest cell; no trailing spaces. The e2e tests split rows on runs of 2+ spaces.
class table {
 public:
  // A column whose title starts with '>' is right-aligned (numbers).
  explicit table(std::vector<std::string_view> titles);

  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }
  std::string render() const;

 private:
  std::vector<std::string> titles_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// "key   value" lines, keys padded to one width.
std::string key_values(const std::vector<std::pair<std::string, std::string>>& rows);

// Fields of the API's JSON that tolerate a field the broker did not send (an older or newer
// stompd): 0, "", false or an empty array instead.
std::uint64_t u64(const boost::json::object& o, std::string_view key);
std::int64_t i64(const boost::json::object& o, std::string_view key);
double f64(const boost::json::object& o, std::string_view key);
std::string str(const boost::json::object& o, std::string_view key);
bool boolean(const boost::json::object& o, std::string_view key);
const boost::json::array& array(const boost::json::object& o, std::string_view key);

std::string or_dash(std::string s);  // "-" for an empty cell
std::int64_t now_ms();               // wall clock, as the API's *_ms timestamps

// The start of a text body on one line: control characters shown as escapes, cut at
// `max_chars` code points.
std::string preview(std::string_view body, std::size_t max_chars);

}  // namespace stompctl
