#include "routing/presence.hpp"

#include <algorithm>

namespace broker {

std::optional<std::size_t> presence::enter(std::string_view destination, std::string_view user) {
  auto& sh = shard_for(destination);
  std::lock_guard lock(sh.mutex);
  auto room = sh.rooms.find(destination);
  if (room == sh.rooms.end())
    room = sh.rooms.emplace(std::string(destination), string_map<std::size_t>{}).first;
  auto it = room->second.find(user);
  if (it != room->second.end()) {
    ++it->second;
    return std::nullopt;
  }
  room->second.emplace(std::string(user), 1);
  return room->second.size();
}

std::optional<std::size_t> presence::leave(std::string_view destination, std::string_view user) {
  auto& sh = shard_for(destination);
  std::lock_guard lock(sh.mutex);
  auto room = sh.rooms.find(destination);
  if (room == sh.rooms.end()) return std::nullopt;
  auto it = room->second.find(user);
  if (it == room->second.end() || --it->second > 0) return std::nullopt;
  room->second.erase(it);
  const auto left = room->second.size();
  if (left == 0) sh.rooms.erase(room);
  return left;
}

std::size_t presence::count(std::string_view destination) const {
  const auto& sh = shard_for(destination);
  std::lock_guard lock(sh.mutex);
  auto room = sh.rooms.find(destination);
  return room == sh.rooms.end() ? 0 : room->second.size();
}

std::vector<std::string> presence::members(std::string_view destination, std::size_t limit) const {
  std::vector<std::string> out;
  {
    const auto& sh = shard_for(destination);
    std::lock_guard lock(sh.mutex);
    auto room = sh.rooms.find(destination);
    if (room == sh.rooms.end()) return out;
    out.reserve(room->second.size());
    for (const auto& [user, n] : room->second) out.push_back(user);
  }
  std::ranges::sort(out);
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::vector<std::pair<std::string, std::vector<std::string>>> presence::rooms() const {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& sh : shards_) {
    std::lock_guard lock(sh.mutex);
    for (const auto& [destination, users] : sh.rooms) {
      auto& room = out.emplace_back(destination, std::vector<std::string>{});
      room.second.reserve(users.size());
      for (const auto& [user, n] : users) room.second.push_back(user);
    }
  }
  return out;
}

}  // namespace broker
