#include "broker/options.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace broker {
namespace {

// Each test runs in an empty scratch directory, because without --config the command line
// reads conf/stompd.yaml relative to the current directory.
class OptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    previous_ = std::filesystem::current_path();
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("stompd_options_test_{}_{}", ::getpid(), counter++);
    std::filesystem::create_directories(dir_);
    std::filesystem::current_path(dir_);
  }

  void TearDown() override {
    std::filesystem::current_path(previous_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Writes `text` to `name` inside the scratch directory.
  void write(const std::filesystem::path& name, std::string_view text) {
    std::filesystem::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }

  static startup run(std::initializer_list<const char*> args) {
    std::vector<const char*> argv{"stompd"};
    argv.insert(argv.end(), args);
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
  }

  // Runs a command line that must fail with exactly one error; returns it as "where: what".
  static std::string only_error(std::initializer_list<const char*> args) {
    startup s = run(args);
    EXPECT_EQ(s.what, startup::action::fail);
    if (s.errors.size() != 1) {
      ADD_FAILURE() << "expected one error, got " << s.errors.size();
      return {};
    }
    return to_string(s.errors[0]);
  }

  std::filesystem::path previous_;
  std::filesystem::path dir_;
};

TEST_F(OptionsTest, NoArgumentsAndNoConfigFileRunWithTheDefaults) {
  startup s = run({});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_TRUE(s.errors.empty());
  EXPECT_EQ(s.settings.tcp.port, 61613);
  EXPECT_EQ(s.settings.websocket.port, 15674);
  EXPECT_EQ(s.settings.threads, 0u);
}

TEST_F(OptionsTest, NoConfigFlagReadsConfStompdYamlInTheCurrentDirectory) {
  write("conf/stompd.yaml", "threads: 3\n");
  startup s = run({});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_EQ(s.settings.threads, 3u);
}

TEST_F(OptionsTest, ErrorsInTheImplicitConfigFileFail) {
  write("conf/stompd.yaml", "thread: 3\n");
  EXPECT_EQ(only_error({}), "conf/stompd.yaml:1: unknown key 'thread' (did you mean 'threads'?)");
}

TEST_F(OptionsTest, ConfigFlagReadsTheGivenFile) {
  write("conf/stompd.yaml", "threads: 3\n");
  write("other.yaml", "threads: 5\n");
  startup s = run({"--config", "other.yaml"});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_EQ(s.settings.threads, 5u);
}

TEST_F(OptionsTest, ShortConfigFlagReadsTheGivenFile) {
  write("other.yaml", "threads: 5\n");
  startup s = run({"-c", "other.yaml"});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_EQ(s.settings.threads, 5u);
}

TEST_F(OptionsTest, ConfigFlagWithAMissingFileFails) {
  std::string error = only_error({"--config=missing.yaml"});
  EXPECT_TRUE(error.starts_with("missing.yaml: cannot read")) << error;
}

TEST_F(OptionsTest, FlagsOverrideTheConfigFile) {
  write("stompd.yaml",
        "tcp: {host: 0.0.0.0, port: 1000}\nthreads: 2\nlog_level: warn\ndata_dir: /a\n");
  startup s = run({"-c", "stompd.yaml", "--tcp", "127.0.0.1:2000", "--threads", "8", "--log-level",
                   "trace", "--data", "/b"});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_EQ(s.settings.tcp.host, "127.0.0.1");
  EXPECT_EQ(s.settings.tcp.port, 2000);
  EXPECT_EQ(s.settings.threads, 8u);
  EXPECT_EQ(s.settings.log_level, log_level::trace);
  EXPECT_EQ(s.settings.data_dir, "/b");
}

TEST_F(OptionsTest, RedisFlagNamesThePrimariesAndOverridesTheFile) {
  write("stompd.yaml", "cluster: {redis: {addresses: [\"10.0.0.1:6379\"]}}\n");
  startup s = run({"-c", "stompd.yaml", "--redis", "127.0.0.1:7000,127.0.0.1:7001"});
  ASSERT_EQ(s.what, startup::action::run);
  const auto& a = s.settings.cluster.redis.addresses;
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].host, "127.0.0.1");
  EXPECT_EQ(a[0].port, 7000);
  EXPECT_EQ(a[1].port, 7001);
  EXPECT_EQ(only_error({"--redis", "127.0.0.1:7000,nope"}),
            "--redis: expected HOST:PORT, got 'nope'");
}

