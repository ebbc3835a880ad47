#include "storage/journal.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace storage {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using headers_t = std::vector<std::pair<std::string, std::string>>;

constexpr auto deadline = 20s;  // only a hang ever gets near it

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Waits on the system clock (not a fixed sleep) until it is past `ms`.
void wait_until_clock_passes(std::int64_t ms) {
  while (now_ms() <= ms) std::this_thread::sleep_for(1ms);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A SQLite header field: 4 bytes, big-endian (https://www.sqlite.org/fileformat.html).
std::uint32_t header_u32(const std::string& file, std::size_t offset) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(file[offset + i]);
  return v;
}

record make_record(std::string destination, std::string body = "x", headers_t headers = {}) {
  record r;
  r.destination = std::move(destination);
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

template <typename T>
T get(std::future<T>& f) {
  if (f.wait_for(deadline) != std::future_status::ready) {
    ADD_FAILURE() << "timed out waiting for the journal";
    std::abort();  // a hung journal thread would hang the whole test binary anyway
  }
  return f.get();
}

append_result append_sync(journal& j, record r) {
  std::promise<append_result> p;
  auto f = p.get_future();
  j.append(std::move(r), [&p](const append_result& res, const record&) { p.set_value(res); });
  return get(f);
}

// Appends without waiting, then waits for all: the way a busy broker uses the journal.
std::vector<append_result> append_many(journal& j, const std::string& destination, std::size_t n,
                                       std::size_t body_bytes = 16) {
  std::vector<append_result> results(n);
  for (std::size_t i = 0; i < n; ++i) {
    j.append(make_record(destination, std::string(body_bytes, static_cast<char>('a' + i % 26))),
             [&results, i](const append_result& res, const record&) { results[i] = res; });
  }
  std::promise<void> p;
  auto f = p.get_future();
  j.flush([&p] { p.set_value(); });
  get(f);
  return results;
}

void flush_sync(journal& j) {
  std::promise<void> p;
  auto f = p.get_future();
  j.flush([&p] { p.set_value(); });
  get(f);
}

replay_result replay_sync(journal& j, replay_request req) {
  std::promise<replay_result> p;
  auto f = p.get_future();
  j.replay(std::move(req), [&p](replay_result&& res) { p.set_value(std::move(res)); });
  return get(f);
}

replay_request request(std::string destination, replay_request::kind mode, std::uint64_t value,
                       std::size_t max_messages = 10'000) {
  replay_request r;
  r.destination = std::move(destination);
  r.mode = mode;
  r.value = value;
  r.max_messages = max_messages;
  return r;
}
replay_request last(std::string d, std::uint64_t n, std::size_t cap = 10'000) {
  return request(std::move(d), replay_request::kind::last, n, cap);
}
replay_request after(std::string d, std::uint64_t seq, std::size_t cap = 10'000) {
  return request(std::move(d), replay_request::kind::after, seq, cap);
}
replay_request since(std::string d, std::int64_t ms, std::size_t cap = 10'000) {
  return request(std::move(d), replay_request::kind::since, static_cast<std::uint64_t>(ms), cap);
}

replay_request before(std::string d, std::uint64_t seq, std::size_t limit,
                      std::size_t cap = 10'000) {
  auto r = request(std::move(d), replay_request::kind::before, seq, cap);
  r.limit = limit;
  return r;
}

std::vector<std::uint64_t> seqs(const replay_result& r) {
  std::vector<std::uint64_t> out;
  for (const auto& rec : r.records) out.push_back(rec.seq);
  return out;
}

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> out;
  for (auto s = first; s <= last; ++s) out.push_back(s);
  return out;
}

// Holds the writer thread inside a flush callback until release(), so that appends made
// meanwhile queue up and reach the writer together.
class writer_gate {
 public:
  explicit writer_gate(journal& j) {
    std::promise<void> entered;
    auto in = entered.get_future();
    j.flush([this, &entered] {
      entered.set_value();
      release_.get_future().wait();
    });
    get(in);
  }
  void release() { release_.set_value(); }

 private:
  std::promise<void> release_;
};

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "stompd-journal-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path db_path() const { return dir_ / "journal.db"; }

  journal_options options() const {
    journal_options o;
    o.path = db_path();
    return o;
  }

  std::unique_ptr<journal> open() const { return std::make_unique<journal>(options()); }

  // Opens `path` expecting journal_error; returns it (code and what()).
  static journal_error open_fails(const fs::path& path) {
    journal_options o;
    o.path = path;
    try {
      journal j(o);
    } catch (const journal_error& e) {
      return e;
    }
    ADD_FAILURE() << "opening " << path << " succeeded";
    return journal_error(make_error_code(errc::io_error), "opened");
  }

  fs::path copy_fixture(const std::string& name) const {
    const auto to = dir_ / name;
    fs::copy_file(fs::path(STOMPD_STORAGE_FIXTURES) / name, to);
    return to;
  }

  fs::path dir_;
};

// --- appends -------------------------------------------------------------------------------

TEST_F(JournalTest, AssignsSequencesFromOnePerDestination) {
  auto j = open();
  EXPECT_EQ(append_sync(*j, make_record("/topic/a")).seq, 1u);
  EXPECT_EQ(append_sync(*j, make_record("/topic/a")).seq, 2u);
  EXPECT_EQ(append_sync(*j, make_record("/topic/b")).seq, 1u);
  EXPECT_EQ(append_sync(*j, make_record("/topic/a")).seq, 3u);
  EXPECT_EQ(append_sync(*j, make_record("/topic/b")).seq, 2u);
}

