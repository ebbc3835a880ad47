#pragma once

// Opening a journal file: integrity and version checks, connection settings, and the
// schema migrations. Runs on the thread that constructs the journal, before any journal
// thread starts; every failure throws journal_error with a message naming the file.

#include "sqlite.hpp"
#include "storage/journal.hpp"

#include <cstdint>
#include <filesystem>
#include <string>

namespace storage::detail {

// The schema this build writes, stored in PRAGMA user_version. A file with a higher
// version is refused (newer_schema); a lower one is migrated step by step.
inline constexpr int schema_version = 3;
// PRAGMA application_id of a stompd journal ("STMD"), so a foreign SQLite file given as
// the journal path is refused instead of getting our tables added to it.
inline constexpr std::int32_t application_id = 0x53544d44;

// Opens the one read-write connection: creates the directory, refuses a corrupt, foreign or
// newer file without writing to it, then switches to WAL, applies `mode` and migrates.
// max_file_bytes > 0 caps the database size (PRAGMA max_page_count on this connection).
db_ptr open_writer(const std::filesystem::path& path, durability mode,
                   std::uint64_t max_file_bytes);

// Opens a query-only connection to a journal open_writer already prepared.
db_ptr open_reader(const std::filesystem::path& path);

}  // namespace storage::detail
