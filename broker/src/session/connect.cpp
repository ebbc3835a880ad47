#include "auth/credentials.hpp"
#include "broker/log.hpp"
#include "session/session.hpp"
#include "stomp/negotiate.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

// CONNECT: version and heart-beat negotiation, authentication, CONNECTED; and the checks
// every later frame's destination goes through (validity, the principal's grants).

namespace net = boost::asio;

namespace broker {

using stomp::command;
using stomp::header_view;

void session::handle_connect(const stomp::frame_view& f) {
  auto v = stomp::negotiate_version(f.header("accept-version"));
  if (!v) {
    const header_view h[] = {{"version", "1.0,1.1,1.2"},
                             {"message", "unsupported protocol version"},
                             {"content-type", "text/plain"}};
    enqueue_frame(command::error, h, "Supported protocol versions are 1.0,1.1,1.2\n");
    log_warn("session={} peer={} no common STOMP version: accept-version={}", id_, peer_,
             *f.header("accept-version"));
    return close(close_reason::protocol_error, true);
  }
  auto theirs = stomp::parse_heart_beat(f.header("heart-beat"));
  if (!theirs)
    return protocol_error(
        "invalid heart-beat",
        fmt::format("heart-beat must be two integers 'cx,cy', got '{}'", *f.header("heart-beat")),
        &f);
  // An interval beyond any sensible one (24.8 days, Java's int milliseconds) would overflow
  // the timer's arithmetic once multiplied by the grace factor.
  constexpr std::uint64_t max_heart_beat_ms = 2'147'483'647;
  if (theirs->send_ms > max_heart_beat_ms || theirs->receive_ms > max_heart_beat_ms)
    return protocol_error("invalid heart-beat",
                          fmt::format("heart-beat intervals are at most {} ms, got '{}'",
                                      max_heart_beat_ms, *f.header("heart-beat")),
                          &f);
  version_ = *v;
  parser_.set_version(version_);
  // The client's own intervals, within the configured floor and ceiling. Above the ceiling
  // the offer still wins on our side: sending more often than asked is allowed, and keeps
  // proxies from dropping the connection.
  const auto& hb = ctx_.settings.heartbeat;
  auto ms = [](std::chrono::milliseconds d) { return static_cast<std::uint64_t>(d.count()); };
  heart_beat_offer_ =
      stomp::answer_heart_beat(*theirs, {ms(hb.send_interval), ms(hb.receive_interval)},
                               ms(hb.min_interval), ms(hb.max_interval));
  auto agreed = stomp::negotiate_heart_beat(heart_beat_offer_, *theirs);
  send_every_ =
      std::chrono::milliseconds(agreed.send_every_ms == 0 ? 0 : heart_beat_offer_.send_ms);
  expect_every_ = std::chrono::milliseconds(agreed.expect_every_ms);
  authenticate(f);
}

// Who is connecting (auth::choose_credential decides which credential counts), then the
// check of that credential: a JWT here, a passcode on the verifier pool.
void session::authenticate(const stomp::frame_view& f) {
  auto& sec = *ctx_.security;
  auto choice = auth::choose_credential({.login = f.header("login"),
                                         .passcode = f.header("passcode"),
                                         .authorization = f.header("Authorization"),
                                         .transport_token = transport_token_},
                                        sec.jwt.has_value(), sec.users, sec.anonymous);
  using kind = auth::credential_choice::kind;
  switch (choice.what) {
    case kind::token: {
      auto r = sec.jwt->verify(choice.token);
      if (!r.value) return refuse_access(r.reason);
      return accept(std::move(*r.value));
    }
    case kind::passcode:
      break;
    case kind::anonymous:
      return accept(auth::principal{.user = std::string(auth::anonymous_name),
                                    .kind = auth::principal_kind::anonymous});
    case kind::refused:
      return refuse_access(choice.reason);
  }
  // The remote address without its port: "10.0.0.5:51122" -> "10.0.0.5", "[::1]:5" -> "[::1]".
  std::string address = peer_.substr(0, peer_.rfind(':'));
  std::string why;
  if (!sec.begin_passcode_check(address, &why)) return refuse_access(why);
  // PBKDF2 takes a good fraction of a second of CPU: off the event loop, and frames after
  // CONNECT wait until it is done. A login naming no static user costs the same check (against
  // a decoy) before it is refused, so timing says nothing.
  authenticating_ = true;
  boost::asio::post(sec.verifier, [self = shared_from_this(), &io = worker_.io,
                                   address = std::move(address),
                                   choice = std::move(choice)]() mutable {
    auto p = self->ctx_.security->users.authenticate(choice.login, choice.passcode);
    choice.passcode = {};  // not carried further than needed
    self->ctx_.security->end_passcode_check(address);
    net::post(io, [self = std::move(self), p = std::move(p), choice = std::move(choice)]() mutable {
      self->authenticating_ = false;
      if (self->closing_) return;
      if (p) {
        self->accept(std::move(*p));
      } else {
        return self->refuse_access(choice.unknown_login
                                       ? fmt::format("unknown user '{}'", choice.login)
                                       : fmt::format("wrong passcode for user '{}'", choice.login));
      }
      self->process_input();
    });
  });
}

void session::refuse_access(std::string_view why) {
  ctx_.security->failures.fetch_add(1, std::memory_order_relaxed);
  // The client learns nothing that helps guess; the log has the reason (never a secret).
  log_warn("session={} peer={} access refused: {}", id_, peer_, why);
  send_error_and_close(close_reason::access_refused, "access refused", "access refused");
}

void session::accept(auth::principal p) {
  connected_ = true;
  permissions_ = ctx_.security->authorizer.permissions_for(p);
  user_ = p.user;
  if (p.expires_at && ctx_.security->close_on_expiry) {
    // A token's validity ends the connection it opened, not just future CONNECTs.
    expiry_timer_.emplace(worker_.io);
    // The token's clock is the wall clock; the timer's is steady: convert the time left. The
    // verifier accepted it up to `leeway` after exp (clock skew), so it lives until then too;
    // closing at exp would end at once a connection just accepted within the leeway.
    const auto leeway =
        ctx_.security->jwt ? ctx_.security->jwt->settings().leeway : std::chrono::seconds(0);
    expiry_timer_->expires_after(*p.expires_at + leeway - std::chrono::system_clock::now());
    expiry_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->closing_) return;
      log_info("session={} user={} token expired, closing", self->id_, self->user_);
      self->send_error_and_close(close_reason::token_expired, "token expired",
                                 "the access token has expired");
    });
  }
  auto heart_beat = fmt::format("{},{}", heart_beat_offer_.send_ms, heart_beat_offer_.receive_ms);
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
  // Nothing was read while the passcode was checked: that silence was ours, not the client's
  // (a relay heart-beating every 200 ms would otherwise time out right after CONNECTED).
  last_read_ = std::chrono::steady_clock::now();
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

}  // namespace broker
