// libFuzzer target for stomp::parser (build with -DSTOMPD_FUZZ=ON and clang).
//
// Input layout: byte 0 picks the version, byte 1 the chunking pattern, the rest is the
// stream. Each input is parsed twice, in one chunk and in the chosen chunks; both runs must
// agree on every frame, the error and the heart-beat count. Every parsed frame must survive
// serialize → parse unchanged up to what the version cannot express (the oracle in
// tests/support/round_trip.hpp, which serializer_test.cpp uses too), and head() + tail() of a
// shared_message must equal serialize(). Limits are small so the limit paths run.

#include "round_trip.hpp"
#include "stomp/parser.hpp"
#include "stomp/serializer.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace stomp;

// Small, and chosen so every limit can fire first: six 64-byte lines overflow the frame,
// and a body passes its limit before the frame does.
constexpr parser_limits fuzz_limits{.max_frame_bytes = 384,
                                    .max_header_count = 6,
                                    .max_header_line_bytes = 64,
                                    .max_body_bytes = 192};

void check(bool ok) {
  if (!ok) std::abort();
}

struct outcome {
  std::vector<frame> frames;
  std::error_code ec;
  parse_error error;
  std::size_t heartbeats = 0;
};

// Drains next(); false once the parser failed.
bool drain(parser& p, outcome& o) {
  frame_view f;
  while (!(o.ec = p.next(f))) o.frames.emplace_back(f);
  if (o.ec != errc::need_more) return false;
  // A healthy parser holds at most the frame in progress, which is below the frame limit.
  check(p.buffered_bytes() <= fuzz_limits.max_frame_bytes);
  return true;
}

outcome parse_whole(std::string_view input, version v) {
  parser p(fuzz_limits);
  p.set_version(v);
  outcome o;
  p.feed(input);
  drain(p, o);
  o.error = p.error();
  o.heartbeats = p.heartbeats();
  return o;
}

outcome parse_chunked(std::string_view input, version v, std::uint8_t pattern) {
  parser p(fuzz_limits);
  p.set_version(v);
  outcome o;
  o.ec = errc::need_more;
  std::minstd_rand rng(pattern);
  const std::size_t max_chunk = (pattern & 0x3f) + 1u;  // 1: one byte at a time
  const bool zero_copy = (pattern & 0x80) != 0;
  while (!input.empty()) {
    const std::size_t n = std::min<std::size_t>(input.size(), 1 + rng() % max_chunk);
    if (zero_copy) {
      const std::span<char> space = p.prepare(n);
      check(space.size() >= n);
      std::memcpy(space.data(), input.data(), n);
      p.commit(n);
    } else {
      p.feed(input.substr(0, n));
    }
    input.remove_prefix(n);
    if (!drain(p, o)) break;
  }
  o.error = p.error();
  o.heartbeats = p.heartbeats();
  return o;
}

void check_round_trip(const frame& f, version v) {
  check(stompd_test::round_trip_mismatch(f, v).empty());
}

void check_shared_message(const frame& f, version v) {
  std::vector<header_view> headers;
  for (const header& h : f.headers) headers.push_back({h.name, h.value});
  const shared_message m(headers, f.body);
  std::string head;
  shared_message::head(head, "sub:0", "ack\n1", v);
  frame whole(command::message, {{"subscription", "sub:0"}, {"ack", "ack\n1"}}, f.body);
  whole.headers.insert(whole.headers.end(), f.headers.begin(), f.headers.end());
  check(head + std::string(m.tail(v)) == serialize(whole, v));
  check(m.body_size() == f.body.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const auto v = static_cast<version>(data[0] % 3);
  const std::uint8_t pattern = data[1];
  const std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);

  const outcome whole = parse_whole(input, v);
  const outcome chunked = parse_chunked(input, v, pattern);
  check(whole.frames == chunked.frames);
  check(whole.ec == chunked.ec);
  check(whole.error.code == whole.ec || whole.ec == errc::need_more);
  check(whole.error.header == chunked.error.header);
  check(whole.error.detail == chunked.error.detail);
  check(whole.heartbeats == chunked.heartbeats);
  if (whole.error.code) check(!whole.error.message().empty());

  for (const frame& f : whole.frames) {
    check_round_trip(f, v);
    check_shared_message(f, v);
  }
  return 0;
}