TEST_F(JournalTest, PassesTheStoredRecordToTheCallback) {
  auto j = open();
  std::promise<record> p;
  auto f = p.get_future();
  j->append(make_record("/topic/a", "hello", {{"k", "v"}}),
            [&p](const append_result& res, const record& r) {
              EXPECT_FALSE(res.ec);
              EXPECT_EQ(res.seq, r.seq);
              EXPECT_EQ(res.timestamp_ms, r.timestamp_ms);
              p.set_value(r);
            });
  const record r = get(f);
  EXPECT_EQ(r.destination, "/topic/a");
  EXPECT_EQ(r.seq, 1u);
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.headers, (headers_t{{"k", "v"}}));
}

TEST_F(JournalTest, AssignsNonDecreasingTimestampsFromTheSystemClock) {
  auto j = open();
  const auto before = now_ms();
  const auto results = append_many(*j, "/topic/a", 50);
  const auto after_all = now_ms();
  std::int64_t previous = 0;
  for (const auto& r : results) {
    ASSERT_FALSE(r.ec);
    EXPECT_GE(r.timestamp_ms, before);
    EXPECT_LE(r.timestamp_ms, after_all);
    EXPECT_GE(r.timestamp_ms, previous);
    previous = r.timestamp_ms;
  }
}

TEST_F(JournalTest, HeadSeqReportsTheLatestSeqAndZeroForAnUnknownDestination) {
  auto j = open();
  EXPECT_EQ(j->head_seq("/topic/a"), 0u);
  append_many(*j, "/topic/a", 7);
  EXPECT_EQ(j->head_seq("/topic/a"), 7u);
  EXPECT_EQ(j->head_seq("/topic/never"), 0u);
}

TEST_F(JournalTest, ReopenContinuesSequences) {
  {
    auto j = open();
    append_many(*j, "/topic/a", 5);
    append_many(*j, "/topic/b", 2);
  }
  auto j = open();
  EXPECT_EQ(j->head_seq("/topic/a"), 5u);
  EXPECT_EQ(append_sync(*j, make_record("/topic/a")).seq, 6u);
  EXPECT_EQ(append_sync(*j, make_record("/topic/b")).seq, 3u);
  EXPECT_EQ(seqs(replay_sync(*j, last("/topic/a", 100))), range(1, 6));
}

TEST_F(JournalTest, RoundTripsBinaryBodiesAndHeaders) {
  std::string body;
  for (int i = 0; i < 256; ++i) body.push_back(static_cast<char>(i));
  body += std::string("\0\0tail\0", 7);
  const headers_t headers = {{"content-type", "application/octet-stream"},
                             {"empty", ""},
                             {"colon:and\nnewline", "v\xc3\xa9lo:\r\n"},
                             {"dup", "1"},
                             {"dup", "2"}};
  {
    auto j = open();
    append_sync(*j, make_record("/queue/bin", body, headers));
    append_sync(*j, make_record("/queue/bin", "", {}));
  }
  auto j = open();  // from the file, not from a cache
  const auto res = replay_sync(*j, last("/queue/bin", 2));
  ASSERT_EQ(res.records.size(), 2u);
  EXPECT_EQ(res.records[0].body, body);
  EXPECT_EQ(res.records[0].headers, headers);
  EXPECT_EQ(res.records[0].destination, "/queue/bin");
  EXPECT_EQ(res.records[1].body, "");
  EXPECT_TRUE(res.records[1].headers.empty());
}

// --- replay --------------------------------------------------------------------------------

TEST_F(JournalTest, ReplayLastReturnsTheNewestOldestFirst) {
  auto j = open();
  append_many(*j, "/topic/a", 10);
  append_many(*j, "/topic/b", 3);
  const auto res = replay_sync(*j, last("/topic/a", 4));
  EXPECT_FALSE(res.ec);
  EXPECT_EQ(seqs(res), range(7, 10));
  EXPECT_EQ(res.head_seq, 10u);
  EXPECT_TRUE(res.complete);
}

TEST_F(JournalTest, ReplayLastOfMoreThanStoredIsComplete) {
  auto j = open();
  append_many(*j, "/topic/a", 3);
  const auto res = replay_sync(*j, last("/topic/a", 100));
  EXPECT_EQ(seqs(res), range(1, 3));
  EXPECT_TRUE(res.complete);
}

TEST_F(JournalTest, ReplayLastCutByMaxMessagesKeepsTheNewestAndIsIncomplete) {
  auto j = open();
  append_many(*j, "/topic/a", 10);
  const auto res = replay_sync(*j, last("/topic/a", 8, 3));
  EXPECT_EQ(seqs(res), range(8, 10));
  EXPECT_FALSE(res.complete);
}

TEST_F(JournalTest, ReplayAfterReturnsTheMessagesAfterTheSeq) {
  auto j = open();
  append_many(*j, "/topic/a", 10);
  const auto res = replay_sync(*j, after("/topic/a", 6));
  EXPECT_EQ(seqs(res), range(7, 10));
  EXPECT_EQ(res.head_seq, 10u);
  EXPECT_TRUE(res.complete);
  const auto all = replay_sync(*j, after("/topic/a", 0));
  EXPECT_EQ(seqs(all), range(1, 10));
  EXPECT_TRUE(all.complete);
}

// Issue 15: "load older messages" (x-replay: before:SEQ).
TEST_F(JournalTest, ReplayBeforeReturnsTheNewestBelowTheSeqAndWhetherOlderAreStored) {
  auto j = open();
  append_many(*j, "/topic/a", 30);
  auto page = replay_sync(*j, before("/topic/a", 21, 5));
  EXPECT_EQ(seqs(page), range(16, 20));
  EXPECT_EQ(page.head_seq, 30u);
  EXPECT_TRUE(page.complete);
  EXPECT_TRUE(page.older);
  auto last_page = replay_sync(*j, before("/topic/a", 4, 5));
  EXPECT_EQ(seqs(last_page), range(1, 3));
  EXPECT_TRUE(last_page.complete) << "fewer than asked, because there are no more";
  EXPECT_FALSE(last_page.older);
  EXPECT_EQ(seqs(replay_sync(*j, before("/topic/a", 1000, 2))), range(29, 30))
      << "past the head: the newest";
  EXPECT_TRUE(replay_sync(*j, before("/topic/a", 1, 5)).records.empty());
}

