#include "session/outbox.hpp"

#include <cassert>

namespace broker {

bool outbox::push(entry&& e) {
  bytes_ += e.size();
  if (e.replayed) replay_bytes_ += e.size();
  if (e.credit_key != 0) credit_bytes_ += e.size();
  bool bounded_elsewhere = e.replayed || e.credit_key != 0;
  frames_.push_back(std::move(e));
  // History is bounded by the replay caps instead, one replay at a time per connection, and
  // queue deliveries by their queue's write window.
  if (bounded_elsewhere) return true;
  return bytes_ - replay_bytes_ - credit_bytes_ <= limits_.max_bytes &&
         frames_.size() <= limits_.max_frames;
}

outbox::write_buffers outbox::start_write() {
  assert(!empty() && !writing());
  std::size_t n = 0, total = 0;
  bool text = true;
  for (; n < frames_.size() && n < max_frames_per_write; ++n) {
    const auto& e = frames_[n];
    if (n > 0 && total + e.size() > max_coalesced_bytes) break;
    total += e.size();
    if (e.msg && !e.msg->utf8) text = false;
  }
  writing_ = n;
  const auto& first = frames_.front();
  if (n == 1) {
    // One frame (a large one, or a quiet connection): the head is copied, because the queue
    // may move its elements while the write is in flight; the shared tail (the message's
    // body) stays where it is, alive as long as the frame holds the message.
    write_copy_.assign(first.head());
    return {{{{write_copy_.data(), write_copy_.size()}, {first.tail.data(), first.tail.size()}}},
            text};
  }
  // Several small frames: copied into one buffer, so the kernel sees one send of one buffer
  // (Asio passes at most 64 buffers to a sendmsg) and the WebSocket one payload. Copying a
  // few hundred bytes per frame costs far less than the extra system calls.
  write_copy_.clear();
  write_copy_.reserve(total);
  for (std::size_t i = 0; i < n; ++i) {
    write_copy_.append(frames_[i].head());
    write_copy_.append(frames_[i].tail);
  }
  return {{{{write_copy_.data(), write_copy_.size()}, {nullptr, 0}}}, text};
}

std::size_t outbox::finish_write(std::vector<credit>& written) {
  std::size_t bytes = 0;
  for (; writing_ > 0; --writing_) {
    const auto& e = frames_.front();
    bytes += e.size();
    if (e.credit_key != 0) {
      if (written.empty() || written.back().key != e.credit_key) written.push_back({e.credit_key});
      ++written.back().count;
      written.back().bytes += e.credit_bytes;
    }
    forget(e);
    frames_.pop_front();
  }
  return bytes;
}

outbox::credit outbox::take_back(std::uint64_t credit_key) {
  credit in_flight{credit_key};
  for (std::size_t i = 0; i < writing_; ++i) {
    if (frames_[i].credit_key != credit_key) continue;
    ++in_flight.count;
    in_flight.bytes += frames_[i].credit_bytes;
  }
  frames_.erase_if_from(writing_, [&](const entry& e) {
    if (e.credit_key != credit_key) return false;
    forget(e);
    return true;
  });
  return in_flight;
}

void outbox::drop_unwritten() {
  while (frames_.size() > writing_) {
    forget(frames_.back());
    frames_.pop_back();
  }
}

void outbox::forget(const entry& e) noexcept {
  bytes_ -= e.size();
  if (e.replayed) replay_bytes_ -= e.size();
  if (e.credit_key != 0) credit_bytes_ -= e.size();
}

}  // namespace broker
