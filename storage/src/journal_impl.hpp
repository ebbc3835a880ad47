#pragma once

// The journal's insides, shared by its three files: journal.cpp (opening, the public
// members, handing work to the threads), journal_writer.cpp (the writer thread: group commit,
// idempotency keys, removals, retention) and journal_reader.cpp (the reader threads: replay
// and stats). Nothing outside storage/src includes it.

#include "schema.hpp"
#include "sqlite.hpp"
#include "storage/header_codec.hpp"
#include "storage/journal.hpp"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <variant>

namespace storage::detail {

// Retention and purge delete at most this many rows per transaction, then let the appends
// that queued meanwhile commit: a purge of a million messages never stalls publishers.
constexpr std::uint64_t prune_chunk_rows = 1000;
// Retention jobs with nothing to delete cost one indexed read each; a step checks at most
// this many before appends get their turn again.
constexpr std::size_t prune_checks_per_step = 64;
constexpr std::int64_t no_cutoff = std::numeric_limits<std::int64_t>::min();

inline std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// SQLite integers are signed 64-bit; seqs and counts never get near 2^63.
inline std::int64_t to_sql(std::uint64_t v) {
  return static_cast<std::int64_t>(
      std::min<std::uint64_t>(v, std::numeric_limits<std::int64_t>::max()));
}
inline std::uint64_t from_sql(std::int64_t v) { return v < 0 ? 0 : static_cast<std::uint64_t>(v); }

inline status closed_status() {
  return {make_error_code(errc::closed), "the journal is shutting down"};
}

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

// What the writer knows of a destination. Only the writer thread changes entries, under
// heads_mu_ for last_seq (head_seq() reads it from any thread); entries are only ever erased
// when the batch that created them fails, so pointers to them stay valid.
struct dest_state {
  std::int64_t id = 0;           // destinations.id; 0 until its creating batch inserts it
  std::uint64_t last_seq = 0;    // last assigned; the last committed one between batches
  std::int64_t last_ts = 0;      // newest timestamp assigned; timestamps never go backwards
  std::uint64_t purged_seq = 0;  // mirrors of the destinations row, writer only
  std::int64_t purged_ms = 0;
  std::uint64_t batch = 0;  // the batch that last touched it, writer only
};
using dest_map = std::unordered_map<std::string, dest_state, string_hash, std::equal_to<>>;
using dest_entry = dest_map::value_type;

struct append_task {
  record r;
  journal::append_callback done;
  dest_entry* dest = nullptr;  // set when the batch assigns the seq
  // A retry of a stored idempotency key: nothing is written, r.seq and r.timestamp_ms are
  // the first append's. `first` names an append of the same batch that has the key (its
  // outcome is this one's), or is npos when the key was stored by an earlier batch.
  bool duplicate = false;
  std::size_t first = SIZE_MAX;
};
// An append, or a function run on the writer once every earlier task is done (flush, and
// the start of purge and enforce_retention).
using write_task = std::variant<append_task, std::function<void()>>;

// Several prune jobs that complete together: one retention pass, or one purge.
struct sweep {
  std::size_t pending = 0;
  std::uint64_t deleted = 0;
  status error;  // the first failure
  // Runs on the writer when the last job ends; empty for the periodic retention pass.
  std::function<void(std::uint64_t deleted, const status& error)> done;
};

// Deletes a destination's oldest messages, chunk by chunk: those with seq <= seq_target or
// ts < ts_cutoff. Both select a prefix of the stored seqs, so the job ends at the first
// chunk that deletes nothing.
struct prune_job {
  dest_entry* dest;
  std::uint64_t seq_target;  // 0: no count rule
  std::int64_t ts_cutoff;    // no_cutoff: no age rule
  std::shared_ptr<sweep> owner;
};

}  // namespace storage::detail

namespace storage {

using detail::append_task;
using detail::dest_entry;
using detail::dest_map;
using detail::dest_state;
using detail::prune_job;
using detail::reset_on_exit;
using detail::statement;
using detail::status;
using detail::sweep;
using detail::write_task;

struct journal::impl {
  // A read connection and its statements, used only by its own reader thread.
  struct reader {
    explicit reader(detail::db_ptr connection);

