#pragma once

#include "engine/redis/stream_store.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace broker::redis {

// One destination's messages on one node, exactly once and in x-seq order, from what Redis
// pub/sub delivers at most once. An announcement past the next x-seq means some were missed
// (a reconnect, a subscriber buffer Redis dropped): it waits while the gap is read from the
// stream (`fill`), and what follows is delivered after the gap. An announcement at or below
// the last delivered x-seq is a duplicate and dropped. A new epoch (Redis lost the data and
// numbering started again) restarts the count. Messages trimmed away before they could be
// read are skipped: retention removed them for everyone.
//
// Not thread-safe: one worker's event loop drives it. A fill that completes after the feed is
// gone is ignored.
class ordered_feed {
 public:
  using deliver_fn = std::function<void(storage::record&& r, const std::string& epoch)>;
  // Reads up to `count` messages after x-seq `after` (stream_store::read_after).
  using fill_fn = std::function<void(std::uint64_t after, std::size_t count,
                                     std::function<void(stream_store::history)> done)>;

  // `delivered`: the x-seq up to which the subscribers already have the destination (the
  // head when the feed started), in `epoch` ("" when none yet).
  ordered_feed(std::uint64_t delivered, std::string epoch, deliver_fn deliver, fill_fn fill,
               std::size_t page = 1000)
      : last_(delivered),
        epoch_(std::move(epoch)),
        deliver_(std::move(deliver)),
        fill_(std::move(fill)),
        page_(page) {}

  void on_announcement(stream_store::announcement a);
  // The stream's head as read now (after a reconnect, when announcements may have been lost
  // with nothing after them to show it): reads up to it.
  void catch_up(std::uint64_t head, const std::string& epoch);

  std::uint64_t delivered() const noexcept { return last_; }
  const std::string& epoch() const noexcept { return epoch_; }
  bool filling() const noexcept { return filling_; }
  // Fills that failed (Redis unreachable): retried by the next announcement or catch_up().
  std::size_t failed_fills() const noexcept { return failed_fills_; }

 private:
  void adopt_epoch(const std::string& epoch);
  void fill_to(std::uint64_t target);
  void on_filled(std::size_t asked, stream_store::history h);
  void deliver_waiting();

  std::uint64_t last_;
  std::string epoch_;
  deliver_fn deliver_;
  fill_fn fill_;
  std::size_t page_;
  bool filling_ = false;
  std::uint64_t target_ = 0;                                     // fill up to here
  std::map<std::uint64_t, stream_store::announcement> waiting_;  // past a gap, by x-seq
  std::size_t failed_fills_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // fills hold it weakly
};

}  // namespace broker::redis
