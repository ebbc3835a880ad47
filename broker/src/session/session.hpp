#pragma once

#include "admin/admin_view.hpp"
#include "auth/principal.hpp"
#include "context.hpp"
#include "metrics.hpp"
#include "net/event_loop.hpp"
#include "routing/message.hpp"
#include "routing/publish.hpp"
#include "routing/queue.hpp"
#include "routing/router.hpp"
#include "session/fifo.hpp"
#include "session/outbox.hpp"
#include "session/receipts.hpp"
#include "session/token_bucket.hpp"
#include "stomp/frame.hpp"
#include "stomp/negotiate.hpp"
#include "stomp/parser.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace broker {

// Why a connection ended; logged, and counted by the admin API later.
enum class close_reason : std::uint8_t {
  client_disconnect,  // DISCONNECT frame
  peer_closed,        // EOF or WebSocket close from the peer
  io_error,
  protocol_error,  // we sent ERROR
  slow_consumer,   // outbound queue over its limit
  heartbeat_timeout,
  connect_timeout,  // no CONNECT in time
  shutdown,         // broker stopping
  access_refused,   // CONNECT with bad or missing credentials
  token_expired,    // the bearer token of the connection ran out
  kicked,           // an administrator disconnected it
  pushed_back,      // paused by a budget for longer than limits.max_push_back_ms
};
std::string_view to_string(close_reason r) noexcept;

