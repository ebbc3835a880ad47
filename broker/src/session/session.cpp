#include "session/session.hpp"

#include "broker/log.hpp"
#include "routing/publish.hpp"
#include "stomp/serializer.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace net = boost::asio;

namespace broker {

namespace {

using stomp::command;
using stomp::header_view;
using clock = std::chrono::steady_clock;

// Bytes asked of each read adapt to the connection, as NATS sizes its read buffers: a read
// that fills its space doubles the next one (up to the maximum), and a run of reads that use
// under a quarter halves it. Idle connections, most of a chat server's, so hold a few hundred
// bytes instead of a buffer sized for a busy publisher; the parser grows its buffer beyond
// this only when a frame needs it.
constexpr std::size_t min_read_bytes = 512;
constexpr std::size_t max_read_bytes = 16 * 1024;
constexpr int short_reads_before_shrinking = 8;
// Frames coalesced into one socket write (for WebSocket, one message). The byte bound keeps a
// WebSocket message within what clients buffer: Spring's WebSocketStompClient refuses
// messages over 64 KiB (inboundMessageSizeLimit). A larger single frame still goes alone.
constexpr std::size_t max_frames_per_write = 512;
constexpr std::size_t max_coalesced_bytes = 32 * 1024;

// Headers a SEND may not pass on to subscribers: the broker sets them, or they concern only
// the SEND itself.

std::optional<stomp::version> negotiate_version(std::optional<std::string_view> accept) {
  if (!accept) return stomp::version::v1_0;  // STOMP 1.2, "Protocol Negotiation"
  std::optional<stomp::version> best;
  std::string_view rest = *accept;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto v = rest.substr(0, comma);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    std::optional<stomp::version> got;
    if (v == "1.0") got = stomp::version::v1_0;
    if (v == "1.1") got = stomp::version::v1_1;
    if (v == "1.2") got = stomp::version::v1_2;
    if (got && (!best || *got > *best)) best = got;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return best;
}

bool parse_ms(std::string_view s, std::uint64_t& out);

// x-replay: "last:N", "after:SEQ" or "since:UNIX_MS", decimal, no sign, no spaces.
std::optional<storage::replay_request> parse_replay(std::string_view v) {
  using kind = storage::replay_request::kind;
  storage::replay_request r;
  std::string_view number;
  if (v.starts_with("last:")) {
    r.mode = kind::last;
    number = v.substr(5);
  } else if (v.starts_with("after:")) {
    r.mode = kind::after;
    number = v.substr(6);
  } else if (v.starts_with("since:")) {
    r.mode = kind::since;
    number = v.substr(6);
  } else {
    return std::nullopt;
  }
  if (number.empty() ||
      !std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), r.value);
  if (ec != std::errc{} || p != number.data() + number.size()) return std::nullopt;
  return r;
}

bool parse_ms(std::string_view s, std::uint64_t& out) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

// "cx,cy" (STOMP 1.2, "Heart-beating"); absent means "0,0".
bool parse_heartbeat(std::optional<std::string_view> h, std::uint64_t& cx, std::uint64_t& cy) {
  cx = cy = 0;
  if (!h) return true;
  auto comma = h->find(',');
  if (comma == std::string_view::npos) return false;
  return parse_ms(h->substr(0, comma), cx) && parse_ms(h->substr(comma + 1), cy);
}

std::chrono::milliseconds negotiate_interval(std::uint64_t ours_ms, std::uint64_t theirs_ms) {
  if (ours_ms == 0 || theirs_ms == 0) return std::chrono::milliseconds{0};
  return std::chrono::milliseconds{std::max(ours_ms, theirs_ms)};
}

}  // namespace

std::string_view to_string(close_reason r) noexcept {
  switch (r) {
    case close_reason::client_disconnect:
      return "client_disconnect";
    case close_reason::peer_closed:
      return "peer_closed";
    case close_reason::io_error:
      return "io_error";
    case close_reason::protocol_error:
      return "protocol_error";
    case close_reason::slow_consumer:
      return "slow_consumer";
    case close_reason::heartbeat_timeout:
      return "heartbeat_timeout";
    case close_reason::connect_timeout:
      return "connect_timeout";
    case close_reason::shutdown:
      return "shutdown";
    case close_reason::access_refused:
      return "access_refused";
    case close_reason::token_expired:
      return "token_expired";
    case close_reason::kicked:
      return "kicked";
  }
  return "unknown";
}

session::session(broker_context& ctx, worker& w, std::string peer, std::string_view transport,
                 connection_limiter::slot slot)
    : ctx_(ctx),
      worker_(w),
      timer_(w.io),
      id_(ctx.next_session_id.fetch_add(1, std::memory_order_relaxed)),
      slot_(std::move(slot)),
      peer_(std::move(peer)),
      transport_(transport),
      parser_(ctx.settings.limits.frame),
      connected_since_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count()),
      stats_(w.stats) {
  worker_.sessions.insert(this);
  ctx_.metrics.connections[transport_index(transport_)].fetch_add(1, std::memory_order_relaxed);
  last_read_ = last_write_ = clock::now();
  log_debug("session={} peer={} transport={} accepted", id_, peer_, transport_);
}

session::~session() {
  release_resources();
  ctx_.metrics.connections[transport_index(transport_)].fetch_sub(1, std::memory_order_relaxed);
}

admin::connection_info session::info() const {
  admin::connection_info i;
  i.id = id_;
  i.user = user_;
  i.peer = peer_;
  i.transport = std::string(transport_);
  if (connected_) i.version = std::string(stomp::to_string(version_));
  i.subscriptions = subscriptions_.size();
  i.queued_bytes = queued_bytes_;
  i.messages_in = messages_in_;
  i.messages_out = messages_out_;
  i.connected_since_ms = connected_since_ms_;
  return i;
}

