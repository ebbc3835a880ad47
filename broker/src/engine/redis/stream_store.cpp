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

local function seq_of(id) return tonumber(string.match(id, '^(%d+)-')) end

-- The t field of an entry's field list (t, h, b as XADD wrote them).
local function ts_of(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 't' then return tonumber(fields[i + 1]) end
  end
  return 0
end

-- Before an entry is added to a stream kept to `keep` entries: removes the oldest beyond
-- keep - 1 and remembers the newest removed (lost_seq, lost_ts), so a replay that asks for
-- them knows it is not complete.
local function trim_for_one_more(log, meta, keep)
  local excess = redis.call('XLEN', log) - keep + 1
  if excess <= 0 then return end
  local gone = redis.call('XRANGE', log, '-', '+', 'COUNT', excess)
  local newest = gone[#gone]
  redis.call('HSET', meta, 'lost_seq', seq_of(newest[1]), 'lost_ts', ts_of(newest[2]))
  redis.call('XTRIM', log, 'MINID', (seq_of(newest[1]) + 1) .. '-0')
end

-- Removes the entries older than `cutoff` (Unix ms), at most `chunks` x 100 of them, and
-- remembers the newest removed. Oldest first, so it stops at the first one to keep.
local function trim_older_than(log, meta, cutoff, chunks)
  for _ = 1, chunks do
    local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 100)
    local last_gone = nil
    for _, e in ipairs(oldest) do
      if ts_of(e[2]) >= cutoff then break end
      last_gone = e
    end
    if not last_gone then return end
    redis.call('HSET', meta, 'lost_seq', seq_of(last_gone[1]), 'lost_ts', ts_of(last_gone[2]))
    redis.call('XTRIM', log, 'MINID', (seq_of(last_gone[1]) + 1) .. '-0')
    if last_gone ~= oldest[#oldest] then return end
  end
end

-- KEYS: log, meta, key (the idempotency key's). ARGV: channel, max_messages (0: no limit),
-- new_epoch, headers, body, seen_epoch, seen_seq (the newest x-seq the caller has seen
-- stored, in that epoch; '', 0: none), max_age_ms (0: no limit), key_window_ms (0: no
-- idempotency key). Returns {seq, timestamp_ms, epoch, duplicate (0/1)}: a key stored within
-- its window returns what it was stored with, and nothing is stored or announced.
local function append(keys, args)
  local log, meta, key = keys[1], keys[2], keys[3]
  local key_window = tonumber(args[9]) or 0
  if key_window > 0 then
    local first = redis.call('GET', key)
    if first then
      local s, t, e = string.match(first, '^(%d+) (%d+) (.*)$')
      return {tonumber(s), tonumber(t), e, 1}
    end
  end
  local channel, max_messages, headers, body = args[1], tonumber(args[2]), args[4], args[5]
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = args[3]
    local last = last_seq_of(log)
    redis.call('HSET', meta, 'epoch', epoch, 'seq', last, 'ts', 0, 'since', last + 1)
  elseif epoch == args[6] and (tonumber(redis.call('HGET', meta, 'seq')) or 0) < tonumber(args[7]) then
    -- The caller saw x-seqs this Redis no longer has (a failover lost acknowledged writes):
    -- giving them out again in this epoch would make new messages read as already seen.
    epoch = args[3]
    local seq = math.max(tonumber(redis.call('HGET', meta, 'seq')) or 0, last_seq_of(log))
    redis.call('HSET', meta, 'epoch', epoch, 'seq', seq, 'since', seq + 1)
  end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local now = redis.call('TIME')
  local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local newest = tonumber(redis.call('HGET', meta, 'ts')) or 0
  if ts < newest then ts = newest end  -- a clock stepped back repeats the newest
  redis.call('HSET', meta, 'ts', ts)
  if max_messages > 0 then trim_for_one_more(log, meta, max_messages) end
  -- Age retention as messages arrive, a bounded step each time; replays hide what is due
  -- and not yet removed.
  local max_age = tonumber(args[8]) or 0
  if max_age > 0 then trim_older_than(log, meta, ts - max_age, 10) end
  redis.call('XADD', log, seq .. '-0', 't', ts, 'h', headers, 'b', body)
  redis.call('PUBLISH', channel,
             string.format('%d %d %s %d\n', seq, ts, epoch, #headers) .. headers .. body)
  if key_window > 0 then redis.call('SET', key, seq .. ' ' .. ts .. ' ' .. epoch, 'PX', key_window) end
  return {seq, ts, epoch, 0}
end

-- KEYS: log, meta. ARGV: after (x-seq, exclusive), count. Returns {head, epoch, entries}.
-- Entries below the epoch's first x-seq (`since`) belong to an earlier epoch, whose numbers
-- mean other messages: they are not read as this epoch's.
local function epoch_start(meta)
  return tonumber(redis.call('HGET', meta, 'since')) or 1
end

local function read_after(keys, args)
  local head = tonumber(redis.call('HGET', keys[2], 'seq')) or 0
  local epoch = redis.call('HGET', keys[2], 'epoch') or ''
  local since = epoch_start(keys[2])
  local after = math.max(tonumber(args[1]), since - 1)
  local entries = redis.call('XRANGE', keys[1], '(' .. after .. '-0', '+', 'COUNT', args[2])
  return {head, epoch, entries, since}
end

-- The oldest x-seq stored with a timestamp at or after `since`, looking back from the head
-- over at most `bound` entries (more than a replay may return: then it is cut anyway).
local function first_since(log, head, since, bound)
  local first = head + 1
  local top = '+'
  local seen = 0
  while seen < bound do
    local chunk = redis.call('XREVRANGE', log, top, '-', 'COUNT', 256)
    if #chunk == 0 then break end
    for _, e in ipairs(chunk) do
      if ts_of(e[2]) < since then return first end
      first = seq_of(e[1])
      seen = seen + 1
    end
    top = '(' .. chunk[#chunk][1]
  end
  return first
end

-- KEYS: log, meta. ARGV: mode (last, after, since, page, before), value, max_messages,
-- max_bytes, epoch (the one `value` was seen in, for after, page and before; '' when not
-- said), max_age_ms (0: no limit: older messages count as removed by retention), limit
-- (before: how many; 0: max_messages).
-- Returns {head, epoch, complete (0/1), entries oldest first, older (0/1: before, messages
-- older than those returned are stored)}: the same answer as the SQLite journal's
-- read_history, read in one atomic step so it ends exactly at head.
local function replay(keys, args)
  local log, meta = keys[1], keys[2]
  local mode, value = args[1], tonumber(args[2])
  local max_messages, max_bytes = tonumber(args[3]), tonumber(args[4])
  local cutoff = 0
  local max_age = tonumber(args[6]) or 0
  if max_age > 0 then
    local now = redis.call('TIME')
    cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - max_age
  end
  local head = tonumber(redis.call('HGET', meta, 'seq')) or 0
  local epoch = redis.call('HGET', meta, 'epoch') or ''
  local lost_seq = tonumber(redis.call('HGET', meta, 'lost_seq')) or 0
  local lost_ts = tonumber(redis.call('HGET', meta, 'lost_ts')) or 0
  -- Another epoch's x-seq numbers other messages: read everything, and say it may not be all.
  local other_epoch = (mode == 'after' or mode == 'page' or mode == 'before') and
                      args[5] ~= '' and args[5] ~= epoch
  -- This epoch's history starts at its first x-seq: nothing before it is asked for.
  local start = epoch_start(meta)
  if other_epoch then value = (mode == 'before') and head + 1 or 0 end
  local wanted, top, lost = 0, head, other_epoch
  if mode == 'last' then
    wanted = math.max(0, math.min(value, head - start + 1))
  elseif mode == 'after' then
    value = math.max(value, start - 1)
    if value < head then wanted = head - value end
  elseif mode == 'page' then
    value = math.max(value, start - 1)
    if value < head then wanted = math.min(head - value, max_messages) end
    top = value + wanted
    lost = lost or lost_seq > value
  elseif mode == 'before' then
    top = math.min(head, value - 1)
    local limit = tonumber(args[7]) or 0
    if limit == 0 or limit > max_messages then limit = max_messages end
    wanted = math.max(0, math.min(top - start + 1, limit))
  else
    lost = lost_seq > 0 and lost_ts >= value
    wanted = head - math.max(start, first_since(log, head, value, max_messages + 1)) + 1
  end
  -- Newest first, so the caps keep the newest: a replay stays contiguous with live messages.
  local take = math.min(wanted, max_messages)
  local entries = {}
  if take > 0 then
    local expected, bytes = top, 0
    local range = redis.call('XREVRANGE', log, top .. '-0', (top - take + 1) .. '-0', 'COUNT', take)
    for _, e in ipairs(range) do
      if seq_of(e[1]) ~= expected then break end  -- removed below here
      if ts_of(e[2]) < cutoff then break end      -- due for removal: as good as removed
      local size = 0
      for i = 1, #e[2], 2 do
        if e[2][i] ~= 't' then size = size + #e[2][i + 1] end
      end
      if bytes + size > max_bytes then break end
      bytes = bytes + size
      entries[#entries + 1] = e
      expected = expected - 1
    end
  end
  local oldest_first = {}
  for i = #entries, 1, -1 do oldest_first[#oldest_first + 1] = entries[i] end
  local complete = (not lost) and #entries == wanted
  local older = 0
  if mode == 'before' then
    local below = top
    if #entries > 0 then below = seq_of(entries[#entries][1]) - 1 end
    if below >= start then
      local e = redis.call('XREVRANGE', log, below .. '-0', '-', 'COUNT', 1)
      if #e > 0 and seq_of(e[1][1]) >= start and ts_of(e[1][2]) >= cutoff then older = 1 end
    end
  end
  return {head, epoch, complete and 1 or 0, oldest_first, older}
end

-- KEYS: log, meta. Returns {head, stored, oldest_ms, newest_ms} (0s when nothing is stored).
local function stats(keys)
  local head = tonumber(redis.call('HGET', keys[2], 'seq')) or 0
  local oldest = redis.call('XRANGE', keys[1], '-', '+', 'COUNT', 1)
  local newest = redis.call('XREVRANGE', keys[1], '+', '-', 'COUNT', 1)
  local oldest_ms, newest_ms = 0, 0
  if #oldest > 0 then oldest_ms = ts_of(oldest[1][2]) end
  if #newest > 0 then newest_ms = ts_of(newest[1][2]) end
  return {head, redis.call('XLEN', keys[1]), oldest_ms, newest_ms}
end

-- KEYS: log, meta. Deletes the stored messages but keeps the numbering (a purged
-- destination continues from its head). Returns how many were deleted.
local function purge(keys)
  local n = redis.call('XLEN', keys[1])
  if n > 0 then
    local newest = redis.call('XREVRANGE', keys[1], '+', '-', 'COUNT', 1)
    redis.call('HSET', keys[2], 'lost_seq', seq_of(newest[1][1]), 'lost_ts', ts_of(newest[1][2]))
    redis.call('DEL', keys[1])
  end
  return n
end

redis.register_function('stompd_append', append)
redis.register_function('stompd_purge', purge)
redis.register_function{function_name = 'stompd_replay', callback = replay,
                        flags = {'no-writes'}}
redis.register_function{function_name = 'stompd_stats', callback = stats, flags = {'no-writes'}}
redis.register_function{function_name = 'stompd_read_after', callback = read_after,
                        flags = {'no-writes'}}
)lua";

bool to_u64(std::string_view s, std::uint64_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
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

// XRANGE's answer: an array of entries.
bool parse_entries(const reply& list, std::string_view destination,
                   std::vector<storage::record>& out) {
  if (list.kind != reply::type::array) return false;
  for (const auto& e : list.elements)
    if (!parse_entry(e, destination, out.emplace_back())) return false;
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
  load_functions(c, library, std::move(done));
}

void stream_store::append(connection& c, const storage::record& r, std::uint64_t max_messages,
                          std::string_view new_epoch, append_handler done) const {
  append(c, r, max_messages, new_epoch, {}, std::move(done));
}

void stream_store::append(connection& c, const storage::record& r, std::uint64_t max_messages,
                          std::string_view new_epoch, const seen& known,
                          append_handler done) const {
  std::string headers;
  storage::encode_headers(r.headers, headers);
  const bool keyed = !r.idempotency_key.empty();
  c.command({"FCALL", "stompd_append", "3", log_key(r.destination), meta_key(r.destination),
             fmt::format("{{{}{}}}:key:{}", prefix_, r.destination, r.idempotency_key),
             channel(r.destination), std::to_string(max_messages), std::string(new_epoch),
             std::move(headers), r.body, std::string(known.epoch), std::to_string(known.seq),
             std::to_string(known.max_age.count()),
             std::to_string(keyed ? idempotency_window_.count() : 0)},
            [done = std::move(done)](boost::system::error_code ec, reply rep) {
              appended out;
              if (failed(ec, rep, "stompd_append", out)) return done(std::move(out));
              if (rep.kind != reply::type::array || rep.elements.size() != 4 ||
                  rep.elements[0].kind != reply::type::integer ||
                  rep.elements[1].kind != reply::type::integer) {
                out.ec = errc::bad_reply;
                return done(std::move(out));
              }
              out.seq = static_cast<std::uint64_t>(rep.elements[0].integer);
              out.timestamp_ms = rep.elements[1].integer;
              out.epoch = std::move(rep.elements[2].str);
              out.duplicate = rep.elements[3].integer != 0;
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
              if (rep.kind != reply::type::array || rep.elements.size() != 4 ||
                  rep.elements[2].kind != reply::type::array) {
                out.ec = errc::bad_reply;
                return done(std::move(out));
              }
              out.head_seq = static_cast<std::uint64_t>(rep.elements[0].integer);
              out.epoch = std::move(rep.elements[1].str);
              out.epoch_start = static_cast<std::uint64_t>(rep.elements[3].integer);
              if (!parse_entries(rep.elements[2], destination, out.records))
                out.ec = errc::bad_reply;
              done(std::move(out));
            });
}

void stream_store::replay(connection& c, const storage::replay_request& r,
                          history_handler done) const {
  replay(c, r, std::chrono::milliseconds(0), std::move(done));
}

void stream_store::replay(connection& c, const storage::replay_request& r,
                          std::chrono::milliseconds max_age, history_handler done) const {
  using kind = storage::replay_request::kind;
  const char* mode = r.mode == kind::last     ? "last"
                     : r.mode == kind::after  ? "after"
                     : r.mode == kind::page   ? "page"
                     : r.mode == kind::before ? "before"
                                              : "since";
  c.command(
      {"FCALL_RO", "stompd_replay", "2", log_key(r.destination), meta_key(r.destination), mode,
       std::to_string(r.value), std::to_string(r.max_messages), std::to_string(r.max_bytes),
       r.epoch, std::to_string(max_age.count()), std::to_string(r.limit)},
      [done = std::move(done), destination = r.destination](boost::system::error_code ec,
                                                            reply rep) {
        history out;
        if (failed(ec, rep, "stompd_replay", out)) return done(std::move(out));
        if (rep.kind != reply::type::array || rep.elements.size() != 5 ||
            rep.elements[0].kind != reply::type::integer ||
            rep.elements[2].kind != reply::type::integer ||
            !parse_entries(rep.elements[3], destination, out.records)) {
          out.records.clear();
          out.ec = errc::bad_reply;
          return done(std::move(out));
        }
        out.head_seq = static_cast<std::uint64_t>(rep.elements[0].integer);
        out.epoch = std::move(rep.elements[1].str);
        out.complete = rep.elements[2].integer != 0;
        out.older = rep.elements[4].integer != 0;
        done(std::move(out));
      });
}

void stream_store::stats_of(connection& c, std::string_view destination,
                            std::function<void(stats)> done) const {
  c.command({"FCALL_RO", "stompd_stats", "2", log_key(destination), meta_key(destination)},
            [done = std::move(done), destination = std::string(destination)](
                boost::system::error_code ec, reply rep) {
              stats out;
              if (failed(ec, rep, "stompd_stats", out)) return done(std::move(out));
              if (rep.kind != reply::type::array || rep.elements.size() != 4) {
                out.ec = errc::bad_reply;
                return done(std::move(out));
              }
              out.value.destination = destination;
              out.value.last_seq = static_cast<std::uint64_t>(rep.elements[0].integer);
              out.value.stored = static_cast<std::uint64_t>(rep.elements[1].integer);
              out.value.oldest_ms = rep.elements[2].integer;
              out.value.newest_ms = rep.elements[3].integer;
              done(std::move(out));
            });
}

void stream_store::purge(connection& c, std::string_view destination,
                         std::function<void(boost::system::error_code, std::uint64_t)> done) const {
  c.command({"FCALL", "stompd_purge", "2", log_key(destination), meta_key(destination)},
            [done = std::move(done)](boost::system::error_code ec, reply rep) {
              if (!ec && rep.kind != reply::type::integer) ec = errc::bad_reply;
              done(ec, ec ? 0 : static_cast<std::uint64_t>(rep.integer));
            });
}

namespace {

// SCAN's MATCH is a glob: the prefix is taken literally.
std::string glob_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

struct scan_state {
  std::shared_ptr<connection> c;  // kept for the whole scan
  std::string pattern;
  std::size_t prefix_bytes;  // "{" + key prefix
  std::size_t limit;
  std::vector<std::string> found;
  std::function<void(boost::system::error_code, std::vector<std::string>)> done;
};

void scan_step(std::shared_ptr<scan_state> st, std::string cursor) {
  auto& c = *st->c;
  c.command({"SCAN", std::move(cursor), "MATCH", st->pattern, "COUNT", "1000"},
            [st](boost::system::error_code ec, reply rep) {
              if (!ec && (rep.kind != reply::type::array || rep.elements.size() != 2))
                ec = errc::bad_reply;
              if (ec) return st->done(ec, {});
              constexpr std::string_view suffix = "}:meta";
              for (const auto& k : rep.elements[1].elements) {
                if (k.str.size() < st->prefix_bytes + suffix.size()) continue;
                st->found.push_back(k.str.substr(st->prefix_bytes,
                                                 k.str.size() - st->prefix_bytes - suffix.size()));
              }
              if (rep.elements[0].str == "0" || st->found.size() >= st->limit) {
                if (st->found.size() > st->limit) st->found.resize(st->limit);
                return st->done({}, std::move(st->found));
              }
              scan_step(st, rep.elements[0].str);
            });
}

}  // namespace

void stream_store::destinations(
    connection& c, std::size_t limit,
    std::function<void(boost::system::error_code, std::vector<std::string>)> done) const {
  auto st = std::make_shared<scan_state>();
  st->c = c.shared_from_this();
  st->pattern = fmt::format("{{{}*}}:meta", glob_escape(prefix_));
  st->prefix_bytes = 1 + prefix_.size();
  st->limit = limit;
  st->done = std::move(done);
  scan_step(std::move(st), "0");
}

}  // namespace broker::redis
