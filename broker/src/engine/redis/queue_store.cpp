#include "engine/redis/queue_store.hpp"

#include "storage/header_codec.hpp"

#include <fmt/format.h>

#include <utility>

namespace broker::redis {

namespace {

constexpr std::string_view library = R"lua(#!lua name=stompd_queues

local group = 'stompd'

-- KEYS: queue. ARGV: channel, max_waiting, headers, body. Returns the entry's id, or 0 when
-- max_waiting messages already wait (those held by a consumer not counted) and nothing was
-- stored.
local function enqueue(keys, args)
  local q = keys[1]
  if redis.call('EXISTS', q) == 0 then
    redis.call('XGROUP', 'CREATE', q, group, '0', 'MKSTREAM')
  end
  local held = redis.call('XPENDING', q, group)[1]
  if redis.call('XLEN', q) - held >= tonumber(args[2]) then return 0 end
  local id = redis.call('XADD', q, '*', 'h', args[3], 'b', args[4])
  redis.call('PUBLISH', args[1], '')
  return id
end

-- KEYS: queue. ARGV: consumer, count, redelivery_ms. Returns {claimed, fresh}: up to count
-- entries, first those no consumer renewed for redelivery_ms (its node gone, or they were
-- given back), then new ones. Both enter the consumer's pending list.
local function take(keys, args)
  local q, consumer, count, idle = keys[1], args[1], tonumber(args[2]), args[3]
  if redis.call('EXISTS', q) == 0 then return {{}, {}} end
  local claimed = {}
  local stale = redis.call('XPENDING', q, group, 'IDLE', idle, '-', '+', count)
  if #stale > 0 then
    local ids = {}
    for i, p in ipairs(stale) do ids[i] = p[1] end
    for _, e in ipairs(redis.call('XCLAIM', q, group, consumer, idle, unpack(ids))) do
      if e then claimed[#claimed + 1] = e end  -- deleted entries leave the pending list
    end
  end
  local fresh = {}
  if #claimed < count then
    local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count - #claimed,
                         'STREAMS', q, '>')
    if r then fresh = r[1][2] end
  end
  return {claimed, fresh}
end

-- KEYS: queue. ARGV: ids. Acknowledged: out of the pending list and the stream at once, so
-- the stream holds exactly what is not acknowledged.
local function settle(keys, args)
  redis.call('XACK', keys[1], group, unpack(args))
  return redis.call('XDEL', keys[1], unpack(args))
end

redis.register_function('stompd_enqueue', enqueue)
redis.register_function('stompd_take', take)
redis.register_function('stompd_settle', settle)
)lua";

constexpr std::string_view group = "stompd";
// What give_back() marks as idle: longer than any redelivery timeout, shorter than the
// clock (Redis treats an idle time before the epoch as none).
constexpr std::string_view given_back_idle_ms = "604800000";

// One stream entry: ["<id>", ["h", headers, "b", body]].
bool parse_entry(const reply& e, bool redelivered, queue_store::entry& out) {
  if (e.kind != reply::type::array || e.elements.size() != 2 ||
      e.elements[1].kind != reply::type::array)
    return false;
  out.id = e.elements[0].str;
  out.redelivered = redelivered;
  const auto& fields = e.elements[1].elements;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields[i].str == "h")
      out.headers = storage::decode_headers(fields[i + 1].str);
    else if (fields[i].str == "b")
      out.body = fields[i + 1].str;
  }
  return !out.id.empty();
}

std::vector<std::string> with_ids(std::vector<std::string> args,
                                  const std::vector<std::string>& ids) {
  args.insert(args.end(), ids.begin(), ids.end());
  return args;
}

auto only_errors(std::function<void(boost::system::error_code)> done) {
  return [done = std::move(done)](boost::system::error_code ec, reply r) {
    if (!ec && r.is_error()) ec = errc::server_error;
    if (done) done(ec);
  };
}

}  // namespace

std::string queue_store::key(std::string_view destination) const {
  return fmt::format("{{{}{}}}:queue", prefix_, destination);
}
std::string queue_store::channel(std::string_view destination) const {
  return fmt::format("{{{}{}}}:ready", prefix_, destination);
}

void queue_store::load(connection& c,
                       std::function<void(boost::system::error_code, std::string)> done) const {
  load_functions(c, library, std::move(done));
}

void queue_store::enqueue(connection& c, std::string_view destination, const header_list& headers,
                          std::string_view body, std::size_t max_waiting,
                          std::function<void(queued)> done) const {
  std::string encoded;
  storage::encode_headers(headers, encoded);
  c.command({"FCALL", "stompd_enqueue", "1", key(destination), channel(destination),
             std::to_string(max_waiting), std::move(encoded), std::string(body)},
            [done = std::move(done)](boost::system::error_code ec, reply r) {
              queued out;
              if (failed(ec, r, "stompd_enqueue", out)) return done(std::move(out));
              if (r.kind == reply::type::integer && r.integer == 0)
                out.full = true;
              else if (r.kind == reply::type::string)
                out.id = std::move(r.str);
              else
                out.ec = errc::bad_reply;
              done(std::move(out));
            });
}

void queue_store::take(connection& c, std::string_view destination, std::string_view consumer,
                       std::size_t count, std::chrono::milliseconds redelivery,
                       std::function<void(taken)> done) const {
  c.command({"FCALL", "stompd_take", "1", key(destination), std::string(consumer),
             std::to_string(count), std::to_string(redelivery.count())},
            [done = std::move(done)](boost::system::error_code ec, reply r) {
              taken out;
              if (failed(ec, r, "stompd_take", out)) return done(std::move(out));
              bool ok = r.kind == reply::type::array && r.elements.size() == 2;
              for (std::size_t part = 0; ok && part < 2; ++part) {
                const auto& list = r.elements[part];
                if (list.kind != reply::type::array) {
                  ok = list.kind == reply::type::nil;
                  continue;
                }
                for (const auto& e : list.elements)
                  ok = ok && parse_entry(e, part == 0, out.entries.emplace_back());
              }
              if (!ok) {
                out.entries.clear();
                out.ec = errc::bad_reply;
              }
              done(std::move(out));
            });
}

void queue_store::settle(connection& c, std::string_view destination,
                         const std::vector<std::string>& ids,
                         std::function<void(boost::system::error_code)> done) const {
  c.command(with_ids({"FCALL", "stompd_settle", "1", key(destination)}, ids),
            only_errors(std::move(done)));
}

void queue_store::touch(connection& c, std::string_view destination, std::string_view consumer,
                        const std::vector<std::string>& ids,
                        std::function<void(boost::system::error_code)> done) const {
  auto args =
      with_ids({"XCLAIM", key(destination), std::string(group), std::string(consumer), "0"}, ids);
  args.emplace_back("JUSTID");
  c.command(args, only_errors(std::move(done)));
}

void queue_store::give_back(connection& c, std::string_view destination, std::string_view consumer,
                            const std::vector<std::string>& ids,
                            std::function<void(boost::system::error_code)> done) const {
  auto args =
      with_ids({"XCLAIM", key(destination), std::string(group), std::string(consumer), "0"}, ids);
  args.insert(args.end(), {"IDLE", std::string(given_back_idle_ms), "JUSTID"});
  c.command(args, only_errors(nullptr));
  c.command({"PUBLISH", channel(destination), ""}, only_errors(std::move(done)));
}

}  // namespace broker::redis