void session::collect_subscriptions(std::string_view destination,
                                    std::vector<admin::subscription_info>& out) const {
  for (const auto& [key, sub] : subscriptions_) {
    if (sub.destination != destination) continue;
    admin::subscription_info i;
    i.connection = id_;
    i.id = sub.id;
    i.user = user_;
    i.ack_mode = sub.mode == ack_mode::auto_ack ? "auto"
                 : sub.mode == ack_mode::client ? "client"
                                                : "client-individual";
    if (sub.q) i.unacked = sub.q->unacked(this, key);
    out.push_back(std::move(i));
  }
}

void session::kick(std::string_view reason) {
  if (closing_) return;
  log_info("session={} peer={} user={} disconnected by administrator", id_, peer_, user_);
  const header_view h[] = {{"message", reason}, {"content-type", "text/plain"}};
  enqueue_frame(command::error, h, fmt::format("{}\n", reason));
  close(close_reason::kicked, true);
}

void session::run() {
  // Until CONNECT arrives the timer enforces connect_timeout, WebSocket handshake included
  // (slowloris defence).
  timer_.expires_after(ctx_.settings.limits.connect_timeout);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->closing_ || self->connected_) return;
    log_warn("session={} peer={} no CONNECT within {} ms", self->id_, self->peer_,
             self->ctx_.settings.limits.connect_timeout.count());
    if (!self->ready_) return self->fail(close_reason::connect_timeout, "handshake", "timeout");
    const header_view h[] = {{"message", "connect timeout"}, {"content-type", "text/plain"}};
    self->enqueue_frame(command::error, h, "no CONNECT frame received in time\n");
    self->close(close_reason::connect_timeout, true);
  });
  start_transport();
}

void session::transport_ready() {
  ready_ = true;
  start_read();
}

net::mutable_buffer session::read_space() {
  auto space = parser_.prepare(read_bytes_);
  read_asked_ = space.size();
  return {space.data(), space.size()};
}

void session::on_read(std::size_t bytes) {
  parser_.commit(bytes);
  bump(stats_.bytes_in, bytes);
  last_read_ = clock::now();
  if (bytes >= read_asked_ && read_bytes_ < max_read_bytes) {
    read_bytes_ *= 2;
    short_reads_ = 0;
  } else if (bytes < read_bytes_ / 4 && read_bytes_ > min_read_bytes &&
             ++short_reads_ >= short_reads_before_shrinking) {
    read_bytes_ /= 2;
    short_reads_ = 0;
  }
  process_input();
}

void session::process_input() {
  stomp::frame_view f;
  while (!closing_ && !disconnecting_ && !authenticating_) {
    auto ec = parser_.next(f);
    if (ec == stomp::errc::need_more) break;
    if (ec) {
      const auto& err = parser_.error();
      log_warn("session={} peer={} bad frame: {}", id_, peer_, err.message());
      protocol_error("malformed frame", err.message());
      return;
    }
    handle_frame(f);
  }
  // While a passcode is checked, frames after CONNECT wait in the parser and no more are read.
  if (!closing_ && !disconnecting_ && !authenticating_) {
    // When everything read was whole frames, a buffer grown for a burst or a large frame
    // goes back. Before the read: it reads into the buffer.
    parser_.shrink(2 * read_bytes_);
    start_read();
  }
}

void session::handle_frame(const stomp::frame_view& f) {
  bump(stats_.frames_in[static_cast<std::size_t>(f.command)]);
  if (log_enabled(log_level::trace))
    log_trace("session={} frame={} headers={} body_bytes={}", id_, stomp::to_string(f.command),
              f.headers.size(), f.body.size());
  if (!connected_) {
    if (f.command == command::connect || f.command == command::stomp) return handle_connect(f);
    return protocol_error(
        "not connected",
        fmt::format("expected CONNECT or STOMP, got {}", stomp::to_string(f.command)), &f);
  }
  if (f.command == command::send && !take_publish_token())
    return protocol_error(
        "publish rate exceeded",
        fmt::format("more than {} SEND frames per second", ctx_.settings.limits.max_publish_rate),
        &f);
  switch (f.command) {
    case command::send:
    case command::ack:
    case command::nack:
      if (auto tx = f.header("transaction")) {
        auto it = transactions_.find(std::string(*tx));
        if (it == transactions_.end())
          return protocol_error("unknown transaction",
                                fmt::format("transaction '{}' was not begun", *tx), &f);
        if (it->second.size() >= ctx_.settings.limits.max_frames_per_transaction)
          return protocol_error("transaction too large",
                                fmt::format("transaction '{}' exceeds {} frames", *tx,
                                            ctx_.settings.limits.max_frames_per_transaction),
                                &f);
        if (f.command == command::send) {
          auto dest = f.header("destination");
          if (!dest) return protocol_error("missing header", "SEND requires 'destination'", &f);
          if (!check_destination(*dest, f) || !authorized(auth::action::send, *dest, f)) return;
        }
        it->second.emplace_back(f);
        return send_receipt(f);
      }
      apply(f, f.header("receipt"));
      return;
    case command::subscribe:
      return handle_subscribe(f);
    case command::unsubscribe:
      return handle_unsubscribe(f);
    case command::begin:
      return handle_begin(f);
    case command::commit:
      return handle_end_transaction(f, true);
    case command::abort:
      return handle_end_transaction(f, false);
    case command::disconnect:
      return handle_disconnect(f);
    case command::connect:
    case command::stomp:
      return protocol_error("already connected", "second CONNECT frame", &f);
    default:
      return protocol_error("unexpected frame",
                            fmt::format("{} is a server frame", stomp::to_string(f.command)), &f);
  }
}

