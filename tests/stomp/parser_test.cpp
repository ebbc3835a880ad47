#include "stomp/parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace stomp {
namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;

// Everything a parser run produced, for comparing runs over different chunkings.
struct outcome {
  std::vector<frame> frames;
  std::error_code ec;  // need_more, or the error the run stopped at
  parse_error error;
  std::size_t heartbeats = 0;
  std::size_t buffered = 0;
};

// Drains next() into `o`; false once the parser failed.
bool drain(parser& p, outcome& o) {
  frame_view f;
  while (!(o.ec = p.next(f))) o.frames.emplace_back(f);
  return o.ec == errc::need_more;
}

outcome finish(const parser& p, outcome o) {
  o.error = p.error();
  o.heartbeats = p.heartbeats();
  o.buffered = p.buffered_bytes();
  return o;
}

outcome run(const std::vector<std::string_view>& chunks, version v = version::v1_2,
            parser_limits limits = {}) {
  parser p(limits);
  p.set_version(v);
  outcome o;
  o.ec = errc::need_more;
  for (const std::string_view c : chunks) {
    p.feed(c);
    if (!drain(p, o)) break;
  }
  return finish(p, std::move(o));
}

outcome parse(std::string_view bytes, version v = version::v1_2, parser_limits limits = {}) {
  return run({bytes}, v, limits);
}

outcome parse_bytewise(std::string_view bytes, version v = version::v1_2,
                       parser_limits limits = {}) {
  std::vector<std::string_view> chunks;
  for (std::size_t i = 0; i < bytes.size(); ++i) chunks.push_back(bytes.substr(i, 1));
  return run(chunks, v, limits);
}

// The single frame `bytes` must hold.
frame parse_one(std::string_view bytes, version v = version::v1_2) {
  const outcome o = parse(bytes, v);
  EXPECT_EQ(o.ec, errc::need_more) << o.error.message();
  EXPECT_EQ(o.frames.size(), 1u);
  return o.frames.empty() ? frame{} : o.frames.front();
}

// The error `bytes` must stop at.
parse_error parse_error_of(std::string_view bytes, version v = version::v1_2,
                           parser_limits limits = {}) {
  const outcome o = parse(bytes, v, limits);
  EXPECT_NE(o.ec, errc::need_more);
  EXPECT_EQ(o.ec, o.error.code);
  return o.error;
}

void expect_same(const outcome& a, const outcome& b, const std::string& how) {
  EXPECT_EQ(a.frames, b.frames) << how;
  EXPECT_EQ(a.ec, b.ec) << how;
  EXPECT_EQ(a.error.header, b.error.header) << how;
  EXPECT_EQ(a.error.detail, b.error.detail) << how;
  EXPECT_EQ(a.heartbeats, b.heartbeats) << how;
}

// ---------------------------------------------------------------------------------------
// The examples of the STOMP 1.2 specification.

TEST(ParserTest, ParsesSpecConnectExample) {
  const frame f = parse_one("CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0"sv);
  EXPECT_EQ(f, frame(command::connect, {{"accept-version", "1.2"}, {"host", "stomp.github.org"}}));
}

TEST(ParserTest, ParsesSpecConnectedExample) {
  EXPECT_EQ(parse_one("CONNECTED\nversion:1.2\n\n\0"sv),
            frame(command::connected, {{"version", "1.2"}}));
}

TEST(ParserTest, ParsesSpecSendExample) {
  EXPECT_EQ(parse_one("SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0"sv),
            frame(command::send, {{"destination", "/queue/a"}, {"content-type", "text/plain"}},
                  "hello queue a\n"));
}

TEST(ParserTest, ParsesSpecSubscribeExample) {
  EXPECT_EQ(
      parse_one("SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0"sv),
      frame(command::subscribe, {{"id", "0"}, {"destination", "/queue/foo"}, {"ack", "client"}}));
}

TEST(ParserTest, ParsesSpecMessageExample) {
  EXPECT_EQ(parse_one("MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\n"
                      "content-type:text/plain\n\nhello queue a\0"sv),
            frame(command::message,
                  {{"subscription", "0"},
                   {"message-id", "007"},
                   {"destination", "/queue/a"},
                   {"content-type", "text/plain"}},
                  "hello queue a"));
}

TEST(ParserTest, ParsesSpecReceiptExample) {
  EXPECT_EQ(parse_one("RECEIPT\nreceipt-id:message-12345\n\n\0"sv),
            frame(command::receipt, {{"receipt-id", "message-12345"}}));
}

TEST(ParserTest, ParsesSpecErrorExampleWithContentLength) {
  const std::string body =
      "The message:\n-----\nMESSAGE\ndestined:/queue/a\nreceipt:message-12345\n\n"
      "Hello queue a!\n-----\nDid not contain a destination header, which is REQUIRED\n"
      "for message propagation.\n";
  ASSERT_EQ(body.size(), 170u);
  const frame f = parse_one(
      "ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:170\n"
      "message:malformed frame received\n\n" +
      body + "\0"s);
  EXPECT_EQ(f, frame(command::error,
                     {{"receipt-id", "message-12345"},
                      {"content-type", "text/plain"},
                      {"content-length", "170"},
                      {"message", "malformed frame received"}},
                     body));
}

TEST(ParserTest, ParsesSpecRepeatedHeaderExampleFirstWins) {
  const frame f = parse_one("MESSAGE\nfoo:World\nfoo:Hello\n\n\0"sv);
  EXPECT_EQ(f.headers, (std::vector<header>{{"foo", "World"}, {"foo", "Hello"}}));
  EXPECT_EQ(f.header("foo"), "World");
}

