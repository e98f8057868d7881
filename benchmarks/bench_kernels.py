"""Benchmark of cloudcov's C++ kernels against a plain numpy/scipy implementation.

Prints (and writes to benchmarks/results/bench_kernels.txt):
1. the shifted-product stack (Np=33, 129x129 boxcar, float32): core-seconds per
   boxcar-output pixel measured on one tile, scaled to a full 4094 x 2046 DECam CCD with the
   strips that the default budget gives (see cloudcov.tiling.plan_strips), plus the speed
   ratio against numpy on a subset of shifts of the same tile;
2. the per-star stage (covariance lookup + pixel classes + guarded conditioning) for
   realistic masks (radius-16 good region, ~100 hidden pixels, 2% dq-masked pixels):
   core-ms per star and the ratio against numpy/scipy on the same stars;
3. 1 vs 2 thread wall times and the peak resident memory of the process.

Run: python benchmarks/bench_kernels.py [--quick]
"""
from __future__ import annotations

import argparse
import pathlib
import platform
import resource
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import cloudcov as cc
from cloudcov import _core
from cloudcov.tiling import DEFAULT_MAX_MEMORY, plan_strips

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import numpy_reference as ref  # noqa: E402
from _perstar import perstar_field, spd_matrix, spotrf_times  # noqa: E402
from _provenance import Report, load_note, provenance  # noqa: E402

CCD = (4094, 2046)