// A token bucket holding one second's worth of SENDs (limits.max_publish_rate).
bool session::take_publish_token() {
  const auto rate = ctx_.settings.limits.max_publish_rate;
  if (rate == 0) return true;
  auto now = clock::now();
  if (publish_tokens_refilled_ == clock::time_point{}) {
    publish_tokens_ = static_cast<double>(rate);
  } else {
    std::chrono::duration<double> elapsed = now - publish_tokens_refilled_;
    publish_tokens_ = std::min(static_cast<double>(rate), publish_tokens_ + elapsed.count() * rate);
  }
  publish_tokens_refilled_ = now;
  if (publish_tokens_ < 1.0) return false;
  publish_tokens_ -= 1.0;
  return true;
}

void session::handle_connect(const stomp::frame_view& f) {
  auto v = negotiate_version(f.header("accept-version"));
  if (!v) {
    const header_view h[] = {{"version", "1.0,1.1,1.2"},
                             {"message", "unsupported protocol version"},
                             {"content-type", "text/plain"}};
    enqueue_frame(command::error, h, "Supported protocol versions are 1.0,1.1,1.2\n");
    log_warn("session={} peer={} no common STOMP version: accept-version={}", id_, peer_,
             *f.header("accept-version"));
    return close(close_reason::protocol_error, true);
  }
  std::uint64_t cx = 0, cy = 0;
  if (!parse_heartbeat(f.header("heart-beat"), cx, cy))
    return protocol_error(
        "invalid heart-beat",
        fmt::format("heart-beat must be two integers 'cx,cy', got '{}'", *f.header("heart-beat")),
        &f);
  version_ = *v;
  parser_.set_version(version_);
  const auto& hb = ctx_.settings.heartbeat;
  send_every_ = negotiate_interval(static_cast<std::uint64_t>(hb.send_interval.count()), cy);
  expect_every_ = negotiate_interval(static_cast<std::uint64_t>(hb.receive_interval.count()), cx);
  authenticate(f);
}

// Who is connecting: a bearer token (CONNECT's Authorization header, the WebSocket URL's
// access_token, or a JWT as passcode), a static user's login and passcode, or anonymous.
// A login that names a static user must match; it never falls back to anonymous.
void session::authenticate(const stomp::frame_view& f) {
  auto& sec = *ctx_.security;
  auto login = f.header("login");
  auto passcode = f.header("passcode");
  std::string token;
  if (auto a = f.header("Authorization"); a && a->starts_with("Bearer "))
    token = std::string(a->substr(7));
  else if (!transport_token_.empty())
    token = transport_token_;
  else if (passcode && std::count(passcode->begin(), passcode->end(), '.') == 2 &&
           !(login && sec.users.contains(*login)))
    token = std::string(*passcode);

  if (sec.jwt && !token.empty()) {
    auto r = sec.jwt->verify(token);
    if (!r.value) return refuse_access(r.reason);
    return accept(std::move(*r.value));
  }
  if (login && sec.users.contains(*login)) {
    if (sec.pending.fetch_add(1) >= security::max_pending) {
      sec.pending.fetch_sub(1);
      return refuse_access("too many passcode checks waiting");
    }
    // PBKDF2 takes a good fraction of a second of CPU: off the event loop, and frames after
    // CONNECT wait until it is done.
    authenticating_ = true;
    boost::asio::post(
        sec.verifier, [self = shared_from_this(), &io = worker_.io, user = std::string(*login),
                       pass = std::string(passcode.value_or(""))]() mutable {
          auto p = self->ctx_.security->users.authenticate(user, pass);
          self->ctx_.security->pending.fetch_sub(1);
          net::post(io, [self = std::move(self), p = std::move(p), user]() mutable {
            self->authenticating_ = false;
            if (self->closing_) return;
            if (!p) return self->refuse_access(fmt::format("wrong passcode for user '{}'", user));
            self->accept(std::move(*p));
            self->process_input();
          });
        });
    return;
  }
  if (sec.anonymous) return accept(auth::principal{"anonymous", {}, std::nullopt, {}});
  refuse_access(login ? fmt::format("unknown user '{}'", *login)
                      : std::string("no credentials and anonymous access is off"));
}

void session::refuse_access(std::string_view why) {
  ctx_.security->failures.fetch_add(1, std::memory_order_relaxed);
  // The client learns nothing that helps guess; the log has the reason (never a secret).
  log_warn("session={} peer={} access refused: {}", id_, peer_, why);
  const header_view h[] = {{"message", "access refused"}, {"content-type", "text/plain"}};
  enqueue_frame(command::error, h, "access refused\n");
  close(close_reason::access_refused, true);
}

void session::accept(auth::principal p) {
  connected_ = true;
  permissions_ = ctx_.security->authorizer.permissions_for(p);
  user_ = p.user;
  if (p.expires_at && ctx_.security->close_on_expiry) {
    // A token's validity ends the connection it opened, not just future CONNECTs.
    expiry_timer_.emplace(worker_.io);
    // The token's clock is the wall clock; the timer's is steady: convert the time left.
    expiry_timer_->expires_after(*p.expires_at - std::chrono::system_clock::now());
    expiry_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->closing_) return;
      log_info("session={} user={} token expired, closing", self->id_, self->user_);
      const header_view h[] = {{"message", "token expired"}, {"content-type", "text/plain"}};
      self->enqueue_frame(command::error, h, "the access token has expired\n");
      self->close(close_reason::token_expired, true);
    });
  }
  const auto& hb = ctx_.settings.heartbeat;
  auto sx = static_cast<std::uint64_t>(hb.send_interval.count());
  auto sy = static_cast<std::uint64_t>(hb.receive_interval.count());

  auto heart_beat = fmt::format("{},{}", sx, sy);
  auto session_id = fmt::format("{}", id_);
  const header_view h[] = {{"version", stomp::to_string(version_)},
                           {"heart-beat", heart_beat},
                           {"session", session_id},
                           {"server", ctx_.server_header}};
  enqueue_frame(command::connected, h);
  log_debug(
      "session={} peer={} user={} connected version={} heartbeat_send_ms={} "
      "heartbeat_expect_ms={}",
      id_, peer_, user_, stomp::to_string(version_), send_every_.count(), expect_every_.count());
  timer_.cancel();  // ends the connect timeout; arm_timer() takes over
  arm_timer();
}

