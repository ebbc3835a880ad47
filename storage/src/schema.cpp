#include "schema.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <string_view>
#include <system_error>

namespace storage::detail {
namespace {

// Long enough to ride out a checkpoint or WAL recovery by another connection; a second
// process writing the same journal is the only thing that waits longer.
constexpr int busy_timeout_ms = 5000;
// After a checkpoint, the WAL file is truncated back to this size, so one burst of appends
// doesn't leave a huge -wal file behind for the life of the process.
constexpr std::int64_t wal_size_limit_bytes = 64 * 1024 * 1024;
// Page cache per connection, in KiB (a negative cache_size is KiB): the writer's indexes
// and the readers' recent pages stay in memory.
constexpr int writer_cache_kib = 16 * 1024;
constexpr int reader_cache_kib = 8 * 1024;

[[noreturn]] void refuse(const std::string& path, errc e, std::string_view why) {
  std::string what = "journal " + path;
  switch (e) {
    case errc::corrupt:
      what += " is corrupt or not a stompd journal (";
      what += why;
      what += "); refusing to start; move it aside to start with an empty journal";
      break;
    case errc::newer_schema:
      what += ' ';
      what += why;
      what +=
          "; refusing to open it: run a newer stompd, or move it aside to start with an "
          "empty journal";
      break;
    default:
      what = "cannot open journal " + path + ": ";
      what += why;
      break;
  }
  throw journal_error(make_error_code(e), what);
}

[[noreturn]] void refuse(const std::string& path, sqlite3* db, int rc, std::string_view doing) {
  refuse(path, errc_from_sqlite(rc), failure(db, rc, doing).detail);
}

void exec(const std::string& path, sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);  // sqlite3_errmsg still holds the same text
  if (rc != SQLITE_OK) refuse(path, db, rc, sql);
}

// Runs a one-row query at startup and returns its first column (0 when there is no row).
std::int64_t query_int(const std::string& path, sqlite3* db, std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  stmt_ptr stmt(raw);
  if (rc == SQLITE_OK) rc = sqlite3_step(raw);
  if (rc == SQLITE_ROW) return sqlite3_column_int64(raw, 0);
  if (rc == SQLITE_DONE) return 0;
  refuse(path, db, rc, sql);
}

std::string query_text(const std::string& path, sqlite3* db, std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  stmt_ptr stmt(raw);
  if (rc == SQLITE_OK) rc = sqlite3_step(raw);
  if (rc == SQLITE_ROW) {
    const auto* text = sqlite3_column_text(raw, 0);
    return text != nullptr ? reinterpret_cast<const char*>(text) : "";
  }
  if (rc == SQLITE_DONE) return {};
  refuse(path, db, rc, sql);
}

// PRAGMA quick_check: O(file size), but it is what catches a truncated or overwritten file
// before an append or a replay trips over it. Returns "ok" or the first problems found.
std::string quick_check(const std::string& path, sqlite3* db) {
  constexpr std::string_view sql = "PRAGMA quick_check(5)";
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  stmt_ptr stmt(raw);
  std::string report;
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    rc = sqlite3_step(raw);
    if (rc != SQLITE_ROW) break;
    const auto* text = sqlite3_column_text(raw, 0);
    if (!report.empty()) report += "; ";
    report += text != nullptr ? reinterpret_cast<const char*>(text) : "";
  }
  if (rc != SQLITE_DONE) refuse(path, db, rc, "PRAGMA quick_check");
  return report;
}

// Schema migrations: migrations[n] takes a journal from version n to n + 1, inside the one
// transaction that also sets user_version. A new version appends a function here and bumps
// schema_version; released steps never change. Each returns a failed status, never throws.
using migration = status (*)(sqlite3* db);

status exec_status(sqlite3* db, const std::string& sql, std::string_view doing) {
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? status{} : failure(db, rc, doing);
}

status create_v1(sqlite3* db) {
  // destinations.last_seq is the last committed seq, updated in the transaction that
  // inserts the messages, so sequences continue exactly after a restart. purged_seq and
  // purged_ms record the highest seq and newest timestamp deleted by retention or purge,
  // which is how a replay knows that history it asks for is gone.
  // messages(dest_id, seq) is unique: a seq is never stored twice. Within a destination,
  // seq, id and ts all grow together (the writer never lets ts go backwards), so every
  // deletion removes a prefix and the stored seqs stay contiguous.
  return exec_status(db,
                     R"sql(
    CREATE TABLE destinations (
      id INTEGER PRIMARY KEY,
      name TEXT UNIQUE NOT NULL,
      last_seq INTEGER NOT NULL,
      purged_seq INTEGER NOT NULL DEFAULT 0,
      purged_ms INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
      id INTEGER PRIMARY KEY,
      dest_id INTEGER NOT NULL,
      seq INTEGER NOT NULL,
      ts INTEGER NOT NULL,
      headers BLOB NOT NULL,
      body BLOB NOT NULL,
      UNIQUE (dest_id, seq)
    );
    CREATE INDEX messages_by_time ON messages (dest_id, ts);
    PRAGMA application_id = )sql" +
                         std::to_string(application_id) + ";",
                     "create schema version 1");
}

status add_epoch_v2(sqlite3* db) {
  // The journal's epoch, one value for the file's life, which every MESSAGE and RECEIPT
  // carries as x-epoch: a new file (a lost or replaced data directory) gets a new one, so a
  // client holding x-seq values of the old file can tell they number other messages.
  // Twelve hex digits, 48 random bits.
  return exec_status(db, R"sql(
    CREATE TABLE journal_info (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO journal_info (name, value) VALUES ('epoch', lower(hex(randomblob(6))));
  )sql",
                     "add the journal's epoch (schema version 2)");
}