TEST(ParserTest, ParsesSpecBeginCommitAbortAckNackExamples) {
  const outcome o = parse(
      "BEGIN\ntransaction:tx1\n\n\0"
      "ACK\nid:12345\ntransaction:tx1\n\n\0"
      "NACK\nid:12345\ntransaction:tx1\n\n\0"
      "COMMIT\ntransaction:tx1\n\n\0"
      "ABORT\ntransaction:tx1\n\n\0"
      "UNSUBSCRIBE\nid:0\n\n\0"
      "STOMP\naccept-version:1.2\nhost:stomp.github.org\n\n\0"
      "DISCONNECT\nreceipt:77\n\n\0"sv);
  ASSERT_EQ(o.ec, errc::need_more);
  ASSERT_EQ(o.frames.size(), 8u);
  EXPECT_EQ(o.frames[0], frame(command::begin, {{"transaction", "tx1"}}));
  EXPECT_EQ(o.frames[1], frame(command::ack, {{"id", "12345"}, {"transaction", "tx1"}}));
  EXPECT_EQ(o.frames[2], frame(command::nack, {{"id", "12345"}, {"transaction", "tx1"}}));
  EXPECT_EQ(o.frames[3], frame(command::commit, {{"transaction", "tx1"}}));
  EXPECT_EQ(o.frames[4], frame(command::abort, {{"transaction", "tx1"}}));
  EXPECT_EQ(o.frames[5], frame(command::unsubscribe, {{"id", "0"}}));
  EXPECT_EQ(o.frames[6].command, command::stomp);
  EXPECT_EQ(o.frames[7], frame(command::disconnect, {{"receipt", "77"}}));
}

// ---------------------------------------------------------------------------------------
// Chunking invariance.

// A stream exercising every path that keeps state across feeds: heart-beats (LF and CRLF),
// CRLF and mixed line endings, a content-length body with NULs, escapes in names and
// values, an exempt CONNECT, repeated headers, EOLs after a NUL, an empty body.
const std::string mixed_stream =
    "\n"
    "CONNECT\r\naccept-version:1.1,1.2\r\nhost:a\\cb\r\n\r\n\0"
    "\r\n\n"
    "SEND\ndestination:/queue/a\ncontent-length:5\n\nab\0cd\0"
    "MESSAGE\r\nsub\\cscription:0\r\nmessage-id:a\\r\\n\\c\\\\b\r\nfoo:1\nfoo:2\n\nhello\0\n"
    "SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0"
    "RECEIPT\nreceipt-id:77\ncontent-length:0\n\n\0"
    "SEND\ndestination:/queue/b\ncontent-length:3\r\n\r\n\0\n\0\0\r\n"
    "DISCONNECT\nreceipt:77\n\n\0"s;

const std::vector<frame> mixed_frames = {
    frame(command::connect, {{"accept-version", "1.1,1.2"}, {"host", "a\\cb"}}),
    frame(command::send, {{"destination", "/queue/a"}, {"content-length", "5"}}, "ab\0cd"s),
    frame(command::message,
          {{"sub:scription", "0"}, {"message-id", "a\r\n:\\b"}, {"foo", "1"}, {"foo", "2"}},
          "hello"),
    frame(command::subscribe, {{"id", "0"}, {"destination", "/queue/foo"}, {"ack", "client"}}),
    frame(command::receipt, {{"receipt-id", "77"}, {"content-length", "0"}}),
    frame(command::send, {{"destination", "/queue/b"}, {"content-length", "3"}}, "\0\n\0"s),
    frame(command::disconnect, {{"receipt", "77"}}),
};
constexpr std::size_t mixed_heartbeats = 5;

TEST(ParserTest, ParsesMixedStreamInOneChunk) {
  const outcome o = parse(mixed_stream);
  EXPECT_EQ(o.ec, errc::need_more) << o.error.message();
  EXPECT_EQ(o.frames, mixed_frames);
  EXPECT_EQ(o.heartbeats, mixed_heartbeats);
  EXPECT_EQ(o.buffered, 0u);
}

TEST(ParserTest, SameFramesForEverySplitIntoTwoChunks) {
  const outcome whole = parse(mixed_stream);
  const std::string_view s = mixed_stream;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    expect_same(run({s.substr(0, i), s.substr(i)}), whole, "split at " + std::to_string(i));
  }
}

TEST(ParserTest, SameFramesForEverySplitIntoThreeChunks) {
  const outcome whole = parse(mixed_stream);
  const std::string_view s = mixed_stream;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    for (std::size_t j = i; j <= s.size(); ++j) {
      const outcome o = run({s.substr(0, i), s.substr(i, j - i), s.substr(j)});
      if (o.frames != whole.frames || o.heartbeats != whole.heartbeats || o.ec != whole.ec) {
        ADD_FAILURE() << "split at " << i << " and " << j;
        return;
      }
    }
  }
}

TEST(ParserTest, SameFramesWhenFedOneByteAtATime) {
  expect_same(parse_bytewise(mixed_stream), parse(mixed_stream), "bytewise");
}

TEST(ParserTest, SameFramesForRandomChunkings) {
  const outcome whole = parse(mixed_stream);
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::string_view> chunks;
    std::string_view rest = mixed_stream;
    while (!rest.empty()) {
      const std::size_t n = std::uniform_int_distribution<std::size_t>(0, 40)(rng);
      chunks.push_back(rest.substr(0, n));
      rest.remove_prefix(std::min(n, rest.size()));
    }
    expect_same(run(chunks), whole, "round " + std::to_string(round));
  }
}

TEST(ParserTest, SameFramesViaPrepareAndCommit) {
  parser p;
  outcome o;
  std::string_view rest = mixed_stream;
  std::size_t n = 1;
  while (!rest.empty()) {
    const std::span<char> space = p.prepare(n);
    ASSERT_GE(space.size(), n);
    const std::size_t k = std::min(n, rest.size());
    std::memcpy(space.data(), rest.data(), k);
    p.commit(k);
    rest.remove_prefix(k);
    n = n % 13 + 1;
    ASSERT_TRUE(drain(p, o)) << p.error().message();
  }
  EXPECT_EQ(o.frames, mixed_frames);
  EXPECT_EQ(p.heartbeats(), mixed_heartbeats);
}

