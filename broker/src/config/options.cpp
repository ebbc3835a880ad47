#include "broker/options.hpp"

#include "stomp/decimal.hpp"

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <optional>

#ifndef STOMPD_VERSION
#error "STOMPD_VERSION is defined by broker/CMakeLists.txt"
#endif

namespace broker {
namespace {

namespace po = boost::program_options;

// Read when --config is not given, relative to the current directory, so `stompd` run from
// a checkout uses the shipped file.
constexpr std::string_view default_config_file = "conf/stompd.yaml";

struct flag {
  const char* names;       // program_options spelling: "long" or "long,s"
  const char* value_name;  // null for a switch
  const char* help;
};

// Every flag, in the order --help lists them. Values are taken as strings and checked here,
// so every bad value is reported (not just the first) in one wording.
constexpr flag flags[] = {
    {"config,c", "FILE", "read settings from FILE, not conf/stompd.yaml"},
    {"tcp", "HOST:PORT|off", "STOMP over TCP: listen address, or off"},
    {"ws", "HOST:PORT|off", "STOMP over WebSocket: listen address, or off"},
    {"admin", "HOST:PORT|off", "admin HTTP API and /metrics: listen address, or off"},
    {"data", "DIR", "directory for the message journal"},
    {"log-level", "LEVEL", "trace, debug, info, warn, error or off"},
    {"threads", "N", "worker threads, each its own event loop; 0 = one per core (max 64)"},
    {"redis", "HOST:PORT[,...]", "share history with other nodes through these Redis primaries"},
    {"hash-passcode", nullptr, "read a passcode on stdin, print its hash for auth.users"},
    {"help,h", nullptr, "print this help and exit"},
    {"version,V", nullptr, "print the version and exit"},
};

std::string usage() {
  std::string text =
      "stompd: a STOMP 1.2 message broker for TCP and WebSocket clients.\n"
      "\n"
      "Usage: stompd [OPTIONS]\n"
      "\n"
      "Options:\n";
  for (const flag& f : flags) {
    std::string_view names = f.names;
    std::size_t comma = names.find(',');
    std::string left =
        comma == std::string_view::npos
            ? fmt::format("    --{}", names)
            : fmt::format("-{}, --{}", names.substr(comma + 1), names.substr(0, comma));
    if (f.value_name) left += fmt::format(" {}", f.value_name);
    text += fmt::format("  {:<23}  {}\n", left, f.help);
  }
  text +=
      "\n"
      "Settings come from --config FILE, else from conf/stompd.yaml in the current\n"
      "directory if it exists, else from built-in defaults; flags override them. The\n"
      "shipped conf/stompd.yaml lists every setting with its default.\n"
      "\n"
      "HOST:PORT is e.g. 0.0.0.0:61613, localhost:61613 or [::1]:61613; :61613 keeps\n"
      "the configured host. Port 0 picks a free port, which is logged.\n";
  const config defaults;
  text += fmt::format(
      "By default TCP listens on {}:{}, WebSocket on {}:{}{}\n"
      "and the admin API on {}:{}.\n"
      "\n",
      defaults.tcp.host, config::tcp_listener::default_port, defaults.websocket.host,
      config::websocket_listener::default_port, defaults.websocket.path, defaults.admin.host,
      config::admin_listener::default_port);
  text +=
      "Examples:\n"
      "  stompd                                  conf/stompd.yaml or the defaults\n"
      "  stompd -c /etc/stompd/stompd.yaml       another config file\n"
      "  stompd --tcp 0.0.0.0:61613 --ws off     every interface, TCP only\n"
      "  stompd --tcp :0 --ws :0 --data /tmp/q   free ports, a scratch journal\n"
      "  stompd --log-level debug --threads 1    one thread, log each session\n";
  return text;
}

// Applies "off", "HOST:PORT", "[IPV6]:PORT" or ":PORT" (keeps the configured host) to a
// listener. Returns what is wrong with `arg`, or "".
std::string apply_listener(std::string_view arg, config::listener& listener) {
  if (arg == "off") {
    listener.enabled = false;
    return {};
  }
  std::size_t colon = arg.rfind(':');
  if (colon == std::string_view::npos)
    return fmt::format("expected HOST:PORT, :PORT or off, got '{}'", arg);
  std::string_view host = arg.substr(0, colon);
  std::string_view port_text = arg.substr(colon + 1);
  if (host.starts_with('[') && host.ends_with(']')) {
    host = host.substr(1, host.size() - 2);
    if (host.empty()) return fmt::format("expected an address inside [], got '{}'", arg);
  } else if (host.find_first_of("[]:") != std::string_view::npos) {
    return fmt::format("an IPv6 address needs brackets, as in [::1]:61613; got '{}'", arg);
  }
  auto port = stomp::parse_decimal<std::uint16_t>(port_text);
  if (!port) return fmt::format("port must be between 0 and 65535, got '{}'", port_text);
  listener.enabled = true;
  if (!host.empty()) listener.host = host;
  listener.port = *port;
  return {};
}

std::string apply_threads(std::string_view arg, std::size_t& threads) {
  auto value = stomp::parse_decimal<std::size_t>(arg);
  if (!value || *value > config::max_threads)
    return fmt::format("expected a number between 0 and {}, got '{}'", config::max_threads, arg);
  threads = *value;
  return {};
}

// "HOST:PORT[,HOST:PORT...]" as cluster.redis.addresses. Returns what is wrong, or "".
std::string apply_redis(std::string_view arg, config::cluster_settings::redis_settings& redis) {
  std::vector<config::cluster_settings::redis_settings::address> addresses;
  for (std::string_view rest = arg;;) {
    const auto comma = rest.find(',');
    if (auto error = parse_redis_address(rest.substr(0, comma), addresses.emplace_back());
        !error.empty())
      return error;
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  redis.addresses = std::move(addresses);
  return {};
}

}  // namespace

startup parse_command_line(int argc, const char* const* argv) {
  startup result;
  po::options_description described;
  for (const flag& f : flags) {
    if (f.value_name)
      described.add_options()(f.names, po::value<std::string>()->value_name(f.value_name), f.help);
    else
      described.add_options()(f.names, f.help);
  }
  // Collects stray words so they can be named, instead of program_options' vague "too many
  // positional options".
  described.add_options()("stray", po::value<std::vector<std::string>>());
  po::positional_options_description stray;
  stray.add("stray", -1);

  po::variables_map vm;
  try {
    std::vector<std::string> args(argc > 1 ? argv + 1 : argv, argc > 1 ? argv + argc : argv);
    // No guessing: "--thr" must not silently mean "--threads", nor stop working when
    // another flag starting with "thr" is added.
    auto style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(args).options(described).positional(stray).style(style).run(),
              vm);
  } catch (const po::error& e) {
    result.errors.push_back({"command line", e.what()});
    return result;
  }
  if (vm.count("stray")) {
    for (const std::string& word : vm["stray"].as<std::vector<std::string>>())
      result.errors.push_back({"command line", fmt::format("unexpected argument '{}'", word)});
    return result;
  }

