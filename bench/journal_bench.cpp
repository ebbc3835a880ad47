// Throughput of the message journal (storage/) on a real file, in a fresh directory under
// $TMPDIR per benchmark.
//
// Targets (Release, 2 cores): >= 100,000 appends/s of 128-byte messages with group commit in
// process mode, and a replay of last:1000 in under 20 ms. Appends are made the way the broker
// makes them: many in flight at once (one producer that never waits, or 8 producer threads),
// then a flush waits for the last commit, so every counted append is committed. Wall-clock
// time, since the work happens on the journal's threads.

#include "storage/journal.hpp"

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstddef>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace storage;

constexpr std::size_t body_bytes = 128;
constexpr std::size_t appends_per_iteration = 10'000;

// A journal in its own temporary directory, removed afterwards.
class temp_journal {
 public:
  explicit temp_journal(durability mode) : dir_(make_dir()) {
    journal_options o;
    o.path = dir_ / "journal.db";
    o.mode = mode;
    journal_ = std::make_unique<journal>(std::move(o));
  }
  ~temp_journal() {
    journal_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  temp_journal(const temp_journal&) = delete;
  temp_journal& operator=(const temp_journal&) = delete;

  journal& get() { return *journal_; }

 private:
  static fs::path make_dir() {
    std::string tmpl = (fs::temp_directory_path() / "stompd-journal-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    return tmpl;
  }

  fs::path dir_;
  std::unique_ptr<journal> journal_;
};

// What the broker stores for a small SEND: a few headers and a 128-byte body.
record message(std::size_t i, std::size_t destinations = 16) {
  record r;
  r.destination = "/topic/bench." + std::to_string(i % destinations);
  r.headers = {{"content-type", "application/json"}, {"x-trace-id", "4bf92f3577b34da6"}};
  r.body.assign(body_bytes, static_cast<char>('a' + i % 26));
  return r;
}

void flush_and_wait(journal& j) {
  std::promise<void> done;
  auto f = done.get_future();
  j.flush([&done] { done.set_value(); });
  f.wait();
}

// Args: durability (0 process, 1 power), producer threads.
void BM_JournalAppend(benchmark::State& state) {
  const auto mode = state.range(0) == 0 ? durability::process : durability::power;
  const auto producers = static_cast<std::size_t>(state.range(1));
  temp_journal tj(mode);
  journal& j = tj.get();
  std::size_t failures = 0;  // read after the flush, which orders it after every callback
  const auto produce = [&j, &failures](std::size_t first, std::size_t n) {
    for (std::size_t i = first; i < first + n; ++i) {
      j.append(message(i), [&failures](const append_result& r, const record&) {
        if (r.ec) ++failures;  // callbacks run on the one writer thread
      });
    }
  };
  const std::uint64_t batches_before = j.batches_committed();
  for (auto _ : state) {
    const std::size_t per_producer = appends_per_iteration / producers;
    if (producers == 1) {
      produce(0, appends_per_iteration);
    } else {
      std::vector<std::thread> threads;
      for (std::size_t p = 0; p < producers; ++p) {
        threads.emplace_back(produce, p * per_producer, per_producer);
      }
      for (auto& t : threads) t.join();
    }
    flush_and_wait(j);
  }
  if (failures > 0) state.SkipWithError("appends failed");
  const auto items = state.iterations() * static_cast<std::int64_t>(appends_per_iteration);
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * static_cast<std::int64_t>(body_bytes));
  state.counters["appends_per_batch"] =
      static_cast<double>(items) / static_cast<double>(j.batches_committed() - batches_before);
}
BENCHMARK(BM_JournalAppend)
    ->ArgNames({"power", "producers"})
    ->Args({0, 1})
    ->Args({0, 8})
    ->Args({1, 1})
    ->Args({1, 8})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// A journal whose one destination holds `stored` 128-byte messages; each replay benchmark
// keeps its own (a function-local static, removed at exit).
void fill(journal& j, std::size_t stored) {
  for (std::size_t i = 0; i < stored; ++i) j.append(message(i, 1), nullptr);
  flush_and_wait(j);
}

constexpr std::size_t replay_stored = 20'000;

replay_result replay_and_wait(journal& j, replay_request req) {
  std::promise<replay_result> done;
  auto f = done.get_future();
  j.replay(std::move(req), [&done](replay_result&& r) { done.set_value(std::move(r)); });
  return f.get();
}

void BM_JournalReplayLast1000(benchmark::State& state) {
  static temp_journal tj(durability::process);
  journal& j = tj.get();
  if (j.head_seq("/topic/bench.0") == 0) fill(j, replay_stored);
  replay_request req;
  req.destination = "/topic/bench.0";
  req.mode = replay_request::kind::last;
  req.value = 1000;
  for (auto _ : state) {
    const auto res = replay_and_wait(j, req);
    if (res.records.size() != 1000) state.SkipWithError("short replay");
    benchmark::DoNotOptimize(res.records.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_JournalReplayLast1000)->UseRealTime()->Unit(benchmark::kMillisecond);

// Arg: messages after the given seq (a reconnecting subscriber catching up).
void BM_JournalReplayAfter(benchmark::State& state) {
  static temp_journal tj(durability::process);
  journal& j = tj.get();
  if (j.head_seq("/topic/bench.0") == 0) fill(j, replay_stored);
  const auto n = static_cast<std::uint64_t>(state.range(0));
  replay_request req;
  req.destination = "/topic/bench.0";
  req.mode = replay_request::kind::after;
  req.value = j.head_seq(req.destination) - n;
  for (auto _ : state) {
    const auto res = replay_and_wait(j, req);
    if (res.records.size() != n) state.SkipWithError("short replay");
    benchmark::DoNotOptimize(res.records.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_JournalReplayAfter)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10'000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
