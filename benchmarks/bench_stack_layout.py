"""Does the stack's memory layout set the per-star gather's cost? Shift-row major against pixel-major.

The sweep stores the stack shift-row major, ``[drow][r][c][dcol]`` (see
``cpp/include/cloudcov/shift_stack.hpp``): a star's gather reads, for each stamp pixel, Np
short windows (Np floats each) from Np different regions of memory, one per shift row. A
pixel-major stack, ``[r][c][drow][dcol]``, would hold all of a pixel's shifts in one
contiguous block (Np * (2 Np - 1) floats, 8.6 KB for Np = 33), the same lines read in one
sequential run. This benchmark asks whether that would make the gather cheaper before anyone
rewrites the sweep for it: it copies the 60-star per-star field's stack (``_perstar.py``) into
pixel-major order (slot 65 = 2 Np - 1, and 80: every shift row a whole number of cache
lines) and times the per-star stage (``_core.lpi_stars``, guard on, one thread by default)
reading either copy, with the software prefetch on and off, alternating the order every
repeat, against a bare ``spotrf`` of the median bordered size timed in between. Outputs are
checked bitwise equal (same values, same arithmetic).

EXPERIMENT: ``_core.lpi_stars_pm`` (the pixel-major gather) exists only at the commit recorded
in the result header (branch ``exp/pixel-major``); it was not kept.

Run: python benchmarks/bench_stack_layout.py [--repeat R] [--threads T] [--out FILE]
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from cloudcov import _core

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _perstar import perstar_field, spd_matrix, spotrf_times  # noqa: E402
from _provenance import load_note, provenance, write_result  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=41)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bench_stack_layout.txt"))
    args = ap.parse_args(argv)
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    F = perstar_field()
    Np, w = F["Np"], F["w"]
    st, bim = F["st"], F["bim"]
    common = (Np, w, w)
    star_args = (F["img"], F["stars"], F["bad"], F["rows"], F["cols"], F["psfs"], F["flux"], F["circ"], 20.0)
    nstar = len(F["rows"])
    R, C = st.shape[1], st.shape[2]
    pms = {}
    for slot in (2 * Np - 1, 80):
        pm = np.zeros((R, C, Np, slot), np.float32)
        pm[..., :2 * Np - 1] = st.transpose(1, 2, 0, 3)
        pms[slot] = pm
    th = args.threads

    def shift_row_major():
        return _core.lpi_stars(st, bim, *common, 0, 0, *star_args, False, True, True, th)

    def pixel_major(slot):
        return lambda: _core.lpi_stars_pm(pms[slot], slot, st, bim, *common, *star_args, True, th)

    layouts = {"shift-row major (as committed)": shift_row_major,
               f"pixel-major, slot {2 * Np - 1}": pixel_major(2 * Np - 1),
               "pixel-major, slot 80": pixel_major(80)}
    variants = {(name, pf): fn for name, fn in layouts.items() for pf in (True, False)}
    say(f"{provenance()}; {load_note()}")
    say(f"per-star field: {nstar} stars, Np={Np}, boxcar {w}, stack {st.nbytes / 2**20:.0f} MiB per copy; "
        f"{th} thread(s), {args.repeat} repeats, order alternating")
    with threadpool_limits(1):
        outs = {}
        for (name, pf), fn in variants.items():
            _core.set_gather_prefetch(pf)
            outs[(name, pf)] = fn()
        _core.set_gather_prefetch(True)
        ref = outs[next(iter(variants))]
        same = all(np.array_equal(o[c], ref[c], equal_nan=True) for o in outs.values() for c in ref)
        nb = int(np.median(ref["kcond"]) + np.median(ref["kpred"]))
        A0 = spd_matrix(nb, np.random.default_rng(1))
        A = A0.copy(order="F")
        t = {k: [] for k in variants}
        ratio = {k: [] for k in variants}
        floor = []
        keys = list(variants)
        try:
            for rep in range(args.repeat):
                sp = float(np.median(spotrf_times(A0, 15, work=A)))
                floor.append(sp)
                for k in (keys if rep % 2 == 0 else keys[::-1]):
                    _core.set_gather_prefetch(k[1])
                    c = time.process_time()
                    variants[k]()
                    t[k].append((time.process_time() - c) / nstar)
                    ratio[k].append(t[k][-1] / sp)
        finally:
            _core.set_gather_prefetch(True)
    say(f"bordered size n = {nb} (median); bare spotrf {np.median(floor) * 1e3:.3f} ms (median of "
        f"{args.repeat} medians of 15); outputs of all six variants bitwise equal: {same}")
    say("variant: per star ms (median), / spotrf of the same repeat: median [quartiles], min")
    for (name, pf) in keys:
        r = np.asarray(ratio[(name, pf)])
        q1, q2, q3 = np.percentile(r, [25, 50, 75])
        say(f"  {name}, prefetch {'on ' if pf else 'off'}: {np.median(t[(name, pf)]) * 1e3:.3f} ms; "
            f"{q2:.3f}x [{q1:.3f}, {q3:.3f}], min {r.min():.3f}x")
    base = np.asarray(ratio[(keys[0][0], True)])
    for (name, pf) in keys[1:]:
        d = np.asarray(ratio[(name, pf)]) - base
        say(f"  paired difference against shift-row major with prefetch, {name}, prefetch "
            f"{'on' if pf else 'off'}: median {np.median(d):+.3f}x [{np.percentile(d, 25):+.3f}, "
            f"{np.percentile(d, 75):+.3f}]")
    if not same:
        raise SystemExit("outputs differ between the layouts")
    return write_result(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