TEST_F(OptionsTest, TcpFlagAcceptsAddressWithEphemeralPort) {
  startup s = run({"--tcp", "127.0.0.1:0"});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_EQ(s.settings.tcp.host, "127.0.0.1");
  EXPECT_EQ(s.settings.tcp.port, 0);
}

TEST_F(OptionsTest, TcpFlagAcceptsHostName) {
  startup s = run({"--tcp=localhost:61614"});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_EQ(s.settings.tcp.host, "localhost");
  EXPECT_EQ(s.settings.tcp.port, 61614);
}

TEST_F(OptionsTest, TcpFlagAcceptsBracketedIpv6Address) {
  startup s = run({"--tcp", "[::1]:61613"});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_EQ(s.settings.tcp.host, "::1");
  EXPECT_EQ(s.settings.tcp.port, 61613);
}

TEST_F(OptionsTest, PortOnlyKeepsTheConfiguredHost) {
  write("conf/stompd.yaml", "websocket: {host: 0.0.0.0}\n");
  startup s = run({"--ws", ":8080"});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_EQ(s.settings.websocket.host, "0.0.0.0");
  EXPECT_EQ(s.settings.websocket.port, 8080);
}

TEST_F(OptionsTest, OffDisablesAListener) {
  startup s = run({"--tcp", "off", "--ws=off"});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_FALSE(s.settings.tcp.enabled);
  EXPECT_FALSE(s.settings.websocket.enabled);
}

TEST_F(OptionsTest, AnAddressEnablesAListenerTheFileDisabled) {
  write("conf/stompd.yaml", "websocket: {enabled: false}\n");
  startup s = run({"--ws", ":0"});
  ASSERT_EQ(s.what, startup::action::run);
  EXPECT_TRUE(s.settings.websocket.enabled);
}

TEST_F(OptionsTest, RejectsPortAbove65535) {
  EXPECT_EQ(only_error({"--tcp", "127.0.0.1:65536"}),
            "--tcp: port must be between 0 and 65535, got '65536'");
}

TEST_F(OptionsTest, RejectsNonNumericPort) {
  EXPECT_EQ(only_error({"--ws", "localhost:http"}),
            "--ws: port must be between 0 and 65535, got 'http'");
}

TEST_F(OptionsTest, RejectsEmptyPort) {
  EXPECT_EQ(only_error({"--ws", "localhost:"}), "--ws: port must be between 0 and 65535, got ''");
}

TEST_F(OptionsTest, RejectsAddressWithoutPort) {
  EXPECT_EQ(only_error({"--tcp", "localhost"}),
            "--tcp: expected HOST:PORT, :PORT or off, got 'localhost'");
}

TEST_F(OptionsTest, RejectsUnbracketedIpv6Address) {
  EXPECT_EQ(only_error({"--tcp", "::1:61613"}),
            "--tcp: an IPv6 address needs brackets, as in [::1]:61613; got '::1:61613'");
}

TEST_F(OptionsTest, RejectsEmptyBrackets) {
  EXPECT_EQ(only_error({"--tcp", "[]:61613"}),
            "--tcp: expected an address inside [], got '[]:61613'");
}

TEST_F(OptionsTest, RejectsUnknownLogLevel) {
  EXPECT_EQ(only_error({"--log-level", "loud"}),
            "--log-level: expected trace, debug, info, warn, error or off, got 'loud'");
}

TEST_F(OptionsTest, RejectsTooManyThreads) {
  EXPECT_EQ(only_error({"--threads", "65"}),
            "--threads: expected a number between 0 and 64, got '65'");
}

TEST_F(OptionsTest, RejectsNegativeThreads) {
  EXPECT_EQ(only_error({"--threads=-1"}),
            "--threads: expected a number between 0 and 64, got '-1'");
}

TEST_F(OptionsTest, RejectsEmptyDataDirectory) {
  EXPECT_EQ(only_error({"--data", ""}), "--data: expected a directory, got ''");
}