    detail::db_ptr db;  // declared first: statements are finalized before it closes
    statement begin, commit, find_dest, first_since, range_desc, list_dests, dest_stats,
        with_prefix;
  };
  // Null when the readers have stopped: the task then reports errc::closed.
  using read_task = std::function<void(reader*)>;

  explicit impl(journal_options o);
  ~impl();

  void shutdown();

  // Any thread.
  // False (task untouched) once shutdown began, or with `until_exit` (flush, remove: taken
  // while the writer drains at shutdown) once the writer has exited.
  bool submit_write(write_task& task, bool until_exit = false);
  void submit_read(read_task task);
  void remember_error(const status& st);
  // Synchronous members wait for the journal's threads; called from one of them they would
  // wait for themselves.
  bool on_journal_thread() const;
  void throw_if_failed(const status& st, const std::string& doing) const;

  // Writer thread.
  void writer_main();
  void run_front(std::deque<write_task>& tasks);
  void commit_batch(std::deque<write_task>& tasks, std::size_t n);
  status write_batch(std::deque<write_task>& tasks, std::size_t n);
  // Marks the appends whose idempotency key is stored, or taken by an earlier append of the
  // batch (append_task::duplicate).
  status find_duplicates(std::deque<write_task>& tasks, std::size_t n, std::int64_t now);
  status remove_messages(const std::vector<std::pair<std::string, std::uint64_t>>& messages);
  void rollback();
  bool retention_enabled() const;
  std::shared_ptr<sweep> start_sweep(std::function<void(std::uint64_t, const status&)> done);
  void queue_prune(dest_entry& dest, std::uint64_t seq_target, std::int64_t ts_cutoff,
                   const std::shared_ptr<sweep>& owner);
  void prune_step();
  std::pair<std::uint64_t, status> prune_chunk(const prune_job& job);
  void finish_job();
  void load_destinations();

  // Reader threads.
  void reader_main(reader& rd);
  replay_result run_replay(reader& rd, const replay_request& req);
  status read_history(reader& rd, const replay_request& req, replay_result& res);
  status read_stats(reader& rd, std::vector<destination_stats>& out);

  journal_options opts_;
  std::string path_;
  std::string epoch_;  // journal_info's, read once at open

  detail::db_ptr db_;  // the write connection; writer thread only once it started
  statement begin_, commit_, rollback_, insert_dest_, insert_message_, update_last_seq_,
      first_stored_, prune_, update_purged_, find_key_, insert_key_, expire_keys_, remove_one_;
  std::vector<std::unique_ptr<reader>> readers_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<write_task> queue_;  // guarded by queue_mu_
  // guarded by queue_mu_: when queue_ last went from empty to not (the commit window's start)
  std::chrono::steady_clock::time_point first_queued_;
  bool stopping_ = false;       // guarded by queue_mu_: appends are refused
  bool writer_exited_ = false;  // guarded by queue_mu_: flush runs inline

  std::mutex read_mu_;
  std::condition_variable read_cv_;
  std::deque<read_task> reads_;    // guarded by read_mu_
  bool readers_stopping_ = false;  // guarded by read_mu_

  mutable std::mutex heads_mu_;
  dest_map dests_;  // see dest_state

  std::atomic<std::uint64_t> batches_{0};
  mutable std::mutex error_mu_;
  std::string last_error_;  // guarded by error_mu_

  // Writer thread only.
  std::uint64_t batch_gen_ = 0;
  std::string header_buf_;
  struct undo {
    dest_entry* dest;
    bool created;
    std::uint64_t last_seq;
    std::int64_t last_ts;
  };
  std::vector<undo> undo_;  // the touched destinations of the current batch
  std::deque<prune_job> prune_jobs_;
  std::shared_ptr<sweep> periodic_;  // the running retention pass, if any
  std::chrono::steady_clock::time_point next_retention_;

  std::thread writer_;
  std::thread::id writer_id_;
  std::vector<std::thread> reader_threads_;
};

}  // namespace storage
