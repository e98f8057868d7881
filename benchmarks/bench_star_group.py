"""Stars conditioned in groups: their bordered matrices gathered, then factorised back to back.

On the 2-core Intel Xeon (Ice Lake) the factorisation inside the per-star stage ran 1.14-1.23x
a bare ``spotrf`` of the same size, and 0.97-1.02x when another matrix of that size had been
factorised just before it (README, Xeon section): the gather's ~5 MB of traffic between two
factorisations evicts LAPACK's own working state (its packing buffers). ``condition_group``
(``cpp/include/cloudcov/conditioning.hpp``) gathers the matrices of ``g`` stars, factorises
them one after the other, then judges and solves each, so that all but the first
factorisation of a group follow another one. Results never depend on ``g``
(``_core.set_star_group``; checked here bitwise, column by column).

Two measurements, each alternating the group sizes in one process:

- **per star**: the 60 stars of ``profile_perstar.py`` (one thread, float32, the guard on) with
  each group size in turn and a bare ``spotrf`` of the median bordered size after each round:
  per-star time / ``spotrf``, and the paired saving against the first group size (medians);
  and each factorisation inside the stage (``_core.set_factor_timing``) by its place in its
  group, against the same ``spotrf``: the first follows the group's gathers and the previous
  group's solves, the others follow a factorisation;
- **whole CCD** (``--ccd``): ``process_ccd`` of ``bench_ccd.py``'s DECam CCD (10,000 stars,
  real S6 mask and PSF, 2 threads), the star batches' core-seconds from its metadata.

Run: python benchmarks/bench_star_group.py [--groups 1,2,3,4] [--repeat R] [--ccd [--ccd-repeat K]]
[--out FILE]  (writes benchmarks/results/bench_star_group.txt)
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import cloudcov as cc
from cloudcov import _core

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _perstar import perstar_field, spd_matrix, spotrf_times  # noqa: E402
from _provenance import Report, load_note, provenance  # noqa: E402

COLUMNS = ("dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2", "kcond", "kpred", "dnt")


def per_star(groups, repeat, say):
    """Per-star time / spotrf for each group size, alternated; returns {g: ratios}."""
    F = perstar_field()
    nstar = len(F["rows"])
    rng = np.random.default_rng(1)

    def call():
        return _core.lpi_stars(F["st"], F["bim"], F["Np"], F["w"], F["w"], 0, 0, F["img"], F["stars"],
                               F["bad"], F["rows"], F["cols"], F["psfs"], F["flux"], F["circ"], 20.0,
                               False, True, True, 1)

    with threadpool_limits(1):
        ref = None
        for g in groups:   # the same outputs whatever the group size
            _core.set_star_group(g)
            out = call()
            got = {k: np.asarray(out[k]) for k in COLUMNS}
            if ref is None:
                ref = got
            bad = [k for k in COLUMNS if not np.array_equal(ref[k], got[k], equal_nan=True)]
            if bad:
                raise SystemExit(f"bench_star_group: g={g} changed {bad}")
        nb = int(np.median(ref["kcond"]) + np.median(ref["kpred"]))
        A0 = spd_matrix(nb, rng)
        t = {g: [] for g in groups}
        place = {g: [] for g in groups}   # per repeat: mean seconds of the factorisations at each place
        floor = []
        _core.set_factor_timing(True)
        try:
            for r in range(repeat):
                order = groups if r % 2 == 0 else groups[::-1]
                for g in order:
                    _core.set_star_group(g)
                    _core.factor_times()   # reset
                    c = time.thread_time()
                    call()
                    t[g].append((time.thread_time() - c) / nstar)
                    place[g].append([s / n for s, n in _core.factor_times()[:g] if n])
                floor.append(float(spotrf_times(A0, 15).mean()))
        finally:
            _core.set_factor_timing(False)
    floor = np.array(floor)
    ratio = {g: np.array(v) / floor for g, v in t.items()}
    say(f"per star ({nstar} stars of n ~ {nb}, one thread, {cc.lapack_info()['name']}, {repeat} "
        f"alternations; outputs bitwise equal for every group size): bare spotrf {np.median(floor) * 1e3:.3f} ms "
        f"(range {floor.min() * 1e3:.2f}-{floor.max() * 1e3:.2f})")
    g0 = groups[0]
    for g in groups:
        saving = ratio[g0] - ratio[g]
        say(f"  g={g}: {np.median(t[g]) * 1e3:.3f} ms per star = {np.median(ratio[g]):.3f}x spotrf "
            f"(per-repeat range {ratio[g].min():.3f}-{ratio[g].max():.3f}); paired saving against g={g0} "
            f"{np.median(saving):+.3f}x (range {saving.min():+.3f} to {saving.max():+.3f})")
    say("  the factorisations inside the stage (_core.set_factor_timing: thread CPU time of each "
        "first attempt's ?potrf, by its place in its group), x the repeat's bare spotrf, medians:")
    for g in groups:
        per = np.array(place[g]) / floor[:, None]
        cells = ", ".join(f"place {k} {np.median(per[:, k]):.3f}x" for k in range(per.shape[1]))
        say(f"  g={g}: {cells}; mean over the places {np.median(per.mean(axis=1)):.3f}x")
    return ratio


def whole_ccd(groups, repeat, say):
    """process_ccd of the DECam CCD with each group size in turn: star batches' core-seconds."""
    import bench_ccd
    image, model, sky, cat, psf, gain, dq = bench_ccd.make_ccd(10000, 0)
    stars = {g: [] for g in groups}
    total = {g: [] for g in groups}
    ref = None
    for r in range(repeat):
        order = groups if r % 2 == 0 else groups[::-1]
        for g in order:
            _core.set_star_group(g)
            c = bench_ccd.cpu_seconds()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = cc.process_ccd(image, model, sky, cat, psf, gain, dq, threads=2, seed=1)
            total[g].append(bench_ccd.cpu_seconds() - c)
            stars[g].append(out.meta["cloudcov"]["core_seconds_stars"])
            got = {k: np.asarray(out[k]) for k in ("cflux", "dcflux", "cchi2", "dnt")}
            if ref is None:
                ref = got
            elif not all(np.array_equal(ref[k], got[k], equal_nan=True) for k in ref):
                raise SystemExit(f"bench_star_group: process_ccd outputs changed with g={g}")
    say(f"DECam CCD 4094x2046, 10,000 stars, 2 threads, {cc.lapack_info()['name']}, {repeat} "
        f"alternations (outputs bitwise equal):")
    for g in groups:
        say(f"  g={g}: star batches {np.median(stars[g]):.1f} core-s (runs "
            f"{', '.join(f'{v:.1f}' for v in stars[g])}), process_ccd {np.median(total[g]):.1f} core-s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", default="1,2,3,4", help="group sizes to alternate (the first is the reference)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--ccd", action="store_true", help="also the whole DECam CCD")
    ap.add_argument("--ccd-repeat", type=int, default=3)
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bench_star_group.txt"))
    args = ap.parse_args(argv)
    groups = [int(x) for x in args.groups.split(",")]
    say = Report()
    say(f"{provenance()}; stars conditioned in groups (condition_group); {load_note()}")
    before = _core.set_star_group(groups[0])
    try:
        per_star(groups, args.repeat, say)
        if args.ccd:
            whole_ccd(groups, args.ccd_repeat, say)
    finally:
        _core.set_star_group(before)
    say.write(args.out)


if __name__ == "__main__":
    main()
