// A software prefetch the compiler cannot drop.
//
// GCC treats __builtin_prefetch as free of side effects and deletes a loop whose body is
// nothing but prefetches (GCC 12 -O1 and up removed the whole of StackCov::prefetch, so the
// per-star gather ran without any prefetch). An asm volatile statement is never deleted.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace cloudcov {

// Ask for the cache line holding *p to be brought into the cache: Level 2 into L2 and the
// outer caches, not L1 (x86 prefetcht1), Level 1 into L1 as well (prefetcht0, for data used
// within the next few hundred cycles). Never faults; no effect on any value.
template <int Level>
inline void prefetch_line(const void* p) {
    static_assert(Level == 1 || Level == 2, "prefetch into L1 or L2");
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    if constexpr (Level == 1)
        asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
    else
        asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
#else
    __builtin_prefetch(p, 0, Level == 1 ? 3 : 2);
#endif
}

// Ask for the cache line holding *p to be brought into L1 ready to be written (x86 prefetchw):
// for a line the code is about to store into, so that the stores do not wait for it. Executed
// as a no-op by x86-64 CPUs without it (0F 0D is a NOP there); only the AVX-512 code path calls
// it. Never faults; no effect on any value.
inline void prefetch_line_for_write(const void* p) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

// Every cache line of the bytes [p, p + len), once each, from the line holding p.
template <int Level>
inline void prefetch_lines(const void* p, std::size_t len) {
    const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
    for (std::uintptr_t q = a & ~std::uintptr_t(63); q < a + len; q += 64)
        prefetch_line<Level>(reinterpret_cast<const void*>(q));
}

// Whether the per-star gather prefetches (StackCov::prefetch). On by default; benchmarks
// switch it off (_core.set_gather_prefetch) to measure what it gains on the CPU at hand.
inline std::atomic<bool>& gather_prefetch() {
    static std::atomic<bool> on{true};
    return on;
}

}  // namespace cloudcov
