#include "engine/redis/connection.hpp"
#include "engine/redis/live_channel.hpp"
#include "engine/redis/ordered_feed.hpp"
#include "engine/redis/queue_store.hpp"
#include "engine/redis/stream_store.hpp"
#include "redis_fixture.hpp"

#include <boost/asio/io_context.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

// The Redis engine's client and its history store against a real redis-server of the
// test's own.

namespace {

using broker::redis::connection;
using broker::redis::errc;
using broker::redis::ordered_feed;
using broker::redis::queue_store;
using broker::redis::reply;
using broker::redis::stream_store;
using namespace std::chrono_literals;
using stompd_test::RedisConnectionTest;

TEST_F(RedisConnectionTest, RepliesOfEveryKindComeBackAsTheyWere) {
  auto c = connected();
  const std::string binary("a\0b\r\nc", 6);
  EXPECT_EQ(call(*c, {"SET", "k", binary}).kind, reply::type::status);
  auto got = call(*c, {"GET", "k"});
  EXPECT_EQ(got.kind, reply::type::string);
  EXPECT_EQ(got.str, binary);
  EXPECT_EQ(call(*c, {"GET", "missing"}).kind, reply::type::nil);
  auto n = call(*c, {"INCRBY", "n", "41"});
  EXPECT_EQ(n.kind, reply::type::integer);
  EXPECT_EQ(n.integer, 41);
  call(*c, {"RPUSH", "l", "x", "y"});
  auto list = call(*c, {"LRANGE", "l", "0", "-1"});
  ASSERT_EQ(list.kind, reply::type::array);
  ASSERT_EQ(list.elements.size(), 2u);
  EXPECT_EQ(list.elements[1].str, "y");
  auto bad = call(*c, {"NOSUCHCOMMAND"});
  EXPECT_TRUE(bad.is_error());
  EXPECT_NE(bad.str.find("unknown command"), std::string::npos) << bad.str;
  c->close();
}

TEST_F(RedisConnectionTest, PipelinedCommandsAnswerInOrder) {
  auto c = connected();
  constexpr int n = 20'000;
  std::vector<long long> seen;
  for (int i = 0; i < n; ++i)
    c->command({"INCR", "counter"}, [&](boost::system::error_code ec, reply r) {
      EXPECT_FALSE(ec);
      seen.push_back(r.integer);
    });
  EXPECT_EQ(c->pending(), static_cast<std::size_t>(n));
  run_until([&] { return seen.size() == n; });
  for (int i = 0; i < n; ++i) ASSERT_EQ(seen[i], i + 1);
  EXPECT_EQ(c->pending(), 0u);
  c->close();
}

TEST_F(RedisConnectionTest, ARefusedConnectionFailsConnect) {
  const auto port = redis_.port();
  redis_.kill();
  auto c = connection::create(io_);
  std::optional<boost::system::error_code> result;
  c->connect("127.0.0.1", port, 5s, [&](auto ec) { result = ec; });
  run_until([&] { return result.has_value(); });
  EXPECT_EQ(*result, errc::connect_failed);
  EXPECT_NE(c->error_text().find("refused"), std::string::npos) << c->error_text();
  std::optional<boost::system::error_code> later;
  c->command({"PING"}, [&](boost::system::error_code ec, reply) { later = ec; });
  run_until([&] { return later.has_value(); });
  EXPECT_EQ(*later, errc::not_connected);
}

TEST_F(RedisConnectionTest, AServerThatDiesFailsPendingCommandsAndReportsTheLoss) {
  auto c = connected();
  std::optional<boost::system::error_code> lost, blocked;
  c->on_lost([&](auto ec) { lost = ec; });
  c->command({"BLPOP", "never", "0"}, [&](boost::system::error_code ec, reply) { blocked = ec; });
  run_for(50ms);  // written, and waiting for a reply
  redis_.kill();
  run_until([&] { return lost.has_value() && blocked.has_value(); });
  EXPECT_EQ(*blocked, errc::connection_lost);
  EXPECT_EQ(*lost, errc::connection_lost);
  EXPECT_FALSE(c->connected());
}

TEST_F(RedisConnectionTest, CloseFailsPendingCommandsAndIsNotALoss) {
  auto c = connected();
  bool lost = false;
  std::optional<boost::system::error_code> blocked;
  c->on_lost([&](auto) { lost = true; });
  c->command({"BLPOP", "never", "0"}, [&](boost::system::error_code ec, reply) { blocked = ec; });
  run_for(50ms);
  c->close();
  run_until([&] { return blocked.has_value(); });
  EXPECT_EQ(*blocked, errc::closed);
  run_for(50ms);
  EXPECT_FALSE(lost);
}

TEST_F(RedisConnectionTest, AConnectionCanBeMadeAgainAfterARestart) {
  auto first = connected();
  redis_.restart();
  run_until([&] { return !first->connected(); });
  auto second = connected();
  EXPECT_EQ(call(*second, {"PING"}).str, "PONG");
  second->close();
}

class RedisStreamStoreTest : public RedisConnectionTest {
 protected:
  void SetUp() override {
    c_ = connected();
    load(store_, *c_);
  }
  void TearDown() override { c_->close(); }

