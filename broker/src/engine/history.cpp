#include "engine/history.hpp"

#include "broker/log.hpp"
#include "metrics.hpp"
#include "net/event_loop.hpp"
#include "routing/publish.hpp"
#include "routing/queue.hpp"
#include "routing/router.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace broker {

history::lock_file::lock_file(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw storage::journal_error(
        make_error_code(storage::errc::io_error),
        fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    throw storage::journal_error(
        make_error_code(storage::errc::io_error),
        fmt::format("{} is locked: another stompd is using the data directory {}", path.string(),
                    path.parent_path().string()));
  }
}

history::lock_file::~lock_file() {
  if (fd >= 0) ::close(fd);  // releases the lock
}

history::history(const config& settings, worker_pool& workers, router& topics,
                 queue_registry& queues, held_bytes& held, shared_metrics& metrics)
    : workers_(workers),
      topics_(topics),
      queues_(queues),
      held_(held),
      lock_(settings.data_dir / "stompd.lock"),
      rules_(settings.journal),
      max_destinations_(settings.limits.max_journaled_destinations) {
  storage::journal_options o;
  o.path = settings.data_dir / "stompd.db";
  o.mode = settings.journal.durability == config::journal_settings::durability_mode::power
               ? storage::durability::power
               : storage::durability::process;
  o.retention_interval = settings.journal.retention_interval;
  o.idempotency_window = settings.journal.idempotency_window;
  o.commit_window = settings.journal.commit_window;
  o.retention_for = [this](std::string_view d) {
    // A queue's messages are removed when acknowledged, never by age or count.
    return d.starts_with("/queue/") ? storage::retention{} : policy_for(d).retention;
  };
  o.on_commit = [&metrics](std::size_t appends, std::chrono::nanoseconds took) {
    metrics.journal_batch_size.observe(static_cast<double>(appends));
    metrics.journal_commit_seconds.observe(std::chrono::duration<double>(took).count());
  };
  o.on_batch_done = [this] {
    // One task per worker for all of the commit's receipts, instead of one per message.
    for (std::size_t w = 0; w < completions_.size(); ++w) {
      if (completions_[w].empty()) continue;
      workers_.post(w, [done = std::exchange(completions_[w], {})] {
        for (const auto& c : done) c.done(c.result);
      });
    }
    for (auto& m : std::exchange(queued_, {})) {
      // Stored, so accepted: into its queue whatever its bound (queue::supply). Only a queue
      // that can't be made (limits.max_queues) leaves it in the journal, for the next start.
      auto d = m->destination;
      if (!queues_.with_queue(d, [&](queue& q) { q.supply({{std::move(m), false}}, 1); }))
        log_warn(
            "queue {} cannot be made (limits.max_queues): a stored message waits for the "
            "next start",
            d);
    }
    if (batch_.empty()) return;
    topics_.publish_batch(batch_);
    batch_.clear();
  };
  journal_ = std::make_unique<storage::journal>(std::move(o));
}

history::~history() = default;

bool history::admit(std::string_view destination, bool& is_new) {
  is_new = false;
  // Nearly always: a destination with history, one lookup under the journal's lock.
  if (journal_->head_seq(destination) != 0) return true;
  std::lock_guard lock(new_mutex_);
  if (auto it = new_in_flight_.find(destination); it != new_in_flight_.end()) {
    ++it->second;
    is_new = true;
    return true;
  }
  // A destination whose first batch is being committed is counted both here and by the
  // journal until its appends complete: a refusal at the bound may come a moment early,
  // never one past it.
  if (journal_->destination_count() + new_in_flight_.size() >= max_destinations_) return false;
  new_in_flight_.emplace(std::string(destination), 1);
  is_new = true;
  return true;
}

void history::admitted_new(const std::string& destination) {
  std::lock_guard lock(new_mutex_);
  auto it = new_in_flight_.find(destination);
  if (it != new_in_flight_.end() && --it->second == 0) new_in_flight_.erase(it);
}

bool history::append(std::size_t w, std::string destination, header_list headers, std::string body,
                     std::string idempotency_key,
                     std::function<void(const storage::append_result&)> done) {
  bool is_new = false;
  if (!admit(destination, is_new)) return false;
  storage::record r;
  r.destination = std::move(destination);
  r.headers = std::move(headers);
  r.body = std::move(body);
  r.idempotency_key = std::move(idempotency_key);
  journal_->append(std::move(r), [this, w, is_new, done = std::move(done)](
                                     const storage::append_result& result,
                                     const storage::record& stored) mutable {
    // The journal knows the destination now (or the append failed): it no longer counts
    // as in flight.
    if (is_new) admitted_new(stored.destination);
    // Handed to the workers with the rest of the batch in on_batch_done, after every
    // callback of the batch ran: receipts and deliveries both follow the commit.
    // A retry of a stored idempotency key was delivered the first time.
    if (!result.ec && !result.duplicate)
      batch_.push_back(make_stored_message(held_, stored, result.epoch, false));
    if (w >= completions_.size()) completions_.resize(w + 1);
    completions_[w].push_back({std::move(done), result});
  });
  return true;
}

void history::enqueue(std::size_t w, std::string destination, header_list headers, std::string body,
                      std::function<void(const storage::append_result&)> done) {
  storage::record r;
  r.destination = std::move(destination);
  r.headers = std::move(headers);
  r.body = std::move(body);
  journal_->append(std::move(r),
                   [this, w, done = std::move(done)](const storage::append_result& result,
                                                     const storage::record& stored) mutable {
                     if (!result.ec)
                       queued_.push_back(make_queued_message(held_, stored));
                     else  // the place local_engine reserved for it
                       queues_.with_queue(stored.destination, [](queue& q) { q.unreserve(); });
                     if (w >= completions_.size()) completions_.resize(w + 1);
                     storage::append_result answer = result;
                     answer.seq = 0;  // a queue's message has no x-seq for the sender
                     if (!result.ec) answer.message_id = fmt::format("{}", result.seq);
                     completions_[w].push_back({std::move(done), std::move(answer)});
                   });
}

void history::remove(std::string destination, std::uint64_t seq) {
  {
    std::lock_guard lock(remove_mutex_);
    to_remove_.emplace_back(std::move(destination), seq);
    if (to_remove_.size() > 1) return;  // a removal is on its way and takes this one too
  }
  // On the writer after what is queued there now: the acknowledgements that arrive meanwhile
  // go in the same transaction.
  journal_->flush([this] {
    std::vector<std::pair<std::string, std::uint64_t>> batch;
    {
      std::lock_guard lock(remove_mutex_);
      batch.swap(to_remove_);
    }
    journal_->remove(std::move(batch), [](std::error_code ec) {
      // Still stored: delivered again after a restart (at least once), never lost.
      if (ec) log_warn("journal: removing acknowledged queue messages failed: {}", ec.message());
    });
  });
}

std::vector<storage::record> history::queued_at_start() const {
  return journal_->stored_with_prefix("/queue/");
}

void history::flush(std::function<void()> done) { journal_->flush(std::move(done)); }

void history::replay(storage::replay_request request,
                     std::function<void(storage::replay_result&&)> done) {
  journal_->replay(std::move(request), std::move(done));
}

}  // namespace broker
