#include "storage/journal.hpp"

#include "schema.hpp"
#include "sqlite.hpp"
#include "storage/header_codec.hpp"

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

namespace storage {
namespace {

using detail::reset_on_exit;
using detail::statement;
using detail::status;

// Retention and purge delete at most this many rows per transaction, then let the appends
// that queued meanwhile commit: a purge of a million messages never stalls publishers.
constexpr std::uint64_t prune_chunk_rows = 1000;
// Retention jobs with nothing to delete cost one indexed read each; a step checks at most
// this many before appends get their turn again.
constexpr std::size_t prune_checks_per_step = 64;
constexpr std::int64_t no_cutoff = std::numeric_limits<std::int64_t>::min();

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// SQLite integers are signed 64-bit; seqs and counts never get near 2^63.
std::int64_t to_sql(std::uint64_t v) {
  return static_cast<std::int64_t>(
      std::min<std::uint64_t>(v, std::numeric_limits<std::int64_t>::max()));
}
std::uint64_t from_sql(std::int64_t v) { return v < 0 ? 0 : static_cast<std::uint64_t>(v); }

status closed_status() { return {make_error_code(errc::closed), "the journal is shutting down"}; }

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

}  // namespace

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
  bool submit_write(write_task& task);  // false (task untouched) once shutdown began
  // A function for the writer that is taken until the writer has exited, shutdown included
  // (flush, remove); false when it was not (then `task` is untouched).
  bool submit_late(std::function<void()> task);
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
  bool stopping_ = false;         // guarded by queue_mu_: appends are refused
  bool writer_exited_ = false;    // guarded by queue_mu_: flush runs inline

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

journal::impl::reader::reader(detail::db_ptr connection)
    : db(std::move(connection)),
      begin(db.get(), "BEGIN"),
      commit(db.get(), "COMMIT"),
      find_dest(db.get(),
                "SELECT id, last_seq, purged_seq, purged_ms FROM destinations WHERE name = ?1"),
      // (dest_id, ts) with the rowid as tie-break is one index, so this is a single seek.
      first_since(db.get(),
                  "SELECT seq FROM messages WHERE dest_id = ?1 AND ts >= ?2 ORDER BY ts, id "
                  "LIMIT 1"),
      range_desc(db.get(),
                 "SELECT seq, ts, headers, body FROM messages WHERE dest_id = ?1 AND seq "
                 "BETWEEN ?2 AND ?3 ORDER BY seq DESC LIMIT ?4"),
      list_dests(db.get(), "SELECT id, name, last_seq FROM destinations ORDER BY name"),
      dest_stats(db.get(), "SELECT count(*), min(ts), max(ts) FROM messages WHERE dest_id = ?1"),
      with_prefix(db.get(),
                  "SELECT d.name, m.seq, m.ts, m.headers, m.body FROM destinations d JOIN "
                  "messages m ON m.dest_id = d.id WHERE substr(d.name, 1, length(?1)) = ?1 "
                  "ORDER BY d.name, m.seq") {}

journal::impl::impl(journal_options o) : opts_(std::move(o)), path_(opts_.path.string()) {
  opts_.max_batch = std::max<std::size_t>(opts_.max_batch, 1);
  opts_.readers = std::max<std::size_t>(opts_.readers, 1);

  db_ = detail::open_writer(opts_.path, opts_.mode, opts_.max_file_bytes);
  sqlite3* db = db_.get();
  begin_ = statement(db, "BEGIN IMMEDIATE");
  commit_ = statement(db, "COMMIT");
  rollback_ = statement(db, "ROLLBACK");
  insert_dest_ = statement(db, "INSERT INTO destinations (name, last_seq) VALUES (?1, 0)");
  insert_message_ = statement(
      db, "INSERT INTO messages (dest_id, seq, ts, headers, body) VALUES (?1, ?2, ?3, ?4, ?5)");
  update_last_seq_ = statement(db, "UPDATE destinations SET last_seq = ?1 WHERE id = ?2");
  first_stored_ = statement(db,
                            "SELECT seq, ts FROM messages WHERE dest_id = ?1 ORDER BY seq "
                            "LIMIT 1");
  prune_ = statement(db,
                     "DELETE FROM messages WHERE dest_id = ?1 AND seq BETWEEN ?2 AND ?3 AND "
                     "(seq <= ?4 OR ts < ?5) RETURNING seq, ts");
  find_key_ = statement(db,
                        "SELECT seq, ts FROM idempotency WHERE dest_id = ?1 AND key = ?2 AND "
                        "expires_ms > ?3");
  insert_key_ = statement(db,
                          "INSERT OR REPLACE INTO idempotency (dest_id, key, seq, ts, expires_ms) "
                          "VALUES (?1, ?2, ?3, ?4, ?5)");
  expire_keys_ = statement(db,
                           "DELETE FROM idempotency WHERE (dest_id, key) IN (SELECT dest_id, key "
                           "FROM idempotency WHERE expires_ms <= ?1 ORDER BY expires_ms LIMIT ?2)");
  remove_one_ = statement(db, "DELETE FROM messages WHERE dest_id = ?1 AND seq = ?2");
  update_purged_ = statement(db,
                             "UPDATE destinations SET purged_seq = max(purged_seq, ?1), "
                             "purged_ms = max(purged_ms, ?2) WHERE id = ?3");
  load_destinations();
  {
    statement epoch(db, "SELECT value FROM journal_info WHERE name = 'epoch'");
    if (epoch.step() != SQLITE_ROW)
      throw journal_error(make_error_code(errc::corrupt), "journal " + path_ + " has no epoch");
    epoch_ = std::string(epoch.column_blob(0));
  }

  for (std::size_t i = 0; i < opts_.readers; ++i) {
    readers_.push_back(std::make_unique<reader>(detail::open_reader(opts_.path)));
  }

  next_retention_ = std::chrono::steady_clock::now() + opts_.retention_interval;
  try {
    writer_ = std::thread([this] { writer_main(); });
    writer_id_ = writer_.get_id();
    for (auto& rd : readers_) {
      reader_threads_.emplace_back([this, r = rd.get()] { reader_main(*r); });
    }
  } catch (...) {
    shutdown();  // a thread that did start must be joined before the members go
    throw;
  }
}

journal::impl::~impl() { shutdown(); }

void journal::impl::load_destinations() {
  statement load(db_.get(),
                 "SELECT d.id, d.name, d.last_seq, d.purged_seq, d.purged_ms, "
                 "(SELECT max(ts) FROM messages WHERE dest_id = d.id) FROM destinations AS d");
  int rc;
  while ((rc = load.step()) == SQLITE_ROW) {
    dest_state d;
    d.id = load.column_int64(0);
    d.last_seq = from_sql(load.column_int64(2));
    d.purged_seq = from_sql(load.column_int64(3));
    d.purged_ms = load.column_int64(4);
    d.last_ts = std::max(d.purged_ms, load.column_int64(5));
    dests_.emplace(load.column_blob(1), d);
  }
  if (rc != SQLITE_DONE) {
    const auto st = detail::failure(db_.get(), rc, "loading destinations");
    throw journal_error(st.ec, "cannot open journal " + path_ + ": " + st.detail);
  }
}

void journal::impl::shutdown() {
  {
    std::lock_guard lk(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lk(read_mu_);
    readers_stopping_ = true;
  }
  read_cv_.notify_all();
  for (auto& t : reader_threads_) {
    if (t.joinable()) t.join();
  }
}

bool journal::impl::submit_write(write_task& task) {
  std::unique_lock lk(queue_mu_);
  if (stopping_) return false;
  const bool was_empty = queue_.empty();
  queue_.push_back(std::move(task));
  lk.unlock();
  // The writer only sleeps on an empty queue, so only the first task needs to wake it: one
  // futex call per batch instead of one per append.
  if (was_empty) queue_cv_.notify_one();
  return true;
}

void journal::impl::submit_read(read_task task) {
  {
    std::lock_guard lk(read_mu_);
    if (!readers_stopping_) {
      reads_.push_back(std::move(task));
      read_cv_.notify_one();
      return;
    }
  }
  task(nullptr);
}

void journal::impl::remember_error(const status& st) {
  std::lock_guard lk(error_mu_);
  last_error_ = "journal " + path_ + ": " + st.detail;
}

bool journal::impl::on_journal_thread() const {
  const auto self = std::this_thread::get_id();
  return self == writer_id_ ||
         std::any_of(reader_threads_.begin(), reader_threads_.end(),
                     [self](const std::thread& t) { return t.get_id() == self; });
}

void journal::impl::throw_if_failed(const status& st, const std::string& doing) const {
  if (!st.failed()) return;
  throw journal_error(st.ec, "journal " + path_ + ": " + doing + ": " + st.detail);
}

// --- writer thread ---------------------------------------------------------------------

bool journal::impl::retention_enabled() const {
  return opts_.retention_for && opts_.retention_interval.count() > 0;
}

void journal::impl::writer_main() {
  std::deque<write_task> tasks;  // taken from queue_ in one swap; appends made meanwhile wait
  bool draining = false;
  for (;;) {
    if (tasks.empty()) {
      std::unique_lock lk(queue_mu_);
      const auto ready = [this] { return !queue_.empty() || stopping_; };
      if (!ready() && prune_jobs_.empty()) {
        if (retention_enabled()) {
          queue_cv_.wait_until(lk, next_retention_, ready);
        } else {
          queue_cv_.wait(lk, ready);
        }
      }
      draining = stopping_;
      if (queue_.empty() && stopping_) {
        writer_exited_ = true;
        break;
      }
      tasks.swap(queue_);
    }
    if (!tasks.empty()) run_front(tasks);
    if (draining) continue;  // shutdown: commit what was appended, skip retention
    if (retention_enabled() && std::chrono::steady_clock::now() >= next_retention_) {
      next_retention_ = std::chrono::steady_clock::now() + opts_.retention_interval;
      if (!periodic_ || periodic_->pending == 0) periodic_ = start_sweep(nullptr);
    }
    if (!prune_jobs_.empty()) prune_step();
  }
  // Only retention passes can be left (purge and enforce_retention callers are still inside
  // the journal's members, so the destructor can't have started): drop them.
  while (!prune_jobs_.empty()) {
    prune_jobs_.front().owner->error = closed_status();
    finish_job();
  }
}

void journal::impl::run_front(std::deque<write_task>& tasks) {
  if (std::holds_alternative<append_task>(tasks.front())) {
    std::size_t n = 1;
    while (n < tasks.size() && n < opts_.max_batch &&
           std::holds_alternative<append_task>(tasks[n])) {
      ++n;
    }
    commit_batch(tasks, n);
    tasks.erase(tasks.begin(), tasks.begin() + static_cast<std::ptrdiff_t>(n));
  } else {
    auto fn = std::move(std::get<std::function<void()>>(tasks.front()));
    tasks.pop_front();
    if (fn) fn();
  }
}

void journal::impl::commit_batch(std::deque<write_task>& tasks, std::size_t n) {
  // Sequences are assigned here, in append order, and published to head_seq() at once; a
  // failed transaction takes them back, so the next commit continues after the last
  // committed seq and no gap ever appears.
  const auto gen = ++batch_gen_;
  const auto now = now_ms();
  undo_.clear();
  if (status st = find_duplicates(tasks, n, now); st.failed()) {
    remember_error(st);
    for (std::size_t i = 0; i < n; ++i) {
      auto& a = std::get<append_task>(tasks[i]);
      if (a.done) a.done(append_result{st.ec, 0, 0, epoch_, false, {}}, a.r);
    }
    if (opts_.on_batch_done) opts_.on_batch_done();
    return;
  }
  {
    std::lock_guard lk(heads_mu_);
    for (std::size_t i = 0; i < n; ++i) {
      auto& a = std::get<append_task>(tasks[i]);
      if (a.duplicate) continue;
      auto it = dests_.find(a.r.destination);
      bool created = false;
      if (it == dests_.end()) {
        it = dests_.emplace(a.r.destination, dest_state{}).first;
        created = true;
      }
      auto& d = it->second;
      if (d.batch != gen) {
        undo_.push_back({&*it, created, d.last_seq, d.last_ts});
        d.batch = gen;
      }
      a.r.seq = ++d.last_seq;
      d.last_ts = std::max(d.last_ts, now);
      a.r.timestamp_ms = d.last_ts;
      a.dest = &*it;
    }
  }

  const auto started = std::chrono::steady_clock::now();
  const status st = write_batch(tasks, n);
  const auto commit_time = std::chrono::steady_clock::now() - started;
  if (st.failed()) {
    rollback();
    remember_error(st);
    std::lock_guard lk(heads_mu_);
    for (const auto& u : undo_) {
      if (u.created) {
        dests_.erase(dests_.find(u.dest->first));
      } else {
        u.dest->second.last_seq = u.last_seq;
        u.dest->second.last_ts = u.last_ts;
      }
    }
  } else {
    batches_.fetch_add(1, std::memory_order_relaxed);
  }

  const auto ec = st.ec;
  for (std::size_t i = 0; i < n; ++i) {
    auto& a = std::get<append_task>(tasks[i]);
    if (a.first != SIZE_MAX) {  // the outcome of the batch's first append with the key
      const auto& f = std::get<append_task>(tasks[a.first]);
      a.r.seq = f.r.seq;
      a.r.timestamp_ms = f.r.timestamp_ms;
    }
    if (ec) a.r.seq = 0, a.r.timestamp_ms = 0;
    a.dest = nullptr;  // may be gone after a rollback
    if (a.done)
      a.done(append_result{ec, a.r.seq, a.r.timestamp_ms, epoch_, a.duplicate && !ec, {}}, a.r);
  }
  if (opts_.on_batch_done) opts_.on_batch_done();
  if (opts_.on_commit && !ec)
    opts_.on_commit(n, std::chrono::duration_cast<std::chrono::nanoseconds>(commit_time));
}

status journal::impl::write_batch(std::deque<write_task>& tasks, std::size_t n) {
  sqlite3* db = db_.get();
  if (int rc = begin_.run(); rc != SQLITE_OK) return detail::failure(db, rc, "begin");
  for (const auto& u : undo_) {
    if (!u.created) continue;
    insert_dest_.bind_text(1, u.dest->first);
    if (int rc = insert_dest_.run(); rc != SQLITE_OK) {
      return detail::failure(db, rc, "insert destination");
    }
    u.dest->second.id = sqlite3_last_insert_rowid(db);
  }
  std::int64_t keys = 0;
  const auto expires = now_ms() + opts_.idempotency_window.count();
  for (std::size_t i = 0; i < n; ++i) {
    const auto& a = std::get<append_task>(tasks[i]);
    if (a.duplicate) continue;
    if (!a.r.idempotency_key.empty()) {
      ++keys;
      insert_key_.bind(1, a.dest->second.id);
      int rc = insert_key_.bind_blob(2, a.r.idempotency_key);
      insert_key_.bind(3, to_sql(a.r.seq));
      insert_key_.bind(4, a.r.timestamp_ms);
      insert_key_.bind(5, expires);
      if (rc == SQLITE_OK) rc = insert_key_.run();
      if (rc != SQLITE_OK) return detail::failure(db, rc, "insert idempotency key");
    }
    encode_headers(a.r.headers, header_buf_);
    insert_message_.bind(1, a.dest->second.id);
    insert_message_.bind(2, to_sql(a.r.seq));
    insert_message_.bind(3, a.r.timestamp_ms);
    int rc = insert_message_.bind_blob(4, header_buf_);
    if (rc == SQLITE_OK) rc = insert_message_.bind_blob(5, a.r.body);
    if (rc == SQLITE_OK) rc = insert_message_.run();
    if (rc != SQLITE_OK) return detail::failure(db, rc, "insert message");
  }
  for (const auto& u : undo_) {
    update_last_seq_.bind(1, to_sql(u.dest->second.last_seq));
    update_last_seq_.bind(2, u.dest->second.id);
    if (int rc = update_last_seq_.run(); rc != SQLITE_OK) {
      return detail::failure(db, rc, "update last_seq");
    }
  }
  if (keys > 0) {
    // Two expired keys go for every new one: the table stays near what the window holds.
    expire_keys_.bind(1, now_ms());
    expire_keys_.bind(2, 2 * keys);
    if (int rc = expire_keys_.run(); rc != SQLITE_OK)
      return detail::failure(db, rc, "expire idempotency keys");
  }
  if (int rc = commit_.run(); rc != SQLITE_OK) return detail::failure(db, rc, "commit");
  return {};
}

status journal::impl::find_duplicates(std::deque<write_task>& tasks, std::size_t n,
                                      std::int64_t now) {
  // Keys within the batch first (the first append with a key stores it), then those an
  // earlier batch stored (a destination the writer has no id for has none stored).
  std::unordered_map<std::string, std::size_t> firsts;
  for (std::size_t i = 0; i < n; ++i) {
    auto& a = std::get<append_task>(tasks[i]);
    if (a.r.idempotency_key.empty()) continue;
    auto [it, inserted] = firsts.try_emplace(a.r.destination + '\n' + a.r.idempotency_key, i);
    if (!inserted) {
      a.duplicate = true;
      a.first = it->second;
      continue;
    }
    auto d = dests_.find(a.r.destination);
    if (d == dests_.end() || d->second.id == 0) continue;
    reset_on_exit reset(find_key_);
    find_key_.bind(1, d->second.id);
    find_key_.bind_blob(2, a.r.idempotency_key);
    find_key_.bind(3, now);
    const int rc = find_key_.step();
    if (rc == SQLITE_ROW) {
      a.duplicate = true;
      a.r.seq = from_sql(find_key_.column_int64(0));
      a.r.timestamp_ms = find_key_.column_int64(1);
    } else if (rc != SQLITE_DONE) {
      return detail::failure(db_.get(), rc, "find idempotency key");
    }
  }
  return {};
}

status journal::impl::remove_messages(
    const std::vector<std::pair<std::string, std::uint64_t>>& messages) {
  sqlite3* db = db_.get();
  if (int rc = begin_.run(); rc != SQLITE_OK) return detail::failure(db, rc, "begin remove");
  for (const auto& [destination, seq] : messages) {
    const auto it = dests_.find(destination);
    if (it == dests_.end() || it->second.id == 0) continue;
    remove_one_.bind(1, it->second.id);
    remove_one_.bind(2, to_sql(seq));
    if (int rc = remove_one_.run(); rc != SQLITE_OK) {
      rollback();
      return detail::failure(db, rc, "remove message");
    }
  }
  if (int rc = commit_.run(); rc != SQLITE_OK) {
    rollback();
    return detail::failure(db, rc, "commit remove");
  }
  return {};
}

void journal::impl::rollback() {
  // After SQLITE_FULL or an I/O error SQLite may or may not have rolled back already.
  if (sqlite3_get_autocommit(db_.get()) == 0) rollback_.run();
}

std::shared_ptr<sweep> journal::impl::start_sweep(
    std::function<void(std::uint64_t, const status&)> done) {
  auto sw = std::make_shared<sweep>();
  sw->done = std::move(done);
  sw->pending = 1;  // held until every job is queued
  const auto now = now_ms();
  for (auto& entry : dests_) {  // the writer is the only thread changing dests_
    const auto& d = entry.second;
    if (d.purged_seq >= d.last_seq) continue;  // nothing stored
    const retention r = opts_.retention_for(entry.first);
    const std::uint64_t seq_target =
        r.max_messages > 0 && d.last_seq > r.max_messages ? d.last_seq - r.max_messages : 0;
    const std::int64_t cutoff = r.max_age.count() > 0 ? now - r.max_age.count() : no_cutoff;
    // Stored timestamps are >= purged_ms, so a cutoff at or below it deletes nothing.
    const bool age_due = cutoff != no_cutoff && (d.purged_seq == 0 || cutoff > d.purged_ms);
    if (seq_target > d.purged_seq || age_due) queue_prune(entry, seq_target, cutoff, sw);
  }
  if (--sw->pending == 0 && sw->done) sw->done(0, {});
  return sw;
}

void journal::impl::queue_prune(dest_entry& dest, std::uint64_t seq_target, std::int64_t ts_cutoff,
                                const std::shared_ptr<sweep>& owner) {
  ++owner->pending;
  prune_jobs_.push_back({&dest, seq_target, ts_cutoff, owner});
}

void journal::impl::finish_job() {
  const auto owner = std::move(prune_jobs_.front().owner);
  prune_jobs_.pop_front();
  if (--owner->pending == 0 && owner->done) owner->done(owner->deleted, owner->error);
}

void journal::impl::prune_step() {
  for (std::size_t checks = 0; checks < prune_checks_per_step && !prune_jobs_.empty(); ++checks) {
    const auto [deleted, st] = prune_chunk(prune_jobs_.front());
    auto& owner = *prune_jobs_.front().owner;
    owner.deleted += deleted;
    if (st.failed()) {
      remember_error(st);
      if (!owner.error.failed()) owner.error = st;
    }
    if (st.failed() || deleted == 0) finish_job();
    if (deleted > 0) return;  // one DELETE transaction per step: queued appends go next
  }
}

std::pair<std::uint64_t, status> journal::impl::prune_chunk(const prune_job& job) {
  sqlite3* db = db_.get();
  auto& d = job.dest->second;
  std::uint64_t first = 0;
  {
    reset_on_exit reset(first_stored_);
    first_stored_.bind(1, d.id);
    const int rc = first_stored_.step();
    if (rc == SQLITE_DONE) return {0, {}};
    if (rc != SQLITE_ROW) return {0, detail::failure(db, rc, "find oldest message")};
    first = from_sql(first_stored_.column_int64(0));
    if (first > job.seq_target && first_stored_.column_int64(1) >= job.ts_cutoff) return {0, {}};
  }

  if (int rc = begin_.run(); rc != SQLITE_OK) return {0, detail::failure(db, rc, "begin")};
  std::uint64_t deleted = 0, max_seq = d.purged_seq;
  std::int64_t max_ts = d.purged_ms;
  {
    reset_on_exit reset(prune_);
    prune_.bind(1, d.id);
    prune_.bind(2, to_sql(first));
    prune_.bind(3, to_sql(first + prune_chunk_rows - 1));
    prune_.bind(4, to_sql(job.seq_target));
    prune_.bind(5, job.ts_cutoff);
    int rc;
    while ((rc = prune_.step()) == SQLITE_ROW) {
      ++deleted;
      max_seq = std::max(max_seq, from_sql(prune_.column_int64(0)));
      max_ts = std::max(max_ts, prune_.column_int64(1));
    }
    if (rc != SQLITE_DONE) {
      auto st = detail::failure(db, rc, "delete old messages");
      prune_.reset();
      rollback();
      return {0, std::move(st)};
    }
  }
  if (deleted > 0) {
    update_purged_.bind(1, to_sql(max_seq));
    update_purged_.bind(2, max_ts);
    update_purged_.bind(3, d.id);
    if (int rc = update_purged_.run(); rc != SQLITE_OK) {
      auto st = detail::failure(db, rc, "update purged_seq");
      rollback();
      return {0, std::move(st)};
    }
  }
  if (int rc = commit_.run(); rc != SQLITE_OK) {
    auto st = detail::failure(db, rc, "commit deletion");
    rollback();
    return {0, std::move(st)};
  }
  d.purged_seq = max_seq;
  d.purged_ms = max_ts;
  return {deleted, {}};
}

// --- reader threads --------------------------------------------------------------------

void journal::impl::reader_main(reader& rd) {
  for (;;) {
    read_task task;
    {
      std::unique_lock lk(read_mu_);
      read_cv_.wait(lk, [this] { return !reads_.empty() || readers_stopping_; });
      if (reads_.empty()) return;  // stopping, and every accepted replay has run
      task = std::move(reads_.front());
      reads_.pop_front();
    }
    task(&rd);
  }
}

replay_result journal::impl::run_replay(reader& rd, const replay_request& req) {
  replay_result res;
  status st;
  // One read transaction: the head and the messages come from the same snapshot, so the
  // result ends exactly at head_seq even while the writer commits.
  if (int rc = rd.begin.run(); rc != SQLITE_OK) {
    st = detail::failure(rd.db.get(), rc, "begin replay");
  } else {
    st = read_history(rd, req, res);
    rd.commit.run();  // read-only: ending it can't lose anything
  }
  if (st.failed()) {
    remember_error(st);
    res = replay_result{};
    res.ec = st.ec;
    res.complete = false;
  }
  return res;
}

status journal::impl::read_history(reader& rd, const replay_request& req, replay_result& res) {
  sqlite3* db = rd.db.get();
  std::int64_t dest_id = 0;
  std::uint64_t head = 0, purged_seq = 0;
  std::int64_t purged_ms = 0;
  {
    reset_on_exit reset(rd.find_dest);
    rd.find_dest.bind_text(1, req.destination);
    const int rc = rd.find_dest.step();
    if (rc == SQLITE_DONE) return {};  // never seen: head 0, nothing, complete
    if (rc != SQLITE_ROW) return detail::failure(db, rc, "find destination");
    dest_id = rd.find_dest.column_int64(0);
    head = from_sql(rd.find_dest.column_int64(1));
    purged_seq = from_sql(rd.find_dest.column_int64(2));
    purged_ms = rd.find_dest.column_int64(3);
  }
  res.head_seq = head;

  // The request names the range [head - wanted + 1, head]; messages in it that are no longer
  // stored, or that a cap cuts off, make the result incomplete.
  std::uint64_t wanted = 0;
  std::uint64_t top = head;  // the newest seq the read returns
  bool lost = false;
  switch (req.mode) {
    case replay_request::kind::last:
      wanted = std::min(req.value, head);
      break;
    case replay_request::kind::after:
      wanted = req.value < head ? head - req.value : 0;
      break;
    case replay_request::kind::page:
      // Oldest first from after `value`: the read below ends at `top`, not at the head.
      wanted = req.value < head ? std::min<std::uint64_t>(head - req.value, req.max_messages) : 0;
      top = req.value + wanted;
      lost = purged_seq > req.value;
      break;
    case replay_request::kind::before: {
      // The newest `limit` below `value`: the read below ends at `top`, not at the head.
      top = std::min(head, req.value > 0 ? req.value - 1 : 0);
      const std::size_t limit =
          req.limit == 0 ? req.max_messages : std::min(req.limit, req.max_messages);
      wanted = std::min<std::uint64_t>(top, limit);
      break;
    }
    case replay_request::kind::since: {
      const auto since = to_sql(req.value);
      // Deleted messages had timestamps up to purged_ms: some of them were asked for.
      lost = purged_seq > 0 && purged_ms >= since;
      reset_on_exit reset(rd.first_since);
      rd.first_since.bind(1, dest_id);
      rd.first_since.bind(2, since);
      const int rc = rd.first_since.step();
      if (rc == SQLITE_ROW) {
        const auto first = from_sql(rd.first_since.column_int64(0));
        wanted = first <= head ? head - first + 1 : 0;
      } else if (rc != SQLITE_DONE) {
        return detail::failure(db, rc, "find first message since");
      }
      break;
    }
  }

  // Newest first, so the caps keep the newest messages: a replay stays contiguous with the
  // live messages that follow it.
  const std::uint64_t take = std::min<std::uint64_t>(wanted, req.max_messages);
  if (take > 0) {
    reset_on_exit reset(rd.range_desc);
    rd.range_desc.bind(1, dest_id);
    rd.range_desc.bind(2, to_sql(top - take + 1));
    rd.range_desc.bind(3, to_sql(top));
    rd.range_desc.bind(4, to_sql(take));
    std::uint64_t expected = top;
    std::size_t bytes = 0;
    int rc;
    while ((rc = rd.range_desc.step()) == SQLITE_ROW) {
      if (from_sql(rd.range_desc.column_int64(0)) != expected) break;  // deleted below here
      const auto headers = rd.range_desc.column_blob(2);
      const auto body = rd.range_desc.column_blob(3);
      const std::size_t size = headers.size() + body.size();
      if (size > req.max_bytes - std::min(bytes, req.max_bytes)) break;
      bytes += size;
      record& r = res.records.emplace_back();
      r.destination = req.destination;
      r.seq = expected--;
      r.timestamp_ms = rd.range_desc.column_int64(1);
      r.headers = decode_headers(headers);
      r.body.assign(body);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return detail::failure(db, rc, "read messages");
    std::reverse(res.records.begin(), res.records.end());
  }
  res.complete = !lost && res.records.size() == wanted;
  if (req.mode == replay_request::kind::before) {
    // Retention and purge delete from the oldest up: what is above purged_seq is stored.
    const std::uint64_t below = res.records.empty() ? top : res.records.front().seq - 1;
    res.older = below > purged_seq;
  }
  return {};
}

status journal::impl::read_stats(reader& rd, std::vector<destination_stats>& out) {
  sqlite3* db = rd.db.get();
  if (int rc = rd.begin.run(); rc != SQLITE_OK) return detail::failure(db, rc, "begin stats");
  status st;
  {
    reset_on_exit reset_list(rd.list_dests);
    int rc;
    while ((rc = rd.list_dests.step()) == SQLITE_ROW) {
      auto& s = out.emplace_back();
      s.destination = rd.list_dests.column_blob(1);
      s.last_seq = from_sql(rd.list_dests.column_int64(2));
      reset_on_exit reset_stats(rd.dest_stats);
      rd.dest_stats.bind(1, rd.list_dests.column_int64(0));
      rc = rd.dest_stats.step();
      if (rc != SQLITE_ROW) break;
      s.stored = from_sql(rd.dest_stats.column_int64(0));
      s.oldest_ms = rd.dest_stats.column_int64(1);  // NULL reads as 0 when nothing is stored
      s.newest_ms = rd.dest_stats.column_int64(2);
    }
    if (rc != SQLITE_DONE) st = detail::failure(db, rc, "read stats");
  }
  rd.commit.run();
  return st;
}

// --- journal ---------------------------------------------------------------------------

journal::journal(journal_options options) : impl_(std::make_unique<impl>(std::move(options))) {}

journal::~journal() { impl_->shutdown(); }

void journal::append(record r, append_callback done) {
  write_task task{append_task{std::move(r), std::move(done)}};
  if (impl_->submit_write(task)) return;
  auto& a = std::get<append_task>(task);
  if (a.done) a.done(append_result{make_error_code(errc::closed), 0, 0, {}, false, {}}, a.r);
}

void journal::flush(std::function<void()> done) {
  // Unlike appends, a flush is still taken while the writer drains at shutdown: it then runs
  // after the appends it waits for.
  if (!impl_->submit_late(done) && done) done();
}

bool journal::impl::submit_late(std::function<void()> task) {
  std::unique_lock lk(queue_mu_);
  if (writer_exited_) return false;
  const bool was_empty = queue_.empty();
  queue_.emplace_back(std::move(task));
  lk.unlock();
  if (was_empty) queue_cv_.notify_one();
  return true;
}

void journal::replay(replay_request request, std::function<void(replay_result&&)> done) {
  impl_->submit_read([im = impl_.get(), req = std::move(request),
                      done = std::move(done)](impl::reader* rd) mutable {
    replay_result res;
    if (rd != nullptr) {
      using kind = replay_request::kind;
      const bool other_epoch =
          !req.epoch.empty() && req.epoch != im->epoch_ &&
          (req.mode == kind::after || req.mode == kind::page || req.mode == kind::before);
      if (other_epoch) req.value = req.mode == kind::before ? UINT64_MAX : 0;
      res = im->run_replay(*rd, req);
      if (other_epoch) res.complete = false;
      res.epoch = im->epoch_;
    } else {
      res.ec = make_error_code(errc::closed);
      res.complete = false;
    }
    if (done) done(std::move(res));
  });
}

const std::string& journal::epoch() const noexcept { return impl_->epoch_; }

std::uint64_t journal::head_seq(std::string_view destination) const {
  std::lock_guard lk(impl_->heads_mu_);
  const auto it = impl_->dests_.find(destination);
  return it == impl_->dests_.end() ? 0 : it->second.last_seq;
}

std::size_t journal::destination_count() const {
  std::lock_guard lk(impl_->heads_mu_);
  return impl_->dests_.size();
}

std::vector<destination_stats> journal::stats() const {
  assert(!impl_->on_journal_thread());
  std::promise<status> promise;
  auto done = promise.get_future();
  std::vector<destination_stats> out;
  impl_->submit_read([im = impl_.get(), &promise, &out](impl::reader* rd) {
    promise.set_value(rd != nullptr ? im->read_stats(*rd, out) : closed_status());
  });
  impl_->throw_if_failed(done.get(), "reading stats");
  return out;
}

std::uint64_t journal::purge(std::string_view destination) {
  assert(!impl_->on_journal_thread());
  std::promise<std::pair<std::uint64_t, status>> promise;
  auto done = promise.get_future();
  // Runs on the writer after every earlier append, so "everything stored" includes them;
  // later appends keep their messages.
  write_task task{std::function<void()>([im = impl_.get(), destination, &promise] {
    const auto it = im->dests_.find(destination);
    if (it == im->dests_.end()) return promise.set_value({0, {}});
    auto sw = std::make_shared<sweep>();
    sw->done = [&promise](std::uint64_t deleted, const status& st) {
      promise.set_value({deleted, st});
    };
    im->queue_prune(*it, it->second.last_seq, no_cutoff, sw);
  })};
  if (!impl_->submit_write(task)) promise.set_value({0, closed_status()});
  auto [deleted, st] = done.get();
  impl_->throw_if_failed(st, "purging " + std::string(destination));
  return deleted;
}

void journal::remove(std::vector<std::pair<std::string, std::uint64_t>> messages,
                     std::function<void(std::error_code)> done) {
  // Taken at shutdown too: an acknowledgement of the last moments is not redelivered after
  // the restart.
  const bool taken = impl_->submit_late([im = impl_.get(), messages = std::move(messages), done] {
    const status st = im->remove_messages(messages);
    if (st.failed()) im->remember_error(st);
    if (done) done(st.ec);
  });
  if (!taken && done) done(make_error_code(errc::closed));
}

std::vector<record> journal::stored_with_prefix(std::string_view prefix) const {
  assert(!impl_->on_journal_thread());
  std::promise<status> promise;
  auto done = promise.get_future();
  std::vector<record> out;
  impl_->submit_read([&promise, &out, prefix](impl::reader* rd) {
    if (rd == nullptr) return promise.set_value(closed_status());
    status st;
    if (int rc = rd->begin.run(); rc != SQLITE_OK) {
      st = detail::failure(rd->db.get(), rc, "begin reading stored messages");
    } else {
      reset_on_exit reset(rd->with_prefix);
      rd->with_prefix.bind_text(1, prefix);
      int rc2;
      while ((rc2 = rd->with_prefix.step()) == SQLITE_ROW) {
        auto& r = out.emplace_back();
        r.destination = rd->with_prefix.column_blob(0);
        r.seq = from_sql(rd->with_prefix.column_int64(1));
        r.timestamp_ms = rd->with_prefix.column_int64(2);
        r.headers = decode_headers(rd->with_prefix.column_blob(3));
        r.body = rd->with_prefix.column_blob(4);
      }
      if (rc2 != SQLITE_DONE) st = detail::failure(rd->db.get(), rc2, "read stored messages");
      rd->commit.run();
    }
    promise.set_value(st);
  });
  impl_->throw_if_failed(done.get(), "reading stored messages of " + std::string(prefix));
  return out;
}

std::uint64_t journal::enforce_retention() {
  assert(!impl_->on_journal_thread());
  std::promise<std::pair<std::uint64_t, status>> promise;
  auto done = promise.get_future();
  write_task task{std::function<void()>([im = impl_.get(), &promise] {
    auto report = [&promise](std::uint64_t deleted, const status& st) {
      promise.set_value({deleted, st});
    };
    if (!im->opts_.retention_for) return report(0, {});
    im->start_sweep(std::move(report));
  })};
  if (!impl_->submit_write(task)) promise.set_value({0, closed_status()});
  auto [deleted, st] = done.get();
  impl_->throw_if_failed(st, "enforcing retention");
  return deleted;
}

std::uint64_t journal::batches_committed() const {
  return impl_->batches_.load(std::memory_order_relaxed);
}

std::string journal::last_error_message() const {
  std::lock_guard lk(impl_->error_mu_);
  return impl_->last_error_;
}

}  // namespace storage
