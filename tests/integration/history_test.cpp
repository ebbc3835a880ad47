// History: the journal behind /topic/ destinations and x-replay, on the real broker with a
// real SQLite file in a temporary directory.
#include "broker/server.hpp"
#include "stomp_client.hpp"
#include "temp_dir.hpp"
#include "test_config.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

namespace {

using stomp::command;
using stompd_test::stomp_client;
using namespace std::chrono_literals;

class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void TearDown() override { server_.reset(); }

  broker::config settings() {
    auto c = stompd_test::loopback_config(dir_.path());
    c.journal.destinations.push_back({"/topic/live.**", false, 0, 0ms});
    c.journal.destinations.push_back({"/topic/short.**", true, 5, 0ms});
    c.journal.replay_max_messages = 50;
    return c;
  }
  void start() { start(settings()); }
  void start(broker::config c) {
    server_ = std::make_unique<broker::server>(std::move(c));
    server_->start();
  }
  stomp_client client() {
    auto c = stomp_client::tcp(server_->tcp_port());
    c.connect();
    return c;
  }
  // Publishes bodies "0".."n-1" with receipts; returns the x-seq of each.
  std::vector<std::string> publish(std::string_view destination, int n, int first = 0) {
    auto c = client();
    std::vector<std::string> seqs;
    for (int i = first; i < first + n; ++i) {
      stomp::frame f(
          command::send,
          {{"destination", std::string(destination)}, {"receipt", "r" + std::to_string(i)}},
          std::to_string(i));
      c.send(f);
      auto r = c.receive();
      EXPECT_TRUE(r && r->command == command::receipt);
      if (r) seqs.emplace_back(r->header("x-seq").value_or(""));
    }
    return seqs;
  }
  // SUBSCRIBE with x-replay and a receipt; returns the replayed MESSAGEs and the RECEIPT.
  std::pair<std::vector<stomp::frame>, stomp::frame> replay(stomp_client& c,
                                                            std::string_view destination,
                                                            std::string_view spec,
                                                            std::string id = "s",
                                                            std::vector<stomp::header> extra = {}) {
    stomp::frame sub(command::subscribe, {{"destination", std::string(destination)},
                                          {"id", id},
                                          {"x-replay", std::string(spec)},
                                          {"receipt", "sub-" + id}});
    for (auto& h : extra) sub.headers.push_back(std::move(h));
    c.send(sub);
    std::vector<stomp::frame> got;
    for (;;) {
      auto f = c.receive();
      if (!f) throw std::runtime_error("no RECEIPT for the replay");
      if (f->command == command::receipt) return {std::move(got), std::move(*f)};
      if (f->command == command::error) throw std::runtime_error("ERROR: " + f->body);
      got.push_back(std::move(*f));
    }
  }

  stompd_test::temp_dir dir_;  // declared first: outlives the server using it
  std::unique_ptr<broker::server> server_;
};

