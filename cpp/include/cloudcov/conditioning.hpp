// Per-star Gaussian conditioning with the condition-number guard
// (mirrors CloudCovErr.jl `condCovEst_wdiag`, src/perstar.jl; paper eqs. 4, 5, 9, 10).
//
// For good pixels k and hidden pixels k*, with C the local covariance (star counts added
// to its diagonal) and mu the local mean:
//   C_kk = L L^T (Cholesky), W = L^-1 C_k,k*, z = L^-1 (x_k - mu_k)
//   (one Cholesky of the bordered matrix [[C_kk, C_k,k*], [C_k*,k, C_k*k*]] gives L, W and
//   the Cholesky factor of P at once)
//   predicted hidden mean  xbar = W^T z + mu_k*                     (eq. 4)
//   predicted covariance   P = C_k*k* - W^T W                       (eq. 5)
//   cchi2 = z^T z;  var = p^T P^-1 p;  dcflux = var^-1/2             (eq. 10)
//   fdb_res = r^T P^-1 p / var;  fdb_pred = xbar^T P^-1 p / var     (eq. 9)
//   dcflux_diag = (sum p_i^2 / P_ii)^-1/2
// Like CloudCovErr.jl, only the upper triangles of C_kk and C_k*k* are read (the good-hidden
// block is read as given), which matters only for a non-symmetric input matrix.
//
// Condition-number guard: in the working precision W the solve is accepted when both
// Cholesky factorisations succeed and the reciprocal condition estimates are >= 1e2 * eps(W)
// (a relative error bound kappa * eps <= 1e-2, far below the statistical uncertainty of the
// outputs): for C_kk, 1 / (||C_kk||_1 rho), where ||C_kk||_1 >= ||C_kk||_2 and
// rho = u^T C_kk^-1 u / u^T u <= ||C_kk^-1||_2 is the Rayleigh quotient of C_kk^-1 at the
// approximate smallest right singular vector u of L^T found by incremental condition
// estimation (LAPACK ?laic1, Bischof 1990) over the columns of the factor already computed,
// last to first, and evaluated with one ?trsv (||L^-1 u||^2); for P, the square of
// 1 / (||L22||_1 est||L22^-1||_1), the estimate of LAPACK ?trcon (Hager-Higham ?lacn2
// iterations on the factor). The C_kk estimate costs one pass over the factor and one solve,
// where ?pocon's 1-norm estimate applies C_kk^-1 (two solves) four or more times; measured on
// the example, the flat synthetic field and the DECam cutouts it is within a factor 0.5-1 of
// the exact 2-norm condition number, where ?pocon's 1-norm estimate is 2-15x above it
// (benchmarks/bench_guard.py). Triangular solves are ?trsv instead of the overflow-guarded
// ?latrs (whose growth bound fails for n ~ 700 and falls back to a column-by-column solve 5-10x
// slower); a solve that overflows counts as ill-conditioned. Otherwise the star is redone
// in float64 (dnt bit 4 when the working precision was float32) and, if float64 fails the
// same test, with lambda * I added to the covariance diagonal, lambda = mean(diag C) * 10^m
// for m = -12, -11, ..., -6 (first that passes; dnt bit 4). If none passes, dnt bit 64 is
// set and the float outputs are NaN.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "cloudcov/aligned.hpp"
#include "cloudcov/cpu_clock.hpp"
#include "cloudcov/lapack.hpp"
#include "cloudcov/pixel_classes.hpp"
#include "cloudcov/prefetch.hpp"
#include "cloudcov/simd.hpp"
#include "cloudcov/views.hpp"

