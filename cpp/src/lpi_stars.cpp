#include "cloudcov/lpi_stars.hpp"

#include <time.h>

#include <algorithm>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "cloudcov/boxcar.hpp"
#include "cloudcov/errors.hpp"
#include "cloudcov/shift_stack.hpp"
#include "cloudcov/parallel.hpp"
#include "cloudcov/cpu_clock.hpp"
#include "cloudcov/pixel_classes.hpp"

namespace cloudcov {

namespace {

// Per-thread storage, allocated once per strip (or lpi_stars call) and reused for every star.
template <class T>
struct StarThread {
    Workspace ws;
    std::vector<double> data, stars, psf;
    std::vector<std::uint8_t> kmasked, not_good, hidden;
    StarStamp st;
    StackCov<T> sc;
    std::vector<T> window;   // the stamp's stack entries, with gather_compact() only
    explicit StarThread(idx npix)
        : data(npix), stars(npix), psf(npix), kmasked(npix), not_good(npix), hidden(npix) {
        st.good.reserve(npix);
        st.hidden.reserve(npix);
    }
};

template <class T>
void check_stamps(const StarBatch<T>& b) {
    const idx Np = b.Np, h = (Np - 1) / 2;
    const idx drow = (b.wrow - 1) / 2, dcol = (b.wcol - 1) / 2;
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
}

// Star k's stamps, pixel classes and covariance lookup into t; returns its pixel counts.
template <class T>
PixelCounts stamp_star(const StarBatch<T>& b, std::int64_t k, StarThread<T>& t) {
    const idx Np = b.Np, h = (Np - 1) / 2, npix = Np * Np;
    const idx drow = (b.wrow - 1) / 2, dcol = (b.wcol - 1) / 2;
    const idx R = b.rows[k], C = b.cols[k];
    for (idx pr = 0; pr < Np; ++pr) {
        const T* rs = b.resid.row(R - h + pr) + (C - h);
        const T* ss = b.stars.row(R - h + pr) + (C - h);
        const std::uint8_t* bs = b.bad.row(R - h + pr) + (C - h);
        for (idx pc = 0; pc < Np; ++pc) {
            const idx i = pr * Np + pc;
            t.data[i] = static_cast<double>(rs[pc]);
            t.stars[i] = static_cast<double>(ss[pc]);
            t.kmasked[i] = bs[pc] != 0;
        }
    }
    PixelCounts pc;
    if (b.given_hidden) {   // imputation: the hidden set is given, no PSF
        const std::uint8_t* gh = b.given_hidden + k * npix;
        for (idx i = 0; i < npix; ++i) {
            t.psf[i] = 1.0;
            t.hidden[i] = gh[i] != 0;
            t.not_good[i] = t.kmasked[i] || t.hidden[i] || (b.circmask && b.circmask[i]);
            pc.kpred += t.hidden[i];
            pc.kcond0 += !t.not_good[i];
        }
        pc.kcond = pc.kcond0;
    } else {
        for (idx i = 0; i < npix; ++i) t.psf[i] = static_cast<double>(b.psf[k * npix + i]);
        pc = pixel_classes<double>(t.kmasked.data(), t.psf.data(), b.circmask, b.flux[k], b.thr,
                                   Np, t.not_good.data(), t.hidden.data(), b.flux_floor);
    }
    StarStamp& st = t.st;
    st.Np = Np;
    st.data = t.data.data();
    st.stars = t.stars.data();
    st.psf = t.psf.data();
    st.good.clear();
    st.hidden.clear();
    for (idx i = 0; i < npix; ++i) {
        if (!t.not_good[i]) st.good.push_back(static_cast<int>(i));
        if (t.hidden[i]) st.hidden.push_back(static_cast<int>(i));
    }
    StackCov<T>& sc = t.sc;
    sc.stack = b.stack;
    sc.bimage = b.bimage;
    sc.Np = Np;
    sc.r0 = R - h - b.tile_r0 - drow;
    sc.c0 = C - h - b.tile_c0 - dcol;
    sc.N = static_cast<double>(b.wrow) * static_cast<double>(b.wcol);
    sc.julia_compat = b.julia_compat;
    sc.prepare();
    if (gather_compact().load(std::memory_order_relaxed)) sc.compact_window(t.window);
    return pc;
}

template <class T>
CondOptions star_options(const StarBatch<T>& b) {
    CondOptions opt = b.opt;
    opt.keep_prediction = b.xbar_out != nullptr;
    return opt;
}

// Star k's outputs.
template <class T>
void store_star(const StarBatch<T>& b, const StarOutputs& out, std::int64_t k,
                const PixelCounts& pc, const StarStamp& st, const CondResult& r) {
    if (b.xbar_out && !(r.dnt & DNT_UNSTABLE) && r.xbar.size() == st.hidden.size()) {
        std::copy(r.xbar.begin(), r.xbar.end(), b.xbar_out + b.xbar_offset[k]);
        std::copy(r.pcov.begin(), r.pcov.end(), b.pcov_out + b.pcov_offset[k]);
    }
    out.dcflux[k] = r.dcflux;
    out.dcflux_diag[k] = r.dcflux_diag;
    out.fdb_res[k] = r.fdb_res;
    out.fdb_pred[k] = r.fdb_pred;
    out.cchi2[k] = r.cchi2;
    out.kcond0[k] = pc.kcond0;
    out.kcond[k] = pc.kcond;
    out.kpred[k] = pc.kpred;
    out.dnt[k] = static_cast<std::int8_t>(pc.dnt | r.dnt);
}

template <class T>
void one_star(const StarBatch<T>& b, const StarOutputs& out, std::int64_t k, StarThread<T>& t,
              const Lapack& lp) {
    const PixelCounts pc = stamp_star(b, k, t);
    const CondResult r = condition_star<T>(t.sc, t.st, star_options(b), lp, t.ws);
    store_star(b, out, k, pc, t.st, r);
}

// Stars k .. k + g - 1 (condition_group: the same results as one_star on each); t[a] holds
// star k + a.
template <class T>
void group_stars(const StarBatch<T>& b, const StarOutputs& out, std::int64_t k, int g,
                StarThread<T>* const* t, const Lapack& lp) {
    PixelCounts pc[kMaxStarGroup];
    const StackCov<T>* src[kMaxStarGroup];
    const StarStamp* st[kMaxStarGroup];
    Workspace* ws[kMaxStarGroup];
    CondResult r[kMaxStarGroup];
    for (int a = 0; a < g; ++a) {
        pc[a] = stamp_star(b, k + a, *t[a]);
        src[a] = &t[a]->sc;
        st[a] = &t[a]->st;
        ws[a] = &t[a]->ws;
    }
    condition_group<T>(g, src, st, star_options(b), lp, ws, r);
    for (int a = 0; a < g; ++a) store_star(b, out, k + a, pc[a], t[a]->st, r[a]);
}

// Thread storage is created lazily by the thread that uses it (first touch on its core):
// star_group() stores per thread, each with its stamps and LAPACK scratch.
template <class T>
void run_stars(const StarBatch<T>& b, const StarOutputs& out, WorkerPool& pool,
               std::vector<std::unique_ptr<StarThread<T>>>& th) {
    check_stamps(b);
    const Lapack& lp = lapack_table();
    const idx npix = b.Np * b.Np;
    const int g = std::clamp(star_group().load(std::memory_order_relaxed), 1, kMaxStarGroup);
    th.resize(std::max(th.size(), static_cast<size_t>(pool.size()) * g));
    pool.run((b.n + g - 1) / g, [&](std::int64_t p, int tid) {
        const std::int64_t k = p * g;
        const int m = static_cast<int>(std::min<std::int64_t>(g, b.n - k));
        StarThread<T>* t[kMaxStarGroup];
        for (int a = 0; a < m; ++a) {
            auto& slot = th[static_cast<size_t>(tid) * g + a];
            if (!slot) slot = std::make_unique<StarThread<T>>(npix);
            t[a] = slot.get();
        }
        if (m == 1)
            one_star<T>(b, out, k, *t[0], lp);
        else
            group_stars<T>(b, out, k, m, t, lp);
    });
}

}  // namespace

template <class T>
void lpi_stars(const StarBatch<T>& b, const StarOutputs& out, int nthreads) {
    check_stamps(b);   // before starting threads
    WorkerPool pool(std::max<int>(1, std::min<std::int64_t>(resolve_threads(nthreads), b.n)));
    std::vector<std::unique_ptr<StarThread<T>>> th;
    run_stars<T>(b, out, pool, th);
}

namespace {

// The stack lookups of gather_probe: a Source for detail::build_bordered that walks the same
// runs as StackCov::fill / fill_transposed (the entries of pixel i for the pixels js[b], run
// by run) and does only the part of the work its mode measures (see gather_probe).
template <class T>
struct ProbeSource {
    const StackCov<T>& sc;
    int mode;
    bool check;               // mode 5: sum the results (after the timing matters not)
    mutable double sink = 0;
    mutable std::vector<float> buf32;    // mode 5: the L1-sized buffer for the results
    mutable std::vector<double> buf64;
    ProbeSource(const StackCov<T>& s, int m, bool c) : sc(s), mode(m), check(c) {}