TEST_F(OptionsTest, ReportsEveryBadFlagAndConfigErrorTogether) {
  write("conf/stompd.yaml", "threads: lots\n");
  startup s = run({"--tcp", "nowhere", "--threads", "x"});
  EXPECT_EQ(s.what, startup::action::fail);
  std::vector<std::string> errors;
  for (const config_error& e : s.errors) errors.push_back(to_string(e));
  EXPECT_EQ(errors, (std::vector<std::string>{
                        "conf/stompd.yaml:1: threads: expected an integer, got 'lots'",
                        "--tcp: expected HOST:PORT, :PORT or off, got 'nowhere'",
                        "--threads: expected a number between 0 and 64, got 'x'",
                    }));
}

TEST_F(OptionsTest, RejectsUnknownFlag) {
  std::string error = only_error({"--port", "1"});
  EXPECT_TRUE(error.starts_with("command line: ")) << error;
  EXPECT_NE(error.find("--port"), std::string::npos) << error;
}

TEST_F(OptionsTest, DoesNotGuessAnAbbreviatedFlag) {
  std::string error = only_error({"--thr", "2"});
  EXPECT_NE(error.find("--thr"), std::string::npos) << error;
}

TEST_F(OptionsTest, RejectsFlagWithoutItsValue) {
  std::string error = only_error({"--threads"});
  EXPECT_NE(error.find("--threads"), std::string::npos) << error;
}

TEST_F(OptionsTest, RejectsARepeatedFlag) {
  std::string error = only_error({"--threads", "1", "--threads", "2"});
  EXPECT_NE(error.find("--threads"), std::string::npos) << error;
}

TEST_F(OptionsTest, RejectsStrayArgument) {
  EXPECT_EQ(only_error({"stompd.yaml"}), "command line: unexpected argument 'stompd.yaml'");
}

TEST_F(OptionsTest, HelpPrintsUsageWithEveryFlag) {
  startup s = run({"--help"});
  ASSERT_EQ(s.what, startup::action::print_and_exit);
  EXPECT_TRUE(s.output.starts_with("stompd: a STOMP 1.2 message broker")) << s.output;
  for (const char* text :
       {"-c, --config FILE", "--tcp HOST:PORT|off", "--ws HOST:PORT|off", "--data DIR",
        "--log-level LEVEL", "--threads N", "-h, --help", "-V, --version", "Examples:"})
    EXPECT_NE(s.output.find(text), std::string::npos) << text << " missing from\n" << s.output;
}

TEST_F(OptionsTest, HelpNamesTheDefaultAddresses) {
  startup s = run({"--help"});
  for (const char* text : {"127.0.0.1:61613", "127.0.0.1:15674/ws", "127.0.0.1:61680"})
    EXPECT_NE(s.output.find(text), std::string::npos) << text << " missing from\n" << s.output;
}

TEST_F(OptionsTest, ShortHelpFlagPrintsUsage) {
  startup s = run({"-h"});
  ASSERT_EQ(s.what, startup::action::print_and_exit);
  EXPECT_NE(s.output.find("Usage: stompd"), std::string::npos);
}

TEST_F(OptionsTest, HelpDoesNotReadTheConfigFile) {
  write("conf/stompd.yaml", "not: [valid\n");
  startup s = run({"--help"});
  EXPECT_EQ(s.what, startup::action::print_and_exit);
  EXPECT_TRUE(s.errors.empty());
}

TEST_F(OptionsTest, VersionPrintsTheVersion) {
  startup s = run({"--version"});
  ASSERT_EQ(s.what, startup::action::print_and_exit);
  EXPECT_EQ(s.output, fmt::format("stompd {}\n", STOMPD_VERSION));
}

TEST_F(OptionsTest, ShortVersionFlagPrintsTheVersion) {
  startup s = run({"-V"});
  ASSERT_EQ(s.what, startup::action::print_and_exit);
  EXPECT_EQ(s.output, fmt::format("stompd {}\n", STOMPD_VERSION));
}

TEST_F(OptionsTest, EmptyArgvRunsWithTheDefaults) {
  // execve() allows argc == 0, leaving not even the program name to skip.
  const char* const argv[] = {nullptr};
  startup s = parse_command_line(0, argv);
  EXPECT_EQ(s.what, startup::action::run);
  EXPECT_EQ(s.settings.tcp.port, 61613);
}

}  // namespace
}  // namespace broker
