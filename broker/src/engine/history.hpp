#pragma once

#include "broker/config.hpp"
#include "engine/journal_rules.hpp"
#include "routing/message.hpp"
#include "routing/router.hpp"
#include "storage/journal.hpp"

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker {

class queue_registry;
class worker_pool;
struct shared_metrics;

// The node-local SQLite journal behind local_engine: which destinations the config journals
// (rules), storing their messages, publishing them once stored, and reading history back for
// x-replay.
//
// Stored-before-delivered and in x-seq order: a journaled SEND goes to the journal, and only
// its writer thread publishes, in commit order, one batch per commit (router::publish_batch).
// So every subscriber sees a destination's messages in x-seq order, whichever connection
// published them. Thread-safe.
//
// Durable queues are kept in the same journal: a SEND to one is stored (enqueue), then put in
// its queue; an acknowledged message is removed (remove); at start the messages still stored
// are handed back (queued_at_start).
class history {
 public:
  // Opens <data_dir>/stompd.db; throws storage::journal_error when it can't.
  // Receipts are posted to the workers through `workers`, committed messages published
  // through `topics` or put in their queue in `queues`; they count themselves in `held`.
  history(const config& settings, worker_pool& workers, router& topics, queue_registry& queues,
          held_bytes& held, shared_metrics& metrics);
  ~history();

  journal_rules::policy policy_for(std::string_view destination) const {
    return rules_.policy_for(destination);
  }

  using header_list = std::vector<std::pair<std::string, std::string>>;
  // Stores a message and then publishes it. `done` runs on worker `w`'s thread once the
  // message is stored (or failed), in one posted task with the rest of its commit's
  // completions for that worker, before the commit's deliveries are posted. False, and
  // `done` never runs, when the journal does not know `destination` yet and already keeps
  // limits.max_journaled_destinations (engine::append).
  bool append(std::size_t w, std::string destination, header_list headers, std::string body,
              std::string idempotency_key, std::function<void(const storage::append_result&)> done);
  // Stores a message of a durable queue, then puts it in the queue, into the place the
  // caller reserved there (queue::reserve). `done` as for append.
  void enqueue(std::size_t w, std::string destination, header_list headers, std::string body,
               std::function<void(const storage::append_result&)> done);
  // Removes an acknowledged durable-queue message, soon, in one transaction with the others
  // of the moment.
  void remove(std::string destination, std::uint64_t seq);
  // The durable queues' messages stored when the journal opened (none acknowledged).
  std::vector<storage::record> queued_at_start() const;
  // `done` runs (writer thread) once every earlier append completed.
  void flush(std::function<void()> done);
  // Reads history; `done` runs on a reader thread.
  void replay(storage::replay_request request, std::function<void(storage::replay_result&&)> done);

  storage::journal& journal() noexcept { return *journal_; }

 private:
  // Whether an append to `destination` may go to the journal, counting it as in flight when
  // the journal does not know it yet (admitted_new must then be called once it completed).
  // Exact under concurrent appends from every worker: destinations the journal knows plus
  // those whose first append is in flight never pass max_destinations_.
  bool admit(std::string_view destination, bool& is_new);
  void admitted_new(const std::string& destination);

  // An exclusive flock on <data_dir>/stompd.lock, held for the journal's lifetime: a second
  // stompd on the same data directory would interleave sequence numbers with ours.
  struct lock_file {
    explicit lock_file(const std::filesystem::path& path);
    ~lock_file();
    lock_file(const lock_file&) = delete;
    lock_file& operator=(const lock_file&) = delete;
    int fd = -1;
  };

  worker_pool& workers_;
  router& topics_;
  queue_registry& queues_;
  held_bytes& held_;
  lock_file lock_;
  journal_rules rules_;
  const std::size_t max_destinations_;  // limits.max_journaled_destinations
  // Destinations not yet known to the journal with appends in flight, and how many; counted
  // against max_destinations_ until those appends complete. Any thread, under new_mutex_.
  std::mutex new_mutex_;
  string_map<std::size_t> new_in_flight_;
  struct completion {
    std::function<void(const storage::append_result&)> done;
    storage::append_result result;
  };
  // Writer thread only: what a commit hands back, until its end (on_batch_done).
  std::vector<std::vector<completion>> completions_;  // per worker
  std::vector<message_ptr> batch_;                    // committed, not yet published
  std::vector<message_ptr> queued_;                   // committed, not yet in their queues
  // Acknowledged durable-queue messages waiting for their removal, under remove_mutex_.
  std::mutex remove_mutex_;
  std::vector<std::pair<std::string, std::uint64_t>> to_remove_;
  std::unique_ptr<storage::journal> journal_;
};

}  // namespace broker