TEST_F(HistoryTest, SendReceiptCarriesTheStoredSequence) {
  EXPECT_EQ(publish("/topic/room.1", 3), (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(publish("/topic/room.2", 1), (std::vector<std::string>{"1"}));
}

TEST_F(HistoryTest, LiveMessagesCarryXSeqAndMessageIdButNotXReplayed) {
  auto sub = client();
  sub.subscribe("/topic/room", "s");
  publish("/topic/room", 2);
  for (const char* seq : {"1", "2"}) {
    auto m = sub.receive();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->header("x-seq"), seq);
    EXPECT_EQ(m->header("message-id"), seq);
    EXPECT_FALSE(m->header("x-replayed").has_value());
  }
}

TEST_F(HistoryTest, ReplayLastNGivesTheNewestOldestFirstThenTheReceipt) {
  publish("/topic/room", 10);
  auto c = client();
  auto [messages, receipt] = replay(c, "/topic/room", "last:3");
  ASSERT_EQ(messages.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(messages[i].header("x-seq"), std::to_string(8 + i));
    EXPECT_EQ(messages[i].body, std::to_string(7 + i));
    EXPECT_EQ(messages[i].header("x-replayed"), "true");
    EXPECT_EQ(messages[i].header("subscription"), "s");
  }
  EXPECT_EQ(receipt.header("x-replay-count"), "3");
  EXPECT_EQ(receipt.header("x-head-seq"), "10");
  EXPECT_EQ(receipt.header("x-replay-complete"), "true");
}

TEST_F(HistoryTest, RoomWithFewerMessagesThanAskedIsComplete) {
  publish("/topic/room", 2);
  auto c = client();
  auto [messages, receipt] = replay(c, "/topic/room", "last:100");
  EXPECT_EQ(messages.size(), 2u);
  EXPECT_EQ(receipt.header("x-replay-complete"), "true");
}

TEST_F(HistoryTest, EmptyRoomReplaysNothingWithHeadZero) {
  auto c = client();
  auto [messages, receipt] = replay(c, "/topic/empty", "after:0");
  EXPECT_TRUE(messages.empty());
  EXPECT_EQ(receipt.header("x-head-seq"), "0");
  EXPECT_EQ(receipt.header("x-replay-complete"), "true");
}

TEST_F(HistoryTest, ReplayAfterResumesFromTheLastSeenSequenceThenGoesLive) {
  publish("/topic/room", 5);
  auto c = client();
  auto [messages, receipt] = replay(c, "/topic/room", "after:3");
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].header("x-seq"), "4");
  EXPECT_EQ(messages[1].header("x-seq"), "5");
  publish("/topic/room", 1, 5);
  auto live = c.receive();
  ASSERT_TRUE(live);
  EXPECT_EQ(live->header("x-seq"), "6");
  EXPECT_FALSE(live->header("x-replayed").has_value());
}

TEST_F(HistoryTest, ReplaySinceUsesStoreTime) {
  publish("/topic/room", 2);
  // Store times have millisecond grain: step past the millisecond of the last store on both
  // sides of the cut, or a message stored in the cut's own millisecond counts as "since".
  std::this_thread::sleep_for(5ms);
  auto cut = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  std::this_thread::sleep_for(5ms);
  publish("/topic/room", 2, 2);
  auto c = client();
  auto [messages, receipt] = replay(c, "/topic/room", "since:" + std::to_string(cut));
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].body, "2");
}

TEST_F(HistoryTest, CapServesTheNewestAndSaysIncomplete) {
  publish("/topic/big", 60);
  auto c = client();
  auto [messages, receipt] = replay(c, "/topic/big", "after:0");
  ASSERT_EQ(messages.size(), 50u);
  EXPECT_EQ(messages.front().header("x-seq"), "11");
  EXPECT_EQ(receipt.header("x-replay-complete"), "false");
}

TEST_F(HistoryTest, RetentionRemovedMessagesMakeReplayIncomplete) {
  publish("/topic/short.room", 8);
  auto c = client();
  // Retention runs in the background; wait until it has cut the room to five messages.
  for (int i = 0; i < 100; ++i) {
    auto probe = client();
    auto [messages, receipt] = replay(probe, "/topic/short.room", "last:8");
    if (messages.size() == 5) {
      EXPECT_EQ(receipt.header("x-replay-complete"), "false");
      EXPECT_EQ(messages.front().header("x-seq"), "4");
      return;
    }
    std::this_thread::sleep_for(50ms);
  }
  FAIL() << "retention never ran";
}

// Issue 11: a topic that no rule names still has a finite retention
// (journal.default_max_messages).
TEST_F(HistoryTest, TopicsNoRuleNamesGetTheDefaultRetention) {
  auto c = settings();
  c.journal.default_max_messages = 3;
  c.journal.retention_interval = 10ms;
  server_.reset();
  start(std::move(c));
  publish("/topic/unruled", 6);
  for (int i = 0; i < 100; ++i) {
    auto probe = client();
    auto [messages, receipt] = replay(probe, "/topic/unruled", "last:6");
    if (messages.size() == 3) {
      EXPECT_EQ(messages.front().header("x-seq"), "4");
      return;
    }
    std::this_thread::sleep_for(50ms);
  }
  FAIL() << "the default retention never cut the topic";
}