TEST_F(JournalTest, ReplayBeforeIsCappedAndSaysWhatRetentionRemoved) {
  auto o = options();
  o.retention_for = [](std::string_view) { return retention{10, {}}; };
  o.retention_interval = 0ms;
  journal j(o);
  append_many(j, "/topic/a", 30);
  j.enforce_retention();  // 21..30 stay
  auto capped = replay_sync(j, before("/topic/a", 31, 0, 4));
  EXPECT_EQ(seqs(capped), range(27, 30)) << "no limit: the replay cap";
  EXPECT_TRUE(capped.older);
  auto cut = replay_sync(j, before("/topic/a", 25, 10));
  EXPECT_EQ(seqs(cut), range(21, 24));
  EXPECT_FALSE(cut.complete) << "16..20 were asked for and are gone";
  EXPECT_FALSE(cut.older);
}

TEST_F(JournalTest, ReplayBeforeASeqOfAnotherEpochReadsTheNewestAndIsIncomplete) {
  auto j = open();
  append_many(*j, "/topic/a", 10);
  auto r = before("/topic/a", 5, 3);
  r.epoch = "another";
  const auto res = replay_sync(*j, r);
  EXPECT_EQ(seqs(res), range(8, 10));
  EXPECT_FALSE(res.complete);
}

// Issue 15: x-idempotency-key. A retry within the window gets the first append's seq and
// stores nothing, across a reopen too.
record keyed(std::string destination, std::string key, std::string body = "x") {
  auto r = make_record(std::move(destination), std::move(body));
  r.idempotency_key = std::move(key);
  return r;
}

TEST_F(JournalTest, ARetryWithAStoredIdempotencyKeyGetsTheFirstSeqAndStoresNothing) {
  {
    auto j = open();
    const auto first = append_sync(*j, keyed("/topic/a", "k1", "first"));
    EXPECT_EQ(first.seq, 1u);
    EXPECT_FALSE(first.duplicate);
    append_sync(*j, make_record("/topic/a"));
    const auto retry = append_sync(*j, keyed("/topic/a", "k1", "again"));
    EXPECT_TRUE(retry.duplicate);
    EXPECT_EQ(retry.seq, 1u);
    EXPECT_EQ(retry.timestamp_ms, first.timestamp_ms);
    EXPECT_EQ(append_sync(*j, keyed("/topic/b", "k1")).seq, 1u) << "keys are per destination";
    EXPECT_FALSE(append_sync(*j, keyed("/topic/a", "k2")).duplicate);
  }
  auto j = open();  // keys survive a restart
  EXPECT_TRUE(append_sync(*j, keyed("/topic/a", "k1")).duplicate);
  const auto all = replay_sync(*j, after("/topic/a", 0));
  EXPECT_EQ(seqs(all), range(1, 3));
  EXPECT_EQ(all.records[0].body, "first");
}

TEST_F(JournalTest, TheSameKeyTwiceInOneBatchIsStoredOnce) {
  auto j = open();
  writer_gate gate(*j);  // holds the writer: the appends below form one batch
  std::vector<append_result> got(3);
  std::atomic<int> done{0};
  for (int i = 0; i < 3; ++i)
    j->append(keyed("/topic/a", i == 1 ? "other" : "same"),
              [&, i](const append_result& r, const record&) {
                got[static_cast<std::size_t>(i)] = r;
                ++done;
              });
  gate.release();
  while (done < 3) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(got[0].seq, 1u);
  EXPECT_EQ(got[1].seq, 2u);
  EXPECT_EQ(got[2].seq, 1u);
  EXPECT_TRUE(got[2].duplicate);
  EXPECT_EQ(seqs(replay_sync(*j, after("/topic/a", 0))), range(1, 2));
}

TEST_F(JournalTest, AnIdempotencyKeyExpiresAfterItsWindow) {
  auto o = options();
  o.idempotency_window = 50ms;
  journal j(o);
  EXPECT_EQ(append_sync(j, keyed("/topic/a", "k")).seq, 1u);
  std::this_thread::sleep_for(80ms);
  const auto later = append_sync(j, keyed("/topic/a", "k"));
  EXPECT_FALSE(later.duplicate) << "the window is over: a new message";
  EXPECT_EQ(later.seq, 2u);
}

TEST_F(JournalTest, AVersion2JournalGetsIdempotencyKeysWhenMigrated) {
  append_many(*open(), "/topic/a", 2);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP TABLE idempotency; PRAGMA user_version = 2;", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto j = open();
  EXPECT_EQ(append_sync(*j, keyed("/topic/a", "k")).seq, 3u);
  EXPECT_TRUE(append_sync(*j, keyed("/topic/a", "k")).duplicate);
}

