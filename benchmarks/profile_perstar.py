"""Per-star stage vs bare spotrf, for profiling.

Run: python benchmarks/profile_perstar.py [REPS] [guard|noguard|both] [noref]
(REPS repeats of 60 stars; noref: skip the bare spotrf timing, so that a profiler sees only the
star calls, e.g. perf record -e cpu-clock python benchmarks/profile_perstar.py 20 guard noref;
benchmarks/profile_breakdown.py does that and sorts the samples by stage).

``both``: what the condition guard costs. Each repeat times the stars with the guard, without
it (one float32 attempt, no condition estimates), with the guard judging C_kk by LAPACK
?pocon's estimate instead of the incremental one (``_core.set_guard_pocon_estimate``, the
guard before 2026-12), with the triangular estimate of C_kk's factor
(``_core.set_guard_triangular_estimate``; see bench_guard.py for what both do to the re-solve
rate) and the bare spotrf, in turn (the spotrf also on an array with the per-star stage's
leading dimension, the order rounded up to whole cache lines: the floor is the same); then the triangular solves the estimates are made of are
timed alone: ``strsv`` (no transpose and transpose) on a lower Cholesky factor of the median
good-pixel count kc (scipy's BLAS, the library the default LAPACK table calls; each call
includes ~1-2 us of Python overhead), and an ``sgemv`` over the full kc x kc matrix (twice the
bytes of the triangle) for the memory-bound scale. ?pocon's estimate of ||C_kk^-1||_1
(LAPACK's ?lacn2) applies C_kk^-1 = L^-T L^-1 at least 4 times: at least 8 such solves per
star; the incremental estimate makes one pass of ?laic1 steps over the factor and one solve.
"""
import pathlib, sys, time, numpy as np
from threadpoolctl import threadpool_limits
import cloudcov as cc
from cloudcov import _core
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _perstar import ld_bordered, perstar_field, spd_matrix, spotrf_times  # noqa: E402
F = perstar_field()
Np, w, img, bim, st, stars, bad, rows, cols, psfs, flux, circ = (
    F[k] for k in ("Np", "w", "img", "bim", "st", "stars", "bad", "rows", "cols", "psfs", "flux", "circ"))
nstar = len(rows)
rng = np.random.default_rng(1)
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
mode = sys.argv[2] if len(sys.argv) > 2 else "guard"
guard = mode != "noguard"
both = mode == "both"
noref = len(sys.argv) > 3 and sys.argv[3] == "noref"
with threadpool_limits(1):
    call = lambda th, g=guard: _core.lpi_stars(st, bim, Np, w, w, 0, 0, img, stars, bad, rows, cols, psfs, flux, circ, 20.0, False, True, g, th)
    out = call(1)
    nb = int(np.median(out["kcond"]) + np.median(out["kpred"]))
    if not noref:   # a well-conditioned SPD matrix of the median bordered size
        A0 = spd_matrix(nb, rng); A = A0.copy(order="F")
    ts, tc, tn, tt, tp, tl = [], [], [], [], [], []
    if noref:   # the profiled window starts here (CLOCK_MONOTONIC, for perf record -k)
        print(f"TIMED_START {time.clock_gettime(time.CLOCK_MONOTONIC):.6f}", flush=True)
    for _ in range(reps):
        c = time.process_time(); call(1); ts.append((time.process_time() - c) / nstar)
        if both:
            c = time.process_time(); call(1, False); tn.append((time.process_time() - c) / nstar)
            _core.set_guard_pocon_estimate(True)
            c = time.process_time(); call(1); tp.append((time.process_time() - c) / nstar)
            _core.set_guard_pocon_estimate(False)
            _core.set_guard_triangular_estimate(True)
            c = time.process_time(); call(1); tt.append((time.process_time() - c) / nstar)
            _core.set_guard_triangular_estimate(False)
        tc.append(np.nan if noref else float(spotrf_times(A0, 15, work=A).mean()))
        if both:   # the floor at the leading dimension the per-star stage factorises with
            tl.append(float(spotrf_times(A0, 15, lda=ld_bordered(nb)).mean()))
