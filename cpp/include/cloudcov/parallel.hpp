// Minimal fork-join helpers. Work items are independent and each one is computed the
// same way whatever thread runs it, so results never depend on the thread count.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace cloudcov {

// Threads to run: nthreads (0 = all cores), never more than the machine's cores, so that
// per-thread workspaces cannot make memory depend on the request (results do not depend on
// the thread count). The Python layer caps at the process's affinity and warns.
inline int resolve_threads(int nthreads) {
    const unsigned hc = std::thread::hardware_concurrency();
    const int cores = hc == 0 ? 1 : static_cast<int>(std::min<unsigned>(hc, 1u << 20));
    return nthreads > 0 ? std::min(nthreads, cores) : cores;
}

// Run fn(item, thread_id) for item in [0, n) on up to nthreads threads, handing out
// items dynamically. The first exception thrown by any worker is rethrown.
template <class F>
void parallel_for(std::int64_t n, int nthreads, F&& fn) {
    nthreads = std::max(1, std::min<int>(resolve_threads(nthreads), static_cast<int>(std::max<std::int64_t>(n, 1))));
    if (nthreads == 1) {
        for (std::int64_t i = 0; i < n; ++i) fn(i, 0);
        return;
    }
    std::atomic<std::int64_t> next{0};
    std::exception_ptr err;
    std::mutex err_mutex;
    auto worker = [&](int tid) {
        try {
            for (;;) {
                std::int64_t i = next.fetch_add(1);
                if (i >= n) break;
                fn(i, tid);
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(err_mutex);
            if (!err) err = std::current_exception();
            next.store(n);
        }
    };
    std::vector<std::thread> pool;
    pool.reserve(nthreads - 1);
    for (int t = 1; t < nthreads; ++t) pool.emplace_back(worker, t);
    worker(0);
    for (auto& th : pool) th.join();
    if (err) std::rethrow_exception(err);
}

}  // namespace cloudcov