// Issue 11: limits.max_journaled_destinations bounds the destinations the journal keeps a
// sequence for. A SEND that would journal one more gets an ERROR naming the limit; the
// destinations that have history, and live-only topics, keep working.
TEST_F(HistoryTest, NewJournaledDestinationPastTheBoundGetsAnErrorNamingTheLimit) {
  auto c = settings();
  c.limits.max_journaled_destinations = 2;
  server_.reset();
  start(std::move(c));
  publish("/topic/a", 1);
  publish("/topic/b", 1);
  auto refused = client();
  refused.send(stomp::frame(command::send, {{"destination", "/topic/c"}, {"receipt", "r"}}, "x"));
  auto e = refused.receive();
  ASSERT_TRUE(e);
  ASSERT_EQ(e->command, command::error);
  EXPECT_EQ(e->header("message"), "too many journaled destinations");
  EXPECT_NE(e->body.find("limits.max_journaled_destinations"), std::string::npos) << e->body;
  EXPECT_NE(e->body.find("/topic/c"), std::string::npos) << e->body;
  EXPECT_TRUE(refused.wait_closed());

  EXPECT_EQ(publish("/topic/a", 1, 1), std::vector<std::string>{"2"});
  EXPECT_EQ(publish("/topic/b", 1, 1), std::vector<std::string>{"2"});
  auto live = client();
  EXPECT_TRUE(
      live.send_with_receipt(stomp::frame(command::send, {{"destination", "/topic/live.x"}}, "x"))
          .empty());
  auto probe = client();
  auto [messages, receipt] = replay(probe, "/topic/a", "last:5");
  EXPECT_EQ(messages.size(), 2u);
  EXPECT_EQ(receipt.header("x-head-seq"), "2");
}

// The bound counts what the journal has kept, across a restart too.
TEST_F(HistoryTest, JournaledDestinationBoundCountsDestinationsFromBeforeARestart) {
  publish("/topic/a", 1);
  publish("/topic/b", 1);
  server_.reset();
  auto c = settings();
  c.limits.max_journaled_destinations = 2;
  start(std::move(c));
  auto refused = client();
  refused.send(stomp::frame(command::send, {{"destination", "/topic/c"}}, "x"));
  auto e = refused.receive();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->header("message"), "too many journaled destinations");
  EXPECT_EQ(publish("/topic/b", 1, 1), std::vector<std::string>{"2"});
}

TEST_F(HistoryTest, TwoSubscriptionsOnOneConnectionReplayIndependently) {
  publish("/topic/room", 4);
  auto c = client();
  auto [a, ra] = replay(c, "/topic/room", "last:1", "a");
  auto [b, rb] = replay(c, "/topic/room", "after:1", "b");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].header("x-seq"), "4");
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].header("subscription"), "b");
  publish("/topic/room", 1, 4);
  std::set<std::string> subs;
  for (int i = 0; i < 2; ++i) {
    auto m = c.receive();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->header("x-seq"), "5");
    subs.insert(std::string(*m->header("subscription")));
  }
  EXPECT_EQ(subs, (std::set<std::string>{"a", "b"}));
}

TEST_F(HistoryTest, InvalidReplayValueIsAnErrorNamingIt) {
  for (const char* bad : {"last:abc", "foo:1", "after:-1", "last:", "since:1.5"}) {
    auto c = client();
    c.send(stomp::frame(command::subscribe,
                        {{"destination", "/topic/room"}, {"id", "s"}, {"x-replay", bad}}));
    auto e = c.receive();
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->command, command::error) << bad;
    EXPECT_EQ(e->header("message"), "invalid x-replay");
    EXPECT_NE(e->body.find(bad), std::string::npos) << e->body;
    EXPECT_TRUE(c.wait_closed());
  }
}

TEST_F(HistoryTest, ReplayOfAnUnjournaledDestinationIsAnError) {
  for (const char* dest : {"/queue/jobs", "/topic/live.typing"}) {
    auto c = client();
    c.send(stomp::frame(command::subscribe,
                        {{"destination", dest}, {"id", "s"}, {"x-replay", "last:1"}}));
    auto e = c.receive();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->command, command::error);
    EXPECT_NE(e->body.find(dest), std::string::npos) << e->body;
  }
}

