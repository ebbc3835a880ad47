#include "broker/log.hpp"
#include "session/session.hpp"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <array>
#include <span>
#include <utility>

// SEND and what follows it: the publish path, RECEIPTs (after the store for journaled
// destinations), transactions, and DISCONNECT's receipt.

namespace net = boost::asio;

namespace broker {

using stomp::command;
using stomp::header_view;

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
  auto ticket = next_ticket_++;
  publisher::request r{destination, f.headers, f.body, sender_, ++published_};
  const auto sent = ctx_.publishing->publish(worker_.index, r, weak_from_this(), ticket);
  switch (sent) {
    case publisher::status::storing: {
      auto bytes = publisher::store_bytes(r);
      pending_store_bytes_ += bytes;
      std::optional<receipt_order::ticket> held;
      if (receipt) held = receipts_.hold(*receipt);
      stores_.push_back(pending_store{ticket, held, std::string(destination), bytes});
      // Push back: read nothing more from this producer until the journal has caught up.
      pause_if_over_budget();
      return true;
    }
    case publisher::status::queue_full:
      protocol_error("queue full",
                     fmt::format("queue '{}' already holds {} messages", destination,
                                 ctx_.settings.limits.max_queue_messages),
                     &f);
      return false;
    case publisher::status::bad_idempotency_key:
      protocol_error("invalid x-idempotency-key", publisher::bad_key_detail(), &f);
      return false;
    case publisher::status::too_many_queues:
    case publisher::status::too_many_journaled: {
      auto why = ctx_.publishing->limit_refusal(sent, destination);
      protocol_error(why.message, why.detail, &f);
      return false;
    }
    case publisher::status::routed:
      break;
  }
  send_receipt(receipt);
  pause_if_over_budget();  // the message waits somewhere: the broker-wide total may be over
  return true;
}

bool session::over_budget() const {
  const auto& limits = ctx_.settings.limits;
  // Receipts waiting behind one that waits are what this client's own frames made us hold.
  return pending_store_bytes_ > limits.max_pending_store_bytes ||
         receipts_.bytes() > limits.max_queued_bytes ||
         ctx_.publishing->pending_bytes() > limits.max_pending_store_bytes_total ||
         ctx_.held.over();
}

void session::pause_if_over_budget() {
  if (paused_ || !over_budget()) return;
  paused_ = true;
  paused_since_ = std::chrono::steady_clock::now();
  paused_self_ = shared_from_this();
  if (stores_.empty()) look_again_later();  // else our own next on_stored looks
}

void session::look_again_later() {
  // Paused by a broker-wide total: nothing of ours will call back, so look again soon, less
  // often the longer it lasts (5 ms doubling to 160 ms: thousands may be waiting).
  if (!pause_retry_) pause_retry_.emplace(worker_.io);
  pause_retry_->expires_after(std::chrono::milliseconds(5 << pause_retries_));
  if (pause_retries_ < 5) ++pause_retries_;
  pause_retry_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->resume_reading();
  });
}

void session::resume_reading() {
  if (!paused_ || closing_) return;
  auto self = paused_self_;  // alive to the end of this call, whatever happens in it
  if (over_budget()) {
    const auto& limits = ctx_.settings.limits;
    if (std::chrono::steady_clock::now() - paused_since_ >= limits.max_push_back) {
      paused_self_.reset();  // `self` keeps us alive through the close
      return send_error_and_close(
          close_reason::pushed_back, "pushed back too long",
          fmt::format("not read for {} ms (limits.max_push_back_ms): this connection's journaled "
                      "SENDs not yet stored hold {} bytes (limits.max_pending_store_bytes {}), "
                      "all connections' {} (max_pending_store_bytes_total {}), and the broker "
                      "holds {} bytes of messages (max_held_bytes_total {})",
                      limits.max_push_back.count(), pending_store_bytes_,
                      limits.max_pending_store_bytes, ctx_.publishing->pending_bytes(),
                      limits.max_pending_store_bytes_total, ctx_.held.bytes(),
                      limits.max_held_bytes_total));
    }
    if (stores_.empty()) look_again_later();  // else our own next on_stored looks
    return;
  }
  paused_ = false;
  pause_retries_ = 0;
  paused_self_.reset();
  // What the peer sent meanwhile, heart-beats too, waits unread: its silence was ours.
  last_read_ = std::chrono::steady_clock::now();
  process_input();  // the frames that waited in the parser, then reading again
}

void session::on_stored(std::uint64_t ticket, const storage::append_result& r) {
  // The engine answers one connection's appends in the order they were made.
  if (stores_.empty() || stores_.front().ticket != ticket) {
    log_error("session={} stored message {} out of order", id_, ticket);
    return;
  }
  auto done = std::move(stores_.front());
  stores_.pop_front();
  pending_store_bytes_ -= done.bytes;
  if (closing_) return;
  if (r.ec == engine_errc::queue_full)
    return send_error_and_close(
        close_reason::protocol_error, "queue full",
        fmt::format("queue '{}' already holds {} messages", done.destination,
                    ctx_.settings.limits.max_queue_messages),
        receipts_.id(done.receipt));
  if (r.ec) {
    log_error("session={} journal append failed destination={}: {}", id_, done.destination,
              r.ec.message());
    return send_error_and_close(close_reason::protocol_error, "message not stored",
                                fmt::format("the journal could not store the message to '{}': {}",
                                            done.destination, r.ec.message()),
                                receipts_.id(done.receipt));
  }
  if (done.receipt && r.seq == 0)  // a queue's message: no x-seq
    complete_receipt(*done.receipt);
  else if (done.receipt && r.duplicate)  // a retry: the first SEND's RECEIPT, said so
    complete_receipt(
        *done.receipt,
        {{"x-seq", fmt::format("{}", r.seq)}, {"x-epoch", r.epoch}, {"x-duplicate", "true"}});
  else if (done.receipt)
    complete_receipt(*done.receipt, {{"x-seq", fmt::format("{}", r.seq)}, {"x-epoch", r.epoch}});
  resume_reading();
}

