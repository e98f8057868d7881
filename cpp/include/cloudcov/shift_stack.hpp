// The shifted-product stack (mirrors CloudCovErr.jl `cov_avg!`, src/cov.jl; paper eq. 6).
//
// For a tile x (rows x cols) and every shift d = (drow, dcol) with |drow|, |dcol| < Np,
// the stack holds the boxcar sum (wrow x wcol, valid region) of x(r, c) * x(r + drow, c + dcol).
// Only the canonical half of the shifts is stored: drow in [0, Np), dcol in (-Np, Np),
// excluding drow == 0 with dcol < 0 (each of those is the mirror of a stored shift).
// That is Np (2 Np - 1) - (Np - 1) shifts, 2113 for Np = 33.
//
// Layout: stack(r, c, s) at data[(r * out_cols + c) * nshift + s], so all shifts of one
// boxcar-output pixel are contiguous; s = shift_index(Np, drow, dcol).
// Products whose partner pixel falls outside the tile count as zero; such stack entries
// are never read for stamps that lie inside the valid region.
#pragma once
#include "cloudcov/views.hpp"

namespace cloudcov {

// Largest stamp size accepted anywhere (keeps n_shifts, Np**2 and Np**4 far from overflow;
// the Np**2 x Np**2 covariance of Np = 1023 would already take 8.8 TB).
constexpr idx kMaxNp = 1023;

inline idx n_shifts(idx Np) { return Np * (2 * Np - 1) - (Np - 1); }

// Index of a canonical shift (drow >= 0, and dcol >= 0 when drow == 0).
inline idx shift_index(idx Np, idx drow, idx dcol) {
    return drow == 0 ? dcol : Np + (drow - 1) * (2 * Np - 1) + (dcol + Np - 1);
}

// bimage: (rows - wrow + 1) x (cols - wcol + 1) boxcar sums of x.
// stack: same rows/cols, nshift = n_shifts(Np). Running sums are accumulated in double;
// work is split over shift rows (drow) on nthreads threads (0 = all cores); the result
// does not depend on nthreads.
template <class T>
void shift_stack(const Image<const T>& x, idx Np, idx wrow, idx wcol, const Image<T>& bimage,
                 const Stack<T>& stack, int nthreads);

// Which SIMD code path shift_stack uses on this CPU ("avx512", "avx2" or "baseline").
const char* shift_stack_simd_level();

namespace detail {
// One drow group: writes stack[..][..][s0 .. s0 + nd). xd: double copy of the tile with
// column padding and zero rows (see shift_stack.cpp). acc/delta: scratch.
struct GroupArgs {
    const double* xd;  // pointer to element (0, 0) of the padded double tile
    idx xd_stride;
    idx out_rows, out_cols, wrow, wcol;
    idx drow, dc0, nd, ndp, s0, nshift;
    double* acc;    // out_cols * ndp
    double* delta;  // ndp
};
}  // namespace detail

}  // namespace cloudcov
