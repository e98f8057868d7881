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
// Cholesky factorisations succeed and LAPACK's reciprocal condition estimates are
// >= 1e2 * eps(W) (a relative error bound kappa * eps <= 1e-2, far below the statistical
// uncertainty of the outputs): ?pocon for C_kk, and ?trcon of
// the factor of P, squared, for P. Otherwise the star is redone
// in float64 (dnt bit 4 when the working precision was float32) and, if float64 fails the
// same test, with lambda * I added to the covariance diagonal, lambda = mean(diag C) * 10^m
// for m = -12, -11, ..., -6 (first that passes; dnt bit 4). If none passes, dnt bit 64 is
// set and the float outputs are NaN.
#pragma once
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "cloudcov/lapack.hpp"
#include "cloudcov/pixel_classes.hpp"
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
    std::vector<W> K, z, pred, q, pdiag, work;
    std::vector<double> colsum;
    std::vector<int> iwork;
};
struct Workspace {
    CondScratch<float> s;
    CondScratch<double> d;
};

template <class W>
inline double rcond_min() { return 1e2 * std::numeric_limits<W>::epsilon(); }

namespace detail {

template <class W, class Source>
bool condition_attempt(const Source& src, const StarStamp& st, const CondOptions& opt,
                       const LapackFns<W>& L, double reg, bool check_rcond, CondScratch<W>& s,
                       CondResult& res) {
    int kc = static_cast<int>(st.good.size());
    int kp = static_cast<int>(st.hidden.size());
    if (kc == 0 || kp == 0) return false;
    int n = kc + kp;
    const auto diag_add = [&](int i) { return (opt.diag_on ? st.stars[i] : 0.0) + reg; };
    s.K.resize(static_cast<size_t>(n) * n);
    s.z.resize(kc);
    s.pred.resize(kp);
    s.q.resize(kp);
    s.pdiag.resize(kp);
    s.work.resize(3 * static_cast<size_t>(n));
    s.colsum.resize(static_cast<size_t>(kc));
    s.iwork.resize(n);
    char Lc = 'L', N = 'N', one_norm = '1';  // one_norm: ?trcon
    int info = 0, ione = 1;
    W wone = 1, wzero = 0;
    W* A = s.K.data();
    // Bordered matrix [[C_kk, C_k,k*], [C_k*,k, C_k*k*]] as a lower triangle, column-major
    // (element (r, c), r >= c, at c * n + r). Its Cholesky factor is [[L11, 0], [W^T, L22]]
    // with L11 L11^T = C_kk, W = L11^-1 C_k,k* and L22 L22^T = C_k*k* - W^T W = P (eq. 5).
    // Column a holds C(i, .) for pixel i = good[a] or hidden[a - kc]: CloudCovErr.jl's upper
    // triangles of the good-good and hidden-hidden blocks, its good-hidden block as given,
    // read along rows of C (contiguous lookups).
    // Column a of the bordered matrix holds C(i, .) for its pixel i over the later pixels: the
    // lookups of one column read pixel i's stack entries (see StackCov::fill).
    for (int a = 0; a < n; ++a) {
        const int i = a < kc ? st.good[a] : st.hidden[a - kc];
        W* col = A + static_cast<size_t>(a) * n;
        col[a] = static_cast<W>(src.value(i, i) + diag_add(i));
        if (a + 1 < kc) src.fill(i, st.good.data() + a + 1, kc - a - 1, col + a + 1);
        const int h0 = a < kc ? 0 : a - kc + 1;
        if (h0 < kp) src.fill(i, st.hidden.data() + h0, kp - h0, col + kc + h0);
    }
    // Absolute column sums of C_kk (its 1-norm, for ?pocon).
    double* colsum = s.colsum.data();
    if (check_rcond) {
        std::fill(colsum, colsum + kc, 0.0);
        for (int a = 0; a < kc; ++a) {
            const W* col = A + static_cast<size_t>(a) * n;
            double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};   // independent partial sums
            int b = a + 1;
            for (; b + 8 <= kc; b += 8)
                for (int u = 0; u < 8; ++u) {
                    const double v = std::abs(static_cast<double>(col[b + u]));
                    part[u] += v;
                    colsum[b + u] += v;
                }
            for (; b < kc; ++b) {
                const double v = std::abs(static_cast<double>(col[b]));
                part[0] += v;
                colsum[b] += v;
            }
            colsum[a] += std::abs(static_cast<double>(col[a])) + ((part[0] + part[1]) + (part[2] + part[3])) +
                         ((part[4] + part[5]) + (part[6] + part[7]));
        }
    }
    W anorm = 0, rcond = 0;
    if (check_rcond) anorm = static_cast<W>(*std::max_element(colsum, colsum + kc));
    L.potrf(&Lc, &n, A, &n, &info);
    if (info != 0) return false;
    W* L22 = A + static_cast<size_t>(kc) * n + kc;
    if (check_rcond) {
        L.pocon(&Lc, &kc, A, &n, &anorm, &rcond, s.work.data(), s.iwork.data(), &info);
        if (info != 0 || !(static_cast<double>(rcond) >= rcond_min<W>())) return false;
        // cond(P) = cond(L22)^2 (2-norm; the 1-norm estimate of L22 squared stands for it)
        L.trcon(&one_norm, &Lc, &N, &kp, L22, &n, &rcond, s.work.data(), s.iwork.data(), &info);
        const double rc = static_cast<double>(rcond);
        if (info != 0 || !(rc * rc >= rcond_min<W>())) return false;
    }
    for (int a = 0; a < kc; ++a)
        s.z[a] = static_cast<W>(st.data[st.good[a]] - src.mean(st.good[a]));
    L.trsv(&Lc, &N, &N, &kc, A, &n, s.z.data(), &ione);  // z = L11^-1 (x_k - mu_k)
    double chi2 = 0;
    for (int a = 0; a < kc; ++a) chi2 += static_cast<double>(s.z[a]) * static_cast<double>(s.z[a]);
    L.gemv(&N, &kp, &kc, &wone, A + kc, &n, s.z.data(), &ione, &wzero, s.pred.data(), &ione);
    for (int h = 0; h < kp; ++h) {   // diag(P) from the rows of L22
        double acc = 0;
        for (int c = 0; c <= h; ++c) {
            const double v = L22[static_cast<size_t>(c) * n + h];
            acc += v * v;
        }
        s.pdiag[h] = static_cast<W>(acc);
    }
    if (opt.keep_prediction) {
        res.pcov.assign(static_cast<size_t>(kp) * kp, 0.0);
        for (int g = 0; g < kp; ++g)
            for (int h = 0; h <= g; ++h) {
                double acc = 0;
                for (int c = 0; c <= h; ++c)
                    acc += static_cast<double>(L22[static_cast<size_t>(c) * n + g]) *
                           static_cast<double>(L22[static_cast<size_t>(c) * n + h]);
                res.pcov[static_cast<size_t>(g) * kp + h] = acc;
                res.pcov[static_cast<size_t>(h) * kp + g] = acc;
            }
    }
    for (int h = 0; h < kp; ++h) s.q[h] = static_cast<W>(st.psf[st.hidden[h]]);
    L.potrs(&Lc, &kp, &ione, L22, &n, s.q.data(), &kp, &info);  // q = P^-1 p
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

}  // namespace detail

