"""Per-star stage vs bare spotrf, for profiling.

Run: python benchmarks/profile_perstar.py [REPS] [guard|noguard] [noref]
(REPS repeats of 60 stars; noref: skip the bare spotrf timing, so that a profiler sees only the
star calls, e.g. perf record -e cpu-clock python benchmarks/profile_perstar.py 20 guard noref;
benchmarks/profile_breakdown.py does that and sorts the samples by stage).
"""
import sys, time, numpy as np
from threadpoolctl import threadpool_limits
import cloudcov as cc
from cloudcov import _core
Np, w = 33, 129
rng = np.random.default_rng(1)
side2, nstar = 360, 60
img = (rng.standard_normal((side2, side2)) * 20).astype(np.float32)
bim, st = cc.shift_stack(img, Np, w, w)
h, a = (Np - 1) // 2, (w - 1) // 2
rows = rng.integers(h + a, side2 - h - a, nstar).astype(np.int64)
cols = rng.integers(h + a, side2 - h - a, nstar).astype(np.int64)
y, x = np.mgrid[-h:h + 1, -h:h + 1]; psf = np.exp(-(x**2+y**2)/8.0); psf /= psf.sum()
flux = np.full(nstar, 3.0e4)
psfs = np.repeat(psf[None].astype(np.float32), nstar, axis=0)
stars = np.zeros_like(img)
for r, c, f in zip(rows, cols, flux):
    stars[r - h:r + h + 1, c - h:c + h + 1] += (f * psf / 4.0).astype(np.float32)
bad = (rng.random(img.shape) < 0.02).astype(np.uint8)
circ = cc.circle_mask(Np).astype(np.uint8)
order = np.argsort(rows, kind="stable"); rows, cols = rows[order], cols[order]
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
guard = (sys.argv[2] != "noguard") if len(sys.argv) > 2 else True
noref = len(sys.argv) > 3 and sys.argv[3] == "noref"
with threadpool_limits(1):
    call = lambda th: _core.lpi_stars(st, bim, Np, w, w, 0, 0, img, stars, bad, rows, cols, psfs, flux, circ, 20.0, False, True, guard, th)
    out = call(1)
    nb = int(np.median(out["kcond"]) + np.median(out["kpred"]))
    if not noref:   # a well-conditioned SPD matrix of the median bordered size
        M = rng.standard_normal((nb, 2 * nb)).astype(np.float32)
        A0 = np.asfortranarray(M @ M.T / nb + np.eye(nb, dtype=np.float32)); A = A0.copy(order="F")
    ts, tc = [], []
    if noref:   # the profiled window starts here (CLOCK_MONOTONIC, for perf record -k)
        print(f"TIMED_START {time.clock_gettime(time.CLOCK_MONOTONIC):.6f}", flush=True)
    for _ in range(reps):
        c = time.process_time(); call(1); ts.append((time.process_time() - c) / nstar)
        acc = 0
        for _ in range(0 if noref else 15):
            A[...] = A0; c = time.process_time(); _core.lapack_potrf(A); acc += time.process_time() - c
        tc.append(acc / 15 if not noref else np.nan)
if noref:
    print(f"TIMED_END {time.clock_gettime(time.CLOCK_MONOTONIC):.6f}")
    print(f"lapack {cc.lapack_info()['name']}: n={nb} per star {np.median(ts)*1e3:.3f} ms over {reps} x {nstar} stars; "
          f"dnt {np.unique(out['dnt'], return_counts=True)}")
    sys.exit()
print(f"lapack {cc.lapack_info()['name']}: n={nb} per star {np.median(ts)*1e3:.2f} ms, spotrf {np.median(tc)*1e3:.2f} ms, ratio {np.median(np.array(ts)/np.array(tc)):.3f}; dnt {np.unique(out['dnt'], return_counts=True)}")
