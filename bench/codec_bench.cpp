// Throughput of the STOMP frame codec, one core.
//
// Targets (Release): parse >= 3 million small SEND frames/s and >= 2 GB/s for 64 KiB bodies.
// Parse benchmarks feed a stream of many frames in socket-read-sized chunks and drain every
// frame, so they measure the steady state, copy into the parser's buffer included.

#include "stomp/parser.hpp"
#include "stomp/serializer.hpp"

#include <benchmark/benchmark.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace stomp;

constexpr std::size_t read_size = 64 * 1024;  // what one socket read typically delivers

// SEND with 4 headers plus the computed content-length, and a 128-byte body.
frame small_send() {
  return frame(command::send,
               {{"destination", "/queue/orders.eu-west"},
                {"content-type", "application/json"},
                {"receipt", "r-000042"},
                {"x-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"}},
               std::string(128, 'x'));
}

frame large_send(std::size_t body_bytes = 64 * 1024) {
  std::string body(body_bytes, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  return frame(command::send, {{"destination", "/queue/blobs"}, {"content-type", "image/png"}},
               std::move(body));
}

std::string repeat(const std::string& frame_bytes, std::size_t n) {
  std::string out;
  out.reserve(frame_bytes.size() * n);
  for (std::size_t i = 0; i < n; ++i) out += frame_bytes;
  return out;
}

// Feeds `stream` in read_size chunks, draining frames after each; returns the frame count.
std::size_t parse_stream(parser& p, std::string_view stream) {
  std::size_t frames = 0;
  frame_view f;
  while (!stream.empty()) {
    const std::size_t n = std::min(stream.size(), read_size);
    p.feed(stream.substr(0, n));
    stream.remove_prefix(n);
    std::error_code ec;
    while (!(ec = p.next(f))) {
      benchmark::DoNotOptimize(f.body.data());
      ++frames;
    }
    if (ec != errc::need_more) return 0;
  }
  return frames;
}

void run_parse(benchmark::State& state, const std::string& frame_bytes, std::size_t n) {
  const std::string stream = repeat(frame_bytes, n);
  parser p;
  for (auto _ : state) {
    if (parse_stream(p, stream) != n) {
      state.SkipWithError(p.error().message().c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}

void BM_ParseSmallSend(benchmark::State& state) {
  run_parse(state, serialize(small_send(), version::v1_2), 1000);
}
BENCHMARK(BM_ParseSmallSend);

void BM_ParseLargeBody(benchmark::State& state) {
  run_parse(state, serialize(large_send(), version::v1_2), 64);
}
BENCHMARK(BM_ParseLargeBody);

// The same 64 KiB body without content-length: the parser scans it for the NUL.
void BM_ParseLargeBodyWithoutContentLength(benchmark::State& state) {
  const frame f = large_send();
  std::string bytes = "SEND\ndestination:/queue/blobs\ncontent-type:image/png\n\n" + f.body;
  bytes.push_back('\0');
  run_parse(state, bytes, 64);
}
BENCHMARK(BM_ParseLargeBodyWithoutContentLength);

void run_serialize(benchmark::State& state, const frame& f) {
  std::string out;
  for (auto _ : state) {
    out.clear();
    serialize(out, f, version::v1_2);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * out.size()));
}

void BM_SerializeSmallSend(benchmark::State& state) { run_serialize(state, small_send()); }
BENCHMARK(BM_SerializeSmallSend);

void BM_SerializeLargeBody(benchmark::State& state) { run_serialize(state, large_send()); }
BENCHMARK(BM_SerializeLargeBody);

// Fan-out of one MESSAGE: the shared tail is built once, each recipient costs one head().
// Items are recipients; bytes are the head bytes built.
void BM_SharedMessageFanoutHead(benchmark::State& state) {
  const frame f = small_send();
  std::vector<header_view> headers = {{"destination", "/queue/orders.eu-west"},
                                      {"message-id", "m-123456789"},
                                      {"content-type", "application/json"}};
  const shared_message m(headers, f.body);
  constexpr std::size_t recipients = 1000;
  std::vector<std::string> subscriptions;
  std::vector<std::string> acks;
  for (std::size_t i = 0; i < recipients; ++i) {
    subscriptions.push_back("sub-" + std::to_string(i));
    acks.push_back(i % 2 == 0 ? "" : "ack-" + std::to_string(i));
  }
  std::string head;
  std::size_t head_bytes = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < recipients; ++i) {
      shared_message::head(head, subscriptions[i], acks[i], version::v1_2);
      benchmark::DoNotOptimize(head.data());
      benchmark::DoNotOptimize(m.tail(version::v1_2).data());
      head_bytes += head.size();
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * recipients));
  state.SetBytesProcessed(static_cast<std::int64_t>(head_bytes));
}
BENCHMARK(BM_SharedMessageFanoutHead);

// Encoding one MESSAGE for fan-out, paid once per publish.
void BM_SharedMessageBuild(benchmark::State& state) {
  const frame f = small_send();
  std::vector<header_view> headers;
  for (const header& h : f.headers) headers.push_back({h.name, h.value});
  headers.push_back({"message-id", "m-123456789"});
  for (auto _ : state) {
    const shared_message m(headers, f.body);
    benchmark::DoNotOptimize(m.tail(version::v1_2).data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SharedMessageBuild);

}  // namespace