// Condition one star. T is the working precision (float or double); see the header comment
// for the guard. Never throws for numerical trouble: it is reported through res.dnt.
template <class T, class Source>
CondResult condition_star(const Source& src, const StarStamp& st, const CondOptions& opt,
                          const Lapack& lp, Workspace& ws) {
    CondResult res;
    auto fail = [&](int bits) {
        CondResult bad;
        bad.dnt = bits;
        return bad;
    };
    bool first_ok;
    if constexpr (std::is_same_v<T, float>)
        first_ok = detail::condition_attempt<float>(src, st, opt, lp.s, 0.0, opt.guard, ws.s, res);
    else
        first_ok = detail::condition_attempt<double>(src, st, opt, lp.d, 0.0, opt.guard, ws.d, res);
    if (first_ok) {
        res.precision = std::is_same_v<T, float> ? 32 : 64;
        return res;
    }
    // Nothing to condition on or nothing to predict: no retry can help, so the guard has not
    // changed anything (bit 4 is only for solves it redid).
    if (!opt.guard || st.good.empty() || st.hidden.empty()) return fail(DNT_UNSTABLE);
    if constexpr (std::is_same_v<T, float>) {
        res = CondResult();
        if (detail::condition_attempt<double>(src, st, opt, lp.d, 0.0, true, ws.d, res)) {
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
        if (detail::condition_attempt<double>(src, st, opt, lp.d, reg, true, ws.d, res)) {
            res.precision = 64;
            res.reg = reg;
            res.dnt = DNT_GUARD;
            return res;
        }
    }
    return fail(DNT_GUARD | DNT_UNSTABLE);
}

// An explicit Np^2 x Np^2 covariance (row-major, read as given) and mean vector.
template <class T>
struct MatrixCov {
    const T* cov;
    const T* mu;
    idx n;
    double value(idx i, idx j) const { return static_cast<double>(cov[i * n + j]); }
    template <class W>
    void fill(int i, const int* js, int m, W* out) const {
        for (int b = 0; b < m; ++b) out[b] = static_cast<W>(cov[static_cast<idx>(i) * n + js[b]]);
    }
    double mean(idx i) const { return static_cast<double>(mu[i]); }
};

}  // namespace cloudcov