    double value(idx i, idx j) const { return sc.value(i, j); }
    void prefetch(idx i) const {
        if (mode != 4) sc.prefetch(i);
    }
    template <class W>
    W* buffer(int n) const {
        auto& v = [this]() -> std::vector<W>& {
            if constexpr (std::is_same_v<W, float>) return buf32;
            else return buf64;
        }();
        if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
        return v.data();
    }
    // f(b, m): the run of m entries from position b (contiguous in the stack)
    template <class F>
    static void runs(int n, const int* run_len, F f) {
        for (int b = 0; b < n;) {
            const int e = std::min(b + run_len[b], n);
            f(b, e - b);
            b = e;
        }
    }
    void read(const T* src, int m) const {
        if (mode == 2) {   // every entry, in 8 independent partial sums (no chain of adds)
            double p[8] = {};
            int t = 0;
            for (; t + 8 <= m; t += 8)
                for (int u = 0; u < 8; ++u) p[u] += static_cast<double>(src[t + u]);
            for (; t < m; ++t) p[t % 8] += static_cast<double>(src[t]);
            for (int u = 0; u < 8; ++u) sink += p[u];
        } else {   // mode 3: the first entry of each line the run spans
            constexpr std::uintptr_t kLine = 64;
            const auto u0 = reinterpret_cast<std::uintptr_t>(src);
            const auto u1 = reinterpret_cast<std::uintptr_t>(src + m);
            T v = *src;
            asm volatile("" : : "x"(v));
            double lines = 1;
            for (std::uintptr_t u = (u0 / kLine + 1) * kLine; u < u1; u += kLine) {
                v = *reinterpret_cast<const T*>(u);
                asm volatile("" : : "x"(v));   // the load stays
                lines += 1;
            }
            sink += lines;
        }
    }
    // One column's lookups in this mode: the entries of pixel p for the pixels js[0 .. n), the
    // results at out[b * stride]; real(o, st) is StackCov's own fill into o at stride st.
    template <class W, class Real>
    void walk(int p, const int* js, int n, W* out, size_t stride, const int* run_len, Real real) const {
        switch (mode) {
            case 0: case 1: real(out, stride); return;
            case 5: {
                W* o = buffer<W>(n);
                real(o, 1);
                if (check)
                    for (int b = 0; b < n; ++b) sink += static_cast<double>(o[b]);
                return;
            }
            case 4:
                runs(n, run_len, [&](int b, int m) {
                    for (int t = 0; t < m; ++t) out[(b + t) * stride] = W(1);
                    sink += m;
                });
                return;
            default:
                runs(n, run_len, [&](int b, int m) { read(sc.base[p] + sc.key[js[b]], m); });
        }
    }
    template <class W>
    void fill(int i, const int* js, int n, W* out, const int* run_len) const {
        walk(i, js, n, out, 1, run_len, [&](W* o, size_t) { sc.fill(i, js, n, o, run_len); });
    }
    template <class W>
    void fill_transposed(int j, const int* is, int n, W* out, size_t stride,
                         const int* run_len) const {
        walk(j, is, n, out, stride, run_len,
             [&](W* o, size_t st) { sc.fill_transposed(j, is, n, o, st, run_len); });
    }
};

}  // namespace

template <class T>
void gather_probe(const StarBatch<T>& b, int mode, double* seconds, double* checksum) {
    require(mode >= 0 && mode <= 5, "mode must be in [0, 5]");
    check_stamps(b);
    StarThread<T> t(b.Np * b.Np);
    CondScratch<T> s;
    const CondOptions opt = star_options(b);
    for (idx k = 0; k < b.n; ++k) {
        stamp_star(b, k, t);
        ProbeSource<T> src(t.sc, mode, checksum != nullptr);
        const int kc = static_cast<int>(t.st.good.size()), n = kc + static_cast<int>(t.st.hidden.size());
        const bool any = kc > 0 && n > kc;
        const double c0 = thread_cpu_seconds();
        if (any) detail::build_bordered(src, t.st, opt, 0.0, mode == 0, s);
        seconds[k] = thread_cpu_seconds() - c0;
        if (checksum == nullptr) continue;
        if (mode <= 1 && any) {   // the strict lower triangle written
            const int ld = detail::bordered_ld<T>(n);
            double acc = 0;
            for (int c = 0; c < n; ++c)
                for (int r = c + 1; r < n; ++r) acc += static_cast<double>(s.K[static_cast<size_t>(c) * ld + r]);
            src.sink = acc;
        }
        checksum[k] = src.sink;
    }
}

template <class T>
void lpi_strip(const Image<const T>& image, idx in_r0, idx in_r1, idx in_c0, idx in_c1,
               idx ring_rows, T* ring, idx ring_size, T* bimage_buf, idx bimage_size,
               StarBatch<T> b, const StarOutputs& out, int nthreads, StripStats* stats) {
    const idx Np = b.Np, h = (Np - 1) / 2, npix = Np * Np;
    require(Np >= 3 && Np % 2 == 1 && Np <= kMaxNp, "Np must be odd and in [3, 1023]");
    require(b.wrow >= 1 && b.wcol >= 1, "boxcar widths must be >= 1");
    require(0 <= in_r0 && in_r0 < in_r1 && in_r1 <= image.rows && 0 <= in_c0 && in_c0 < in_c1 &&
                in_c1 <= image.cols,
            "strip rows/cols must lie inside the image");
    // Every bound is checked before it enters arithmetic, and in an order that cannot
    // overflow for any int64 input (widths, strip bounds, ring rows, star rows near INT64_MAX
    // or INT64_MIN used to wrap in wrow + Np - 1, the ring size product and origin()).
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
    // One set of threads and per-thread workspaces for the whole strip: the sweep alternates
    // short rounds of stack rows and star batches.
    WorkerPool pool(nthreads);
    std::vector<std::unique_ptr<StarThread<T>>> th;
    StackStream<T> stream(x, Np, b.wrow, b.wcol, stack, nthreads, &pool);
    {   // the stamps that read the ring: the sweep writes only what they read
        std::vector<std::pair<idx, idx>> origins(static_cast<size_t>(b.n));
        const idx dcol = (b.wcol - 1) / 2;
        for (idx k = 0; k < b.n; ++k)
            origins[static_cast<size_t>(k)] = {b.rows[k] - h - in_r0 - (b.wrow - 1) / 2,
                                               b.cols[k] - h - in_c0 - dcol};
        stream.set_readers(std::move(origins));
    }
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
        const double c0 = process_cpu_seconds();
        stream.compute_rows(target);
        const double c1 = process_cpu_seconds();
        idx k2 = k;
        while (k2 < b.n && origin(k2) + Np <= target) ++k2;
        if (k2 == k) k2 = k + 1;  // its stamp leaves the strip: lpi_stars reports it
        StarBatch<T> sub = b;
        sub.n = k2 - k;
        sub.rows = b.rows + k;
        sub.cols = b.cols + k;
        if (b.psf) sub.psf = b.psf + k * npix;
        if (b.flux) sub.flux = b.flux + k;
        if (b.given_hidden) sub.given_hidden = b.given_hidden + k * npix;
        if (b.xbar_offset) sub.xbar_offset = b.xbar_offset + k;
        if (b.pcov_offset) sub.pcov_offset = b.pcov_offset + k;
        StarOutputs o{out.dcflux + k, out.dcflux_diag + k, out.fdb_res + k, out.fdb_pred + k,
                      out.cchi2 + k, out.kcond0 + k, out.kcond + k, out.kpred + k, out.dnt + k};
        run_stars<T>(sub, o, pool, th);
        if (stats) {
            stats->stack_cpu_s += c1 - c0;
            stats->stars_cpu_s += process_cpu_seconds() - c1;
            ++stats->rounds;
        }
        k = k2;
    }
    if (stats) stats->values_written += stream.values_written();
}

template void lpi_stars<float>(const StarBatch<float>&, const StarOutputs&, int);
template void lpi_stars<double>(const StarBatch<double>&, const StarOutputs&, int);
template void gather_probe<float>(const StarBatch<float>&, int, double*, double*);
template void gather_probe<double>(const StarBatch<double>&, int, double*, double*);
template void lpi_strip<float>(const Image<const float>&, idx, idx, idx, idx, idx, float*, idx,
                               float*, idx, StarBatch<float>, const StarOutputs&, int, StripStats*);
template void lpi_strip<double>(const Image<const double>&, idx, idx, idx, idx, idx, double*, idx,
                                double*, idx, StarBatch<double>, const StarOutputs&, int, StripStats*);

}  // namespace cloudcov
