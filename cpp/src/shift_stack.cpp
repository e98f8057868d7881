#include "cloudcov/shift_stack.hpp"

#include <algorithm>
#include <vector>

#include "cloudcov/boxcar.hpp"
#include "cloudcov/errors.hpp"
#include "cloudcov/parallel.hpp"
#include "cloudcov/simd.hpp"

namespace cloudcov {

#define CLOUDCOV_DECLARE_LEVEL(ns)                              \
    namespace ns {                                              \
    template <class T>                                          \
    void stack_group(const detail::GroupArgs& g, T* out);       \
    }
CLOUDCOV_DECLARE_LEVEL(baseline)
#ifdef CLOUDCOV_HAVE_AVX2
CLOUDCOV_DECLARE_LEVEL(avx2)
#endif
#ifdef CLOUDCOV_HAVE_AVX512
CLOUDCOV_DECLARE_LEVEL(avx512)
#endif

namespace {

template <class T>
void run_group(const detail::GroupArgs& g, T* out) {
    static const SimdLevel level = simd_level();
    switch (level) {
#ifdef CLOUDCOV_HAVE_AVX512
        case SimdLevel::avx512:
            avx512::stack_group<T>(g, out);
            return;
#endif
#ifdef CLOUDCOV_HAVE_AVX2
        case SimdLevel::avx2:
            avx2::stack_group<T>(g, out);
            return;
#endif
        default:
            baseline::stack_group<T>(g, out);
    }
}

}  // namespace

const char* shift_stack_simd_level() { return simd_level_name(simd_level()); }

template <class T>
StackStream<T>::StackStream(const Image<const T>& x, idx Np, idx wrow, idx wcol,
                            const Stack<T>& stack, int nthreads, WorkerPool* pool)
    : stack_(stack), Np_(Np), pool_(pool) {
    require(Np >= 3 && Np % 2 == 1 && Np <= kMaxNp, "Np must be odd and in [3, 1023]");
    require(wrow >= 1 && wcol >= 1, "boxcar widths must be >= 1");
    require(x.rows >= wrow && x.cols >= wcol, "boxcar window larger than the tile");
    orow_ = x.rows - wrow + 1;
    ocol_ = x.cols - wcol + 1;
    require(stack.Np == Np && stack.rows >= 1 && stack.rows <= orow_ && stack.cols == ocol_,
            "stack has the wrong shape");
    // Double copy of the tile: P = Np - 1 zero columns on the left, P + 16 or more on the right
    // (vector over-read of the padded shift count, and the AVX-512 rows' aligned loads reading
    // up to a cache line past it), and Np - 1 zero rows at the bottom. Rows start on cache lines
    // (64-byte aligned buffer, a row stride of whole lines).
    const idx P = Np - 1;
    const idx xs = (x.cols + 2 * P + 16 + 7) / 8 * 8;
    const idx xr = x.rows + Np - 1;
    xd_.assign(static_cast<size_t>(xr * xs), 0.0);
    for (idx r = 0; r < x.rows; ++r) {
        const T* src = x.row(r);
        double* dst = xd_.data() + r * xs + P;
        for (idx c = 0; c < x.cols; ++c) dst[c] = static_cast<double>(src[c]);
    }
    const idx nd = stack.nslot();
    const idx ndp = (nd + 7) / 8 * 8;
    nt_ = std::max(1, std::min<int>(resolve_threads(nthreads), static_cast<int>(Np)));
    if (pool_ == nullptr) {
        own_pool_ = std::make_unique<WorkerPool>(nt_);
        pool_ = own_pool_.get();
    }
    nt_ = std::min(nt_, pool_->size());
    groups_.resize(static_cast<size_t>(Np));
    vsum_.resize(static_cast<size_t>(Np));
    hrow_.resize(static_cast<size_t>(Np));
    for (idx drow = 0; drow < Np; ++drow) {
        detail::GroupArgs& g = groups_[static_cast<size_t>(drow)];
        vsum_[static_cast<size_t>(drow)].assign(static_cast<size_t>((ocol_ + wcol - 1) * ndp), 0.0);
        hrow_[static_cast<size_t>(drow)].assign(static_cast<size_t>(ndp), 0.0);
        g.xd = xd_.data() + P;
        g.xd_stride = xs;
        g.out_rows = orow_;
        g.out_cols = ocol_;
        g.wrow = wrow;
        g.wcol = wcol;
        g.drow = drow;
        g.dc0 = -(Np - 1);
        g.nd = nd;
        g.ndp = ndp;
        g.row_stride = ocol_ * nd;
        g.ring = stack.rows;
        g.r_begin = g.r_end = 0;
        g.vsum = vsum_[static_cast<size_t>(drow)].data();
        g.hrow = hrow_[static_cast<size_t>(drow)].data();
        g.stage = nullptr;
    }
    written_.assign(static_cast<size_t>(Np), 0);
    for (idx drow = 0; drow < Np; ++drow) {
        groups_[static_cast<size_t>(drow)].Np = Np;
        groups_[static_cast<size_t>(drow)].written = written_.data() + drow;
    }
    stage_.resize(static_cast<size_t>(nt_));
    // ndp - nd spare values: the vector row loop writes all ndp lanes of the last column
    for (auto& st : stage_) st.assign(static_cast<size_t>(ocol_ * nd + (ndp - nd)), T(0));
    run_starts_.resize(static_cast<size_t>(nt_));
}

template <class T>
StackStream<T>::~StackStream() = default;

template <class T>
void StackStream<T>::set_store(bool store) {
    for (auto& g : groups_) g.store = store;
}

template <class T>
void StackStream<T>::set_readers(std::vector<std::pair<idx, idx>> origins) {
    for (size_t k = 1; k < origins.size(); ++k)
        require(origins[k].first >= origins[k - 1].first, "stamp origins must be sorted by row");
    readers_ = std::move(origins);
    read_only_ = stack_write_read_only().load();
    for (auto& g : groups_) g.windows = read_only_ && stack_write_windows().load();
}

template <class T>
idx StackStream<T>::values_written() const {
    idx n = 0;
    for (idx w : written_) n += w;
    return n;
}

template <class T>
void StackStream<T>::compute_rows(idx r_end) {
    r_end = std::min(r_end, orow_);
    if (r_end <= done_) return;
    if (read_only_) {
        // Stamps covering each row of the round, by column (shared by every shift row).
        round_.resize(static_cast<size_t>(r_end - done_));
        auto lo = readers_.begin();
        for (idx r = done_; r < r_end; ++r) {
            auto& v = round_[static_cast<size_t>(r - done_)];
            v.clear();
            while (lo != readers_.end() && lo->first < r - (Np_ - 1)) ++lo;
            for (auto it = lo; it != readers_.end() && it->first <= r; ++it)
                v.emplace_back(it->second, it->first);
            std::sort(v.begin(), v.end());
        }
    }
    // Each work item is one shift row writing its own contiguous block of the stack.
    pool_->run(
        Np_,
        [&](std::int64_t drow, int tid) {
            detail::GroupArgs g = groups_[static_cast<size_t>(drow)];
            g.r_begin = done_;
            g.r_end = r_end;
            g.stage = stage_[static_cast<size_t>(tid)].data();
            g.run_starts = &run_starts_[static_cast<size_t>(tid)];
            g.readers = read_only_ ? round_.data() : nullptr;
            run_group<T>(g, stack_.data + drow * stack_.group_stride());
        },
        nt_);
    done_ = r_end;
}

template <class T>
void shift_stack(const Image<const T>& x, idx Np, idx wrow, idx wcol, const Image<T>& bimage,
                 const Stack<T>& stack, int nthreads) {
    require(Np >= 3 && Np % 2 == 1 && Np <= kMaxNp, "Np must be odd and in [3, 1023]");
    require(wrow >= 1 && wcol >= 1, "boxcar widths must be >= 1");
    require(x.rows >= wrow && x.cols >= wcol, "boxcar window larger than the tile");
    const idx orow = x.rows - wrow + 1, ocol = x.cols - wcol + 1;
    require(bimage.rows == orow && bimage.cols == ocol, "bimage must be the boxcar valid region");
    require(stack.Np == Np && stack.rows == orow && stack.cols == ocol, "stack has the wrong shape");
    boxcar_sum<T, T>(x, wrow, wcol, bimage);
    StackStream<T> stream(x, Np, wrow, wcol, stack, nthreads);
    stream.compute_rows(orow);
}

template class StackStream<float>;
template class StackStream<double>;
template void shift_stack<float>(const Image<const float>&, idx, idx, idx, const Image<float>&,
                                 const Stack<float>&, int);
template void shift_stack<double>(const Image<const double>&, idx, idx, idx, const Image<double>&,
                                  const Stack<double>&, int);

}  // namespace cloudcov
