#include "admin/request.hpp"
#include "routing/publish.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker::admin {
namespace {

using query_list = std::vector<std::pair<std::string, std::string>>;
using segment_list = std::vector<std::string>;

// The target `text` must parse to; fails the test (and returns an empty one) otherwise.
request_target parsed(std::string_view text) {
  std::string error;
  auto t = parse_target(text, error);
  EXPECT_TRUE(t.has_value()) << text << ": " << error;
  return t.value_or(request_target{});
}

// The error message of a target that must not parse.
std::string refused(std::string_view text) {
  std::string error;
  auto t = parse_target(text, error);
  EXPECT_FALSE(t.has_value()) << text << " parsed";
  return error;
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

TEST(AdminRequestTest, PathIsSplitIntoSegmentsAndKeptAsSent) {
  auto t = parsed("/api/destinations/%2Ftopic%2Fa.1");
  EXPECT_EQ(t.path, "/api/destinations/%2Ftopic%2Fa.1");
  EXPECT_EQ(t.segments, (segment_list{"api", "destinations", "/topic/a.1"}));
  EXPECT_TRUE(t.query.empty());
}

TEST(AdminRequestTest, EncodedSlashStaysInsideItsSegmentInEitherCase) {
  EXPECT_EQ(parsed("/d/%2ftopic%2Fx").segments, (segment_list{"d", "/topic/x"}));
}

TEST(AdminRequestTest, PathEscapesDecodeToAnyByte) {
  EXPECT_EQ(parsed("/%C3%A9").segments, (segment_list{"\xC3\xA9"}));
  EXPECT_EQ(parsed("/a%00b").segments, (segment_list{std::string("a\0b", 3)}));
  EXPECT_EQ(parsed("/a%20b").segments, (segment_list{"a b"}));
}

TEST(AdminRequestTest, PlusInThePathStaysAPlus) {
  EXPECT_EQ(parsed("/a+b").segments, (segment_list{"a+b"}));
}

TEST(AdminRequestTest, TrailingSlashAddsNoSegment) {
  EXPECT_EQ(parsed("/api/stats/").segments, (segment_list{"api", "stats"}));
}

TEST(AdminRequestTest, RootHasNoSegments) { EXPECT_TRUE(parsed("/").segments.empty()); }

TEST(AdminRequestTest, EmptySegmentInsideThePathIsKept) {
  EXPECT_EQ(parsed("/api/destinations//topic/a").segments,
            (segment_list{"api", "destinations", "", "topic", "a"}));
}

TEST(AdminRequestTest, TargetThatIsNotAPathIsRefused) {
  EXPECT_EQ(refused(""), "the request target must be a path");
  EXPECT_EQ(refused("*"), "the request target must be a path");
  EXPECT_EQ(refused("http://127.0.0.1/api/stats"), "the request target must be a path");
}

TEST(AdminRequestTest, MalformedPathEscapeIsRefused) {
  for (auto text : {"/api/destinations/%zz", "/a%4", "/a%", "/a%G1/b"})
    EXPECT_EQ(refused(text), "bad percent-encoding in the path") << text;
}

TEST(AdminRequestTest, MalformedPathEscapeIsNamedBeforeAQueryOne) {
  EXPECT_EQ(refused("/a%zz?b=%zz"), "bad percent-encoding in the path");
}

TEST(AdminRequestTest, CharacterThatMustBePercentEncodedIsRefused) {
  for (auto text : {"/a{b}", "/a\"b", "/x#fragment", "/\xC3\xA9", "/x?pattern={user}"})
    EXPECT_EQ(refused(text),
              "the request target has a character that must be percent-encoded (RFC 3986)")
        << text;
}

// ---------------------------------------------------------------------------------------------
// Query strings
// ---------------------------------------------------------------------------------------------

TEST(AdminRequestTest, QueryIsDecodedInOrderWithRepeats) {
  auto t = parsed("/api/destinations?prefix=%2Fqueue%2F&limit=2&limit=3");
  EXPECT_EQ(t.path, "/api/destinations");
  EXPECT_EQ(t.query, (query_list{{"prefix", "/queue/"}, {"limit", "2"}, {"limit", "3"}}));
}

TEST(AdminRequestTest, PlusInTheQueryIsASpaceAndEncodedPlusIsAPlus) {
  EXPECT_EQ(parsed("/x?prefix=a+b&k%2By=c%2Bd+e").query,
            (query_list{{"prefix", "a b"}, {"k+y", "c+d e"}}));
}

TEST(AdminRequestTest, EmptyQueryItemsAreSkipped) {
  EXPECT_EQ(parsed("/x?&a=1&&b&").query, (query_list{{"a", "1"}, {"b", ""}}));
  EXPECT_TRUE(parsed("/x?").query.empty());
}

TEST(AdminRequestTest, ItemOfOnlyAnEqualsSignIsAnEmptyKey) {
  EXPECT_EQ(parsed("/x?=").query, (query_list{{"", ""}}));
}

TEST(AdminRequestTest, QuestionMarkAndSlashInsideTheQueryAreData) {
  EXPECT_EQ(parsed("/x?pattern=/topic/a.**&a=1?2").query,
            (query_list{{"pattern", "/topic/a.**"}, {"a", "1?2"}}));
}

TEST(AdminRequestTest, MalformedQueryEscapeIsRefused) {
  for (auto text : {"/x?a=%zz", "/x?a=%4", "/x?%=1", "/x?a=1&b=%G0"})
    EXPECT_EQ(refused(text), "bad percent-encoding in the query") << text;
}

TEST(AdminRequestTest, OnlyRefusesAnUnknownParameter) {
  query_list q{{"prefx", "/topic/"}};
  auto e = query_params(q).only({"prefix", "pattern"});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message, "unknown parameter: prefx");
  EXPECT_FALSE(query_params(q).only({"prefx"}).has_value());
}

TEST(AdminRequestTest, OnlyRefusesARepeatedParameter) {
  query_list q{{"limit", "1"}, {"limit", "2"}};
  auto e = query_params(q).only({"limit"});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message, "repeated parameter: limit");
}

