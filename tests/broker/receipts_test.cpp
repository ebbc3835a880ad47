#include "session/receipts.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using broker::receipt_order;

// What drain() hands out, as "id" or "id x-seq=7".
std::vector<std::string> drained(receipt_order& order) {
  std::vector<std::string> out;
  order.drain([&](std::string_view id, const std::vector<receipt_order::header>& extra) {
    std::string s(id);
    for (const auto& h : extra) s += " " + h.name + "=" + h.value;
    out.push_back(s);
  });
  return out;
}

TEST(ReceiptOrderTest, ReceiptsAddedBehindAHeldOneWaitForIt) {
  receipt_order order;
  ASSERT_TRUE(order.empty());
  auto stored = order.hold("send");
  order.add("unsubscribe");
  order.add("begin");
  EXPECT_TRUE(drained(order).empty());
  EXPECT_EQ(order.id(stored), "send");
  order.complete(stored, {{"x-seq", "7"}});
  EXPECT_EQ(drained(order), (std::vector<std::string>{"send x-seq=7", "unsubscribe", "begin"}));
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(order.bytes(), 0u);
}

TEST(ReceiptOrderTest, ALaterHeldReceiptCompletedFirstStillWaitsItsTurn) {
  receipt_order order;
  auto first = order.hold("first");
  auto second = order.hold("second");
  order.add("third");
  order.complete(second);
  EXPECT_TRUE(drained(order).empty());
  order.complete(first);
  EXPECT_EQ(drained(order), (std::vector<std::string>{"first", "second", "third"}));
}

TEST(ReceiptOrderTest, TicketsStayValidAcrossDrains) {
  receipt_order order;
  auto a = order.hold("a");
  order.complete(a);
  EXPECT_EQ(drained(order), std::vector<std::string>{"a"});
  auto b = order.hold("b");
  auto c = order.hold("c");
  EXPECT_EQ(order.id(c), "c");
  order.complete(b);
  EXPECT_EQ(drained(order), std::vector<std::string>{"b"});
  order.complete(c, {{"x-replay-count", "0"}});
  EXPECT_EQ(drained(order), std::vector<std::string>{"c x-replay-count=0"});
}

TEST(ReceiptOrderTest, BytesCountWhatWaits) {
  receipt_order order;
  auto held = order.hold(std::string(1000, 'r'));
  order.add(std::string(500, 'q'));
  EXPECT_GE(order.bytes(), 1500u);
  order.complete(held, {{"x-seq", "12345"}});
  drained(order);
  EXPECT_EQ(order.bytes(), 0u);
}

}  // namespace