  stream_store::appended append(connection& c, std::string body, std::string_view epoch = "e1",
                                std::uint64_t max_messages = 0) {
    std::optional<stream_store::appended> a;
    store_.append(c, record(std::move(body)), max_messages, epoch,
                  [&](stream_store::appended got) { a = std::move(got); });
    run_until([&] { return a.has_value(); });
    EXPECT_FALSE(a->ec) << a->ec.message() << ": " << a->error;
    return *a;
  }
  stream_store::history read_after(std::uint64_t after, std::size_t limit = 100'000) {
    std::optional<stream_store::history> h;
    store_.read_after(*c_, room, after, limit,
                      [&](stream_store::history got) { h = std::move(got); });
    run_until([&] { return h.has_value(); });
    EXPECT_FALSE(h->ec) << h->ec.message() << ": " << h->error;
    return *h;
  }
  stream_store::history replay(storage::replay_request::kind mode, std::uint64_t value,
                               std::size_t max_messages = 10'000,
                               std::size_t max_bytes = 8 * 1024 * 1024, std::string epoch = "",
                               std::string_view destination = room) {
    storage::replay_request r;
    r.destination = std::string(destination);
    r.mode = mode;
    r.value = value;
    r.max_messages = max_messages;
    r.max_bytes = max_bytes;
    r.epoch = std::move(epoch);
    return replay(r);
  }
  stream_store::history replay(const storage::replay_request& r) {
    std::optional<stream_store::history> h;
    store_.replay(*c_, r, [&](stream_store::history got) { h = std::move(got); });
    run_until([&] { return h.has_value(); });
    EXPECT_FALSE(h->ec) << h->ec.message() << ": " << h->error;
    return *h;
  }
  static std::vector<std::uint64_t> seqs(const stream_store::history& h) {
    std::vector<std::uint64_t> out;
    for (const auto& r : h.records) out.push_back(r.seq);
    return out;
  }
  static storage::record record(std::string body) {
    return {.destination = std::string(room),
            .headers = {{"content-type", "text/plain"}, {"x-from", "alice"}},
            .body = std::move(body),
            .idempotency_key = {}};
  }

  static constexpr std::string_view room = "/topic/lost-item.42.room.7";
  stream_store store_{"stompd:"};
  std::shared_ptr<connection> c_;
};

TEST_F(RedisStreamStoreTest, KeysOfADestinationShareAHashTag) {
  EXPECT_EQ(store_.log_key(room), "{stompd:/topic/lost-item.42.room.7}:log");
  EXPECT_EQ(store_.meta_key(room), "{stompd:/topic/lost-item.42.room.7}:meta");
  EXPECT_EQ(store_.channel(room), "{stompd:/topic/lost-item.42.room.7}:new");
}

// Two nodes appending at once: every x-seq given once, consecutive, each node's in order.
TEST_F(RedisStreamStoreTest, AppendsFromTwoConnectionsGetEveryXSeqOnce) {
  auto other = connected();
  constexpr int per_connection = 500;
  std::vector<std::uint64_t> mine, theirs;
  for (int i = 0; i < per_connection; ++i) {
    store_.append(*c_, record(fmt::format("a{}", i)), 0, "e1",
                  [&](stream_store::appended a) { mine.push_back(a.seq); });
    store_.append(*other, record(fmt::format("b{}", i)), 0, "e1",
                  [&](stream_store::appended a) { theirs.push_back(a.seq); });
  }
  run_until([&] { return mine.size() + theirs.size() == 2 * per_connection; });
  EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
  EXPECT_TRUE(std::is_sorted(theirs.begin(), theirs.end()));
  std::vector<std::uint64_t> all = mine;
  all.insert(all.end(), theirs.begin(), theirs.end());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i + 1);
  auto h = read_after(0);
  ASSERT_EQ(h.records.size(), 2u * per_connection);
  EXPECT_EQ(h.head_seq, 2u * per_connection);
  for (std::size_t i = 0; i < h.records.size(); ++i) ASSERT_EQ(h.records[i].seq, i + 1);
  other->close();
}

TEST_F(RedisStreamStoreTest, AMessageComesBackAsItWasStored) {
  const std::string body("binary\0body\r\n", 13);
  auto a = append(*c_, body);
  EXPECT_EQ(a.seq, 1u);
  EXPECT_EQ(a.epoch, "e1");
  auto h = read_after(0);
  ASSERT_EQ(h.records.size(), 1u);
  const auto& r = h.records[0];
  EXPECT_EQ(r.destination, room);
  EXPECT_EQ(r.seq, 1u);
  EXPECT_EQ(r.timestamp_ms, a.timestamp_ms);
  EXPECT_EQ(r.body, body);
  EXPECT_EQ(r.headers, record("").headers);
  EXPECT_EQ(h.epoch, "e1");
}

