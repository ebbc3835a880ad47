#include "storage/header_codec.hpp"

#include <algorithm>
#include <cassert>

namespace storage {

void encode_headers(const std::vector<std::pair<std::string, std::string>>& headers,
                    std::string& out) {
  out.clear();
  for (const auto& [name, value] : headers) {
    assert(name.find('\0') == std::string::npos && value.find('\0') == std::string::npos);
    out.append(name).push_back('\0');
    out.append(value).push_back('\0');
  }
}

std::vector<std::pair<std::string, std::string>> decode_headers(std::string_view blob) {
  std::vector<std::pair<std::string, std::string>> headers;
  while (!blob.empty()) {
    const auto name_end = blob.find('\0');
    if (name_end == std::string_view::npos) break;  // not our encoding: keep what parsed
    const auto name = blob.substr(0, name_end);
    blob.remove_prefix(name_end + 1);
    const auto value_end = std::min(blob.find('\0'), blob.size());
    headers.emplace_back(name, blob.substr(0, value_end));
    blob.remove_prefix(std::min(value_end + 1, blob.size()));
  }
  return headers;
}

}  // namespace storage
