#include "routing/router.hpp"

#include "stomp/serializer.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace broker {
namespace {

// Workers are simulated: posted tasks wait in a per-worker list until run_worker().
struct fake_workers {
  std::vector<std::vector<std::function<void()>>> pending;
  explicit fake_workers(std::size_t n) : pending(n) {}
  router::post_function poster() {
    return [this](std::size_t w, std::function<void()> task) {
      pending[w].push_back(std::move(task));
    };
  }
  std::size_t run_worker(std::size_t w) {
    auto tasks = std::move(pending[w]);
    pending[w].clear();
    for (auto& t : tasks) t();
    return tasks.size();
  }
};

struct fake_subscriber final : topic_subscriber {
  std::vector<std::pair<std::string, std::uint64_t>> got;  // message id, key
  void on_topic_message(const message_ptr& m, std::uint64_t key) override {
    got.emplace_back(m->id, key);
  }
};

broker::held_bytes held{SIZE_MAX};

message_ptr make_message(std::string destination, std::string id) {
  const stomp::header_view h[] = {{"destination", destination}, {"message-id", id}};
  return std::make_shared<const message>(held, std::move(destination), std::move(id),
                                         stomp::shared_message(h, "body"), true);
}

TEST(RouterTest, DeliversInlineToSubscribersOnThePublishingWorker) {
  fake_workers workers(2);
  router r(2, workers.poster());
  fake_subscriber a;
  r.subscribe(0, "/topic/a", &a, 7);
  r.publish(0, make_message("/topic/a", "m1"));
  ASSERT_EQ(a.got.size(), 1u);
  EXPECT_EQ(a.got[0].first, "m1");
  EXPECT_EQ(a.got[0].second, 7u);
  EXPECT_TRUE(workers.pending[1].empty());
}

TEST(RouterTest, PostsOneTaskPerRemoteWorkerNotPerSubscriber) {
  fake_workers workers(3);
  router r(3, workers.poster());
  std::vector<fake_subscriber> subs(10);
  for (std::size_t i = 0; i < subs.size(); ++i) r.subscribe(1, "/topic/a", &subs[i], i);
  r.publish(0, make_message("/topic/a", "m1"));
  EXPECT_TRUE(workers.pending[1].empty());  // set aside until the burst's flush
  r.flush(0);
  EXPECT_EQ(workers.pending[1].size(), 1u);
  EXPECT_TRUE(workers.pending[2].empty());
  for (const auto& s : subs) EXPECT_TRUE(s.got.empty());
  workers.run_worker(1);
  for (const auto& s : subs) EXPECT_EQ(s.got.size(), 1u);
  EXPECT_EQ(r.stats().delivered.load(), 10u);
}

TEST(RouterTest, TwoSubscriptionsOfOneSubscriberEachGetACopy) {
  fake_workers workers(1);
  router r(1, workers.poster());
  fake_subscriber a;
  r.subscribe(0, "/topic/a", &a, 1);
  r.subscribe(0, "/topic/a", &a, 2);
  r.publish(0, make_message("/topic/a", "m1"));
  ASSERT_EQ(a.got.size(), 2u);
  EXPECT_EQ(a.got[0].second, 1u);
  EXPECT_EQ(a.got[1].second, 2u);
}

TEST(RouterTest, DoesNotDeliverToOtherDestinations) {
  fake_workers workers(1);
  router r(1, workers.poster());
  fake_subscriber a;
  r.subscribe(0, "/topic/a", &a, 1);
  r.publish(0, make_message("/topic/b", "m1"));
  EXPECT_TRUE(a.got.empty());
}

TEST(RouterTest, UnsubscribedSubscriberGetsNothingEvenFromQueuedTasks) {
  fake_workers workers(2);
  router r(2, workers.poster());
  fake_subscriber a;
  r.subscribe(1, "/topic/a", &a, 1);
  r.publish(0, make_message("/topic/a", "m1"));
  r.flush(0);  // task queued for worker 1
  r.unsubscribe(1, "/topic/a", &a, 1);
  workers.run_worker(1);
  EXPECT_TRUE(a.got.empty());
  EXPECT_EQ(r.destination_count(), 0u);
}

TEST(RouterTest, KeepsPublishOrderPerPublisher) {
  fake_workers workers(2);
  router r(2, workers.poster());
  fake_subscriber local, remote;
  r.subscribe(0, "/topic/a", &local, 1);
  r.subscribe(1, "/topic/a", &remote, 1);
  for (int i = 0; i < 100; ++i) {
    r.publish(0, make_message("/topic/a", std::to_string(i)));
    if (i % 7 == 0) r.flush(0);  // bursts of different sizes
  }
  r.flush(0);
  workers.run_worker(1);
  ASSERT_EQ(local.got.size(), 100u);
  ASSERT_EQ(remote.got.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(local.got[i].first, std::to_string(i));
    EXPECT_EQ(remote.got[i].first, std::to_string(i));
  }
}

TEST(RouterTest, ForgetsDestinationWithItsLastSubscriber) {
  fake_workers workers(2);
  router r(2, workers.poster());
  fake_subscriber a, b;
  r.subscribe(0, "/topic/a", &a, 1);
  r.subscribe(1, "/topic/a", &b, 1);
  EXPECT_EQ(r.destination_count(), 1u);
  r.unsubscribe(0, "/topic/a", &a, 1);
  EXPECT_EQ(r.destination_count(), 1u);
  r.publish(0, make_message("/topic/a", "m1"));
  r.flush(0);
  EXPECT_TRUE(workers.pending[0].empty());
  EXPECT_EQ(workers.pending[1].size(), 1u);
  r.unsubscribe(1, "/topic/a", &b, 1);
  EXPECT_EQ(r.destination_count(), 0u);
}

TEST(RouterTest, OneBurstOfPublishesIsOnePostPerRemoteWorker) {
  fake_workers workers(3);
  router r(3, workers.poster());
  fake_subscriber b, c;
  r.subscribe(1, "/topic/a", &b, 1);
  r.subscribe(2, "/topic/b", &c, 1);
  for (int i = 0; i < 10; ++i) {
    r.publish(0, make_message("/topic/a", "a" + std::to_string(i)));
    r.publish(0, make_message("/topic/b", "b" + std::to_string(i)));
  }
  r.flush(0);
  r.flush(0);  // nothing left: no empty task
  EXPECT_EQ(workers.pending[1].size(), 1u);
  EXPECT_EQ(workers.pending[2].size(), 1u);
  workers.run_worker(1);
  workers.run_worker(2);
  ASSERT_EQ(b.got.size(), 10u);
  ASSERT_EQ(c.got.size(), 10u);
  EXPECT_EQ(b.got[9].first, "a9");
  EXPECT_EQ(c.got[0].first, "b0");
}

TEST(RouterTest, RejectsMoreWorkersThanItsMaskHolds) {
  EXPECT_THROW(router(router::max_workers + 1, [](std::size_t, std::function<void()>) {}),
               std::invalid_argument);
  EXPECT_THROW(router(0, [](std::size_t, std::function<void()>) {}), std::invalid_argument);
}

}  // namespace
}  // namespace broker
