#include "journal_impl.hpp"
#include "storage/header_codec.hpp"

// Opening the journal, its public members, and handing work to its threads.

namespace storage {

using detail::closed_status;
using detail::from_sql;
using detail::no_cutoff;
using detail::now_ms;
using detail::to_sql;

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

bool journal::impl::submit_write(write_task& task, bool until_exit) {
  std::unique_lock lk(queue_mu_);
  if (until_exit ? writer_exited_ : stopping_) return false;
  const bool was_empty = queue_.empty();
  if (was_empty && opts_.commit_window.count() > 0)
    first_queued_ = std::chrono::steady_clock::now();
  queue_.push_back(std::move(task));
  const bool full = opts_.commit_window.count() > 0 && queue_.size() == opts_.commit_window_fill;
  lk.unlock();
  // The writer sleeps on an empty queue, or in the commit window until enough wait: only the
  // first task and the one that fills the window need to wake it, one futex call per batch
  // instead of one per append.
  if (was_empty || full) queue_cv_.notify_one();
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
  write_task task{std::move(done)};
  if (impl_->submit_write(task, true)) return;
  if (auto& f = std::get<std::function<void()>>(task)) f();
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
  write_task task{std::function<void()>([im = impl_.get(), messages = std::move(messages), done] {
    const status st = im->remove_messages(messages);
    if (st.failed()) im->remember_error(st);
    if (done) done(st.ec);
  })};
  if (!impl_->submit_write(task, true) && done) done(make_error_code(errc::closed));
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
