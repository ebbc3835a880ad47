#include "options.hpp"

#include "stomp/decimal.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <fmt/format.h>

#include <concepts>
#include <iostream>
#include <limits>
#include <stdexcept>

namespace po = boost::program_options;

namespace bench {

namespace {

constexpr const char* usage = R"(Usage: stompd-bench SCENARIO [OPTIONS]

Load generator for STOMP 1.2 brokers over WebSocket (subprotocol v12.stomp) or TCP, loopback
only. Latency is measured from each message's scheduled send time (x-bench-ts header), so a
broker that pushes back shows up as latency instead of a slower schedule.

Scenarios:
  fanout   P publishers -> one topic -> S subscribers
  rooms    R rooms x K members; each member publishes to and subscribes its room
  idle     N sessions with heart-beats held for --hold seconds; broker RSS per connection
  journal  SENDs with receipts: receipted messages/s and receipt latency
  replay   SUBSCRIBE with x-replay:last:N, time until its RECEIPT (stompd only)
  floor    no broker: CPU per small write() over loopback TCP: a tight loop on one
           connection, 64 frames per write, and fan-out paced at --rate ticks/s (default 100)
           with one write to each of --subscribers connections per tick
  capacity no broker: the generator's own receive capacity, from an in-process WebSocket
           server pushing 64 MESSAGE frames per message to --subscribers connections

Examples:
  stompd-bench fanout --url ws://127.0.0.1:15675/ws --subscribers 100 --rate 100 --broker-pid PID
  stompd-bench fanout --url ws://127.0.0.1:15674/ws --login guest --passcode guest --host /
  stompd-bench rooms --tcp 127.0.0.1:61614 --rooms 1000 --members 2 --total-rate 10000
  stompd-bench idle --url ws://127.0.0.1:15675/ws --connections 10000 --hold 10 --broker-pid PID

Options)";

// A whole-number option, read by stomp::parse_decimal (lexical_cast, program_options' own,
// takes "-1" for an unsigned and wraps it). With `shown_default` the default is listed in
// --help and counts as defaulted(), as with po::value(&x)->default_value(x).
template <std::unsigned_integral T>
po::typed_value<std::string>* decimal(const char* name, T* target, bool shown_default = true) {
  auto* option = po::value<std::string>();
  if (shown_default) option->default_value(std::to_string(*target));
  return option->notifier([name, target](const std::string& text) {
    const std::optional<T> value = stomp::parse_decimal<T>(text);
    if (!value)
      throw std::runtime_error(fmt::format("--{}: expected a whole number up to {}, got '{}'", name,
                                           std::numeric_limits<T>::max(), text));
    *target = *value;
  });
}

}  // namespace

std::string target::url() const {
  auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return websocket ? fmt::format("ws://{}:{}{}", h, port, path)
                   : fmt::format("stomp://{}:{}", h, port);
}

target parse_target(const std::string& url) {
  namespace urls = boost::urls;
  const auto parsed = urls::parse_uri(url);
  // A URL that does not parse still says by its scheme which complaint fits.
  const std::string_view scheme = parsed ? std::string_view(parsed->scheme())
                                         : std::string_view(url).substr(0, url.find("://"));
  target t;
  if (scheme == "ws") {
    t.websocket = true;
  } else if (scheme == "stomp" || scheme == "tcp") {
    t.websocket = false;
  } else {
    throw std::runtime_error(
        fmt::format("unsupported URL '{}': use ws://HOST:PORT/PATH or stomp://HOST:PORT", url));
  }
  if (!parsed) throw std::runtime_error(fmt::format("invalid address in '{}'", url));
  const urls::url_view& u = *parsed;
  // Boost.URL 1.81 reads "ws://h:abc" as an empty port and the path "abc"; RFC 3986 §3.3
  // wants a path after an authority to start with "/".
  if (!u.has_authority() || u.has_userinfo() || u.has_fragment() ||
      (!u.encoded_path().empty() && !u.encoded_path().starts_with('/')))
    throw std::runtime_error(fmt::format("invalid address in '{}'", url));
  if (!u.has_port() || u.port().empty())
    throw std::runtime_error(fmt::format("no port in '{}'", url));
  const std::optional<std::uint16_t> port = stomp::parse_decimal<std::uint16_t>(u.port());
  if (!port || *port == 0) throw std::runtime_error(fmt::format("invalid port '{}'", u.port()));
  t.port = *port;
  // The WebSocket handshake's request target: path and query as given.
  t.path = u.encoded_path().empty() ? std::string("/ws") : std::string(u.encoded_target());
  std::string host = u.host_address();
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error(fmt::format("'{}' is not a numeric IP address", host));
  // Load is only ever sent to this machine.
  if (!addr.is_loopback())
    throw std::runtime_error(
        fmt::format("refusing {}: only loopback addresses may be targeted", addr.to_string()));
  t.host = addr.to_string();
  return t;
}