// Issue 15: durable queues keep their messages in the journal until acknowledged; what is
// stored when the journal opens again is read back by prefix.
TEST_F(JournalTest, RemovedMessagesAreGoneAndTheRestAreReadBackByPrefixAfterAReopen) {
  {
    auto j = open();
    append_many(*j, "/queue/jobs", 5);
    append_many(*j, "/queue/mail", 2);
    append_many(*j, "/topic/a", 3);
    std::promise<std::error_code> removed;
    j->remove({{"/queue/jobs", 2}, {"/queue/jobs", 4}, {"/queue/mail", 1}, {"/queue/none", 1}},
              [&](std::error_code ec) { removed.set_value(ec); });
    auto outcome = removed.get_future();
    EXPECT_FALSE(get(outcome));
  }
  auto j = open();
  const auto left = j->stored_with_prefix("/queue/");
  std::vector<std::pair<std::string, std::uint64_t>> got;
  for (const auto& r : left) got.emplace_back(r.destination, r.seq);
  EXPECT_EQ(got,
            (std::vector<std::pair<std::string, std::uint64_t>>{
                {"/queue/jobs", 1}, {"/queue/jobs", 3}, {"/queue/jobs", 5}, {"/queue/mail", 2}}));
  EXPECT_EQ(append_sync(*j, make_record("/queue/jobs")).seq, 6u) << "the sequence goes on";
}

// Issue 14: x-epoch. A journal file's epoch lasts as long as the file; a new file has
// another, so x-seq values of the old file are known to number other messages.
TEST_F(JournalTest, TheEpochIsMadeWithTheFileAndKeptForItsLife) {
  std::string epoch;
  {
    auto j = open();
    epoch = j->epoch();
    EXPECT_EQ(epoch.size(), 12u);
    EXPECT_EQ(epoch.find_first_not_of("0123456789abcdef"), std::string::npos) << epoch;
    EXPECT_EQ(append_sync(*j, make_record("/topic/a")).epoch, epoch);
    EXPECT_EQ(replay_sync(*j, after("/topic/a", 0)).epoch, epoch);
  }
  EXPECT_EQ(open()->epoch(), epoch);
  fs::remove(db_path());
  fs::remove(db_path().string() + "-wal");
  fs::remove(db_path().string() + "-shm");
  EXPECT_NE(open()->epoch(), epoch);
}

TEST_F(JournalTest, AVersion1JournalGetsAnEpochWhenMigratedAndKeepsItsMessages) {
  append_many(*open(), "/topic/a", 2);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "DROP TABLE journal_info; DROP TABLE idempotency; PRAGMA user_version = 1;",
                   nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  auto j = open();
  EXPECT_EQ(j->epoch().size(), 12u);
  EXPECT_EQ(seqs(replay_sync(*j, after("/topic/a", 0))), range(1, 2));
  EXPECT_EQ(append_sync(*j, make_record("/topic/a")).seq, 3u);
}

TEST_F(JournalTest, ReplayAfterASeqOfAnotherEpochReadsFromTheStartAndIsIncomplete) {
  auto j = open();
  append_many(*j, "/topic/a", 5);
  auto req = after("/topic/a", 3);
  req.epoch = "0123456789ab";  // a file that is gone
  const auto other = replay_sync(*j, req);
  EXPECT_EQ(seqs(other), range(1, 5));
  EXPECT_FALSE(other.complete);
  req.epoch = j->epoch();
  const auto same = replay_sync(*j, req);
  EXPECT_EQ(seqs(same), range(4, 5));
  EXPECT_TRUE(same.complete);
  // last:N does not depend on what the client numbered before.
  auto newest = last("/topic/a", 2);
  newest.epoch = "0123456789ab";
  EXPECT_EQ(seqs(replay_sync(*j, newest)), range(4, 5));
}

TEST_F(JournalTest, ReplayAfterCutByMaxMessagesKeepsTheNewestAndIsIncomplete) {
  auto j = open();
  append_many(*j, "/topic/a", 10);
  const auto res = replay_sync(*j, after("/topic/a", 2, 5));
  EXPECT_EQ(seqs(res), range(6, 10));
  EXPECT_FALSE(res.complete);
}

TEST_F(JournalTest, ReplayAfterTheHeadIsEmptyAndComplete) {
  auto j = open();
  append_many(*j, "/topic/a", 4);
  for (std::uint64_t s : {4u, 9u}) {
    const auto res = replay_sync(*j, after("/topic/a", s));
    EXPECT_TRUE(res.records.empty());
    EXPECT_EQ(res.head_seq, 4u);
    EXPECT_TRUE(res.complete);
  }
}

TEST_F(JournalTest, ReplaySinceReturnsMessagesAtOrAfterTheTimestamp) {
  auto j = open();
  const auto early = append_many(*j, "/topic/a", 5);
  wait_until_clock_passes(early.back().timestamp_ms);
  const auto late = append_many(*j, "/topic/a", 5);
  ASSERT_GT(late.front().timestamp_ms, early.back().timestamp_ms);

  const auto res = replay_sync(*j, since("/topic/a", late.front().timestamp_ms));
  EXPECT_EQ(seqs(res), range(6, 10));
  EXPECT_TRUE(res.complete);
  const auto all = replay_sync(*j, since("/topic/a", 0));
  EXPECT_EQ(seqs(all), range(1, 10));
  EXPECT_TRUE(all.complete);
  const auto future = replay_sync(*j, since("/topic/a", now_ms() + 60'000));
  EXPECT_TRUE(future.records.empty());
  EXPECT_TRUE(future.complete);
}

TEST_F(JournalTest, ReplaySinceCutByMaxMessagesKeepsTheNewestAndIsIncomplete) {
  auto j = open();
  append_many(*j, "/topic/a", 10);
  const auto res = replay_sync(*j, since("/topic/a", 0, 4));
  EXPECT_EQ(seqs(res), range(7, 10));
  EXPECT_FALSE(res.complete);
}

TEST_F(JournalTest, ReplayCutByMaxBytesKeepsTheNewestAndIsIncomplete) {
  auto j = open();
  append_many(*j, "/topic/a", 10, 100);  // 100-byte bodies, no headers
  auto req = last("/topic/a", 10);
  req.max_bytes = 350;
  const auto res = replay_sync(*j, req);
  EXPECT_EQ(seqs(res), range(8, 10));
  EXPECT_FALSE(res.complete);
  req.max_bytes = 1000;
  EXPECT_TRUE(replay_sync(*j, req).complete);
}

TEST_F(JournalTest, ReplayOfAnUnknownDestinationIsEmptyAndComplete) {
  auto j = open();
  append_many(*j, "/topic/a", 3);
  for (auto req : {last("/topic/none", 10), after("/topic/none", 0), since("/topic/none", 0)}) {
    const auto res = replay_sync(*j, req);
    EXPECT_FALSE(res.ec);
    EXPECT_TRUE(res.records.empty());
    EXPECT_EQ(res.head_seq, 0u);
    EXPECT_TRUE(res.complete);
  }
}

TEST_F(JournalTest, StatsReportEveryDestination) {
  auto j = open();
  const auto a = append_many(*j, "/topic/a", 4);
  append_many(*j, "/queue/b", 1);
  const auto stats = j->stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].destination, "/queue/b");  // sorted by name
  EXPECT_EQ(stats[1].destination, "/topic/a");
  EXPECT_EQ(stats[1].last_seq, 4u);
  EXPECT_EQ(stats[1].stored, 4u);
  EXPECT_EQ(stats[1].oldest_ms, a.front().timestamp_ms);
  EXPECT_EQ(stats[1].newest_ms, a.back().timestamp_ms);
}

