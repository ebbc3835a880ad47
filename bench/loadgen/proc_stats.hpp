#pragma once

#include <cstdint>
#include <optional>

namespace bench {

// CPU time of a process, read from /proc/PID/stat (utime + stime, every thread), in seconds
// (the kernel counts in clock ticks, usually 10 ms). nullopt when the process is gone.
std::optional<double> process_cpu_seconds(int pid);

// Resident memory of a process (VmRSS in /proc/PID/status), in KiB.
std::optional<std::uint64_t> process_rss_kib(int pid);

// CPU time every core spent busy (user, nice, system, irq, softirq, steal in /proc/stat),
// in seconds summed over cores: the machine's load, to tell a noisy neighbour from the broker.
std::optional<double> machine_busy_seconds();

// This process's own CPU (getrusage), user and system seconds.
struct cpu_times {
  double user = 0;
  double system = 0;
  double total() const noexcept { return user + system; }
};
cpu_times self_cpu();
// The calling thread's CPU (RUSAGE_THREAD).
cpu_times thread_cpu();

// Raises the soft open-file limit to the hard limit; returns the new soft limit.
std::uint64_t raise_open_file_limit();

}  // namespace bench
