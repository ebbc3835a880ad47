#include "stompctl/command_line.hpp"
#include "stompctl/failure.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace stompctl {
namespace {

// argv for parse_command_line, with "stompctl" as argv[0].
command_line parse(std::initializer_list<const char*> words) {
  std::vector<const char*> argv = {"stompctl"};
  argv.insert(argv.end(), words.begin(), words.end());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

// The message of the failure `f` throws, checking it ends the run as a usage error.
template <class F>
std::string usage_error(F f) {
  try {
    f();
  } catch (const failure& e) {
    EXPECT_EQ(e.status, exit_usage) << e.message;
    return e.message;
  }
  ADD_FAILURE() << "no failure";
  return {};
}

std::string parse_error(std::initializer_list<const char*> words) {
  return usage_error([&] { parse(words); });
}

std::string argument_error(std::initializer_list<const char*> words) {
  return usage_error([&] { check_arguments(parse(words)); });
}

std::string url_error(const char* url) {
  return usage_error([&] { parse_url(url); });
}

// ---------------------------------------------------------------------------------------
// Commands and global options

TEST(StompctlCommandLineTest, NoWordsIsNoCommand) {
  const command_line cl = parse({});
  EXPECT_EQ(cl.command, nullptr);
  EXPECT_FALSE(cl.help);
  EXPECT_FALSE(cl.json);
  EXPECT_EQ(cl.timeout, default_timeout);
}

TEST(StompctlCommandLineTest, FirstWordIsTheCommandAndTheRestItsArguments) {
  const command_line cl = parse({"publish", "/topic/a", "hello"});
  ASSERT_NE(cl.command, nullptr);
  EXPECT_EQ(cl.command->name, "publish");
  EXPECT_EQ(cl.args, (std::vector<std::string>{"/topic/a", "hello"}));
}

TEST(StompctlCommandLineTest, RejectsUnknownCommand) {
  EXPECT_EQ(parse_error({"frobnicate"}), "unknown command 'frobnicate' (see stompctl --help)");
}

TEST(StompctlCommandLineTest, TakesGlobalOptionsBeforeOrAfterTheCommand) {
  const command_line before = parse({"--url", "http://h:1", "--json", "stats"});
  const command_line after = parse({"stats", "--url=http://h:1", "--json", "--token", "t"});
  for (const command_line* cl : {&before, &after}) {
    ASSERT_NE(cl->command, nullptr);
    EXPECT_EQ(cl->command->name, "stats");
    EXPECT_EQ(cl->url, "http://h:1");
    EXPECT_TRUE(cl->json);
  }
  EXPECT_EQ(before.token, std::nullopt);
  EXPECT_EQ(after.token, "t");
}

TEST(StompctlCommandLineTest, LastOfARepeatedGlobalOptionWins) {
  EXPECT_EQ(parse({"--url", "http://a", "stats", "--url", "http://b"}).url, "http://b");
}

TEST(StompctlCommandLineTest, ShortHelpAndVersion) {
  EXPECT_TRUE(parse({"-h"}).help);
  EXPECT_TRUE(parse({"-V"}).version);
  const command_line cl = parse({"history", "--help"});
  EXPECT_TRUE(cl.help);
  EXPECT_EQ(cl.command->name, "history");
}

TEST(StompctlCommandLineTest, HelpIsNotStoppedByWrongArgumentCounts) {
  // `stompctl destination --help` prints help although the NAME is missing.
  EXPECT_TRUE(parse({"destination", "--help"}).help);
}

TEST(StompctlCommandLineTest, ParsesTimeoutInSeconds) {
  EXPECT_EQ(parse({"--timeout", "30", "stats"}).timeout, std::chrono::seconds(30));
  EXPECT_EQ(parse({"stats", "--timeout=3600"}).timeout, std::chrono::seconds(3600));
}

TEST(StompctlCommandLineTest, RejectsBadTimeouts) {
  const std::string expected = "--timeout: expected a whole number from 1 to 3600, got '";
  EXPECT_EQ(parse_error({"--timeout", "0", "stats"}), expected + "0'");
  EXPECT_EQ(parse_error({"--timeout", "3601", "stats"}), expected + "3601'");
  EXPECT_EQ(parse_error({"--timeout", "ten", "stats"}), expected + "ten'");
  EXPECT_EQ(parse_error({"--timeout", "-1", "stats"}), expected + "-1'");
  EXPECT_EQ(parse_error({"--timeout", " 5", "stats"}), expected + " 5'");
  EXPECT_EQ(parse_error({"--timeout", "+5", "stats"}), expected + "+5'");
}

TEST(StompctlCommandLineTest, RejectsUnknownOptionsNamingTheCommand) {
  EXPECT_EQ(parse_error({"stats", "--bogus"}),
            "stats: unknown option '--bogus' (see stompctl stats --help)");
  EXPECT_EQ(parse_error({"stats", "--bogus=1"}),
            "stats: unknown option '--bogus' (see stompctl stats --help)");
  EXPECT_EQ(parse_error({"--bogus", "stats"}), "unknown option '--bogus' (see stompctl --help)");
  EXPECT_EQ(parse_error({"stats", "-x"}), "stats: unknown option '-x' (see stompctl stats --help)");
}

TEST(StompctlCommandLineTest, DoesNotGuessAbbreviatedOptions) {
  EXPECT_EQ(parse_error({"destinations", "--lim", "5"}),
            "destinations: unknown option '--lim' (see stompctl destinations --help)");
  EXPECT_EQ(parse_error({"stats", "--js"}),
            "stats: unknown option '--js' (see stompctl stats --help)");
}

TEST(StompctlCommandLineTest, RejectsAnotherCommandsOption) {
  EXPECT_EQ(parse_error({"stats", "--limit", "5"}),
            "stats: unknown option '--limit' (see stompctl stats --help)");
  EXPECT_EQ(parse_error({"destinations", "--last", "5"}),
            "destinations: unknown option '--last' (see stompctl destinations --help)");
}

TEST(StompctlCommandLineTest, TakesACommandsOptionsOnlyAfterIt) {
  EXPECT_EQ(parse_error({"--limit", "5", "destinations"}),
            "unknown option '--limit' (see stompctl --help)");
}

TEST(StompctlCommandLineTest, RejectsAMissingValue) {
  EXPECT_EQ(parse_error({"destinations", "--limit"}), "--limit needs a value (N)");
  EXPECT_EQ(parse_error({"--timeout=", "stats"}), "--timeout needs a value (SECONDS)");
  EXPECT_EQ(parse_error({"stats", "--url"}), "--url needs a value (URL)");
}

TEST(StompctlCommandLineTest, RejectsAValueForASwitch) {
  EXPECT_EQ(parse_error({"stats", "--json=yes"}), "--json takes no value");
}

TEST(StompctlCommandLineTest, DoubleDashEndsTheOptions) {
  const command_line cl = parse({"publish", "--", "/topic/a", "--json"});
  EXPECT_EQ(cl.args, (std::vector<std::string>{"/topic/a", "--json"}));
  EXPECT_FALSE(cl.json);
}

TEST(StompctlCommandLineTest, ALoneDashIsAnArgument) {
  EXPECT_EQ(parse({"publish", "/topic/a", "-"}).args, (std::vector<std::string>{"/topic/a", "-"}));
}

TEST(StompctlCommandLineTest, AValueMayStartWithADash) {
  const command_line cl = parse({"publish", "/topic/a", "--header", "-k=v"});
  ASSERT_NE(cl.option("header"), nullptr);
  EXPECT_EQ(*cl.option("header"), "-k=v");
}

// ---------------------------------------------------------------------------------------
// Each command's options

TEST(StompctlCommandLineTest, DestinationsOptions) {
  const command_line cl =
      parse({"destinations", "--prefix", "/queue/", "--offset", "10", "--limit=20"});
  ASSERT_NE(cl.option("prefix"), nullptr);
  EXPECT_EQ(*cl.option("prefix"), "/queue/");
  EXPECT_EQ(*cl.option("offset"), "10");
  EXPECT_EQ(*cl.option("limit"), "20");
  EXPECT_EQ(cl.option("pattern"), nullptr);
  EXPECT_EQ(*parse({"destinations", "--pattern", "/topic/**"}).option("pattern"), "/topic/**");
}

TEST(StompctlCommandLineTest, HistoryOptions) {
  const command_line last = parse({"history", "/topic/a", "--last", "20"});
  EXPECT_EQ(last.args, (std::vector<std::string>{"/topic/a"}));
  EXPECT_EQ(*last.option("last"), "20");
  const command_line after = parse({"history", "--after", "120", "/topic/a", "--limit", "5"});
  EXPECT_EQ(after.args, (std::vector<std::string>{"/topic/a"}));
  EXPECT_EQ(*after.option("after"), "120");
  EXPECT_EQ(*after.option("limit"), "5");
}

TEST(StompctlCommandLineTest, PublishOptionsKeepRepeatedHeadersInOrder) {
  const command_line cl = parse({"publish", "/topic/a", "body", "--header", "a=1", "--content-type",
                                 "text/plain", "--header=b=2"});
  EXPECT_EQ(cl.options, (std::vector<std::pair<std::string, std::string>>{
                            {"header", "a=1"}, {"content-type", "text/plain"}, {"header", "b=2"}}));
}

TEST(StompctlCommandLineTest, RejectsARepeatedOptionThatDoesNotRepeat) {
  EXPECT_EQ(parse_error({"destinations", "--limit", "1", "--limit", "2"}), "--limit given twice");
  EXPECT_EQ(parse_error({"publish", "/q", "--content-type", "a", "--content-type", "b"}),
            "--content-type given twice");
}

TEST(StompctlCommandLineTest, CommandsWithoutOptionsTakeNone) {
  for (const char* command : {"destination", "purge", "connections", "kick", "stats", "passwd"})
    EXPECT_NE(parse_error({command, "--limit", "1"}).find("unknown option '--limit'"),
              std::string::npos)
        << command;
}

// ---------------------------------------------------------------------------------------
// Arguments

TEST(StompctlCommandLineTest, ChecksTheNumberOfArguments) {
  EXPECT_NO_THROW(check_arguments(parse({"stats"})));
  EXPECT_NO_THROW(check_arguments(parse({"publish", "/q"})));
  EXPECT_NO_THROW(check_arguments(parse({"publish", "/q", "body"})));
  EXPECT_EQ(argument_error({"stats", "extra"}),
            "usage: stompctl stats  (see stompctl stats --help)");
  EXPECT_EQ(argument_error({"destination"}),
            "usage: stompctl destination NAME (see stompctl destination --help)");
  EXPECT_NE(argument_error({"publish", "/q", "a", "b"}).find("usage: stompctl publish NAME"),
            std::string::npos);
}

TEST(StompctlCommandLineTest, RejectsAnEmptyFirstArgument) {
  EXPECT_EQ(argument_error({"destination", ""}), "destination: the first argument is empty");
}

// ---------------------------------------------------------------------------------------
// Numbers

TEST(StompctlCommandLineTest, ParsesWholeNumbersInRange) {
  EXPECT_EQ(parse_number("--limit", "1", 1, 1000), 1u);
  EXPECT_EQ(parse_number("--limit", "1000", 1, 1000), 1000u);
  EXPECT_EQ(parse_number("ID", "18446744073709551615", 0, UINT64_MAX), UINT64_MAX);
}

TEST(StompctlCommandLineTest, RejectsBadNumbers) {
  const auto error = [](const char* text) {
    return usage_error([&] { parse_number("--limit", text, 1, 1000); });
  };
  for (const char* bad : {"0", "1001", "", "ten", "-1", "+1", " 1", "1 ", "1.5", "0x10", "1e3"})
    EXPECT_EQ(error(bad),
              std::string("--limit: expected a whole number from 1 to 1000, got '") + bad + "'");
  EXPECT_NE(usage_error([] { parse_number("ID", "18446744073709551616", 0, UINT64_MAX); }), "");
}

// ---------------------------------------------------------------------------------------
// --url

TEST(StompctlCommandLineTest, ParsesHttpUrl) {
  const endpoint_url u = parse_url("http://10.0.0.5:61680");
  EXPECT_EQ(u.text, "http://10.0.0.5:61680");
  EXPECT_EQ(u.host, "10.0.0.5");
  EXPECT_EQ(u.port, "61680");
  EXPECT_EQ(u.base_path, "");
}

TEST(StompctlCommandLineTest, UrlPortDefaultsTo80) {
  EXPECT_EQ(parse_url("http://admin.example").port, "80");
  EXPECT_EQ(parse_url("http://admin.example:").port, "80");
}

TEST(StompctlCommandLineTest, UrlWithoutSchemeIsHttp) {
  const endpoint_url u = parse_url("localhost:61680");
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.port, "61680");
  EXPECT_EQ(parse_url("127.0.0.1").port, "80");
}

TEST(StompctlCommandLineTest, UrlIpv6HostLosesItsBrackets) {
  const endpoint_url u = parse_url("http://[::1]:61680/");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, "61680");
}

