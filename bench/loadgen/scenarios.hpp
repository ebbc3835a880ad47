#pragma once

#include "options.hpp"
#include "report.hpp"

namespace bench {

// Each runs one scenario to completion (every phase bounded in time) and returns its result.
// Throws std::runtime_error when the scenario cannot run at all (no broker, refused CONNECT).
report run_traffic(const options& o);  // fanout, rooms, journal
report run_idle(const options& o);
report run_replay(const options& o);
report run_floor(const options& o);
report run_capacity(const options& o);  // the generator's receive path, no broker

}  // namespace bench