// --- retention and purge -------------------------------------------------------------------

TEST_F(JournalTest, RetentionByCountKeepsTheNewestAndMarksReplayIncomplete) {
  auto o = options();
  o.retention_for = [](std::string_view d) {
    return d == "/topic/a" ? retention{3, {}} : retention{};
  };
  o.retention_interval = 0ms;  // only when asked
  journal j(o);
  append_many(j, "/topic/a", 10);
  append_many(j, "/topic/b", 10);
  EXPECT_EQ(j.enforce_retention(), 7u);
  EXPECT_EQ(j.enforce_retention(), 0u);

  const auto all = replay_sync(j, last("/topic/a", 10));
  EXPECT_EQ(seqs(all), range(8, 10));
  EXPECT_FALSE(all.complete);
  EXPECT_TRUE(replay_sync(j, last("/topic/a", 3)).complete);
  EXPECT_FALSE(replay_sync(j, after("/topic/a", 6)).complete);
  EXPECT_TRUE(replay_sync(j, after("/topic/a", 7)).complete);
  EXPECT_FALSE(replay_sync(j, since("/topic/a", 0)).complete);
  EXPECT_EQ(seqs(replay_sync(j, last("/topic/b", 10))), range(1, 10));
}

TEST_F(JournalTest, RetentionByAgeDeletesOlderMessages) {
  std::atomic<std::int64_t> keep_from{0};
  auto o = options();
  // The age that puts the cutoff at keep_from: computed when the writer asks, so it holds
  // however long the test took to get here.
  o.retention_for = [&keep_from](std::string_view) {
    return retention{0, std::chrono::milliseconds(now_ms() - keep_from.load())};
  };
  o.retention_interval = 0ms;
  journal j(o);
  const auto old = append_many(j, "/topic/a", 5);
  wait_until_clock_passes(old.back().timestamp_ms + 20);
  const auto recent = append_many(j, "/topic/a", 5);
  keep_from = recent.front().timestamp_ms;
  wait_until_clock_passes(keep_from);

  EXPECT_EQ(j.enforce_retention(), 5u);
  const auto res = replay_sync(j, since("/topic/a", 0));
  EXPECT_EQ(seqs(res), range(6, 10));
  EXPECT_FALSE(res.complete);
  EXPECT_FALSE(replay_sync(j, since("/topic/a", old.back().timestamp_ms)).complete);
  EXPECT_TRUE(replay_sync(j, since("/topic/a", recent.front().timestamp_ms)).complete);
}