def median_time(fn, repeat, clock=time.process_time):
    """Median over repeats; process CPU time (core-seconds, all threads) by default, so that
    other processes on a shared machine do not inflate it; clock=time.perf_counter for wall."""
    ts = []
    for _ in range(repeat):
        t = clock()
        fn()
        ts.append(clock() - t)
    return float(np.median(ts))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small tile, few repeats")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bench_kernels.txt"))
    args = ap.parse_args(argv)
    Np, w = 33, 129
    nshift = _core.n_slots(Np)
    rng = np.random.default_rng(1)
    say = Report()

    say(f"{provenance()}; kernels benchmark; simd={_core.simd_level()}; "
        f"{platform.processor() or platform.machine()}; python {platform.python_version()}; "
        f"{load_note()} (run nice'd)")
    say(f"Np={Np}, boxcar {w}x{w}, float32 stack, {nshift} values per pixel "
        f"(Np (2 Np - 1) shifts)")

    # ---- 1. stack -----------------------------------------------------------------------
    side = 200 if args.quick else 472
    rep = 2 if args.quick else 5
    x = (rng.standard_normal((side, side)) * 20).astype(np.float32)
    b, s = cc.shift_stack(x, Np, w, w)       # allocate (first touch) outside the timing
    t1 = median_time(lambda: cc.shift_stack(x, Np, w, w, threads=1, out=(b, s)), rep)
    t2 = median_time(lambda: cc.shift_stack(x, Np, w, w, threads=2, out=(b, s)), rep, time.perf_counter)
    t1w = median_time(lambda: cc.shift_stack(x, Np, w, w, threads=1, out=(b, s)), rep, time.perf_counter)
    out_px = b.size
    per_px = t1 / out_px
    # A CCD is swept in strips (the running sums never restart); the work of a sweep is
    # proportional to (output rows + widx) x (output cols + widy), as for this tile.
    strips = plan_strips((0, CCD[0]), (0, CCD[1]), Np, w, w, DEFAULT_MAX_MEMORY, "float32")
    per_unit = t1 / ((b.shape[0] + w) * (b.shape[1] + w))
    units = sum((CCD[0] + Np - 1 + w) * (st.col1 - st.col0 + Np - 1 + w) for st in strips)
    ccd_cost = per_unit * units
    say()
    say("1. shifted-product stack")
    say(f"   tile {side}x{side} -> stack {Np}x{b.shape[0]}x{b.shape[1]}x{2 * Np - 1} "
        f"({s.nbytes / 2**30:.2f} GiB): 1 thread {t1:.3f} core-s; wall 1 thread {t1w:.3f} s, "
        f"2 threads {t2:.3f} s (x{t1w / t2:.2f}; wall times suffer from the machine's load)")
    say(f"   {per_px * 1e9 / nshift:.3f} ns per output value; {per_px * 1e6:.2f} us per output pixel")
    say(f"   DECam CCD {CCD[0]}x{CCD[1]}, default budget {DEFAULT_MAX_MEMORY / 2**20:.0f} MiB: "
        f"{len(strips)} strip(s), stack ring of {strips[0].ring_rows} rows, "
        f"{units / 1e6:.1f} Mpix swept")
    say(f"   => stack stage {ccd_cost:.1f} core-s per CCD (measured on this tile, scaled by the "
        f"swept area of the strips); target <= 10, anchor ~200")
    nsub = 20 if args.quick else 60
    sub = ref.all_shifts(Np)[::max(1, nshift // nsub)][:nsub]
    tn = median_time(lambda: ref.shift_stack_numpy(x, Np, w, w, sub), 1 if args.quick else 2)
    tn_all = tn / len(sub) * nshift
    say(f"   numpy reference (cumsum boxcar per shift, {len(sub)} shifts timed, scaled to {nshift}): "
        f"{tn_all:.1f} s per tile -> speed ratio x{tn_all / t1:.1f} (1 thread)")
    bref, sref = ref.shift_stack_numpy(x, Np, w, w, sub)
    mine = np.stack([s[dr, :, :, dc + Np - 1] for dr, dc in sub], axis=-1).astype(np.float64)
    err = np.abs(mine - sref).max() / np.abs(sref).max()
    say(f"   max |C++ - numpy| / max|stack| over the timed shifts: {err:.1e}")
    del s, b

    # ---- 2. per star ----------------------------------------------------------------------
    side2 = 240 if args.quick else 360
    nstar = 12 if args.quick else 60
    # the field of profile_perstar.py (_perstar.py), drawn from this run's generator
    F = perstar_field(Np, w, side2, nstar, rng=rng)
    img, bim, st, stars, bad, rows, cols, psf, psfs, flux, circ = (
        F[k] for k in ("img", "bim", "st", "stars", "bad", "rows", "cols", "psf", "psfs", "flux", "circ"))
    h, a = (Np - 1) // 2, (w - 1) // 2
    with threadpool_limits(1):
        call = lambda th: _core.lpi_stars(st, bim, Np, w, w, 0, 0, img, stars, bad, rows, cols,  # noqa: E731
                                          psfs, flux, circ, 20.0, False, True, True, th)
        out = call(1)
        # The floor: a bare LAPACK Cholesky (spotrf through the table cloudcov's kernels call:
        # scipy's OpenBLAS, or MKL with CLOUDCOV_LAPACK=mkl) of a bordered matrix of the same
        # size, timed in the same loop (process CPU time, interleaved with the star batches so
        # that machine load hits both alike).
        nb = int(np.median(out["kcond"]) + np.median(out["kpred"]))
        A0 = spd_matrix(nb, rng)
        A = A0.copy(order="F")
        t_star, t_chol = [], []
        for _ in range(3 if args.quick else 9):
            c = time.process_time()
            call(1)
            t_star.append((time.process_time() - c) / nstar)
            t_chol.append(float(spotrf_times(A0, 15, work=A).mean()))
        ts1 = float(np.median(t_star)) * nstar
        chol = float(np.median(t_chol))
        ratios = np.array(t_star) / np.array(t_chol)
        ts2 = median_time(lambda: call(2), 3 if not args.quick else 1, time.perf_counter)
        ts1w = median_time(lambda: call(1), 3 if not args.quick else 1, time.perf_counter)
        g = ref.StarGather(Np)
        nref = min(nstar, 5 if args.quick else 12)

        def numpy_stars():
            res = []
            for k in range(nref):
                R, C = rows[k], cols[k]
                cov, mu = g.cov(bim, st, R - h - a, C - h - a, w * w)
                sl = np.s_[R - h:R + h + 1, C - h:C + h + 1]
                pc = cc.pixel_classes(bad[sl], psf, flux[k], circmask=circ.astype(bool))
                res.append(ref.condition_numpy(cov, mu, pc.good.ravel(), pc.hidden.ravel(),
                                               img[sl].ravel().astype(np.float64),
                                               stars[sl].ravel().astype(np.float64), pc.psf.ravel()))
            return res

        tnum = median_time(numpy_stars, 1 if args.quick else 2) / nref
    ms1 = ts1 / nstar * 1e3
    say()
    say("2. per-star stage (lookup + pixel classes + guarded conditioning), float32")
    say(f"   {nstar} stars, median kcond {int(np.median(out['kcond']))}, kpred "
        f"{int(np.median(out['kpred']))}, dnt counts {dict(zip(*np.unique(out['dnt'], return_counts=True)))}")
    say(f"   1 thread {ms1:.2f} core-ms/star (process CPU time); wall 1 thread {ts1w / nstar * 1e3:.2f}, "
        f"2 threads {ts2 / nstar * 1e3:.2f} ms/star (x{ts1w / ts2:.2f}); target <= 3, anchor 15.3")
    say(f"   floor: bare spotrf of a {nb} x {nb} matrix (same LAPACK, same run) {chol * 1e3:.2f} ms; "
        f"per star / spotrf = {ms1 / (chol * 1e3):.3f} (median of per-repeat ratios "
        f"{np.median(ratios):.3f}, range {ratios.min():.3f}-{ratios.max():.3f}; target <= 1.15)")
    say(f"   numpy/scipy reference (float64 gather + cho_factor): {tnum * 1e3:.1f} ms/star -> "
        f"speed ratio x{tnum * 1e3 / ms1:.1f}")
    chk = numpy_stars()
    rel = max(abs(chk[k][0] - out["dcflux"][k]) / chk[k][0] for k in range(nref))
    say(f"   max relative dcflux difference C++ (float32) vs numpy (float64): {rel:.1e}")
    say(f"   => per-star cost for a 10,000-star CCD: {ms1 * 1e4 / 1e3:.0f} core-s")

    say()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    say(f"3. peak RSS of this process: {rss:.2f} GiB")
    path = pathlib.Path(args.out)
    if not args.quick:
        say.write(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