bool session::authorized(auth::action a, std::string_view destination, const stomp::frame_view& f) {
  if (permissions_.allows(a, destination)) return true;
  const char* verb = a == auth::action::send ? "send to" : "subscribe to";
  log_warn("session={} user={} denied: {} {}", id_, user_, verb, destination);
  protocol_error("access denied",
                 fmt::format("user '{}' may not {} '{}'", user_, verb, destination), &f);
  return false;
}

bool session::check_destination(std::string_view d, const stomp::frame_view& f) {
  auto problem = destination_problem(d, ctx_.settings.limits.max_destination_bytes);
  if (problem.empty()) return true;
  protocol_error("invalid destination", problem, &f);
  return false;
}

bool session::apply(const stomp::frame_view& f, std::optional<std::string_view> receipt) {
  if (f.command == command::send) {
    auto dest = f.header("destination");
    if (!dest) {
      protocol_error("missing header", "SEND requires 'destination'", &f);
      return false;
    }
    if (!check_destination(*dest, f) || !authorized(auth::action::send, *dest, f)) return false;
    return publish(f, *dest, receipt);
  }
  handle_ack(f, f.command == command::ack);
  if (closing_) return false;
  send_receipt(receipt);
  return true;
}

bool session::publish(const stomp::frame_view& f, std::string_view destination,
                      std::optional<std::string_view> receipt) {
  ++messages_in_;
  bump(stats_.messages_in);
  auto passed = passable_headers(f.headers);
  if (ctx_.journal && destination.starts_with("/topic/") &&
      ctx_.journal->policy_for(destination).journaled) {
    store(f, destination, passed, receipt);
    return true;
  }

  auto m = make_live_message(destination, fmt::format("{}-{}", id_, ++published_), passed, f.body);
  if (route(ctx_, worker_.index, m) == route_result::queue_full) {
    protocol_error("queue full",
                   fmt::format("queue '{}' already holds {} messages", destination,
                               ctx_.settings.limits.max_queue_messages),
                   &f);
    return false;
  }
  send_receipt(receipt);
  return true;
}

void session::store(const stomp::frame_view& f, std::string_view destination,
                    std::span<const header_view> passed, std::optional<std::string_view> receipt) {
  history::header_list headers;
  headers.reserve(passed.size());
  for (const auto& h : passed) headers.emplace_back(h.name, h.value);
  ++appends_in_flight_;
  // The RECEIPT waits for the commit (a backend may tell its own client "stored"), and so
  // does delivery: the journal's writer publishes once the message is durable.
  ctx_.journal->append(worker_.index, std::string(destination), std::move(headers),
                       std::string(f.body),
                       [weak = weak_from_this(), dest = std::string(destination),
                        receipt = receipt ? std::optional<std::string>(*receipt)
                                          : std::nullopt](const storage::append_result& r) {
                         if (auto self = weak.lock()) self->on_stored(r, dest, receipt);
                       });
}

void session::on_stored(const storage::append_result& r, std::string_view destination,
                        const std::optional<std::string>& receipt) {
  --appends_in_flight_;
  if (closing_) return;
  if (r.ec) {
    log_error("session={} journal append failed destination={}: {}", id_, destination,
              r.ec.message());
    std::vector<header_view> h{{"message", "message not stored"}, {"content-type", "text/plain"}};
    if (receipt) h.push_back({"receipt-id", *receipt});
    enqueue_frame(command::error, h,
                  fmt::format("the journal could not store the message to '{}': {}\n", destination,
                              r.ec.message()));
    return close(close_reason::protocol_error, true);
  }
  if (!receipt) return;
  auto seq = fmt::format("{}", r.seq);
  const header_view h[] = {{"receipt-id", *receipt}, {"x-seq", seq}};
  enqueue_frame(command::receipt, h);
}

// Sends the RECEIPT once every message this connection sent before is stored, then runs
// `then` (DISCONNECT's close).
void session::receipt_after_stored(std::optional<std::string_view> receipt,
                                   std::function<void()> then) {
  if (appends_in_flight_ == 0 || !ctx_.journal) {
    send_receipt(receipt);
    if (then) then();
    return;
  }
  // A strong reference: after DISCONNECT nothing else may be keeping this session alive.
  // It moves into the posted task, so it is released on our worker, never the writer thread.
  ctx_.journal->flush([self = shared_from_this(), &io = worker_.io,
                       r = receipt ? std::optional<std::string>(*receipt) : std::nullopt,
                       then = std::move(then)]() mutable {
    net::post(io, [self = std::move(self), r, then] {
      self->send_receipt(r ? std::optional<std::string_view>(*r) : std::nullopt);
      if (then) then();
    });
  });
}

