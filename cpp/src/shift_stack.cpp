#include "cloudcov/shift_stack.hpp"

#include <algorithm>
#include <vector>

#include "cloudcov/boxcar.hpp"
#include "cloudcov/errors.hpp"
#include "cloudcov/parallel.hpp"

namespace cloudcov {

#define CLOUDCOV_DECLARE_LEVEL(ns)                                       \
    namespace ns {                                                       \
    template <class T>                                                   \
    void stack_group(const detail::GroupArgs& g, T* stack);              \
    }
CLOUDCOV_DECLARE_LEVEL(baseline)
#ifdef CLOUDCOV_HAVE_AVX2
CLOUDCOV_DECLARE_LEVEL(avx2)
#endif
#ifdef CLOUDCOV_HAVE_AVX512
CLOUDCOV_DECLARE_LEVEL(avx512)
#endif

namespace {

enum class Level { baseline, avx2, avx512 };

Level detect_level() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
#ifdef CLOUDCOV_HAVE_AVX512
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return Level::avx512;
#endif
#ifdef CLOUDCOV_HAVE_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Level::avx2;
#endif
#endif
    return Level::baseline;
}

const Level kLevel = detect_level();

template <class T>
void run_group(const detail::GroupArgs& g, T* stack) {
    switch (kLevel) {
#ifdef CLOUDCOV_HAVE_AVX512
        case Level::avx512:
            avx512::stack_group<T>(g, stack);
            return;
#endif
#ifdef CLOUDCOV_HAVE_AVX2
        case Level::avx2:
            avx2::stack_group<T>(g, stack);
            return;
#endif
        default:
            baseline::stack_group<T>(g, stack);
    }
}

}  // namespace

const char* shift_stack_simd_level() {
    switch (kLevel) {
        case Level::avx512:
            return "avx512";
        case Level::avx2:
            return "avx2";
        default:
            return "baseline";
    }
}

template <class T>
void shift_stack(const Image<const T>& x, idx Np, idx wrow, idx wcol, const Image<T>& bimage,
                 const Stack<T>& stack, int nthreads) {
    require(Np >= 3 && Np % 2 == 1, "Np must be odd and >= 3");
    require(wrow >= 1 && wcol >= 1, "boxcar widths must be >= 1");
    require(x.rows >= wrow && x.cols >= wcol, "boxcar window larger than the tile");
    const idx orow = x.rows - wrow + 1, ocol = x.cols - wcol + 1;
    require(bimage.rows == orow && bimage.cols == ocol, "bimage must be the boxcar valid region");
    require(stack.rows == orow && stack.cols == ocol && stack.nshift == n_shifts(Np),
            "stack has the wrong shape");

    boxcar_sum<T, T>(x, wrow, wcol, bimage);

    // Double copy of the tile: P = Np - 1 zero columns on the left, P + 8 on the right
    // (vector over-read of the padded shift count), and Np - 1 zero rows at the bottom.
    const idx P = Np - 1;
    const idx xs = x.cols + 2 * P + 8;
    const idx xr = x.rows + Np - 1;
    std::vector<double> xd(static_cast<size_t>(xr * xs), 0.0);
    for (idx r = 0; r < x.rows; ++r) {
        const T* src = x.row(r);
        double* dst = xd.data() + r * xs + P;
        for (idx c = 0; c < x.cols; ++c) dst[c] = static_cast<double>(src[c]);
    }

    const idx ngroup = Np;  // one group per drow
    const int nt = std::max(1, std::min<int>(resolve_threads(nthreads), static_cast<int>(ngroup)));
    const idx ndp_max = ((2 * Np - 1) + 7) / 8 * 8;
    std::vector<std::vector<double>> acc(nt), delta(nt);
    for (int t = 0; t < nt; ++t) {
        acc[t].assign(static_cast<size_t>(ocol * ndp_max), 0.0);
        delta[t].assign(static_cast<size_t>(ndp_max), 0.0);
    }
    // Largest groups first (drow >= 1 hold 2 Np - 1 shifts, drow == 0 holds Np).
    parallel_for(ngroup, nt, [&](std::int64_t item, int tid) {
        const idx drow = (item + 1) % Np;  // 1, 2, ..., Np - 1, then 0
        detail::GroupArgs g;
        g.xd = xd.data() + P;
        g.xd_stride = xs;
        g.out_rows = orow;
        g.out_cols = ocol;
        g.wrow = wrow;
        g.wcol = wcol;
        g.drow = drow;
        g.dc0 = drow == 0 ? 0 : -(Np - 1);
        g.nd = drow == 0 ? Np : 2 * Np - 1;
        g.ndp = (g.nd + 7) / 8 * 8;
        g.s0 = shift_index(Np, drow, g.dc0);
        g.nshift = stack.nshift;
        g.acc = acc[tid].data();
        g.delta = delta[tid].data();
        run_group<T>(g, stack.data);
    });
}

template void shift_stack<float>(const Image<const float>&, idx, idx, idx, const Image<float>&,
                                 const Stack<float>&, int);
template void shift_stack<double>(const Image<const double>&, idx, idx, idx, const Image<double>&,
                                  const Stack<double>&, int);

}  // namespace cloudcov
