// A software prefetch the compiler cannot drop.
//
// GCC treats __builtin_prefetch as free of side effects and deletes a loop whose body is
// nothing but prefetches (GCC 12 -O1 and up removed the whole of StackCov::prefetch, so the
// per-star gather ran without any prefetch). An asm volatile statement is never deleted.
#pragma once
#include <atomic>

namespace cloudcov {

// Ask for the cache line holding *p to be brought into L2 (x86 prefetcht1: L2 and the outer
// caches, not L1). Never faults; no effect on any value.
inline void prefetch_l2(const void* p) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
#else
    __builtin_prefetch(p, 0, 2);
#endif
}

// The same into L1 (x86 prefetcht0), for data used within the next few hundred cycles.
inline void prefetch_l1(const void* p) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
    __builtin_prefetch(p, 0, 3);
#endif
}

// Whether the per-star gather prefetches (StackCov::prefetch). On by default; benchmarks
// switch it off (_core.set_gather_prefetch) to measure what it gains on the CPU at hand.
inline std::atomic<bool>& gather_prefetch() {
    static std::atomic<bool> on{true};
    return on;
}

}  // namespace cloudcov