void session::handle_subscribe(const stomp::frame_view& f) {
  auto dest = f.header("destination");
  if (!dest) return protocol_error("missing header", "SUBSCRIBE requires 'destination'", &f);
  // Replay (x-replay) is a subscription too: the same rule covers history.
  if (!check_destination(*dest, f) || !authorized(auth::action::subscribe, *dest, f)) return;
  auto id = f.header("id");
  if (!id && version_ != stomp::version::v1_0)
    return protocol_error("missing header", "SUBSCRIBE requires 'id' in STOMP 1.1 and 1.2", &f);
  std::string sub_id(id ? *id : *dest);  // 1.0: the destination identifies the subscription
  if (subscription_keys_.contains(sub_id))
    return protocol_error("duplicate subscription",
                          fmt::format("subscription id '{}' is already in use", sub_id), &f);
  if (subscriptions_.size() >= ctx_.settings.limits.max_subscriptions_per_connection)
    return protocol_error("too many subscriptions",
                          fmt::format("limit is {} per connection",
                                      ctx_.settings.limits.max_subscriptions_per_connection),
                          &f);
  ack_mode mode = ack_mode::auto_ack;
  if (auto a = f.header("ack")) {
    if (*a == "client")
      mode = ack_mode::client;
    else if (*a == "client-individual")
      mode = ack_mode::client_individual;
    else if (*a != "auto")
      return protocol_error(
          "invalid ack mode",
          fmt::format("ack must be auto, client or client-individual, got '{}'", *a), &f);
  }
  std::size_t prefetch = ctx_.settings.limits.default_prefetch;
  if (auto p = f.header("prefetch-count")) {
    std::uint64_t n = 0;
    if (!parse_ms(*p, n))
      return protocol_error("invalid prefetch-count",
                            fmt::format("prefetch-count must be an integer, got '{}'", *p), &f);
    prefetch = static_cast<std::size_t>(n);  // 0: unbounded, as in RabbitMQ
  }

  std::optional<storage::replay_request> replay;
  if (auto x = f.header("x-replay")) {
    replay = parse_replay(*x);
    if (!replay)
      return protocol_error(
          "invalid x-replay",
          fmt::format("invalid x-replay header value '{}': expected last:N, after:SEQ or "
                      "since:UNIX_MS",
                      *x),
          &f);
    if (!ctx_.journal || !dest->starts_with("/topic/") ||
        !ctx_.journal->policy_for(*dest).journaled)
      return protocol_error("history not kept",
                            fmt::format("x-replay: destination '{}' is not journaled", *dest), &f);
    replay->destination = std::string(*dest);
    replay->max_messages = ctx_.settings.journal.replay_max_messages;
    replay->max_bytes = ctx_.settings.journal.replay_max_bytes;
  }

  auto key = next_key_++;
  subscription sub;
  sub.id = sub_id;
  sub.destination = std::string(*dest);
  sub.mode = mode;
  sub.is_queue = dest->starts_with("/queue/");
  sub.key = key;
  stomp::shared_message::head(sub.head, sub.id, {}, version_);
  if (mode != ack_mode::auto_ack && version_ == stomp::version::v1_2)
    sub.ack_prefix = fmt::format("ack:{}-", key);
  auto& stored = subscriptions_.emplace(key, std::move(sub)).first->second;
  subscription_keys_.emplace(std::move(sub_id), key);
  if (stored.is_queue) {
    // The consumer is registered by raw pointer: release_resources() removes it before this
    // session can go away, and deliveries reach us by post (on_queue_message).
    stored.q = ctx_.queues.with_queue(stored.destination,
                                      [&](queue& q) { q.add_consumer(this, key, mode, prefetch); });
  } else {
    ctx_.topics.subscribe(worker_.index, stored.destination, this, key);
  }
  log_debug("session={} subscribed id={} destination={}", id_, stored.id, stored.destination);
  if (!replay) return send_receipt(f);
  // Subscribed first, read second: whatever is committed after the read started arrives
  // live and waits in `pending`; on_replay() drops what the read already returned.
  stored.replaying = true;
  stored.replay = std::move(*replay);
  if (auto r = f.header("receipt")) stored.replay_receipt = std::string(*r);
  replay_queue_.push_back(key);
  start_next_replay();
}

void session::start_next_replay() {
  while (!replay_in_flight_ && queued_replay_bytes_ == 0 && !replay_queue_.empty() && !closing_) {
    auto key = replay_queue_.front();
    replay_queue_.pop_front();
    auto it = subscriptions_.find(key);
    if (it == subscriptions_.end()) continue;  // unsubscribed while waiting
    replay_in_flight_ = true;
    replay_started_ = clock::now();
    ctx_.journal->replay(it->second.replay, [weak = weak_from_this(), &io = worker_.io,
                                             key](storage::replay_result&& r) {
      net::post(io, [weak, key, r = std::move(r)]() mutable {
        if (auto self = weak.lock()) self->on_replay(key, std::move(r));
      });
    });
  }
}

void session::on_replay(std::uint64_t key, storage::replay_result&& r) {
  replay_in_flight_ = false;
  ctx_.metrics.replays.fetch_add(1, std::memory_order_relaxed);
  ctx_.metrics.replay_seconds.observe(
      std::chrono::duration<double>(clock::now() - replay_started_).count());
  if (closing_) return;
  auto it = subscriptions_.find(key);
  if (it == subscriptions_.end()) return start_next_replay();
  auto& sub = it->second;
  if (r.ec) {
    log_error("session={} replay failed destination={}: {}", id_, sub.destination, r.ec.message());
    std::vector<header_view> h{{"message", "history unavailable"}};
    if (sub.replay_receipt) h.push_back({"receipt-id", *sub.replay_receipt});
    enqueue_frame(command::error, h, fmt::format("{}\n", r.ec.message()));
    return close(close_reason::protocol_error, true);
  }
  for (const auto& rec : r.records) deliver(sub, history::make_message(rec, true), false, true);
  if (sub.replay_receipt) {
    auto count = fmt::format("{}", r.records.size());
    auto head = fmt::format("{}", r.head_seq);
    const header_view h[] = {{"receipt-id", *sub.replay_receipt},
                             {"x-replay-count", count},
                             {"x-head-seq", head},
                             {"x-replay-complete", r.complete ? "true" : "false"}};
    enqueue_frame(command::receipt, h);
  }
  // Live messages that arrived meanwhile, and any still on their way, that the read already
  // returned are dropped (last_seq), so history and live meet with no gap and no duplicate:
  // every commit after the read began is published after we subscribed, so it comes live.
  auto pending = std::move(sub.pending);
  sub.replaying = false;
  sub.pending.clear();
  sub.last_seq = r.head_seq;
  for (const auto& m : pending) {
    if (m->seq <= sub.last_seq) continue;
    sub.last_seq = m->seq;
    deliver(sub, m, false);
  }
  log_debug("session={} replayed destination={} count={} head_seq={} complete={}", id_,
            sub.destination, r.records.size(), r.head_seq, r.complete);
  start_next_replay();
}

