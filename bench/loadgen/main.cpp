// stompd-bench: a load generator for STOMP 1.2 brokers (stompd, RabbitMQ Web-STOMP, ActiveMQ)
// over WebSocket or TCP, loopback only. See `stompd-bench --help` and docs/BENCHMARKS.md.

#include "options.hpp"
#include "proc_stats.hpp"
#include "scenarios.hpp"

#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  try {
    auto o = bench::parse_options(argc, argv);
    if (!o) return 0;
    // A broker that resets a connection must not kill the generator with SIGPIPE.
    std::signal(SIGPIPE, SIG_IGN);
    bench::raise_open_file_limit();
    bench::report r;
    switch (o->scenario) {
      case bench::scenario::fanout:
      case bench::scenario::rooms:
      case bench::scenario::journal:
        r = bench::run_traffic(*o);
        break;
      case bench::scenario::idle:
        r = bench::run_idle(*o);
        break;
      case bench::scenario::replay:
        r = bench::run_replay(*o);
        break;
      case bench::scenario::floor:
        r = bench::run_floor(*o);
        break;
      case bench::scenario::capacity:
        r = bench::run_capacity(*o);
        break;
    }
    if (o->json) {
      std::fputs(r.text().c_str(), stderr);
      std::fputs((r.json() + "\n").c_str(), stdout);
    } else {
      std::fputs(r.text().c_str(), stdout);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stompd-bench: %s\n", e.what());
    return 1;
  }
}