TEST(AdminRequestTest, GetIsNullForAnAbsentParameter) {
  query_list q{{"a", "1"}};
  EXPECT_EQ(*query_params(q).get("a"), "1");
  EXPECT_EQ(query_params(q).get("b"), nullptr);
}

TEST(AdminRequestTest, NumberIsTheFallbackWhenAbsent) {
  query_list q;
  std::optional<bad_request> error;
  EXPECT_EQ(query_params(q).number("limit", 100, 1, 1000, error), 100u);
  EXPECT_FALSE(error.has_value());
}

TEST(AdminRequestTest, NumberAcceptsADecimalWithinItsRange) {
  query_list q{{"limit", "1000"}, {"after", "18446744073709551615"}};
  std::optional<bad_request> error;
  EXPECT_EQ(query_params(q).number("limit", 100, 1, 1000, error), 1000u);
  EXPECT_EQ(query_params(q).number("after", 0, 0, UINT64_MAX, error), UINT64_MAX);
  EXPECT_FALSE(error.has_value());
}

TEST(AdminRequestTest, NumberRefusesSignsSpacesFractionsAndOutOfRange) {
  for (auto text :
       {"", "-1", "+5", " 5", "5 ", "1.5", "0x10", "1001", "0", "99999999999999999999999"}) {
    query_list q{{"limit", text}};
    std::optional<bad_request> error;
    EXPECT_EQ(query_params(q).number("limit", 100, 1, 1000, error), 100u) << text;
    ASSERT_TRUE(error.has_value()) << text;
    EXPECT_EQ(error->message,
              std::string("limit: expected an integer from 1 to 1000, got '") + text + "'");
  }
}

TEST(AdminRequestTest, NumberKeepsTheFirstError) {
  query_list q{{"offset", "x"}, {"limit", "y"}};
  std::optional<bad_request> error;
  query_params(q).number("offset", 0, 0, 10, error);
  query_params(q).number("limit", 1, 1, 10, error);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->message, "offset: expected an integer from 0 to 10, got 'x'");
}

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

TEST(AdminRequestTest, BearerTokenIsTheCredentialWithoutSchemeOrSpaces) {
  EXPECT_EQ(bearer_token("Bearer abc.def"), "abc.def");
  EXPECT_EQ(bearer_token("bEaReR   abc  "), "abc");  // RFC 6750: the scheme ignores case
}

TEST(AdminRequestTest, BearerTokenIsEmptyForAnotherSchemeOrNoCredential) {
  EXPECT_EQ(bearer_token("Basic YTpi"), "");
  EXPECT_EQ(bearer_token("Bearer"), "");
  EXPECT_EQ(bearer_token("Bearer "), "");
  EXPECT_EQ(bearer_token("Bearer    "), "");
  EXPECT_EQ(bearer_token("Bearerabc"), "");
}

TEST(AdminRequestTest, JsonMediaTypesIncludeSuffixesAndIgnoreParameters) {
  EXPECT_TRUE(is_json("application/json"));
  EXPECT_TRUE(is_json("Application/JSON; charset=utf-8"));
  EXPECT_TRUE(is_json("application/vnd.example+json"));
  EXPECT_FALSE(is_json("+json"));
  EXPECT_FALSE(is_json("text/plain"));
  EXPECT_FALSE(is_json(""));
}

TEST(AdminRequestTest, RefusesEveryHeaderTheStompPublishPathWouldDrop) {
  // One list: what a SEND may not pass on, the admin API refuses instead of dropping it.
  for (std::string_view name : {"redelivered", "x-seq", "x-replayed", "destination", "ack"}) {
    auto e = check_header(name, "x");
    ASSERT_TRUE(e.has_value()) << name;
    EXPECT_TRUE(broker::is_reserved_header(name)) << name;
  }
  EXPECT_FALSE(check_header("x-app", "1").has_value());
}

