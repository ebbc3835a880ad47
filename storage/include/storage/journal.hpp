#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace storage {

// Errors of the journal, in their own category.
enum class errc {
  corrupt = 1,   // the file is not a usable journal (bad header, failed integrity check)
  newer_schema,  // written by a newer stompd; this build will not touch it
  disk_full,     // SQLITE_FULL: the append was not stored
  io_error,      // any other SQLite or file-system failure
  closed,        // the journal is shutting down
};
const std::error_category& error_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// Thrown by the constructor when the journal can't be opened (and by the synchronous members
// when SQLite fails); what() names the file and says why and what to do.
class journal_error : public std::system_error {
 public:
  journal_error(std::error_code ec, const std::string& what);
  // The message as given: unlike std::system_error's, without ": " + code().message()
  // appended, since the message already says it in context.
  const char* what() const noexcept override;

 private:
  std::shared_ptr<const std::string> what_;  // shared: copying an exception must not throw
};

// How hard a commit holds. process: WAL with synchronous=NORMAL, survives a crash of stompd
// (kill -9) but an OS crash or power loss may lose the last commits. power: synchronous=FULL,
// every commit is fsync'ed before it is acknowledged.
enum class durability { process, power };

// One stored message. The journal knows nothing of STOMP: headers are opaque name/value
// pairs (neither may contain NUL), the body opaque bytes.
struct record {
  std::string destination;
  std::uint64_t seq = 0;  // per destination, from 1, +1 each; assigned by append
  // Unix time in ms, assigned by append. Never decreases within a destination (a clock
  // stepped back repeats the newest timestamp), so "since" and age retention cut history at
  // one point.
  std::int64_t timestamp_ms = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // For append: "" or the sender's idempotency key (x-idempotency-key). An append whose key
  // an earlier append of the destination stored within journal_options::idempotency_window
  // stores nothing and gets that append's seq and timestamp (append_result::duplicate).
  std::string idempotency_key;
};

// How much of a destination's history to keep; 0 means no limit.
struct retention {
  std::uint64_t max_messages = 0;
  std::chrono::milliseconds max_age{0};
};

struct journal_options {
  std::filesystem::path path;  // the SQLite file; its directory is created
  durability mode = durability::process;
  std::size_t max_batch = 4096;  // appends per transaction at most
  // Group commit: the writer lets what comes within this long of the first waiting task join
  // its transaction, unless commit_window_fill tasks wait sooner, so that at low rates a
  // commit carries many appends too, for at most this much more latency. Under load tasks
  // wait while the previous commit runs, a batch is that full already, and the window adds
  // nothing. 0: commit at once.
  std::chrono::microseconds commit_window{0};
  std::size_t commit_window_fill = 16;
  std::size_t readers = 2;  // read connections, each with its own thread
  // Which retention applies to a destination; called on the writer thread.
  std::function<retention(std::string_view destination)> retention_for;
  // How often the writer runs retention; 0: only when enforce_retention() is called.
  std::chrono::milliseconds retention_interval{1000};
  // Called on the writer thread after the per-append callbacks of each committed (or failed)
  // batch, so a caller can hand a whole batch on at once.
  std::function<void()> on_batch_done;
  // Called on the writer thread after each committed batch with its size and how long the
  // transaction took (inserts and COMMIT), for metrics.
  std::function<void(std::size_t appends, std::chrono::nanoseconds commit_time)> on_commit;
  // Caps the database file (not the -wal file) at about this many bytes; 0: no cap. An append
  // that would grow it further fails with disk_full, as on a full disk, until retention or
  // purge frees space. Tests use it to exercise the disk-full path.
  std::uint64_t max_file_bytes = 0;
  // How long an idempotency key (record::idempotency_key) is remembered.
  std::chrono::milliseconds idempotency_window{std::chrono::minutes(10)};
};

struct append_result {
  std::error_code ec;  // empty: committed durably (per durability mode)
  std::uint64_t seq = 0;
  std::int64_t timestamp_ms = 0;
  std::string epoch;  // what numbers `seq` (journal::epoch)
  // The idempotency key was stored already: seq and timestamp_ms are the first append's,
  // and nothing was stored (or is to be delivered) now.
  bool duplicate = false;
  // Not the journal's: set by a broker engine that stored a queue's message (seq 0 then),
  // the message-id its consumer will see.
  std::string message_id;
};

struct replay_request {
  // page: up to max_messages after seq `value`, OLDEST first kept (for paging through
  // history); before: up to `limit` before seq `value`, the newest of them kept (for "load
  // older messages"); the other kinds keep the newest, to join the live stream.
  enum class kind { last, after, since, page, before };
  std::string destination;
  kind mode = kind::last;
  // last: N; after: seq S (exclusive); since: T in ms (inclusive); page: seq S (exclusive);
  // before: seq S (exclusive)
  std::uint64_t value = 0;
  // after, page and before: the epoch `value` was seen in, when the client said. Another
  // epoch's seq numbers other messages: then after and page read everything as after 0,
  // before reads the newest, and the result is not complete (what the client had may be gone).
  std::string epoch;
  std::size_t limit = 0;              // before: how many (0, or over max_messages: max_messages)
  std::size_t max_messages = 10'000;  // cap; the newest messages are kept when cut
  std::size_t max_bytes = 8 * 1024 * 1024;  // cap on the summed body + encoded header bytes
};

