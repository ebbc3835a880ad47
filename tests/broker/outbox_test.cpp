#include "session/outbox.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using broker::outbox;

// Stands in for a transport: takes what start_write() gathered, as one write would.
std::vector<outbox::credit> written;  // what finish_write() reports; tests here send none

struct fake_writer {
  std::string written;
  bool text = true;
  int writes = 0;

  void write(outbox& o) {
    auto w = o.start_write();
    for (const auto& b : w.buffers) written.append(b.data, b.size);
    text = w.text;
    ++writes;
  }
};

outbox::entry frame(std::string bytes, bool replayed = false) {
  outbox::entry e;
  e.bytes = std::move(bytes);
  e.replayed = replayed;
  return e;
}

outbox::entry delivery(const broker::message_ptr& m, std::string_view head) {
  outbox::entry e;
  std::copy(head.begin(), head.end(), e.inline_head.begin());
  e.inline_size = static_cast<std::uint8_t>(head.size());
  e.msg = m;
  e.tail = m->encoded.tail(stomp::version::v1_2);
  return e;
}

broker::held_bytes held{SIZE_MAX};

broker::message_ptr message(std::string_view body, bool utf8 = true) {
  const stomp::header_view h[] = {{"destination", "/topic/a"}};
  return std::make_shared<const broker::message>(held, "/topic/a", "1",
                                                 stomp::shared_message(h, body), utf8);
}

TEST(OutboxTest, FramesQueuedTogetherLeaveInOneWrite) {
  outbox o({1 << 20, 100});
  ASSERT_TRUE(o.push(frame("A")));
  ASSERT_TRUE(o.push(frame("BB")));
  ASSERT_TRUE(o.push(frame("CCC")));
  fake_writer w;
  w.write(o);
  EXPECT_EQ(w.writes, 1);
  EXPECT_EQ(w.written, "ABBCCC");
  EXPECT_TRUE(o.writing());
  EXPECT_EQ(o.finish_write(written), 6u);
  EXPECT_TRUE(o.empty());
  EXPECT_EQ(o.bytes(), 0u);
}

TEST(OutboxTest, ASingleMessageKeepsItsSharedTailUncopied) {
  outbox o({1 << 20, 100});
  auto m = message("hello");
  ASSERT_TRUE(o.push(delivery(m, "MESSAGE\nsubscription:1\n")));
  auto w = o.start_write();
  EXPECT_EQ(std::string_view(w.buffers[0].data, w.buffers[0].size), "MESSAGE\nsubscription:1\n");
  auto tail = m->encoded.tail(stomp::version::v1_2);
  EXPECT_EQ(w.buffers[1].data, tail.data());  // the message's own bytes, not a copy
  EXPECT_EQ(w.buffers[1].size, tail.size());
}

TEST(OutboxTest, AWriteCoalescesNoMoreThanItsByteBound) {
  outbox o({1 << 20, 100});
  std::string half(outbox::max_coalesced_bytes / 2 + 1, 'x');
  ASSERT_TRUE(o.push(frame(half)));
  ASSERT_TRUE(o.push(frame(half)));
  fake_writer w;
  w.write(o);
  EXPECT_EQ(w.written.size(), half.size());  // the second would pass the bound: next write
  o.finish_write(written);
  w.write(o);
  EXPECT_EQ(w.writes, 2);
  EXPECT_EQ(o.finish_write(written), half.size());
}

TEST(OutboxTest, ABinaryBodyMakesTheWholeWriteBinary) {
  outbox o({1 << 20, 100});
  ASSERT_TRUE(o.push(delivery(message("text"), "H\n")));
  ASSERT_TRUE(o.push(delivery(message("\xff", false), "H\n")));
  fake_writer w;
  w.write(o);
  EXPECT_FALSE(w.text);
}

TEST(OutboxTest, SaysWhenLiveBytesExceedTheBudget) {
  outbox o({10, 100});
  EXPECT_TRUE(o.push(frame("12345")));
  EXPECT_TRUE(o.push(frame("67890")));  // exactly at the budget
  EXPECT_FALSE(o.push(frame("!")));
}