TEST_F(RedisStreamStoreTest, TimestampsAreRedisClockAndNeverDecrease) {
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::int64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    auto a = append(*c_, "x");
    EXPECT_GE(a.timestamp_ms, last);
    last = a.timestamp_ms;
  }
  EXPECT_GE(last, before - 1'000);  // same machine: Redis's clock is ours
}

TEST_F(RedisStreamStoreTest, ReadAfterIsExclusiveAndCountedAndSaysTheHead) {
  for (int i = 1; i <= 10; ++i) append(*c_, fmt::format("m{}", i));
  auto h = read_after(5, 2);
  ASSERT_EQ(h.records.size(), 2u);
  EXPECT_EQ(h.records[0].seq, 6u);
  EXPECT_EQ(h.records[1].body, "m7");
  EXPECT_EQ(h.head_seq, 10u);
  EXPECT_TRUE(read_after(10).records.empty());
}

using kind = storage::replay_request::kind;
using seq_list = std::vector<std::uint64_t>;

// The same answers as the SQLite journal's read (storage's replay tests): the newest kept
// under a cap, complete only when nothing asked for is missing.
TEST_F(RedisStreamStoreTest, ReplayLastKeepsTheNewestAndSaysWhetherItIsAll) {
  for (int i = 1; i <= 10; ++i) append(*c_, fmt::format("m{}", i));
  auto h = replay(kind::last, 3);
  EXPECT_EQ(seqs(h), (seq_list{8, 9, 10}));
  EXPECT_TRUE(h.complete);
  EXPECT_EQ(h.head_seq, 10u);
  EXPECT_EQ(h.epoch, "e1");
  EXPECT_EQ(h.records[0].body, "m8");
  EXPECT_EQ(replay(kind::last, 50).records.size(), 10u);
  EXPECT_TRUE(replay(kind::last, 50).complete);  // fewer than asked is all there is
  auto capped = replay(kind::last, 6, 4);
  EXPECT_EQ(seqs(capped), (seq_list{7, 8, 9, 10}));
  EXPECT_FALSE(capped.complete);
  auto head_only = replay(kind::last, 0);
  EXPECT_TRUE(head_only.records.empty());
  EXPECT_EQ(head_only.head_seq, 10u);
}

