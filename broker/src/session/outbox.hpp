#pragma once

#include "routing/message.hpp"
#include "session/fifo.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace broker {

// A connection's frames waiting to be written, and the one write in flight: what a consumer
// makes the broker hold. It counts the bytes and frames it holds against the connection's
// budget and says when they are over it; the session decides what follows (a slow consumer
// is cut off). Several queued frames leave together in one coalesced write, so a burst of
// deliveries costs one system call (for WebSocket, one message).
//
// Threading: touched only on the connection's worker thread. Not a socket: the session hands
// what start_write() gathers to its transport and calls finish_write() when it completed.
class outbox {
 public:
  // A frame: `bytes` (a whole frame, or a MESSAGE head too long for inline_head) followed by
  // `tail` when `msg` is set (the shared remainder of a MESSAGE, kept alive by `msg`).
  struct entry {
    std::string bytes;
    // A MESSAGE's per-recipient head, usually a few dozen bytes: kept inline so a delivery
    // doesn't allocate.
    std::array<char, 64> inline_head;
    std::uint8_t inline_size = 0;
    message_ptr msg;
    std::string_view tail;
    bool replayed = false;  // history: bounded by the replay caps, not the outbox's budget
    // A queue delivery to subscription `credit_key` (0: none), bounded by that queue's write
    // window instead of the outbox's budget; `credit_bytes` is what it counts there.
    std::uint64_t credit_key = 0;
    std::size_t credit_bytes = 0;

    std::string_view head() const noexcept {
      return inline_size != 0 ? std::string_view(inline_head.data(), inline_size)
                              : std::string_view(bytes);
    }
    std::size_t size() const noexcept { return head().size() + tail.size(); }
  };

  // The budget: bytes of live frames, and frames of any kind.
  struct limits {
    std::size_t max_bytes = 0;
    std::size_t max_frames = 0;
  };

  struct buffer_view {
    const char* data;
    std::size_t size;
  };
  // One write: at most two buffers (a frame's head and shared tail, or frames copied
  // together), and whether all of it is UTF-8 (a WebSocket text message).
  struct write_buffers {
    std::array<buffer_view, 2> buffers;
    bool text = true;
  };

  // Frames coalesced into one write. The byte bound keeps a WebSocket message within what
  // clients buffer: Spring's WebSocketStompClient refuses messages over 64 KiB
  // (inboundMessageSizeLimit). A larger single frame still goes alone.
  static constexpr std::size_t max_frames_per_write = 512;
  static constexpr std::size_t max_coalesced_bytes = 32 * 1024;

  explicit outbox(limits l) : limits_(l) {}

  // Queues `e`; false when what is queued is now over the budget.
  [[nodiscard]] bool push(entry&& e);

  bool empty() const noexcept { return frames_.empty(); }
  std::size_t frames() const noexcept { return frames_.size(); }
  std::size_t bytes() const noexcept { return bytes_; }
  std::size_t replay_bytes() const noexcept { return replay_bytes_; }
  bool writing() const noexcept { return writing_ != 0; }

  // Queue deliveries that a write handed to the socket, per subscription, for the queue's
  // write window (queue::written).
  struct credit {
    std::uint64_t key = 0;
    std::size_t count = 0;
    std::size_t bytes = 0;
  };

  // Gathers the frames at the head for one write. Requires !empty() and !writing(). The
  // buffers stay valid until finish_write().
  write_buffers start_write();
  // The write in flight completed: its frames leave. Returns the bytes they held, and adds
  // the queue deliveries among them to `written`.
  std::size_t finish_write(std::vector<credit>& written);
  // Drops every frame that is not part of the write in flight (a condemned connection's).
  void drop_unwritten();
  // For a queue subscription that ends: drops its deliveries that no write has taken yet
  // (the queue takes them back) and returns those in the write in flight (as written).
  credit take_back(std::uint64_t credit_key);

 private:
  void forget(const entry& e) noexcept;

  limits limits_;
  fifo<entry> frames_;
  std::size_t bytes_ = 0;
  std::size_t replay_bytes_ = 0;  // part of bytes_ that is replayed history
  std::size_t credit_bytes_ = 0;  // part of bytes_ that is queue deliveries
  std::size_t writing_ = 0;       // frames at the head in the write in flight
  std::string write_copy_;        // the coalesced frames (or single head) of that write
};

}  // namespace broker
