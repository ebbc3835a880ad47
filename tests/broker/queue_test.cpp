#include "routing/queue.hpp"

#include "stomp/serializer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

namespace broker {
namespace {

struct fake_consumer final : queue_consumer {
  struct delivery {
    std::string id;
    std::uint64_t key;
    bool redelivered;
  };
  std::vector<delivery> got;
  void on_queue_message(const message_ptr& m, std::uint64_t key, bool redelivered) override {
    got.push_back({m->id, key, redelivered});
  }
};

broker::held_bytes held{SIZE_MAX};

message_ptr make_message(std::string id) {
  const stomp::header_view h[] = {{"destination", "/queue/q"}, {"message-id", id}};
  return std::make_shared<const message>(held, "/queue/q", std::move(id),
                                         stomp::shared_message(h, "x"), true);
}

TEST(QueueTest, HoldsMessagesUntilAConsumerArrives) {
  queue q("/queue/q", 10);
  EXPECT_TRUE(q.enqueue(make_message("1")));
  EXPECT_TRUE(q.enqueue(make_message("2")));
  EXPECT_EQ(q.depth(), 2u);
  fake_consumer c;
  q.add_consumer(&c, 1, ack_mode::auto_ack, 0);
  ASSERT_EQ(c.got.size(), 2u);
  EXPECT_EQ(c.got[0].id, "1");
  EXPECT_EQ(c.got[1].id, "2");
  EXPECT_EQ(q.depth(), 0u);
}

TEST(QueueTest, RefusesMessagesBeyondItsBound) {
  queue q("/queue/q", 2);
  EXPECT_TRUE(q.enqueue(make_message("1")));
  EXPECT_TRUE(q.enqueue(make_message("2")));
  EXPECT_FALSE(q.enqueue(make_message("3")));
}

TEST(QueueTest, DistributesRoundRobinAmongConsumers) {
  queue q("/queue/q", 10);
  fake_consumer a, b;
  q.add_consumer(&a, 1, ack_mode::auto_ack, 0);
  q.add_consumer(&b, 1, ack_mode::auto_ack, 0);
  for (int i = 0; i < 6; ++i) q.enqueue(make_message(std::to_string(i)));
  ASSERT_EQ(a.got.size(), 3u);
  ASSERT_EQ(b.got.size(), 3u);
  EXPECT_EQ(a.got[0].id, "0");
  EXPECT_EQ(b.got[0].id, "1");
}

TEST(QueueTest, PrefetchBoundsUnacknowledgedMessages) {
  queue q("/queue/q", 10);
  fake_consumer c;
  q.add_consumer(&c, 1, ack_mode::client_individual, 2);
  for (int i = 0; i < 5; ++i) q.enqueue(make_message(std::to_string(i)));
  EXPECT_EQ(c.got.size(), 2u);
  EXPECT_TRUE(q.ack(&c, 1, "0", false));
  EXPECT_EQ(c.got.size(), 3u);
  EXPECT_EQ(c.got[2].id, "2");
}

TEST(QueueTest, CumulativeAckSettlesEarlierDeliveries) {
  queue q("/queue/q", 10);
  fake_consumer c;
  q.add_consumer(&c, 1, ack_mode::client, 3);
  for (int i = 0; i < 6; ++i) q.enqueue(make_message(std::to_string(i)));
  ASSERT_EQ(c.got.size(), 3u);
  EXPECT_TRUE(q.ack(&c, 1, "1", true));  // settles 0 and 1
  EXPECT_EQ(c.got.size(), 5u);
  EXPECT_FALSE(q.ack(&c, 1, "0", true));  // already settled
}

TEST(QueueTest, NackRedeliversAtTheHead) {
  queue q("/queue/q", 10);
  fake_consumer c;
  q.add_consumer(&c, 1, ack_mode::client_individual, 1);
  q.enqueue(make_message("a"));
  q.enqueue(make_message("b"));
  ASSERT_EQ(c.got.size(), 1u);
  EXPECT_TRUE(q.nack(&c, 1, "a", false));
  ASSERT_EQ(c.got.size(), 2u);
  EXPECT_EQ(c.got[1].id, "a");
  EXPECT_TRUE(c.got[1].redelivered);
}

TEST(QueueTest, RemovedConsumersUnackedMessagesGoToTheNextConsumerInOrder) {
  queue q("/queue/q", 10);
  fake_consumer a, b;
  q.add_consumer(&a, 1, ack_mode::client, 0);
  q.enqueue(make_message("1"));
  q.enqueue(make_message("2"));
  ASSERT_EQ(a.got.size(), 2u);
  q.add_consumer(&b, 1, ack_mode::client, 0);
  q.remove_consumer(&a, 1);
  ASSERT_EQ(b.got.size(), 2u);
  EXPECT_EQ(b.got[0].id, "1");
  EXPECT_EQ(b.got[1].id, "2");
  EXPECT_TRUE(b.got[0].redelivered);
  EXPECT_TRUE(q.idle() == false);
}

TEST(QueueTest, UnknownAckIsReported) {
  queue q("/queue/q", 10);
  fake_consumer c;
  q.add_consumer(&c, 1, ack_mode::client, 0);
  EXPECT_FALSE(q.ack(&c, 1, "nope", false));
  EXPECT_FALSE(q.ack(&c, 2, "nope", false));
}

TEST(QueueRegistryTest, DropsIdleQueues) {
  queue_registry reg(10, 100);
  fake_consumer c;
  auto q =
      reg.with_queue("/queue/q", [&](queue& x) { x.add_consumer(&c, 1, ack_mode::auto_ack, 0); });
  EXPECT_EQ(reg.size(), 1u);
  q->remove_consumer(&c, 1);
  reg.release("/queue/q");
  EXPECT_EQ(reg.size(), 0u);
}

TEST(QueueTest, AutoAckConsumerGetsNoMoreThanItsWriteWindowUntilWritten) {
  queue q("/queue/q", 100, {3, 1 << 20});
  for (int i = 0; i < 10; ++i) q.enqueue(make_message(std::to_string(i)));
  fake_consumer c;
  q.add_consumer(&c, 1, ack_mode::auto_ack, 0);
  EXPECT_EQ(c.got.size(), 3u);
  EXPECT_EQ(q.depth(), 7u);
  q.written(&c, 1, 2, 2 * queue::delivery_bytes(*make_message("0")));
  EXPECT_EQ(c.got.size(), 5u);
  EXPECT_EQ(q.unacked(&c, 1), 3u);  // auto-ack: handed over, not yet written
}

TEST(QueueTest, AWindowInBytesStillLetsOneLargeMessageGo) {
  queue q("/queue/q", 100, {64, 1});  // every message is over the byte window
  q.enqueue(make_message("a"));
  q.enqueue(make_message("b"));
  fake_consumer c;
  q.add_consumer(&c, 1, ack_mode::auto_ack, 0);
  ASSERT_EQ(c.got.size(), 1u);
  q.written(&c, 1, 1, queue::delivery_bytes(*make_message("a")));
  EXPECT_EQ(c.got.size(), 2u);
}

TEST(QueueTest, UnwrittenAutoAckDeliveriesReturnAsTheyWereWhenTheConsumerLeaves) {
  queue q("/queue/q", 100, {4, 1 << 20});
  for (int i = 0; i < 3; ++i) q.enqueue(make_message(std::to_string(i)));
  fake_consumer gone;
  q.add_consumer(&gone, 1, ack_mode::auto_ack, 0);
  ASSERT_EQ(gone.got.size(), 3u);
  q.written(&gone, 1, 1, queue::delivery_bytes(*make_message("0")));  // "0" was written
  q.remove_consumer(&gone, 1);
  fake_consumer next;
  q.add_consumer(&next, 1, ack_mode::auto_ack, 0);
  ASSERT_EQ(next.got.size(), 2u);
  EXPECT_EQ(next.got[0].id, "1");
  EXPECT_FALSE(next.got[0].redelivered);  // never written, so never delivered
  EXPECT_EQ(next.got[1].id, "2");
}

TEST(QueueTest, ClientAckNeedsBothWindowAndPrefetchCredit) {
  queue q("/queue/q", 100, {2, 1 << 20});
  for (int i = 0; i < 5; ++i) q.enqueue(make_message(std::to_string(i)));
  fake_consumer c;
  q.add_consumer(&c, 1, ack_mode::client_individual, 3);
  EXPECT_EQ(c.got.size(), 2u);  // the window
  q.written(&c, 1, 2, 2 * queue::delivery_bytes(*make_message("0")));
  EXPECT_EQ(c.got.size(), 3u);  // prefetch 3: one more, then none until an ACK
  q.written(&c, 1, 1, queue::delivery_bytes(*make_message("0")));
  EXPECT_EQ(c.got.size(), 3u);
  EXPECT_TRUE(q.ack(&c, 1, "0", false));
  EXPECT_EQ(c.got.size(), 4u);
}

// Issue 12, item 11: limits.max_queues bounds how many queues exist at once, not what they do.
TEST(QueueRegistryTest, RefusesANewQueuePastMaxQueuesWithoutRunningFn) {
  queue_registry reg(10, 2);
  fake_consumer c;
  auto a =
      reg.with_queue("/queue/a", [&](queue& x) { x.add_consumer(&c, 1, ack_mode::auto_ack, 0); });
  auto b =
      reg.with_queue("/queue/b", [&](queue& x) { x.add_consumer(&c, 2, ack_mode::auto_ack, 0); });
  ASSERT_TRUE(a && b);
  bool ran = false;
  EXPECT_EQ(reg.with_queue("/queue/c", [&](queue&) { ran = true; }), nullptr);
  EXPECT_FALSE(ran);
  EXPECT_EQ(reg.size(), 2u);
}

TEST(QueueRegistryTest, ExistingQueuesKeepWorkingAtMaxQueues) {
  queue_registry reg(10, 1);
  fake_consumer c;
  auto a =
      reg.with_queue("/queue/a", [&](queue& x) { x.add_consumer(&c, 1, ack_mode::client, 0); });
  ASSERT_TRUE(a);
  bool accepted = false;
  EXPECT_EQ(reg.with_queue("/queue/a", [&](queue& x) { accepted = x.enqueue(make_message("1")); }),
            a);
  EXPECT_TRUE(accepted);
}

// A dropped queue (idle, or fresh and refused its message) gives its place back.
TEST(QueueRegistryTest, DroppedQueuesFreeTheirPlace) {
  queue_registry reg(1, 1);
  fake_consumer c;
  auto a =
      reg.with_queue("/queue/a", [&](queue& x) { x.add_consumer(&c, 1, ack_mode::auto_ack, 0); });
  ASSERT_TRUE(a);
  a->remove_consumer(&c, 1);
  reg.release("/queue/a");
  EXPECT_EQ(reg.size(), 0u);
  // A fresh queue that ends up idle is dropped at once and does not keep its place either.
  EXPECT_NE(reg.with_queue("/queue/b", [](queue&) {}), nullptr);
  EXPECT_EQ(reg.size(), 0u);
  EXPECT_NE(
      reg.with_queue("/queue/c", [&](queue& x) { x.add_consumer(&c, 3, ack_mode::auto_ack, 0); }),
      nullptr);
  EXPECT_EQ(reg.with_queue("/queue/d", [](queue&) {}), nullptr);
}

// What a shared engine's store hears from a queue (queue_source), called with the queue's
// mutex held: recorded only.
struct recording_source final : queue_source {
  int hungry_calls = 0;
  std::vector<std::string> settled_ids, returned_ids;
  int returned_calls = 0;
  bool shared() const noexcept override { return true; }
  void hungry(const std::shared_ptr<queue>&) override { ++hungry_calls; }
  void settled(const queue&, const message_ptr& m) override { settled_ids.push_back(m->id); }
  void returned(const queue&, std::vector<message_ptr> ms) override {
    ++returned_calls;
    for (auto& m : ms) returned_ids.push_back(m->id);
  }
};

std::vector<queue::supplied> supply_of(std::initializer_list<const char*> ids) {
  std::vector<queue::supplied> out;
  for (const char* id : ids) out.push_back({make_message(id), false});
  return out;
}

class QueueSourceTest : public ::testing::Test {
 protected:
  recording_source src;
  std::atomic<queue_source*> source{&src};
  std::shared_ptr<queue> q =
      std::make_shared<queue>("/queue/q", 10, queue::write_window{}, &source);
};

TEST_F(QueueSourceTest, AConsumerMakesTheQueueHungryOnceUntilSomethingIsSupplied) {
  fake_consumer c;
  q->add_consumer(&c, 1, ack_mode::client_individual, 3);
  EXPECT_EQ(src.hungry_calls, 1);
  EXPECT_EQ(q->wanted(), 3u);  // its prefetch
  fake_consumer d;
  q->add_consumer(&d, 1, ack_mode::client_individual, 2);
  EXPECT_EQ(src.hungry_calls, 1) << "still hungry: told once";
  EXPECT_EQ(q->wanted(), 5u);
  q->supply(supply_of({"1", "2", "3", "4", "5"}));
  EXPECT_EQ(c.got.size() + d.got.size(), 5u);
  EXPECT_EQ(q->wanted(), 0u);
  EXPECT_EQ(src.hungry_calls, 1) << "fed: not hungry";
  EXPECT_TRUE(q->ack(&c, 1, c.got[0].id, false));
  EXPECT_EQ(src.settled_ids, std::vector<std::string>{c.got[0].id});
  EXPECT_EQ(src.hungry_calls, 2) << "an ack opened room for one more";
  EXPECT_EQ(q->wanted(), 1u);
}

TEST_F(QueueSourceTest, NackRequeuesHereAndAutoAckSettlesWhenWritten) {
  fake_consumer c, a;
  q->add_consumer(&c, 1, ack_mode::client_individual, 1);
  q->supply(supply_of({"1"}));
  ASSERT_EQ(c.got.size(), 1u);
  EXPECT_TRUE(q->nack(&c, 1, "1", false));
  ASSERT_EQ(c.got.size(), 2u);
  EXPECT_TRUE(c.got[1].redelivered);
  EXPECT_TRUE(src.settled_ids.empty()) << "a NACK settles nothing";
  q->add_consumer(&a, 2, ack_mode::auto_ack, 0);
  q->supply(supply_of({"2"}));
  ASSERT_EQ(a.got.size(), 1u);
  EXPECT_TRUE(src.settled_ids.empty()) << "auto-ack: settled once written, not before";
  q->written(&a, 2, 1, queue::delivery_bytes(*make_message("2")));
  EXPECT_EQ(src.settled_ids, std::vector<std::string>{"2"});
}

TEST_F(QueueSourceTest, TheLastConsumerLeavingGivesBackWhatItHeldAndWhatWaited) {
  fake_consumer c;
  q->add_consumer(&c, 1, ack_mode::client_individual, 2);
  q->supply(supply_of({"1", "2", "3"}));  // one more than its prefetch: it waits
  ASSERT_EQ(c.got.size(), 2u);
  q->remove_consumer(&c, 1);
  EXPECT_EQ(src.returned_calls, 1);
  EXPECT_EQ(src.returned_ids, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_TRUE(q->idle());
  q->supply(supply_of({"4"}));  // a take that was on its way: straight back
  EXPECT_EQ(src.returned_ids.back(), "4");
  EXPECT_TRUE(q->idle());
}

TEST(QueueTest, AReservedPlaceCountsAgainstTheBoundUntilSuppliedOrGivenUp) {
  auto q = std::make_shared<queue>("/queue/q", 2);
  EXPECT_TRUE(q->reserve());
  EXPECT_TRUE(q->reserve());
  EXPECT_FALSE(q->reserve()) << "two on their way to the store: full";
  EXPECT_FALSE(q->idle()) << "a queue with places reserved is not dropped";
  q->unreserve();  // a store that failed
  q->supply({{make_message("1"), false}}, 1);
  EXPECT_EQ(q->depth(), 1u);
  EXPECT_TRUE(q->reserve());
  EXPECT_FALSE(q->reserve()) << "one waits, one on its way";
  fake_consumer c;
  q->add_consumer(&c, 1, ack_mode::auto_ack, 0);
  EXPECT_EQ(c.got.size(), 1u);
  EXPECT_TRUE(q->reserve()) << "taken by a consumer: room again";
}

}  // namespace
}  // namespace broker
