#include "stompctl/command_line.hpp"

#include "broker/config.hpp"
#include "stomp/decimal.hpp"
#include "stompctl/failure.hpp"

#include <boost/program_options.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/scheme.hpp>
#include <boost/url/url_view.hpp>
#include <fmt/format.h>

#include <set>

namespace stompctl {

std::string default_url() {
  return fmt::format("http://127.0.0.1:{}", broker::config::admin_listener::default_port);
}
namespace {

namespace po = boost::program_options;

const std::vector<option_spec> global_options = {
    {"url", "URL", "admin API address (default: $STOMPCTL_URL, else http://127.0.0.1:61680)"},
    {"token", "TOKEN", "admin token (default: $STOMPCTL_TOKEN, which ps does not show)"},
    {"json", "", "print the API's JSON instead of a table"},
    {"timeout", "SECONDS", "give up on the broker after this long (default: 10)"},
    {"help", "", "print help (for a command: stompctl COMMAND --help)"},
    {"version", "", "print the version"},
};

const std::vector<command_spec> commands = {
    {"destinations",
     "[--prefix P | --pattern P] [--offset N] [--limit N]",
     "list destinations",
     0,
     0,
     {{"prefix", "P", "only names starting with P, e.g. /queue/"},
      {"pattern", "P", "only names matching P: '*' one segment, '**' any, e.g. /topic/chat.**"},
      {"offset", "N", "skip the first N (sorted by name)"},
      {"limit", "N", "show at most N, 1 to 1000 (default: 100)"}},
     "Prints NAME, TYPE, SUBS (subscribers), IN and OUT (messages since start), RATE\n"
     "(published per second over ~10 s), STORED and LAST-SEQ (journaled destinations) and\n"
     "QUEUED (queues: messages waiting for a consumer).\n"
     "\n"
     "Examples:\n"
     "  stompctl destinations\n"
     "  stompctl destinations --pattern '/topic/lost-item.**'\n"
     "  stompctl destinations --prefix /queue/ --json | jq '.destinations[].name'\n"},
    {"destination",
     "NAME",
     "one destination and its subscriptions",
     1,
     1,
     {},
     "Example:\n"
     "  stompctl destination /topic/lost-item.42.room.7\n"},
    {"history",
     "NAME [--last N | --after S [--limit N]]",
     "stored messages of a journaled destination",
     1,
     1,
     {{"last", "N", "the newest N messages, 1 to 1000"},
      {"after", "S", "messages with x-seq greater than S (default: 0, from the oldest)"},
      {"limit", "N", "at most N messages after S, 1 to 1000 (default: 100)"}},
     "Prints SEQ (x-seq), AGE, SIZE and the start of each BODY; a body that is not UTF-8\n"
     "shows as <binary>. --json has every header and the whole body (\"body\", or\n"
     "\"body_base64\" when it is not UTF-8).\n"
     "\n"
     "Examples:\n"
     "  stompctl history /topic/lost-item.42.room.7 --last 20\n"
     "  stompctl history /topic/lost-item.42.room.7 --after 120 --limit 1000 --json\n"},
    {"purge",
     "NAME",
     "delete a destination's stored messages (x-seq continues)",
     1,
     1,
     {},
     "Example:\n"
     "  stompctl purge /topic/lost-item.42.room.7\n"},
    {"connections",
     "",
     "list client connections",
     0,
     0,
     {},
     "Prints ID, USER, PEER, TRANSPORT, VERSION (STOMP), SUBS, QUEUED (outbound bytes not yet\n"
     "written), IN and OUT (messages) and CONNECTED.\n"},
    {"kick",
     "ID",
     "disconnect a connection (it gets an ERROR frame)",
     1,
     1,
     {},
     "The client receives ERROR with message \"disconnected by administrator\"; ID is from\n"
     "stompctl connections.\n"
     "\n"
     "Example:\n"
     "  stompctl kick 42\n"},
    {"stats", "", "broker statistics", 0, 0, {}, ""},
    {"publish",
     "NAME [BODY|-] [--header K=V ...] [--content-type TYPE]",
     "publish a message",
     1,
     2,
     {{"header", "K=V", "a message header (repeatable)", true},
      {"content-type", "TYPE", "the content-type header, e.g. application/json"}},
     "The body is BODY, or standard input when BODY is - or missing. Returns once the broker\n"
     "has stored the message (journaled destinations) or routed it, and prints its x-seq and\n"
     "message-id. With the admin token it may publish anywhere; with a backend's JWT as\n"
     "--token (when the broker has auth.jwt) it may publish where that backend may SEND.\n"
     "\n"
     "Examples:\n"
     "  stompctl publish /topic/lost-item.42.room.7 'Is this your umbrella?'\n"
     "  echo '{\"found\":true}' | stompctl publish /queue/jobs --content-type application/json\n"
     "  stompctl publish /topic/alerts - --header priority=high < alert.txt\n"},
    {"passwd",
     "",
     "hash a passcode for auth.users (needs no broker)",
     0,
     0,
     {},
     "Reads the passcode from the terminal without echoing it (twice, to catch typos), or one\n"
     "line from standard input when that is not a terminal, and prints the hash to put in\n"
     "auth.users[].passcode; the same as stompd --hash-passcode.\n"
     "\n"
     "Example:\n"
     "  stompctl passwd\n"},
};

std::string option_help(const std::vector<option_spec>& options) {
  std::string text;
  for (const auto& o : options) {
    std::string left = fmt::format("--{}", o.name);
    if (!o.value_name.empty()) left += fmt::format(" {}", o.value_name);
    text += fmt::format("  {:<19}  {}\n", left, o.help);
  }
  return text;
}

}  // namespace

std::string usage() {
  std::string text =
      "stompctl: manage a running stompd through its admin API.\n"
      "\n"
      "Usage: stompctl [--url URL] [--token TOKEN] [--json] COMMAND [ARGS]\n"
      "\n"
      "Commands:\n";
  for (const auto& c : commands) text += fmt::format("  {:<14}{}\n", c.name, c.summary);
  text += "\nOptions (before or after the command):\n" + option_help(global_options);
  text +=
      "\n"
      "Destination names are given as they are (/topic/room); stompctl encodes them.\n"
      "`stompctl COMMAND --help` describes each command.\n"
      "\n"
      "Exit status:\n"
      "  0  success\n"
      "  1  usage error (bad command line or input)\n"
      "  2  broker unreachable: no connection, timeout, or not an admin API at --url\n"
      "  3  authentication failed (401: token missing or wrong) or publish denied (403)\n"
      "  4  not found (404: no such destination or connection, or not journaled)\n"
      "  5  any other API error (bad parameter, server error)\n"
      "\n"
      "Examples:\n"
      "  export STOMPCTL_TOKEN=...            the admin token from admin.token\n"
      "  stompctl stats\n"
      "  stompctl destinations --prefix /topic/\n"
      "  stompctl history /topic/lost-item.42.room.7 --last 10\n"
      "  stompctl --url http://10.0.0.5:61680 connections --json\n";
  return text;
}

std::string command_usage(const command_spec& c) {
  std::string text = fmt::format("stompctl {}: {}.\n\nUsage: stompctl {}{}{}\n", c.name, c.summary,
                                 c.name, c.synopsis.empty() ? "" : " ", c.synopsis);
  if (!c.options.empty()) text += "\nOptions:\n" + option_help(c.options);
  if (!c.details.empty()) text += fmt::format("\n{}", c.details);
  text +=
      "\nGlobal options (--url, --token, --json, --timeout) and exit statuses: stompctl --help\n";
  return text;
}

namespace {

const option_spec* find_option(const std::vector<option_spec>& list, std::string_view name) {
  for (const auto& o : list)
    if (o.name == name) return &o;
  return nullptr;
}

// The value name of any option called `name`, for "needs a value" messages.
std::string_view value_name_of(std::string_view name) {
  if (const auto* o = find_option(global_options, name)) return o->value_name;
  for (const auto& c : commands)
    if (const auto* o = find_option(c.options, name)) return o->value_name;
  return "a value";
}

// Every option of stompctl, the global ones and those of every command, for
// program_options: it has to know which words are option values before anyone knows the
// command, so it gets the union. Which options the command takes is checked afterwards.
po::options_description every_option() {
  po::options_description described;
  std::set<std::string_view> seen;
  auto add = [&](const option_spec& o) {
    if (!seen.insert(o.name).second) return;  // "limit": destinations and history
    std::string names(o.name);
    if (o.name == "help") names += ",h";
    if (o.name == "version") names += ",V";
    const std::string help(o.help);
    if (o.value_name.empty())
      described.add_options()(names.c_str(), help.c_str());
    else
      described.add_options()(names.c_str(), po::value<std::string>(), help.c_str());
  };
  for (const auto& o : global_options) add(o);
  for (const auto& c : commands)
    for (const auto& o : c.options) add(o);
  return described;
}

std::string unknown_option(const command_line& cl, std::string_view word) {
  std::string_view name = word.substr(0, word.find('='));
  return cl.command ? fmt::format("{}: unknown option '{}' (see stompctl {} --help)",
                                  cl.command->name, name, cl.command->name)
                    : fmt::format("unknown option '{}' (see stompctl --help)", name);
}

}  // namespace

const std::string* command_line::option(std::string_view name) const {
  for (const auto& [k, v] : options)
    if (k == name) return &v;
  return nullptr;
}

std::uint64_t parse_number(std::string_view what, std::string_view text, std::uint64_t min,
                           std::uint64_t max) {
  const std::optional<std::uint64_t> value = stomp::parse_decimal<std::uint64_t>(text);
  if (!value || *value < min || *value > max)
    fail(exit_usage,
         fmt::format("{}: expected a whole number from {} to {}, got '{}'", what, min, max, text));
  return *value;
}

command_line parse_command_line(int argc, const char* const* argv) {
  // The first word is the command, the rest its arguments; "--" ends the options.
  po::positional_options_description words;
  words.add("command", 1).add("args", -1);
  // No guessing ("--lim" is not "--limit"), and no sticky switches ("-hV").
  const int style = po::command_line_style::default_style &
                    ~po::command_line_style::allow_guessing & ~po::command_line_style::allow_sticky;
  po::parsed_options parsed(nullptr);
  try {
    // Unregistered options are kept, not thrown, so the message can name the command.
    parsed = po::command_line_parser(argc, argv)
                 .options(every_option())
                 .positional(words)
                 .style(style)
                 .allow_unregistered()
                 .run();
  } catch (const po::invalid_command_line_syntax& e) {
    const std::string name = e.get_option_name();
    if (e.kind() == po::invalid_command_line_syntax::missing_parameter ||
        e.kind() == po::invalid_command_line_syntax::empty_adjacent_parameter)
      fail(exit_usage, fmt::format("{} needs a value ({})", name,
                                   value_name_of(std::string_view(name).substr(2))));
    if (e.kind() == po::invalid_command_line_syntax::extra_parameter)
      fail(exit_usage, fmt::format("{} takes no value", name));
    fail(exit_usage, e.what());
  } catch (const po::error& e) {
    fail(exit_usage, e.what());
  }

  // Walked in order rather than stored in a variables_map: a command's options count only
  // after the command, only some repeat, and a global option given twice means the last.
  command_line cl;
  for (const po::option& o : parsed.options) {
    if (o.position_key >= 0) {
      const std::string& word = o.value.front();
      if (o.string_key == "args") {
        cl.args.push_back(word);
        continue;
      }
      for (const auto& c : commands)
        if (c.name == word) cl.command = &c;
      if (!cl.command)
        fail(exit_usage, fmt::format("unknown command '{}' (see stompctl --help)", word));
      continue;
    }
    if (o.unregistered) fail(exit_usage, unknown_option(cl, o.original_tokens.front()));
    const std::string& name = o.string_key;
    const std::string value = o.value.empty() ? std::string() : o.value.front();
    if (find_option(global_options, name)) {
      if (name == "url") cl.url = value;
      if (name == "token") cl.token = value;
      if (name == "json") cl.json = true;
      if (name == "help") cl.help = true;
      if (name == "version") cl.version = true;
      if (name == "timeout")
        cl.timeout = std::chrono::seconds(parse_number("--timeout", value, 1, 3600));
      continue;
    }
    const option_spec* spec = cl.command ? find_option(cl.command->options, name) : nullptr;
    if (!spec) fail(exit_usage, unknown_option(cl, "--" + name));
    if (!spec->repeatable && cl.option(name))
      fail(exit_usage, fmt::format("--{} given twice", name));
    cl.options.emplace_back(name, value);
  }
  return cl;
}

void check_arguments(const command_line& cl) {
  const command_spec& c = *cl.command;
  if (cl.args.size() < c.min_args || cl.args.size() > c.max_args)
    fail(exit_usage,
         fmt::format("usage: stompctl {} {} (see stompctl {} --help)", c.name, c.synopsis, c.name));
  if (!cl.args.empty() && cl.args[0].empty())
    fail(exit_usage, fmt::format("{}: the first argument is empty", c.name));
}

endpoint_url parse_url(std::string_view text) {
  namespace urls = boost::urls;
  endpoint_url u;
  u.text = std::string(text);
  // "127.0.0.1:61680" is how people write it; as a URI it would have no authority (and
  // "localhost:61680" would be the scheme "localhost"), so a URL without "://" is http.
  const std::string uri =
      text.find("://") == std::string_view::npos ? fmt::format("http://{}", text) : u.text;
  const std::string malformed =
      fmt::format("--url: expected http://HOST[:PORT][/PATH], got '{}'", text);
  const auto parsed = urls::parse_uri(uri);
  if (!parsed) fail(exit_usage, malformed);
  const urls::url_view& url = *parsed;
  if (url.scheme_id() == urls::scheme::https)
    fail(exit_usage,
         "https:// is not supported: the admin listener speaks plain HTTP (keep it "
         "on loopback, or reach it through an SSH tunnel)");
  if (url.scheme_id() != urls::scheme::http)
    fail(exit_usage, fmt::format("--url: unsupported scheme '{}'", url.scheme()));
  // The token goes in --token, not in a URL that ps and shell histories show.
  if (url.has_userinfo())
    fail(exit_usage,
         "--url: no user or password in the URL (give the token with --token or "
         "STOMPCTL_TOKEN)");
  // Boost.URL 1.81 reads "http://h:abc" as the host "h", an empty port and the path "abc";
  // RFC 3986 §3.3 wants a path after an authority to start with "/".
  std::string_view path = url.encoded_path();
  if (url.has_query() || url.has_fragment() || (!path.empty() && !path.starts_with('/')))
    fail(exit_usage, malformed);
  if (url.host_type() == urls::host_type::ipvfuture)
    fail(exit_usage, fmt::format("--url: bad host in {}", text));
  u.host = url.host_address();
  if (u.host.empty()) fail(exit_usage, fmt::format("--url: no host in '{}'", text));
  u.port = url.has_port() && !url.port().empty() ? std::string(url.port()) : "80";
  parse_number("--url port", u.port, 1, 65535);
  // Kept as given (still percent-encoded): it is sent as the start of each request target.
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  u.base_path = std::string(path);
  return u;
}

}  // namespace stompctl