  if (vm.count("help")) {
    result.what = startup::action::print_and_exit;
    result.output = usage();
    return result;
  }
  if (vm.count("hash-passcode")) {
    result.what = startup::action::hash_passcode;
    return result;
  }
  if (vm.count("version")) {
    result.what = startup::action::print_and_exit;
    result.output = fmt::format("stompd {}\n", STOMPD_VERSION);
    return result;
  }

  auto value = [&](const char* name) -> std::optional<std::string> {
    if (!vm.count(name)) return std::nullopt;
    return vm[name].as<std::string>();
  };

  config settings;
  std::optional<std::string> file = value("config");
  if (std::error_code ec; !file && std::filesystem::exists(default_config_file, ec))
    file = default_config_file;
  if (file) {
    config_result loaded = load_config(*file);
    if (loaded.value) settings = std::move(*loaded.value);
    result.errors = std::move(loaded.errors);
  }

  // Flags are checked even when the file failed, so one run reports every problem.
  auto check = [&](const char* where, std::string error) {
    if (!error.empty()) result.errors.push_back({where, std::move(error)});
  };
  if (auto arg = value("tcp")) check("--tcp", apply_listener(*arg, settings.tcp));
  if (auto arg = value("ws")) check("--ws", apply_listener(*arg, settings.websocket));
  if (auto arg = value("admin")) check("--admin", apply_listener(*arg, settings.admin));
  if (auto arg = value("data")) {
    if (arg->empty())
      check("--data", "expected a directory, got ''");
    else
      settings.data_dir = *arg;
  }
  if (auto arg = value("log-level")) {
    if (auto level = parse_log_level(*arg))
      settings.log_level = *level;
    else
      check("--log-level",
            fmt::format("expected trace, debug, info, warn, error or off, got '{}'", *arg));
  }
  if (auto arg = value("threads")) check("--threads", apply_threads(*arg, settings.threads));
  if (auto arg = value("redis")) check("--redis", apply_redis(*arg, settings.cluster.redis));

  if (result.errors.empty()) {
    result.what = startup::action::run;
    result.settings = std::move(settings);
  }
  return result;
}

}  // namespace broker
