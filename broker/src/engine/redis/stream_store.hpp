#pragma once

#include "engine/redis/connection.hpp"
#include "storage/journal.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace broker::redis {

// A destination's history in Redis and the sequence that numbers it:
//   {<prefix><destination>}:log   a stream, one entry per message, entry id "<x-seq>-0",
//                                 fields t (Unix ms by Redis's clock), h (headers), b (body)
//   {<prefix><destination>}:meta  a hash: seq (the last x-seq given), epoch, since (the
//                                 epoch's first x-seq), ts (newest t), lost_seq / lost_ts
//                                 (the newest message trimmed or purged)
// The braces make one hash slot of a destination's keys, so Redis Cluster (or a primary per
// slot range) keeps a destination in one place without a key change.
//
// Appending is one server-side function (library "stompd", loaded by load()): it gives the
// next x-seq, stores the entry, trims to max_messages and announces the message on the
// destination's channel, atomically, so no two nodes give out the same x-seq and nothing is
// announced that is not stored. A destination without a meta hash starts a new epoch (the one
// the caller proposes): sequences are never reused across a loss of Redis's data.
class stream_store {
 public:
  struct appended {
    boost::system::error_code ec;  // server_error: `error` says what Redis said
    std::string error;
    std::uint64_t seq = 0;
    std::int64_t timestamp_ms = 0;
    std::string epoch;
    bool duplicate = false;  // as storage::append_result::duplicate
  };
  struct history {
    boost::system::error_code ec;
    std::string error;
    std::vector<storage::record> records;  // oldest first
    std::uint64_t head_seq = 0;            // the last x-seq given when read; 0: none yet
    std::string epoch;                     // "" when the destination has no history
    bool complete = true;                  // replay(): as storage::replay_result::complete
    bool older = false;                    // replay(): as storage::replay_result::older
    // read_after(): the epoch's first x-seq; those below it are an earlier epoch's.
    std::uint64_t epoch_start = 1;
  };
  using append_handler = std::function<void(appended)>;
  using history_handler = std::function<void(history)>;

  // idempotency_window: how long an append's idempotency key (record::idempotency_key) is
  // kept, in {<prefix><destination>}:key:<key>.
  explicit stream_store(std::string key_prefix,
                        std::chrono::milliseconds idempotency_window = std::chrono::minutes(10))
      : prefix_(std::move(key_prefix)), idempotency_window_(idempotency_window) {}

  // Loads (or replaces) the function library in the Redis that `c` talks to.
  void load(connection& c, std::function<void(boost::system::error_code, std::string)> done) const;
  // Stores `r` (destination, headers, body, idempotency key; seq and timestamp are Redis's to
  // give).
  // max_messages: the stream is trimmed to this many; 0: no limit.
  void append(connection& c, const storage::record& r, std::uint64_t max_messages,
              std::string_view new_epoch, append_handler done) const;
  // The same, from a caller that has seen the destination stored up to x-seq `seq` of
  // `epoch`: when Redis's sequence is behind that in the same epoch (a failover that lost
  // writes), the append starts new_epoch instead of giving those x-seqs out again.
  // max_age: the destination's age retention (0: none); what is older goes on the way.
  struct seen {
    std::string_view epoch;
    std::uint64_t seq = 0;
    std::chrono::milliseconds max_age{0};
  };
  void append(connection& c, const storage::record& r, std::uint64_t max_messages,
              std::string_view new_epoch, const seen& known, append_handler done) const;
  // Up to `limit` messages after x-seq `after`, oldest first, with the head and epoch read
  // in the same step.
  void read_after(connection& c, std::string_view destination, std::uint64_t after,
                  std::size_t limit, history_handler done) const;

  // The history `r` asks for (storage::replay_request: last, after, since, page, before,
  // the caps, the epoch), the same answer as the SQLite journal gives, read in one atomic step.
  void replay(connection& c, const storage::replay_request& r, history_handler done) const;
  // With age retention: messages older than `max_age` count as removed (0: none).
  void replay(connection& c, const storage::replay_request& r, std::chrono::milliseconds max_age,
              history_handler done) const;

  struct stats {
    boost::system::error_code ec;
    std::string error;
    storage::destination_stats value;
  };
  void stats_of(connection& c, std::string_view destination, std::function<void(stats)> done) const;
  // Deletes a destination's stored messages; its numbering goes on from the head. `done`
  // gets how many were deleted.
  void purge(connection& c, std::string_view destination,
             std::function<void(boost::system::error_code, std::uint64_t)> done) const;
  // Every destination with history in the Redis `c` talks to (SCAN of the meta keys), in no
  // particular order; at most `limit`.
  void destinations(
      connection& c, std::size_t limit,
      std::function<void(boost::system::error_code, std::vector<std::string>)> done) const;

  std::string log_key(std::string_view destination) const;
  std::string meta_key(std::string_view destination) const;
  // Where appends are announced: "<seq> <timestamp_ms> <epoch> <header bytes>\n" then the
  // encoded headers (storage/header_codec.hpp), then the body.
  std::string channel(std::string_view destination) const;
  // An announcement read back (what a subscriber to channel() receives), or nullopt when the
  // payload is not one.
  struct announcement {
    storage::record record;  // destination left empty: the channel says which
    std::string epoch;
  };
  static std::optional<announcement> parse_announcement(std::string_view payload);

 private:
  std::string prefix_;
  std::chrono::milliseconds idempotency_window_;
};

}  // namespace broker::redis
