// The shifted-product stack (mirrors CloudCovErr.jl `cov_avg!`, src/cov.jl; paper eq. 6).
//
// For a tile x (rows x cols) and every shift d = (drow, dcol) with drow in [0, Np) and
// |dcol| < Np, the stack holds the boxcar sum (wrow x wcol, valid region) of
// x(r, c) * x(r + drow, c + dcol). Shifts with drow < 0 are the mirror images of stored ones
// (C(i, j) = C(j, i)); the half drow == 0, dcol < 0 is redundant too but is computed anyway
// so that every shift row has the same width (1.5% more work for Np = 33).
//
// Layout (see Stack in views.hpp): [drow][r][c][dcol + Np - 1], Np * (2 Np - 1) values per
// boxcar-output pixel (2145 for Np = 33). Each shift row (drow) is written contiguously,
// one output row at a time, so threads working on different drow never share cache lines.
// Products whose partner pixel falls outside the tile count as zero; such stack entries are
// never read for stamps that lie inside the valid region.
#pragma once
#include <atomic>
#include <memory>
#include <utility>
#include <vector>

#include "cloudcov/aligned.hpp"
#include "cloudcov/parallel.hpp"

#include "cloudcov/views.hpp"

namespace cloudcov {

// Largest stamp size accepted anywhere (keeps Np**2 and Np**4 far from overflow).
constexpr idx kMaxNp = 1023;

// Values per boxcar-output pixel.
inline idx n_slots(idx Np) { return Np * (2 * Np - 1); }

// bimage: (rows - wrow + 1) x (cols - wcol + 1) boxcar sums of x.
// stack: Np shift rows of the same rows/cols, 2 Np - 1 slots each. Running sums are accumulated in double;
// work is split over shift rows (drow) on nthreads threads (0 = all cores); the result
// does not depend on nthreads.
template <class T>
void shift_stack(const Image<const T>& x, idx Np, idx wrow, idx wcol, const Image<T>& bimage,
                 const Stack<T>& stack, int nthreads);

// Which SIMD code path shift_stack uses on this CPU ("avx512", "avx2" or "baseline"); the
// environment variable CLOUDCOV_SIMD=baseline or avx2 caps it (tests run every path).
const char* shift_stack_simd_level();

namespace detail {
struct GroupArgs;
}

// Whether a StackStream given the stamps that will read it (set_readers) writes only the
// stack entries those stamps read. On by default; tests and benchmarks switch it off
// (_core.set_stack_write_read_only) to compare. Results never depend on it.
inline std::atomic<bool>& stack_write_read_only() {
    static std::atomic<bool> on{true};
    return on;
}

// Whether a StackStream with readers (stack_write_read_only) writes, in each column the stamps
// read, only the cache lines holding the slots they read (a stamp reads Np of a pixel's
// 2 Np - 1 slots: 3 of every 4 lines for Np = 33 where one stamp alone reads a column) instead
// of all 2 Np - 1 slots. On the 10,000-star DECam CCD: 6.54 G values written instead of 8.22 G
// (of 19.23 G computed), stack sweep 7.95-8.03 core-s against 8.40-8.42 (two alternations in
// one process). On by default; tests and benchmarks switch it off
// (_core.set_stack_write_windows) to compare. Results never depend on it.
inline std::atomic<bool>& stack_write_windows() {
    static std::atomic<bool> on{true};
    return on;
}

// Whether the AVX-512 row loop computes the last lane of a shift row with 8k + 1 lanes (Np = 1
// mod 4, e.g. 33) as a scalar beside its vectors (on by default) or as one more vector of 7
// padding lanes. Benchmarks switch it off (_core.set_stack_scalar_tail) to measure what it
// gains; results never depend on it (same operations in the same order).
inline std::atomic<bool>& stack_scalar_tail() {
    static std::atomic<bool> on{true};
    return on;
}

// Whether the AVX-512 row loop asks for the staging row's cache lines for writing (prefetchw)
// a few columns before it stores into them (the staging row, out_cols x (2 Np - 1) values, lives
// in L2, not L1). On by default; benchmarks switch it off (_core.set_stack_stage_prefetch) to
// measure what it gains. Results never depend on it.
inline std::atomic<bool>& stack_stage_prefetch() {
    static std::atomic<bool> on{true};
    return on;
}

// Whether the sweep's copies of its staging rows into the stack (non-temporal stores, written
// once and read from memory by the star stage) use the widest streaming store of the SIMD
// level: one 64-byte line per store at avx512, 32 bytes at avx2 (16 at baseline either way).
// On the AVX-512 Xeon, DECam CCD (bench_prefetch.py --switch stack-streams): the stack sweep
// 14.3-14.9 core-s against 15.3-15.7 with 16-byte stores, faster in each of 10 alternations.
// On by default; benchmarks switch it off (_core.set_stack_wide_streams) to measure what it
// gains. Results never depend on it (the same bytes are copied).
inline std::atomic<bool>& stack_wide_streams() {
    static std::atomic<bool> on{true};
    return on;
}

// Whether the AVX-512 row loop reads the shifted rows y (x(r + drow, c + dcol), 8 shifts per
// vector, starting at any element) by loads of whole aligned cache lines and a two-source
// permute (vpermt2pd) instead of unaligned loads, 7 of 8 of which span two lines. The same
// values, so bitwise the same sums. On by default; benchmarks switch it off
// (_core.set_stack_aligned_loads) to measure what it gains. Results never depend on it.
inline std::atomic<bool>& stack_aligned_loads() {
    static std::atomic<bool> on{true};
    return on;
}

// The stack computed as a sweep down the tile: compute_rows(r) advances every shift row's
// running sums to output row r - 1, writing rows into the stack (a ring buffer when the
// stack holds fewer rows than the tile produces). Work is split over shift rows (drow); each
// shift row is computed the same way whatever thread runs it.
template <class T>
class StackStream {
  public:
    // pool: threads to share with the caller (nullptr: the stream starts its own).
    StackStream(const Image<const T>& x, idx Np, idx wrow, idx wcol, const Stack<T>& stack,
                int nthreads, WorkerPool* pool = nullptr);
    ~StackStream();
    StackStream(const StackStream&) = delete;
    StackStream& operator=(const StackStream&) = delete;
    void compute_rows(idx r_end);
    // The stamps that will read the stack: their origins (row, col) in boxcar-output
    // coordinates, rows ascending. A stamp at (r0, c0) reads, in shift row drow, output rows
    // r0 .. r0 + Np - 1 - drow at columns c0 .. c0 + Np - 1 (StackCov: each pixel pair is read
    // at its earlier pixel). With stack_write_read_only() on, the sweep writes only those
    // entries, and sums each row along the columns only as far as its last read column (the
    // vertical sums are still updated everywhere); the rest of the ring keeps what it held.
    void set_readers(std::vector<std::pair<idx, idx>> origins);
    // Stack values written so far (all computed values when no readers are set).
    idx values_written() const;
    // Benchmarks only: with store = false the rows are computed (into the per-thread stage)
    // but not written to the stack, which isolates the sweep's arithmetic from its writes.
    void set_store(bool store);
    idx rows_done() const { return done_; }
    idx out_rows() const { return orow_; }
    idx out_cols() const { return ocol_; }