void session::handle_unsubscribe(const stomp::frame_view& f) {
  auto id = f.header("id");
  if (!id && version_ == stomp::version::v1_0) id = f.header("destination");
  if (!id) return protocol_error("missing header", "UNSUBSCRIBE requires 'id'", &f);
  auto k = subscription_keys_.find(std::string(*id));
  if (k == subscription_keys_.end())
    return protocol_error("unknown subscription", fmt::format("no subscription with id '{}'", *id),
                          &f);
  auto key = k->second;
  subscription_keys_.erase(k);
  auto it = subscriptions_.find(key);
  if (it->second.is_queue) {
    it->second.q->remove_consumer(this, key);
    ctx_.queues.release(it->second.destination);
  } else {
    ctx_.topics.unsubscribe(worker_.index, it->second.destination, this, key);
  }
  subscriptions_.erase(it);
  send_receipt(f);
}

void session::handle_ack(const stomp::frame_view& f, bool positive) {
  const char* what = positive ? "ACK" : "NACK";
  // Which subscription and delivery: 1.2 uses the MESSAGE's `ack` value as `id`
  // ("<subscription key>-<message-id>"); 1.1 uses subscription + message-id; 1.0 only
  // message-id.
  std::string_view message_id;
  std::vector<std::uint64_t> candidates;
  if (version_ == stomp::version::v1_2) {
    auto id = f.header("id");
    if (!id) return protocol_error("missing header", fmt::format("{} requires 'id'", what), &f);
    auto dash = id->find('-');
    std::uint64_t key = 0;
    if (dash == std::string_view::npos || !parse_ms(id->substr(0, dash), key) ||
        !subscriptions_.contains(key))
      return protocol_error("unknown ack id",
                            fmt::format("{} id '{}' matches no message delivered here", what, *id),
                            &f);
    message_id = id->substr(dash + 1);
    candidates.push_back(key);
  } else {
    auto mid = f.header("message-id");
    if (!mid)
      return protocol_error("missing header", fmt::format("{} requires 'message-id'", what), &f);
    message_id = *mid;
    if (auto sub = f.header("subscription"); sub && version_ == stomp::version::v1_1) {
      auto k = subscription_keys_.find(std::string(*sub));
      if (k == subscription_keys_.end())
        return protocol_error("unknown subscription",
                              fmt::format("no subscription with id '{}'", *sub), &f);
      candidates.push_back(k->second);
    } else {
      for (const auto& entry : subscriptions_) candidates.push_back(entry.first);
    }
  }
  for (auto key : candidates) {
    const auto& sub = subscriptions_.at(key);
    if (!sub.is_queue || sub.mode == ack_mode::auto_ack) {
      // Topic deliveries are not tracked: acknowledging one is accepted and has no effect.
      if (candidates.size() == 1) return;
      continue;
    }
    bool cumulative = sub.mode == ack_mode::client;
    bool found = positive ? sub.q->ack(this, key, message_id, cumulative)
                          : sub.q->nack(this, key, message_id, cumulative);
    if (found) return;
  }
  protocol_error(
      "unknown message",
      fmt::format("{} for message '{}', which is not awaiting acknowledgement", what, message_id),
      &f);
}

void session::handle_begin(const stomp::frame_view& f) {
  auto tx = f.header("transaction");
  if (!tx) return protocol_error("missing header", "BEGIN requires 'transaction'", &f);
  if (transactions_.contains(std::string(*tx)))
    return protocol_error("duplicate transaction",
                          fmt::format("transaction '{}' is already open", *tx), &f);
  if (transactions_.size() >= ctx_.settings.limits.max_transactions_per_connection)
    return protocol_error("too many transactions",
                          fmt::format("limit is {} open transactions per connection",
                                      ctx_.settings.limits.max_transactions_per_connection),
                          &f);
  transactions_.emplace(std::string(*tx), std::vector<stomp::frame>{});
  send_receipt(f);
}

void session::handle_end_transaction(const stomp::frame_view& f, bool commit) {
  const char* what = commit ? "COMMIT" : "ABORT";
  auto tx = f.header("transaction");
  if (!tx)
    return protocol_error("missing header", fmt::format("{} requires 'transaction'", what), &f);
  auto it = transactions_.find(std::string(*tx));
  if (it == transactions_.end())
    return protocol_error("unknown transaction", fmt::format("transaction '{}' was not begun", *tx),
                          &f);
  auto frames = std::move(it->second);
  transactions_.erase(it);
  if (commit) {
    std::vector<header_view> headers;
    for (const auto& saved : frames) {
      headers.clear();
      for (const auto& h : saved.headers) headers.push_back({h.name, h.value});
      stomp::frame_view view{saved.command, headers, saved.body};
      // The frames' own receipts were sent when they joined the transaction.
      if (!apply(view, std::nullopt)) return;  // apply() has sent the ERROR
    }
  }
  receipt_after_stored(f.header("receipt"), nullptr);
}

void session::handle_disconnect(const stomp::frame_view& f) {
  log_debug("session={} peer={} disconnect", id_, peer_);
  // Nothing after DISCONNECT is read; its RECEIPT confirms everything before it is stored.
  disconnecting_ = true;
  receipt_after_stored(f.header("receipt"),
                       [this] { close(close_reason::client_disconnect, true); });
}

void session::send_receipt(const stomp::frame_view& f) { send_receipt(f.header("receipt")); }

void session::send_receipt(std::optional<std::string_view> receipt) {
  if (!receipt || closing_) return;
  const header_view h[] = {{"receipt-id", *receipt}};
  enqueue_frame(command::receipt, h);
}