TEST_F(HistoryTest, UnjournaledTopicsCarryNoSequence) {
  auto sub = client();
  sub.subscribe("/topic/live.typing", "s");
  auto pub = client();
  auto before = pub.send_with_receipt(
      stomp::frame(command::send, {{"destination", "/topic/live.typing"}}, "..."));
  auto m = sub.receive();
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->header("x-seq").has_value());
}

// Issue 14: x-epoch names what numbers the x-seqs: the journal file's, on every stored
// MESSAGE and RECEIPT, the same across a restart.
TEST_F(HistoryTest, MessagesAndReceiptsCarryTheJournalsEpochAcrossARestart) {
  const std::string room = "/topic/room.epoch";
  auto sub = client();
  sub.subscribe(room, "s");
  auto send_one = [&] {
    auto c = client();
    c.send(stomp::frame(command::send, {{"destination", room}, {"receipt", "r"}}, "hi"));
    auto r = c.receive();
    EXPECT_TRUE(r && r->command == command::receipt);
    return r ? std::string(r->header("x-epoch").value_or("")) : std::string();
  };
  const auto epoch = send_one();
  EXPECT_EQ(epoch.size(), 12u) << epoch;
  auto live = sub.receive();
  ASSERT_TRUE(live);
  EXPECT_EQ(live->header("x-epoch"), epoch);
  auto c = client();
  auto [messages, receipt] = replay(c, room, "last:1");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].header("x-epoch"), epoch);
  EXPECT_EQ(receipt.header("x-epoch"), epoch);
  server_->stop();
  server_.reset();
  start();
  EXPECT_EQ(send_one(), epoch);
}

// A client resuming with after:S of another epoch (a lost or replaced data directory) gets
// the history from the start and x-replay-complete: false, not the messages after some
// unrelated S.
TEST_F(HistoryTest, ResumingAfterASeqOfAnotherEpochGetsEverythingAndIsIncomplete) {
  publish("/topic/room", 3);
  auto c = client();
  auto [other, other_receipt] =
      replay(c, "/topic/room", "after:2", "a", {{"x-epoch", "0123456789ab"}});
  EXPECT_EQ(other.size(), 3u);
  EXPECT_EQ(other_receipt.header("x-replay-complete"), "false");
  const std::string epoch(other_receipt.header("x-epoch").value_or(""));
  auto [same, same_receipt] = replay(c, "/topic/room", "after:2", "b", {{"x-epoch", epoch}});
  ASSERT_EQ(same.size(), 1u);
  EXPECT_EQ(same[0].header("x-seq"), "3");
  EXPECT_EQ(same_receipt.header("x-replay-complete"), "true");
}

TEST_F(HistoryTest, RestartKeepsHistoryAndContinuesTheSequence) {
  publish("/topic/room", 3);
  server_->stop();
  server_.reset();
  start();
  EXPECT_EQ(publish("/topic/room", 1, 3), (std::vector<std::string>{"4"}));
  auto c = client();
  auto [messages, receipt] = replay(c, "/topic/room", "last:10");
  ASSERT_EQ(messages.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(messages[i].body, std::to_string(i));
}

// A publisher runs while subscribers join with x-replay: history and live must meet with no
// gap and no duplicate, every time.
TEST_F(HistoryTest, ReplayMeetsLiveWithNoGapAndNoDuplicateUnderConcurrentPublishing) {
  constexpr std::uint64_t total = 600;
  std::atomic<bool> failed{false};
  std::thread publisher([&] {
    try {
      auto c = client();
      for (std::uint64_t i = 0; i < total; ++i)
        c.send(stomp::frame(command::send, {{"destination", "/topic/busy"}}, std::to_string(i)));
      c.send_with_receipt(stomp::frame(command::disconnect));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "publisher: " << e.what();
      failed = true;
    }
  });
  // Joined however the rounds end, so a failed assertion can't leave it running.
  struct joiner {
    std::thread& t;
    ~joiner() { t.join(); }
  } join_publisher{publisher};
  for (int round = 0; round < 12 && !failed; ++round) {
    auto c = client();
    auto [messages, receipt] = replay(c, "/topic/busy", "after:0");
    // The cap (50) keeps the newest: history is consecutive and ends at the head.
    auto head = std::stoull(std::string(receipt.header("x-head-seq").value_or("0")));
    std::uint64_t expect = head - messages.size() + 1;
    for (const auto& m : messages)
      ASSERT_EQ(m.header("x-seq"), std::to_string(expect++))
          << "round " << round << " head " << head << " replayed " << messages.size() << " first "
          << *messages.front().header("x-seq") << " last " << *messages.back().header("x-seq");
    ASSERT_EQ(expect, head + 1);
    // Live from here until the publisher's last message.
    while (expect <= total) {
      auto m = c.receive(10s);
      ASSERT_TRUE(m) << "round " << round << " waiting for x-seq " << expect;
      ASSERT_EQ(m->header("x-seq"), std::to_string(expect)) << "round " << round;
      ++expect;
      if (expect > total) break;
      if (round % 2 == 0 && expect % 97 == 0) break;  // leave early sometimes
    }
  }
  EXPECT_FALSE(failed);
}

}  // namespace

