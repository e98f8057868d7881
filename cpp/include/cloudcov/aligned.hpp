// Cache-line aligned std::vector for the scratch arrays handed to LAPACK.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace cloudcov {

// std::allocator with 64-byte (cache-line) alignment: LAPACK implementations may pick their
// code path by the alignment of the arrays they get (Intel MKL does), so every thread's
// scratch starts on a cache line and a star's arithmetic does not depend on which thread
// or allocation it got.
template <class T>
struct CacheAligned {
    using value_type = T;
    static constexpr std::align_val_t kAlign{64};
    CacheAligned() = default;
    template <class U>
    CacheAligned(const CacheAligned<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, kAlign); }
    template <class U>
    bool operator==(const CacheAligned<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const CacheAligned<U>&) const noexcept { return false; }
};
template <class T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

}  // namespace cloudcov
