// The x86-64 SIMD level the kernels' dispatched loops run at (shift_stack, column_fill).
#pragma once

namespace cloudcov {

enum class SimdLevel { baseline, avx2, avx512 };

// The best level this CPU runs among those compiled in, capped by the environment variable
// CLOUDCOV_SIMD ("baseline" or "avx2", read once, at the first call; for testing every code
// path on one machine). Thread-safe.
SimdLevel simd_level();

// "baseline", "avx2" or "avx512".
const char* simd_level_name();

}  // namespace cloudcov
