#include "journal_impl.hpp"
#include "storage/header_codec.hpp"

// The writer thread: group commit, idempotency keys, removals, retention and purge.

namespace storage {

using detail::closed_status;
using detail::from_sql;
using detail::no_cutoff;
using detail::now_ms;
using detail::prune_checks_per_step;
using detail::prune_chunk_rows;
using detail::to_sql;

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
      if (opts_.commit_window.count() > 0 && !queue_.empty()) {
        // Group commit: what comes within the window joins the first task's transaction.
        queue_cv_.wait_until(lk, first_queued_ + opts_.commit_window, [this] {
          return stopping_ || queue_.size() >= opts_.commit_window_fill;
        });
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

}  // namespace storage