  private:
    Stack<T> stack_;
    idx Np_, orow_, ocol_, done_ = 0;
    int nt_;
    std::unique_ptr<WorkerPool> own_pool_;
    WorkerPool* pool_ = nullptr;
    AlignedVector<double> xd_;   // rows start on cache lines (see the constructor)
    std::vector<detail::GroupArgs> groups_;
    std::vector<std::pair<idx, idx>> readers_;            // stamp origins, rows ascending
    bool read_only_ = false;
    std::vector<std::vector<std::pair<idx, idx>>> round_; // per row of a round: (c0, r0) by c0
    std::vector<idx> written_;                             // values written, per shift row
    // 64-byte aligned: the vector loops load and store whole cache lines of vsum
    std::vector<AlignedVector<double>> vsum_, hrow_;
    std::vector<AlignedVector<T>> stage_;
    std::vector<std::vector<idx>> run_starts_;            // per thread (store_row's scratch)
};

namespace detail {
// One shift row (drow): fills its contiguous block of the stack. xd: double copy of the tile
// with column padding and zero rows (see shift_stack.cpp). vsum/hrow/stage: scratch (the
// scheme is described in shift_stack_impl.inc).
struct GroupArgs {
    const double* xd;  // pointer to element (0, 0) of the padded double tile
    idx xd_stride;
    idx out_rows, out_cols, wrow, wcol;
    idx drow, dc0, nd, ndp;
    idx row_stride;  // values per output row of this shift row: out_cols * nd
    idx ring;        // rows held by the stack (output row r goes to slot r % ring)
    idx r_begin, r_end;  // rows to compute now; vsum holds row r_begin - 1 when r_begin > 0
    double* vsum;   // (out_cols + wcol - 1) * ndp vertical sums, persistent across calls
    double* hrow;   // ndp (the generic loop's running sums along a row)
    void* stage;    // out_cols * nd values of the stack type
    bool store = true;   // false: compute rows without writing them (StackStream::set_store)
    // Per output row r_begin .. r_end - 1: the (col, row) origins of the stamps whose rows
    // include it, by col (nullptr: write whole rows). Only the columns that the stamps with
    // origin row >= r - (Np - 1) + drow read are written.
    const std::vector<std::pair<idx, idx>>* readers = nullptr;
    idx Np = 0;
    idx* written = nullptr;   // values written (this shift row)
    bool windows = false;     // stack_write_windows() when the stream was given its readers
    std::vector<idx>* run_starts = nullptr;   // scratch of the thread running this shift row
};
}  // namespace detail

}  // namespace cloudcov
