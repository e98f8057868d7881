#include "cloudcov/lpi_stars.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "cloudcov/boxcar.hpp"
#include "cloudcov/errors.hpp"
#include "cloudcov/shift_stack.hpp"
#include "cloudcov/parallel.hpp"
#include "cloudcov/pixel_classes.hpp"

namespace cloudcov {

template <class T>
void lpi_stars(const StarBatch<T>& b, const StarOutputs& out, int nthreads) {
    const idx Np = b.Np, h = (Np - 1) / 2, npix = Np * Np;
    const idx drow = (b.wrow - 1) / 2, dcol = (b.wcol - 1) / 2;
    // Check every stamp before starting threads.
    // Overflow-safe: with R near INT64_MAX, R + h and r0 + Np used to wrap and pass.
    for (idx k = 0; k < b.n; ++k) {
        const idx R = b.rows[k], C = b.cols[k];
        bool ok = R >= h && C >= h && span_inside(R - h, Np, b.resid.rows) &&
                  span_inside(C - h, Np, b.resid.cols);
        idx r0 = 0, c0 = 0;
        ok = ok && checked_sub(R - h, b.tile_r0, r0) && checked_sub(r0, drow, r0) &&
             checked_sub(C - h, b.tile_c0, c0) && checked_sub(c0, dcol, c0) &&
             span_inside(r0, Np, b.bimage.rows) && span_inside(c0, Np, b.bimage.cols);
        if (!ok)
            throw std::invalid_argument("star " + std::to_string(k) + " at padded (row, col) = (" +
                                        std::to_string(R) + ", " + std::to_string(C) +
                                        "): its stamp leaves the padded image or the tile");
    }
    const Lapack& lp = lapack_table();
    // one workspace per thread that has a star to work on
    const int nt = static_cast<int>(std::min<idx>(resolve_threads(nthreads), std::max<idx>(b.n, 1)));
    struct Thread {
        Workspace ws;
        std::vector<double> data, stars, psf;
        std::vector<std::uint8_t> kmasked, not_good, hidden;
    };
    std::vector<Thread> th(static_cast<size_t>(nt));
    for (auto& t : th) {
        t.data.resize(npix);
        t.stars.resize(npix);
        t.psf.resize(npix);
        t.kmasked.resize(npix);
        t.not_good.resize(npix);
        t.hidden.resize(npix);
    }
    parallel_for(b.n, nt, [&](std::int64_t k, int tid) {
        Thread& t = th[static_cast<size_t>(tid)];
        const idx R = b.rows[k], C = b.cols[k];
        for (idx pr = 0; pr < Np; ++pr)
            for (idx pc = 0; pc < Np; ++pc) {
                const idx i = pr * Np + pc;
                t.data[i] = static_cast<double>(b.resid(R - h + pr, C - h + pc));
                t.stars[i] = static_cast<double>(b.stars(R - h + pr, C - h + pc));
                t.kmasked[i] = b.bad(R - h + pr, C - h + pc) != 0;
                t.psf[i] = static_cast<double>(b.psf[k * npix + i]);
            }
        PixelCounts pc = pixel_classes<double>(t.kmasked.data(), t.psf.data(), b.circmask,
                                               b.flux[k], b.thr, Np, t.not_good.data(),
                                               t.hidden.data(), b.flux_floor);
        StarStamp st;
        st.Np = Np;
        st.data = t.data.data();
        st.stars = t.stars.data();
        st.psf = t.psf.data();
        st.good.reserve(npix);
        st.hidden.reserve(npix);
        for (idx i = 0; i < npix; ++i) {
            if (!t.not_good[i]) st.good.push_back(static_cast<int>(i));
            if (t.hidden[i]) st.hidden.push_back(static_cast<int>(i));
        }
        StackCov<T> sc;
        sc.stack = b.stack;
        sc.bimage = b.bimage;
        sc.Np = Np;
        sc.r0 = R - h - b.tile_r0 - drow;
        sc.c0 = C - h - b.tile_c0 - dcol;
        sc.N = static_cast<double>(b.wrow) * static_cast<double>(b.wcol);
        sc.julia_compat = b.julia_compat;
        sc.prepare();
        CondOptions opt = b.opt;
        opt.keep_prediction = false;
        CondResult r = condition_star<T>(sc, st, opt, lp, t.ws);
        out.dcflux[k] = r.dcflux;
        out.dcflux_diag[k] = r.dcflux_diag;
        out.fdb_res[k] = r.fdb_res;
        out.fdb_pred[k] = r.fdb_pred;
        out.cchi2[k] = r.cchi2;
        out.kcond0[k] = pc.kcond0;
        out.kcond[k] = pc.kcond;
        out.kpred[k] = pc.kpred;
        out.dnt[k] = static_cast<std::int8_t>(pc.dnt | r.dnt);
    });
}

template <class T>
void lpi_strip(const Image<const T>& image, idx in_r0, idx in_r1, idx in_c0, idx in_c1,
               idx ring_rows, T* ring, idx ring_size, T* bimage_buf, idx bimage_size,
               StarBatch<T> b, const StarOutputs& out, int nthreads) {
    const idx Np = b.Np, h = (Np - 1) / 2, npix = Np * Np;
    // Every bound is checked before it enters arithmetic, and in an order that cannot
    // overflow for any int64 input (widths, strip bounds, ring rows, star rows near INT64_MAX
    // or INT64_MIN used to wrap in wrow + Np - 1, the ring size product and origin()).
    require(Np >= 3 && Np % 2 == 1 && Np <= kMaxNp, "Np must be odd and in [3, 1023]");
    require(b.wrow >= 1 && b.wcol >= 1, "boxcar widths must be >= 1");
    require(0 <= in_r0 && in_r0 < in_r1 && in_r1 <= image.rows && 0 <= in_c0 && in_c0 < in_c1 &&
                in_c1 <= image.cols,
            "strip rows/cols must lie inside the image");
    const idx strip_rows = in_r1 - in_r0, strip_cols = in_c1 - in_c0;   // both in [1, image size]
    require(b.wrow <= strip_rows && b.wcol <= strip_cols &&
                strip_rows - b.wrow >= Np - 1 && strip_cols - b.wcol >= Np - 1,
            "strip smaller than one stamp plus its boxcar window");
    const Image<const T> x(image.data + in_r0 * image.stride + in_c0, strip_rows, strip_cols,
                           image.stride);
    const idx orow = x.rows - b.wrow + 1, ocol = x.cols - b.wcol + 1;
    require(ring_rows >= Np && ring_rows <= orow, "ring_rows must be in [Np, strip output rows]");
    idx need = 0;   // Np * ring_rows * ocol * (2 Np - 1), overflow-checked
    require(checked_mul(Np * (2 * Np - 1), ring_rows, need) && checked_mul(need, ocol, need) &&
                ring_size >= need,
            "ring buffer too small");
    require(checked_mul(orow, ocol, need) && bimage_size >= need, "bimage buffer too small");
    const idx drow = (b.wrow - 1) / 2;
    for (idx k = 0; k < b.n; ++k) {
        // origin() below subtracts the strip offset: keep rows inside the padded image first
        require(b.rows[k] >= 0 && b.rows[k] < b.resid.rows,
                "star " + std::to_string(k) + " at padded row " + std::to_string(b.rows[k]) +
                    " is outside the padded image (" + std::to_string(b.resid.rows) + " rows)");
        if (k > 0) require(b.rows[k] >= b.rows[k - 1], "stars must be sorted by row");
    }

    Image<T> bimage(bimage_buf, orow, ocol);
    boxcar_sum<T, T>(x, b.wrow, b.wcol, bimage);
    Stack<T> stack{ring, Np, ring_rows, ocol};
    StackStream<T> stream(x, Np, b.wrow, b.wcol, stack, nthreads);
    b.stack = {ring, Np, ring_rows, ocol};
    b.bimage = {bimage_buf, orow, ocol};
    b.tile_r0 = in_r0;
    b.tile_c0 = in_c0;
    // Stamp origin row (boxcar-output coordinates) of star k; lpi_stars checks the bounds.
    auto origin = [&](idx k) { return b.rows[k] - h - in_r0 - drow; };
    idx k = 0;
    while (k < b.n) {
        // Advance as far as star k allows (its first row must stay in the ring), then process
        // every star whose stamp is complete.
        const idx target = std::min(orow, std::max<idx>(origin(k), 0) + ring_rows);
        stream.compute_rows(target);
        idx k2 = k;
        while (k2 < b.n && origin(k2) + Np <= target) ++k2;
        if (k2 == k) k2 = k + 1;  // its stamp leaves the strip: lpi_stars reports it
        StarBatch<T> sub = b;
        sub.n = k2 - k;
        sub.rows = b.rows + k;
        sub.cols = b.cols + k;
        sub.psf = b.psf + k * npix;
        sub.flux = b.flux + k;
        StarOutputs o{out.dcflux + k, out.dcflux_diag + k, out.fdb_res + k, out.fdb_pred + k,
                      out.cchi2 + k, out.kcond0 + k, out.kcond + k, out.kpred + k, out.dnt + k};
        lpi_stars<T>(sub, o, nthreads);
        k = k2;
    }
}

template void lpi_stars<float>(const StarBatch<float>&, const StarOutputs&, int);
template void lpi_stars<double>(const StarBatch<double>&, const StarOutputs&, int);
template void lpi_strip<float>(const Image<const float>&, idx, idx, idx, idx, idx, float*, idx,
                               float*, idx, StarBatch<float>, const StarOutputs&, int);
template void lpi_strip<double>(const Image<const double>&, idx, idx, idx, idx, idx, double*, idx,
                                double*, idx, StarBatch<double>, const StarOutputs&, int);

}  // namespace cloudcov
