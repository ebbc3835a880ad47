#pragma once

#include "stomp/frame.hpp"

#include <string>

namespace stompd_test {

// The serialize-then-parse oracle, shared by tests/stomp/serializer_test.cpp and the parser
// fuzz target so both hold the codec to the same rule. Depends on stompd::stomp only (the
// fuzz build links nothing else).

// What parse(serialize(f, v)) must give back: the computed content-length replaces any given
// one (none for an empty body); where the version or command has no escapes (1.0; CONNECT,
// STOMP, CONNECTED) CR and LF in names and values become spaces; and in 1.1, which cannot
// escape CR, a value's last CR is lost to the parser's CRLF leniency.
stomp::frame expected_round_trip(const stomp::frame& f, stomp::version v);

// Serializes `f` in `v` and parses it back with default limits (escaping may push a frame
// past tighter ones). Empty when the bytes hold exactly one frame equal to
// expected_round_trip(f, v) and the parser is left with nothing buffered; otherwise one line
// saying what went wrong, for a test's failure message.
std::string round_trip_mismatch(const stomp::frame& f, stomp::version v);

}  // namespace stompd_test