void session::receipt_after_stored(std::optional<std::string_view> receipt,
                                   std::function<void()> then) {
  if (stores_.empty() && receipts_.empty()) {
    send_receipt(receipt);
    if (then) then();
    return;
  }
  std::optional<receipt_order::ticket> held;
  if (receipt) held = receipts_.hold(*receipt);
  // `then` (DISCONNECT's close) once our receipt, and every one before it, is sent.
  auto stored = [this, held, then = std::move(then)]() mutable {
    if (held) complete_receipt(*held);
    if (!then) return;
    if (receipts_.empty() || closing_)
      then();
    else
      after_receipts_ = std::move(then);
  };
  if (stores_.empty()) return stored();
  // A strong reference: after DISCONNECT nothing else may be keeping this session alive.
  ctx_.publishing->when_stored(worker_.index, [self = shared_from_this(),
                                               stored = std::move(stored)]() mutable { stored(); });
}

void session::send_receipt(const stomp::frame_view& f) { send_receipt(f.header("receipt")); }

void session::send_receipt(std::optional<std::string_view> receipt) {
  if (!receipt || closing_) return;
  if (!receipts_.empty()) {
    receipts_.add(*receipt);
    pause_if_over_budget();
    return;
  }
  const header_view h[] = {{"receipt-id", *receipt}};
  enqueue_frame(command::receipt, h);
}

void session::complete_receipt(receipt_order::ticket t, std::vector<receipt_order::header> extra) {
  receipts_.complete(t, std::move(extra));
  if (closing_) return;
  receipts_.drain([this](std::string_view id, const std::vector<receipt_order::header>& more) {
    std::array<header_view, 6> h{{{"receipt-id", id}}};
    std::size_t n = 1;
    for (const auto& e : more)
      if (n < h.size()) h[n++] = {e.name, e.value};
    enqueue_frame(command::receipt, std::span(h.data(), n));
  });
  // Posted: we may be inside on_replay or on_stored, which must not see the close (it
  // releases the subscriptions they are using). Found by the session fuzzer.
  if (receipts_.empty() && after_receipts_)
    net::post(worker_.io, [self = shared_from_this(),
                           then = std::exchange(after_receipts_, nullptr)] { then(); });
}

// A SEND, ACK or NACK inside a transaction: checked now, applied at COMMIT.
void session::handle_transactional(const stomp::frame_view& f, std::string_view tx) {
  auto it = transactions_.find(std::string(tx));
  if (it == transactions_.end())
    return protocol_error("unknown transaction", fmt::format("transaction '{}' was not begun", tx),
                          &f);
  const auto& limits = ctx_.settings.limits;
  if (it->second.frames.size() >= limits.max_frames_per_transaction)
    return protocol_error(
        "transaction too large",
        fmt::format("transaction '{}' exceeds {} frames", tx, limits.max_frames_per_transaction),
        &f);
  std::size_t bytes = f.body.size();
  for (const auto& h : f.headers) bytes += h.name.size() + h.value.size() + 2;
  if (transaction_bytes_ + bytes > limits.max_transaction_bytes)
    return protocol_error(
        "transaction too large",
        fmt::format("open transactions of this connection would hold over {} bytes",
                    limits.max_transaction_bytes),
        &f);
  if (f.command == command::send) {
    auto dest = f.header("destination");
    if (!dest) return protocol_error("missing header", "SEND requires 'destination'", &f);
    if (!check_destination(*dest, f) || !authorized(auth::action::send, *dest, f)) return;
  }
  it->second.frames.emplace_back(f);
  it->second.held.grow(bytes);
  transaction_bytes_ += bytes;
  send_receipt(f);
  pause_if_over_budget();
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
  transactions_.emplace(std::string(*tx), open_transaction{{}, held_bytes::claim(ctx_.held, 0)});
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
  auto frames = std::move(it->second.frames);
  transaction_bytes_ -= it->second.held.bytes();
  transactions_.erase(it);
  if (commit) {
    // All or nothing, as far as the broker can tell before applying: every ACK and NACK must
    // name a message awaiting acknowledgement (destinations and grants were checked as the
    // SENDs joined). Only a queue that fills up meanwhile can still fail a COMMIT part-way.
    // Errors answer the COMMIT, whose receipt the client waits for.
    committing_ = &f;
    std::vector<std::vector<header_view>> views(frames.size());
    auto view_of = [&](std::size_t i) {
      const auto& saved = frames[i];
      if (views[i].empty())
        for (const auto& h : saved.headers) views[i].push_back({h.name, h.value});
      return stomp::frame_view{saved.command, views[i], saved.body};
    };
    bool ok = true;
    for (std::size_t i = 0; ok && i < frames.size(); ++i)
      if (frames[i].command != command::send)
        ok = handle_ack(view_of(i), frames[i].command == command::ack, true);
    // The frames' own receipts were sent when they joined the transaction.
    for (std::size_t i = 0; ok && i < frames.size(); ++i) ok = apply(view_of(i), std::nullopt);
    committing_ = nullptr;
    if (!ok) return;  // the ERROR is sent
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

}  // namespace broker
