#include "cloudcov/gpr.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cloudcov/aligned.hpp"
#include "cloudcov/errors.hpp"
#include "cloudcov/lapack.hpp"
#include "cloudcov/parallel.hpp"

namespace cloudcov {

double GprKernel::operator()(double dr, double dc) const {
    const double u = dr * dr / (h_row * h_row) + dc * dc / (h_col * h_col);
    return a * a * (type == 0 ? std::exp(-0.5 * u) : std::exp(-std::sqrt(u)));
}

void gpr_impute(const Image<const double>& x, const Image<const std::uint8_t>& bad,
                const std::int64_t* rows, const std::int64_t* cols, idx n, int half,
                const GprKernel& kern, const double* w_full, double var_full,
                const GprOutputs& out, int nthreads) {
    require(half >= 1 && half <= 64, "half-width must be in [1, 64]");
    require(bad.rows == x.rows && bad.cols == x.cols, "image and bad shapes differ");
    for (idx i = 0; i < n; ++i)
        require(rows[i] >= 0 && rows[i] < x.rows && cols[i] >= 0 && cols[i] < x.cols,
                "target pixel " + std::to_string(i) + " outside the image");
    const int w = 2 * half + 1, npix = w * w;
    const auto& L = lapack_table().d;
    const int nt = resolve_threads(nthreads);
    struct Scratch {
        AlignedVector<double> K, v, k, xv;
        std::vector<int> dr, dc, bj;
        std::vector<double> kfull, xfull;
        std::vector<char> isgood;
    };
    std::vector<Scratch> th(static_cast<size_t>(nt));
    int one_rhs = 1;
    for (auto& s : th) {
        s.K.resize(static_cast<size_t>(npix) * npix);
        s.v.resize(npix);
        s.k.resize(npix);
        s.xv.resize(npix);
        s.dr.resize(npix);
        s.dc.resize(npix);
        s.bj.resize(npix);
        s.kfull.resize(npix);
        s.xfull.resize(npix);
        s.isgood.resize(npix);
    }
    // Kernel values by offset: table[(dr + w - 1) * (2w - 1) + dc + w - 1], |dr|, |dc| < w.
    const int tw = 2 * w - 1;
    std::vector<double> table(static_cast<size_t>(tw) * tw);
    for (int a = 0; a < tw; ++a)
        for (int b = 0; b < tw; ++b) table[static_cast<size_t>(a) * tw + b] = kern(a - (w - 1), b - (w - 1));
    const double k0 = kern(0, 0);
    auto kv = [&](int dr, int dc) { return table[static_cast<size_t>(dr + w - 1) * tw + dc + w - 1]; };
    // Cholesky factor of the full-window matrix A = K + I over the npix - 1 neighbours
    // (row-major window order, centre skipped). An interior window with a few other bad
    // pixels B is solved from it without a new factorisation: with u = A^-1 k~ (k~ = k_G,
    // zero on B) and Z = A^-1 E_B, v_G = u_G - Z_G (Z_B)^-1 u_B, since
    // (A_GG)^-1 = (A^-1)_GG - (A^-1)_GB ((A^-1)_BB)^-1 (A^-1)_BG.
    const int nf = npix - 1;
    constexpr int kMaxUpdate = 8;
    std::vector<int> fdr(nf), fdc(nf), fidx(npix, -1);
    for (int a = -half, j = 0; a <= half; ++a)
        for (int b = -half; b <= half; ++b)
            if (a || b) {
                fdr[j] = a;
                fdc[j] = b;
                fidx[(a + half) * w + b + half] = j;
                ++j;
            }
    AlignedVector<double> Af(static_cast<size_t>(nf) * nf);
    for (int c = 0; c < nf; ++c)
        for (int r = c; r < nf; ++r)
            Af[static_cast<size_t>(c) * nf + r] = r == c ? k0 + 1.0 : kv(fdr[r] - fdr[c], fdc[r] - fdc[c]);
    {
        char lo = 'L';
        int info = 0, nn = nf;
        L.potrf(&lo, &nn, Af.data(), &nn, &info);
        if (info != 0) throw NumericalError("gpr: Cholesky of the full-window K + I failed");
    }
    for (auto& s : th) s.K.resize(std::max<size_t>(s.K.size(), static_cast<size_t>(nf) * (kMaxUpdate + 1)));

    parallel_for(n, nt, [&](std::int64_t i, int tid) {
        Scratch& s = th[static_cast<size_t>(tid)];
        const idx R = rows[i], C = cols[i];
        int m = 0;
        bool full = R - half >= 0 && R + half < x.rows && C - half >= 0 && C + half < x.cols;
        for (int a = -half; a <= half; ++a) {
            const idx r = R + a;
            if (r < 0 || r >= x.rows) continue;
            for (int b = -half; b <= half; ++b) {
                const idx c = C + b;
                if (c < 0 || c >= x.cols || (a == 0 && b == 0)) continue;
                if (bad(r, c)) {
                    full = false;
                    continue;
                }
                s.dr[m] = a;
                s.dc[m] = b;
                s.xv[m] = x(r, c);
                ++m;
            }
        }
        out.ngood[i] = m;
        out.full[i] = full;
        if (m == 0) {
            out.mean[i] = NAN;
            out.var[i] = NAN;
            return;
        }
        if (full) {
            double acc = 0;
            for (int j = 0; j < m; ++j) acc += w_full[(s.dr[j] + half) * w + s.dc[j] + half] * s.xv[j];
            out.mean[i] = acc;
            out.var[i] = var_full;
            return;
        }
        const bool interior = R - half >= 0 && R + half < x.rows && C - half >= 0 && C + half < x.cols;
        const int nb = nf - m;
        if (interior && nb <= kMaxUpdate) {
            // u = A^-1 k~ and Z = A^-1 E_B with the cached factor (nb + 1 right-hand sides)
            double* U = s.K.data();  // nf x (nb + 1), column-major
            std::fill(U, U + static_cast<size_t>(nf) * (nb + 1), 0.0);
            int bcount = 0;
            int* bj = s.bj.data();
            double* kfull = s.kfull.data();
            double* xfull = s.xfull.data();
            char* isgood = s.isgood.data();
            std::fill(kfull, kfull + nf, 0.0);
            std::fill(xfull, xfull + nf, 0.0);
            std::fill(isgood, isgood + nf, 0);
            for (int j = 0; j < m; ++j) {
                const int f = fidx[(s.dr[j] + half) * w + s.dc[j] + half];
                kfull[f] = kv(s.dr[j], s.dc[j]);
            }
            for (int j = 0; j < m; ++j) {
                const int f = fidx[(s.dr[j] + half) * w + s.dc[j] + half];
                xfull[f] = s.xv[j];
                isgood[f] = 1;
            }
            for (int f = 0; f < nf; ++f)
                if (!isgood[f]) bj[bcount++] = f;
            for (int f = 0; f < nf; ++f) U[f] = kfull[f];
            for (int b = 0; b < bcount; ++b) U[static_cast<size_t>(b + 1) * nf + bj[b]] = 1.0;
            char lo = 'L';
            int info = 0, nn = nf, nrhs = bcount + 1;
            L.potrs(&lo, &nn, &nrhs, Af.data(), &nn, U, &nn, &info);
            // v_G = u_G - Z_G S^-1 u_B with S = Z_B (nb x nb, SPD)
            alignas(64) double S[kMaxUpdate * kMaxUpdate];
            alignas(64) double t[kMaxUpdate];
            for (int b = 0; b < bcount; ++b) {
                t[b] = U[bj[b]];
                for (int c = 0; c < bcount; ++c)
                    S[c * bcount + b] = U[static_cast<size_t>(c + 1) * nf + bj[b]];
            }
            if (bcount) {
                int nbb = bcount;
                L.potrf(&lo, &nbb, S, &nbb, &info);
                if (info != 0)
                    throw NumericalError("gpr: Cholesky of the update block failed at pixel (" +
                                         std::to_string(R) + ", " + std::to_string(C) + ")");
                L.potrs(&lo, &nbb, &one_rhs, S, &nbb, t, &nbb, &info);
            }
            double sum = 0, kv_dot = 0, xdot = 0;
            for (int f = 0; f < nf; ++f) {
                if (!isgood[f]) continue;
                double v = U[f];
                for (int b = 0; b < bcount; ++b) v -= U[static_cast<size_t>(b + 1) * nf + f] * t[b];
                sum += v;
                kv_dot += kfull[f] * v;
                xdot += v * xfull[f];
            }
            if (!(std::abs(sum) > 1e-12)) {
                out.mean[i] = NAN;
                out.var[i] = NAN;
                return;
            }
            out.mean[i] = xdot / sum;
            out.var[i] = k0 + 1.0 - kv_dot * (2.0 / sum - 1.0 / (sum * sum));
            return;
        }
        // K_GG + I (lower triangle, column-major) and k_G
        for (int c = 0; c < m; ++c) {
            double* col = s.K.data() + static_cast<size_t>(c) * m;
            col[c] = k0 + 1.0;
            for (int r = c + 1; r < m; ++r) col[r] = kv(s.dr[r] - s.dr[c], s.dc[r] - s.dc[c]);
            s.k[c] = kv(s.dr[c], s.dc[c]);
            s.v[c] = s.k[c];
        }
        char lo = 'L';
        int info = 0, one = 1;
        L.potrf(&lo, &m, s.K.data(), &m, &info);
        if (info != 0)
            throw NumericalError("gpr: Cholesky of K + I failed at pixel (" + std::to_string(R) +
                                 ", " + std::to_string(C) + ")");
        L.potrs(&lo, &m, &one, s.K.data(), &m, s.v.data(), &m, &info);
        double sum = 0, kv_dot = 0, xdot = 0;
        for (int j = 0; j < m; ++j) {
            sum += s.v[j];
            kv_dot += s.k[j] * s.v[j];
            xdot += s.v[j] * s.xv[j];
        }
        if (!(std::abs(sum) > 1e-12)) {  // no usable weight: the caller falls back
            out.mean[i] = NAN;
            out.var[i] = NAN;
            return;
        }
        out.mean[i] = xdot / sum;
        out.var[i] = k0 + 1.0 - kv_dot * (2.0 / sum - 1.0 / (sum * sum));
    });
}

}  // namespace cloudcov