status add_idempotency_v3(sqlite3* db) {
  // The idempotency keys of recent appends (x-idempotency-key): a retry with a key stored
  // here and not yet expired gets the seq it had, and nothing is stored again. Rows are
  // deleted once expired, a few with every batch that adds some.
  return exec_status(db, R"sql(
    CREATE TABLE idempotency (
      dest_id INTEGER NOT NULL,
      key BLOB NOT NULL,
      seq INTEGER NOT NULL,
      ts INTEGER NOT NULL,
      expires_ms INTEGER NOT NULL,
      PRIMARY KEY (dest_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_expiry ON idempotency (expires_ms);
  )sql",
                     "add idempotency keys (schema version 3)");
}

constexpr std::array<migration, schema_version> migrations = {create_v1, add_epoch_v2,
                                                              add_idempotency_v3};

void migrate(const std::string& path, sqlite3* db) {
  exec(path, db, "BEGIN IMMEDIATE");
  // Read again under the write lock: another process may have migrated meanwhile.
  const auto from = query_int(path, db, "PRAGMA user_version");
  status st;
  for (auto v = from; v < schema_version && !st.failed(); ++v) {
    st = migrations[static_cast<std::size_t>(v)](db);
  }
  if (!st.failed() && from < schema_version) {
    st = exec_status(db, "PRAGMA user_version = " + std::to_string(schema_version),
                     "set user_version");
  }
  if (!st.failed()) st = exec_status(db, "COMMIT", "commit");
  if (st.failed()) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    refuse(path, static_cast<errc>(st.ec.value()),
           "migrating from schema version " + std::to_string(from) + " to " +
               std::to_string(schema_version) + ": " + st.detail);
  }
}

}  // namespace

db_ptr open_writer(const std::filesystem::path& fs_path, durability mode,
                   std::uint64_t max_file_bytes) {
  const std::string path = fs_path.string();
  if (fs_path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(fs_path.parent_path(), ec);
    if (ec) refuse(path, errc::io_error, "cannot create its directory: " + ec.message());
  }
  db_ptr db =
      open_connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
  sqlite3_busy_timeout(db.get(), busy_timeout_ms);
  if (sqlite3_db_readonly(db.get(), "main") == 1) {
    refuse(path, errc::io_error, "the file or its directory is read-only");
  }

  // Nothing below writes until every check passed: a file we refuse stays byte for byte
  // as it was, for whoever investigates it.
  const auto version = query_int(path, db.get(), "PRAGMA user_version");
  if (version > schema_version) {
    refuse(path, errc::newer_schema,
           "has schema version " + std::to_string(version) + ", newer than version " +
               std::to_string(schema_version) + " that this stompd reads and writes");
  }
  if (version > 0) {
    const auto app = query_int(path, db.get(), "PRAGMA application_id");
    if (app != application_id) {
      refuse(path, errc::corrupt,
             "PRAGMA application_id is " + std::to_string(app) + ", not stompd's " +
                 std::to_string(application_id));
    }
    const auto check = quick_check(path, db.get());
    if (check != "ok") refuse(path, errc::corrupt, "PRAGMA quick_check: " + check);
  } else if (query_int(path, db.get(), "SELECT count(*) FROM sqlite_schema") > 0) {
    refuse(path, errc::corrupt, "it holds SQLite tables but no stompd schema version");
  }

  // WAL: readers keep a snapshot while the writer commits. process durability syncs the WAL
  // only at checkpoints (a killed process loses nothing committed); power syncs every commit.
  if (query_text(path, db.get(), "PRAGMA journal_mode = WAL") != "wal") {
    refuse(path, errc::io_error, "cannot switch to WAL mode (does the file system support it?)");
  }
  exec(path, db.get(),
       std::string("PRAGMA synchronous = ") + (mode == durability::power ? "FULL" : "NORMAL"));
  exec(path, db.get(), "PRAGMA journal_size_limit = " + std::to_string(wal_size_limit_bytes));
  exec(path, db.get(), "PRAGMA cache_size = -" + std::to_string(writer_cache_kib));
  // Debian builds SQLite with secure_delete on, which rewrites every page retention frees;
  // FAST only zeroes what it writes anyway, so retention costs no extra I/O.
  exec(path, db.get(), "PRAGMA secure_delete = FAST");
  if (max_file_bytes > 0) {
    const auto page_size = query_int(path, db.get(), "PRAGMA page_size");
    const auto pages = std::max<std::uint64_t>(
        1, max_file_bytes / static_cast<std::uint64_t>(page_size > 0 ? page_size : 4096));
    query_int(path, db.get(), "PRAGMA max_page_count = " + std::to_string(pages));
  }
  migrate(path, db.get());
  return db;
}

db_ptr open_reader(const std::filesystem::path& fs_path) {
  const std::string path = fs_path.string();
  db_ptr db = open_connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
  sqlite3_busy_timeout(db.get(), busy_timeout_ms);
  // Read-write open (a WAL reader must be able to update the -shm index), but query-only,
  // so a bug on a reader can never write.
  exec(path, db.get(), "PRAGMA query_only = ON");
  exec(path, db.get(), "PRAGMA cache_size = -" + std::to_string(reader_cache_kib));
  return db;
}

}  // namespace storage::detail
