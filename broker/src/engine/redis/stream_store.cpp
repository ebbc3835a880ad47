#include "engine/redis/stream_store.hpp"

#include "storage/header_codec.hpp"

#include <fmt/format.h>

#include <charconv>
#include <utility>

namespace broker::redis {

namespace {

// The server-side half (Redis 7 functions, Lua). Scripts' writes are not rolled back when a
// later command fails, so everything that can fail is checked before the first write.
constexpr std::string_view library = R"lua(#!lua name=stompd

-- The x-seq a destination continues from when its meta hash is missing but its stream is
-- not (the hash was deleted or evicted): the stream's last id, so no x-seq is given twice.
local function last_seq_of(log)
  if redis.call('EXISTS', log) == 0 then return 0 end
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return tonumber(string.match(info[i + 1], '^(%d+)-')) or 0
    end
  end
  return 0
end

-- KEYS: log, meta. ARGV: channel, max_messages (0: no limit), new_epoch, headers, body.
-- Returns {seq, timestamp_ms, epoch}.
local function append(keys, args)
  local log, meta = keys[1], keys[2]
  local channel, max_messages, headers, body = args[1], tonumber(args[2]), args[4], args[5]
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = args[3]
    redis.call('HSET', meta, 'epoch', epoch, 'seq', last_seq_of(log), 'ts', 0)
  end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local now = redis.call('TIME')
  local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local newest = tonumber(redis.call('HGET', meta, 'ts')) or 0
  if ts < newest then ts = newest end  -- a clock stepped back repeats the newest
  redis.call('HSET', meta, 'ts', ts)
  local id = seq .. '-0'
  if max_messages > 0 then
    redis.call('XADD', log, 'MAXLEN', max_messages, id, 't', ts, 'h', headers, 'b', body)
  else
    redis.call('XADD', log, id, 't', ts, 'h', headers, 'b', body)
  end
  redis.call('PUBLISH', channel,
             string.format('%d %d %s %d\n', seq, ts, epoch, #headers) .. headers .. body)
  return {seq, ts, epoch}
end

-- KEYS: log, meta. ARGV: after (x-seq, exclusive), count. Returns {head, epoch, entries}.
local function read_after(keys, args)
  local head = tonumber(redis.call('HGET', keys[2], 'seq')) or 0
  local epoch = redis.call('HGET', keys[2], 'epoch') or ''
  local entries = redis.call('XRANGE', keys[1], '(' .. args[1] .. '-0', '+', 'COUNT', args[2])
  return {head, epoch, entries}
end

redis.register_function('stompd_append', append)
redis.register_function{function_name = 'stompd_read_after', callback = read_after,
                        flags = {'no-writes'}}
)lua";

bool to_u64(std::string_view s, std::uint64_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
}

// A Redis error reply, or the transport's error, as what the caller gets; `function` names
// what was called ("stompd_append: ERR Function not found").
template <typename Result>
bool failed(boost::system::error_code ec, const reply& r, std::string_view function, Result& out) {
  if (ec) {
    out.ec = ec;
    return true;
  }
  if (r.is_error()) {
    out.ec = errc::server_error;
    out.error = fmt::format("{}: {}", function, r.str);
    return true;
  }
  return false;
}

// One XRANGE entry: ["<seq>-0", ["t", ts, "h", headers, "b", body]].
bool parse_entry(const reply& e, std::string_view destination, storage::record& out) {
  if (e.kind != reply::type::array || e.elements.size() != 2 ||
      e.elements[1].kind != reply::type::array)
    return false;
  const auto& id = e.elements[0].str;
  if (!to_u64(std::string_view(id).substr(0, id.find('-')), out.seq)) return false;
  out.destination = std::string(destination);
  const auto& fields = e.elements[1].elements;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    const auto& name = fields[i].str;
    const auto& value = fields[i + 1].str;
    if (name == "t") {
      std::uint64_t t = 0;
      if (!to_u64(value, t)) return false;
      out.timestamp_ms = static_cast<std::int64_t>(t);
    } else if (name == "h") {
      out.headers = storage::decode_headers(value);
    } else if (name == "b") {
      out.body = value;
    }
  }
  return true;
}

}  // namespace

std::string stream_store::log_key(std::string_view destination) const {
  return fmt::format("{{{}{}}}:log", prefix_, destination);
}
std::string stream_store::meta_key(std::string_view destination) const {
  return fmt::format("{{{}{}}}:meta", prefix_, destination);
}
std::string stream_store::channel(std::string_view destination) const {
  return fmt::format("{{{}{}}}:new", prefix_, destination);
}

std::optional<stream_store::announcement> stream_store::parse_announcement(
    std::string_view payload) {
  // "<seq> <timestamp_ms> <epoch> <header bytes>\n" <headers> <body>
  const auto eol = payload.find('\n');
  if (eol == std::string_view::npos) return std::nullopt;
  std::string_view head = payload.substr(0, eol);
  std::string_view fields[4];
  for (auto& f : fields) {
    const auto sp = head.find(' ');
    f = head.substr(0, sp);
    head = sp == std::string_view::npos ? std::string_view{} : head.substr(sp + 1);
  }
  announcement a;
  std::uint64_t ts = 0, header_bytes = 0;
  if (!head.empty() || !to_u64(fields[0], a.record.seq) || !to_u64(fields[1], ts) ||
      fields[2].empty() || !to_u64(fields[3], header_bytes))
    return std::nullopt;
  const auto rest = payload.substr(eol + 1);
  if (header_bytes > rest.size()) return std::nullopt;
  a.record.timestamp_ms = static_cast<std::int64_t>(ts);
  a.epoch = std::string(fields[2]);
  a.record.headers = storage::decode_headers(rest.substr(0, header_bytes));
  a.record.body = std::string(rest.substr(header_bytes));
  return a;
}

void stream_store::load(connection& c,
                        std::function<void(boost::system::error_code, std::string)> done) const {
  c.command({"FUNCTION", "LOAD", "REPLACE", std::string(library)},
            [done = std::move(done)](boost::system::error_code ec, reply r) {
              if (!ec && r.is_error()) return done(errc::server_error, r.str);
              done(ec, {});
            });
}

void stream_store::append(connection& c, const storage::record& r, std::uint64_t max_messages,
                          std::string_view new_epoch, append_handler done) const {
  std::string headers;
  storage::encode_headers(r.headers, headers);
  c.command({"FCALL", "stompd_append", "2", log_key(r.destination), meta_key(r.destination),
             channel(r.destination), std::to_string(max_messages), std::string(new_epoch),
             std::move(headers), r.body},
            [done = std::move(done)](boost::system::error_code ec, reply rep) {
              appended out;
              if (failed(ec, rep, "stompd_append", out)) return done(std::move(out));
              if (rep.kind != reply::type::array || rep.elements.size() != 3 ||
                  rep.elements[0].kind != reply::type::integer ||
                  rep.elements[1].kind != reply::type::integer) {
                out.ec = errc::bad_reply;
                return done(std::move(out));
              }
              out.seq = static_cast<std::uint64_t>(rep.elements[0].integer);
              out.timestamp_ms = rep.elements[1].integer;
              out.epoch = std::move(rep.elements[2].str);
              done(std::move(out));
            });
}

void stream_store::read_after(connection& c, std::string_view destination, std::uint64_t after,
                              std::size_t limit, history_handler done) const {
  c.command({"FCALL_RO", "stompd_read_after", "2", log_key(destination), meta_key(destination),
             std::to_string(after), std::to_string(limit)},
            [done = std::move(done), destination = std::string(destination)](
                boost::system::error_code ec, reply rep) {
              history out;
              if (failed(ec, rep, "stompd_read_after", out)) return done(std::move(out));
              if (rep.kind != reply::type::array || rep.elements.size() != 3 ||
                  rep.elements[2].kind != reply::type::array) {
                out.ec = errc::bad_reply;
                return done(std::move(out));
              }
              out.head_seq = static_cast<std::uint64_t>(rep.elements[0].integer);
              out.epoch = std::move(rep.elements[1].str);
              for (const auto& e : rep.elements[2].elements) {
                storage::record r;
                if (!parse_entry(e, destination, r)) {
                  out.ec = errc::bad_reply;
                  return done(std::move(out));
                }
                out.records.push_back(std::move(r));
              }
              done(std::move(out));
            });
}

}  // namespace broker::redis
