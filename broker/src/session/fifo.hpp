#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <utility>
#include <vector>

namespace broker {

// A FIFO on one vector whose capacity survives being drained: a connection's outbound queue
// empties after nearly every write, so in steady state pushing a frame allocates nothing
// (std::deque allocates a node every few elements). Popped slots are reset at once so what
// they held (a shared message) is released in order. Not thread-safe.
template <typename T>
class fifo {
 public:
  bool empty() const noexcept { return head_ == items_.size(); }
  std::size_t size() const noexcept { return items_.size() - head_; }
  T& operator[](std::size_t i) noexcept { return items_[head_ + i]; }
  const T& operator[](std::size_t i) const noexcept { return items_[head_ + i]; }
  T& front() noexcept { return items_[head_]; }
  T& back() noexcept { return items_.back(); }

  void push_back(T&& value) {
    // A queue that never drains (a slow reader) would otherwise keep its consumed prefix.
    if (head_ > 0 && head_ >= items_.size() / 2 && items_.size() == items_.capacity()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    items_.push_back(std::move(value));
  }
  void push_back(const T& value) { push_back(T(value)); }
  void pop_front() noexcept {
    assert(!empty());
    items_[head_] = T{};
    if (++head_ == items_.size()) clear();
  }
  void pop_back() noexcept {
    assert(!empty());
    items_.pop_back();
    if (empty()) clear();
  }
  // Removes the elements from index `first` on for which pred(element) holds, keeping the
  // order of the rest. O(size): for rare events (an UNSUBSCRIBE), not per element.
  template <typename Pred>
  void erase_if_from(std::size_t first, Pred pred) {
    auto begin = items_.begin() + static_cast<std::ptrdiff_t>(head_ + first);
    items_.erase(std::remove_if(begin, items_.end(), pred), items_.end());
    if (empty()) clear();
  }
  void clear() noexcept {
    items_.clear();
    head_ = 0;
  }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace broker