namespace cloudcov {

struct CondOptions {
    bool diag_on = true;      // add the star counts (stars stamp) to diag(C)
    bool guard = true;        // condition-number guard (off: one attempt, NaN on failure)
    bool keep_prediction = false;  // keep xbar and P (for mean infill and draws)
};

struct CondResult {
    double dcflux = NAN, dcflux_diag = NAN, fdb_res = NAN, fdb_pred = NAN, cchi2 = NAN;
    int dnt = 0;              // DNT_GUARD and/or DNT_UNSTABLE
    int precision = 0;        // 32 or 64: precision of the accepted solve (0: none)
    double reg = 0.0;         // diagonal regularisation used (0 when none)
    std::vector<double> xbar;   // kpred predicted hidden values (keep_prediction)
    std::vector<double> pcov;   // kpred x kpred predicted covariance, row-major (keep_prediction)
};

// One star's stamp data. All arrays have Np*Np entries, flat row-major.
struct StarStamp {
    idx Np = 0;
    const double* data = nullptr;   // raw residual stamp (model - image)
    const double* stars = nullptr;  // star counts |model - sky| / gain (diagonal term)
    const double* psf = nullptr;    // PSF stamp (|PSF| when it had negative pixels)
    std::vector<int> good;          // flat indices of good pixels (ascending)
    std::vector<int> hidden;        // flat indices of hidden pixels (ascending)
};

// Scratch reused across stars by one thread.
template <class W>
struct CondScratch {
    AlignedVector<W> K, z, pred, q, pdiag, work;
    AlignedVector<W> colsum;
    std::vector<double> pacc;   // diag(P) accumulators
    std::vector<int> iwork, run_good, run_hidden;
};
struct Workspace {
    CondScratch<float> s;
    CondScratch<double> d;
};

template <class W>
inline double rcond_min() { return 1e2 * std::numeric_limits<W>::epsilon(); }

// Benchmarks only (both off by default): judge C_kk by another estimate than the guard's
// incremental one. _core.set_guard_pocon_estimate: LAPACK ?pocon's 1-norm estimate
// 1 / (||C_kk||_1 est||C_kk^-1||_1) (the guard before 2026-12; the same decisions on every
// field measured except 4 of 49 stars of the example at thr=1000 that it re-solved in float64
// though float32 was accurate, and ~0.1x of a spotrf dearer per star).
// _core.set_guard_triangular_estimate (takes precedence): the square of the triangular
// estimate 1 / (||L11||_1 est||L11^-1||_1) (?trcon), as for P: measured far more pessimistic
// on real fields (benchmarks/bench_guard.py --ckk-estimate triangular).
inline std::atomic<bool>& guard_pocon_estimate() {
    static std::atomic<bool> on{false};
    return on;
}
inline std::atomic<bool>& guard_triangular_estimate() {
    static std::atomic<bool> on{false};
    return on;
}

namespace detail {

// Make v hold at least n elements; it never shrinks. A star uses the first n: resizing to each
// star's own size zero-filled every increase from one star to the next (in situ, the bordered
// matrix K's memset was ~0.5% of a CCD's CPU), and nothing reads an element before it is written.
template <class V>
inline void ensure_size(V& v, size_t n) {
    if (v.size() < n) v.resize(n);
}

// est ||A^-1||_1 for A = L L^T (spd) or A = L (lower triangular L, n x n, leading dimension
// ld), by LAPACK's Hager-Higham estimator ?lacn2 (reverse communication) with ?trsv solves:
// the estimate of ?pocon / ?trcon. work: 2 n values, iwork: n. +inf if a solve overflows.
template <class W>
double inv_norm1_est(const LapackFns<W>& L, const W* fac, int n, int ld, bool spd, W* work,
                     int* iwork) {
    char Lc = 'L', N = 'N', T = 'T';
    int kase = 0, ione = 1, isave[3] = {0, 0, 0};
    W est = 0;
    W* v = work;
    W* x = work + n;
    W* a = const_cast<W*>(fac);
    for (;;) {
        L.lacn2(&n, v, x, iwork, &est, &kase, isave);
        if (kase == 0) break;
        if (spd) {  // A^-1 = L^-T L^-1 (symmetric: kase 1 and 2 alike)
            L.trsv(&Lc, &N, &N, &n, a, &ld, x, &ione);
            L.trsv(&Lc, &T, &N, &n, a, &ld, x, &ione);
        } else {
            L.trsv(&Lc, kase == 1 ? &N : &T, &N, &n, a, &ld, x, &ione);
        }
        W amax = 0;
        for (int i = 0; i < n; ++i) amax = std::max(amax, std::abs(x[i]));
        if (!(amax <= std::numeric_limits<W>::max())) return std::numeric_limits<double>::infinity();
    }
    return static_cast<double>(est);
}

// Lower estimate of ||A^-1||_2 for A = L L^T (lower triangular L, n x n, leading dimension
// ld): the Rayleigh quotient rho = u^T A^-1 u / u^T u = ||L^-1 u||^2 / ||u||^2 at the
// approximate smallest right singular vector u of L^T given by incremental condition
// estimation (LAPACK ?laic1, job 2). ICE grows the triangle one column at a time: with J the
// reversal, M = J L^T J is lower triangular and its leading (j+1) x (j+1) block is the
// reversed trailing block L[c:, c:]^T, so the row ICE appends is column c of L below the
// diagonal (contiguous) and gamma its diagonal entry; u (in L's row order) is rescaled by s
// and gets c at position c. Then ||L^T u|| ~ sigma_min(L) and one ?trsv gives rho, which is
// >= 1 / (u^T A u) (Cauchy-Schwarz): never below ICE's own estimate.
// ?laic1 uses its vectors only through alpha = x^T w, so each step computes alpha here, in one
// pass over column c (dot_fixed, simd.hpp: 64 partial sums in a fixed order, the same bits at
// every SIMD level, vectorised per level), and hands ?laic1 the 1-vectors (alpha) and
// (1); u is kept as g * ut with the scale g in double, so that a step rescales one number
// instead of the n - c - 1 entries after c (ut is renormalised when g gets small). The same
// estimate as ?laic1 on the explicit vectors, up to round-off, at one pass over the factor.
// The pass over column c - 1 runs during step c: all of its dot product but the entry step c
// sets (ut[c] L[c, c - 1], added at step c - 1), so that the steps' chain of ?laic1 calls does
// not wait for the long sums (profile_perstar.py both, perf, 3 alternations: estimates and
// solves 0.061-0.064x of the Cholesky against 0.066-0.068x when each step summed its column).
// dot_fixed's four AVX-512 accumulators instead of one chain of 16 partial sums (the sums
// bound by the adds' latency; built for the baseline x86-64 they ran in SSE2): estimates and
// solves 0.053-0.057x against 0.057-0.062x (4 alternations; in process_ccd 0.055-0.059x
// against 0.063x, 2 runs each).
// work: 2 n values. +inf if the solve overflows.
template <class W>
double inv_norm2_est(const LapackFns<W>& L, const W* fac, int n, int ld, W* work) {
    char Lc = 'L', N = 'N';
    int job = 2, ione = 1;
    // rescale ut when |g| falls below this (keeps ut and its dot products in W's range)
    constexpr double kTiny = std::is_same_v<W, float> ? 1e-20 : 1e-150;
    W* ut = work;
    W* y = work + n;
    W* a = const_cast<W*>(fac);
    W wone = 1;
    double g = 1;
    ut[n - 1] = 1;
    W sest = std::abs(fac[static_cast<size_t>(n - 1) * ld + n - 1]);
    // rest = the part of column c's dot product over ut[c + 2:], which the step before c does
    // not change (it sets ut[c + 1] and rescales g): it is summed one step ahead, beside that
    // step's ?laic1, so that a step waits only for ut[c + 1] * L[c + 1, c].
    const auto partial = [&](int c) {   // sum_{i >= c + 2} ut[i] L[i, c] (fixed order)
        return dot_fixed(ut + c + 2, fac + static_cast<size_t>(c) * ld + c + 2, n - 2 - c);
    };
    W rest = 0;   // column n - 2 has nothing below row n - 1
    for (int c = n - 2; c >= 0; --c) {
        const W* col = fac + static_cast<size_t>(c) * ld;
        if (c > 2) {   // column c - 3 below its diagonal, two steps before its pass (at step
            // c - 2): the walk down the factor's columns, last to first, is one the hardware
            // prefetchers do not follow (perf, profile_perstar.py: this loop 0.034 -> 0.027-0.029
            // of sgemm_kernel's time with the prefetch)
            prefetch_lines<1>(col - 3 * ld + c - 3, static_cast<size_t>(n - c + 3) * sizeof(W));
        }
        const W dot = rest + ut[c + 1] * col[c + 1];
        if (c > 0) rest = partial(c - 1);   // needs ut[c + 1:] only: not this step's result
        W alpha = static_cast<W>(g * static_cast<double>(dot));
        W gamma = col[c], sestpr = 0, sn = 0, cs = 0;
        L.laic1(&job, &ione, &alpha, &sest, &wone, &gamma, &sestpr, &sn, &cs);
        sest = sestpr;
        g *= static_cast<double>(sn);   // u[c + 1:] *= sn
        if (g == 0) {                   // u = (cs) e_c
            std::fill(ut + c + 1, ut + n, W(0));
            g = 1;
            if (c > 0) rest = 0;        // ut[c + 1:] is zero now
        }
        ut[c] = static_cast<W>(static_cast<double>(cs) / g);
        if (std::abs(g) < kTiny) {
            for (int k = c; k < n; ++k) ut[k] = static_cast<W>(g * static_cast<double>(ut[k]));
            // rest (for column c - 1, over ut[c + 1:]) is in the old scale: rescale it
            if (c > 0) rest = static_cast<W>(g * static_cast<double>(rest));
            g = 1;
        }
    }
    double uu = 0;
    for (int i = 0; i < n; ++i) {
        y[i] = static_cast<W>(g * static_cast<double>(ut[i]));
        uu += static_cast<double>(y[i]) * static_cast<double>(y[i]);
    }
    L.trsv(&Lc, &N, &N, &n, a, &ld, y, &ione);
    double yy = 0;
    for (int i = 0; i < n; ++i) yy += static_cast<double>(y[i]) * static_cast<double>(y[i]);
    const double rho = yy / uu;
    if (!(rho <= std::numeric_limits<W>::max())) return std::numeric_limits<double>::infinity();
    return rho;
}

// Reciprocal 1-norm condition estimate of a lower triangular factor (as ?trcon, norm '1').
template <class W>
double tri_rcond1(const LapackFns<W>& L, const W* fac, int n, int ld, W* work, int* iwork) {
    double lnorm = 0;
    for (int c = 0; c < n; ++c) {
        const W* col = fac + static_cast<size_t>(c) * ld;
        W part[16] = {};   // independent partial sums (vectorisable; fixed order)
        int r = c;
        for (; r + 16 <= n; r += 16)
            for (int u = 0; u < 16; ++u) part[u] += std::abs(col[r + u]);
        for (; r < n; ++r) part[0] += std::abs(col[r]);
        double acc = 0;
        for (int u = 0; u < 16; ++u) acc += static_cast<double>(part[u]);
        lnorm = std::max(lnorm, acc);
    }
    return 1.0 / (lnorm * inv_norm1_est(L, fac, n, ld, false, work, iwork));
}

// Leading dimension of the bordered matrix of order n: n rounded up to whole 64-byte cache
// lines, so that every column of s.K (64-byte aligned) starts on a line. The gather's column
// writes and the guard's pass over the factor then touch no line shared by two columns; a
// bare spotrf of the same order costs the same with either leading dimension. Measured on the
// Zen 4 EPYC (profile_perstar.py both, 4 alternations, n = 782, ld 784 against 782): per star
// 1.194-1.209x a bare spotrf against 1.206-1.223x; perf: the gather 0.141-0.144x against
// 0.145-0.149x, estimates and solves 0.064x against 0.065-0.068x.
template <class W>
inline int bordered_ld(int n) {
    constexpr int k = 64 / static_cast<int>(sizeof(W));
    return (n + k - 1) / k * k;
}

// The bordered matrix of one star into s.K, kc + kp = n >= 1 (see condition_attempt): the
// lower triangle, column-major with leading dimension ld = bordered_ld<W>(n) (element (r, c),
// r >= c, at c * ld + r; the strict upper triangle and the rows n .. ld - 1 are left as they
// were). reg is added to the diagonal with the star counts. With norm11, s.colsum gets C_kk's
// absolute column sums (summed in W) and ||C_kk||_1 is returned (else 0).
template <class W, class Source>
double build_bordered(const Source& src, const StarStamp& st, const CondOptions& opt, double reg,
                      bool norm11, CondScratch<W>& s) {
    const int kc = static_cast<int>(st.good.size());
    const int kp = static_cast<int>(st.hidden.size());
    const int n = kc + kp;
    const auto diag_add = [&](int i) { return (opt.diag_on ? st.stars[i] : 0.0) + reg; };
    const int ld = bordered_ld<W>(n);
    ensure_size(s.K, static_cast<size_t>(ld) * n);
    ensure_size(s.colsum, static_cast<size_t>(kc));
    W* A = s.K.data();
    // Bordered matrix [[C_kk, C_k,k*], [C_k*,k, C_k*k*]] as a lower triangle, column-major
    // (element (r, c), r >= c, at c * ld + r). Its Cholesky factor is [[L11, 0], [W^T, L22]]
    // with L11 L11^T = C_kk, W = L11^-1 C_k,k* and L22 L22^T = C_k*k* - W^T W = P (eq. 5).
    // Column a holds C(i, .) for pixel i = good[a] or hidden[a - kc]: CloudCovErr.jl's upper
    // triangles of the good-good and hidden-hidden blocks, its good-hidden block as given,
    // read along rows of C (contiguous lookups).
    // Column a of the bordered matrix holds C(i, .) for its pixel i over the later pixels: the
    // lookups of one column read pixel i's stack entries (see StackCov::fill).
    // Runs of consecutive pixels of one stamp row in the good and hidden lists: run_*[b]
    // elements from position b on are contiguous in the stamp (and in the stack).
    const auto runs = [&](const std::vector<int>& js, std::vector<int>& len) {
        const int m = static_cast<int>(js.size());
        len.resize(js.size());
        for (int b = m - 1; b >= 0; --b)
            len[b] = (b + 1 < m && js[b + 1] == js[b] + 1 && js[b + 1] % st.Np != 0) ? len[b + 1] + 1 : 1;
    };
    runs(st.good, s.run_good);
    runs(st.hidden, s.run_hidden);
    // Absolute column sums of C_kk (its 1-norm, for the C_kk condition estimate), accumulated
    // while each column is in cache.
    W* colsum = s.colsum.data();
    if (norm11) std::fill(colsum, colsum + kc, W(0));
    int hp = 0;   // first hidden position whose pixel follows the current good pixel
    for (int a = 0; a < n; ++a) {
        const int i = a < kc ? st.good[a] : st.hidden[a - kc];
        if (a + 2 < n) src.prefetch(a + 2 < kc ? st.good[a + 2] : st.hidden[a + 2 - kc]);
        W* col = A + static_cast<size_t>(a) * ld;
        col[a] = static_cast<W>(src.value(i, i) + diag_add(i));
        if (a + 1 < kc)
            src.fill(i, st.good.data() + a + 1, kc - a - 1, col + a + 1, s.run_good.data() + a + 1);
        // Good column: only the hidden pixels after i here (they are read from pixel i's stack
        // entries); those before i are filled below, row by row from their own entries.
        int h0 = a - kc + 1;
        if (a < kc) {
            while (hp < kp && st.hidden[hp] < i) ++hp;
            h0 = hp;
        }
        if (h0 < kp) src.fill(i, st.hidden.data() + h0, kp - h0, col + kc + h0, s.run_hidden.data() + h0);
        if (norm11 && a < kc) {   // in W: 16 (float) or 8 (double) lanes per 64 bytes
            constexpr int kLanes = 64 / static_cast<int>(sizeof(W));
            W part[kLanes] = {};   // independent partial sums (vectorisable; fixed order)
            W* __restrict cs = colsum;
            const W* __restrict cv = col;
            int b = a + 1;
            for (; b + kLanes <= kc; b += kLanes)
                for (int u = 0; u < kLanes; ++u) {
                    const W v = std::abs(cv[b + u]);
                    part[u] += v;
                    cs[b + u] += v;
                }
            for (; b < kc; ++b) {
                const W v = std::abs(cv[b]);
                part[0] += v;
                cs[b] += v;
            }
            W tot = std::abs(cv[a]);
            for (int u = 0; u < kLanes; ++u) tot += part[u];
            cs[a] += tot;
        }
    }
    // C(good i, hidden j) for j < i: row kc + h of the good columns after pixel j, gathered
    // from pixel j's contiguous stack entries (the same values fill(i, {j}) gives).
    for (int h = 0, g0 = 0; h < kp; ++h) {
        const int j = st.hidden[h];
        while (g0 < kc && st.good[g0] < j) ++g0;
        if (h + 1 < kp) src.prefetch(st.hidden[h + 1]);
        if (g0 < kc)
            src.fill_transposed(j, st.good.data() + g0, kc - g0,
                                A + static_cast<size_t>(g0) * ld + kc + h, static_cast<size_t>(ld),
                                s.run_good.data() + g0);
    }
    return norm11 && kc > 0 ? static_cast<double>(*std::max_element(colsum, colsum + kc)) : 0.0;
}

// One attempt (condition_attempt) in three phases, so that several stars' attempts can be
// interleaved (condition_group): attempt_build gathers the bordered matrix, attempt_factor
// factorises it, attempt_finish judges and solves. Each star's arithmetic is the same in
// either order.
struct AttemptPlan {
    bool ok = false;          // something to condition on and something to predict
    bool tri11 = false, pocon11 = false, ice11 = false;
    double anorm = 0;         // ||C_kk||_1 (ice11 or pocon11)
    int info = 0;             // ?potrf's info
};

template <class W, class Source>
AttemptPlan attempt_build(const Source& src, const StarStamp& st, const CondOptions& opt,
                          double reg, bool check_rcond, CondScratch<W>& s) {
    AttemptPlan p;
    const int kc = static_cast<int>(st.good.size());
    const int kp = static_cast<int>(st.hidden.size());
    if (kc == 0 || kp == 0) return p;
    p.ok = true;
    p.tri11 = check_rcond && guard_triangular_estimate().load(std::memory_order_relaxed);
    p.pocon11 = check_rcond && !p.tri11 && guard_pocon_estimate().load(std::memory_order_relaxed);
    p.ice11 = check_rcond && !p.tri11 && !p.pocon11;
    const bool norm11 = p.pocon11 || p.ice11;   // the C_kk estimate needs ||C_kk||_1
    p.anorm = build_bordered(src, st, opt, reg, norm11, s);
    return p;
}

template <class W>
void attempt_factor(const StarStamp& st, const LapackFns<W>& L, CondScratch<W>& s, AttemptPlan& p) {
    if (!p.ok) return;
    char Lc = 'L';
    int n = static_cast<int>(st.good.size() + st.hidden.size());
    int ld = bordered_ld<W>(n);
    L.potrf(&Lc, &n, s.K.data(), &ld, &p.info);
}

template <class W, class Source>
bool attempt_finish(const Source& src, const StarStamp& st, const CondOptions& opt,
                    const LapackFns<W>& L, const AttemptPlan& plan, bool check_rcond,
                    CondScratch<W>& s, CondResult& res) {
    if (!plan.ok || plan.info != 0) return false;
    int kc = static_cast<int>(st.good.size());
    int kp = static_cast<int>(st.hidden.size());
    int n = kc + kp;
    ensure_size(s.z, static_cast<size_t>(kc));
    ensure_size(s.pred, static_cast<size_t>(kp));
    ensure_size(s.q, static_cast<size_t>(kp));
    ensure_size(s.pdiag, static_cast<size_t>(kp));
    ensure_size(s.work, 3 * static_cast<size_t>(n));
    ensure_size(s.iwork, static_cast<size_t>(n));
    char Lc = 'L', N = 'N';
    int info = 0, ione = 1;
    W wone = 1, wzero = 0;
    const bool pocon11 = plan.pocon11, ice11 = plan.ice11;   // else the triangular estimate
    const double anorm = plan.anorm;
    W* A = s.K.data();
    int ld = bordered_ld<W>(n);
    W* L22 = A + static_cast<size_t>(kc) * ld + kc;
    if (check_rcond) {
        // C_kk: 1 / (||C_kk||_1 rho), rho from ICE and one solve (see inv_norm2_est)
        if (ice11) {
            const double rc11 = 1.0 / (static_cast<double>(static_cast<W>(anorm)) *
                                       inv_norm2_est(L, A, kc, ld, s.work.data()));
            if (!(rc11 >= rcond_min<W>())) return false;
        } else if (pocon11) {   // benchmarks only: 1 / (||C_kk||_1 est||C_kk^-1||_1), as ?pocon
            const double rc11 = 1.0 / (static_cast<double>(static_cast<W>(anorm)) *
                                       inv_norm1_est(L, A, kc, ld, true, s.work.data(), s.iwork.data()));
            if (!(rc11 >= rcond_min<W>())) return false;
        } else {   // benchmarks only: see guard_triangular_estimate
            const double rt = tri_rcond1(L, A, kc, ld, s.work.data(), s.iwork.data());
            if (!(rt * rt >= rcond_min<W>())) return false;
        }
        // cond(P) = cond(L22)^2 (2-norm; the 1-norm estimate of L22 squared stands for it)
        const double rc = tri_rcond1(L, L22, kp, ld, s.work.data(), s.iwork.data());
        if (!(rc * rc >= rcond_min<W>())) return false;
    }
    for (int a = 0; a < kc; ++a)
        s.z[a] = static_cast<W>(st.data[st.good[a]] - src.mean(st.good[a]));
    L.trsv(&Lc, &N, &N, &kc, A, &ld, s.z.data(), &ione);  // z = L11^-1 (x_k - mu_k)
    double chi2 = 0;
    for (int a = 0; a < kc; ++a) chi2 += static_cast<double>(s.z[a]) * static_cast<double>(s.z[a]);
    L.gemv(&N, &kp, &kc, &wone, A + kc, &ld, s.z.data(), &ione, &wzero, s.pred.data(), &ione);
    {   // diag(P) from the rows of L22, read down its columns (contiguous): each row's sum
        // of squares still runs over c = 0, 1, ..., h in that order
        s.pacc.assign(static_cast<size_t>(kp), 0.0);
        double* __restrict acc = s.pacc.data();
        for (int c = 0; c < kp; ++c) {
            const W* __restrict col = L22 + static_cast<size_t>(c) * ld;
            for (int h = c; h < kp; ++h) {
                const double v = col[h];
                acc[h] += v * v;
            }
        }
        for (int h = 0; h < kp; ++h) s.pdiag[h] = static_cast<W>(acc[h]);
    }
    if (opt.keep_prediction) {
        res.pcov.assign(static_cast<size_t>(kp) * kp, 0.0);
        for (int g = 0; g < kp; ++g)
            for (int h = 0; h <= g; ++h) {
                double acc = 0;
                for (int c = 0; c <= h; ++c)
                    acc += static_cast<double>(L22[static_cast<size_t>(c) * ld + g]) *
                           static_cast<double>(L22[static_cast<size_t>(c) * ld + h]);
                res.pcov[static_cast<size_t>(g) * kp + h] = acc;
                res.pcov[static_cast<size_t>(h) * kp + g] = acc;
            }
    }
    for (int h = 0; h < kp; ++h) s.q[h] = static_cast<W>(st.psf[st.hidden[h]]);
    L.potrs(&Lc, &kp, &ione, L22, &ld, s.q.data(), &kp, &info);  // q = P^-1 p
    if (info != 0) return false;
    double var = 0, var_diag = 0, rnum = 0, pnum = 0;
    for (int h = 0; h < kp; ++h) {
        const int j = st.hidden[h];
        const double p = st.psf[j], q = s.q[h];
        const double xbar = static_cast<double>(s.pred[h]) + src.mean(j);
        var += p * q;
        var_diag += p * p / static_cast<double>(s.pdiag[h]);
        rnum += st.data[j] * q;
        pnum += xbar * q;
    }
    res.dcflux = 1.0 / std::sqrt(var);
    res.dcflux_diag = 1.0 / std::sqrt(var_diag);
    res.fdb_res = rnum / var;
    res.fdb_pred = pnum / var;
    res.cchi2 = chi2;
    if (!(std::isfinite(res.dcflux) && std::isfinite(res.dcflux_diag) &&
          std::isfinite(res.fdb_res) && std::isfinite(res.fdb_pred) && std::isfinite(res.cchi2)))
        return false;
    if (opt.keep_prediction) {
        res.xbar.resize(kp);
        for (int h = 0; h < kp; ++h)
            res.xbar[h] = static_cast<double>(s.pred[h]) + src.mean(st.hidden[h]);
    }
    return true;
}

template <class W, class Source>
bool condition_attempt(const Source& src, const StarStamp& st, const CondOptions& opt,
                       const LapackFns<W>& L, double reg, bool check_rcond, CondScratch<W>& s,
                       CondResult& res) {
    AttemptPlan p = attempt_build(src, st, opt, reg, check_rcond, s);
    attempt_factor(st, L, s, p);
    return attempt_finish(src, st, opt, L, p, check_rcond, s, res);
}

// What condition_star does after its first attempt failed (see the header comment): float64,
// then float64 with lambda * I added to the diagonal.
template <class T, class Source>
CondResult condition_retry(const Source& src, const StarStamp& st, const CondOptions& opt,
                           const Lapack& lp, Workspace& ws) {
    auto fail = [&](int bits) {
        CondResult bad;
        bad.dnt = bits;
        return bad;
    };
    // Nothing to condition on or nothing to predict: no retry can help, so the guard has not
    // changed anything (bit 4 is only for solves it redid).
    if (!opt.guard || st.good.empty() || st.hidden.empty()) return fail(DNT_UNSTABLE);
    CondResult res;
    if constexpr (std::is_same_v<T, float>) {
        if (condition_attempt<double>(src, st, opt, lp.d, 0.0, true, ws.d, res)) {
            res.precision = 64;
            res.dnt = DNT_GUARD;
            return res;
        }
    }
    double mdiag = 0;
    int nd = 0;
    for (int i : st.good) { mdiag += src.value(i, i) + (opt.diag_on ? st.stars[i] : 0.0); ++nd; }
    for (int i : st.hidden) { mdiag += src.value(i, i) + (opt.diag_on ? st.stars[i] : 0.0); ++nd; }
    mdiag = std::abs(mdiag / nd);
    if (!(mdiag > 0) || !std::isfinite(mdiag)) return fail(DNT_GUARD | DNT_UNSTABLE);
    for (int m = -12; m <= -6; ++m) {
        res = CondResult();
        const double reg = mdiag * std::pow(10.0, m);
        if (condition_attempt<double>(src, st, opt, lp.d, reg, true, ws.d, res)) {
            res.precision = 64;
            res.reg = reg;
            res.dnt = DNT_GUARD;
            return res;
        }
    }
    return fail(DNT_GUARD | DNT_UNSTABLE);
}

}  // namespace detail

// How many stars the per-star stage conditions at a time (condition_group), from 1 (one star
// after the other) to kMaxStarGroup. Benchmarks change it (_core.set_star_group) to compare;
// results never depend on it.
constexpr int kMaxStarGroup = 8;
inline std::atomic<int>& star_group() {
    static std::atomic<int> g{2};
    return g;
}

// Benchmarks only (off by default; _core.set_factor_timing and _core.factor_times): when on,
// condition_group adds the thread CPU time of each first-attempt factorisation to the
// factorisation's place in its group (0: the first one, which follows the group's gathers and
// the previous group's solves; 1 ...: those that follow another), so that a benchmark sees what
// a factorisation costs inside the stage (benchmarks/bench_star_group.py). Two clock reads per
// factorisation when on, one relaxed load per group when off; no effect on any result.
struct FactorTimes {
    std::atomic<long long> ns[kMaxStarGroup];
    std::atomic<long long> count[kMaxStarGroup];
};
inline FactorTimes& factor_times() {
    static FactorTimes t{};
    return t;
}
inline std::atomic<bool>& factor_timing() {
    static std::atomic<bool> on{false};
    return on;
}

// g stars (0 < g <= kMaxStarGroup), each conditioned as alone (the same arithmetic, the same
// results; condition_star is g = 1): a first attempt in the working precision T (judged by the
// guard when opt.guard), then condition_retry if it failed. The first attempts are
// interleaved: all bordered matrices are gathered, then all factorised back to back, then each
// judged and solved (and redone by the guard if it must). A factorisation that follows another
// finds LAPACK's working state (its packing buffers) as the last one left it; one that follows a
// gather, with its ~5 MB of traffic, can find it evicted. Measured inside the stage on the Ice
// Lake Xeon (factor_timing, benchmarks/bench_star_group.py): one star at a time 1.23x a bare
// spotrf; two at a time the first 1.11x, the second 1.01x.
template <class T, class Source>
void condition_group(int g, const Source* const* src, const StarStamp* const* st,
                     const CondOptions& opt, const Lapack& lp, Workspace* const* ws,
                     CondResult* res) {
    const LapackFns<T>& L = [&]() -> const LapackFns<T>& {
        if constexpr (std::is_same_v<T, float>) return lp.s; else return lp.d;
    }();
    const auto scratch = [&](int a) -> CondScratch<T>& {
        if constexpr (std::is_same_v<T, float>) return ws[a]->s; else return ws[a]->d;
    };
    detail::AttemptPlan plan[kMaxStarGroup];
    for (int a = 0; a < g; ++a)
        plan[a] = detail::attempt_build(*src[a], *st[a], opt, 0.0, opt.guard, scratch(a));
    if (factor_timing().load(std::memory_order_relaxed)) {
        FactorTimes& ft = factor_times();
        for (int a = 0, k = 0; a < g; ++a) {
            if (!plan[a].ok) continue;   // nothing to factorise
            const double t0 = thread_cpu_seconds();
            detail::attempt_factor(*st[a], L, scratch(a), plan[a]);
            ft.ns[k].fetch_add(std::llround(1e9 * (thread_cpu_seconds() - t0)), std::memory_order_relaxed);
            ft.count[k++].fetch_add(1, std::memory_order_relaxed);
        }
    } else {
        for (int a = 0; a < g; ++a) detail::attempt_factor(*st[a], L, scratch(a), plan[a]);
    }
    for (int a = 0; a < g; ++a) {
        res[a] = CondResult();
        if (detail::attempt_finish(*src[a], *st[a], opt, L, plan[a], opt.guard, scratch(a), res[a]))
            res[a].precision = std::is_same_v<T, float> ? 32 : 64;
        else
            res[a] = detail::condition_retry<T>(*src[a], *st[a], opt, lp, *ws[a]);
    }
}

// Condition one star. T is the working precision (float or double); see the header comment
// for the guard. Never throws for numerical trouble: it is reported through res.dnt.
// condition_group of the one star.
template <class T, class Source>
CondResult condition_star(const Source& src, const StarStamp& st, const CondOptions& opt,
                          const Lapack& lp, Workspace& ws) {
    const Source* srcs[1] = {&src};
    const StarStamp* sts[1] = {&st};
    Workspace* wss[1] = {&ws};
    CondResult res;
    condition_group<T>(1, srcs, sts, opt, lp, wss, &res);
    return res;
}

// An explicit Np^2 x Np^2 covariance (row-major, read as given) and mean vector.
template <class T>
struct MatrixCov {
    const T* cov;
    const T* mu;
    idx n;
    double value(idx i, idx j) const { return static_cast<double>(cov[i * n + j]); }
    template <class W>
    void fill(int i, const int* js, int m, W* out, const int* = nullptr) const {
        for (int b = 0; b < m; ++b) out[b] = static_cast<W>(cov[static_cast<idx>(i) * n + js[b]]);
    }
    template <class W>
    void fill_transposed(int j, const int* is, int m, W* out, size_t stride, const int*) const {
        for (int b = 0; b < m; ++b)
            out[b * stride] = static_cast<W>(cov[static_cast<idx>(is[b]) * n + j]);
    }
    double mean(idx i) const { return static_cast<double>(mu[i]); }
    void prefetch(idx) const {}
};

}  // namespace cloudcov
