#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace storage {

// A record's headers as one blob, name\0value\0name\0value\0..., the way every store keeps
// them (the SQLite journal's column, a Redis stream entry's field). Neither part may hold a
// NUL: the record's contract, and STOMP forbids NUL in headers anyway.
void encode_headers(const std::vector<std::pair<std::string, std::string>>& headers,
                    std::string& out);
// The inverse; a blob that is not this encoding yields the headers that parsed.
std::vector<std::pair<std::string, std::string>> decode_headers(std::string_view blob);

}  // namespace storage
