#include "sqlite.hpp"

#include <string>

namespace storage::detail {

errc errc_from_sqlite(int rc) noexcept {
  switch (rc & 0xff) {  // the primary code of an extended one
    case SQLITE_FULL:
      return errc::disk_full;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return errc::corrupt;
    default:
      return errc::io_error;
  }
}

status failure(sqlite3* db, int rc, std::string_view what) {
  status s{make_error_code(errc_from_sqlite(rc)), std::string(what)};
  s.detail += ": ";
  // errmsg describes the most recent failure on this connection; it can be stale when rc
  // came from elsewhere (a bind), so the generic text for rc follows it.
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : nullptr;
  const char* str = sqlite3_errstr(rc);
  if (msg != nullptr && std::string_view(msg) != str) {
    s.detail += msg;
    s.detail += " (";
    s.detail += str;
    s.detail += ')';
  } else {
    s.detail += str;
  }
  return s;
}

db_ptr open_connection(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_EXRESCODE, nullptr);
  db_ptr db(raw);  // sqlite3_open_v2 may hand out a handle even on failure; it must be closed
  if (rc != SQLITE_OK) {
    throw journal_error(make_error_code(errc_from_sqlite(rc)),
                        "cannot open journal " + path + ": " + failure(raw, rc, "open").detail);
  }
  return db;
}

statement::statement(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  stmt_.reset(raw);
  if (rc != SQLITE_OK) {
    throw journal_error(make_error_code(errc_from_sqlite(rc)),
                        failure(db, rc, "prepare \"" + std::string(sql) + '"').detail);
  }
}

void statement::bind(int index, std::int64_t value) noexcept {
  sqlite3_bind_int64(stmt_.get(), index, value);
}

int statement::bind_blob(int index, std::string_view bytes) noexcept {
  // A null pointer would bind SQL NULL; an empty body or header list is an empty BLOB.
  return bytes.empty()
             ? sqlite3_bind_zeroblob(stmt_.get(), index, 0)
             : sqlite3_bind_blob64(stmt_.get(), index, bytes.data(), bytes.size(), SQLITE_STATIC);
}

int statement::bind_text(int index, std::string_view text) noexcept {
  // As for blobs, a null pointer would bind NULL: "" is the empty destination name.
  return sqlite3_bind_text64(stmt_.get(), index, text.empty() ? "" : text.data(), text.size(),
                             SQLITE_STATIC, SQLITE_UTF8);
}

int statement::run() noexcept {
  int rc = sqlite3_step(stmt_.get());
  while (rc == SQLITE_ROW) rc = sqlite3_step(stmt_.get());  // e.g. a PRAGMA echoing its value
  sqlite3_reset(stmt_.get());
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

std::string_view statement::column_blob(int index) const noexcept {
  const void* data = sqlite3_column_blob(stmt_.get(), index);
  const int size = sqlite3_column_bytes(stmt_.get(), index);
  if (data == nullptr || size <= 0) return {};
  return {static_cast<const char*>(data), static_cast<std::size_t>(size)};
}

}  // namespace storage::detail
