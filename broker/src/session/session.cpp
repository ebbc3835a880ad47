#include "session/session.hpp"

#include "broker/log.hpp"
#include "stomp/serializer.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <algorithm>

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
    case close_reason::pushed_back:
      return "pushed_back";
  }
  return "unknown";
}

session::session(broker_context& ctx, worker& w, std::string peer, std::string_view transport,
                 connection_limiter::slot slot)
    : ctx_(ctx),
      worker_(w),
      timer_(w.io),
      id_(ctx.next_session_id.fetch_add(1, std::memory_order_relaxed)),
      sender_(fmt::format("{}", id_)),
      slot_(std::move(slot)),
      peer_(std::move(peer)),
      transport_(transport),
      parser_(ctx.settings.limits.frame),
      connected_since_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count()),
      stats_(w.stats),
      // Live frames against max_queued_bytes; frames of any kind against max_queued_frames,
      // plus room for one replay's worth of history.
      outbox_({ctx.settings.limits.max_queued_bytes,
               ctx.settings.limits.max_queued_frames + ctx.settings.journal.replay_max_messages}),
      publish_rate_(ctx.settings.limits.max_publish_rate) {
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
  i.queued_bytes = outbox_.bytes();
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
  send_error_and_close(close_reason::kicked, reason, reason);
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
    self->send_error_and_close(close_reason::connect_timeout, "connect timeout",
                               "no CONNECT frame received in time");
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
  while (!closing_ && !disconnecting_ && !authenticating_ && !paused_) {
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
  // So do they while journaled SENDs past the budgets wait (resume_reading).
  if (!closing_ && !disconnecting_ && !authenticating_ && !paused_) {
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
  if (f.command == command::send && !publish_rate_.take(clock::now()))
    return protocol_error(
        "publish rate exceeded",
        fmt::format("more than {} SEND frames per second", ctx_.settings.limits.max_publish_rate),
        &f);
  switch (f.command) {
    case command::send:
    case command::ack:
    case command::nack:
      if (auto tx = f.header("transaction")) return handle_transactional(f, *tx);
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

void session::send_error_and_close(close_reason why, std::string_view message,
                                   std::string_view detail,
                                   std::optional<std::string_view> receipt) {
  if (closing_) return;
  std::array<header_view, 3> h{{{"message", message}, {"content-type", "text/plain"}}};
  std::size_t n = 2;
  if (receipt) h[n++] = {"receipt-id", *receipt};
  enqueue_frame(command::error, std::span(h.data(), n), fmt::format("{}\n", detail));
  close(why, true);
}

void session::protocol_error(std::string_view message, std::string_view detail,
                             const stomp::frame_view* f) {
  if (closing_) return;
  log_warn("session={} peer={} protocol error: {}: {}", id_, peer_, message, detail);
  if (committing_ != nullptr) f = committing_;  // a frame of a COMMIT: the COMMIT failed
  send_error_and_close(close_reason::protocol_error, message, detail,
                       f != nullptr ? f->header("receipt") : std::nullopt);
}

void session::enqueue_frame(command c, std::span<const header_view> headers,
                            std::string_view body) {
  outbox::entry e;
  stomp::serialize(e.bytes, c, headers, body, version_);
  bump(stats_.frames_out[static_cast<std::size_t>(c)]);
  enqueue(std::move(e));
}

void session::enqueue(outbox::entry e) {
  if (closing_ || condemned_) return;  // nothing new goes out once a close has begun
  if (!outbox_.push(std::move(e))) return condemn_slow_consumer();
  if (!outbox_.writing()) schedule_write();
}

void session::schedule_write() {
  if (write_scheduled_) return;
  write_scheduled_ = true;
  worker_.to_flush.push_back(shared_from_this());
}

void session::write_now() {
  write_scheduled_ = false;
  if (!closing_ || flush_then_close_) start_write();  // not once aborted
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
           outbox_.bytes(), outbox_.frames());
  outbox_.drop_unwritten();
  const header_view h[] = {{"message", "slow consumer"}, {"content-type", "text/plain"}};
  outbox::entry err;
  stomp::serialize(err.bytes, command::error, h,
                   fmt::format("outbound queue exceeded its limit ({} bytes or {} frames); "
                               "the connection is closed\n",
                               limits.max_queued_bytes, limits.max_queued_frames),
                   version_);
  (void)outbox_.push(std::move(err));  // the last frame: over the budget or not, it goes
  net::post(worker_.io,
            [self = shared_from_this()] { self->close(close_reason::slow_consumer, true); });
}

void session::start_write() {
  if (outbox_.empty() || outbox_.writing()) return;
  auto w = outbox_.start_write();
  write_started_ = clock::now();
  if (!write_watched_ && !closing_) watch_write();  // once closing, close_linger bounds it
  write(w.buffers, w.text);
}

void session::watch_write() {
  write_watched_ = true;
  write_timer_.expires_at(write_started_ + ctx_.settings.limits.write_timeout);
  write_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->write_watched_ = false;
    if (!ec && !self->closing_) self->on_write_timer();
  });
}

void session::on_write_timer() {
  if (!outbox_.writing()) return;  // idle: the next write arms it again
  const auto timeout = ctx_.settings.limits.write_timeout;
  if (clock::now() - write_started_ < timeout) return watch_write();  // a later write
  // Not an ERROR: nothing more can be written to this peer. Counted as a slow consumer.
  ctx_.slow_consumer_closes.fetch_add(1, std::memory_order_relaxed);
  log_warn(
      "session={} peer={} slow consumer: a write made no progress for {} ms queued_bytes={} "
      "closing",
      id_, peer_, timeout.count(), outbox_.bytes());
  reset_transport();
  fail(close_reason::slow_consumer, "write", "timeout");
}

void session::on_write_done() {
  last_write_ = clock::now();
  bump(stats_.bytes_out, outbox_.finish_write(written_credit_));
  // Queue deliveries just written: their queues' write windows open again (and auto-ack
  // ones are settled), which may post the next deliveries to us.
  for (const auto& c : written_credit_) {
    auto it = subscriptions_.find(c.key);
    if (it != subscriptions_.end()) it->second.q->written(this, c.key, c.count, c.bytes);
  }
  written_credit_.clear();
  if (outbox_.replay_bytes() == 0 && !replay_queue_.empty()) start_next_replay();
  if (!outbox_.empty()) return start_write();
  if (closing_ && flush_then_close_) shutdown_transport();
}

// --- heart-beats and closing ----------------------------------------------------------------

void session::arm_timer() {
  if (closing_ || (send_every_.count() == 0 && expect_every_.count() == 0)) return;
  auto next = clock::time_point::max();
  if (send_every_.count() != 0) next = std::min(next, last_write_ + send_every_);
  // A paused connection is not read: its silence is ours (resume_reading restarts the clock).
  if (expect_every_.count() != 0 && !paused_) {
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
  // A paused connection is not read: its silence is ours (resume_reading restarts the clock).
  if (expect_every_.count() != 0 && !paused_) {
    auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(
        expect_every_ * ctx_.settings.heartbeat.grace_factor);
    if (now - last_read_ >= grace) {
      log_warn("session={} peer={} heart-beat timeout: silent for over {} ms", id_, peer_,
               grace.count());
      return send_error_and_close(close_reason::heartbeat_timeout, "heart-beat timeout",
                                  fmt::format("nothing received for {} ms", grace.count()));
    }
  }
  if (send_every_.count() != 0 && now - last_write_ >= send_every_ && outbox_.empty()) {
    outbox::entry e;
    e.bytes = stomp::heartbeat_bytes;
    enqueue(std::move(e));
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
  write_timer_.cancel();
  release_resources();
  if (!flush) {
    abort_transport();
    return;
  }
  // Closing always ends: once close_linger is over the connection is reset. A peer that
  // doesn't read would never see a plain close: our FIN (or WebSocket close frame) waits
  // behind the bytes it doesn't read, as does a final write the kernel took. abort_transport()
  // cancels this when the close ends sooner.
  timer_.expires_after(close_linger);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec) return;
    log_debug("session={} peer={} close took over {} s: reset", self->id_, self->peer_,
              close_linger.count());
    self->reset_transport();
  });
  if (!outbox_.writing()) {
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
    write_timer_.cancel();
    release_resources();
  }
  flush_then_close_ = false;
  abort_transport();
}

