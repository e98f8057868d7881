// The per-star stage of one tile: stamps, pixel classes, covariance lookup and conditioning
// for a batch of stars (the star loop of CloudCovErr.jl `proc_ccd`, src/decam.jl).
#pragma once
#include <cstdint>

#include "cloudcov/conditioning.hpp"
#include "cloudcov/cov_lookup.hpp"
#include "cloudcov/views.hpp"

namespace cloudcov {

template <class T>
struct StarBatch {
    // Tile: stack and boxcar image of the tile whose input pixel (0, 0) is pixel
    // (tile_r0, tile_c0) of the padded images below.
    Stack<const T> stack;
    Image<const T> bimage;
    idx Np = 33, wrow = 129, wcol = 129;
    idx tile_r0 = 0, tile_c0 = 0;
    // Padded full images (same shape).
    Image<const T> resid;             // raw residual model - image (not infilled)
    Image<const T> stars;             // |model - sky| / gain
    Image<const std::uint8_t> bad;    // upstream mask (dq, static-PSF cores, outliers)
    // Stars: integer stamp centres in padded coordinates, PSF stamps (n, Np, Np), fluxes.
    idx n = 0;
    const std::int64_t* rows = nullptr;
    const std::int64_t* cols = nullptr;
    const T* psf = nullptr;
    const double* flux = nullptr;
    const std::uint8_t* circmask = nullptr;  // Np*Np, nonzero beyond the radius
    double thr = 20;
    double flux_floor = 1e4;  // stars fainter than this are masked as if this bright
    bool julia_compat = false;
    CondOptions opt;
    // Imputation (cloudcov.impute method "lpi", CloudCovFix.jl semantics): when given_hidden is
    // set, star k's hidden pixels are given_hidden[k * Np*Np + i] != 0 instead of the PSF
    // classes, and its good pixels are those neither bad, hidden nor beyond circmask; psf and
    // flux are not read (p = 1 for the unused flux outputs). With xbar_out set, the predicted
    // hidden values (ascending flat index) go to xbar_out + xbar_offset[k] and the conditional
    // covariance (kpred x kpred, row-major) to pcov_out + pcov_offset[k].
    const std::uint8_t* given_hidden = nullptr;
    double* xbar_out = nullptr;
    double* pcov_out = nullptr;
    const std::int64_t* xbar_offset = nullptr;
    const std::int64_t* pcov_offset = nullptr;
};

struct StarOutputs {
    double* dcflux;
    double* dcflux_diag;
    double* fdb_res;
    double* fdb_pred;
    double* cchi2;
    std::int32_t* kcond0;
    std::int32_t* kcond;
    std::int32_t* kpred;
    std::int8_t* dnt;
};

// Process all stars of the batch on nthreads threads (0 = all cores). Per-star results do
// not depend on nthreads. Throws std::invalid_argument if a stamp leaves the tile.
template <class T>
void lpi_stars(const StarBatch<T>& b, const StarOutputs& out, int nthreads);

// Benchmarks only (benchmarks/bench_gather_floor.py): what each star's bordered-matrix gather
// (detail::build_bordered, as the guarded float32 stage runs it) costs, split into its parts.
// Star k's stamp is prepared as lpi_stars does (not timed), then one traversal of mode `mode`
// is timed alone (thread CPU seconds into seconds[k]); its checksum goes to checksum[k]
// (checksum may be null: then none is computed, and mode 5 does not sum its results):
//   0  the gather, with C_kk's column sums (the guard's ||C_kk||_1); checksum: the sum of the
//      strict lower triangle written (in double);
//   1  the gather without the column sums; checksum as 0;
//   2  the same traversal and prefetch reading every entry the gather reads, writing nothing;
//      checksum: the sum of the raw stack entries read;
//   3  the same, reading one entry per 64-byte line (the first of each line the entries span);
//      checksum: the number of lines read;
//   4  the matrix entries the gather writes, written (a constant), nothing read, no prefetch;
//      checksum: the number of entries written (n (n - 1) / 2);
//   5  the gather's reads and arithmetic with its results written into an L1-sized buffer
//      instead of the matrix (no column sums); checksum: the sum of the values computed.
// So 2 - 3 is the reads' work beyond one trip per line, 5 - 2 the arithmetic, 1 - 5 the
// matrix writes and 0 - 1 the column sums. Stars are processed in order on the calling
// thread, working precision T (a star with no good or no hidden pixel: 0 s, checksum 0).
// Throws std::invalid_argument for a mode outside [0, 5] or a stamp that leaves the tile.
template <class T>
void gather_probe(const StarBatch<T>& b, int mode, double* seconds, double* checksum);

// Where a strip's time went: process CPU seconds (all threads) in the stack sweep and in the
// star batches, and the number of sweep/batch rounds.
struct StripStats {
    double stack_cpu_s = 0, stars_cpu_s = 0;
    long rounds = 0;
    std::int64_t values_written = 0;   // stack values written to the ring
};

// One vertical strip of a CCD in a single sweep: the stack of the strip image
// image[in_r0:in_r1, in_c0:in_c1] is computed top to bottom into a ring buffer of ring_rows
// boxcar-output rows (ring: Np * ring_rows * out_cols * (2 Np - 1) values; bimage buffer:
// out_rows * out_cols values), and the stars (sorted by row, b.rows ascending) are processed
// as soon as their stamps are complete, before the ring overwrites them. Memory is set by
// ring_rows, not by the strip height; the vertical running sums are never restarted.
// b.stack, b.bimage, b.tile_r0 and b.tile_c0 are set here.
template <class T>
void lpi_strip(const Image<const T>& image, idx in_r0, idx in_r1, idx in_c0, idx in_c1,
               idx ring_rows, T* ring, idx ring_size, T* bimage_buf, idx bimage_size,
               StarBatch<T> b, const StarOutputs& out, int nthreads,
               StripStats* stats = nullptr);

}  // namespace cloudcov