void session::protocol_error(std::string_view message, std::string_view detail,
                             const stomp::frame_view* f) {
  if (closing_) return;
  log_warn("session={} peer={} protocol error: {}: {}", id_, peer_, message, detail);
  std::vector<header_view> h{{"message", message}, {"content-type", "text/plain"}};
  if (f != nullptr)
    if (auto r = f->header("receipt")) h.push_back({"receipt-id", *r});
  enqueue_frame(command::error, h, fmt::format("{}\n", detail));
  close(close_reason::protocol_error, true);
}

// --- delivery -------------------------------------------------------------------------------

void session::on_topic_message(const message_ptr& m, std::uint64_t key) {
  if (closing_ || condemned_) return;
  auto it = subscriptions_.find(key);
  if (it == subscriptions_.end()) return;
  auto& sub = it->second;
  if (sub.replaying) {
    sub.pending.push_back(m);
  } else if (m->seq == 0 || m->seq > sub.last_seq) {
    sub.last_seq = m->seq;
    return deliver(sub, m, false);
  }
  // Bounded like the outbound queue: history that takes too long to read must not let live
  // messages pile up without limit.
  if (sub.pending.size() > ctx_.settings.limits.max_queued_frames) condemn_slow_consumer();
}

void session::on_queue_message(const message_ptr& m, std::uint64_t key, bool redelivered) {
  // Any thread, with the queue's mutex held: hop to our worker. A session already gone by
  // then leaves the message in the queue's unacknowledged list, which its removal requeued.
  net::post(worker_.io, [weak = weak_from_this(), m, key, redelivered] {
    auto self = weak.lock();
    if (!self || self->closing_) return;
    auto it = self->subscriptions_.find(key);
    if (it != self->subscriptions_.end()) self->deliver(it->second, m, redelivered);
  });
}

void session::deliver(const subscription& sub, const message_ptr& m, bool redelivered,
                      bool replayed) {
  outbound o;
  o.replayed = replayed;
  constexpr std::string_view redelivered_header = "redelivered:true\n";
  if (sub.ack_prefix.empty() && !redelivered && sub.head.size() <= o.inline_head.size()) {
    // The common case (auto ack, first delivery): the head is the subscription's, copied.
    std::copy(sub.head.begin(), sub.head.end(), o.inline_head.begin());
    o.inline_size = static_cast<std::uint8_t>(sub.head.size());
  } else {
    o.bytes.reserve(sub.head.size() + sub.ack_prefix.size() + m->id.size() + 20);
    o.bytes = sub.head;
    if (!sub.ack_prefix.empty()) {
      o.bytes += sub.ack_prefix;
      stomp::append_escaped(o.bytes, m->id, version_);
      o.bytes += '\n';
    }
    if (redelivered) o.bytes += redelivered_header;
  }
  o.tail = m->encoded.tail(version_);
  o.msg = m;
  ++messages_out_;
  bump(stats_.messages_out);
  bump(stats_.frames_out[static_cast<std::size_t>(command::message)]);
  enqueue(std::move(o));
}

void session::enqueue_frame(command c, std::span<const header_view> headers,
                            std::string_view body) {
  outbound o;
  stomp::serialize(o.bytes, c, headers, body, version_);
  bump(stats_.frames_out[static_cast<std::size_t>(c)]);
  enqueue(std::move(o));
}

void session::enqueue(outbound o) {
  if (closing_ || condemned_) return;  // nothing new goes out once a close has begun
  queued_bytes_ += o.size();
  if (o.replayed) queued_replay_bytes_ += o.size();
  bool replayed = o.replayed;
  outbox_.push_back(std::move(o));
  // History is bounded by the replay caps instead, one replay at a time per connection.
  const auto& limits = ctx_.settings.limits;
  if (!replayed &&
      (queued_bytes_ - queued_replay_bytes_ > limits.max_queued_bytes ||
       outbox_.size() > limits.max_queued_frames + ctx_.settings.journal.replay_max_messages))
    return condemn_slow_consumer();
  if (writing_ == 0) schedule_write();
}

void session::schedule_write() {
  if (write_scheduled_) return;
  write_scheduled_ = true;
  worker_.to_flush.push_back(shared_from_this());
}

void session::flush_scheduled(worker& w) {
  // By index: starting a write never schedules one, but nothing here depends on that.
  for (std::size_t i = 0; i < w.to_flush.size(); ++i) {
    session* s = w.to_flush[i].get();
    s->write_scheduled_ = false;
    if (!s->closing_ || s->flush_then_close_) s->start_write();  // not once aborted
  }
  w.to_flush.clear();  // keeps its capacity for the next burst
}

void run_event_loop(broker_context& ctx, worker& w) {
  // Handlers run in bursts of what is ready, and the posts to other workers and the writes
  // they asked for start after each burst: a connection that several handlers of a burst sent
  // to (one per routed message, one per WebSocket message read) gets one write, and another
  // worker one task. The bound keeps a busy worker's first frames from waiting behind an
  // endless stream of ready handlers.
  constexpr int burst = 256;
  while (w.io.run_one() != 0) {
    for (int i = 1; i < burst && w.io.poll_one() != 0; ++i) {
    }
    ctx.topics.flush(w.index);  // first, so other workers start on their share meanwhile
    session::flush_scheduled(w);
  }
}

