#pragma once

// Thin RAII over the SQLite C API, private to storage/. Connections and statements live in
// unique_ptrs with deleters (STYLE.md, Storage); a statement is prepared once and reused.
//
// Two error styles, on purpose: the open path (constructor, startup) throws journal_error,
// while the writer and reader threads get a `status` back and turn it into an error_code for
// the caller, because nothing may throw out of a journal thread.

#include "storage/journal.hpp"

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace storage::detail {

struct db_closer {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct stmt_finalizer {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using db_ptr = std::unique_ptr<sqlite3, db_closer>;
using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_finalizer>;

// SQLITE_FULL is disk_full, SQLITE_CORRUPT and SQLITE_NOTADB are corrupt, the rest io_error.
errc errc_from_sqlite(int rc) noexcept;

// The outcome of a SQLite call on a journal thread: ec is empty on success; otherwise
// detail holds what was being done and SQLite's own words, for last_error_message().
struct status {
  std::error_code ec;
  std::string detail;

  bool failed() const noexcept { return static_cast<bool>(ec); }
};

// Builds a failed status from the connection's last error: "<what>: <errmsg> (<errstr>)".
status failure(sqlite3* db, int rc, std::string_view what);

// Opens a connection with extended result codes; throws journal_error (io_error) naming `path`
// when SQLite can't open it at all.
db_ptr open_connection(const std::string& path, int flags);

// A prepared statement bound to one connection. Not thread-safe: it belongs to the thread
// that owns the connection.
class statement {
 public:
  statement() = default;
  // Prepares `sql` once (SQLITE_PREPARE_PERSISTENT); throws journal_error on failure, which
  // only happens at startup.
  statement(sqlite3* db, std::string_view sql);

  // Binding never copies: the bound bytes must stay alive until the statement is reset.
  void bind(int index, std::int64_t value) noexcept;
  int bind_blob(int index, std::string_view bytes) noexcept;
  int bind_text(int index, std::string_view text) noexcept;

  // sqlite3_step: SQLITE_ROW, SQLITE_DONE, or an error code.
  int step() noexcept { return sqlite3_step(stmt_.get()); }
  void reset() noexcept { sqlite3_reset(stmt_.get()); }
  // Runs a statement that returns no rows to its end and resets it; SQLITE_OK on success.
  int run() noexcept;

  std::int64_t column_int64(int index) const noexcept {
    return sqlite3_column_int64(stmt_.get(), index);
  }
  bool column_is_null(int index) const noexcept {
    return sqlite3_column_type(stmt_.get(), index) == SQLITE_NULL;
  }
  // Valid until the next step or reset.
  std::string_view column_blob(int index) const noexcept;

  sqlite3* db() const noexcept { return sqlite3_db_handle(stmt_.get()); }

 private:
  stmt_ptr stmt_;
};

// Resets a statement on scope exit, so an early return never leaves it holding a read
// snapshot or a lock.
class reset_on_exit {
 public:
  explicit reset_on_exit(statement& s) noexcept : s_(s) {}
  ~reset_on_exit() { s_.reset(); }
  reset_on_exit(const reset_on_exit&) = delete;
  reset_on_exit& operator=(const reset_on_exit&) = delete;

 private:
  statement& s_;
};

}  // namespace storage::detail