TEST_F(JournalTest, RetentionRunsPeriodicallyWithoutBeingAsked) {
  auto o = options();
  o.retention_for = [](std::string_view) { return retention{5, {}}; };
  o.retention_interval = 5ms;
  journal j(o);
  append_many(j, "/topic/a", 20);
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (j.stats().at(0).stored != 5 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_EQ(j.stats().at(0).stored, 5u);
}

TEST_F(JournalTest, RetentionDeletesALargeBacklogInChunks) {
  auto o = options();
  o.retention_for = [](std::string_view) { return retention{10, {}}; };
  o.retention_interval = 0ms;
  journal j(o);
  append_many(j, "/topic/a", 2500);
  const auto batches = j.batches_committed();
  EXPECT_EQ(j.enforce_retention(), 2490u);
  EXPECT_EQ(j.batches_committed(), batches);  // deletions are not append batches
  const auto res = replay_sync(j, last("/topic/a", 100));
  EXPECT_EQ(seqs(res), range(2491, 2500));
  EXPECT_EQ(j.stats().at(0).stored, 10u);
}

TEST_F(JournalTest, PurgedCountersSurviveReopen) {
  auto o = options();
  o.retention_for = [](std::string_view) { return retention{4, {}}; };
  o.retention_interval = 0ms;
  {
    journal j(o);
    append_many(j, "/topic/a", 10);
    EXPECT_EQ(j.enforce_retention(), 6u);
  }
  journal j(options());  // no retention now: only the stored counters can tell
  EXPECT_FALSE(replay_sync(j, after("/topic/a", 0)).complete);
  EXPECT_TRUE(replay_sync(j, after("/topic/a", 6)).complete);
  EXPECT_FALSE(replay_sync(j, since("/topic/a", 0)).complete);
  EXPECT_FALSE(replay_sync(j, last("/topic/a", 5)).complete);
  EXPECT_EQ(seqs(replay_sync(j, last("/topic/a", 4))), range(7, 10));
}

TEST_F(JournalTest, PurgeDeletesEverythingStoredAndTheSequenceContinues) {
  auto j = open();
  append_many(*j, "/topic/a", 10);
  append_many(*j, "/topic/b", 2);
  EXPECT_EQ(j->purge("/topic/a"), 10u);
  EXPECT_EQ(j->head_seq("/topic/a"), 10u);
  const auto empty = replay_sync(*j, last("/topic/a", 5));
  EXPECT_TRUE(empty.records.empty());
  EXPECT_EQ(empty.head_seq, 10u);
  EXPECT_FALSE(empty.complete);

  EXPECT_EQ(append_sync(*j, make_record("/topic/a")).seq, 11u);
  const auto res = replay_sync(*j, after("/topic/a", 5));
  EXPECT_EQ(seqs(res), range(11, 11));
  EXPECT_FALSE(res.complete);
  EXPECT_TRUE(replay_sync(*j, after("/topic/a", 10)).complete);
  EXPECT_EQ(seqs(replay_sync(*j, last("/topic/b", 5))), range(1, 2));
  j.reset();
  EXPECT_EQ(append_sync(*open(), make_record("/topic/a")).seq, 12u);
}

TEST_F(JournalTest, PurgeOfAnUnknownDestinationDeletesNothing) {
  auto j = open();
  EXPECT_EQ(j->purge("/topic/none"), 0u);
  EXPECT_EQ(j->head_seq("/topic/none"), 0u);
}

// --- group commit, callbacks, flush ----------------------------------------------------------

TEST_F(JournalTest, GroupCommitPutsAppendsMadeWhileTheWriterIsBusyIntoOneTransaction) {
  auto j = open();
  const auto batches = j->batches_committed();
  writer_gate gate(*j);
  std::atomic<int> committed{0};
  for (int i = 0; i < 100; ++i) {
    j->append(make_record("/topic/a"), [&committed](const append_result& r, const record&) {
      if (!r.ec) ++committed;
    });
  }
  gate.release();
  flush_sync(*j);
  EXPECT_EQ(committed, 100);
  EXPECT_EQ(j->batches_committed() - batches, 1u);
}

TEST_F(JournalTest, TheCommitWindowGathersAppendsMadeApartIntoOneTransaction) {
  auto o = options();
  o.commit_window = std::chrono::milliseconds(300);  // far longer than the appends take
  journal j(o);
  std::promise<void> all;
  std::atomic<int> committed{0};
  for (int i = 0; i < 5; ++i) {
    j.append(make_record("/topic/a"), [&](const append_result& r, const record&) {
      if (!r.ec && ++committed == 5) all.set_value();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // each alone, without a window
  }
  all.get_future().wait();
  EXPECT_EQ(j.batches_committed(), 1u);
  EXPECT_EQ(j.head_seq("/topic/a"), 5u);
}

TEST_F(JournalTest, AFilledWindowAndAClosingJournalDoNotWaitOutTheCommitWindow) {
  auto o = options();
  o.commit_window = std::chrono::hours(1);
  o.commit_window_fill = 10;
  {
    journal j(o);
    std::promise<void> full;
    std::atomic<int> committed{0};
    for (int i = 0; i < 10; ++i) {
      j.append(make_record("/topic/a"), [&](const append_result& r, const record&) {
        if (!r.ec && ++committed == 10) full.set_value();
      });
    }
    EXPECT_EQ(full.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
    j.append(make_record("/topic/a"), nullptr);  // alone in its window when the journal closes
  }
  journal reopened(options());
  EXPECT_EQ(reopened.head_seq("/topic/a"), 11u);
}

TEST_F(JournalTest, MaxBatchBoundsTheAppendsPerTransaction) {
  auto o = options();
  o.max_batch = 10;
  std::atomic<int> batch_callbacks{0};
  o.on_batch_done = [&batch_callbacks] { ++batch_callbacks; };
  journal j(o);
  writer_gate gate(j);
  for (int i = 0; i < 95; ++i) j.append(make_record("/topic/a"), nullptr);
  gate.release();
  flush_sync(j);
  EXPECT_EQ(j.batches_committed(), 10u);
  EXPECT_EQ(batch_callbacks, 10);
  EXPECT_EQ(j.head_seq("/topic/a"), 95u);
}

TEST_F(JournalTest, OnBatchDoneRunsOnceAfterTheBatchCallbacksInAppendOrder) {
  std::mutex mu;
  std::vector<std::string> events;
  auto o = options();
  o.on_batch_done = [&] {
    std::lock_guard lk(mu);
    events.push_back("batch");
  };
  journal j(o);
  writer_gate gate(j);
  for (int i = 1; i <= 3; ++i) {
    j.append(make_record("/topic/a"), [&](const append_result& r, const record&) {
      std::lock_guard lk(mu);
      events.push_back(std::to_string(r.seq));
    });
  }
  gate.release();
  flush_sync(j);
  std::lock_guard lk(mu);
  EXPECT_EQ(events, (std::vector<std::string>{"1", "2", "3", "batch"}));
}

TEST_F(JournalTest, FlushRunsAfterEveryEarlierAppendCompleted) {
  auto j = open();
  std::atomic<int> done{0};
  for (int i = 0; i < 200; ++i) {
    j->append(make_record("/topic/a"), [&done](const append_result&, const record&) { ++done; });
  }
  std::promise<int> seen;
  auto f = seen.get_future();
  j->flush([&] { seen.set_value(done.load()); });
  EXPECT_EQ(get(f), 200);
}

// --- failures ----------------------------------------------------------------------------------

TEST_F(JournalTest, DiskFullFailsTheBatchAndLaterAppendsContinueGaplessly) {
  auto o = options();
  o.max_file_bytes = 256 * 1024;
  journal j(o);
  const std::string body(8 * 1024, 'f');
  std::uint64_t committed = 0;
  append_result failed;
  for (int i = 0; i < 200 && !failed.ec; ++i) {
    const auto r = append_sync(j, make_record("/topic/a", body));
    if (r.ec) {
      failed = r;
    } else {
      committed = r.seq;
    }
  }
  ASSERT_EQ(failed.ec, errc::disk_full) << failed.ec.message();
  EXPECT_EQ(failed.seq, 0u);
  EXPECT_GT(committed, 0u);
  EXPECT_EQ(j.head_seq("/topic/a"), committed);
  EXPECT_NE(j.last_error_message().find("full"), std::string::npos) << j.last_error_message();

  // The whole batch fails, the small appends with the one that doesn't fit.
  {
    writer_gate gate(j);
    std::vector<append_result> results(3);
    const std::string sizes[] = {"s", std::string(64 * 1024, 'b'), "s"};
    for (std::size_t i = 0; i < 3; ++i) {
      j.append(make_record("/topic/a", sizes[i]),
               [&results, i](const append_result& r, const record&) { results[i] = r; });
    }
    gate.release();
    flush_sync(j);
    for (const auto& r : results) EXPECT_EQ(r.ec, errc::disk_full);
  }
  EXPECT_EQ(append_sync(j, make_record("/topic/new", body)).ec, errc::disk_full);
  EXPECT_EQ(j.head_seq("/topic/new"), 0u);  // the destination was not created either

  EXPECT_EQ(j.purge("/topic/a"), committed);  // frees pages for reuse
  EXPECT_EQ(append_sync(j, make_record("/topic/a", body)).seq, committed + 1);
  EXPECT_EQ(append_sync(j, make_record("/topic/new", body)).seq, 1u);
  EXPECT_EQ(seqs(replay_sync(j, last("/topic/a", 1))), range(committed + 1, committed + 1));
}

TEST_F(JournalTest, DestructorCommitsEveryPendingAppend) {
  std::atomic<int> ok{0};
  {
    auto j = open();
    for (int i = 0; i < 2000; ++i) {
      j->append(make_record("/topic/a"), [&ok](const append_result& r, const record&) {
        if (!r.ec) ++ok;
      });
    }
  }
  EXPECT_EQ(ok, 2000);
  auto j = open();
  EXPECT_EQ(j->head_seq("/topic/a"), 2000u);
  EXPECT_TRUE(replay_sync(*j, last("/topic/a", 2000)).complete);
}

TEST_F(JournalTest, AppendsMadeAfterShutdownBeganGetClosed) {
  auto j = open();
  journal* raw = j.get();  // usable until the destructor returns, which the gate prevents
  auto gate = std::make_unique<writer_gate>(*raw);
  std::atomic<int> pending_ok{0};
  raw->append(make_record("/topic/a"), [&](const append_result& r, const record&) {
    if (!r.ec) ++pending_ok;
  });
  std::thread destroyer([&j] { j.reset(); });

  // Probe until an append is refused: from then on the destructor is draining the queue.
  std::error_code probe;
  for (auto until = std::chrono::steady_clock::now() + deadline;
       probe != errc::closed && std::chrono::steady_clock::now() < until;) {
    raw->append(make_record("/topic/probe"), [&probe](const append_result& r, const record&) {
      if (r.ec) probe = r.ec;  // inline on this thread when refused
    });
    std::this_thread::yield();
  }
  EXPECT_EQ(probe, errc::closed);
  gate->release();
  destroyer.join();
  EXPECT_EQ(pending_ok, 1);  // the append made before shutdown was committed
}

// --- concurrency -------------------------------------------------------------------------------

TEST_F(JournalTest, ConcurrentAppendsAndReplaysSeeNoGapsDuplicatesOrReordering) {
  constexpr int producers = 4;
  constexpr int per_producer = 1000;
  auto o = options();
  o.max_batch = 64;  // many batches, so replays interleave with commits
  journal j(o);

  std::atomic<bool> stop{false};
  std::atomic<int> replays{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!stop) {
        const auto res = replay_sync(j, last("/topic/shared", 50));
        EXPECT_FALSE(res.ec);
        if (!res.records.empty()) {
          EXPECT_EQ(res.records.back().seq, res.head_seq);
        }
        for (std::size_t i = 1; i < res.records.size(); ++i) {
          EXPECT_EQ(res.records[i].seq, res.records[i - 1].seq + 1);
        }
        ++replays;
      }
    });
  }
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<std::uint64_t> acked;
  for (int t = 0; t < producers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_producer; ++i) {
        j.append(make_record("/topic/shared", std::to_string(t) + ":" + std::to_string(i)),
                 [&](const append_result& r, const record&) {
                   EXPECT_FALSE(r.ec);
                   std::lock_guard lk(mu);
                   acked.push_back(r.seq);
                 });
      }
    });
  }
  for (auto& t : threads) t.join();
  flush_sync(j);
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(replays, 0);

  constexpr auto total = static_cast<std::uint64_t>(producers * per_producer);
  std::sort(acked.begin(), acked.end());
  EXPECT_EQ(acked, range(1, total));
  const auto all = replay_sync(j, after("/topic/shared", 0, total));
  ASSERT_EQ(seqs(all), range(1, total));
  std::map<int, int> next;  // producer -> the next index it must show
  for (const auto& r : all.records) {
    const auto colon = r.body.find(':');
    const int t = std::stoi(r.body.substr(0, colon));
    const int i = std::stoi(r.body.substr(colon + 1));
    EXPECT_EQ(i, next[t]++) << "producer " << t;
  }
}