TEST(ParserTest, PrepareWithoutCommitAddsNothing) {
  parser p;
  const std::span<char> space = p.prepare(100);
  ASSERT_GE(space.size(), 100u);
  std::memset(space.data(), 'x', 100);
  p.commit(0);
  frame_view f;
  EXPECT_EQ(p.next(f), errc::need_more);
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

// Each input fails; the error and the frames before it must not depend on the chunking.
TEST(ParserTest, SameErrorForEverySplitPoint) {
  const parser_limits small{.max_frame_bytes = 48,
                            .max_header_count = 2,
                            .max_header_line_bytes = 16,
                            .max_body_bytes = 8};
  const std::string ok = "SEND\na:b\n\nxy\0\n"s;
  struct bad_input {
    std::string bytes;
    errc expected;
  };
  const std::vector<bad_input> bad = {
      {ok + "SEND\na:b\nc:d\ne:f\n\n\0"s, errc::too_many_headers},
      {ok + "SEND\nabcdefghijklmnopq\n\n\0"s, errc::header_line_too_long},
      // At the limit, so only the missing colon is wrong; the CR is not part of the line.
      {ok + "SEND\nabcdefghijklmnop\r\n\n\0"s, errc::malformed_header},
      // A CR not followed by LF is part of the line, so this one is over the limit.
      {ok + "SEND\nabcdefghijklmnop\rX\n\n\0"s, errc::header_line_too_long},
      // The NUL is also the first octet past the limit: the NUL check wins the tie.
      {ok + "SEND\nabcdefghijklmnop\0\n\n\0"s, errc::nul_in_header},
      {ok + "SEND\na:b\n\n0123456789\0"s, errc::body_too_large},
      // The eighth body octet makes 48 octets with the NUL still due: over the frame limit
      // before the body limit.
      {ok + "SEND\nabcdefghijklmno:\nabcdefghijklmno:\n\n12345678\0"s, errc::frame_too_large},
      {ok + "SEND\ncontent-length:8\nxyzxyzxyzxyz:abc\n\n12345678\0"s, errc::frame_too_large},
      {ok + "SEND\ncontent-length:9\n\n"s, errc::body_too_large},
      {ok + "SEND\ncontent-length:8\n\n12345678X"s, errc::missing_frame_end},
      {ok + "SEND\ncontent-length:x\n\n"s, errc::invalid_content_length},
      {ok + "SEND\na:\\x\n\n\0"s, errc::invalid_escape},
      {ok + "SEND\n:b\n\n\0"s, errc::malformed_header},
      {ok + "SEND\nab\n\n\0"s, errc::malformed_header},
      {ok + "SEND\na:b\0\n\n\0"s, errc::nul_in_header},
      {ok + "SEND\n\0"s, errc::nul_in_header},
      {ok + "UNSUBSCRIBES\n\n\0"s, errc::unknown_command},
      {ok + "UNSUBSCRIBE\r\r\n\n\0"s, errc::unknown_command},
      {ok + "\r\rSEND\n\n\0"s, errc::unknown_command},
      {ok + "send\n\n\0"s, errc::unknown_command},
  };
  for (const auto& [input, expected] : bad) {
    const outcome whole = parse(input, version::v1_2, small);
    EXPECT_EQ(whole.ec, expected) << input;
    EXPECT_EQ(whole.frames.size(), 1u) << input;
    const std::string_view s = input;
    for (std::size_t i = 0; i <= s.size(); ++i) {
      expect_same(run({s.substr(0, i), s.substr(i)}, version::v1_2, small), whole,
                  "split at " + std::to_string(i) + " of " + input);
    }
    expect_same(parse_bytewise(input, version::v1_2, small), whole, "bytewise " + input);
  }
}

// ---------------------------------------------------------------------------------------
// Line endings and heart-beats.

TEST(ParserTest, AcceptsCrlfLineEndings) {
  EXPECT_EQ(parse_one("SEND\r\ndestination:/q\r\n\r\nbody\0"sv),
            frame(command::send, {{"destination", "/q"}}, "body"));
}

TEST(ParserTest, AcceptsCrlfInEveryVersion) {
  for (const version v : {version::v1_0, version::v1_1, version::v1_2}) {
    EXPECT_EQ(parse_one("SEND\r\na:b\r\n\r\n\0"sv, v), frame(command::send, {{"a", "b"}}));
  }
}

TEST(ParserTest, KeepsCrNotFollowedByLf) {
  EXPECT_EQ(parse_one("SEND\na:b\rc\n\n\0"sv, version::v1_1),
            frame(command::send, {{"a", "b\rc"}}));
}

TEST(ParserTest, CountsLfAndCrlfHeartbeats) {
  const outcome o = parse("\n\r\n\nSEND\n\n\0\r\n\n\n"sv);
  EXPECT_EQ(o.frames.size(), 1u);
  EXPECT_EQ(o.heartbeats, 6u);
  EXPECT_EQ(o.buffered, 0u);
}

TEST(ParserTest, HeartbeatsAloneYieldNoFrame) {
  parser p;
  p.feed("\n\n\r\n");
  frame_view f;
  EXPECT_EQ(p.next(f), errc::need_more);
  EXPECT_EQ(p.heartbeats(), 3u);
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(ParserTest, CountsSplitCrlfHeartbeatOnce) {
  parser p;
  frame_view f;
  p.feed("\r");
  EXPECT_EQ(p.next(f), errc::need_more);
  EXPECT_EQ(p.heartbeats(), 0u);
  p.feed("\n");
  EXPECT_EQ(p.next(f), errc::need_more);
  EXPECT_EQ(p.heartbeats(), 1u);
}

TEST(ParserTest, RejectsLoneCrBeforeCommand) {
  const parse_error e = parse_error_of("\rSEND\n\n\0"sv);
  EXPECT_EQ(e.code, errc::unknown_command);
  EXPECT_EQ(e.detail, "\rSEND");
}

// ---------------------------------------------------------------------------------------
// Bodies.

TEST(ParserTest, ContentLengthBodyMayContainNul) {
  EXPECT_EQ(parse_one("SEND\ncontent-length:4\n\n\0\0a\0\0"sv).body, "\0\0a\0"s);
}

TEST(ParserTest, BodyWithoutContentLengthEndsAtFirstNul) {
  const outcome o = parse("SEND\n\nab\0SEND\n\ncd\0"sv);
  ASSERT_EQ(o.frames.size(), 2u);
  EXPECT_EQ(o.frames[0].body, "ab");
  EXPECT_EQ(o.frames[1].body, "cd");
}

TEST(ParserTest, AcceptsEmptyBody) {
  EXPECT_EQ(parse_one("SEND\n\n\0"sv).body, "");
  EXPECT_EQ(parse_one("SEND\ncontent-length:0\n\n\0"sv).body, "");
}

TEST(ParserTest, WaitsForWholeContentLengthBody) {
  parser p;
  frame_view f;
  p.feed("SEND\ncontent-length:3\n\nab"sv);
  EXPECT_EQ(p.next(f), errc::need_more);
  p.feed("\0"sv);
  EXPECT_EQ(p.next(f), errc::need_more);  // that NUL is body, the terminator is still due
  p.feed("\0"sv);
  ASSERT_EQ(p.next(f), std::error_code());
  EXPECT_EQ(f.body, "ab\0"sv);
}

TEST(ParserTest, FirstContentLengthWins) {
  EXPECT_EQ(parse_one("SEND\ncontent-length:2\ncontent-length:junk\n\nab\0"sv).body, "ab");
}

TEST(ParserTest, AcceptsContentLengthWithLeadingZeros) {
  EXPECT_EQ(parse_one("SEND\ncontent-length:003\n\nabc\0"sv).body, "abc");
}

TEST(ParserTest, RejectsContentLengthBodyNotFollowedByNul) {
  const parse_error e = parse_error_of("SEND\ncontent-length:2\n\nabc\0"sv);
  EXPECT_EQ(e.code, errc::missing_frame_end);
  EXPECT_EQ(e.message(), "missing NUL after the body (content-length 2)");
}

TEST(ParserTest, RejectsNonDecimalContentLength) {
  for (const std::string_view value :
       {""sv, "abc"sv, "-1"sv, "+1"sv, " 5"sv, "5 "sv, "0x10"sv, "1.0"sv, "1e3"sv}) {
    const parse_error e = parse_error_of("SEND\ncontent-length:" + std::string(value) + "\n\n\0"s);
    EXPECT_EQ(e.code, errc::invalid_content_length) << value;
    EXPECT_EQ(e.header, "content-length");
    EXPECT_EQ(e.detail, value);
  }
}

TEST(ParserTest, RejectsInvalidContentLengthBeforeBlankLine) {
  parser p;
  frame_view f;
  p.feed("SEND\ncontent-length:ten\n"sv);
  EXPECT_EQ(p.next(f), errc::invalid_content_length);
  EXPECT_EQ(p.error().message(), "invalid content-length 'ten'");
}

TEST(ParserTest, ContentLengthOverflowIsBodyTooLarge) {
  const parse_error e =
      parse_error_of("SEND\ncontent-length:99999999999999999999999999999\n\n\0"sv);
  EXPECT_EQ(e.code, errc::body_too_large);
}

TEST(ParserTest, HugeContentLengthFailsEvenWithoutLimits) {
  const std::size_t unlimited = std::numeric_limits<std::size_t>::max();
  const parse_error e =
      parse_error_of("SEND\ncontent-length:" + std::to_string(unlimited) + "\n\n"s, version::v1_2,
                     {.max_frame_bytes = unlimited, .max_body_bytes = unlimited});
  EXPECT_EQ(e.code, errc::frame_too_large);
}

TEST(ParserTest, ContentLengthInConnectFrameIsHonoured) {
  EXPECT_EQ(parse_one("CONNECT\ncontent-length:1\n\n\0\0"sv).body, "\0"sv);
}

// ---------------------------------------------------------------------------------------
// Header lines.

TEST(ParserTest, AcceptsFrameWithoutHeaders) {
  EXPECT_EQ(parse_one("DISCONNECT\n\n\0"sv), frame(command::disconnect));
}

TEST(ParserTest, AcceptsEmptyHeaderValue) {
  EXPECT_EQ(parse_one("SEND\nempty:\n\n\0"sv), frame(command::send, {{"empty", ""}}));
}

TEST(ParserTest, SplitsHeaderAtFirstColon) {
  EXPECT_EQ(parse_one("SEND\nurl:http://host:80/a\n\n\0"sv),
            frame(command::send, {{"url", "http://host:80/a"}}));
}

TEST(ParserTest, KeepsWhitespaceAroundNamesAndValues) {
  EXPECT_EQ(parse_one("SEND\n foo : bar \n\n\0"sv), frame(command::send, {{" foo ", " bar "}}));
}

TEST(ParserTest, KeepsRepeatedHeadersInOrder) {
  const frame f = parse_one("SEND\na:1\nb:2\na:3\n\n\0"sv);
  EXPECT_EQ(f.headers, (std::vector<header>{{"a", "1"}, {"b", "2"}, {"a", "3"}}));
  EXPECT_EQ(f.header("a"), "1");
}

TEST(ParserTest, RejectsHeaderLineWithoutColon) {
  const parse_error e = parse_error_of("SEND\ndestination\n\n\0"sv);
  EXPECT_EQ(e.code, errc::malformed_header);
  EXPECT_EQ(e.header, "destination");
  EXPECT_EQ(e.message(), "malformed header line (no ':'): 'destination'");
}

TEST(ParserTest, RejectsEmptyHeaderName) {
  const parse_error e = parse_error_of("SEND\n:value\n\n\0"sv);
  EXPECT_EQ(e.code, errc::malformed_header);
  EXPECT_EQ(e.message(), "malformed header line (empty header name)");
}

TEST(ParserTest, RejectsUnknownCommand) {
  const parse_error e = parse_error_of("FOO\n\n\0"sv);
  EXPECT_EQ(e.code, errc::unknown_command);
  EXPECT_EQ(e.detail, "FOO");
  EXPECT_EQ(e.message(), "unknown command 'FOO'");
}

TEST(ParserTest, CommandsAreCaseSensitive) {
  EXPECT_EQ(parse_error_of("send\n\n\0"sv).code, errc::unknown_command);
}

TEST(ParserTest, RejectsOverlongCommandLineBeforeEol) {
  parser p;
  frame_view f;
  p.feed("UNSUBSCRIBE"sv);
  EXPECT_EQ(p.next(f), errc::need_more);
  p.feed("\r"sv);  // may still be the CR of a CRLF
  EXPECT_EQ(p.next(f), errc::need_more);
  p.feed("X"sv);
  EXPECT_EQ(p.next(f), errc::unknown_command);
  EXPECT_EQ(p.error().detail, "UNSUBSCRIBE\r");
}

TEST(ParserTest, RejectsNulInCommandLine) {
  parser p;
  frame_view f;
  p.feed("SE\0"sv);
  EXPECT_EQ(p.next(f), errc::nul_in_header);
  EXPECT_EQ(p.error().message(), "NUL octet in the command or header lines");
}

TEST(ParserTest, RejectsNulInHeaderLineAsItArrives) {
  parser p;
  frame_view f;
  p.feed("SEND\ndestination:/q\0"sv);
  EXPECT_EQ(p.next(f), errc::nul_in_header);
  EXPECT_EQ(p.error().header, "destination");
  EXPECT_EQ(p.error().message(), "NUL octet in the command or header lines: header 'destination'");
}

TEST(ParserTest, RejectsNulWhereBlankLineBelongs) {
  EXPECT_EQ(parse_error_of("SEND\na:b\n\0"sv).code, errc::nul_in_header);
}

TEST(ParserTest, StaysFailedAfterError) {
  parser p;
  frame_view f;
  p.feed("BOGUS\n\n\0"sv);
  EXPECT_EQ(p.next(f), errc::unknown_command);
  const std::size_t buffered = p.buffered_bytes();
  p.feed("SEND\n\n\0"sv);
  EXPECT_EQ(p.next(f), errc::unknown_command);
  EXPECT_EQ(p.next(f), errc::unknown_command);
  EXPECT_EQ(p.error().detail, "BOGUS");
  EXPECT_EQ(p.buffered_bytes(), buffered);  // input after the failure is dropped
  p.commit(p.prepare(16).size());
  EXPECT_EQ(p.buffered_bytes(), buffered);
}

TEST(ParserTest, ErrorIsEmptyWhileHealthy) {
  parser p;
  frame_view f;
  p.feed("SEND\n\n\0SE"sv);
  EXPECT_FALSE(p.next(f));
  EXPECT_EQ(p.next(f), errc::need_more);
  EXPECT_FALSE(p.error().code);
  EXPECT_EQ(p.error().message(), "no error");
}

// ---------------------------------------------------------------------------------------
// Escapes (STOMP 1.2, "Value Encoding").

TEST(ParserTest, UnescapesAllFourSequencesIn12) {
  EXPECT_EQ(parse_one("SEND\nk:a\\r\\n\\c\\\\b\n\n\0"sv),
            frame(command::send, {{"k", "a\r\n:\\b"}}));
}

TEST(ParserTest, UnescapesHeaderNames) {
  EXPECT_EQ(parse_one("SEND\na\\cb\\\\c\\nd:v\n\n\0"sv),
            frame(command::send, {{"a:b\\c\nd", "v"}}));
}

TEST(ParserTest, UnescapesAdjacentAndRepeatedSequences) {
  EXPECT_EQ(parse_one("SEND\nk:\\\\\\\\\\c\\c\n\n\0"sv), frame(command::send, {{"k", "\\\\::"}}));
}

TEST(ParserTest, RejectsUndefinedEscapeNamingHeader) {
  const parse_error e = parse_error_of("SEND\nfoo:a\\tb\n\n\0"sv);
  EXPECT_EQ(e.code, errc::invalid_escape);
  EXPECT_EQ(e.header, "foo");
  EXPECT_EQ(e.detail, "\\t");
  EXPECT_EQ(e.message(), "invalid escape sequence '\\t' in header 'foo'");
}

TEST(ParserTest, RejectsUndefinedEscapeInNameNamingTheRawRest) {
  const parse_error e = parse_error_of("SEND\na\\cb\\xc:v\n\n\0"sv);
  EXPECT_EQ(e.code, errc::invalid_escape);
  EXPECT_EQ(e.header, "a:b\\xc");
  EXPECT_EQ(e.detail, "\\x");
}

TEST(ParserTest, RejectsBackslashAtEndOfValue) {
  const parse_error e = parse_error_of("SEND\nfoo:bar\\\n\n\0"sv);
  EXPECT_EQ(e.code, errc::invalid_escape);
  EXPECT_EQ(e.detail, "\\");
}

TEST(ParserTest, RejectsBackslashAtEndOfName) {
  EXPECT_EQ(parse_error_of("SEND\nfoo\\:bar\n\n\0"sv).code, errc::invalid_escape);
}

TEST(ParserTest, UnescapesNewlineColonBackslashIn11) {
  EXPECT_EQ(parse_one("SEND\nk:\\n\\c\\\\\n\n\0"sv, version::v1_1),
            frame(command::send, {{"k", "\n:\\"}}));
}

TEST(ParserTest, CrEscapeIsUndefinedIn11) {
  const parse_error e = parse_error_of("SEND\nk:\\r\n\n\0"sv, version::v1_1);
  EXPECT_EQ(e.code, errc::invalid_escape);
  EXPECT_EQ(e.detail, "\\r");
}

TEST(ParserTest, BackslashIsLiteralIn10) {
  EXPECT_EQ(parse_one("SEND\na\\c:x\\n\\t\\\n\n\0"sv, version::v1_0),
            frame(command::send, {{"a\\c", "x\\n\\t\\"}}));
}

TEST(ParserTest, ConnectStompAndConnectedAreNotUnescaped) {
  for (const std::string_view cmd : {"CONNECT"sv, "STOMP"sv, "CONNECTED"sv}) {
    const frame f = parse_one(std::string(cmd) + "\npasscode:a\\tb\\c\n\n\0"s);
    EXPECT_EQ(f.header("passcode"), "a\\tb\\c") << cmd;
  }
}

TEST(ParserTest, SetVersionChangesEscapingOfLaterFrames) {
  parser p;
  EXPECT_EQ(p.version(), version::v1_2);
  frame_view f;
  p.feed("SEND\nk:\\r\n\n\0"sv);
  ASSERT_FALSE(p.next(f));
  EXPECT_EQ(f.header("k"), "\r");
  p.set_version(version::v1_0);
  EXPECT_EQ(p.version(), version::v1_0);
  p.feed("SEND\nk:\\r\n\n\0"sv);
  ASSERT_FALSE(p.next(f));
  EXPECT_EQ(f.header("k"), "\\r");
}

// ---------------------------------------------------------------------------------------
// Limits, each checked as bytes arrive.

TEST(ParserTest, DefaultLimits) {
  const parser p;
  EXPECT_EQ(p.limits().max_frame_bytes, 2u * 1024 * 1024);
  EXPECT_EQ(p.limits().max_header_count, 128u);
  EXPECT_EQ(p.limits().max_header_line_bytes, 8u * 1024);
  EXPECT_EQ(p.limits().max_body_bytes, 1024u * 1024);
}

TEST(ParserTest, AcceptsHeaderLineAtLimit) {
  const parser_limits limits{.max_header_line_bytes = 8};
  for (const std::string_view eol : {"\n"sv, "\r\n"sv}) {
    const std::string input = "SEND\nabc:efgh" + std::string(eol) + "\n\0"s;
    EXPECT_EQ(parse_bytewise(input, version::v1_2, limits).frames.size(), 1u);
    EXPECT_EQ(parse(input, version::v1_2, limits).frames.size(), 1u);
  }
}

TEST(ParserTest, RejectsHeaderLineOverLimitBeforeEol) {
  parser p({.max_header_line_bytes = 16});
  frame_view f;
  p.feed("SEND\ndestination:/queue/"sv);  // 17 octets, no EOL yet
  EXPECT_EQ(p.next(f), errc::header_line_too_long);
  EXPECT_EQ(p.error().header, "destination");
  EXPECT_EQ(p.error().limit, 16u);
  EXPECT_EQ(p.error().message(), "header line too long (limit 16 bytes): header 'destination'");
}

TEST(ParserTest, NamesHeaderOfOverlongLineAsFarAsKnown) {
  const parse_error e =
      parse_error_of("SEND\nabcdefghijklmnopq"sv, version::v1_2, {.max_header_line_bytes = 8});
  EXPECT_EQ(e.code, errc::header_line_too_long);
  EXPECT_EQ(e.header, "abcdefgh");
}

TEST(ParserTest, OverlongLineNamesUnescapedHeader) {
  const parse_error e =
      parse_error_of("SEND\na\\cb:0123456789"sv, version::v1_2, {.max_header_line_bytes = 8});
  EXPECT_EQ(e.code, errc::header_line_too_long);
  EXPECT_EQ(e.header, "a:b");
}

TEST(ParserTest, AcceptsMaxHeaderCount) {
  EXPECT_EQ(
      parse("SEND\na:1\nb:2\nc:3\n\n\0"sv, version::v1_2, {.max_header_count = 3}).frames.size(),
      1u);
}

TEST(ParserTest, RejectsOneHeaderTooManyAtItsEol) {
  parser p({.max_header_count = 3});
  frame_view f;
  p.feed("SEND\na:1\nb:2\nc:3\nd:4"sv);
  EXPECT_EQ(p.next(f), errc::need_more);
  p.feed("\n"sv);
  EXPECT_EQ(p.next(f), errc::too_many_headers);
  EXPECT_EQ(p.error().header, "d");
  EXPECT_EQ(p.error().limit, 3u);
  EXPECT_EQ(p.error().message(), "too many headers (limit 3): header 'd'");
}

TEST(ParserTest, ZeroHeaderCountAllowsHeaderlessFramesOnly) {
  const parser_limits limits{.max_header_count = 0};
  EXPECT_EQ(parse("DISCONNECT\n\n\0"sv, version::v1_2, limits).frames.size(), 1u);
  EXPECT_EQ(parse_error_of("SEND\na:b\n\n\0"sv, version::v1_2, limits).code,
            errc::too_many_headers);
}

TEST(ParserTest, RejectsContentLengthOverBodyLimitBeforeBodyArrives) {
  parser p({.max_body_bytes = 100});
  frame_view f;
  p.feed("SEND\ncontent-length:101\n"sv);
  EXPECT_EQ(p.next(f), errc::body_too_large);
  EXPECT_EQ(p.error().limit, 100u);
  EXPECT_EQ(p.error().header, "content-length");
  EXPECT_EQ(p.error().message(), "body too large (limit 100 bytes): content-length 101");
}

TEST(ParserTest, AcceptsContentLengthBodyAtLimit) {
  EXPECT_EQ(parse("SEND\ncontent-length:4\n\nabcd\0"sv, version::v1_2, {.max_body_bytes = 4})
                .frames.size(),
            1u);
}

TEST(ParserTest, RejectsNulTerminatedBodyOverLimitAsItArrives) {
  parser p({.max_body_bytes = 4});
  frame_view f;
  p.feed("SEND\n\nabcd"sv);
  EXPECT_EQ(p.next(f), errc::need_more);  // a NUL now would make a 4-byte body
  p.feed("e"sv);
  EXPECT_EQ(p.next(f), errc::body_too_large);
  EXPECT_EQ(p.error().limit, 4u);
  EXPECT_EQ(p.error().message(), "body too large (limit 4 bytes)");
}

TEST(ParserTest, AcceptsNulTerminatedBodyAtLimit) {
  EXPECT_EQ(parse_bytewise("SEND\n\nabcd\0"sv, version::v1_2, {.max_body_bytes = 4}).frames.size(),
            1u);
}

TEST(ParserTest, AcceptsFrameAtLimit) {
  const std::string_view input = "SEND\na:b\n\nxyz\0"sv;  // 14 octets
  const parser_limits limits{.max_frame_bytes = input.size()};
  EXPECT_EQ(parse(input, version::v1_2, limits).frames.size(), 1u);
  EXPECT_EQ(parse_bytewise(input, version::v1_2, limits).frames.size(), 1u);
  const std::string_view counted = "SEND\ncontent-length:3\n\nxyz\0"sv;
  EXPECT_EQ(parse(counted, version::v1_2, {.max_frame_bytes = counted.size()}).frames.size(), 1u);
}

TEST(ParserTest, RejectsFrameOverLimitWhileHeadArrives) {
  parser p({.max_frame_bytes = 16});
  frame_view f;
  p.feed("SEND\na:0123456"sv);  // 14 octets: with an EOL and a NUL still due, it fits
  EXPECT_EQ(p.next(f), errc::need_more);
  p.feed("78"sv);
  EXPECT_EQ(p.next(f), errc::frame_too_large);
  EXPECT_EQ(p.error().limit, 16u);
  EXPECT_EQ(p.error().message(), "frame too large (limit 16 bytes)");
}

TEST(ParserTest, RejectsFrameOverLimitWhileBodyArrives) {
  parser p({.max_frame_bytes = 16});
  frame_view f;
  p.feed("SEND\n\n012345678"sv);  // 15 octets
  EXPECT_EQ(p.next(f), errc::need_more);
  p.feed("9"sv);
  EXPECT_EQ(p.next(f), errc::frame_too_large);
}

TEST(ParserTest, RejectsContentLengthFrameOverLimitAtBlankLine) {
  parser p({.max_frame_bytes = 30});
  frame_view f;
  p.feed("SEND\ncontent-length:10\n"sv);  // 23 octets + EOL + 10 + NUL = 35
  EXPECT_EQ(p.next(f), errc::need_more);
  p.feed("\n"sv);
  EXPECT_EQ(p.next(f), errc::frame_too_large);
}

TEST(ParserTest, HeartbeatsDoNotCountTowardsFrameLimit) {
  const std::string input = std::string(1000, '\n') + "SEND\n\n\0"s;
  const outcome o = parse(input, version::v1_2, {.max_frame_bytes = 8});
  EXPECT_EQ(o.frames.size(), 1u);
  EXPECT_EQ(o.heartbeats, 1000u);
}

TEST(ParserTest, EndlessHeaderLineKeepsBufferBounded) {
  const parser_limits limits{.max_frame_bytes = 64 * 1024, .max_header_line_bytes = 1024};
  parser p(limits);
  frame_view f;
  p.feed("SEND\nx:"sv);
  const std::string chunk(512, 'a');
  std::error_code ec;
  for (int i = 0; i < 10'000 && ec != errc::header_line_too_long; ++i) {
    p.feed(chunk);
    ec = p.next(f);
  }
  EXPECT_EQ(ec, errc::header_line_too_long);
  EXPECT_LE(p.buffered_bytes(), limits.max_header_line_bytes + chunk.size() + 8);
}

TEST(ParserTest, EndlessBodyKeepsBufferBounded) {
  const parser_limits limits{.max_frame_bytes = 64 * 1024, .max_body_bytes = 1024 * 1024};
  parser p(limits);
  frame_view f;
  p.feed("SEND\n\n"sv);
  const std::string chunk(4096, 'a');
  std::error_code ec;
  for (int i = 0; i < 10'000 && ec != errc::frame_too_large; ++i) {
    p.feed(chunk);
    ec = p.next(f);
  }
  EXPECT_EQ(ec, errc::frame_too_large);
  EXPECT_LE(p.buffered_bytes(), limits.max_frame_bytes + chunk.size());
}

// Quadratic rescanning would take minutes here; linear scanning takes milliseconds.
TEST(ParserTest, OneByteAtATimeCostsLinearWork) {
  const std::size_t n = 512 * 1024;
  const parser_limits limits{
      .max_frame_bytes = 4 * n, .max_header_line_bytes = n, .max_body_bytes = n};
  std::string input = "SEND\nk:" + std::string(n - 2, 'v') + "\n\n" + std::string(n, 'b');
  input.push_back('\0');
  parser p(limits);
  frame_view f;
  std::size_t frames = 0;
  for (const char c : input) {
    p.feed(std::string_view(&c, 1));
    const std::error_code ec = p.next(f);
    if (!ec) {
      ++frames;
      EXPECT_EQ(f.body.size(), n);
      EXPECT_EQ(f.header("k")->size(), n - 2);
    } else {
      ASSERT_EQ(ec, errc::need_more) << p.error().message();
    }
  }
  EXPECT_EQ(frames, 1u);
}

// ---------------------------------------------------------------------------------------
// Buffering and views.

TEST(ParserTest, BufferedBytesCountsUnreturnedBytes) {
  parser p;
  frame_view f;
  p.feed("SEND\n\na\0SEND\n"sv);
  EXPECT_EQ(p.buffered_bytes(), 13u);
  ASSERT_FALSE(p.next(f));
  EXPECT_EQ(p.buffered_bytes(), 5u);
  EXPECT_EQ(p.next(f), errc::need_more);
  EXPECT_EQ(p.buffered_bytes(), 5u);
}

TEST(ParserTest, ViewsPointAtUnescapedBytes) {
  parser p;
  frame_view f;
  p.feed("SEND\nk\\c:v\\nw\n\nbody\0"sv);
  ASSERT_FALSE(p.next(f));
  EXPECT_EQ(f.command, command::send);
  ASSERT_EQ(f.headers.size(), 1u);
  EXPECT_EQ(f.headers[0].name, "k:");
  EXPECT_EQ(f.headers[0].value, "v\nw");
  EXPECT_EQ(f.body, "body");
}

TEST(ParserTest, LargeBodyAcrossManyChunks) {
  std::string body(300'000, 'x');
  for (std::size_t i = 0; i < body.size(); i += 1000) body[i] = '\0';
  const std::string input =
      "SEND\ncontent-length:" + std::to_string(body.size()) + "\n\n" + body + "\0SEND\n\nend\0"s;
  std::vector<std::string_view> chunks;
  for (std::size_t i = 0; i < input.size(); i += 1500) {
    chunks.push_back(std::string_view(input).substr(i, 1500));
  }
  const outcome o = run(chunks);
  ASSERT_EQ(o.frames.size(), 2u) << o.error.message();
  EXPECT_EQ(o.frames[0].body, body);
  EXPECT_EQ(o.frames[1].body, "end");
}

// A small frame limit keeps the buffer small, so it compacts and grows while a head is half
// parsed: the header views already taken must follow the bytes.
TEST(ParserTest, HeaderViewsSurviveCompactionAndGrowth) {
  std::string stream;
  std::vector<frame> expected;
  for (int i = 0; i < 200; ++i) {
    const std::string n = std::to_string(i);
    const std::string body(static_cast<std::size_t>(i % 37), static_cast<char>('a' + i % 26));
    stream +=
        "\nMESSAGE\r\nid:" + n + "\nk\\c" + n + ":v\\n" + n + "\ndup:1\ndup:2\n\n" + body + "\0"s;
    expected.push_back(frame(command::message,
                             {{"id", n}, {"k:" + n, "v\n" + n}, {"dup", "1"}, {"dup", "2"}}, body));
  }
  std::mt19937 rng(7);
  for (const std::size_t max_chunk : {1u, 7u, 64u, 300u}) {
    std::vector<std::string_view> chunks;
    std::string_view rest = stream;
    while (!rest.empty()) {
      const std::size_t n = std::uniform_int_distribution<std::size_t>(1, max_chunk)(rng);
      chunks.push_back(rest.substr(0, n));
      rest.remove_prefix(std::min(n, rest.size()));
    }
    const outcome o = run(chunks, version::v1_2, {.max_frame_bytes = 100});
    EXPECT_EQ(o.ec, errc::need_more) << o.error.message();
    EXPECT_EQ(o.frames, expected) << "chunks up to " << max_chunk;
    EXPECT_EQ(o.heartbeats, 200u);
  }
}

TEST(ParserTest, ReusesParserForManyFrames) {
  parser p;
  frame_view f;
  for (int i = 0; i < 10'000; ++i) {
    const std::string n = std::to_string(i);
    p.feed("SEND\nn:" + n + "\n\n" + n + "\0"s);
    ASSERT_FALSE(p.next(f));
    EXPECT_EQ(f.header("n"), n);
    EXPECT_EQ(f.body, n);
  }
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(ParserTest, ShrinkFreesTheBufferOnlyBetweenFrames) {
  parser p;
  frame_view f;
  const std::string big(20'000, 'b');
  p.feed("SEND\ndestination:/queue/a\n\n" + big + "\0"s);
  ASSERT_FALSE(p.next(f));
  EXPECT_EQ(f.body, big);
  EXPECT_GE(p.capacity(), big.size());
  EXPECT_EQ(p.next(f), errc::need_more);
  p.shrink(4096);
  EXPECT_EQ(p.capacity(), 0u);

  // Half a frame stays where it is, whatever the buffer's size.
  p.feed("SEND\ndestination:/queue/a\n\nhal"s);
  EXPECT_EQ(p.next(f), errc::need_more);
  const auto held = p.capacity();
  p.shrink(0);
  EXPECT_EQ(p.capacity(), held);
  p.feed("f\0"s);
  ASSERT_FALSE(p.next(f));
  EXPECT_EQ(f.body, "half");
  EXPECT_EQ(f.header("destination"), "/queue/a");

  // A buffer no larger than asked to keep is kept; after freeing, prepare() starts afresh.
  p.shrink(held);
  EXPECT_EQ(p.capacity(), held);
  p.shrink(0);
  EXPECT_EQ(p.capacity(), 0u);
  auto space = p.prepare(512);
  ASSERT_GE(space.size(), 512u);
  const std::string frame = "SEND\ndestination:/queue/b\n\nx\0"s;
  std::memcpy(space.data(), frame.data(), frame.size());
  p.commit(frame.size());
  ASSERT_FALSE(p.next(f));
  EXPECT_EQ(f.header("destination"), "/queue/b");
}

// ---------------------------------------------------------------------------------------
// parse_error::message() for the remaining shapes.

TEST(ParseErrorTest, MessageMakesPeerBytesPrintable) {
  const parse_error e{errc::unknown_command, "", 0, "A\x01\n\xff"};
  EXPECT_EQ(e.message(), "unknown command 'A\\x01\\n\\xff'");
}

TEST(ParseErrorTest, MessageTruncatesLongNames) {
  const parse_error e{errc::header_line_too_long, std::string(1000, 'n'), 10, ""};
  const std::string m = e.message();
  EXPECT_LT(m.size(), 200u);
  EXPECT_NE(m.find("..."), std::string::npos);
}

TEST(ParseErrorTest, MessageOfForeignCodeUsesItsCategory) {
  const parse_error e{std::make_error_code(std::errc::invalid_argument), "", 0, ""};
  EXPECT_EQ(e.message(), std::make_error_code(std::errc::invalid_argument).message());
}

}  // namespace
}  // namespace stomp
