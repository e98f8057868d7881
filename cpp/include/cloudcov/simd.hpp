// SIMD code paths. Kernels whose inner loops gain from wider vectors (the stack sweep, the
// guard's dot products) are compiled once per level on x86-64 (baseline, AVX2 + FMA,
// AVX-512; CMakeLists.txt) and dispatched at run time; other CPUs build the baseline only.
#pragma once

namespace cloudcov {

enum class SimdLevel { baseline, avx2, avx512 };

// The best compiled level this CPU runs, capped by the environment variable CLOUDCOV_SIMD
// ("baseline" or "avx2"; read once, at the first call: tests run every path on one machine).
SimdLevel simd_level();

// "baseline", "avx2" or "avx512".
const char* simd_level_name(SimdLevel level);

// Dot product of v and w (m >= 0 values each) with a fixed order of operations, so that every
// SIMD level gives the same bits: partial sum s (s = 0 .. 63) accumulates v[i] * w[i] for the
// i = s mod 64, in increasing i; then p[t] += p[t + h] for h = 32, 16, ..., 1 and t < h; the
// result is p[0]. Products and sums are rounded separately (no fused multiply-add: the
// translation units are built with -ffp-contract=off). 64 partial sums keep four 16-float
// (AVX-512) or eight 8-float (AVX2) accumulators in flight, where the dependent adds of one
// accumulator would bound the loop.
float dot_fixed(const float* v, const float* w, int m);
double dot_fixed(const double* v, const double* w, int m);

}  // namespace cloudcov