struct replay_result {
  std::error_code ec;
  std::string epoch;  // the journal's (journal::epoch)
  // Oldest first, consecutive seqs; the last one is head_seq, except for page and before.
  std::vector<record> records;
  std::uint64_t head_seq = 0;  // the destination's latest committed seq when read; 0: none
  // False when a message the request asked for is no longer stored (retention, purge) or
  // was cut by a cap. A destination that simply has fewer messages than asked is complete.
  bool complete = true;
  // before: messages older than the first one returned (or than `value`, when none was)
  // are still stored: the client may ask again, before the first one it got.
  bool older = false;
};

struct destination_stats {
  std::string destination;
  std::uint64_t last_seq = 0;
  std::uint64_t stored = 0;
  std::int64_t oldest_ms = 0;  // 0 when nothing is stored
  std::int64_t newest_ms = 0;
};

// The message journal: an append-only log per destination in one SQLite file.
//
// Threads: one writer thread owns the write connection and does group commit: every append
// that arrives while a transaction commits goes into the next one. Retention runs on the
// writer thread between batches, in bounded chunks, so publishers never wait behind it.
// `readers` reader threads, each with its own read connection (WAL lets them read while the
// writer writes), serve replays. Every public member is thread-safe. Callbacks run on the
// journal's threads and must not block or throw; they hand their result on (e.g. post to an
// executor). They may call append, flush and replay, but not the synchronous members below
// (those wait for the very thread the callback runs on).
//
// Errors: the constructor throws journal_error; a failed append or replay reports an
// error_code (storage::errc) to its callback, and last_error_message() keeps SQLite's words
// for the log. A failed batch leaves no trace: its sequence numbers are handed out again.
class journal {
 public:
  // Opens or creates the journal, migrates an older schema, checks integrity. Throws
  // journal_error (corrupt, newer_schema, io_error) with a message naming the file.
  explicit journal(journal_options options);
  // Completes every append already made, then stops the threads.
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  // Appends r (seq and timestamp are assigned). `done` runs on the writer thread once the
  // transaction holding r committed or failed; appends complete in the order made. Once the
  // destructor has begun, `done` runs at once on the calling thread with errc::closed.
  using append_callback = std::function<void(const append_result&, const record&)>;
  void append(record r, append_callback done);

  // `done` runs on the writer thread after every append made before this call completed
  // (on the calling thread if the writer has already stopped).
  void flush(std::function<void()> done);

  // Reads history on a reader thread, in one read transaction (a consistent snapshot);
  // `done` runs there (on the calling thread, with errc::closed, once the readers stopped).
  void replay(replay_request request, std::function<void(replay_result&&)> done);

  // Deletes single messages, wherever they are in their destination (a durable queue's
  // acknowledged ones: its stored seqs are then no longer contiguous, which is why queues
  // keep no history to replay). One transaction on the writer, after every earlier append;
  // `done` (writer thread, may be empty) gets its outcome. Retention's bookkeeping
  // (purged_seq) is not touched. Taken while the journal shuts down, as flush is.
  void remove(std::vector<std::pair<std::string, std::uint64_t>> messages,
              std::function<void(std::error_code)> done = {});
  // Every message stored for a destination whose name starts with `prefix`, by destination
  // and then seq (at startup: a durable queue's messages not yet acknowledged). Synchronous.
  std::vector<record> stored_with_prefix(std::string_view prefix) const;

  // The journal's epoch (x-epoch): made when the file was, the same for its life.
  const std::string& epoch() const noexcept;

  // The latest assigned seq of a destination (committed or about to be); 0 when none.
  std::uint64_t head_seq(std::string_view destination) const;
  // Destinations with a sequence (committed or about to be), purged or emptied ones included:
  // what the writer keeps in memory, one entry each, for the journal's life.
  std::size_t destination_count() const;

  // Synchronous, for administration and tests (they wait for the reader/writer); they throw
  // journal_error when SQLite fails. Deletions run in bounded chunks between batches, so
  // appends keep flowing while they run.
  std::vector<destination_stats> stats() const;  // committed state, sorted by name
  // Deletes a destination's stored messages; its sequence continues where it was.
  std::uint64_t purge(std::string_view destination);
  // Runs retention now for every destination; returns the messages deleted.
  std::uint64_t enforce_retention();

  // Transactions committed by the writer (append batches only), for tests and metrics.
  std::uint64_t batches_committed() const;
  // SQLite's description of the most recent failure (append, replay, retention); empty if
  // none. Appends report only an error_code; whoever logs it can add this.
  std::string last_error_message() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace storage

template <>
struct std::is_error_code_enum<storage::errc> : std::true_type {};