TEST(OutboxTest, SaysWhenFramesExceedTheBudget) {
  outbox o({1 << 20, 2});
  EXPECT_TRUE(o.push(frame("a")));
  EXPECT_TRUE(o.push(frame("b")));
  EXPECT_FALSE(o.push(frame("c")));
}

TEST(OutboxTest, ReplayedHistoryIsNotHeldAgainstTheBudget) {
  outbox o({4, 100});
  EXPECT_TRUE(o.push(frame("history-1", true)));
  EXPECT_TRUE(o.push(frame("history-2", true)));
  EXPECT_EQ(o.replay_bytes(), 18u);
  EXPECT_TRUE(o.push(frame("live")));  // 4 live bytes: within the budget
  EXPECT_FALSE(o.push(frame("!")));
}

TEST(OutboxTest, DropUnwrittenKeepsTheWriteInFlight) {
  outbox o({1 << 20, 100});
  ASSERT_TRUE(o.push(frame("first")));
  fake_writer w;
  w.write(o);  // "first" is in flight
  ASSERT_TRUE(o.push(frame("second")));
  ASSERT_TRUE(o.push(frame("third", true)));
  o.drop_unwritten();
  EXPECT_EQ(o.frames(), 1u);
  EXPECT_EQ(o.bytes(), 5u);
  EXPECT_EQ(o.replay_bytes(), 0u);
  EXPECT_EQ(o.finish_write(written), 5u);
  EXPECT_TRUE(o.empty());
}

TEST(OutboxTest, FramesQueuedDuringAWriteGoInTheNextOne) {
  outbox o({1 << 20, 100});
  ASSERT_TRUE(o.push(frame("1")));
  fake_writer w;
  w.write(o);
  ASSERT_TRUE(o.push(frame("2")));
  ASSERT_TRUE(o.push(frame("3")));
  EXPECT_EQ(o.finish_write(written), 1u);
  w.write(o);
  EXPECT_EQ(w.written, "123");
  EXPECT_EQ(o.finish_write(written), 2u);
}

TEST(OutboxTest, QueueDeliveriesAreBoundedByTheirQueueNotTheBudget) {
  outbox o({4, 100});
  auto m = message("queued");
  auto e = delivery(m, "H\n");
  e.credit_key = 7;
  e.credit_bytes = 6;
  EXPECT_TRUE(o.push(std::move(e)));  // more than 4 bytes, but the queue's window bounds it
  EXPECT_TRUE(o.push(frame("live")));
  EXPECT_FALSE(o.push(frame("!")));
}

TEST(OutboxTest, FinishWriteReportsTheQueueDeliveriesItWrote) {
  outbox o({1 << 20, 100});
  auto m = message("x");
  for (std::uint64_t key : {3, 3, 5}) {
    auto e = delivery(m, "H\n");
    e.credit_key = key;
    e.credit_bytes = 10;
    ASSERT_TRUE(o.push(std::move(e)));
  }
  ASSERT_TRUE(o.push(frame("topic")));
  std::vector<outbox::credit> got;
  o.start_write();
  o.finish_write(got);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, 3u);
  EXPECT_EQ(got[0].count, 2u);
  EXPECT_EQ(got[0].bytes, 20u);
  EXPECT_EQ(got[1].key, 5u);
  EXPECT_EQ(got[1].count, 1u);
}

TEST(OutboxTest, TakeBackDropsUnwrittenDeliveriesAndCountsThoseInFlight) {
  outbox o({1 << 20, 100});
  auto m = message("x");
  auto queued = [&](std::uint64_t key) {
    auto e = delivery(m, "H\n");
    e.credit_key = key;
    e.credit_bytes = 1;
    return e;
  };
  ASSERT_TRUE(o.push(queued(9)));
  o.start_write();  // the first delivery is in flight
  ASSERT_TRUE(o.push(queued(9)));
  ASSERT_TRUE(o.push(frame("other")));
  ASSERT_TRUE(o.push(queued(9)));
  auto in_flight = o.take_back(9);
  EXPECT_EQ(in_flight.count, 1u);
  EXPECT_EQ(o.frames(), 2u);  // the one in flight and "other"
  std::vector<outbox::credit> got;
  o.finish_write(got);
  fake_writer w;
  w.write(o);
  EXPECT_EQ(w.written, "other");
}

}  // namespace
