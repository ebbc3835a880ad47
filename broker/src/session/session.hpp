#pragma once

#include "admin/admin_view.hpp"
#include "auth/principal.hpp"
#include "context.hpp"
#include "engine/history.hpp"
#include "metrics.hpp"
#include "routing/message.hpp"
#include "routing/queue.hpp"
#include "routing/router.hpp"
#include "session/fifo.hpp"
#include "stomp/frame.hpp"
#include "stomp/parser.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
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
};
std::string_view to_string(close_reason r) noexcept;

// One client connection speaking STOMP, whatever carries it (TCP or WebSocket: see the
// transports in session.cpp). It owns the protocol state machine, subscriptions,
// transactions, heart-beats and the bounded outbound queue; the transport moves bytes.
//
// Threading: every member is touched only on the thread of the worker the connection was
// accepted onto. Other threads reach it by posting to that worker (queue deliveries) or via
// the router, which delivers topic messages on this worker's thread. Lifetime: owned by its
// pending asynchronous operations (shared_from_this in every handler); close() removes it from
// the router, the queues and its worker before the last handler lets go, so no raw pointer
// to it outlives it.
class session : public std::enable_shared_from_this<session>,
                public topic_subscriber,
                public queue_consumer {
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

  struct buffer_view {
    const char* data;
    std::size_t size;
  };

  void on_topic_message(const message_ptr& m, std::uint64_t key) override;
  void on_queue_message(const message_ptr& m, std::uint64_t key, bool redelivered) override;

 protected:
  // --- transport interface ---
  // Space for the next read, and the bytes that arrived in it.
  boost::asio::mutable_buffer read_space();
  void on_read(std::size_t bytes);
  // Writes `buffers` (the frames at the head of the outbox) as one operation, then calls
  // on_write_done. `text`: all of it is UTF-8 (matters to WebSocket only).
  // At most two buffers: a frame's head and shared tail, or frames copied together.
  virtual void write(std::array<buffer_view, 2> buffers, bool text) = 0;
  void on_write_done();
  // After the final flush: shut the transport down cleanly (WebSocket close, TCP FIN).
  virtual void shutdown_transport() = 0;
  // Immediately: no more I/O.
  virtual void abort_transport() = 0;
  // Transport-level failure or end of stream.
  void fail(close_reason why, std::string_view what, std::string_view detail);
  virtual void start_transport() = 0;
  // Called by the transport when it is ready for STOMP (after the WebSocket handshake).
  void transport_ready();
  virtual void start_read() = 0;

  broker_context& ctx_;
  worker& worker_;
  bool closing_ = false;
  // Heart-beats and the connect timeout; after close() the transport may reuse it (linger).
  boost::asio::steady_timer timer_;
  // A token from the transport (the WebSocket URL's access_token), for CONNECT to check.
  // Never logged.
  std::string transport_token_;

 private:
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
    storage::replay_request replay;
    std::optional<std::string> replay_receipt;
    std::vector<message_ptr> pending;
  };

  // Entry in the outbound queue: `bytes` (a whole frame, or a MESSAGE head) followed by
  // `tail` when `msg` is set (the shared remainder of a MESSAGE, kept alive by `msg`).
  struct outbound {
    std::string bytes;  // a whole frame, or a MESSAGE head too long for inline_head
    // A MESSAGE's per-recipient head, usually a few dozen bytes: kept inline so a delivery
    // doesn't allocate.
    std::array<char, 64> inline_head;
    std::uint8_t inline_size = 0;
    message_ptr msg;
    std::string_view tail;
    bool replayed = false;  // history: not held against the slow-consumer limit

    std::string_view head() const noexcept {
      return inline_size != 0 ? std::string_view(inline_head.data(), inline_size)
                              : std::string_view(bytes);
    }
    std::size_t size() const noexcept { return head().size() + tail.size(); }
  };

  void handle_frame(const stomp::frame_view& f);
  void handle_connect(const stomp::frame_view& f);
  void authenticate(const stomp::frame_view& f);
  void accept(auth::principal p);
  void refuse_access(std::string_view why);
  bool authorized(auth::action a, std::string_view destination, const stomp::frame_view& f);
  void process_input();
  bool take_publish_token();
  void handle_send(const stomp::frame_view& f);
  void handle_subscribe(const stomp::frame_view& f);
  void handle_unsubscribe(const stomp::frame_view& f);
  void handle_ack(const stomp::frame_view& f, bool positive);
  void handle_begin(const stomp::frame_view& f);
  void handle_end_transaction(const stomp::frame_view& f, bool commit);
  void handle_disconnect(const stomp::frame_view& f);
  // Applies a SEND or ACK/NACK now (outside a transaction, or at COMMIT).
  // Applies a SEND or ACK/NACK; `receipt` is answered once it has taken effect (for a
  // journaled SEND: once stored). False when it failed (the ERROR is sent).
  bool apply(const stomp::frame_view& f, std::optional<std::string_view> receipt);
  bool publish(const stomp::frame_view& f, std::string_view destination,
               std::optional<std::string_view> receipt);
  void store(const stomp::frame_view& f, std::string_view destination,
             std::span<const stomp::header_view> passed, std::optional<std::string_view> receipt);
  void on_stored(const storage::append_result& r, std::string_view destination,
                 const std::optional<std::string>& receipt);
  void receipt_after_stored(std::optional<std::string_view> receipt, std::function<void()> then);
  void send_receipt(const stomp::frame_view& f);
  void send_receipt(std::optional<std::string_view> receipt);
  // Sends ERROR (with receipt-id when `f` asked for a receipt) and closes after flushing.
  void protocol_error(std::string_view message, std::string_view detail,
                      const stomp::frame_view* f = nullptr);
  bool check_destination(std::string_view destination, const stomp::frame_view& f);

  void deliver(const subscription& sub, const message_ptr& m, bool redelivered,
               bool replayed = false);
  // Replays run one at a time per connection, each once the previous one is written, so
  // history never holds more than one replay's worth of a connection's memory.
  void start_next_replay();
  void on_replay(std::uint64_t key, storage::replay_result&& r);
  void enqueue(outbound o);
  void condemn_slow_consumer();
  void enqueue_frame(stomp::command c, std::span<const stomp::header_view> headers,
                     std::string_view body = {});
  // Writes soon: at the end of the worker's current burst of handlers (run_event_loop).
  void schedule_write();
  static void flush_scheduled(worker& w);
  friend void run_event_loop(broker_context& ctx, worker& w);
  void start_write();
  void release_resources();  // subscriptions, transactions, worker registration

  void arm_timer();
  void on_timer();

  const std::uint64_t id_;
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
  std::uint64_t next_key_ = 1;
  std::unordered_map<std::string, std::vector<stomp::frame>> transactions_;
  std::uint64_t published_ = 0;     // non-journaled message ids handed out
  std::uint64_t messages_in_ = 0;   // SENDs accepted
  std::uint64_t messages_out_ = 0;  // MESSAGEs queued
  const std::int64_t connected_since_ms_;
  worker_metrics& stats_;  // our worker's counters
  std::chrono::steady_clock::time_point replay_started_;

  fifo<outbound> outbox_;
  std::size_t queued_bytes_ = 0;
  std::size_t queued_replay_bytes_ = 0;  // part of queued_bytes_ that is replayed history
  fifo<std::uint64_t> replay_queue_;     // subscription keys waiting for their history
  bool replay_in_flight_ = false;
  std::size_t writing_ = 0;       // frames at the head of outbox_ in the write in flight
  std::string write_copy_;        // the coalesced frames of the write in flight
  bool write_scheduled_ = false;  // in worker_.to_flush
  bool flush_then_close_ = false;
  bool disconnecting_ = false;     // DISCONNECT seen: read nothing more
  bool authenticating_ = false;    // a passcode check is running: frames wait
  std::string user_;               // the authenticated principal
  auth::permissions permissions_;  // what user_ may subscribe and send to
  std::optional<boost::asio::steady_timer> expiry_timer_;  // only for expiring tokens
  std::size_t appends_in_flight_ = 0;                      // journaled SENDs not yet stored
  double publish_tokens_ = 0;
  std::chrono::steady_clock::time_point publish_tokens_refilled_{};
  bool condemned_ = false;  // over the outbound limit; its close is posted

  bool ready_ = false;  // transport handshake done: frames may be written
  std::chrono::steady_clock::time_point last_read_;
  std::chrono::steady_clock::time_point last_write_;
  std::chrono::milliseconds send_every_{0};    // negotiated; 0: no heart-beats sent
  std::chrono::milliseconds expect_every_{0};  // negotiated; 0: silence allowed
};

// Runs worker `w`'s event loop on the calling thread until it stops; after each burst of
// handlers, posts what the router set aside for other workers and writes what sessions queued.
void run_event_loop(broker_context& ctx, worker& w);

}  // namespace broker