void session::condemn_slow_consumer() {
  // A subscriber that can't keep up is cut off rather than slowing publishers or growing
  // without bound: what is queued and not yet being written is dropped, an ERROR goes
  // instead. We may be inside the router's delivery loop, which must not see us unsubscribe,
  // so the close itself is posted.
  condemned_ = true;
  const auto& limits = ctx_.settings.limits;
  ctx_.slow_consumer_closes.fetch_add(1, std::memory_order_relaxed);
  log_warn("session={} peer={} slow consumer: queued_bytes={} queued_frames={} closing", id_, peer_,
           queued_bytes_, outbox_.size());
  while (outbox_.size() > writing_) {
    const auto& o = outbox_.back();
    queued_bytes_ -= o.size();
    if (o.replayed) queued_replay_bytes_ -= o.size();
    outbox_.pop_back();
  }
  const header_view h[] = {{"message", "slow consumer"}, {"content-type", "text/plain"}};
  outbound err;
  stomp::serialize(err.bytes, command::error, h,
                   fmt::format("outbound queue exceeded its limit ({} bytes or {} frames); "
                               "the connection is closed\n",
                               limits.max_queued_bytes, limits.max_queued_frames),
                   version_);
  queued_bytes_ += err.size();
  outbox_.push_back(std::move(err));
  net::post(worker_.io,
            [self = shared_from_this()] { self->close(close_reason::slow_consumer, true); });
}

void session::start_write() {
  if (outbox_.empty() || writing_ != 0) return;
  std::size_t n = 0, bytes = 0;
  bool text = true;
  for (; n < outbox_.size() && n < max_frames_per_write; ++n) {
    const auto& o = outbox_[n];
    if (n > 0 && bytes + o.size() > max_coalesced_bytes) break;
    bytes += o.size();
    if (o.msg && !o.msg->utf8) text = false;
  }
  writing_ = n;
  const auto& first = outbox_.front();
  if (n == 1) {
    // One frame (a large one, or a quiet connection): the head is copied, because the queue
    // may move its elements while the write is in flight; the shared tail (the message's
    // body) stays where it is, alive as long as the frame holds the message.
    write_copy_.assign(first.head());
    return write(
        {{{write_copy_.data(), write_copy_.size()}, {first.tail.data(), first.tail.size()}}}, text);
  }
  // Several small frames: copied into one buffer, so the kernel sees one send of one buffer
  // (Asio passes at most 64 buffers to a sendmsg) and the WebSocket one payload. Copying a
  // few hundred bytes per frame costs far less than the extra system calls.
  write_copy_.clear();
  write_copy_.reserve(bytes);
  for (std::size_t i = 0; i < n; ++i) {
    write_copy_.append(outbox_[i].head());
    write_copy_.append(outbox_[i].tail);
  }
  write({{{write_copy_.data(), write_copy_.size()}, {nullptr, 0}}}, text);
}

void session::on_write_done() {
  last_write_ = clock::now();
  for (; writing_ > 0; --writing_) {
    const auto& o = outbox_.front();
    bump(stats_.bytes_out, o.size());
    queued_bytes_ -= o.size();
    if (o.replayed) queued_replay_bytes_ -= o.size();
    outbox_.pop_front();
  }
  if (queued_replay_bytes_ == 0 && !replay_queue_.empty()) start_next_replay();
  if (!outbox_.empty()) return start_write();
  if (closing_ && flush_then_close_) shutdown_transport();
}

// --- heart-beats and closing ----------------------------------------------------------------

void session::arm_timer() {
  if (closing_ || (send_every_.count() == 0 && expect_every_.count() == 0)) return;
  auto next = clock::time_point::max();
  if (send_every_.count() != 0) next = std::min(next, last_write_ + send_every_);
  if (expect_every_.count() != 0) {
    auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(
        expect_every_ * ctx_.settings.heartbeat.grace_factor);
    next = std::min(next, last_read_ + grace);
  }
  timer_.expires_at(next);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->on_timer();
  });
}

void session::on_timer() {
  if (closing_) return;
  auto now = clock::now();
  if (expect_every_.count() != 0) {
    auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(
        expect_every_ * ctx_.settings.heartbeat.grace_factor);
    if (now - last_read_ >= grace) {
      log_warn("session={} peer={} heart-beat timeout: silent for over {} ms", id_, peer_,
               grace.count());
      const header_view h[] = {{"message", "heart-beat timeout"}, {"content-type", "text/plain"}};
      enqueue_frame(command::error, h, fmt::format("nothing received for {} ms\n", grace.count()));
      return close(close_reason::heartbeat_timeout, true);
    }
  }
  if (send_every_.count() != 0 && now - last_write_ >= send_every_ && writing_ == 0 &&
      outbox_.empty()) {
    outbound o;
    o.bytes = stomp::heartbeat_bytes;
    enqueue(std::move(o));
    last_write_ = now;  // counts from the send, not its completion, to stay on time
  }
  arm_timer();
}

void session::close(close_reason why, bool flush) {
  if (closing_) return;
  closing_ = true;
  flush_then_close_ = flush;
  log_debug("session={} peer={} closing reason={}", id_, peer_, to_string(why));
  timer_.cancel();
  release_resources();
  if (!flush) {
    abort_transport();
    return;
  }
  if (writing_ == 0) {
    if (outbox_.empty())
      shutdown_transport();
    else
      start_write();
  }
}

void session::fail(close_reason why, std::string_view what, std::string_view detail) {
  log_debug("session={} peer={} closed reason={} {}: {}", id_, peer_, to_string(why), what, detail);
  if (!closing_) {
    closing_ = true;
    timer_.cancel();
    release_resources();
  }
  flush_then_close_ = false;
  abort_transport();
}

void session::release_resources() {
  if (released_) return;
  released_ = true;
  // A pending expiry wait owns the session: left alone it would keep a closed connection
  // (and its slot) alive until the token runs out.
  if (expiry_timer_) expiry_timer_->cancel();
  for (auto& [key, sub] : subscriptions_) {
    if (sub.is_queue) {
      sub.q->remove_consumer(this, key);
      ctx_.queues.release(sub.destination);
    } else {
      ctx_.topics.unsubscribe(worker_.index, sub.destination, this, key);
    }
  }
  subscriptions_.clear();
  subscription_keys_.clear();
  transactions_.clear();  // a connection that ends aborts its open transactions
  worker_.sessions.erase(this);
}

}  // namespace broker
