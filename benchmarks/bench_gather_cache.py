"""How much of the per-star overhead is the stack's memory traffic: stars with their stack lines
in cache against the same stars with them evicted, against a bare ``spotrf``, same process.

The per-star gather (``StackCov::fill``) reads ~2.4 MB of stack entries per star (~3.5 MB of
cache lines) from a stack far larger than the caches. This script calls ``_core.lpi_stars`` on
the 60 stars of ``profile_perstar.py`` (one thread, float32, the condition guard on) in two
orders that do the same work:

- **cold**: all 60 stars, then all 60 again; ~210 MB of stack lines lie between a star's two
  calls, so each call finds its lines in memory (DRAM);
- **twice in a row**: each star twice in succession; the second call finds the lines the first
  one read in the 32 MB L3 (the bordered matrix, 2.4 MB, is rewritten either way).

The warm call's time is ``2 x (twice in a row) - cold`` per star; ``cold - warm`` is what
the stack's trips to memory cost a star. Both orders are run with the gather's prefetch on
(default) and off (``_core.set_gather_prefetch``), alternated ``--repeat`` times (orders and
settings swap places every repeat), and a bare
``spotrf`` of the median bordered size is timed in the same loop (as ``profile_perstar.py``),
so every figure is also a ratio to the factorisation. Outputs are checked bitwise equal
across orders and settings.

Run: python benchmarks/bench_gather_cache.py [--repeat R] [--out FILE]
(writes benchmarks/results/bench_gather_cache.txt)
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import cloudcov as cc
from cloudcov import _core

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _perstar import perstar_field, spd_matrix, spotrf_times  # noqa: E402
from _provenance import Report, load_note, provenance  # noqa: E402

COLUMNS = ("dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2", "kcond", "kpred", "dnt")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bench_gather_cache.txt"))
    args = ap.parse_args(argv)
    say = Report()

    say(f"{provenance()}; stars with their stack lines in cache or not, {args.repeat} alternations, "
        f"one thread; {load_note()}")
    F = perstar_field()
    n = len(F["rows"])
    orders = {"cold": np.concatenate([np.arange(n)] * 2),      # all, then all again
              "twice": np.repeat(np.arange(n), 2)}             # each star twice in a row

    def call(idx):
        return _core.lpi_stars(F["st"], F["bim"], F["Np"], F["w"], F["w"], 0, 0, F["img"], F["stars"],
                               F["bad"], F["rows"][idx], F["cols"][idx], F["psfs"][idx], F["flux"][idx],
                               F["circ"], 20.0, False, True, True, 1)

    rng = np.random.default_rng(2)
    res = {}
    outs = []
    with threadpool_limits(1):
        first = call(np.arange(n))
        nb = int(np.median(np.asarray(first["kcond"]) + np.asarray(first["kpred"])))
        A0 = spd_matrix(nb, rng)
        A = A0.copy(order="F")
        for rep in range(args.repeat):
            for pf in ((True, False) if rep % 2 == 0 else (False, True)):
                prev = _core.set_gather_prefetch(pf)
                try:
                    # the two orders swap places every repeat (no bias from their position)
                    for name in (("cold", "twice") if rep % 2 == 0 else ("twice", "cold")):
                        idx = orders[name]
                        c = time.process_time()
                        out = call(idx)
                        res.setdefault((pf, name), []).append((time.process_time() - c) / len(idx))
                        if len(outs) < 4:
                            outs.append((idx, out))
                finally:
                    _core.set_gather_prefetch(prev)
            res.setdefault("spotrf", []).append(float(spotrf_times(A0, 15, work=A).mean()))
    # every call's star k equals the first call's star k, bitwise
    for idx, out in outs:
        for c in COLUMNS:
            if not np.array_equal(np.asarray(out[c]), np.asarray(first[c])[idx], equal_nan=True):
                raise SystemExit(f"{c} differs between orders or prefetch settings")
    sp = np.array(res["spotrf"])
    say(f"lapack {cc.lapack_info()['name']}: {n} stars, median bordered size n={nb}; bare spotrf "
        f"{np.median(sp) * 1e3:.3f} ms (median of {args.repeat}); outputs bitwise equal across orders "
        f"and prefetch settings: True")
    cold, warm = {}, {}
    for pf in (True, False):
        cold[pf] = np.array(res[(pf, "cold")])
        warm[pf] = 2 * np.array(res[(pf, "twice")]) - cold[pf]
        say(f"gather prefetch {'on ' if pf else 'off'}: per star cold {np.median(cold[pf]) * 1e3:.3f} ms "
            f"({np.median(cold[pf] / sp):.3f} x spotrf), warm {np.median(warm[pf]) * 1e3:.3f} ms "
            f"({np.median(warm[pf] / sp):.3f} x), cold - warm {np.median(cold[pf] - warm[pf]) * 1e3:.3f} ms "
            f"({np.median((cold[pf] - warm[pf]) / sp):.3f} x spotrf)")
        say("  per repeat, cold / warm ms: " + ", ".join(
            f"{a * 1e3:.2f}/{b * 1e3:.2f}" for a, b in zip(cold[pf], warm[pf])))
    say(f"=> the stack's trips to memory cost a star (prefetch on) "
        f"{np.median((cold[True] - warm[True]) / sp):.3f} x spotrf; "
        f"the prefetch saves {np.median((cold[False] - cold[True]) / sp):.3f} x spotrf on cold stars")
    return say.write(args.out)


if __name__ == "__main__":
    sys.exit(main())