TEST(StompctlCommandLineTest, UrlPathIsABasePathWithoutTrailingSlashes) {
  EXPECT_EQ(parse_url("http://h:1/").base_path, "");
  EXPECT_EQ(parse_url("http://h:1/stompd/admin//").base_path, "/stompd/admin");
  EXPECT_EQ(parse_url("http://h/a%20b").base_path, "/a%20b");  // sent as given
}

TEST(StompctlCommandLineTest, UrlSchemeIsCaseInsensitive) {
  EXPECT_EQ(parse_url("HTTP://h:1").host, "h");
}

TEST(StompctlCommandLineTest, RejectsHttps) {
  EXPECT_NE(url_error("https://127.0.0.1:1").find("https:// is not supported"), std::string::npos);
}

TEST(StompctlCommandLineTest, RejectsOtherSchemes) {
  EXPECT_EQ(url_error("ftp://h:1"), "--url: unsupported scheme 'ftp'");
  EXPECT_EQ(url_error("ws://h:1"), "--url: unsupported scheme 'ws'");
}

TEST(StompctlCommandLineTest, RejectsBadUrlPorts) {
  const std::string expected = "--url port: expected a whole number from 1 to 65535, got '";
  EXPECT_EQ(url_error("http://h:0"), expected + "0'");
  EXPECT_EQ(url_error("http://h:65536"), expected + "65536'");
  EXPECT_EQ(url_error("http://h:99999999999999999999"), expected + "99999999999999999999'");
  EXPECT_EQ(url_error("http://h:abc"),
            "--url: expected http://HOST[:PORT][/PATH], got 'http://h:abc'");
}