// --- opening: fixtures, schema, crashes ----------------------------------------------------------

TEST_F(JournalTest, CreatesMissingDirectories) {
  journal_options o;
  o.path = dir_ / "a" / "b" / "journal.db";
  {
    journal j(o);
    append_sync(j, make_record("/topic/a"));
  }
  EXPECT_TRUE(fs::exists(o.path));
}

TEST_F(JournalTest, RefusesAGarbageFileAsCorruptWithoutTouchingIt) {
  const auto path = copy_fixture("garbage.journal");
  const auto before = read_file(path);
  const auto e = open_fails(path);
  EXPECT_EQ(e.code(), errc::corrupt);
  const std::string what = e.what();
  EXPECT_NE(what.find(path.string()), std::string::npos) << what;
  EXPECT_NE(what.find("refusing to start; move it aside to start with an empty journal"),
            std::string::npos)
      << what;
  EXPECT_EQ(read_file(path), before);
}

TEST_F(JournalTest, RefusesAJournalCutInHalfAsCorrupt) {
  {
    auto j = open();
    append_many(*j, "/topic/a", 500, 128);
  }  // the last close checkpoints: everything is in the main file
  const auto full = read_file(db_path());
  ASSERT_GT(full.size(), 64u * 1024);
  write_file(db_path(), std::string_view(full).substr(0, full.size() / 2));
  const auto e = open_fails(db_path());
  EXPECT_EQ(e.code(), errc::corrupt) << e.what();
  EXPECT_NE(std::string(e.what()).find("move it aside"), std::string::npos) << e.what();
  EXPECT_EQ(read_file(db_path()).size(), full.size() / 2);
}

