#include "engine/redis/ordered_feed.hpp"

#include <algorithm>
#include <utility>

namespace broker::redis {

void ordered_feed::adopt_epoch(const std::string& epoch) {
  if (epoch.empty() || epoch == epoch_) return;
  if (!epoch_.empty()) {  // Redis lost the data: numbering started again from 1
    last_ = 0;
    target_ = 0;
    std::erase_if(waiting_, [&](const auto& w) { return w.second.epoch != epoch; });
  }
  epoch_ = epoch;
}

void ordered_feed::on_announcement(stream_store::announcement a) {
  adopt_epoch(a.epoch);
  const auto seq = a.record.seq;
  if (seq <= last_) return;  // a duplicate, or already read from the stream
  if (filling_ || seq != last_ + 1) {
    waiting_.emplace(seq, std::move(a));
    fill_to(seq - 1);
    return;
  }
  last_ = seq;
  deliver_(std::move(a.record), epoch_);
}

void ordered_feed::catch_up(std::uint64_t head, const std::string& epoch) {
  adopt_epoch(epoch);
  fill_to(head);
}

void ordered_feed::fill_to(std::uint64_t target) {
  target_ = std::max(target_, target);
  if (filling_ || target_ <= last_) return;
  filling_ = true;
  const auto count = static_cast<std::size_t>(std::min<std::uint64_t>(target_ - last_, page_));
  fill_(last_, count, [alive = std::weak_ptr<bool>(alive_), this, count](stream_store::history h) {
    if (alive.expired()) return;
    on_filled(count, std::move(h));
  });
}

void ordered_feed::on_filled(std::size_t asked, stream_store::history h) {
  filling_ = false;
  if (h.ec) {
    ++failed_fills_;  // the next announcement or catch_up() tries again
    return;
  }
  if (!h.epoch.empty() && h.epoch != epoch_) {  // the data was lost meanwhile
    adopt_epoch(h.epoch);
    return fill_to(h.head_seq);
  }
  // A new epoch that began past an old epoch's entries begins there.
  last_ = std::max(last_, h.epoch_start - 1);
  const bool reached_the_end = h.records.size() < asked;
  for (auto& r : h.records) {
    if (r.seq <= last_) continue;
    last_ = r.seq;  // past a hole here, retention trimmed what was in it
    deliver_(std::move(r), epoch_);
  }
  // Read to the stream's end: what it did not return up to the target is not stored any
  // more (trimmed before we could read it), so it is skipped rather than asked for again.
  // What waits here is kept even if the stream has trimmed it since.
  if (reached_the_end) {
    auto skip_to = std::min(target_, h.head_seq);
    if (!waiting_.empty()) skip_to = std::min(skip_to, waiting_.begin()->first - 1);
    last_ = std::max(last_, skip_to);
  }
  deliver_waiting();
  if (!waiting_.empty()) return fill_to(waiting_.begin()->first - 1);
  fill_to(target_);
}

void ordered_feed::deliver_waiting() {
  while (!waiting_.empty()) {
    auto it = waiting_.begin();
    if (it->first > last_ + 1) return;
    auto a = std::move(it->second);
    waiting_.erase(it);
    if (a.record.seq <= last_) continue;
    last_ = a.record.seq;
    deliver_(std::move(a.record), epoch_);
  }
}

}  // namespace broker::redis
