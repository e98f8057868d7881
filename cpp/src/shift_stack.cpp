#include "cloudcov/shift_stack.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "cloudcov/boxcar.hpp"
#include "cloudcov/errors.hpp"
#include "cloudcov/parallel.hpp"

namespace cloudcov {

#define CLOUDCOV_DECLARE_LEVEL(ns)                                       \
    namespace ns {                                                       \
    template <class T>                                                   \
    void group_init(const detail::GroupArgs& g, T* stage);               \
    template <class T>                                                   \
    void group_step(const detail::GroupArgs& g, idx r0, T* stage);       \
    template <class T>                                                   \
    void copy_stream(const T* src, T* dst, idx n);                       \
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

#define CLOUDCOV_DISPATCH(FN, ...)                 \
    switch (kLevel) {                              \
        CLOUDCOV_CASE_AVX512(FN, __VA_ARGS__)      \
        CLOUDCOV_CASE_AVX2(FN, __VA_ARGS__)        \
        default:                                   \
            return baseline::FN<T>(__VA_ARGS__);   \
    }
#ifdef CLOUDCOV_HAVE_AVX512
#define CLOUDCOV_CASE_AVX512(FN, ...) \
    case Level::avx512:               \
        return avx512::FN<T>(__VA_ARGS__);
#else
#define CLOUDCOV_CASE_AVX512(FN, ...)
#endif
#ifdef CLOUDCOV_HAVE_AVX2
#define CLOUDCOV_CASE_AVX2(FN, ...) \
    case Level::avx2:               \
        return avx2::FN<T>(__VA_ARGS__);
#else
#define CLOUDCOV_CASE_AVX2(FN, ...)
#endif

template <class T>
void run_init(const detail::GroupArgs& g, T* stage) { CLOUDCOV_DISPATCH(group_init, g, stage) }
template <class T>
void run_step(const detail::GroupArgs& g, idx r0, T* stage) { CLOUDCOV_DISPATCH(group_step, g, r0, stage) }
template <class T>
void run_copy(const T* src, T* dst, idx n) { CLOUDCOV_DISPATCH(copy_stream, src, dst, n) }

// A reusable barrier for a fixed number of threads.
class Barrier {
  public:
    explicit Barrier(int n) : n_(n) {}
    void wait() {
        std::unique_lock<std::mutex> lock(m_);
        const long gen = gen_;
        if (++count_ == n_) {
            count_ = 0;
            ++gen_;
            cv_.notify_all();
        } else {
            cv_.wait(lock, [&] { return gen_ != gen; });
        }
    }

  private:
    std::mutex m_;
    std::condition_variable cv_;
    int n_, count_ = 0;
    long gen_ = 0;
};

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
    require(Np >= 3 && Np % 2 == 1 && Np <= kMaxNp, "Np must be odd and in [3, 1023]");
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

    // One group per drow. Groups are assigned to threads once (largest first, to the least
    // loaded thread), so each group is always computed the same way: the result does not
    // depend on the thread count. Rows are produced in order: every thread advances its groups
    // to output row r0, writing into a staging row; after a barrier the row is streamed to the
    // stack by all threads (each a slice) while the next row is computed into the other
    // staging buffer.
    const idx ngroup = Np;
    const int nt = std::max(1, std::min<int>(resolve_threads(nthreads), static_cast<int>(ngroup)));
    std::vector<detail::GroupArgs> groups(static_cast<size_t>(ngroup));
    std::vector<std::vector<double>> acc(static_cast<size_t>(ngroup));
    std::vector<std::vector<double>> delta(static_cast<size_t>(ngroup));
    std::vector<std::vector<int>> owned(static_cast<size_t>(nt));
    std::vector<idx> load(static_cast<size_t>(nt), 0);
    for (idx gi = 0; gi < ngroup; ++gi) {
        const idx drow = (gi + 1) % Np;  // 1, 2, ..., Np - 1, then 0 (the smallest group)
        detail::GroupArgs& g = groups[static_cast<size_t>(gi)];
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
        acc[static_cast<size_t>(gi)].assign(static_cast<size_t>(ocol * g.ndp), 0.0);
        delta[static_cast<size_t>(gi)].assign(static_cast<size_t>(g.ndp), 0.0);
        g.acc = acc[static_cast<size_t>(gi)].data();
        g.delta = delta[static_cast<size_t>(gi)].data();
        const size_t t = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
        owned[t].push_back(static_cast<int>(gi));
        load[t] += g.nd;
    }
    const idx rowlen = ocol * stack.nshift;
    std::vector<T> stage(static_cast<size_t>(2 * rowlen));
    Barrier barrier(nt);
    parallel_for(nt, nt, [&](std::int64_t t, int) {
        const idx c_lo = rowlen * t / nt, c_hi = rowlen * (t + 1) / nt;
        for (idx r0 = 0; r0 < orow; ++r0) {
            T* st = stage.data() + (r0 % 2) * rowlen;
            for (int gi : owned[static_cast<size_t>(t)]) {
                if (r0 == 0)
                    run_init<T>(groups[static_cast<size_t>(gi)], st);
                else
                    run_step<T>(groups[static_cast<size_t>(gi)], r0, st);
            }
            barrier.wait();
            run_copy<T>(st + c_lo, stack.data + r0 * rowlen + c_lo, c_hi - c_lo);
        }
    });
}

template void shift_stack<float>(const Image<const float>&, idx, idx, idx, const Image<float>&,
                                 const Stack<float>&, int);
template void shift_stack<double>(const Image<const double>&, idx, idx, idx, const Image<double>&,
                                  const Stack<double>&, int);

}  // namespace cloudcov
