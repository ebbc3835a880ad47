#pragma once

#include "broker/config.hpp"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

// A YAML document read against a schema of keys (config.cpp's is stompd.yaml's): typed
// readers for the values, and the walk that reports every unknown key, duplicate, missing
// key and bad value with its line, rather than stopping at the first.
namespace broker::yaml_schema {

// Reads one YAML value into the config field it was made for. Returns "" on success, else
// what is wrong with the value ("expected an integer, got 'abc'"); the caller adds where.
using reader = std::function<std::string(const YAML::Node&)>;

struct entry;
// For a list of mappings: appends a new element and returns the keys that fill it.
using list_item = std::function<std::vector<entry>()>;

// One key of a mapping: a value read by `read`, a nested mapping listed in `section`, or a
// list of mappings each read with the keys `item` returns. A `required` key must be present.
struct entry {
  entry(std::string_view k, reader r, bool req = false)
      : key(k), read(std::move(r)), required(req) {}
  entry(std::string_view k, std::vector<entry> s) : key(k), section(std::move(s)) {}
  entry(std::string_view k, list_item i) : key(k), item(std::move(i)) {}

  std::string_view key;
  reader read;
  std::vector<entry> section;
  list_item item;
  bool required = false;
};

// How a value looks in an error message: 'abc', the quoted string "61613", a list, ...
std::string describe(const YAML::Node& node);
// The text of an unquoted scalar, or null: in YAML `port: "61613"` is a string, so it is not
// taken where a number or a boolean is expected.
const std::string* plain_scalar(const YAML::Node& node);

// Reads a decimal integer within [min, max]. A '-' sign and values beyond 64 bits are parsed
// (not rejected as "not an integer") so the range error can quote them.
std::string read_integer(const YAML::Node& node, std::uint64_t min, std::uint64_t max,
                         std::uint64_t& out);

template <typename T>
reader read_uint(T& out, std::uint64_t min = 0, std::uint64_t max = std::numeric_limits<T>::max()) {
  return [&out, min, max](const YAML::Node& node) {
    std::uint64_t value = 0;
    std::string error = read_integer(node, min, max, value);
    if (error.empty()) out = static_cast<T>(value);
    return error;
  };
}

// A size or count where zero would make the broker useless (every frame rejected, ...).
reader read_positive(std::size_t& out);
// A duration of at least `min` ms and at most a day (timers add it to the clock).
reader read_ms(std::chrono::milliseconds& out, std::uint64_t min);
// A retention age: compared with timestamps, never added to a clock, so up to 100 years.
reader read_retention_ms(std::chrono::milliseconds& out);
reader read_double(double& out, double min, double max);
// YAML 1.2 core schema booleans only: YAML 1.1's yes/no/on/off surprise people (`off` is
// also a log level), so they are rejected with a hint rather than guessed.
reader read_bool(bool& out);

// Checks a string value; returns "" when it is acceptable.
using string_check = std::string (*)(const std::string&);
std::string not_empty(const std::string& value);
// For settings where "" means "not set".
std::string any_string(const std::string&);
reader read_string(std::string& out, string_check check = not_empty);
// A list of strings; a single string is taken as a list of one.
reader read_string_list(std::vector<std::string>& out);
reader read_path(std::filesystem::path& out, string_check check = not_empty);

// Walks a document against the schema, collecting every problem rather than stopping.
class reader_context {
 public:
  reader_context(std::string_view file_name, std::vector<config_error>& errors)
      : file_name_(file_name), errors_(errors) {}

  void fail(const YAML::Mark& mark, std::string what);
  void read_mapping(const YAML::Node& node, const std::vector<entry>& keys,
                    const std::string& prefix);
  void read_list(const YAML::Node& key, const YAML::Node& value, const list_item& item,
                 const std::string& name);

 private:
  std::string_view file_name_;
  std::vector<config_error>& errors_;
};

}  // namespace broker::yaml_schema
