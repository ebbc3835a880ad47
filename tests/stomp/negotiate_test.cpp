#include "stomp/negotiate.hpp"

#include <gtest/gtest.h>

namespace {

using stomp::heart_beat;
using stomp::version;

TEST(NegotiateVersionTest, AbsentAcceptVersionMeansOnePointZero) {
  EXPECT_EQ(stomp::negotiate_version(std::nullopt), version::v1_0);
}

TEST(NegotiateVersionTest, PicksTheHighestCommonVersion) {
  EXPECT_EQ(stomp::negotiate_version("1.0,1.1,1.2"), version::v1_2);
  EXPECT_EQ(stomp::negotiate_version("1.2,1.0"), version::v1_2);
  EXPECT_EQ(stomp::negotiate_version("1.1"), version::v1_1);
}

TEST(NegotiateVersionTest, IgnoresUnknownVersionsAndSpaces) {
  EXPECT_EQ(stomp::negotiate_version("2.0, 1.1 ,9"), version::v1_1);
}

TEST(NegotiateVersionTest, NoCommonVersionIsNullopt) {
  EXPECT_EQ(stomp::negotiate_version("2.0,3.0"), std::nullopt);
  EXPECT_EQ(stomp::negotiate_version(""), std::nullopt);
}

TEST(ParseHeartBeatTest, AbsentMeansZeroZero) {
  auto hb = stomp::parse_heart_beat(std::nullopt);
  ASSERT_TRUE(hb);
  EXPECT_EQ(hb->send_ms, 0u);
  EXPECT_EQ(hb->receive_ms, 0u);
}

TEST(ParseHeartBeatTest, ReadsBothNumbersWithSpacesAround) {
  auto hb = stomp::parse_heart_beat(" 1000 , 2500");
  ASSERT_TRUE(hb);
  EXPECT_EQ(hb->send_ms, 1000u);
  EXPECT_EQ(hb->receive_ms, 2500u);
}

TEST(ParseHeartBeatTest, RejectsMalformedValues) {
  for (std::string_view bad : {"1000", "a,b", "-1,0", "1,", ",1", "1,2,3", "1.5,2", ""})
    EXPECT_EQ(stomp::parse_heart_beat(bad), std::nullopt) << bad;
}

TEST(NegotiateHeartBeatTest, EachDirectionUsesTheSlowerOfTheTwoSides) {
  // The server can send every 10 s and wants to hear every 10 s; the client can send every
  // 4 s and wants to hear every 20 s.
  auto agreed = stomp::negotiate_heart_beat(heart_beat{10'000, 10'000}, heart_beat{4'000, 20'000});
  EXPECT_EQ(agreed.send_every_ms, 20'000u);
  EXPECT_EQ(agreed.expect_every_ms, 10'000u);
}

TEST(NegotiateHeartBeatTest, ZeroOnEitherSideTurnsThatDirectionOff) {
  auto agreed = stomp::negotiate_heart_beat(heart_beat{10'000, 0}, heart_beat{5'000, 0});
  EXPECT_EQ(agreed.send_every_ms, 0u);    // the client wants none
  EXPECT_EQ(agreed.expect_every_ms, 0u);  // we expect none
}

// The server prefers 10 s both ways, never goes below 1 s nor offers above 60 s.
constexpr heart_beat preferred{10'000, 10'000};

TEST(AnswerHeartBeatTest, OffersTheClientsOwnIntervalsSoTheyAreTheOnesAgreed) {
  heart_beat client{1'000, 1'500};  // sends every 1 s, wants to hear every 1.5 s
  auto offer = stomp::answer_heart_beat(client, preferred, 1'000, 60'000);
  EXPECT_EQ(offer.send_ms, 1'500u);
  EXPECT_EQ(offer.receive_ms, 1'000u);
  auto agreed = stomp::negotiate_heart_beat(offer, client);
  EXPECT_EQ(agreed.send_every_ms, 1'500u);
  EXPECT_EQ(agreed.expect_every_ms, 1'000u);
}

TEST(AnswerHeartBeatTest, TheFloorRaisesIntervalsShorterThanIt) {
  heart_beat client{10, 50};
  auto offer = stomp::answer_heart_beat(client, preferred, 1'000, 60'000);
  auto agreed = stomp::negotiate_heart_beat(offer, client);
  EXPECT_EQ(agreed.send_every_ms, 1'000u);
  EXPECT_EQ(agreed.expect_every_ms, 1'000u);
}

TEST(AnswerHeartBeatTest, AboveTheCeilingTheServerSendsMoreOftenAndTheClientIsTakenAtItsWord) {
  heart_beat client{120'000, 300'000};
  auto offer = stomp::answer_heart_beat(client, preferred, 1'000, 60'000);
  EXPECT_EQ(offer.send_ms, 60'000u);
  EXPECT_EQ(offer.receive_ms, 60'000u);
  auto agreed = stomp::negotiate_heart_beat(offer, client);
  // What each side computes from the headers; the session sends at the offer (more often).
  EXPECT_EQ(agreed.send_every_ms, 300'000u);
  EXPECT_EQ(agreed.expect_every_ms, 120'000u);
}

TEST(AnswerHeartBeatTest, NoPreferenceFromTheClientGetsThePreferredOfferAndNoHeartBeats) {
  auto offer = stomp::answer_heart_beat(heart_beat{0, 0}, preferred, 1'000, 60'000);
  EXPECT_EQ(offer.send_ms, 10'000u);
  EXPECT_EQ(offer.receive_ms, 10'000u);
  auto agreed = stomp::negotiate_heart_beat(offer, heart_beat{0, 0});
  EXPECT_EQ(agreed.send_every_ms, 0u);
  EXPECT_EQ(agreed.expect_every_ms, 0u);
}

TEST(AnswerHeartBeatTest, AServerThatNeverSendsOrNeverExpectsSaysSoWhateverTheClientAsks) {
  auto offer =
      stomp::answer_heart_beat(heart_beat{1'000, 1'000}, heart_beat{0, 10'000}, 1'000, 60'000);
  EXPECT_EQ(offer.send_ms, 0u);
  EXPECT_EQ(offer.receive_ms, 1'000u);
}

}  // namespace