namespace {

TEST(HistoryLockTest, SecondBrokerOnTheSameDataDirectoryRefusesToStart) {
  stompd_test::temp_dir dir;
  broker::config c;
  c.tcp.port = 0;
  c.websocket.enabled = false;
  c.admin.enabled = false;
  c.log_level = broker::log_level::off;
  c.data_dir = dir.path();
  broker::server first(c);
  first.start();
  broker::server second(c);
  try {
    second.start();
    FAIL() << "a second broker started on the same data directory";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("another stompd"), std::string::npos) << e.what();
  }
}

// Issue 12, item 2: a publisher far ahead of the journal is paused (its socket is not read)
// and resumed as appends are stored, over and over; nothing it sent is lost, its RECEIPTs
// still come after the store, and a subscriber sees every message once, in order.
TEST_F(HistoryTest, PublisherPausedByThePendingStoreBudgetLosesNothing) {
  auto c = settings();
  c.limits.max_pending_store_bytes = 64 * 1024;  // four of the bodies below
  server_.reset();
  start(c);
  auto sub = client();
  sub.subscribe("/topic/flood", "s");
  auto pub = client();
  const std::string body(16 * 1024, 'f');
  constexpr int count = 300;  // 4.8 MiB: the budget is reached and freed dozens of times
  for (int i = 0; i < count; ++i)
    pub.send(stomp::frame(command::send, {{"destination", "/topic/flood"}}, body));
  auto receipts =
      pub.send_with_receipt(stomp::frame(command::send, {{"destination", "/topic/flood"}}, "last"));
  (void)receipts;
  for (int i = 0; i <= count; ++i) {
    auto m = sub.receive();
    ASSERT_TRUE(m) << "after " << i;
    ASSERT_EQ(m->header("x-seq"), std::to_string(i + 1));
    if (i == count) {
      EXPECT_EQ(m->body, "last");
    }
  }
}

// Issue 12, item 3: transactions are bounded in bytes, not only in frames.
TEST_F(HistoryTest, TransactionsOverTheirByteBudgetAreRefused) {
  auto c = settings();
  c.limits.max_transaction_bytes = 64 * 1024;
  server_.reset();
  start(c);
  auto pub = client();
  pub.send_with_receipt(stomp::frame(command::begin, {{"transaction", "t"}}));
  const std::string body(20 * 1024, 't');
  for (int i = 0; i < 3; ++i)
    pub.send_with_receipt(
        stomp::frame(command::send, {{"destination", "/topic/tx"}, {"transaction", "t"}}, body));
  pub.send(stomp::frame(command::send, {{"destination", "/topic/tx"}, {"transaction", "t"}},
                        body));  // 80 KiB held: over the budget
  auto e = pub.receive();
  ASSERT_TRUE(e);
  ASSERT_EQ(e->command, command::error);
  EXPECT_EQ(e->header("message"), "transaction too large");
  EXPECT_TRUE(pub.wait_closed());
}

}  // namespace
