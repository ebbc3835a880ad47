#include "stomp/frame.hpp"

#include "stomp/error.hpp"

#include <gtest/gtest.h>

#include <string>
#include <system_error>
#include <vector>

namespace stomp {
namespace {

constexpr command all_commands[] = {
    command::connect,     command::stomp,   command::send,       command::subscribe,
    command::unsubscribe, command::ack,     command::nack,       command::begin,
    command::commit,      command::abort,   command::disconnect, command::connected,
    command::message,     command::receipt, command::error,
};

TEST(FrameTest, ToStringGivesWireNames) {
  EXPECT_EQ(to_string(command::connect), "CONNECT");
  EXPECT_EQ(to_string(command::stomp), "STOMP");
  EXPECT_EQ(to_string(command::send), "SEND");
  EXPECT_EQ(to_string(command::subscribe), "SUBSCRIBE");
  EXPECT_EQ(to_string(command::unsubscribe), "UNSUBSCRIBE");
  EXPECT_EQ(to_string(command::ack), "ACK");
  EXPECT_EQ(to_string(command::nack), "NACK");
  EXPECT_EQ(to_string(command::begin), "BEGIN");
  EXPECT_EQ(to_string(command::commit), "COMMIT");
  EXPECT_EQ(to_string(command::abort), "ABORT");
  EXPECT_EQ(to_string(command::disconnect), "DISCONNECT");
  EXPECT_EQ(to_string(command::connected), "CONNECTED");
  EXPECT_EQ(to_string(command::message), "MESSAGE");
  EXPECT_EQ(to_string(command::receipt), "RECEIPT");
  EXPECT_EQ(to_string(command::error), "ERROR");
}

TEST(FrameTest, ParseCommandInvertsToString) {
  for (const command c : all_commands) {
    EXPECT_EQ(parse_command(to_string(c)), c) << to_string(c);
  }
}

TEST(FrameTest, ParseCommandRejectsUnknownNames) {
  for (const char* name : {"", "send", "Send", "SEN", "SENDX", " SEND", "SEND ", "CONNECTEDX",
                           "COMMITS", "A", "ABORTED", "STOMPY", "SUBSCRIBED", "X", "MESSAGES"}) {
    EXPECT_EQ(parse_command(name), std::nullopt) << name;
  }
}

TEST(FrameTest, ParseCommandRejectsEmbeddedNul) {
  EXPECT_EQ(parse_command(std::string_view("SEND\0", 5)), std::nullopt);
}

TEST(FrameTest, VersionToString) {
  EXPECT_EQ(to_string(version::v1_0), "1.0");
  EXPECT_EQ(to_string(version::v1_1), "1.1");
  EXPECT_EQ(to_string(version::v1_2), "1.2");
}

TEST(FrameTest, ConnectStompAndConnectedAreExemptFromEscaping) {
  for (const command c : all_commands) {
    const bool exempt = c == command::connect || c == command::stomp || c == command::connected;
    EXPECT_EQ(escapes_headers(c), !exempt) << to_string(c);
  }
}

TEST(FrameTest, FindHeaderReturnsFirstOfRepeatedHeaders) {
  const std::vector<header_view> headers = {{"foo", "World"}, {"bar", "x"}, {"foo", "Hello"}};
  EXPECT_EQ(find_header(headers, "foo"), "World");
  EXPECT_EQ(find_header(headers, "bar"), "x");
}

TEST(FrameTest, FindHeaderReturnsNulloptWhenAbsent) {
  const std::vector<header_view> headers = {{"foo", "1"}};
  EXPECT_EQ(find_header(headers, "Foo"), std::nullopt);
  EXPECT_EQ(find_header({}, "foo"), std::nullopt);
}

TEST(FrameTest, FindHeaderDistinguishesEmptyValueFromAbsence) {
  const std::vector<header_view> headers = {{"empty", ""}};
  ASSERT_TRUE(find_header(headers, "empty").has_value());
  EXPECT_EQ(*find_header(headers, "empty"), "");
}

TEST(FrameTest, FrameViewHeaderUsesFirstWins) {
  const std::vector<header_view> headers = {{"a", "1"}, {"a", "2"}};
  const frame_view v{command::send, headers, "body"};
  EXPECT_EQ(v.header("a"), "1");
  EXPECT_EQ(v.header("b"), std::nullopt);
}

TEST(FrameTest, FrameFromViewCopiesEverything) {
  std::string buffer = std::string("destination:/queue/a") + std::string("bin\0ary", 7);
  const std::vector<header_view> headers = {
      {std::string_view(buffer).substr(0, 11), std::string_view(buffer).substr(12, 8)}, {"x", ""}};
  const frame_view v{command::send, headers, std::string_view(buffer).substr(20)};
  const frame f(v);
  buffer.assign(buffer.size(), '#');  // the frame must not refer to the source bytes
  EXPECT_EQ(f.command, command::send);
  ASSERT_EQ(f.headers.size(), 2u);
  EXPECT_EQ(f.headers[0], (header{"destination", "/queue/a"}));
  EXPECT_EQ(f.headers[1], (header{"x", ""}));
  EXPECT_EQ(f.body, std::string("bin\0ary", 7));
}

TEST(FrameTest, FrameHeaderUsesFirstWins) {
  const frame f(command::message, {{"k", "first"}, {"k", "second"}});
  EXPECT_EQ(f.header("k"), "first");
  EXPECT_EQ(f.header("missing"), std::nullopt);
}

TEST(FrameTest, FramesCompareByValue) {
  const frame a(command::send, {{"destination", "/q"}}, "x");
  frame b = a;
  EXPECT_EQ(a, b);
  b.headers.push_back({"destination", "/q"});
  EXPECT_NE(a, b);
}

TEST(ErrorTest, CategoryIsNamedStomp) { EXPECT_STREQ(error_category().name(), "stomp"); }

TEST(ErrorTest, EveryCodeHasItsOwnMessage) {
  const errc codes[] = {errc::need_more,
                        errc::unknown_command,
                        errc::malformed_header,
                        errc::invalid_escape,
                        errc::invalid_content_length,
                        errc::missing_frame_end,
                        errc::nul_in_header,
                        errc::frame_too_large,
                        errc::too_many_headers,
                        errc::header_line_too_long,
                        errc::body_too_large};
  std::vector<std::string> seen;
  for (const errc e : codes) {
    const std::string m = make_error_code(e).message();
    EXPECT_FALSE(m.empty());
    EXPECT_NE(m, "unknown stomp error");
    for (const std::string& other : seen) EXPECT_NE(m, other);
    seen.push_back(m);
  }
  EXPECT_EQ(make_error_code(errc::header_line_too_long).message(), "header line too long");
}

TEST(ErrorTest, UnknownValueHasGenericMessage) {
  EXPECT_EQ(std::error_code(999, error_category()).message(), "unknown stomp error");
}

TEST(ErrorTest, ErrcConvertsImplicitlyToErrorCode) {
  const std::error_code ec = errc::frame_too_large;
  EXPECT_EQ(ec.category(), error_category());
  EXPECT_EQ(ec, errc::frame_too_large);
  EXPECT_NE(ec, errc::body_too_large);
  EXPECT_TRUE(ec);
}

}  // namespace
}  // namespace stomp
