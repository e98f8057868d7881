"""What a bare spotrf costs after the memory traffic that comes before it in the per-star stage,
and whether the floor's stand-in matrix costs what the stars' own bordered matrices cost.

Every per-star ratio is taken against a bare ``spotrf`` (``_perstar.spotrf_times``): a fresh
copy of a well-conditioned stand-in matrix of the median bordered order (``spd_matrix``), then
its factorisation, timed alone. In the stage the factorisation follows other work instead: one
star's gather (~2.4 MB of scattered stack reads and ~1.2 MB of matrix writes), or, for the
second star of a group (``_core.set_star_group``), the first star's factorisation. This script
times the same bare ``spotrf`` after each of these (not timed), the matrix copied in after them
(as the gather writes the bordered matrix last), so that what the traffic takes away is not the
matrix but LAPACK's own state (its packing buffers and what else it keeps in the caches):

- **bare**: nothing more (the floor as every ratio takes it: the previous call's spotrf, then
  the copy);
- **after a spotrf**: a copy and factorisation of another matrix of the same order (what the
  second star of a group finds);
- **after reading X MB** of other memory (a numpy sum over a buffer used for nothing else),
  X = 1, 2.5, 5, 10;
- **after writing 2.5 MB** of other memory (the size of one bordered matrix);
- **after a star's gather**: ``_core.bordered_matrix`` of one of the 60 stars of
  ``profile_perstar.py``'s field, star after star (the stage's own gather of the stack's
  entries; into a new array, whose upper triangle it also zero-fills); **after two stars'
  gathers**: what the first star of a group of two (the default) finds.

The modes are alternated (order reversed every other repeat), each a median of 5 calls; each
figure is the median over the repeats of the ratio to **bare** in the same repeat. Last, how much
this machine's caches hold: a numpy reduction over the first X MB of a buffer, repeated (GB/s).
On the Ice Lake Xeon (2026-12-08) a spotrf after one star's gather cost 1.07x its bare time and
after two (the first star of a group of two) 1.09x, after another spotrf 1.02x. Inside the stage
itself (``bench_star_group.py``, which times each factorisation there by its place in its group)
the first of a group cost 1.11x and the second 1.01x: the gathers alone reproduce most of the
first one's extra cost, not all of it (the stage also runs the previous group's solves before
it).

Then the stand-in itself: the stars' own bordered matrices (8 stars of the same field, built by
``_core.bordered_matrix``, mirrored to full symmetric, Fortran order) and stand-ins of the same
orders, factorised alternately: the ratio of their medians.

The 60 stars of ``profile_perstar.py`` (360 x 360 float32 field, Np = 33, 129 x 129 boxcar,
one thread, the LAPACK table cloudcov's kernels call). Run:
python benchmarks/bench_lapack_state.py [--repeat N] [--out FILE]
(writes benchmarks/results/bench_lapack_state.txt)
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _provenance import Report, load_note, provenance  # noqa: E402

HERE = pathlib.Path(__file__).parent
READ_MB = (1.0, 2.5, 5.0, 10.0)


def star_classes(F, k):
    """Star k of the field F (``_perstar.perstar_field``) classed as the per-star stage classes
    it (``_core.pixel_classes`` on its float32 PSF stamp, flux and the stage's threshold 20):
    the arguments after (bimage, stack, Np, wrow, wcol) of ``_core.bordered_matrix``."""
    from cloudcov import _core
    Np, w = F["Np"], F["w"]
    h, a = (Np - 1) // 2, (w - 1) // 2
    r, c = int(F["rows"][k]), int(F["cols"][k])
    bad = F["bad"][r - h:r + h + 1, c - h:c + h + 1]
    psf = F["psfs"][k].astype(np.float64)
    not_good, hidden = _core.pixel_classes(np.ascontiguousarray(bad), psf, F["circ"].reshape(Np, Np),
                                           float(F["flux"][k]), 20.0)[:2]
    counts = F["stars"][r - h:r + h + 1, c - h:c + h + 1].astype(np.float64).ravel()
    return r - h - a, c - h - a, not_good.ravel(), hidden.ravel(), counts


def star_matrices(F, stars):
    """The bordered matrices of the given stars of the field F, full symmetric float32 in
    Fortran order."""
    from cloudcov import _core
    out = []
    for k in stars:
        M, _, _ = _core.bordered_matrix(F["bim"], F["st"], F["Np"], F["w"], F["w"], *star_classes(F, k))
        out.append(np.asfortranarray(M + np.tril(M, -1).T))
    return out


def measure_state(F, nb, repeat):
    """{mode: [per-repeat ratio to bare]}, {mode: [per-repeat ms]} for the modes above."""
    from threadpoolctl import threadpool_limits
    from _perstar import spd_matrix
    from cloudcov import _core
    rng = np.random.default_rng(1)
    A0 = spd_matrix(nb, rng)
    A = A0.copy(order="F")
    B0 = spd_matrix(nb, rng)
    B = B0.copy(order="F")
    other = np.ones(int(max(READ_MB) * (1 << 20)) // 4, dtype=np.float32)
    sink = np.empty(int(2.5 * (1 << 20)) // 4, dtype=np.float32)
    classes = [star_classes(F, k) for k in range(len(F["rows"]))]
    gathers = iter(range(10 ** 9))

    def gather():   # the stars in turn
        _core.bordered_matrix(F["bim"], F["st"], F["Np"], F["w"], F["w"],
                              *classes[next(gathers) % len(classes)])

    def spotrf_other():
        B[:] = B0
        _core.lapack_potrf(B, nb)

    modes = {"bare": lambda: None, "after a spotrf": spotrf_other}
    for mb in READ_MB:
        k = int(mb * (1 << 20)) // 4
        modes[f"after reading {mb:g} MB"] = (lambda k=k: other[:k].sum())
    modes["after writing 2.5 MB"] = lambda: sink.fill(1.0)
    modes["after a star's gather"] = gather
    modes["after two stars' gathers"] = lambda: (gather(), gather())
    ratio = {m: [] for m in modes}
    ms = {m: [] for m in modes}
    names = list(modes)
    with threadpool_limits(1):
        for m in names:   # warm-up: first touch of every buffer
            modes[m]()
        for rep in range(repeat):
            t = {}
            for m in (names if rep % 2 == 0 else names[::-1]):
                calls = []
                for _ in range(5):
                    modes[m]()
                    A[:] = A0   # the matrix written last, as the gather writes it
                    c = time.thread_time()
                    _core.lapack_potrf(A, nb)
                    calls.append(time.thread_time() - c)
                t[m] = float(np.median(calls))
            for m in names:
                ms[m].append(1e3 * t[m])
                ratio[m].append(t[m] / t["bare"])
    return ratio, ms


def measure_standin(F, repeat):
    """(ms of the stars' own matrices, ms of the stand-ins, per-repeat ratios, orders)."""
    from threadpoolctl import threadpool_limits
    from _perstar import spd_matrix, spotrf_times
    Ks = star_matrices(F, range(8))
    rng = np.random.default_rng(2)
    S = [spd_matrix(K.shape[0], rng) for K in Ks]
    own, stand, ratios = [], [], []
    with threadpool_limits(1):
        for rep in range(repeat):
            pair = [(Ks, own), (S, stand)]
            for mats, acc in (pair if rep % 2 == 0 else pair[::-1]):
                acc.append(1e3 * float(np.median([np.median(spotrf_times(M, 3)) for M in mats])))
            ratios.append(own[-1] / stand[-1])
    return own, stand, ratios, [K.shape[0] for K in Ks]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=100, help="alternations of the modes")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_lapack_state.txt"))
    args = ap.parse_args(argv)
    from _perstar import perstar_field
    from bench_gather_floor import field_args
    from cloudcov import _core
    F = perstar_field()
    out = _core.lpi_stars(*field_args(F), False, True, True, 1)
    nb = int(np.median(out["kcond"]) + np.median(out["kpred"]))
    say = Report()
    say(f"{provenance()}; {load_note()}")
    say(f"a bare spotrf of order n = {nb} (the median bordered order of profile_perstar.py's 60 stars) "
        f"after what comes before it in the per-star stage; one thread, thread CPU time of the spotrf "
        f"alone; {args.repeat} alternations, each a median of 5 calls")
    ratio, ms = measure_state(F, nb, args.repeat)
    for m in ratio:
        r = sorted(ratio[m])
        q1, q3 = np.percentile(r, [25, 75])
        say(f"  {m:<24s} {statistics.median(ms[m]):6.3f} ms = {statistics.median(r):.3f} x bare "
            f"(quartiles of the per-repeat ratios {q1:.3f}-{q3:.3f})")
    own, stand, ratios, orders = measure_standin(F, max(4, args.repeat // 3))
    say(f"the floor's stand-in: the stars' own bordered matrices (orders {min(orders)}-{max(orders)}) "
        f"{statistics.median(own):.3f} ms, stand-ins of the same orders {statistics.median(stand):.3f} ms "
        f"(medians over 8 matrices, {len(ratios)} alternations): own / stand-in "
        f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")
    say("how much the caches hold: reading the first X MB of a buffer again and again (numpy max, "
        "GB/s, median of 5): " + ", ".join(f"{mb:g} MB {gbs:.1f}" for mb, gbs in cache_sweep()))
    say.write(args.out)


def cache_sweep(sizes_mb=(0.5, 1, 2, 4, 8, 16, 24, 32, 64)):
    """[(MB, GB/s)] of a repeated reduction over the first MB of a 64 MB float32 buffer."""
    x = np.ones(int(max(sizes_mb) * (1 << 20)) // 4, dtype=np.float32)
    out = []
    for mb in sizes_mb:
        y = x[:int(mb * (1 << 20)) // 4]
        reps = max(3, int(256 / mb))
        ts = []
        for _ in range(5):
            c = time.perf_counter()
            for _ in range(reps):
                np.max(y)
            ts.append((time.perf_counter() - c) / reps)
        out.append((mb, mb / 1024 / float(np.median(ts))))
    return out


if __name__ == "__main__":
    main()