TEST_F(RedisStreamStoreTest, ReplayAfterAndPage) {
  for (int i = 1; i <= 10; ++i) append(*c_, fmt::format("m{}", i));
  EXPECT_EQ(seqs(replay(kind::after, 7)), (seq_list{8, 9, 10}));
  EXPECT_TRUE(replay(kind::after, 10).records.empty());
  auto capped = replay(kind::after, 0, 4);
  EXPECT_EQ(seqs(capped), (seq_list{7, 8, 9, 10}));  // newest kept: joins the live stream
  EXPECT_FALSE(capped.complete);
  auto page = replay(kind::page, 2, 3);
  EXPECT_EQ(seqs(page), (seq_list{3, 4, 5}));  // oldest kept: the next page follows
  EXPECT_TRUE(page.complete);
  // after:S of another epoch numbers other messages: everything, and not complete.
  auto other = replay(kind::after, 5, 10'000, 8 << 20, "another-epoch");
  EXPECT_EQ(other.records.size(), 10u);
  EXPECT_FALSE(other.complete);
  EXPECT_TRUE(replay(kind::after, 5, 10'000, 8 << 20, "e1").complete);
}

// x-idempotency-key, as the SQLite journal answers it (JournalTest.ARetryWith*).
TEST_F(RedisStreamStoreTest, ARetryWithAStoredIdempotencyKeyGetsTheFirstSeqAndStoresNothing) {
  auto keyed = [&](std::string key, std::string body) {
    auto r = record(std::move(body));
    r.idempotency_key = std::move(key);
    std::optional<stream_store::appended> a;
    store_.append(*c_, r, 0, "e1", [&](stream_store::appended got) { a = std::move(got); });
    run_until([&] { return a.has_value(); });
    EXPECT_FALSE(a->ec) << a->ec.message() << ": " << a->error;
    return *a;
  };
  const auto first = keyed("k1", "first");
  EXPECT_FALSE(first.duplicate);
  append(*c_, "unkeyed");
  const auto retry = keyed("k1", "again");
  EXPECT_TRUE(retry.duplicate);
  EXPECT_EQ(retry.seq, 1u);
  EXPECT_EQ(retry.timestamp_ms, first.timestamp_ms);
  EXPECT_EQ(retry.epoch, first.epoch);
  EXPECT_EQ(keyed("k2", "other").seq, 3u);
  EXPECT_EQ(seqs(read_after(0)), (seq_list{1, 2, 3}));
  const auto ttl = call(*c_, {"PTTL", fmt::format("{{stompd:{}}}:key:k1", room)}).integer;
  EXPECT_GT(ttl, 0) << "the key expires with its window";
}

// x-replay: before:SEQ, as the SQLite journal answers it (JournalTest.ReplayBefore*).
TEST_F(RedisStreamStoreTest, ReplayBeforeReadsTheNewestBelowTheSeqAndWhetherOlderAreStored) {
  for (int i = 1; i <= 30; ++i) append(*c_, fmt::format("m{}", i), "e1", 10);  // 21..30 kept
  auto before = [&](std::uint64_t seq, std::size_t limit, std::string epoch = "") {
    storage::replay_request r;
    r.destination = std::string(room);
    r.mode = kind::before;
    r.value = seq;
    r.limit = limit;
    r.epoch = std::move(epoch);
    return replay(r);
  };
  auto page = before(29, 3);
  EXPECT_EQ(seqs(page), (seq_list{26, 27, 28}));
  EXPECT_EQ(page.head_seq, 30u);
  EXPECT_TRUE(page.complete);
  EXPECT_TRUE(page.older);
  auto cut = before(25, 10);
  EXPECT_EQ(seqs(cut), (seq_list{21, 22, 23, 24}));
  EXPECT_FALSE(cut.complete) << "15..20 were asked for and were trimmed";
  EXPECT_FALSE(cut.older);
  EXPECT_EQ(seqs(before(1000, 2)), (seq_list{29, 30})) << "past the head: the newest";
  auto other = before(5, 2, "another-epoch");
  EXPECT_EQ(seqs(other), (seq_list{29, 30}));
  EXPECT_FALSE(other.complete);
}

TEST_F(RedisStreamStoreTest, ReplaySinceReadsByRedisTimestamps) {
  std::vector<stream_store::appended> a;
  for (int i = 1; i <= 5; ++i) {
    a.push_back(append(*c_, fmt::format("m{}", i)));
    std::this_thread::sleep_for(5ms);
  }
  auto h = replay(kind::since, static_cast<std::uint64_t>(a[3].timestamp_ms));
  EXPECT_EQ(seqs(h), (seq_list{4, 5}));
  EXPECT_TRUE(h.complete);
  EXPECT_EQ(replay(kind::since, 0).records.size(), 5u);
  auto future = replay(kind::since, static_cast<std::uint64_t>(a[4].timestamp_ms + 60'000));
  EXPECT_TRUE(future.records.empty());
  EXPECT_TRUE(future.complete);
}

TEST_F(RedisStreamStoreTest, WhatRetentionRemovedMakesAReplayIncomplete) {
  for (int i = 1; i <= 10; ++i) append(*c_, fmt::format("m{}", i), "e1", 3);
  auto last = replay(kind::last, 5);
  EXPECT_EQ(seqs(last), (seq_list{8, 9, 10}));
  EXPECT_FALSE(last.complete);
  EXPECT_FALSE(replay(kind::since, 0).complete);
  EXPECT_FALSE(replay(kind::page, 0, 2).complete);
  EXPECT_TRUE(replay(kind::after, 8).complete);
  EXPECT_TRUE(replay(kind::last, 3).complete);
}

// max_age_ms: an append removes what is older (a bounded step each time); a replay hides
// what is due and not yet removed, as the SQLite journal's retention pass would have.
TEST_F(RedisStreamStoreTest, AgeRetentionRemovesAndHidesOldMessages) {
  for (int i = 1; i <= 3; ++i) append(*c_, fmt::format("old{}", i));
  std::this_thread::sleep_for(60ms);
  auto hidden = [&] {
    storage::replay_request r;
    r.destination = std::string(room);
    r.mode = kind::last;
    r.value = 10;
    std::optional<stream_store::history> h;
    store_.replay(*c_, r, 50ms, [&](stream_store::history got) { h = std::move(got); });
    run_until([&] { return h.has_value(); });
    return *h;
  }();
  EXPECT_TRUE(hidden.records.empty());
  EXPECT_FALSE(hidden.complete);                // asked for, and gone by retention
  EXPECT_EQ(read_after(0).records.size(), 3u);  // still stored until an append trims

  std::optional<stream_store::appended> a;
  store_.append(*c_, record("new"), 0, "e1", {.epoch = "", .seq = 0, .max_age = 50ms},
                [&](stream_store::appended got) { a = std::move(got); });
  run_until([&] { return a.has_value(); });
  EXPECT_FALSE(a->ec) << a->error;
  auto h = read_after(0);
  EXPECT_EQ(seqs(h), (seq_list{4}));
  EXPECT_FALSE(replay(kind::last, 2).complete);  // 3 was asked for and removed
  EXPECT_TRUE(replay(kind::last, 1).complete);
}

TEST_F(RedisStreamStoreTest, TheByteCapKeepsTheNewestThatFit) {
  for (int i = 1; i <= 10; ++i) append(*c_, std::string(100, 'x'));
  auto h = replay(kind::last, 10, 10'000, 350);
  ASSERT_FALSE(h.records.empty());
  EXPECT_LT(h.records.size(), 10u);
  EXPECT_EQ(h.records.back().seq, 10u);
  EXPECT_FALSE(h.complete);
}

TEST_F(RedisStreamStoreTest, StatsPurgeAndTheDestinationsKnown) {
  for (int i = 1; i <= 4; ++i) append(*c_, "x");
  std::optional<stream_store::stats> st;
  store_.stats_of(*c_, room, [&](stream_store::stats got) { st = std::move(got); });
  run_until([&] { return st.has_value(); });
  EXPECT_EQ(st->value.destination, room);
  EXPECT_EQ(st->value.last_seq, 4u);
  EXPECT_EQ(st->value.stored, 4u);
  EXPECT_GT(st->value.oldest_ms, 0);
  EXPECT_GE(st->value.newest_ms, st->value.oldest_ms);

  std::optional<std::vector<std::string>> names;
  store_.destinations(*c_, 100, [&](boost::system::error_code ec, std::vector<std::string> got) {
    EXPECT_FALSE(ec);
    names = std::move(got);
  });
  run_until([&] { return names.has_value(); });
  EXPECT_EQ(*names, std::vector<std::string>{std::string(room)});

  std::optional<std::uint64_t> purged;
  store_.purge(*c_, room, [&](boost::system::error_code ec, std::uint64_t n) {
    EXPECT_FALSE(ec);
    purged = n;
  });
  run_until([&] { return purged.has_value(); });
  EXPECT_EQ(*purged, 4u);
  auto after = replay(kind::last, 2);
  EXPECT_TRUE(after.records.empty());
  EXPECT_FALSE(after.complete);  // they were asked for, and are gone
  EXPECT_EQ(after.head_seq, 4u);
  EXPECT_EQ(append(*c_, "y").seq, 5u);  // the numbering goes on
}

TEST_F(RedisStreamStoreTest, TrimmingKeepsTheNewestAndTheSequenceGoesOn) {
  for (int i = 1; i <= 10; ++i) append(*c_, fmt::format("m{}", i), "e1", 3);
  auto h = read_after(0);
  ASSERT_EQ(h.records.size(), 3u);
  EXPECT_EQ(h.records[0].seq, 8u);
  EXPECT_EQ(h.head_seq, 10u);
}

// A destination's epoch is its first append's; after Redis lost the data (here FLUSHALL), the
// next append starts a new epoch instead of giving out x-seq 1 again under the old one.
TEST_F(RedisStreamStoreTest, AnEpochLastsUntilTheDataIsLost) {
  EXPECT_EQ(append(*c_, "a", "e1").epoch, "e1");
  auto b = append(*c_, "b", "e2");
  EXPECT_EQ(b.epoch, "e1");
  EXPECT_EQ(b.seq, 2u);
  call(*c_, {"FLUSHALL"});
  store_.load(*c_, [](boost::system::error_code, std::string) {});  // FLUSHALL keeps functions
  auto c = append(*c_, "c", "e3");
  EXPECT_EQ(c.epoch, "e3");
  EXPECT_EQ(c.seq, 1u);
}

// A failover to a replica that had not received the last writes: the meta hash is there,
// in the same epoch, but behind what a node saw stored. Numbering on in that epoch would
// give a subscriber's seen x-seqs to new messages.
TEST_F(RedisStreamStoreTest, AnAppendBehindWhatTheCallerSawStartsANewEpoch) {
  for (int i = 1; i <= 10; ++i) append(*c_, fmt::format("m{}", i), "e1");
  for (int i = 6; i <= 10; ++i) call(*c_, {"XDEL", store_.log_key(room), fmt::format("{}-0", i)});
  call(*c_, {"XSETID", store_.log_key(room), "5-0"});  // as the replica had them
  call(*c_, {"HSET", store_.meta_key(room), "seq", "5"});

  auto behind_what_was_seen = [&](stream_store::seen known, std::string_view proposed) {
    std::optional<stream_store::appended> a;
    store_.append(*c_, record("after the failover"), 0, proposed, known,
                  [&](stream_store::appended got) { a = std::move(got); });
    run_until([&] { return a.has_value(); });
    EXPECT_FALSE(a->ec) << a->error;
    return *a;
  };
  auto kept = behind_what_was_seen({"e1", 5}, "e2");  // nothing seen that Redis lacks
  EXPECT_EQ(kept.epoch, "e1");
  EXPECT_EQ(kept.seq, 6u);
  auto renewed = behind_what_was_seen({"e1", 10}, "e3");
  EXPECT_EQ(renewed.epoch, "e3");
  EXPECT_EQ(renewed.seq, 7u);
  EXPECT_EQ(behind_what_was_seen({"e1", 10}, "e4").epoch, "e3");  // e1 is over
  EXPECT_EQ(seqs(replay(kind::after, 0, 10'000, 8 << 20, "e3")), (seq_list{7, 8}));
}

TEST_F(RedisStreamStoreTest, AStreamWithoutItsMetaContinuesItsSequenceInANewEpoch) {
  for (int i = 0; i < 3; ++i) append(*c_, "x", "e1");
  call(*c_, {"DEL", store_.meta_key(room)});
  auto a = append(*c_, "y", "e2");
  EXPECT_EQ(a.seq, 4u);
  EXPECT_EQ(a.epoch, "e2");
  // The epoch's history starts at its first message: 1..3 are another epoch's numbers.
  auto h = read_after(0);
  EXPECT_EQ(seqs(h), (seq_list{4}));
  EXPECT_EQ(h.epoch_start, 4u);
  auto last = replay(kind::last, 10);
  EXPECT_EQ(seqs(last), (seq_list{4}));
  EXPECT_TRUE(last.complete);
  EXPECT_EQ(seqs(replay(kind::after, 0)), (seq_list{4}));
  EXPECT_EQ(seqs(replay(kind::since, 0)), (seq_list{4}));
}

TEST_F(RedisStreamStoreTest, WithoutTheLibraryAnAppendFailsNamingIt) {
  call(*c_, {"FUNCTION", "FLUSH"});
  std::optional<stream_store::appended> a;
  store_.append(*c_, record("x"), 0, "e1", [&](stream_store::appended got) { a = std::move(got); });
  run_until([&] { return a.has_value(); });
  EXPECT_EQ(a->ec, errc::server_error);
  EXPECT_NE(a->error.find("stompd_append"), std::string::npos) << a->error;
}

TEST_F(RedisStreamStoreTest, EveryAppendIsAnnouncedWithTheWholeMessage) {
  auto listener = connected();
  std::vector<std::string> heard;
  std::optional<boost::system::error_code> subscribed;
  const auto channel = store_.channel(room);
  listener->subscribe(
      channel, [&](std::string payload) { heard.push_back(std::move(payload)); },
      [&](boost::system::error_code ec) { subscribed = ec; });
  run_until([&] { return subscribed.has_value(); });
  ASSERT_FALSE(*subscribed) << subscribed->message();
  std::vector<stream_store::appended> appended;
  for (int i = 1; i <= 3; ++i) appended.push_back(append(*c_, fmt::format("m{}", i)));
  run_until([&] { return heard.size() == 3; });
  for (int i = 0; i < 3; ++i) {
    auto a = stream_store::parse_announcement(heard[i]);
    ASSERT_TRUE(a) << heard[i];
    EXPECT_EQ(a->record.seq, appended[i].seq);
    EXPECT_EQ(a->record.timestamp_ms, appended[i].timestamp_ms);
    EXPECT_EQ(a->record.body, fmt::format("m{}", i + 1));
    EXPECT_EQ(a->record.headers, record("").headers);
    EXPECT_EQ(a->epoch, "e1");
  }
  // Subscribed once at a time; after the unsubscribe is confirmed nothing more arrives.
  std::optional<boost::system::error_code> again;
  listener->subscribe(
      channel, [](std::string) {}, [&](auto ec) { again = ec; });
  run_until([&] { return again.has_value(); });
  EXPECT_EQ(*again, errc::already_subscribed);
  listener->unsubscribe(channel);
  run_until([&] { return !listener->subscribed(channel); });
  append(*c_, "unheard");
  run_for(100ms);
  EXPECT_EQ(heard.size(), 3u);
  listener->close();
}

TEST_F(RedisStreamStoreTest, AnnouncementsThatAreNotOursAreRejected) {
  for (std::string_view bad :
       {"", "1 2 e1 0", "x 2 e1 0\n", "1 2  0\n", "1 2 e1 9\nab", "1 2 e1 0 extra\n"})
    EXPECT_FALSE(stream_store::parse_announcement(bad)) << bad;
  auto a = stream_store::parse_announcement(std::string("7 1700000000000 e9 4\nk\0v\0body", 29));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->record.seq, 7u);
  EXPECT_EQ(a->record.body, "body");
  ASSERT_EQ(a->record.headers.size(), 1u);
  EXPECT_EQ(a->record.headers[0].first, "k");
}

TEST_F(RedisConnectionTest, ASubscriptionEndsWithItsConnection) {
  auto c = connected();
  std::optional<boost::system::error_code> subscribed, lost;
  c->on_lost([&](auto ec) { lost = ec; });
  c->subscribe(
      "ch", [](std::string) {}, [&](auto ec) { subscribed = ec; });
  run_until([&] { return subscribed.has_value(); });
  ASSERT_FALSE(*subscribed);
  redis_.kill();
  run_until([&] { return lost.has_value(); });
  EXPECT_FALSE(c->subscribed("ch"));
}

// The feed against the real stream: announcements as stompd_append published them, some of
// them withheld (pub/sub is at most once), fills read with stream_store::read_after.
class RedisOrderedFeedTest : public RedisStreamStoreTest {
 protected:
  void SetUp() override {
    RedisStreamStoreTest::SetUp();
    listener_ = connected();
    std::optional<boost::system::error_code> subscribed;
    listener_->subscribe(
        store_.channel(room),
        [this](std::string payload) {
          heard_.push_back(*stream_store::parse_announcement(payload));
        },
        [&](auto ec) { subscribed = ec; });
    run_until([&] { return subscribed.has_value(); });
  }
  void TearDown() override {
    listener_->close();
    RedisStreamStoreTest::TearDown();
  }
  std::unique_ptr<ordered_feed> feed(std::uint64_t delivered = 0, std::string epoch = "",
                                     std::size_t page = 1000) {
    return std::make_unique<ordered_feed>(
        delivered, std::move(epoch),
        [this](storage::record&& r, const std::string& e) {
          got_.push_back(fmt::format("{}:{}:{}", e, r.seq, r.body));
        },
        [this](std::uint64_t after, std::size_t count,
               std::function<void(stream_store::history)> done) {
          ++fills_;
          store_.read_after(*fill_with_, room, after, count, std::move(done));
        },
        page);
  }
  // Appends `n` messages m<first>.. and waits until all are heard.
  void publish(int first, int n, std::string_view epoch = "e1", std::uint64_t max = 0) {
    const auto before = heard_.size();
    for (int i = first; i < first + n; ++i) append(*c_, fmt::format("m{}", i), epoch, max);
    run_until([&] { return heard_.size() == before + static_cast<std::size_t>(n); });
  }
  static std::vector<std::string> expected(int first, int last, std::string_view epoch = "e1") {
    std::vector<std::string> v;
    for (int i = first; i <= last; ++i) v.push_back(fmt::format("{}:{}:m{}", epoch, i, i));
    return v;
  }

  std::shared_ptr<connection> listener_;
  connection* fill_with_ = nullptr;
  std::vector<stream_store::announcement> heard_;
  std::vector<std::string> got_;
  int fills_ = 0;
};

TEST_F(RedisOrderedFeedTest, MissedAnnouncementsAreReadFromTheStreamInOrder) {
  fill_with_ = c_.get();
  auto f = feed();
  publish(1, 30);
  for (auto& a : heard_) {
    if (a.record.seq % 3 == 0) continue;               // lost
    if (a.record.seq % 5 == 0) f->on_announcement(a);  // and some twice
    f->on_announcement(a);
  }
  run_until([&] { return !f->filling() && f->delivered() == 29; });
  EXPECT_EQ(got_, expected(1, 29));  // 30 was lost with nothing after it to tell
  EXPECT_GT(fills_, 0);
}

TEST_F(RedisOrderedFeedTest, CatchUpReadsWhatNoAnnouncementShowedInPages) {
  fill_with_ = c_.get();
  auto f = feed(0, "", 4);
  publish(1, 10);  // every announcement lost: a reconnect
  f->catch_up(10, "e1");
  run_until([&] { return f->delivered() == 10 && !f->filling(); });
  EXPECT_EQ(got_, expected(1, 10));
  EXPECT_EQ(fills_, 3);  // 4 + 4 + 2
}

TEST_F(RedisOrderedFeedTest, WhatRetentionTrimmedBeforeItWasReadIsSkipped) {
  fill_with_ = c_.get();
  auto f = feed();
  publish(1, 10, "e1", 3);  // the stream keeps 8, 9, 10
  f->on_announcement(heard_.back());
  run_until([&] { return f->delivered() == 10 && !f->filling(); });
  EXPECT_EQ(got_, expected(8, 10));
}

TEST_F(RedisOrderedFeedTest, ANewEpochStartsTheCountAgain) {
  fill_with_ = c_.get();
  auto f = feed();
  publish(1, 3);
  for (auto& a : heard_) f->on_announcement(a);
  call(*c_, {"FLUSHALL"});  // Redis lost everything; the functions stay
  publish(1, 2, "e2");
  f->on_announcement(heard_[4]);  // seq 2 of e2: seq 1 is read from the stream
  run_until([&] { return f->epoch() == "e2" && f->delivered() == 2 && !f->filling(); });
  auto want = expected(1, 3);
  for (auto& s : expected(1, 2, "e2")) want.push_back(s);
  EXPECT_EQ(got_, want);
}

TEST_F(RedisOrderedFeedTest, AFailedFillIsTriedAgainByTheNextAnnouncement) {
  auto gone = connected();
  gone->close();
  fill_with_ = gone.get();
  auto f = feed();
  publish(1, 4);
  f->on_announcement(heard_[2]);  // 3: 1 and 2 must be read, and Redis is "unreachable"
  run_until([&] { return f->failed_fills() == 1; });
  EXPECT_TRUE(got_.empty());
  fill_with_ = c_.get();
  f->on_announcement(heard_[3]);
  run_until([&] { return f->delivered() == 4 && !f->filling(); });
  EXPECT_EQ(got_, expected(1, 4));
}

}  // namespace

TEST(RedisLiveChannelTest, ALiveMessageComesBackAsItWasSent) {
  broker::redis::live_message m{"a1b2c3",
                                "17-4",
                                {{"content-type", "text/plain"}, {"x-k", "v:1"}},
                                std::string("typing\0...\n", 10)};
  auto back = broker::redis::parse_live(broker::redis::encode_live(m));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->origin, m.origin);
  EXPECT_EQ(back->id, m.id);
  EXPECT_EQ(back->headers, m.headers);
  EXPECT_EQ(back->body, m.body);
  EXPECT_EQ(broker::redis::live_channel("stompd:", "/topic/typing.7"),
            "{stompd:/topic/typing.7}:live");
}

TEST(RedisLiveChannelTest, PayloadsThatAreNotLiveMessagesAreRejected) {
  for (std::string_view bad :
       {"", "no newline", "origin id\n", " id 0\n", "o  0\n", "o id x\n", "o id 99\nshort"})
    EXPECT_FALSE(broker::redis::parse_live(bad).has_value()) << bad;
}

namespace {

class RedisQueueStoreTest : public RedisConnectionTest {
 protected:
  void SetUp() override {
    c_ = connected();
    load(store_, *c_);
  }
  void TearDown() override { c_->close(); }

  queue_store::queued enqueue(std::string body, std::size_t max_waiting = 100) {
    std::optional<queue_store::queued> q;
    store_.enqueue(*c_, jobs, {{"k", "v"}}, body, max_waiting,
                   [&](queue_store::queued got) { q = std::move(got); });
    run_until([&] { return q.has_value(); });
    EXPECT_FALSE(q->ec) << q->ec.message() << ": " << q->error;
    return *q;
  }
  std::vector<queue_store::entry> take(std::string_view consumer, std::size_t count,
                                       std::chrono::milliseconds redelivery = 60s) {
    std::optional<queue_store::taken> t;
    store_.take(*c_, jobs, consumer, count, redelivery,
                [&](queue_store::taken got) { t = std::move(got); });
    run_until([&] { return t.has_value(); });
    EXPECT_FALSE(t->ec) << t->ec.message() << ": " << t->error;
    return t->entries;
  }
  template <typename Step>
  void done(Step step) {
    std::optional<boost::system::error_code> ec;
    step([&](boost::system::error_code got) { ec = got; });
    run_until([&] { return ec.has_value(); });
    EXPECT_FALSE(*ec) << ec->message();
  }
  static std::vector<std::string> ids_of(const std::vector<queue_store::entry>& es) {
    std::vector<std::string> out;
    for (const auto& e : es) out.push_back(e.id);
    return out;
  }

  const std::string jobs = "/queue/jobs";
  queue_store store_{"stompd-test:"};
  std::shared_ptr<connection> c_;
};

TEST_F(RedisQueueStoreTest, EachMessageIsTakenByOneConsumerOnceAsItWasSent) {
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(enqueue(fmt::format("job {}", i)).full);
  auto a = take("node-a", 3);
  auto b = take("node-b", 10);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(a[0].body, "job 0");
  EXPECT_EQ(b[1].body, "job 4");
  EXPECT_EQ(a[0].headers, (queue_store::header_list{{"k", "v"}}));
  EXPECT_FALSE(a[0].redelivered);
  EXPECT_TRUE(take("node-c", 10).empty());
  EXPECT_EQ(store_.key(jobs), "{stompd-test:/queue/jobs}:queue");
}

TEST_F(RedisQueueStoreTest, AFullQueueCountsWhatWaitsNotWhatIsHeld) {
  EXPECT_FALSE(enqueue("1", 2).full);
  EXPECT_FALSE(enqueue("2", 2).full);
  EXPECT_TRUE(enqueue("3", 2).full);
  auto held = take("node-a", 1);
  EXPECT_FALSE(enqueue("3", 2).full) << "one is held, one waits";
  done([&](auto cb) { store_.settle(*c_, jobs, ids_of(held), cb); });
  EXPECT_EQ(call(*c_, {"XLEN", store_.key(jobs)}).integer, 2) << "settled: gone from the stream";
}

TEST_F(RedisQueueStoreTest, WhatNobodyRenewedIsClaimedFirstAndMarkedRedelivered) {
  enqueue("old");
  enqueue("new");
  auto dead = take("node-dead", 1);
  ASSERT_EQ(dead.size(), 1u);
  auto live = take("node-live", 1);
  ASSERT_EQ(live.size(), 1u);
  run_for(300ms);
  done([&](auto cb) { store_.touch(*c_, jobs, "node-live", ids_of(live), cb); });
  enqueue("newest");
  auto claimed = take("node-b", 5, 200ms);
  ASSERT_EQ(claimed.size(), 2u) << "the dead node's, then the new one; not the renewed one";
  EXPECT_EQ(claimed[0].body, "old");
  EXPECT_TRUE(claimed[0].redelivered);
  EXPECT_EQ(claimed[1].body, "newest");
  EXPECT_FALSE(claimed[1].redelivered);
}

TEST_F(RedisQueueStoreTest, GivenBackIsClaimedAtOnceAndAnnounced) {
  std::optional<bool> heard;
  auto listener = connected();
  std::optional<boost::system::error_code> subscribed;
  listener->subscribe(
      store_.channel(jobs), [&](std::string) { heard = true; },
      [&](boost::system::error_code ec) { subscribed = ec; });
  run_until([&] { return subscribed.has_value(); });
  enqueue("job");
  run_until([&] { return heard.has_value(); });
  heard.reset();
  auto mine = take("node-a", 1);
  done([&](auto cb) { store_.give_back(*c_, jobs, "node-a", ids_of(mine), cb); });
  run_until([&] { return heard.has_value(); });
  auto other = take("node-b", 1, 60s);
  ASSERT_EQ(other.size(), 1u) << "given back: no need to wait for the timeout";
  EXPECT_EQ(other[0].body, "job");
  listener->close();
}

}  // namespace