std::string_view to_string(scenario s) noexcept {
  switch (s) {
    case scenario::fanout:
      return "fanout";
    case scenario::rooms:
      return "rooms";
    case scenario::idle:
      return "idle";
    case scenario::journal:
      return "journal";
    case scenario::replay:
      return "replay";
    case scenario::floor:
      return "floor";
    case scenario::capacity:
      return "capacity";
  }
  return "unknown";
}

std::optional<options> parse_options(int argc, char** argv) {
  options o;
  std::string scenario_name, url, tcp, ws, hb;
  double warmup = o.warmup.count(), duration = o.duration.count(), drain = o.drain.count(),
         hold = o.hold.count();
  std::string pids;
  po::options_description desc(usage, 100);
  // clang-format off
  desc.add_options()
    ("help,h", "print this help and exit")
    ("url", po::value(&url), "broker: ws://HOST:PORT/PATH or stomp://HOST:PORT "
                             "(default ws://127.0.0.1:15674/ws); several, comma-separated: "
                             "the connections are spread over them")
    ("tcp", po::value(&tcp), "shortcut for --url stomp://HOST:PORT")
    ("ws", po::value(&ws), "shortcut for --url ws://HOST:PORT/ws")
    ("login", po::value(&o.login), "CONNECT login")
    ("passcode", po::value(&o.passcode), "CONNECT passcode")
    ("host", po::value(&o.vhost), "CONNECT host header (virtual host; RabbitMQ: /)")
    ("heart-beat", po::value(&hb), "CONNECT heart-beat cx,cy in ms (default 0,0; idle: 10000,10000)")
    ("threads", decimal("threads", &o.threads), "I/O threads, one io_context each")
    ("warmup", po::value(&warmup)->default_value(warmup), "seconds of load before measuring")
    ("duration", po::value(&duration)->default_value(duration), "seconds measured")
    ("drain", po::value(&drain)->default_value(drain), "longest wait for deliveries after the last send (s)")
    ("hold", po::value(&hold)->default_value(hold), "idle: seconds the sessions are held")
    ("rate", po::value(&o.rate)->default_value(o.rate), "messages/s per publisher (0: unthrottled)")
    ("total-rate", po::value(&o.total_rate), "messages/s over all publishers (overrides --rate)")
    ("window", decimal("window", &o.window),
     "fanout/rooms unthrottled: most messages a publisher may be ahead of the slowest "
     "subscriber of its destination (closed loop); 0: open loop")
    ("inflight", decimal("inflight", &o.inflight),
     "journal unthrottled: receipts outstanding per publisher")
    ("batch", decimal("batch", &o.batch), "most SEND frames per write")
    ("body-bytes", decimal("body-bytes", &o.body_bytes), "message body size")
    ("publishers", decimal("publishers", &o.publishers), "fanout/journal: publishers")
    ("subscribers", decimal("subscribers", &o.subscribers), "fanout: subscribers; capacity, floor: connections")
    ("rooms", decimal("rooms", &o.rooms), "rooms: number of rooms")
    ("members", decimal("members", &o.members), "rooms: members per room")
    ("connections", decimal("connections", &o.connections),
     "idle: sessions; replay: connections replaying in parallel (default 1)")
    ("connect-concurrency", decimal("connect-concurrency", &o.connect_concurrency),
     "connections being opened at once")
    ("replay-messages", decimal("replay-messages", &o.replay_messages),
     "replay: messages stored first, and N in x-replay:last:N")
    ("count", decimal("count", &o.count), "replay: replays per connection; "
     "floor: writes (default 1000000)")
    ("destination", po::value(&o.destination), "destination (default per scenario: "
     "/topic/bench.fanout, /topic/bench.room.<i>, /topic/bench.journal, /topic/bench.replay.<pid>)")
    ("header", po::value(&o.send_headers)->composing(), "extra NAME:VALUE header on every SEND "
     "(repeatable), e.g. persistent:true")
    ("broker-pid", po::value(&pids), "broker process: CPU and RSS are read from /proc/PID; "
                                     "several, comma-separated, are summed (nodes and Redis)")
    ("json", "print the result as one JSON object on stdout (the summary goes to stderr)")
    ("no-progress", "no progress line on stderr")
    ("label", po::value(&o.label), "free text copied into the result");
  // clang-format on
  po::options_description hidden;
  hidden.add_options()("scenario", po::value(&scenario_name));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description pos;
  pos.add("scenario", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help") || scenario_name.empty()) {
    std::cout << desc << "\n";
    if (scenario_name.empty() && !vm.count("help")) throw std::runtime_error("no scenario given");
    return std::nullopt;
  }
  if (scenario_name == "fanout")
    o.scenario = scenario::fanout;
  else if (scenario_name == "rooms")
    o.scenario = scenario::rooms;
  else if (scenario_name == "idle")
    o.scenario = scenario::idle;
  else if (scenario_name == "journal")
    o.scenario = scenario::journal;
  else if (scenario_name == "replay")
    o.scenario = scenario::replay;
  else if (scenario_name == "floor")
    o.scenario = scenario::floor;
  else if (scenario_name == "capacity")
    o.scenario = scenario::capacity;
  else
    throw std::runtime_error(fmt::format("unknown scenario '{}'", scenario_name));

  // Defaults that differ per scenario.
  if (vm["connections"].defaulted() && o.scenario == scenario::replay) o.connections = 1;
  if (vm["count"].defaulted() && o.scenario == scenario::floor) o.count = 1'000'000;
  if (!tcp.empty()) url = "stomp://" + tcp;
  if (!ws.empty()) url = "ws://" + ws + "/ws";
  if (!url.empty()) {
    o.targets.clear();
    for (std::string_view rest = url;;) {
      const auto comma = rest.find(',');
      o.targets.push_back(parse_target(std::string(rest.substr(0, comma))));
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
  }
  o.heart_beat = !hb.empty() ? hb : o.scenario == scenario::idle ? "10000,10000" : "0,0";
  o.warmup = std::chrono::duration<double>(warmup);
  o.duration = std::chrono::duration<double>(duration);
  o.drain = std::chrono::duration<double>(drain);
  o.hold = std::chrono::duration<double>(hold);
  for (std::string_view rest = pids; !rest.empty();) {
    const auto comma = rest.find(',');
    const auto text = rest.substr(0, comma);
    const auto pid = stomp::parse_decimal<unsigned>(text);
    if (!pid || *pid == 0 || *pid > static_cast<unsigned>(std::numeric_limits<int>::max()))
      throw std::runtime_error(fmt::format("--broker-pid: no such process id '{}'", text));
    o.broker_pids.push_back(static_cast<int>(*pid));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  o.json = vm.count("json") > 0;
  o.progress = vm.count("no-progress") == 0;
  if (o.threads == 0 || o.threads > 64) throw std::runtime_error("--threads must be 1..64");
  if (o.batch == 0) throw std::runtime_error("--batch must be at least 1");
  if (o.duration.count() <= 0 || o.duration.count() > 3600 || o.warmup.count() < 0 ||
      o.warmup.count() > 600 || o.drain.count() < 0 || o.drain.count() > 600 ||
      o.hold.count() < 0 || o.hold.count() > 3600)
    throw std::runtime_error(
        "durations are bounded: --duration 0..3600, --hold 0..3600, --warmup/--drain 0..600");
  for (const auto& h : o.send_headers)
    if (h.find(':') == std::string::npos || h.front() == ':')
      throw std::runtime_error(fmt::format("--header '{}' is not NAME:VALUE", h));
  return o;
}

}  // namespace bench
