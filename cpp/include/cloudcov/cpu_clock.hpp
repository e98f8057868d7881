// CPU clocks of the process and of the calling thread (POSIX clock_gettime), for the run
// metadata (core-seconds per stage) and the benchmarks' in-stage timers.
#pragma once
#include <ctime>

namespace cloudcov {

// CPU seconds of the process (CLOCK_PROCESS_CPUTIME_ID) or the calling thread
// (CLOCK_THREAD_CPUTIME_ID).
inline double cpu_seconds(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
inline double process_cpu_seconds() { return cpu_seconds(CLOCK_PROCESS_CPUTIME_ID); }
inline double thread_cpu_seconds() { return cpu_seconds(CLOCK_THREAD_CPUTIME_ID); }

}  // namespace cloudcov