void session::end_queue_subscription(subscription& sub, bool in_flight_is_written) {
  // What no write has taken goes back to the queue (remove_consumer requeues it), not out to
  // a subscription that no longer exists: an auto-ack message is then delivered exactly
  // once, to someone else.
  auto in_flight = outbox_.take_back(sub.key);
  if (in_flight_is_written && in_flight.count != 0)
    sub.q->written(this, sub.key, in_flight.count, in_flight.bytes);
  sub.q->remove_consumer(this, sub.key);
  ctx_.queues.release(sub.destination);
}

void session::release_resources() {
  if (released_) return;
  released_ = true;
  // A pending expiry wait owns the session: left alone it would keep a closed connection
  // (and its slot) alive until the token runs out.
  if (expiry_timer_) expiry_timer_->cancel();
  if (pause_retry_) pause_retry_->cancel();
  // Released later, on this worker: the caller may still be using this session.
  if (paused_self_) net::post(worker_.io, [self = std::move(paused_self_)] {});
  for (auto& [key, sub] : subscriptions_) {
    if (sub.is_queue) {
      // A flushing close still writes what is in flight; an abort writes nothing more.
      end_queue_subscription(sub, flush_then_close_);
    } else if (!sub.history_only) {
      ctx_.topics.unsubscribe(worker_.index, sub.destination, this, key);
      leave_presence(sub);
    }
  }
  subscriptions_.clear();
  subscription_keys_.clear();
  transactions_.clear();  // a connection that ends aborts its open transactions
  transaction_bytes_ = 0;
  worker_.sessions.erase(this);
}

}  // namespace broker
