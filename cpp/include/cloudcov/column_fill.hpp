// The per-star gather by whole stamp rows: the bordered matrix of condition_attempt filled
// by a vector loop over each stamp row's stack entries, the good and hidden pixels picked out
// by compressing with per-row bit masks (AVX-512), instead of run by run (StackCov::fill and
// fill_transposed, the portable path).
//
// Column a of the bordered matrix (pixel i = good[a], or hidden[a - kc] for a >= kc) holds,
// below its diagonal, C(i, j) for the good pixels j after i (rows a + 1 .. kc - 1; good
// columns only) and for the hidden pixels j after i (rows kc + h ..); the good-hidden entries
// C(g, i) for good pixels g after a hidden pixel i sit in row a of column g. In every case the
// entry of a pixel pair is read at its earlier pixel (flat stamp order): for pixel i the stack
// entries of every pixel of stamp row rj >= ri are the Np contiguous values
// base[i] + rj * gs + (0 .. Np - 1) (see StackCov), so one stamp row gives, lane by lane,
//   C(i, j) = a S - (c bd[i]) bd[j]   and, for the transposed block,   C(g, i) = a S - (c bd[g]) bd[i]
// in double, rounded to float: the operations, and their order, of StackCov::fill and
// fill_transposed, so the matrix is bitwise the same (the kernel is compiled with
// -ffp-contract=off: no fused multiply-adds). Only the lanes of pixels that are written are
// loaded (masked loads); the stack lines are prefetched two columns ahead as by
// StackCov::prefetch. With colsum, the absolute column sums of C_kk are accumulated as in
// condition_attempt (the same partial sums in the same order).
//
// Measured on a Zen 4 EPYC (benchmarks/bench_prefetch.py --switch column-fill,
// profile_breakdown.py): see README.md, Performance.
#pragma once
#include <atomic>
#include <cstdint>

namespace cloudcov {

struct ColumnFill {
    const float* const* base = nullptr;    // StackCov::base: entries of pixel i, offset by -key[i]
    std::int64_t gs = 0;                   // the stack's group stride (values per shift row)
    const double* bd = nullptr;            // boxcar sum of each stamp pixel (Np * Np)
    double a = 0, c = 0;                   // StackCov::a_, c_
    int Np = 0;                            // stamp side, <= 64 (one bit mask per stamp row)
    const int* good = nullptr;             // kc flat indices, ascending
    const int* hidden = nullptr;           // kp flat indices, ascending
    int kc = 0, kp = 0;
    const std::uint64_t* good_rows = nullptr;    // Np masks: bit cj for good pixel (rj, cj)
    const std::uint64_t* hidden_rows = nullptr;  // Np masks: bit cj for hidden pixel (rj, cj)
    float* A = nullptr;                    // (kc + kp)^2, column-major, leading dimension kc + kp
    double* colsum = nullptr;              // kc, or nullptr: no column sums
    bool prefetch = true;                  // prefetch pixel a + 2's entries (as StackCov::prefetch)
};

// Fill every column of f.A below its diagonal, the transposed good-hidden block included (the
// diagonal must already be written when f.colsum is set). Returns false, touching nothing, when no vector kernel runs on this CPU
// (SIMD level below avx512), when f.Np > 64 or when switched off (column_fill_simd()).
bool fill_columns_simd(const ColumnFill& f);

// Whether fill_columns_simd runs for stamps of side Np on this CPU now.
bool column_fill_available(int Np);

// Whether the per-star gather uses fill_columns_simd where it can. On by default; benchmarks
// and tests switch it off (_core.set_column_fill_simd) to compare. The matrix is bitwise the
// same either way.
inline std::atomic<bool>& column_fill_simd() {
    static std::atomic<bool> on{true};
    return on;
}

}  // namespace cloudcov
