// pybind11 bindings of the cloudcov kernels: type conversion, cheap checks, GIL release.
// Argument checking with user-facing messages happens first in python/cloudcov/_validate.py;
// the checks here only protect the kernels from invalid memory access.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>
#include <type_traits>

#include "cloudcov/boxcar.hpp"
#include "cloudcov/conditioning.hpp"
#include "cloudcov/cov_lookup.hpp"
#include "cloudcov/errors.hpp"
#include "cloudcov/gpr.hpp"
#include "cloudcov/infill.hpp"
#include "cloudcov/lapack.hpp"
#include "cloudcov/lpi_stars.hpp"
#include "cloudcov/pixel_classes.hpp"
#include "cloudcov/prefetch.hpp"
#include "cloudcov/shift_stack.hpp"
#include "cloudcov/simd.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using cloudcov::idx;


namespace {

template <class T>
bool is_dtype(const py::array& a) {
    return a.dtype().is(py::dtype::of<T>());
}

void check_array(const py::array& a, const char* name, int ndim) {
    if (a.ndim() != ndim)
        throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(ndim) +
                                    "-D array, got " + std::to_string(a.ndim()) + "-D");
    if (!(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + ": expected a C-contiguous array");
}

template <class T>
const T* cptr(const py::array& a, const char* name, int ndim) {
    check_array(a, name, ndim);
    if (!is_dtype<T>(a))
        throw std::invalid_argument(std::string(name) + ": wrong dtype " +
                                    std::string(py::str(a.dtype())));
    return static_cast<const T*>(a.data());
}

template <class T>
T* mptr(py::array& a, const char* name, int ndim) {
    cptr<T>(a, name, ndim);
    if (!a.writeable()) throw std::invalid_argument(std::string(name) + ": array is read-only");
    return static_cast<T*>(a.mutable_data());
}

template <class T>
cloudcov::Image<const T> cimage(const py::array& a, const char* name) {
    const T* p = cptr<T>(a, name, 2);
    return {p, static_cast<idx>(a.shape(0)), static_cast<idx>(a.shape(1))};
}

template <class T>
cloudcov::Image<T> mimage(py::array& a, const char* name) {
    T* p = mptr<T>(a, name, 2);
    return {p, static_cast<idx>(a.shape(0)), static_cast<idx>(a.shape(1))};
}


// A 4-D stack array (Np, rows, cols, 2 Np - 1) as a Stack view, checked against Np.
template <class T>
cloudcov::Stack<T> stack_view(const py::array& a, const char* name, idx Np) {
    const T* p = cptr<T>(a, name, 4);
    cloudcov::require(Np >= 3 && Np % 2 == 1 && Np <= cloudcov::kMaxNp, "Np must be odd and in [3, 1023]");
    cloudcov::require(a.shape(0) == Np && a.shape(3) == 2 * Np - 1,
                      std::string(name) + ": expected shape (Np, rows, cols, 2 Np - 1) for Np = " +
                          std::to_string(Np));
    return {const_cast<T*>(p), Np, static_cast<idx>(a.shape(1)), static_cast<idx>(a.shape(2))};
}

// ---- boxcar -------------------------------------------------------------------------------
template <class T>
py::array boxcar_t(const py::array& image, idx wrow, idx wcol) {
    auto in = cimage<T>(image, "image");
    cloudcov::require(wrow >= 1 && wcol >= 1 && wrow <= in.rows && wcol <= in.cols,
                      "boxcar widths must be >= 1 and fit in the image");
    py::array_t<T> out({in.rows - wrow + 1, in.cols - wcol + 1});
    auto o = mimage<T>(out, "out");
    {
        py::gil_scoped_release nogil;  // only raw buffers are touched below
        cloudcov::boxcar_sum<T, T>(in, wrow, wcol, o);
    }
    return out;
}

py::array boxcar(const py::array& image, idx wrow, idx wcol) {
    if (is_dtype<float>(image)) return boxcar_t<float>(image, wrow, wcol);
    if (is_dtype<double>(image)) return boxcar_t<double>(image, wrow, wcol);
    throw std::invalid_argument("image: expected float32 or float64");
}

// ---- shifted-product stack ----------------------------------------------------------------
template <class T>
void shift_stack_t(const py::array& image, idx Np, idx wrow, idx wcol, py::array& bimage,
                   py::array& stack, int nthreads) {
    auto x = cimage<T>(image, "image");
    auto b = mimage<T>(bimage, "bimage");
    mptr<T>(stack, "stack", 4);
    cloudcov::Stack<T> st = stack_view<T>(stack, "stack", Np);
    py::gil_scoped_release nogil;  // buffers are owned by the caller and kept alive by it
    cloudcov::shift_stack<T>(x, Np, wrow, wcol, b, st, nthreads);
}

void shift_stack(const py::array& image, idx Np, idx wrow, idx wcol, py::array bimage,
                 py::array stack, int nthreads) {
    if (is_dtype<float>(image)) return shift_stack_t<float>(image, Np, wrow, wcol, bimage, stack, nthreads);
    if (is_dtype<double>(image)) return shift_stack_t<double>(image, Np, wrow, wcol, bimage, stack, nthreads);
    throw std::invalid_argument("image: expected float32 or float64");
}

// Benchmarks only: the stack sweep of a whole tile with its rows computed but not stored
// (StackStream::set_store(false); a one-row stack stands in for the ring), so that the
// sweep's arithmetic can be timed apart from its memory writes. Returns the values computed.
template <class T>
idx stack_sweep_compute_t(const py::array& image, idx Np, idx wrow, idx wcol, int nthreads) {
    auto x = cimage<T>(image, "image");
    cloudcov::require(Np >= 3 && Np % 2 == 1 && Np <= cloudcov::kMaxNp, "Np must be odd and in [3, 1023]");
    cloudcov::require(wrow >= 1 && wcol >= 1 && x.rows >= wrow && x.cols >= wcol,
                      "image: smaller than the boxcar window");
    const idx orow = x.rows - wrow + 1, ocol = x.cols - wcol + 1;
    std::vector<T> row(static_cast<size_t>(ocol * cloudcov::n_slots(Np)));   // Np shift rows x 1 row
    cloudcov::Stack<T> st{row.data(), Np, 1, ocol};
    py::gil_scoped_release nogil;
    cloudcov::StackStream<T> stream(x, Np, wrow, wcol, st, nthreads);
    stream.set_store(false);
    stream.compute_rows(orow);
    return orow * ocol * cloudcov::n_slots(Np);
}

idx stack_sweep_compute(const py::array& image, idx Np, idx wrow, idx wcol, int nthreads) {
    if (is_dtype<float>(image)) return stack_sweep_compute_t<float>(image, Np, wrow, wcol, nthreads);
    if (is_dtype<double>(image)) return stack_sweep_compute_t<double>(image, Np, wrow, wcol, nthreads);
    throw std::invalid_argument("image: expected float32 or float64");
}

// ---- covariance lookup --------------------------------------------------------------------
template <class T>
cloudcov::StackCov<T> stack_cov(const py::array& bimage, const py::array& stack, idx Np, idx wrow,
                                idx wcol, idx r0, idx c0, bool julia_compat) {
    cloudcov::StackCov<T> sc;
    sc.bimage = cimage<T>(bimage, "bimage");
    auto sv = stack_view<T>(stack, "stack", Np);
    sc.stack = {sv.data, sv.Np, sv.rows, sv.cols};
    cloudcov::require(sc.stack.rows == sc.bimage.rows && sc.stack.cols == sc.bimage.cols,
                      "stack and bimage shapes differ");
    // span_inside: r0 + Np would overflow for r0 near INT64_MAX (out-of-bounds read).
    cloudcov::require(cloudcov::span_inside(r0, Np, sc.bimage.rows) &&
                          cloudcov::span_inside(c0, Np, sc.bimage.cols),
                      "stamp leaves the boxcar image");
    cloudcov::require(wrow >= 1 && wcol >= 1, "boxcar widths wrow, wcol must be >= 1");
    sc.Np = Np;
    sc.r0 = r0;
    sc.c0 = c0;
    sc.N = static_cast<double>(wrow) * static_cast<double>(wcol);
    sc.julia_compat = julia_compat;
    return sc;
}

template <class T>
py::tuple build_cov_t(const py::array& bimage, const py::array& stack, idx Np, idx wrow, idx wcol,
                      idx r0, idx c0, bool julia_compat) {
    auto sc = stack_cov<T>(bimage, stack, Np, wrow, wcol, r0, c0, julia_compat);
    const idx n = Np * Np;
    py::array_t<T> cov({n, n}), mu(n);
    T* cp = cov.mutable_data();
    T* mp = mu.mutable_data();
    {
        py::gil_scoped_release nogil;
        cloudcov::build_cov<T>(sc, cp, mp);
    }
    return py::make_tuple(cov, mu);
}

py::tuple build_cov(const py::array& bimage, const py::array& stack, idx Np, idx wrow, idx wcol,
                    idx r0, idx c0, bool julia_compat) {
    if (is_dtype<float>(bimage)) return build_cov_t<float>(bimage, stack, Np, wrow, wcol, r0, c0, julia_compat);
    if (is_dtype<double>(bimage)) return build_cov_t<double>(bimage, stack, Np, wrow, wcol, r0, c0, julia_compat);
    throw std::invalid_argument("bimage: expected float32 or float64");
}

// st.good / st.hidden (flat indices, ascending) from per-pixel flags of n pixels: good where
// not_good == 0, hidden where hidden != 0.
static void set_pixel_lists(cloudcov::StarStamp& st, const std::uint8_t* not_good, const std::uint8_t* hidden,
                     idx n) {
    for (idx i = 0; i < n; ++i) {
        if (!not_good[i]) st.good.push_back(static_cast<int>(i));
        if (hidden[i]) st.hidden.push_back(static_cast<int>(i));
    }
}

// The bordered matrix of one stamp as the per-star gather builds it (tests): good pixels are
// those with not_good == 0, hidden those with hidden != 0 (flat stamp order, Np * Np each),
// star counts stars (Np * Np) on the diagonal.
template <class T>
py::tuple bordered_matrix_t(const py::array& bimage, const py::array& stack, idx Np, idx wrow,
                            idx wcol, idx r0, idx c0, const py::array& not_good,
                            const py::array& hidden, const py::array& stars) {
    auto sc = stack_cov<T>(bimage, stack, Np, wrow, wcol, r0, c0, false);
    cloudcov::require(Np >= 1 && Np <= cloudcov::kMaxNp, "Np must be in [1, 1023]");
    const idx npix = Np * Np;
    const auto* ng = cptr<std::uint8_t>(not_good, "not_good", 1);
    const auto* hd = cptr<std::uint8_t>(hidden, "hidden", 1);
    const double* sp = cptr<double>(stars, "stars", 1);
    for (const py::array* a : {&not_good, &hidden, &stars})
        cloudcov::require(a->shape(0) == npix, "not_good, hidden and stars must have Np**2 entries");
    cloudcov::StarStamp st;
    st.Np = Np;
    st.stars = sp;
    set_pixel_lists(st, ng, hd, npix);
    for (idx i = 0; i < npix; ++i)
        cloudcov::require(!(hd[i] && !ng[i]), "hidden pixels must not be good (not_good == 0)");
    const idx kc = static_cast<idx>(st.good.size()), n = kc + static_cast<idx>(st.hidden.size());
    cloudcov::require(kc >= 1 && n > kc, "the stamp needs a good and a hidden pixel");
    py::array_t<T> lower({n, n});
    py::array_t<double> colsum(kc);
    double anorm = 0;
    {
        py::gil_scoped_release nogil;
        sc.prepare();
        cloudcov::CondScratch<T> s;
        anorm = cloudcov::detail::build_bordered(sc, st, cloudcov::CondOptions{}, 0.0, true, s);
        T* out = lower.mutable_data();
        const idx ld = cloudcov::detail::bordered_ld<T>(static_cast<int>(n));
        for (idx r = 0; r < n; ++r)
            for (idx c = 0; c < n; ++c) out[r * n + c] = r >= c ? s.K[static_cast<size_t>(c * ld + r)] : T(0);
        std::copy(s.colsum.begin(), s.colsum.begin() + kc, colsum.mutable_data());  // W -> double
    }
    return py::make_tuple(lower, colsum, anorm);
}

py::tuple bordered_matrix(const py::array& bimage, const py::array& stack, idx Np, idx wrow,
                          idx wcol, idx r0, idx c0, const py::array& not_good,
                          const py::array& hidden, const py::array& stars) {
    if (is_dtype<float>(bimage))
        return bordered_matrix_t<float>(bimage, stack, Np, wrow, wcol, r0, c0, not_good, hidden, stars);
    if (is_dtype<double>(bimage))
        return bordered_matrix_t<double>(bimage, stack, Np, wrow, wcol, r0, c0, not_good, hidden, stars);
    throw std::invalid_argument("bimage: expected float32 or float64");
}

// ---- pixel classes ------------------------------------------------------------------------
py::tuple pixel_classes(const py::array& kmasked, const py::array& psf, const py::array& circmask,
                        double flux, double thr, double flux_floor) {
    auto km = cimage<std::uint8_t>(kmasked, "kmasked");
    auto cm = cimage<std::uint8_t>(circmask, "circmask");
    auto ps = cimage<double>(psf, "psf");
    const idx Np = km.rows;
    cloudcov::require(Np >= 1, "kmasked, psf and circmask must not be empty");
    cloudcov::require(km.cols == Np && ps.rows == Np && ps.cols == Np && cm.rows == Np && cm.cols == Np,
                      "kmasked, psf and circmask must all be (Np, Np)");
    py::array_t<std::uint8_t> not_good({Np, Np}), hidden({Np, Np});
    py::array_t<double> psf_used({Np, Np});
    std::copy(ps.data, ps.data + Np * Np, psf_used.mutable_data());
    auto pc = cloudcov::pixel_classes<double>(km.data, psf_used.mutable_data(), cm.data, flux, thr, Np,
                                              not_good.mutable_data(), hidden.mutable_data(), flux_floor);
    return py::make_tuple(not_good, hidden, psf_used, pc.kcond0, pc.kcond, pc.kpred, pc.dnt);
}

// ---- conditioning of one star (explicit covariance) ---------------------------------------
template <class T>
py::dict cond_cov_est_t(const py::array& cov, const py::array& mu, const py::array& not_good,
                        const py::array& hidden, const py::array& data, const py::array& stars,
                        const py::array& psf, bool diag_on, bool guard, bool keep_prediction) {
    const T* cp = cptr<T>(cov, "cov", 2);
    const idx n = cov.shape(0);
    cloudcov::require(cov.shape(1) == n, "cov must be square");
    const T* mp = cptr<T>(mu, "mu", 1);
    const auto* ng = cptr<std::uint8_t>(not_good, "not_good", 1);
    const auto* hd = cptr<std::uint8_t>(hidden, "hidden", 1);
    const double* dp = cptr<double>(data, "data", 1);
    const double* sp = cptr<double>(stars, "stars", 1);
    const double* pp = cptr<double>(psf, "psf", 1);
    for (const py::array* a : {&mu, &not_good, &hidden, &data, &stars, &psf})
        cloudcov::require(a->shape(0) == n, "per-pixel vectors must have cov.shape[0] entries");
    cloudcov::StarStamp st;
    st.Np = 1;
    while (st.Np * st.Np < n) ++st.Np;
    cloudcov::require(st.Np * st.Np == n, "cov: size must be Np**2 (a flattened square stamp)");
    st.data = dp;
    st.stars = sp;
    st.psf = pp;
    set_pixel_lists(st, ng, hd, n);
    cloudcov::MatrixCov<T> src{cp, mp, n};
    cloudcov::CondOptions opt;
    opt.diag_on = diag_on;
    opt.guard = guard;
    opt.keep_prediction = keep_prediction;
    cloudcov::CondResult r;
    {
        py::gil_scoped_release nogil;
        cloudcov::Workspace ws;
        r = cloudcov::condition_star<T>(src, st, opt, cloudcov::lapack_table(), ws);
    }
    py::dict d("dcflux"_a = r.dcflux, "dcflux_diag"_a = r.dcflux_diag,
               "fdb_res"_a = r.fdb_res, "fdb_pred"_a = r.fdb_pred, "cchi2"_a = r.cchi2,
               "dnt"_a = r.dnt, "precision"_a = r.precision, "reg"_a = r.reg);
    if (keep_prediction) {
        const idx kp = static_cast<idx>(st.hidden.size());
        py::array_t<double> xbar(static_cast<idx>(r.xbar.size()));
        std::copy(r.xbar.begin(), r.xbar.end(), xbar.mutable_data());
        py::array_t<double> pc({r.pcov.empty() ? 0 : kp, r.pcov.empty() ? 0 : kp});
        std::copy(r.pcov.begin(), r.pcov.end(), pc.mutable_data());
        d["xbar"] = xbar;
        d["pcov"] = pc;
    }
    return d;
}

py::dict cond_cov_est(const py::array& cov, const py::array& mu, const py::array& not_good,
                      const py::array& hidden, const py::array& data, const py::array& stars,
                      const py::array& psf, bool diag_on, bool guard, bool keep_prediction) {
    if (is_dtype<float>(cov))
        return cond_cov_est_t<float>(cov, mu, not_good, hidden, data, stars, psf, diag_on, guard, keep_prediction);
    if (is_dtype<double>(cov))
        return cond_cov_est_t<double>(cov, mu, not_good, hidden, data, stars, psf, diag_on, guard, keep_prediction);
    throw std::invalid_argument("cov: expected float32 or float64");
}

// ---- per-star batch ------------------------------------------------------------------------
// Star arrays and padded images shared by lpi_stars and lpi_strip.
template <class T>
void fill_batch(cloudcov::StarBatch<T>& b, idx Np, idx wrow, idx wcol, const py::array& resid,
                const py::array& stars, const py::array& bad, const py::array& rows,
                const py::array& cols, const py::array& psf, const py::array& flux,
                const py::array& circmask, double thr, bool julia_compat, bool diag_on, bool guard,
                double flux_floor = 1e4) {
    cloudcov::require(wrow >= 1 && wcol >= 1, "boxcar widths wrow, wcol must be >= 1");
    cloudcov::require(flux_floor > 0, "flux_floor must be > 0");
    b.flux_floor = flux_floor;
    b.Np = Np;
    b.wrow = wrow;
    b.wcol = wcol;
    b.resid = cimage<T>(resid, "resid");
    b.stars = cimage<T>(stars, "stars");
    b.bad = cimage<std::uint8_t>(bad, "bad");
    cloudcov::require(b.stars.rows == b.resid.rows && b.stars.cols == b.resid.cols &&
                          b.bad.rows == b.resid.rows && b.bad.cols == b.resid.cols,
                      "resid, stars and bad must have the same shape");
    b.n = rows.size();
    b.rows = cptr<std::int64_t>(rows, "rows", 1);
    b.cols = cptr<std::int64_t>(cols, "cols", 1);
    b.flux = cptr<double>(flux, "flux", 1);
    b.psf = cptr<T>(psf, "psf", 3);
    cloudcov::require(cols.size() == b.n && flux.size() == b.n, "rows, cols and flux lengths differ");
    cloudcov::require(psf.shape(0) == b.n && psf.shape(1) == Np && psf.shape(2) == Np,
                      "psf must be (nstar, Np, Np)");
    auto cm = cimage<std::uint8_t>(circmask, "circmask");
    cloudcov::require(cm.rows == Np && cm.cols == Np, "circmask must be (Np, Np)");
    b.circmask = cm.data;
    b.thr = thr;
    b.julia_compat = julia_compat;
    b.opt.diag_on = diag_on;
    b.opt.guard = guard;
}

struct OutArrays {
    py::array_t<double> dc, dcd, fr, fp, chi;
    py::array_t<std::int32_t> k0, k1, kp;
    py::array_t<std::int8_t> dnt;
    explicit OutArrays(idx n) : dc(n), dcd(n), fr(n), fp(n), chi(n), k0(n), k1(n), kp(n), dnt(n) {}
    cloudcov::StarOutputs view() {
        return {dc.mutable_data(), dcd.mutable_data(), fr.mutable_data(), fp.mutable_data(),
                chi.mutable_data(), k0.mutable_data(), k1.mutable_data(), kp.mutable_data(),
                dnt.mutable_data()};
    }
    py::dict dict() const {
        return py::dict("dcflux"_a = dc, "dcflux_diag"_a = dcd, "fdb_res"_a = fr, "fdb_pred"_a = fp,
                        "cchi2"_a = chi, "kcond0"_a = k0, "kcond"_a = k1, "kpred"_a = kp,
                        "dnt"_a = dnt);
    }
};

// A batch of stars on a tile's stack and boxcar image (lpi_stars and gather_probe).
template <class T>
cloudcov::StarBatch<T> tile_batch(const py::array& stack, const py::array& bimage, idx Np, idx wrow,
                                  idx wcol, idx tile_r0, idx tile_c0, const py::array& resid,
                                  const py::array& stars, const py::array& bad, const py::array& rows,
                                  const py::array& cols, const py::array& psf, const py::array& flux,
                                  const py::array& circmask, double thr, bool julia_compat,
                                  bool diag_on, bool guard) {
    cloudcov::StarBatch<T> b;
    auto sv = stack_view<T>(stack, "stack", Np);
    b.stack = {sv.data, sv.Np, sv.rows, sv.cols};
    b.bimage = cimage<T>(bimage, "bimage");
    cloudcov::require(b.stack.rows == b.bimage.rows && b.stack.cols == b.bimage.cols,
                      "stack and bimage shapes differ");
    b.tile_r0 = tile_r0;
    b.tile_c0 = tile_c0;
    fill_batch<T>(b, Np, wrow, wcol, resid, stars, bad, rows, cols, psf, flux, circmask, thr,
                  julia_compat, diag_on, guard);
    return b;
}

template <class T>
py::dict lpi_stars_t(const py::array& stack, const py::array& bimage, idx Np, idx wrow, idx wcol,
                     idx tile_r0, idx tile_c0, const py::array& resid, const py::array& stars,
                     const py::array& bad, const py::array& rows, const py::array& cols,
                     const py::array& psf, const py::array& flux, const py::array& circmask,
                     double thr, bool julia_compat, bool diag_on, bool guard, int nthreads) {
    const cloudcov::StarBatch<T> b = tile_batch<T>(stack, bimage, Np, wrow, wcol, tile_r0, tile_c0, resid,
                                                   stars, bad, rows, cols, psf, flux, circmask, thr,
                                                   julia_compat, diag_on, guard);
    OutArrays o(b.n);
    auto ov = o.view();
    {
        py::gil_scoped_release nogil;  // all inputs are raw buffers owned by live arrays
        cloudcov::lpi_stars<T>(b, ov, nthreads);
    }
    return o.dict();
}

py::dict lpi_stars(const py::array& stack, const py::array& bimage, idx Np, idx wrow, idx wcol,
                   idx tile_r0, idx tile_c0, const py::array& resid, const py::array& stars,
                   const py::array& bad, const py::array& rows, const py::array& cols,
                   const py::array& psf, const py::array& flux, const py::array& circmask,
                   double thr, bool julia_compat, bool diag_on, bool guard, int nthreads) {
    if (is_dtype<float>(stack))
        return lpi_stars_t<float>(stack, bimage, Np, wrow, wcol, tile_r0, tile_c0, resid, stars, bad, rows,
                                  cols, psf, flux, circmask, thr, julia_compat, diag_on, guard, nthreads);
    if (is_dtype<double>(stack))
        return lpi_stars_t<double>(stack, bimage, Np, wrow, wcol, tile_r0, tile_c0, resid, stars, bad, rows,
                                   cols, psf, flux, circmask, thr, julia_compat, diag_on, guard, nthreads);
    throw std::invalid_argument("stack: expected float32 or float64");
}

// Benchmarks only: cloudcov::gather_probe (see lpi_stars.hpp) over the stars of a batch.
template <class T>
py::object gather_probe_t(const py::array& stack, const py::array& bimage, idx Np, idx wrow,
                          idx wcol, idx tile_r0, idx tile_c0, const py::array& resid,
                          const py::array& stars, const py::array& bad, const py::array& rows,
                          const py::array& cols, const py::array& psf, const py::array& flux,
                          const py::array& circmask, double thr, int mode, bool checksum) {
    const cloudcov::StarBatch<T> b = tile_batch<T>(stack, bimage, Np, wrow, wcol, tile_r0, tile_c0, resid,
                                                   stars, bad, rows, cols, psf, flux, circmask, thr,
                                                   false, true, true);
    py::array_t<double> sec(b.n), sum(b.n);
    double* sp = sec.mutable_data();
    double* cp = checksum ? sum.mutable_data() : nullptr;
    {
        py::gil_scoped_release nogil;
        cloudcov::gather_probe<T>(b, mode, sp, cp);
    }
    if (checksum) return py::make_tuple(sec, sum);
    return std::move(sec);
}

py::object gather_probe(const py::array& stack, const py::array& bimage, idx Np, idx wrow, idx wcol,
                        idx tile_r0, idx tile_c0, const py::array& resid, const py::array& stars,
                        const py::array& bad, const py::array& rows, const py::array& cols,
                        const py::array& psf, const py::array& flux, const py::array& circmask,
                        double thr, int mode, bool checksum) {
    if (is_dtype<float>(stack))
        return gather_probe_t<float>(stack, bimage, Np, wrow, wcol, tile_r0, tile_c0, resid, stars, bad,
                                     rows, cols, psf, flux, circmask, thr, mode, checksum);
    if (is_dtype<double>(stack))
        return gather_probe_t<double>(stack, bimage, Np, wrow, wcol, tile_r0, tile_c0, resid, stars, bad,
                                      rows, cols, psf, flux, circmask, thr, mode, checksum);
    throw std::invalid_argument("stack: expected float32 or float64");
}

// ---- one strip of a CCD in a single sweep --------------------------------------------------
template <class T>
py::dict lpi_strip_t(const py::array& image, idx in_r0, idx in_r1, idx in_c0, idx in_c1,
                     idx ring_rows, py::array& ring, py::array& bimage_buf, idx Np, idx wrow,
                     idx wcol, const py::array& resid, const py::array& stars, const py::array& bad,
                     const py::array& rows, const py::array& cols, const py::array& psf,
                     const py::array& flux, const py::array& circmask, double thr,
                     bool julia_compat, bool diag_on, bool guard, int nthreads, double flux_floor) {
    auto im = cimage<T>(image, "image");
    T* rp = mptr<T>(ring, "ring", 1);
    T* bp = mptr<T>(bimage_buf, "bimage_buf", 1);
    cloudcov::StarBatch<T> b;
    fill_batch<T>(b, Np, wrow, wcol, resid, stars, bad, rows, cols, psf, flux, circmask, thr,
                  julia_compat, diag_on, guard, flux_floor);
    cloudcov::require(b.resid.rows == im.rows && b.resid.cols == im.cols,
                      "image and resid must have the same shape");
    OutArrays o(b.n);
    auto ov = o.view();
    cloudcov::StripStats stats;
    {
        py::gil_scoped_release nogil;  // all inputs are raw buffers owned by live arrays
        cloudcov::lpi_strip<T>(im, in_r0, in_r1, in_c0, in_c1, ring_rows, rp,
                               static_cast<idx>(ring.size()), bp, static_cast<idx>(bimage_buf.size()),
                               b, ov, nthreads, &stats);
    }
    py::dict d = o.dict();
    d["stack_cpu_s"] = stats.stack_cpu_s;
    d["stars_cpu_s"] = stats.stars_cpu_s;
    d["rounds"] = stats.rounds;
    d["stack_values_written"] = stats.values_written;
    return d;
}

py::dict lpi_strip(const py::array& image, idx in_r0, idx in_r1, idx in_c0, idx in_c1,
                   idx ring_rows, py::array ring, py::array bimage_buf, idx Np, idx wrow, idx wcol,
                   const py::array& resid, const py::array& stars, const py::array& bad,
                   const py::array& rows, const py::array& cols, const py::array& psf,
                   const py::array& flux, const py::array& circmask, double thr, bool julia_compat,
                   bool diag_on, bool guard, int nthreads, double flux_floor) {
    if (is_dtype<float>(image))
        return lpi_strip_t<float>(image, in_r0, in_r1, in_c0, in_c1, ring_rows, ring, bimage_buf, Np,
                                  wrow, wcol, resid, stars, bad, rows, cols, psf, flux, circmask, thr,
                                  julia_compat, diag_on, guard, nthreads, flux_floor);
    if (is_dtype<double>(image))
        return lpi_strip_t<double>(image, in_r0, in_r1, in_c0, in_c1, ring_rows, ring, bimage_buf, Np,
                                   wrow, wcol, resid, stars, bad, rows, cols, psf, flux, circmask, thr,
                                   julia_compat, diag_on, guard, nthreads, flux_floor);
    throw std::invalid_argument("image: expected float32 or float64");
}

// ---- imputation: one strip, explicit hidden sets (cloudcov.impute method "lpi") ----------
template <class T>
py::dict lpi_impute_strip_t(const py::array& image, idx in_r0, idx in_r1, idx in_c0, idx in_c1,
                            idx ring_rows, py::array& ring, py::array& bimage_buf, idx Np,
                            idx wrow, idx wcol, const py::array& data, const py::array& bad,
                            const py::array& rows, const py::array& cols, const py::array& hidden,
                            const py::array& circmask, bool julia_compat, bool guard,
                            int nthreads, const py::array& xbar_offset,
                            const py::array& pcov_offset) {
    auto im = cimage<T>(image, "image");
    T* rp = mptr<T>(ring, "ring", 1);
    T* bp = mptr<T>(bimage_buf, "bimage_buf", 1);
    cloudcov::require(wrow >= 1 && wcol >= 1, "boxcar widths wrow, wcol must be >= 1");
    cloudcov::StarBatch<T> b;
    b.Np = Np;
    b.wrow = wrow;
    b.wcol = wcol;
    b.resid = cimage<T>(data, "data");
    b.stars = b.resid;  // not read: diag_on = false
    b.bad = cimage<std::uint8_t>(bad, "bad");
    cloudcov::require(b.bad.rows == b.resid.rows && b.bad.cols == b.resid.cols &&
                          im.rows == b.resid.rows && im.cols == b.resid.cols,
                      "image, data and bad must have the same shape");
    b.n = rows.size();
    b.rows = cptr<std::int64_t>(rows, "rows", 1);
    b.cols = cptr<std::int64_t>(cols, "cols", 1);
    cloudcov::require(cols.size() == b.n, "rows and cols lengths differ");
    b.given_hidden = cptr<std::uint8_t>(hidden, "hidden", 3);
    cloudcov::require(hidden.shape(0) == b.n && hidden.shape(1) == Np && hidden.shape(2) == Np,
                      "hidden must be (n, Np, Np)");
    auto cm = cimage<std::uint8_t>(circmask, "circmask");
    cloudcov::require(cm.rows == Np && cm.cols == Np, "circmask must be (Np, Np)");
    b.circmask = cm.data;
    b.julia_compat = julia_compat;
    b.opt.diag_on = false;
    b.opt.guard = guard;
    b.xbar_offset = cptr<std::int64_t>(xbar_offset, "xbar_offset", 1);
    b.pcov_offset = cptr<std::int64_t>(pcov_offset, "pcov_offset", 1);
    cloudcov::require(xbar_offset.size() == b.n + 1 && pcov_offset.size() == b.n + 1,
                      "offsets must have n + 1 entries");
    // offsets must match the hidden counts (the kernel writes kpred, kpred^2 values)
    const std::uint8_t* gh = b.given_hidden;
    const idx npix = Np * Np;
    for (idx k = 0; k < b.n; ++k) {
        std::int64_t kp = 0;
        for (idx i = 0; i < npix; ++i) kp += gh[k * npix + i] != 0;
        cloudcov::require(b.xbar_offset[k + 1] - b.xbar_offset[k] == kp &&
                              b.pcov_offset[k + 1] - b.pcov_offset[k] == kp * kp,
                          "offsets do not match the hidden pixel counts");
    }
    py::array_t<double> xbar(b.n ? b.xbar_offset[b.n] : 0);
    py::array_t<double> pcov(b.n ? b.pcov_offset[b.n] : 0);
    {
        auto xm = xbar.mutable_unchecked<1>();
        for (idx i = 0; i < xm.shape(0); ++i) xm(i) = NAN;
    }
    b.xbar_out = xbar.mutable_data();
    b.pcov_out = pcov.mutable_data();
    OutArrays o(b.n);
    auto ov = o.view();
    {
        py::gil_scoped_release nogil;  // all inputs are raw buffers owned by live arrays
        cloudcov::lpi_strip<T>(im, in_r0, in_r1, in_c0, in_c1, ring_rows, rp,
                               static_cast<idx>(ring.size()), bp, static_cast<idx>(bimage_buf.size()),
                               b, ov, nthreads);
    }
    return py::dict("xbar"_a = xbar, "pcov"_a = pcov, "cchi2"_a = o.chi, "kcond"_a = o.k1, "kpred"_a = o.kp,
                    "dnt"_a = o.dnt);
}

py::dict lpi_impute_strip(const py::array& image, idx in_r0, idx in_r1, idx in_c0, idx in_c1,
                          idx ring_rows, py::array ring, py::array bimage_buf, idx Np, idx wrow,
                          idx wcol, const py::array& data, const py::array& bad,
                          const py::array& rows, const py::array& cols, const py::array& hidden,
                          const py::array& circmask, bool julia_compat, bool guard, int nthreads,
                          const py::array& xbar_offset, const py::array& pcov_offset) {
    if (is_dtype<float>(image))
        return lpi_impute_strip_t<float>(image, in_r0, in_r1, in_c0, in_c1, ring_rows, ring,
                                         bimage_buf, Np, wrow, wcol, data, bad, rows, cols, hidden,
                                         circmask, julia_compat, guard, nthreads, xbar_offset,
                                         pcov_offset);
    if (is_dtype<double>(image))
        return lpi_impute_strip_t<double>(image, in_r0, in_r1, in_c0, in_c1, ring_rows, ring,
                                          bimage_buf, Np, wrow, wcol, data, bad, rows, cols, hidden,
                                          circmask, julia_compat, guard, nthreads, xbar_offset,
                                          pcov_offset);
    throw std::invalid_argument("image: expected float32 or float64");
}

// ---- GPR imputation (cloudcov.impute method "gpr") ------------------------------------------
py::dict gpr_impute(const py::array& image, const py::array& bad, const py::array& rows,
                    const py::array& cols, int half, int type, double a, double h_row,
                    double h_col, const py::array& w_full, double var_full, int nthreads) {
    auto x = cimage<double>(image, "image");
    auto b = cimage<std::uint8_t>(bad, "bad");
    cloudcov::require(b.rows == x.rows && b.cols == x.cols, "image and bad shapes differ");
    const idx n = rows.size();
    const auto* r = cptr<std::int64_t>(rows, "rows", 1);
    const auto* c = cptr<std::int64_t>(cols, "cols", 1);
    cloudcov::require(cols.size() == n, "rows and cols lengths differ");
    const auto* wf = cptr<double>(w_full, "w_full", 1);
    cloudcov::require(half >= 1 && half <= 64, "half must be in [1, 64]");
    cloudcov::require(w_full.size() == (2 * half + 1) * (2 * half + 1), "w_full must have (2 half + 1)^2 entries");
    cloudcov::require(type == 0 || type == 1, "type must be 0 (SE) or 1 (OU)");
    cloudcov::require(a > 0 && h_row > 0 && h_col > 0 && std::isfinite(a) && std::isfinite(h_row) &&
                          std::isfinite(h_col),
                      "a, h_row, h_col must be finite and > 0");
    cloudcov::GprKernel k{type, a, h_row, h_col};
    py::array_t<double> mean(n), var(n);
    py::array_t<std::int32_t> ngood(n);
    py::array_t<std::uint8_t> full(n);
    cloudcov::GprOutputs o{mean.mutable_data(), var.mutable_data(), ngood.mutable_data(),
                           full.mutable_data()};
    {
        py::gil_scoped_release nogil;
        cloudcov::gpr_impute(x, b, r, c, n, half, k, wf, var_full, o, nthreads);
    }
    return py::dict("mean"_a = mean, "var"_a = var, "ngood"_a = ngood, "full"_a = full);
}

// ---- preliminary infill -------------------------------------------------------------------
template <class T>
py::tuple prelim_infill_t(const py::array& image, const py::array& mask, idx wrow, idx wcol,
                          double widmult, int max_rounds, int min_good) {
    auto im = cimage<T>(image, "image");
    auto mk = cimage<std::uint8_t>(mask, "mask");
    cloudcov::require(mk.rows == im.rows && mk.cols == im.cols, "mask and image shapes differ");
    py::array_t<T> out({im.rows, im.cols});
    py::array_t<std::uint8_t> still({im.rows, im.cols});
    auto o = mimage<T>(out, "out");
    auto s = mimage<std::uint8_t>(still, "still_masked");
    cloudcov::InfillReport rep;
    {
        py::gil_scoped_release nogil;
        rep = cloudcov::prelim_infill<T>(im, mk, wrow, wcol, widmult, max_rounds, min_good, o, s);
    }
    return py::make_tuple(out, still, rep.rounds, rep.last_wrow, rep.last_wcol, rep.unfilled);
}

py::tuple prelim_infill(const py::array& image, const py::array& mask, idx wrow, idx wcol,
                        double widmult, int max_rounds, int min_good) {
    if (is_dtype<float>(image)) return prelim_infill_t<float>(image, mask, wrow, wcol, widmult, max_rounds, min_good);
    if (is_dtype<double>(image)) return prelim_infill_t<double>(image, mask, wrow, wcol, widmult, max_rounds, min_good);
    throw std::invalid_argument("image: expected float32 or float64");
}

// ---- LAPACK from scipy ----------------------------------------------------------------------
template <class F>
void load_fn(F& fn, const py::dict& capi, const char* name) {
    py::capsule cap = capi[name].cast<py::capsule>();
    fn = reinterpret_cast<F>(cap.get_pointer<void>());
}

void load_lapack() {
    py::dict lap = py::module_::import("scipy.linalg.cython_lapack").attr("__pyx_capi__");
    py::dict blas = py::module_::import("scipy.linalg.cython_blas").attr("__pyx_capi__");
    auto& t = cloudcov::lapack_table();
    load_fn(t.s.potrf, lap, "spotrf");
    load_fn(t.d.potrf, lap, "dpotrf");
    load_fn(t.s.potrs, lap, "spotrs");
    load_fn(t.d.potrs, lap, "dpotrs");
    load_fn(t.s.lacn2, lap, "slacn2");
    load_fn(t.d.lacn2, lap, "dlacn2");
    load_fn(t.s.laic1, lap, "slaic1");
    load_fn(t.d.laic1, lap, "dlaic1");
    load_fn(t.s.trsv, blas, "strsv");
    load_fn(t.d.trsv, blas, "dtrsv");
    load_fn(t.s.gemv, blas, "sgemv");
    load_fn(t.d.gemv, blas, "dgemv");
    if (!t.s.ready() || !t.d.ready()) throw std::runtime_error("could not load BLAS/LAPACK from scipy");
}

// Replace the table by the routines at the given addresses (cloudcov.lapack: another LAPACK
// with the reference Fortran interface, 32-bit integers, no hidden string lengths, safe to
// call from several threads at once). All twelve names are required; nothing changes on error.
void set_lapack(const py::dict& addr) {
    static const char* names[] = {"spotrf", "dpotrf", "spotrs", "dpotrs", "slacn2", "dlacn2",
                                  "strsv",  "dtrsv",  "sgemv",  "dgemv",  "slaic1", "dlaic1"};
    constexpr int kNames = sizeof(names) / sizeof(names[0]);
    std::uintptr_t a[kNames];
    for (int k = 0; k < kNames; ++k) {
        if (!addr.contains(names[k])) throw std::invalid_argument(std::string("set_lapack: no address for ") + names[k]);
        a[k] = addr[names[k]].cast<std::uintptr_t>();
        if (a[k] == 0) throw std::invalid_argument(std::string("set_lapack: null address for ") + names[k]);
    }
    cloudcov::Lapack t;
    auto put = [&](auto& fn, int k) { fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(a[k]); };
    put(t.s.potrf, 0); put(t.d.potrf, 1); put(t.s.potrs, 2); put(t.d.potrs, 3);
    put(t.s.lacn2, 4); put(t.d.lacn2, 5); put(t.s.trsv, 6); put(t.d.trsv, 7);
    put(t.s.gemv, 8); put(t.d.gemv, 9); put(t.s.laic1, 10); put(t.d.laic1, 11);
    cloudcov::lapack_table() = t;
}

// ?potrf in place (lower triangle) through the current table of the leading n x n block of a
// Fortran-ordered float32/float64 array a (lda = its rows >= its columns; n < 0: all its
// columns): the floor the benchmarks compare the per-star stage with (which factorises with
// lda = n rounded up to whole cache lines). Returns info.
int lapack_potrf(py::array a, idx n_) {
    if (a.ndim() != 2 || a.shape(1) > a.shape(0)) throw std::invalid_argument("a: expected a 2-d array with at least as many rows as columns");
    if (!(a.flags() & py::array::f_style) || !a.writeable())
        throw std::invalid_argument("a: expected a writeable Fortran-ordered array");
    char lo = 'L';
    int lda = static_cast<int>(a.shape(0)), info = 0;
    int n = n_ < 0 ? static_cast<int>(a.shape(1)) : static_cast<int>(n_);
    if (n > a.shape(1)) throw std::invalid_argument("n: larger than the columns of a");
    const auto& t = cloudcov::lapack_table();
    if (is_dtype<float>(a)) {
        float* p = static_cast<float*>(a.mutable_data());
        py::gil_scoped_release nogil;
        t.s.potrf(&lo, &n, p, &lda, &info);
    } else if (is_dtype<double>(a)) {
        double* p = static_cast<double*>(a.mutable_data());
        py::gil_scoped_release nogil;
        t.d.potrf(&lo, &n, p, &lda, &info);
    } else {
        throw std::invalid_argument("a: expected float32 or float64");
    }
    return info;
}

// The guard's two estimates of ||A^-1|| for A = L L^T from the lower triangle of a
// Fortran-ordered Cholesky factor (float32 or float64, computed in that precision): the
// incremental Rayleigh quotient (a lower bound on ||A^-1||_2) and ?pocon's ?lacn2 estimate of
// ||A^-1||_1. For tests and benchmarks/bench_guard.py.
template <class W>
py::tuple guard_estimates_t(py::array a, const cloudcov::LapackFns<W>& L) {
    const int n = static_cast<int>(a.shape(0));
    std::vector<W> f(static_cast<const W*>(a.data()), static_cast<const W*>(a.data()) + static_cast<size_t>(n) * n);
    std::vector<W> work(2 * static_cast<size_t>(n));
    std::vector<int> iwork(static_cast<size_t>(n));
    double rho, est1;
    {
        py::gil_scoped_release nogil;
        rho = cloudcov::detail::inv_norm2_est(L, f.data(), n, n, work.data());
        est1 = cloudcov::detail::inv_norm1_est(L, f.data(), n, n, true, work.data(), iwork.data());
    }
    return py::make_tuple(rho, est1);
}

template <class W>
double dot_fixed_t(const py::array& v, const py::array& w) {
    const W* pv = static_cast<const W*>(v.data());
    const W* pw = static_cast<const W*>(w.data());
    const int m = static_cast<int>(v.shape(0));
    return static_cast<double>(cloudcov::dot_fixed(pv, pw, m));
}

double dot_fixed(py::array v, py::array w) {
    for (const auto* a : {&v, &w}) {
        const char* name = a == &v ? "v" : "w";
        if (a->ndim() != 1) throw std::invalid_argument(std::string(name) + ": expected a 1-d array");
        if (!(a->flags() & py::array::c_style))
            throw std::invalid_argument(std::string(name) + ": expected a contiguous array");
    }
    if (v.shape(0) != w.shape(0)) throw std::invalid_argument("v, w: lengths differ");
    if (v.shape(0) > (1 << 30)) throw std::invalid_argument("v: longer than 2**30");
    if (is_dtype<float>(v) && is_dtype<float>(w)) return dot_fixed_t<float>(v, w);
    if (is_dtype<double>(v) && is_dtype<double>(w)) return dot_fixed_t<double>(v, w);
    throw std::invalid_argument("v, w: expected both float32 or both float64");
}

py::tuple guard_estimates(py::array l) {
    if (l.ndim() != 2 || l.shape(0) != l.shape(1) || l.shape(0) < 1)
        throw std::invalid_argument("l: expected a non-empty square 2-d array");
    if (!(l.flags() & py::array::f_style)) throw std::invalid_argument("l: expected a Fortran-ordered array");
    const auto& t = cloudcov::lapack_table();
    if (is_dtype<float>(l)) return guard_estimates_t<float>(l, t.s);
    if (is_dtype<double>(l)) return guard_estimates_t<double>(l, t.d);
    throw std::invalid_argument("l: expected float32 or float64");
}

}  // namespace

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
    m.doc() = "cloudcov private C++ kernels (use the cloudcov package, not this module)";
    m.attr("__version__") = VERSION_INFO;  // a string literal (CMakeLists.txt)
    load_lapack();
    // C++ NumericalError -> cloudcov.errors.NumericalError (a CloudCovError).
    static py::handle numerical_error =
        py::object(py::module_::import("cloudcov.errors").attr("NumericalError")).release();
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const cloudcov::NumericalError& e) {
            PyErr_SetString(numerical_error.ptr(), e.what());
        }
    });

    m.def("boxcar", &boxcar, "Valid-region boxcar sums.", "image"_a, "wrow"_a, "wcol"_a);
    m.def("n_slots", &cloudcov::n_slots, "Stack values per boxcar-output pixel: Np (2 Np - 1).", "Np"_a);
    m.def("shift_stack", &shift_stack, "Fill bimage and the shifted-product stack in place.",
          "image"_a, "Np"_a, "wrow"_a, "wcol"_a, py::arg("bimage").noconvert(),
          py::arg("stack").noconvert(), "nthreads"_a = 1);
    m.def("stack_sweep_compute", &stack_sweep_compute,
          "Benchmarks: the stack sweep of a tile computed but not stored; returns the values.",
          "image"_a, "Np"_a, "wrow"_a, "wcol"_a, "nthreads"_a = 1);
    m.def("set_star_group",
          [](int g) {
              if (g < 1 || g > cloudcov::kMaxStarGroup)
                  throw py::value_error("g: stars conditioned at a time must be in [1, " +
                                        std::to_string(cloudcov::kMaxStarGroup) + "], got " +
                                        std::to_string(g));
              return cloudcov::star_group().exchange(g);
          },
          "Benchmarks and tests: how many stars the per-star stage conditions at a time (their "
          "bordered matrices gathered, then factorised back to back; default 2; 1: one star "
          "after the other); returns the previous setting. Results never depend on it.",
          "g"_a);
    m.def("set_factor_timing",
          [](bool on) { return cloudcov::factor_timing().exchange(on); },
          "Benchmarks: whether the per-star stage times each first-attempt factorisation by its "
          "place in its group of stars (default off; read with factor_times); returns the "
          "previous setting. Results never depend on it.", "on"_a);
    m.def("factor_times",
          [](bool reset) {
              auto& ft = cloudcov::factor_times();
              py::list out;
              for (int k = 0; k < cloudcov::kMaxStarGroup; ++k) {
                  const long long ns = reset ? ft.ns[k].exchange(0) : ft.ns[k].load();
                  const long long n = reset ? ft.count[k].exchange(0) : ft.count[k].load();
                  out.append(py::make_tuple(1e-9 * static_cast<double>(ns), n));
              }
              return out;
          },
          "Benchmarks: the factorisations timed since the last reset (set_factor_timing), by "
          "their place in their group (0: the group's first): a list of kMaxStarGroup "
          "(thread CPU seconds, count) pairs; reset=True zeroes them.", "reset"_a = true);
    m.def("set_gather_prefetch",
          [](bool on) { return cloudcov::gather_prefetch().exchange(on); },
          "Benchmarks: switch the per-star gather's prefetch on or off (default on); returns "
          "the previous setting. Results never depend on it.", "on"_a);
    m.def("set_gather_compact",
          [](bool on) { return cloudcov::gather_compact().exchange(on); },
          "Benchmarks: whether each star's gather first copies its stamp's stack entries into a "
          "compact per-thread buffer and reads them from there (default off; "
          "benchmarks/bench_gather_layout.py); returns the previous setting. Results never "
          "depend on it.", "on"_a);
    m.def("bordered_matrix", &bordered_matrix,
          "Tests: the bordered matrix [[C_kk, C_k,k*], [C_k*,k, C_k*k*]] of one stamp (stamp "
          "pixel (0, 0) at boxcar-output pixel (r0, c0)) as the per-star gather builds it: "
          "good pixels (not_good == 0) then hidden ones, each in flat stamp order, star counts "
          "(stars, float64) on the diagonal; returns (lower triangle (n, n) in the stack's "
          "dtype, zeros above, C_kk's absolute column sums (kc,), ||C_kk||_1).",
          "bimage"_a, "stack"_a, "Np"_a, "wrow"_a, "wcol"_a, "r0"_a, "c0"_a, "not_good"_a,
          "hidden"_a, "stars"_a);
    m.def("set_stack_write_read_only",
          [](bool on) { return cloudcov::stack_write_read_only().exchange(on); },
          "Tests and benchmarks: whether process_ccd's and impute's stack sweeps write only the "
          "stack entries their stamps read, summing each row only as far as its last read "
          "column (default on), or compute and write every entry; returns the previous "
          "setting. Results never depend on it.", "on"_a);
    m.def("set_stack_write_windows",
          [](bool on) { return cloudcov::stack_write_windows().exchange(on); },
          "Tests and benchmarks: whether, with set_stack_write_read_only on, the sweeps write "
          "along columns that one stamp alone reads only the cache lines of the slots it reads "
          "(default on) or every slot of those columns; returns the previous setting. Results "
          "never depend on it.", "on"_a);
    m.def("set_stack_stage_prefetch",
          [](bool on) { return cloudcov::stack_stage_prefetch().exchange(on); },
          "Benchmarks: whether the AVX-512 stack rows ask for the staging row's lines for "
          "writing a few columns ahead (default on); returns the previous setting. Results "
          "never depend on it.", "on"_a);
    m.def("set_stack_aligned_loads",
          [](bool on) { return cloudcov::stack_aligned_loads().exchange(on); },
          "Benchmarks: whether the AVX-512 stack rows read the shifted rows by aligned loads "
          "and a two-source permute (default on) or by unaligned loads that mostly span two "
          "cache lines; returns the previous setting. Results never depend on it.", "on"_a);
    m.def("set_stack_wide_streams",
          [](bool on) { return cloudcov::stack_wide_streams().exchange(on); },
          "Benchmarks: whether the sweeps copy their staging rows into the stack with the "
          "widest streaming store of the SIMD level (64 bytes at avx512, 32 at avx2; default "
          "on) or with 16-byte ones; returns the previous setting. Results never depend on it.",
          "on"_a);
    m.def("set_stack_scalar_tail",
          [](bool on) { return cloudcov::stack_scalar_tail().exchange(on); },
          "Benchmarks: whether the AVX-512 stack rows compute the last of 8k + 1 lanes (Np = 33: "
          "65) as a scalar (default on) or as a ninth vector of 7 padding lanes; returns the "
          "previous setting. Results never depend on it.", "on"_a);
    m.def("set_guard_pocon_estimate",
          [](bool on) { return cloudcov::guard_pocon_estimate().exchange(on); },
          "Benchmarks: judge C_kk in the condition guard by LAPACK ?pocon's 1-norm estimate "
          "(Hager-Higham ?lacn2 with two ?trsv per step) instead of the incremental (?laic1) "
          "Rayleigh-quotient estimate (default off); returns the previous setting. Changes "
          "which stars the guard re-solves.", "on"_a);
    m.def("set_guard_triangular_estimate",
          [](bool on) { return cloudcov::guard_triangular_estimate().exchange(on); },
          "Benchmarks: judge C_kk in the condition guard by the square of the triangular "
          "(?trcon) estimate of its Cholesky factor instead of the incremental estimate (default "
          "off; takes precedence over set_guard_pocon_estimate); returns the previous setting. "
          "Changes which stars the guard re-solves.", "on"_a);
    m.def("simd_level", &cloudcov::shift_stack_simd_level,
          "SIMD path of the stack kernel and the guard's dot products (simd.hpp).");
    m.def("dot_fixed", &dot_fixed,
          "Tests: the guard's fixed-order dot product (simd.hpp: 64 partial sums, then a "
          "fixed pairwise tree, no fused multiply-add) at this process's SIMD level; "
          "returned as a Python float.", "v"_a, "w"_a);
    m.def("use_scipy_lapack", &load_lapack, "Point the LAPACK table at scipy's (the default).");
    m.def("set_lapack", &set_lapack, "Point the LAPACK table at routines given by address.", "addresses"_a);
    m.def("lapack_potrf", &lapack_potrf, "?potrf (lower, in place) of the leading n x n block of a through the LAPACK table.",
          "a"_a, "n"_a = -1);
    m.def("guard_estimates", &guard_estimates,
          "(rho, est1) of the condition guard for the Cholesky factor l (lower triangle): the "
          "incremental Rayleigh-quotient lower bound on ||A^-1||_2 and ?pocon's estimate of "
          "||A^-1||_1, A = l l^T.", "l"_a);
    m.def("build_cov", &build_cov, "Stamp covariance and mean from the stack.", "bimage"_a,
          "stack"_a, "Np"_a, "wrow"_a, "wcol"_a, "r0"_a, "c0"_a, "julia_compat"_a = false);
    m.def("pixel_classes", &pixel_classes, "Good/hidden pixel classes and dnt bits.", "kmasked"_a,
          "psf"_a, "circmask"_a, "flux"_a, "thr"_a, "flux_floor"_a = 1e4);
    m.def("cond_cov_est", &cond_cov_est, "Condition one star on an explicit covariance.", "cov"_a,
          "mu"_a, "not_good"_a, "hidden"_a, "data"_a, "stars"_a, "psf"_a, "diag_on"_a = true,
          "guard"_a = true, "keep_prediction"_a = false);
    m.def("lpi_stars", &lpi_stars, "Per-star LPI for a batch of stars of one tile.", "stack"_a,
          "bimage"_a, "Np"_a, "wrow"_a, "wcol"_a, "tile_r0"_a, "tile_c0"_a, "resid"_a, "stars"_a,
          "bad"_a, "rows"_a, "cols"_a, "psf"_a, "flux"_a, "circmask"_a, "thr"_a,
          "julia_compat"_a = false, "diag_on"_a = true, "guard"_a = true, "nthreads"_a = 1);
    m.def("gather_probe", &gather_probe,
          "Benchmarks only: each star's bordered-matrix gather, or a part of it (mode 0-5, see "
          "cloudcov::gather_probe), timed alone in thread CPU seconds; with checksum=True also "
          "each traversal's checksum.",
          "stack"_a, "bimage"_a, "Np"_a, "wrow"_a, "wcol"_a, "tile_r0"_a, "tile_c0"_a, "resid"_a,
          "stars"_a, "bad"_a, "rows"_a, "cols"_a, "psf"_a, "flux"_a, "circmask"_a, "thr"_a,
          "mode"_a, "checksum"_a = false);
    m.def("lpi_strip", &lpi_strip, "One CCD strip: stack sweep into a ring buffer + per-star LPI.",
          "image"_a, "in_r0"_a, "in_r1"_a, "in_c0"_a, "in_c1"_a, "ring_rows"_a,
          py::arg("ring").noconvert(), py::arg("bimage_buf").noconvert(), "Np"_a, "wrow"_a, "wcol"_a,
          "resid"_a, "stars"_a, "bad"_a, "rows"_a, "cols"_a, "psf"_a, "flux"_a, "circmask"_a, "thr"_a,
          "julia_compat"_a = false, "diag_on"_a = true, "guard"_a = true, "nthreads"_a = 1,
          "flux_floor"_a = 1e4);
    m.def("lpi_impute_strip", &lpi_impute_strip,
          "One strip: stack sweep + conditional mean/covariance of given hidden pixel sets.",
          "image"_a, "in_r0"_a, "in_r1"_a, "in_c0"_a, "in_c1"_a, "ring_rows"_a, "ring"_a,
          "bimage_buf"_a, "Np"_a, "wrow"_a, "wcol"_a, "data"_a, "bad"_a, "rows"_a, "cols"_a,
          "hidden"_a, "circmask"_a, "julia_compat"_a, "guard"_a, "nthreads"_a, "xbar_offset"_a,
          "pcov_offset"_a);
    m.def("gpr_impute", &gpr_impute, "GPR mean and variance of target pixels from their windows.",
          "image"_a, "bad"_a, "rows"_a, "cols"_a, "half"_a, "type"_a, "a"_a, "h_row"_a, "h_col"_a,
          "w_full"_a, "var_full"_a, "nthreads"_a);
    m.def("prelim_infill", &prelim_infill, "Iterative boxcar infill of masked pixels.", "image"_a,
          "mask"_a, "wrow"_a, "wcol"_a, "widmult"_a, "max_rounds"_a, "min_good"_a);
    m.def("infill_widths", &cloudcov::infill_widths, "Infill window widths per round.", "w0"_a,
          "widmult"_a, "rounds"_a);
}
