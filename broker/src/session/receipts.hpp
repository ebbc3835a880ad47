#pragma once

#include "session/fifo.hpp"

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker {

// One connection's RECEIPTs, in the order of the frames that asked for them. Clients use
// receipts as barriers ("my message is stored, and then I left the room"), but some can only
// be sent later than others: a journaled SEND's once it is stored, a replaying SUBSCRIBE's
// once its history is delivered, COMMIT's and DISCONNECT's once everything before them is
// stored. Such a receipt is held (`hold`) and those asked for after it wait behind it (`add`)
// until it is completed; `drain` then hands out what may go, oldest first. While nothing is
// held the order is empty and a receipt goes out at once, with nothing stored here.
// Not thread-safe: used on the session's event loop.
class receipt_order {
 public:
  using ticket = std::uint64_t;
  struct header {
    std::string name;
    std::string value;
  };

  // Nothing waits: a receipt asked for now may be sent at once.
  bool empty() const noexcept { return entries_.empty(); }
  // What the waiting receipts hold, counted against the connection's outbound budget.
  std::size_t bytes() const noexcept { return bytes_; }

  // A receipt that could go now but must follow those waiting (only when !empty()).
  void add(std::string_view id) {
    assert(!empty());
    push(id, true);
  }
  // A receipt that must wait for complete(): it holds back every receipt added after it.
  ticket hold(std::string_view id) {
    push(id, false);
    return first_ + entries_.size() - 1;
  }
  // Lets the held receipt go, with `extra` headers after its receipt-id.
  void complete(ticket t, std::vector<header> extra = {}) {
    auto& e = entries_[index(t)];
    for (const auto& h : extra) bytes_ += h.name.size() + h.value.size();
    e.extra = std::move(extra);
    e.ready = true;
  }
  // The receipt-id a held receipt answers (an ERROR in its place carries it).
  const std::string& id(ticket t) const { return entries_[index(t)].id; }
  // The same for a receipt that may not have been asked for (an ERROR's receipt-id).
  std::optional<std::string_view> id(std::optional<ticket> t) const {
    if (!t) return std::nullopt;
    return id(*t);
  }

  // Calls send(id, extra) for every receipt at the head that may go, oldest first.
  template <typename Send>
  void drain(Send&& send) {
    while (!entries_.empty() && entries_.front().ready) {
      auto& e = entries_.front();
      send(std::string_view(e.id), static_cast<const std::vector<header>&>(e.extra));
      bytes_ -= size_of(e);
      entries_.pop_front();
      ++first_;
    }
  }

 private:
  struct entry {
    std::string id;
    std::vector<header> extra;
    bool ready = false;
  };

  static std::size_t size_of(const entry& e) noexcept {
    std::size_t n = sizeof(entry) + e.id.size();
    for (const auto& h : e.extra) n += h.name.size() + h.value.size();
    return n;
  }
  void push(std::string_view id, bool ready) {
    entries_.push_back(entry{std::string(id), {}, ready});
    bytes_ += size_of(entries_.back());
  }
  std::size_t index(ticket t) const noexcept {
    assert(t >= first_ && t - first_ < entries_.size());
    return static_cast<std::size_t>(t - first_);
  }

  fifo<entry> entries_;
  ticket first_ = 0;  // the ticket of entries_.front()
  std::size_t bytes_ = 0;
};

}  // namespace broker