if noref:
    print(f"TIMED_END {time.clock_gettime(time.CLOCK_MONOTONIC):.6f}")
    print(f"lapack {cc.lapack_info()['name']}: n={nb} per star {np.median(ts)*1e3:.3f} ms over {reps} x {nstar} stars; "
          f"dnt {np.unique(out['dnt'], return_counts=True)}")
    sys.exit()
if both:
    from scipy.linalg import blas
    kc = int(np.median(out["kcond"]))
    with threadpool_limits(1):
        M = rng.standard_normal((kc, 2 * kc)).astype(np.float32)
        Lf = np.asfortranarray(M @ M.T / kc + np.eye(kc, dtype=np.float32))
        Full = Lf.copy(order="F")
        _core.lapack_potrf(Lf)
        Lf = np.asfortranarray(np.tril(Lf))
        v = rng.standard_normal(kc).astype(np.float32)

        def per_call(f, n=200):
            out_ = []
            for _ in range(7):
                c = time.perf_counter()
                for _ in range(n):
                    f()
                out_.append((time.perf_counter() - c) / n)
            return float(np.median(out_))
        x = np.empty_like(v)

        def solve(trans):
            # each call solves for the same right-hand side. Solving in place again and again
            # (before 2026-12-07) shrank the vector call after call until 667 of its 681 entries
            # were subnormal, which an Intel core computes with microcode assists: on the 2-core
            # Xeon 1610-1760 us per strsv against 35-75 us for a fresh right-hand side (the
            # EPYC's figures were less affected). The copy (kc floats) is timed with the solve.
            np.copyto(x, v)
            blas.strsv(Lf, x, lower=1, trans=trans, overwrite_x=1)
        t_n = per_call(lambda: solve(0))
        t_t = per_call(lambda: solve(1))
        t_g = per_call(lambda: blas.sgemv(1.0, Full, v))
    ts, tn, tc, tt, tp, tl = (np.array(x) for x in (ts, tn, tc, tt, tp, tl))
    g = np.median(ts - tn)
    print(f"lapack {cc.lapack_info()['name']}: n={nb} per star with the guard {np.median(ts)*1e3:.3f} ms "
          f"(ratio {np.median(ts / tc):.3f}), without {np.median(tn)*1e3:.3f} ms (ratio {np.median(tn / tc):.3f}), "
          f"spotrf {np.median(tc)*1e3:.3f} ms (at the stage's leading dimension {ld_bordered(nb)}: "
          f"{np.median(tl)*1e3:.3f} ms, ratio with the guard {np.median(ts / tl):.3f}); guard {g*1e3:.3f} ms per star = {np.median((ts - tn) / tc):.3f} x spotrf "
          f"(medians of {reps} alternated repeats); kc={kc}: strsv {t_n*1e6:.1f} us (no transpose), "
          f"{t_t*1e6:.1f} us (transpose), sgemv of the full kc x kc {t_g*1e6:.1f} us; the guard = "
          f"{g / ((t_n + t_t) / 2):.1f} strsv; with ?pocon's C_kk estimate {np.median(tp)*1e3:.3f} ms "
          f"(ratio {np.median(tp / tc):.3f}, guard {np.median((tp - tn) / tc):.3f} x spotrf = "
          f"{np.median(tp - tn) / ((t_n + t_t) / 2):.1f} strsv); with the triangular C_kk estimate "
          f"{np.median(tt)*1e3:.3f} ms (ratio {np.median(tt / tc):.3f}); dnt {np.unique(out['dnt'], return_counts=True)}")
    sys.exit()
print(f"lapack {cc.lapack_info()['name']}: n={nb} per star {np.median(ts)*1e3:.2f} ms, spotrf {np.median(tc)*1e3:.2f} ms, ratio {np.median(np.array(ts)/np.array(tc)):.3f}; dnt {np.unique(out['dnt'], return_counts=True)}")