// One client connection speaking STOMP, whatever carries it (TCP or WebSocket: the
// transports are in net/transport.cpp). It owns the protocol state machine, subscriptions,
// transactions, heart-beats and its outbox; the transport moves bytes.
//
// Its member functions are spread over files by concern: session.cpp (reading, frame
// dispatch, errors, heart-beats, writing, closing), connect.cpp (CONNECT, authentication),
// publishing.cpp (SEND, receipts, transactions), subscriptions.cpp (SUBSCRIBE, replay, ACK,
// delivery).
//
// Threading: every member is touched only on the thread of the worker the connection was
// accepted onto. Other threads reach it by posting to that worker (queue deliveries, stored
// messages) or via the router, which delivers topic messages on this worker's thread.
// Lifetime: owned by its pending asynchronous operations (shared_from_this in every handler);
// close() removes it from the router, the queues and its worker before the last handler lets
// go, so no raw pointer to it outlives it.
class session : public std::enable_shared_from_this<session>,
                public topic_subscriber,
                public queue_consumer,
                public publish_listener,
                public deferred_write {
 public:
  session(broker_context& ctx, worker& w, std::string peer, std::string_view transport,
          connection_limiter::slot slot);
  virtual ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  // Starts the connection: the connect timeout, then the transport (handshake, first
  // read). On the worker's thread.
  void run();

  // Ends the connection: `flush` lets queued frames (and an ERROR just queued) go out first.
  // Idempotent. On the worker's thread.
  void close(close_reason why, bool flush);

  std::uint64_t id() const noexcept { return id_; }

  // For the admin API, on the worker's thread.
  admin::connection_info info() const;
  void collect_subscriptions(std::string_view destination,
                             std::vector<admin::subscription_info>& out) const;
  // Sends ERROR `reason` and closes.
  void kick(std::string_view reason);

  using buffer_view = outbox::buffer_view;

  void on_topic_message(const message_ptr& m, std::uint64_t key) override;
  void on_queue_message(const message_ptr& m, std::uint64_t key, bool redelivered) override;
  void on_stored(std::uint64_t ticket, const storage::append_result& r) override;
  void write_now() override;

 protected:
  // --- transport interface ---
  // Space for the next read, and the bytes that arrived in it.
  boost::asio::mutable_buffer read_space();
  void on_read(std::size_t bytes);
  // Writes `buffers` (the frames at the head of the outbox) as one operation, then calls
  // on_write_done. `text`: all of it is UTF-8 (matters to WebSocket only).
  virtual void write(std::array<buffer_view, 2> buffers, bool text) = 0;
  void on_write_done();
  // After the final flush: shut the transport down cleanly (WebSocket close, TCP FIN).
  virtual void shutdown_transport() = 0;
  // Immediately: no more I/O.
  virtual void abort_transport() = 0;
  // Immediately, and with a TCP reset: for a peer that stopped reading, so nothing it won't
  // read stays queued in the kernel for it (and it learns at once that we are gone).
  virtual void reset_transport() = 0;
  // Transport-level failure or end of stream.
  void fail(close_reason why, std::string_view what, std::string_view detail);
  virtual void start_transport() = 0;
  // Called by the transport when it is ready for STOMP (after the WebSocket handshake).
  void transport_ready();
  virtual void start_read() = 0;

  broker_context& ctx_;
  worker& worker_;
  bool closing_ = false;
  // Heart-beats and the connect timeout; after a flushing close(), its deadline
  // (close_linger).
  boost::asio::steady_timer timer_;
  // How long a flushing close may take, from close() to the transport aborted: the final
  // writes, then (TCP) reading and discarding after our FIN so the peer's unread input doesn't
  // turn the close into a reset that loses the final ERROR, or a TLS close_notify or WebSocket
  // close exchange. A peer that doesn't read can't hold its connection longer than this.
  static constexpr std::chrono::seconds close_linger{2};
  // A token from the transport (the WebSocket URL's access_token), for CONNECT to check.
  // Never logged.
  std::string transport_token_;

 private:
  // The x-presence-count of a subscription's RECEIPT: known once the engine has counted
  // (engine::enter_presence, which may ask Redis); a RECEIPT ready sooner waits in `then`.
  // Shared with those callbacks, so it outlives an UNSUBSCRIBE in between.
  struct presence_count {
    std::optional<std::size_t> n;
    std::function<void(std::size_t)> then;
  };
  struct subscription {
    std::string id;
    std::string destination;
    ack_mode mode = ack_mode::auto_ack;
    bool is_queue = false;
    std::shared_ptr<queue> q;
    std::uint64_t key = 0;
    std::string head;        // "MESSAGE\nsubscription:<id>\n", built once
    std::string ack_prefix;  // "ack:<key>-" for the client ack modes in STOMP 1.2
    // x-replay: until the history is delivered, live messages wait in `pending`.
    bool replaying = false;
    // Highest x-seq delivered. A journaled destination's live messages arrive in x-seq order,
    // but the history read may see a commit before its live delivery reaches us: anything at
    // or below this is already delivered and is dropped.
    std::uint64_t last_seq = 0;
    std::string last_epoch;  // what numbers last_seq: another epoch's x-seq starts again
    // True when live message `m` is past what was delivered, which then includes it; a
    // message that is not journaled (seq 0) always is.
    bool advance(const message& m) {
      if (m.seq == 0) return true;
      if (m.epoch == last_epoch && m.seq <= last_seq) return false;
      last_seq = m.seq;
      last_epoch = m.epoch;
      return true;
    }
    storage::replay_request replay;
    std::optional<receipt_order::ticket> replay_receipt;  // held until the history is sent
    // x-replay: before:S ("load older messages"): history only, never live; the subscription
    // ends with its RECEIPT.
    bool history_only = false;
    // x-presence: true: this subscription also gets the topic's join and leave events, and
    // its RECEIPT the number present, once the engine counted (presence_count).
    bool presence = false;
    std::shared_ptr<presence_count> counted;
    std::vector<message_ptr> pending;
    std::size_t pending_bytes = 0;  // of `pending`, part of the session's pending_live_bytes_
  };

  // An open transaction: its frames, applied at COMMIT, and the bytes they hold (counted in
  // transaction_bytes_ and in the broker's held_bytes).
  struct open_transaction {
    std::vector<stomp::frame> frames;
    held_bytes::claim held;
  };

  // A journaled SEND on its way to the store: what its RECEIPT (or ERROR) needs.
  struct pending_store {
    std::uint64_t ticket = 0;
    std::optional<receipt_order::ticket> receipt;  // held until stored
    std::string destination;
    std::size_t bytes = 0;  // counted in pending_store_bytes_
  };

  // --- session.cpp ---
  void process_input();
  void handle_frame(const stomp::frame_view& f);
  // Queues ERROR (`message` header, `detail` as its body, receipt-id when `receipt`) and
  // closes once it is written: every refusal ends this way.
  void send_error_and_close(close_reason why, std::string_view message, std::string_view detail,
                            std::optional<std::string_view> receipt = std::nullopt);
  // A client's protocol error: logged, then send_error_and_close(protocol_error, ...) with
  // the receipt-id of `f` when it asked for one.
  void protocol_error(std::string_view message, std::string_view detail,
                      const stomp::frame_view* f = nullptr);
  void enqueue(outbox::entry e);
  void enqueue_frame(stomp::command c, std::span<const stomp::header_view> headers,
                     std::string_view body = {});
  void condemn_slow_consumer();
  // Writes soon: at the end of the worker's current burst of handlers (run_event_loop).
  void schedule_write();
  void start_write();
  void release_resources();  // subscriptions, transactions, worker registration
  // Gives a queue subscription's unwritten deliveries back to its queue and leaves it;
  // `in_flight_is_written`: the write in flight will still complete.
  void end_queue_subscription(subscription& sub, bool in_flight_is_written);
  void arm_timer();
  void on_timer();
  // The write in flight must complete within limits.write_timeout (from its start), or the
  // connection is reset: a peer that stops reading holds at most one write this long. Armed
  // once per timeout while writing, not per write.
  void watch_write();
  void on_write_timer();

  // --- connect.cpp ---
  void handle_connect(const stomp::frame_view& f);
  void authenticate(const stomp::frame_view& f);
  void accept(auth::principal p);
  void refuse_access(std::string_view why);
  bool authorized(auth::action a, std::string_view destination, const stomp::frame_view& f);
  bool check_destination(std::string_view destination, const stomp::frame_view& f);

  // --- publishing.cpp ---
  // Applies a SEND or ACK/NACK now (outside a transaction, or at COMMIT); `receipt` is
  // answered once it has taken effect (for a journaled SEND: once stored). False when it
  // failed (the ERROR is sent).
  bool apply(const stomp::frame_view& f, std::optional<std::string_view> receipt);
  bool publish(const stomp::frame_view& f, std::string_view destination,
               std::optional<std::string_view> receipt);
  // Sends the RECEIPT once every message this connection sent before is stored, then runs
  // `then` (DISCONNECT's close).
  void receipt_after_stored(std::optional<std::string_view> receipt, std::function<void()> then);
  void send_receipt(const stomp::frame_view& f);
  void send_receipt(std::optional<std::string_view> receipt);
  // Lets a held receipt go (receipts_), with the extra headers, and what waited behind it.
  void complete_receipt(receipt_order::ticket t, std::vector<receipt_order::header> extra = {});
  void handle_transactional(const stomp::frame_view& f, std::string_view transaction);
  void handle_begin(const stomp::frame_view& f);
  void handle_end_transaction(const stomp::frame_view& f, bool commit);
  void handle_disconnect(const stomp::frame_view& f);
  // Push-back: after a SEND (or a transaction's frame) that leaves this connection's
  // journaled SENDs not yet stored over limits.max_pending_store_bytes, or a broker-wide
  // total over its limit (max_pending_store_bytes_total, max_held_bytes_total), nothing more
  // is read from it until they are back under: resume_reading, from on_stored or a retry
  // timer. Its outbox keeps being written meanwhile.
  bool over_budget() const;
  void pause_if_over_budget();
  void look_again_later();
  void resume_reading();

  // --- subscriptions.cpp ---
  void handle_subscribe(const stomp::frame_view& f);
  void handle_unsubscribe(const stomp::frame_view& f);
  // ACK or NACK; with `check_only`, only whether it would succeed (a COMMIT checks its
  // transaction's acknowledgements before applying anything). False when it fails (the ERROR
  // is sent).
  bool handle_ack(const stomp::frame_view& f, bool positive, bool check_only = false);
  void deliver(const subscription& sub, const message_ptr& m, bool redelivered,
               bool replayed = false);
  // Replays run one at a time per connection, each once the previous one is written, so
  // history never holds more than one replay's worth of a connection's memory.
  void start_next_replay();
  // A topic subscription begins or ends: the user enters or leaves the topic's presence, and
  // a join or leave event goes to the subscriptions that asked for them.
  void enter_presence(subscription& sub);
  void leave_presence(const subscription& sub);
  // Completes a RECEIPT of `sub` with `said`, and x-presence-count when it asked, once known.
  void complete_subscribe_receipt(const subscription& sub, receipt_order::ticket t,
                                  std::vector<receipt_order::header> said = {});
  // "" when the SUBSCRIBE's x-replay `r` and x-replay-limit go together (and r.limit is set),
  // else the ERROR's detail.
  std::string older_history_problem(const stomp::frame_view& f, storage::replay_request& r) const;
  void on_replay(std::uint64_t key, storage::replay_result&& r);

  const std::uint64_t id_;
  const std::string sender_;  // id_ as text: live message ids are "<sender_>-<n>"
  connection_limiter::slot slot_;
  const std::string peer_;
  const std::string_view transport_;
  stomp::parser parser_;
  std::size_t read_bytes_ = 512;  // asked of the next read (see on_read)
  std::size_t read_asked_ = 0;    // what the read in flight was given
  int short_reads_ = 0;
  bool connected_ = false;
  bool released_ = false;
  stomp::version version_ = stomp::version::v1_2;

  std::unordered_map<std::uint64_t, subscription> subscriptions_;     // by key
  std::unordered_map<std::string, std::uint64_t> subscription_keys_;  // client id -> key
  // Ids of x-replay: before:SEQ subscriptions that ended with their RECEIPT, newest last: an
  // UNSUBSCRIBE of one (stomp.js's unsubscribe()) is accepted. At most 64 remembered. A
  // vector: it allocates nothing until used (libstdc++'s deque takes ~600 bytes at birth, on
  // every idle connection).
  std::vector<std::string> ended_history_ids_;
  std::uint64_t next_key_ = 1;
  std::unordered_map<std::string, open_transaction> transactions_;
  std::size_t transaction_bytes_ = 0;  // all open transactions: limits.max_transaction_bytes
  // While a COMMIT applies its frames: their errors answer the COMMIT (its receipt-id).
  const stomp::frame_view* committing_ = nullptr;
  std::uint64_t published_ = 0;     // live message ids handed out
  std::uint64_t messages_in_ = 0;   // SENDs accepted
  std::uint64_t messages_out_ = 0;  // MESSAGEs queued
  const std::int64_t connected_since_ms_;
  worker_metrics& stats_;  // our worker's counters
  std::chrono::steady_clock::time_point replay_started_;

  outbox outbox_;
  std::vector<outbox::credit> written_credit_;  // scratch for on_write_done
  fifo<std::uint64_t> replay_queue_;            // subscription keys waiting for their history
  bool replay_in_flight_ = false;
  bool write_scheduled_ = false;  // in worker_.to_flush
  bool flush_then_close_ = false;
  bool disconnecting_ = false;     // DISCONNECT seen: read nothing more
  bool authenticating_ = false;    // a passcode check is running: frames wait
  std::string user_;               // the authenticated principal
  auth::permissions permissions_;  // what user_ may subscribe and send to
  std::optional<boost::asio::steady_timer> expiry_timer_;  // only for expiring tokens
  fifo<pending_store> stores_;            // journaled SENDs not yet stored, oldest first
  receipt_order receipts_;                // RECEIPTs waiting for one asked for before them
  std::function<void()> after_receipts_;  // DISCONNECT: closes once receipts_ is sent
  // Their bytes: over limits.max_pending_store_bytes reading stops until the journal catches
  // up (paused_).
  std::size_t pending_store_bytes_ = 0;
  bool paused_ = false;  // pushed back (over_budget): reading waits for resume_reading
  std::uint8_t pause_retries_ = 0;
  std::chrono::steady_clock::time_point paused_since_;
  // While paused no read is pending, and pending operations are a session's only owners:
  // this keeps it alive until it resumes or closes.
  std::shared_ptr<session> paused_self_;
  std::optional<boost::asio::steady_timer> pause_retry_;  // paused by a broker-wide total
  // Live messages waiting behind replays, counted with the outbox's live bytes against
  // limits.max_queued_bytes.
  std::size_t pending_live_bytes_ = 0;
  std::uint64_t next_ticket_ = 1;
  token_bucket publish_rate_;
  bool condemned_ = false;  // over the outbound limit; its close is posted

  bool ready_ = false;  // transport handshake done: frames may be written
  std::chrono::steady_clock::time_point last_read_;
  std::chrono::steady_clock::time_point last_write_;
  stomp::heart_beat heart_beat_offer_;         // what CONNECTED says (handle_connect)
  std::chrono::milliseconds send_every_{0};    // our offer, when agreed; 0: none sent
  std::chrono::milliseconds expect_every_{0};  // negotiated; 0: silence allowed

  // The write deadline (watch_write).
  std::chrono::steady_clock::time_point write_started_;  // of the write in flight
  boost::asio::steady_timer write_timer_{worker_.io};
  bool write_watched_ = false;  // write_timer_ is armed
};

}  // namespace broker
