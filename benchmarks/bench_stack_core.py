"""Is the stack sweep's arithmetic bound by the cache holding its running sums, or by the core?

The sweep (``cpp/src/shift_stack_impl.inc``) keeps, per shift row, vertical sums of
(out_cols + wcol - 1) input columns x 72 lanes in double: 387 KB for a DECam strip
(544 output columns, wcol = 129), in L2, not L1. Each output row takes wcol + out_cols - 1
column steps (the first wcol start the row's running sum), each updating one column's 65
sums and, after the first wcol, emitting one output pixel's 65 values.

This script times the arithmetic alone (``_core.stack_sweep_compute``: rows computed, never
stored; one thread; Np = 33) for strips whose sums live in L2 or in L1, as the difference
between a tall and a short tile (so the first output row, a full boxcar sum, cancels), and
reports ns per column step and lane and ns per stack value. Equal per-step costs for L1 and
L2 mean the sweep is bound by the core's load and floating-point ports, not by where the
sums are; the production strip's per-value cost is then its per-step cost times
(out_cols + wcol - 1) / out_cols.

Run: python benchmarks/bench_stack_core.py [--repeat R] [--out FILE]
(writes benchmarks/results/bench_stack_core.txt)
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

from cloudcov import _core

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _provenance import Report, load_note, provenance  # noqa: E402

NP = 33
LANES = 2 * NP - 1
#: (label, output columns, boxcar width)
SHAPES = (("DECam strip (544 columns, boxcar 129): sums 387 KB, L2", 544, 129),
          ("same width, boxcar 3: sums 314 KB, L2", 544, 3),
          ("40 columns, boxcar 3: sums 24 KB, L1", 40, 3))


def seconds(tile, w):
    t = time.process_time()
    n = _core.stack_sweep_compute(tile, NP, w, w, 1)
    return time.process_time() - t, n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bench_stack_core.txt"))
    args = ap.parse_args(argv)
    say = Report()
    say(f"{provenance()}; {load_note()}")
    say(f"stack arithmetic alone, Np = {NP} ({LANES} lanes), one thread, tall minus short tile, "
        f"{args.repeat} repeats alternating the shapes; median ns per column step and lane, per value")
    rng = np.random.default_rng(0)
    tiles = {}
    for label, ocol, w in SHAPES:
        rows = (400, 400 + max(400, 800000 // (ocol + w)))   # ~0.1-0.3 s of work between them
        tiles[label] = [(rng.standard_normal((r, ocol + NP - 1 + w - 1)) * 20 + 1000).astype(np.float32)
                        for r in rows]
    step = {label: [] for label, _, _ in SHAPES}
    value = {label: [] for label, _, _ in SHAPES}
    for rep in range(args.repeat):
        for label, ocol, w in (SHAPES if rep % 2 == 0 else SHAPES[::-1]):
            (t0, n0), (t1, n1) = (seconds(t, w) for t in tiles[label])
            dv = n1 - n0                      # stack values of the extra rows
            rows = dv // ((ocol + 0) * NP * LANES)
            steps = rows * NP * (w + ocol - 1) * LANES
            step[label].append((t1 - t0) / steps * 1e9)
            value[label].append((t1 - t0) / dv * 1e9)
    for label, ocol, w in SHAPES:
        s, v = np.asarray(step[label]), np.asarray(value[label])
        say(f"  {label}: {np.median(s):.3f} ns per step and lane [{np.percentile(s, 25):.3f}, "
            f"{np.percentile(s, 75):.3f}], {np.median(v):.3f} ns per value "
            f"(steps per value {(w + ocol - 1) / ocol:.3f})")
    ref = np.asarray(step[SHAPES[2][0]])
    for label, _, _ in SHAPES[:2]:
        r = np.asarray(step[label]) / ref
        say(f"  per-step cost against the L1 case, {label.split(':')[0]}: x{np.median(r):.3f} "
            f"[{np.percentile(r, 25):.3f}, {np.percentile(r, 75):.3f}] (paired by repeat)")
    return say.write(args.out)


if __name__ == "__main__":
    sys.exit(main())
