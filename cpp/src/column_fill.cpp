#include "cloudcov/column_fill.hpp"

#include "cloudcov/simd_level.hpp"

namespace cloudcov {

#ifdef CLOUDCOV_HAVE_AVX512
namespace avx512 {
void fill_columns(const ColumnFill& f);
}
#endif

bool column_fill_available(int Np) {
    if (Np > 64 || !column_fill_simd().load(std::memory_order_relaxed)) return false;
#ifdef CLOUDCOV_HAVE_AVX512
    return simd_level() == SimdLevel::avx512;
#else
    return false;
#endif
}

bool fill_columns_simd(const ColumnFill& f) {
    if (!column_fill_available(f.Np)) return false;
#ifdef CLOUDCOV_HAVE_AVX512
    avx512::fill_columns(f);
    return true;
#else
    return false;
#endif
}

}  // namespace cloudcov