TEST(AdminRequestTest, HeaderSetByTheBrokerIsRefusedInAnyCase) {
  auto e = check_header("Content-Length", "1");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->message, "header Content-Length is set by the broker");
  EXPECT_TRUE(check_header("x-seq", "1").has_value());
  EXPECT_FALSE(check_header("x-app", "1").has_value());
  // Reserved (not passed on), but the publisher's to set, over HTTP as over STOMP.
  EXPECT_FALSE(check_header("x-idempotency-key", "order-17").has_value());
}

TEST(AdminRequestTest, HeaderWithColonLineBreakOrNulIsRefused) {
  EXPECT_EQ(check_header("a:b", "1")->message, "bad header name: 'a:b'");
  EXPECT_EQ(check_header("", "1")->message, "bad header name: ''");
  EXPECT_EQ(check_header("k", "a\nb")->message, "header k: line breaks and NUL are not allowed");
  EXPECT_TRUE(check_header("k", std::string("a\0b", 3)).has_value());
  EXPECT_TRUE(check_header("k", "a\rb").has_value());
}

// ---------------------------------------------------------------------------------------------
// JSON publish bodies
// ---------------------------------------------------------------------------------------------

TEST(AdminRequestTest, JsonPublishReadsDestinationBodyAndHeaders) {
  publish_request p;
  EXPECT_FALSE(parse_json_publish(
      R"({"destination":"/topic/a","body":"hi","headers":{"k":"v","x-app":"1"}})", p));
  EXPECT_EQ(p.destination, "/topic/a");
  EXPECT_EQ(p.body, "hi");
  EXPECT_EQ(p.headers, (query_list{{"k", "v"}, {"x-app", "1"}}));
}

TEST(AdminRequestTest, JsonPublishDecodesABase64Body) {
  publish_request p;
  EXPECT_FALSE(parse_json_publish(R"({"destination":"/topic/a","body_base64":"AP8="})", p));
  EXPECT_EQ(p.body, std::string("\x00\xFF", 2));
}

TEST(AdminRequestTest, JsonPublishRefusesBadShapesWithTheReason) {
  std::pair<std::string_view, std::string_view> cases[] = {
      {"[]", "body must be a JSON object"},
      {R"({"destination":5})", "destination must be a string"},
      {R"({"body":"x","body_base64":"eA=="})", "give body or body_base64, not both"},
      {R"({"body":5})", "body must be a string"},
      {R"({"body_base64":"***"})", "body_base64 is not valid base64 (RFC 4648, with padding)"},
      {R"({"headers":[]})", "headers must be an object of strings"},
      {R"({"headers":{"k":1}})", "header k must be a string"},
      {R"({"extra":1})", "unknown field: extra"},
  };
  for (auto [text, message] : cases) {
    publish_request p;
    auto e = parse_json_publish(text, p);
    ASSERT_TRUE(e.has_value()) << text;
    EXPECT_EQ(e->message, message) << text;
  }
}

TEST(AdminRequestTest, JsonPublishRefusesTextThatIsNotJson) {
  publish_request p;
  auto e = parse_json_publish("not json", p);
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->message.starts_with("body is not valid JSON: ")) << e->message;
}

TEST(AdminRequestTest, HostMustBeAnAddressLocalhostTheListenerOrConfigured) {
  const std::vector<std::string> none, names{"stompd.internal"};
  for (std::string_view h : {"127.0.0.1", "127.0.0.1:61680", "[::1]:61680", "10.0.0.5", "localhost",
                             "LOCALHOST:61680", ""})
    EXPECT_TRUE(is_allowed_host(h, "127.0.0.1", none)) << h;
  for (std::string_view h : {"evil.example", "evil.example:61680", "localhost.evil.example",
                             "stompd.internal", "user@127.0.0.1", "bad host"})
    EXPECT_FALSE(is_allowed_host(h, "127.0.0.1", none)) << h;
  EXPECT_TRUE(is_allowed_host("Stompd.Internal:80", "127.0.0.1", names));
  EXPECT_TRUE(is_allowed_host("broker.lan:61680", "broker.lan", none));
}

TEST(AdminRequestTest, OriginMustBeTheListenersOwnOrConfigured) {
  const std::vector<std::string> none, ops{"https://ops.example"};
  EXPECT_TRUE(is_allowed_origin("http://127.0.0.1:61680", "http", "127.0.0.1:61680", none));
  EXPECT_TRUE(is_allowed_origin("HTTP://LocalHost:61680", "http", "localhost:61680", none));
  EXPECT_FALSE(is_allowed_origin("https://127.0.0.1:61680", "http", "127.0.0.1:61680", none));
  EXPECT_FALSE(is_allowed_origin("http://evil.example", "http", "127.0.0.1:61680", none));
  EXPECT_FALSE(is_allowed_origin("http://127.0.0.1:61680", "http", "", none));
  EXPECT_FALSE(is_allowed_origin("null", "http", "null", none));
  EXPECT_TRUE(is_allowed_origin("https://ops.example", "http", "127.0.0.1", ops));
  EXPECT_FALSE(is_allowed_origin("https://ops.example:8443", "http", "127.0.0.1", ops));
}

}  // namespace
}  // namespace broker::admin