TEST_F(JournalTest, RefusesTheCheckedInTruncatedJournalAsCorrupt) {
  const auto path = copy_fixture("truncated.journal");
  const auto before = read_file(path);
  const auto e = open_fails(path);
  EXPECT_EQ(e.code(), errc::corrupt) << e.what();
  EXPECT_EQ(read_file(path), before);
}

TEST_F(JournalTest, RefusesANewerSchemaNamingBothVersions) {
  const auto path = copy_fixture("newer-schema.journal");
  const auto before = read_file(path);
  const auto e = open_fails(path);
  EXPECT_EQ(e.code(), errc::newer_schema);
  const std::string what = e.what();
  EXPECT_NE(what.find(path.string()), std::string::npos) << what;
  EXPECT_NE(what.find("schema version 999"), std::string::npos) << what;
  EXPECT_NE(what.find("version 3 "), std::string::npos) << what;
  EXPECT_EQ(read_file(path), before);
}

TEST_F(JournalTest, RefusesAForeignSqliteDatabase) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "CREATE TABLE accounts (id INTEGER PRIMARY KEY)", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  const auto e = open_fails(db_path());
  EXPECT_EQ(e.code(), errc::corrupt);
  EXPECT_NE(std::string(e.what()).find("no stompd schema version"), std::string::npos) << e.what();
}

TEST_F(JournalTest, MigratesAnEmptyFileToTheCurrentSchema) {
  write_file(db_path(), "");
  {
    auto j = open();
    EXPECT_EQ(append_sync(*j, make_record("/topic/a")).seq, 1u);
  }
  const auto file = read_file(db_path());
  ASSERT_GE(file.size(), 100u);
  EXPECT_EQ(header_u32(file, 60), 3u);           // PRAGMA user_version
  EXPECT_EQ(header_u32(file, 68), 0x53544d44u);  // PRAGMA application_id, "STMD"
  EXPECT_EQ(append_sync(*open(), make_record("/topic/a")).seq, 2u);
}

TEST_F(JournalTest, ADirectoryAsThePathIsAnIoError) {
  fs::create_directories(db_path());
  EXPECT_EQ(open_fails(db_path()).code(), errc::io_error);
}

TEST_F(JournalTest, PowerDurabilityCommitsLikeProcessDurability) {
  auto o = options();
  o.mode = durability::power;
  {
    journal j(o);
    append_many(j, "/topic/a", 20);
  }
  journal j(o);
  EXPECT_EQ(seqs(replay_sync(j, last("/topic/a", 20))), range(1, 20));
}

TEST_F(JournalTest, AKilledProcessLosesNothingCommittedAndNeverReusesASeq) {
  const pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    // No gtest assertions here: the parent checks what reached the file.
    journal j(options());
    const auto results = append_many(j, "/topic/a", 100);
    const bool all_ok =
        std::all_of(results.begin(), results.end(), [](const append_result& r) { return !r.ec; });
    if (!all_ok) _exit(1);
    kill(getpid(), SIGKILL);  // no destructor, no checkpoint: the WAL holds the commits
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  auto j = open();
  EXPECT_EQ(j->head_seq("/topic/a"), 100u);
  EXPECT_EQ(append_sync(*j, make_record("/topic/a")).seq, 101u);
  const auto res = replay_sync(*j, last("/topic/a", 101));
  EXPECT_EQ(seqs(res), range(1, 101));
  EXPECT_TRUE(res.complete);
}

TEST(JournalErrorTest, EveryCodeHasAMessageInTheStorageCategory) {
  for (auto e :
       {errc::corrupt, errc::newer_schema, errc::disk_full, errc::io_error, errc::closed}) {
    const std::error_code ec = e;
    EXPECT_STREQ(ec.category().name(), "storage");
    EXPECT_FALSE(ec.message().empty());
    EXPECT_EQ(ec.message().find("unknown"), std::string::npos);
  }
}

}  // namespace
}  // namespace storage
