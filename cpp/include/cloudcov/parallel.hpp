// Fork-join helpers. Work items are independent and each one is computed the same way
// whatever thread runs it, so results never depend on the thread count.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
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

// A fixed set of worker threads started once and reused by every run() (one CCD strip runs
// hundreds of short fork-join rounds: the stack rows of each star batch, then its stars).
// The calling thread takes part as thread 0, so a pool of size 1 starts no thread.
class WorkerPool {
  public:
    explicit WorkerPool(int nthreads) : size_(std::max(1, resolve_threads(nthreads))) {
        threads_.reserve(static_cast<size_t>(size_ - 1));
        for (int t = 1; t < size_; ++t) threads_.emplace_back([this, t] { loop(t); });
    }
    ~WorkerPool() {
        {
            std::lock_guard<std::mutex> lock(m_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& th : threads_) th.join();
    }
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;
    int size() const { return size_; }

    // Run fn(item, thread_id) for item in [0, n) on up to `limit` threads of the pool
    // (0: all), handing out items dynamically; thread_id < size(). The first exception
    // thrown by any item is rethrown here after every thread has stopped.
    template <class F>
    void run(std::int64_t n, F&& fn, int limit = 0) {
        if (n <= 0) return;
        int use = std::min<std::int64_t>(limit > 0 ? std::min(limit, size_) : size_, n);
        if (use <= 1) {
            for (std::int64_t i = 0; i < n; ++i) fn(i, 0);
            return;
        }
        std::atomic<std::int64_t> next{0};
        std::exception_ptr err;
        std::mutex err_mutex;
        std::function<void(int)> job = [&](int tid) {
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
        {
            std::lock_guard<std::mutex> lock(m_);
            job_ = &job;
            workers_ = use - 1;
            pending_ = use - 1;
            ++generation_;
        }
        wake_.notify_all();
        job(0);
        {
            std::unique_lock<std::mutex> lock(m_);
            done_.wait(lock, [&] { return pending_ == 0; });
            job_ = nullptr;
        }
        if (err) std::rethrow_exception(err);
    }

  private:
    void loop(int tid) {
        std::uint64_t seen = 0;
        for (;;) {
            std::function<void(int)>* job;
            {
                std::unique_lock<std::mutex> lock(m_);
                wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
                if (stop_) return;
                seen = generation_;
                if (tid > workers_) continue;   // not needed in this round
                job = job_;
            }
            (*job)(tid);
            {
                std::lock_guard<std::mutex> lock(m_);
                if (--pending_ == 0) done_.notify_one();
            }
        }
    }

    int size_;
    std::vector<std::thread> threads_;
    std::mutex m_;
    std::condition_variable wake_, done_;
    std::function<void(int)>* job_ = nullptr;
    std::uint64_t generation_ = 0;
    int workers_ = 0, pending_ = 0;
    bool stop_ = false;
};

// Run fn(item, thread_id) for item in [0, n) on up to nthreads threads started for this call
// (for one-off kernels; repeated rounds should share a WorkerPool).
template <class F>
void parallel_for(std::int64_t n, int nthreads, F&& fn) {
    nthreads = std::max(1, std::min<int>(resolve_threads(nthreads), static_cast<int>(std::max<std::int64_t>(n, 1))));
    if (nthreads == 1) {
        for (std::int64_t i = 0; i < n; ++i) fn(i, 0);
        return;
    }
    WorkerPool pool(nthreads);
    pool.run(n, fn);
}

}  // namespace cloudcov