TEST(StompctlCommandLineTest, RejectsUrlWithoutHost) {
  EXPECT_EQ(url_error("http://:61680"), "--url: no host in 'http://:61680'");
  EXPECT_EQ(url_error("http:///api"), "--url: no host in 'http:///api'");
}

TEST(StompctlCommandLineTest, RejectsMalformedUrls) {
  for (const char* bad : {"not a url", "http://[::1", "http://h:1/a b", "http://h^:1", "h:1:2"})
    EXPECT_EQ(url_error(bad),
              std::string("--url: expected http://HOST[:PORT][/PATH], got '") + bad + "'");
}

TEST(StompctlCommandLineTest, RejectsCredentialsQueriesAndFragmentsInUrls) {
  EXPECT_NE(url_error("http://user:secret@h:1").find("no user or password"), std::string::npos);
  EXPECT_EQ(url_error("http://h:1/?x=1"),
            "--url: expected http://HOST[:PORT][/PATH], got 'http://h:1/?x=1'");
  EXPECT_EQ(url_error("http://h:1/#top"),
            "--url: expected http://HOST[:PORT][/PATH], got 'http://h:1/#top'");
}

// ---------------------------------------------------------------------------------------
// Help

TEST(StompctlCommandLineTest, UsageListsEveryCommand) {
  const std::string text = usage();
  for (const char* command : {"destinations", "destination", "history", "purge", "connections",
                              "kick", "stats", "publish", "passwd"})
    EXPECT_NE(text.find(std::string("\n  ") + command + " "), std::string::npos) << command;
}

TEST(StompctlCommandLineTest, CommandUsageListsItsOptions) {
  const std::string text = command_usage(*parse({"history"}).command);
  EXPECT_TRUE(text.starts_with("stompctl history: "));
  EXPECT_NE(text.find("Usage: stompctl history NAME"), std::string::npos);
  for (const char* option : {"--last N", "--after S", "--limit N"})
    EXPECT_NE(text.find(option), std::string::npos) << option;
}

}  // namespace
}  // namespace stompctl
