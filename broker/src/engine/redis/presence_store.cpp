#include "engine/redis/presence_store.hpp"

#include "stomp/decimal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <utility>

namespace broker::redis {

namespace {

constexpr std::string_view library = R"lua(#!lua name=stompd_presence

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function announce(channel, kind, count, user)
  redis.call('PUBLISH', channel, 'presence ' .. kind .. ' ' .. count .. ' ' .. user)
end

-- Removes the entries nobody vouched for in time, and announces each user that had no other.
-- Returns the users present (a set) and how many.
local function sweep(key, channel, now)
  local all = redis.call('HGETALL', key)
  local users, gone, count = {}, {}, 0
  for i = 1, #all, 2 do
    local field = all[i]
    local user = string.sub(field, string.find(field, '\t', 1, true) + 1)
    if tonumber(all[i + 1]) < now then
      redis.call('HDEL', key, field)
      gone[#gone + 1] = user
    elseif not users[user] then
      users[user] = true
      count = count + 1
    end
  end
  local left = {}
  for _, user in ipairs(gone) do
    if not users[user] and not left[user] then left[user] = true; left[#left + 1] = user end
  end
  for i, user in ipairs(left) do announce(channel, 'leave', count + #left - i, user) end
  return users, count
end

-- KEYS: presence. ARGV: channel, node, user, timeout_ms. Returns the number present.
local function enter(keys, args)
  local key, channel, user, timeout = keys[1], args[1], args[3], tonumber(args[4])
  local now = now_ms()
  local users, count = sweep(key, channel, now)
  redis.call('HSET', key, args[2] .. '\t' .. user, now + timeout)
  redis.call('PEXPIRE', key, 2 * timeout)
  if not users[user] then
    count = count + 1
    announce(channel, 'join', count, user)
  end
  return count
end

-- KEYS: presence. ARGV: channel, node, user. Returns the number present.
local function leave(keys, args)
  local key, channel, user = keys[1], args[1], args[3]
  local had = redis.call('HDEL', key, args[2] .. '\t' .. user)
  local users, count = sweep(key, channel, now_ms())
  if had == 1 and not users[user] then announce(channel, 'leave', count, user) end
  return count
end

-- KEYS: presence. ARGV: channel, node, timeout_ms, users... Returns the number present. An
-- entry of the node's not renewed (a leave Redis missed while unreachable) times out.
local function renew(keys, args)
  local key, channel, node, timeout = keys[1], args[1], args[2], tonumber(args[3])
  local now = now_ms()
  for i = 4, #args do redis.call('HSET', key, node .. '\t' .. args[i], now + timeout) end
  local _, count = sweep(key, channel, now)
  redis.call('PEXPIRE', key, 2 * timeout)
  return count
end

-- KEYS: presence. ARGV: channel, limit. Returns {count, the first limit users sorted}.
local function members(keys, args)
  local users, count = sweep(keys[1], args[1], now_ms())
  local sorted = {}
  for user in pairs(users) do sorted[#sorted + 1] = user end
  table.sort(sorted)
  local limit = tonumber(args[2])
  while #sorted > limit do table.remove(sorted) end
  return {count, sorted}
end

redis.register_function('stompd_presence_enter', enter)
redis.register_function('stompd_presence_leave', leave)
redis.register_function('stompd_presence_renew', renew)
redis.register_function('stompd_presence_members', members)
)lua";

auto counted(std::string_view function, std::function<void(presence_store::present)> done) {
  return [function, done = std::move(done)](boost::system::error_code ec, reply r) {
    presence_store::present out;
    if (failed(ec, r, function, out)) return done(std::move(out));
    if (r.kind == reply::type::integer && r.integer >= 0)
      out.count = static_cast<std::size_t>(r.integer);
    else
      out.ec = errc::bad_reply;
    done(std::move(out));
  };
}

}  // namespace

std::string presence_store::key(std::string_view destination) const {
  return fmt::format("{{{}{}}}:presence", prefix_, destination);
}

void presence_store::load(connection& c,
                          std::function<void(boost::system::error_code, std::string)> done) const {
  load_functions(c, library, std::move(done));
}

void presence_store::enter(connection& c, std::string_view destination, std::string_view channel,
                           std::string_view node, std::string_view user,
                           std::function<void(present)> done) const {
  c.command({"FCALL", "stompd_presence_enter", "1", key(destination), std::string(channel),
             std::string(node), std::string(user), std::to_string(timeout_.count())},
            counted("stompd_presence_enter", std::move(done)));
}

void presence_store::leave(connection& c, std::string_view destination, std::string_view channel,
                           std::string_view node, std::string_view user) const {
  c.command({"FCALL", "stompd_presence_leave", "1", key(destination), std::string(channel),
             std::string(node), std::string(user)},
            nullptr);
}

void presence_store::renew(connection& c, std::string_view destination, std::string_view channel,
                           std::string_view node, const std::vector<std::string>& users) const {
  for (std::size_t from = 0; from < users.size(); from += max_users_per_call) {
    const auto to = std::min(users.size(), from + max_users_per_call);
    std::vector<std::string> args = {"FCALL",
                                     "stompd_presence_renew",
                                     "1",
                                     key(destination),
                                     std::string(channel),
                                     std::string(node),
                                     std::to_string(timeout_.count())};
    args.insert(args.end(), users.begin() + static_cast<std::ptrdiff_t>(from),
                users.begin() + static_cast<std::ptrdiff_t>(to));
    c.command(args, nullptr);
  }
}

void presence_store::members(connection& c, std::string_view destination, std::string_view channel,
                             std::size_t limit, std::function<void(present)> done) const {
  c.command({"FCALL", "stompd_presence_members", "1", key(destination), std::string(channel),
             std::to_string(limit)},
            [done = std::move(done)](boost::system::error_code ec, reply r) {
              present out;
              if (failed(ec, r, "stompd_presence_members", out)) return done(std::move(out));
              if (r.kind != reply::type::array || r.elements.size() != 2 ||
                  r.elements[0].kind != reply::type::integer) {
                out.ec = errc::bad_reply;
                return done(std::move(out));
              }
              out.count = static_cast<std::size_t>(r.elements[0].integer);
              for (auto& m : r.elements[1].elements) out.members.push_back(std::move(m.str));
              done(std::move(out));
            });
}

std::optional<presence_store::event> presence_store::parse_event(std::string_view payload) {
  constexpr std::string_view tag = "presence ";
  if (!payload.starts_with(tag)) return std::nullopt;
  payload.remove_prefix(tag.size());
  const auto sp1 = payload.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : payload.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return std::nullopt;
  event e;
  e.kind = std::string(payload.substr(0, sp1));
  const auto n = stomp::parse_decimal<std::size_t>(payload.substr(sp1 + 1, sp2 - sp1 - 1));
  if ((e.kind != "join" && e.kind != "leave") || !n) return std::nullopt;
  e.count = *n;
  e.user = std::string(payload.substr(sp2 + 1));
  return e;
}

}  // namespace broker::redis
