#include "admin/admin_render.hpp"

#include "auth/base64.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace broker {
namespace {

namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// Rendering: JSON
// ---------------------------------------------------------------------------------------------

TEST(AdminRenderTest, MessageWithUtf8BodyIsText) {
  admin::stored_message m{7, 1700000000123, {{"content-type", "text/plain"}}, "h\xC3\xA9llo"};
  auto o = admin::to_json(m);
  EXPECT_EQ(o.at("seq").to_number<std::uint64_t>(), 7u);
  EXPECT_EQ(o.at("timestamp_ms").as_int64(), 1700000000123);
  EXPECT_EQ(o.at("headers").at("content-type").as_string(), "text/plain");
  EXPECT_EQ(o.at("body").as_string(), "h\xC3\xA9llo");
  EXPECT_FALSE(o.contains("body_base64"));
}

TEST(AdminRenderTest, MessageWithBinaryBodyIsBase64) {
  std::string body("\x00\xFF\x80zz", 5);
  admin::stored_message m{1, 1, {}, body};
  auto o = admin::to_json(m);
  EXPECT_FALSE(o.contains("body"));
  EXPECT_EQ(o.at("body_base64").as_string(), "AP+Aeno=");
  EXPECT_EQ(auth::detail::base64_decode(o.at("body_base64").as_string()), body);
}

TEST(AdminRenderTest, MessageKeepsTheFirstOfRepeatedHeaders) {
  admin::stored_message m{1, 1, {{"k", "first"}, {"k", "second"}, {"x", "y"}}, ""};
  auto o = admin::to_json(m);
  EXPECT_EQ(o.at("headers").as_object().size(), 2u);
  EXPECT_EQ(o.at("headers").at("k").as_string(), "first");
  EXPECT_EQ(o.at("body").as_string(), "");
}

TEST(AdminRenderTest, JsonTextEscapesStringsAndWritesShortNumbers) {
  json::object o{{"s", "a\"b\\c\n\x01"},
                 {"rate", 3.4},
                 {"n", std::uint64_t{18446744073709551615u}},
                 {"neg", -2},
                 {"nan", std::nan("")},
                 {"inf", HUGE_VAL},
                 {"whole", 12.0}};
  auto text = admin::to_text(o);
  EXPECT_EQ(text,
            "{\"s\":\"a\\\"b\\\\c\\n\\u0001\",\"rate\":3.4,\"n\":18446744073709551615,"
            "\"neg\":-2,\"nan\":null,\"inf\":null,\"whole\":12}");
  EXPECT_EQ(json::parse(text).at("rate").as_double(), 3.4);
}

TEST(AdminRenderTest, RatesAreRoundedToThreeDecimals) {
  admin::destination_info d;
  d.rate_in = 3.3999999;
  EXPECT_EQ(admin::to_text(admin::to_json(d, false).at("rate_in")), "3.4");
}

TEST(AdminRenderTest, DestinationHasSubscriptionsOnlyWhenAsked) {
  admin::destination_info d;
  d.name = "/topic/a";
  d.type = "topic";
  d.subscribers = 1;
  d.subscriptions.push_back({3, "sub-1", "alice", "auto", 0});
  EXPECT_FALSE(admin::to_json(d, false).contains("subscriptions"));
  auto full = admin::to_json(d, true);
  ASSERT_EQ(full.at("subscriptions").as_array().size(), 1u);
  EXPECT_EQ(full.at("subscriptions").at(0).at("user").as_string(), "alice");
}

TEST(AdminRenderTest, Utf8ValidationRejectsMalformedSequences) {
  EXPECT_TRUE(admin::is_valid_utf8(""));
  EXPECT_TRUE(admin::is_valid_utf8("plain ascii"));
  EXPECT_TRUE(admin::is_valid_utf8("\xE2\x82\xAC \xF0\x9F\x98\x80"));  // euro sign, emoji
  EXPECT_FALSE(admin::is_valid_utf8("\xC0\xAF"));                      // overlong '/'
  EXPECT_FALSE(admin::is_valid_utf8("\xED\xA0\x80"));                  // surrogate U+D800
  EXPECT_FALSE(admin::is_valid_utf8("\xF4\x90\x80\x80"));              // above U+10FFFF
  EXPECT_FALSE(admin::is_valid_utf8("\xE2\x82"));                      // truncated
  EXPECT_FALSE(admin::is_valid_utf8("\x80"));                          // lone continuation
  EXPECT_FALSE(admin::is_valid_utf8("\xFF"));
}

// ---------------------------------------------------------------------------------------------
// Rendering: Prometheus
// ---------------------------------------------------------------------------------------------

TEST(AdminRenderTest, PrometheusLabelValuesEscapeBackslashQuoteAndNewline) {
  EXPECT_EQ(admin::escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(admin::escape_help("a\\b\"c\nd"), "a\\\\b\"c\\nd");  // quotes stay in HELP
}

TEST(AdminRenderTest, PrometheusSampleValuesUseTheFormatsSpellings) {
  EXPECT_EQ(admin::format_sample_value(0.005), "0.005");
  EXPECT_EQ(admin::format_sample_value(1), "1");
  EXPECT_EQ(admin::format_sample_value(HUGE_VAL), "+Inf");
  EXPECT_EQ(admin::format_sample_value(-HUGE_VAL), "-Inf");
  EXPECT_EQ(admin::format_sample_value(std::nan("")), "NaN");
}

TEST(AdminRenderTest, PrometheusLabelledSamplesAreEscaped) {
  admin::metrics m;
  m.connections_by_transport["tcp"] = 3;
  m.connections_by_transport["we\"ird\\\n"] = 1;
  auto text = admin::render_prometheus(m, {});
  EXPECT_NE(text.find("# TYPE stompd_connections gauge\n"), std::string::npos);
  EXPECT_NE(text.find("stompd_connections{transport=\"tcp\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("stompd_connections{transport=\"we\\\"ird\\\\\\n\"} 1\n"), std::string::npos);
}

TEST(AdminRenderTest, PrometheusHistogramHasCumulativeBucketsInfSumAndCount) {
  admin::metrics m;
  m.journal_commit_seconds = {{0.001, 0.01}, {2, 5}, 0.0375, 6};
  auto text = admin::render_prometheus(m, {});
  auto expected =
      "# TYPE stompd_journal_commit_duration_seconds histogram\n"
      "stompd_journal_commit_duration_seconds_bucket{le=\"0.001\"} 2\n"
      "stompd_journal_commit_duration_seconds_bucket{le=\"0.01\"} 5\n"
      "stompd_journal_commit_duration_seconds_bucket{le=\"+Inf\"} 6\n"
      "stompd_journal_commit_duration_seconds_sum 0.0375\n"
      "stompd_journal_commit_duration_seconds_count 6\n";
  EXPECT_NE(text.find(expected), std::string::npos) << text;
}

TEST(AdminRenderTest, PrometheusHistogramDoesNotRepeatAnInfBound) {
  admin::metrics m;
  m.journal_batch_size = {{1, std::numeric_limits<double>::infinity()}, {1, 2}, 3, 2};
  auto text = admin::render_prometheus(m, {});
  auto first = text.find("stompd_journal_batch_messages_bucket{le=\"+Inf\"}");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(text.find("stompd_journal_batch_messages_bucket{le=\"+Inf\"}", first + 1),
            std::string::npos);
}

TEST(AdminRenderTest, PrometheusEverySampleBelongsToATypedFamily) {
  admin::metrics m;
  m.frames_in_by_command["SEND"] = 4;
  m.frames_out_by_command["MESSAGE"] = 8;
  m.replay_seconds = {{0.1}, {1}, 0.05, 1};
  admin::broker_stats s;
  s.uptime_seconds = 12.5;
  auto text = admin::render_prometheus(m, s);
  std::string family;
  std::size_t samples = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    auto end = text.find('\n', pos);
    ASSERT_NE(end, std::string::npos) << "the exposition ends with a newline";
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.starts_with("# TYPE ")) {
      family = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line.starts_with("# HELP ")) continue;
    ++samples;
    ASSERT_FALSE(family.empty()) << line;
    EXPECT_TRUE(line.starts_with(family)) << line << " is not in family " << family;
    EXPECT_TRUE(line.starts_with("stompd_")) << line;
  }
  EXPECT_GT(samples, 20u);
  EXPECT_NE(text.find("stompd_uptime_seconds 12.5\n"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Rendering: humanised numbers
// ---------------------------------------------------------------------------------------------

TEST(AdminRenderTest, HumanBytesUsesBinaryUnitsWithOneDecimalBelowTen) {
  EXPECT_EQ(admin::human_bytes(0), "0 B");
  EXPECT_EQ(admin::human_bytes(1023), "1023 B");
  EXPECT_EQ(admin::human_bytes(1024), "1.0 KiB");
  EXPECT_EQ(admin::human_bytes(1229), "1.2 KiB");
  EXPECT_EQ(admin::human_bytes(15 * 1024 + 300), "15 KiB");
  EXPECT_EQ(admin::human_bytes(1024 * 1024 - 1), "1.0 MiB");  // not "1024 KiB"
  EXPECT_EQ(admin::human_bytes(3565158), "3.4 MiB");
  EXPECT_EQ(admin::human_bytes(std::uint64_t{5} << 40), "5.0 TiB");
  EXPECT_EQ(admin::human_bytes(std::numeric_limits<std::uint64_t>::max()), "16 EiB");
}

TEST(AdminRenderTest, HumanCountAndRateUseSiSteps) {
  EXPECT_EQ(admin::human_count(0), "0");
  EXPECT_EQ(admin::human_count(950), "950");
  EXPECT_EQ(admin::human_count(999.7), "1.0k");
  EXPECT_EQ(admin::human_count(1234), "1.2k");
  EXPECT_EQ(admin::human_count(15'400), "15k");
  EXPECT_EQ(admin::human_count(3'400'000), "3.4M");
  EXPECT_EQ(admin::human_rate(0), "0/s");
  EXPECT_EQ(admin::human_rate(0.5), "0.5/s");
  EXPECT_EQ(admin::human_rate(12.3), "12/s");
  EXPECT_EQ(admin::human_rate(3400), "3.4k/s");
  EXPECT_EQ(admin::human_rate(std::nan("")), "0/s");
}

TEST(AdminRenderTest, HumanAgeAndDuration) {
  EXPECT_EQ(admin::human_duration(45), "45s");
  EXPECT_EQ(admin::human_duration(3 * 60 + 59), "3m");
  EXPECT_EQ(admin::human_duration(2 * 3600 + 5 * 60), "2h 5m");
  EXPECT_EQ(admin::human_duration(2 * 3600), "2h");
  EXPECT_EQ(admin::human_duration(3 * 86400 + 4 * 3600 + 1), "3d 4h");
  const std::int64_t now = 1'700'000'000'000;
  EXPECT_EQ(admin::human_age(0, now), "-");
  EXPECT_EQ(admin::human_age(now - 300, now), "just now");
  EXPECT_EQ(admin::human_age(now - 180'000, now), "3m ago");
  EXPECT_EQ(admin::human_age(now + 60'000, now), "in the future");
}

}  // namespace
}  // namespace broker
