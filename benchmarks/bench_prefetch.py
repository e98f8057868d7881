"""What the per-star gather's prefetch gains on this CPU: process_ccd with it on and off, same process.

The gather (``StackCov::fill``) reads ~2.5 MB of scattered stack lines per star from memory;
``StackCov::prefetch`` asks for the lines of the column after next (x86 ``prefetcht1``, into
L2). ``_core.set_gather_prefetch`` switches it off for a benchmark; results never depend on it
(checked here: every output column bitwise equal). Runs process_ccd (2 threads by default)
on the 768 x 768 flat field (300 stars) and on the DECam-size CCD (10,000 stars, real S6 mask
and PSF) of bench_ccd.py, alternating on and off ``--repeat`` times, and prints the medians of
the star batches' core-seconds (``meta["cloudcov"]["core_seconds_stars"]``) and their ratio.

``--switch stack-writes`` does the same for the stack sweep's writes
(``_core.set_stack_write_read_only``: only the ring entries the stamps read, each row summed
only as far as its last read column; or every entry computed and written) and compares the
stack sweep's core-seconds (``core_seconds_stack``); ``--switch stack-tail`` likewise for the
AVX-512 row loop's scalar last lane (``_core.set_stack_scalar_tail``: Np = 33's 65 shifts as
8 vectors and a scalar, or as 9 vectors, the last with 7 padding lanes); ``--switch
stack-lines`` for the ring writes of only the cache lines holding the slots the stamps read in
each read column (``_core.set_stack_write_windows``; off: every slot of the read columns);
``--switch stack-stage`` for the AVX-512 row loop asking for its staging row's lines for writing
a few columns ahead (``_core.set_stack_stage_prefetch``); ``--switch stack-aligned`` for the
AVX-512 row loop reading its shifted rows by aligned loads and a two-source permute instead of
unaligned loads that mostly span two cache lines (``_core.set_stack_aligned_loads``); ``--switch
stack-streams`` for the sweep's copies into the ring by the widest streaming store of the SIMD
level (64 bytes at avx512, 32 at avx2) instead of 16-byte ones (``_core.set_stack_wide_streams``).
The order of on and off swaps every repeat.

Run: python benchmarks/bench_prefetch.py [--switch prefetch|stack-writes|stack-tail|stack-lines|stack-stage|stack-aligned|stack-streams]
[--repeat R] [--threads T] [--no-decam] [--out FILE] (writes benchmarks/results/bench_prefetch.txt)
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

import cloudcov as cc
from cloudcov import _core

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _provenance import Report, load_note, provenance  # noqa: E402
from bench_ccd import make_ccd, make_flat  # noqa: E402

COLUMNS = ("cflux", "dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2", "kcond", "kpred", "dnt")


#: switch name -> (setter, what it is, the stage it speeds up: meta key and label)
SWITCHES = {
    "prefetch": (_core.set_gather_prefetch, "gather prefetch", "stars", "star batches"),
    "stack-writes": (_core.set_stack_write_read_only, "stack writes of the read entries only",
                     "stack", "stack sweep"),
    "stack-tail": (_core.set_stack_scalar_tail, "scalar last lane of the AVX-512 stack rows",
                   "stack", "stack sweep"),
    "stack-lines": (_core.set_stack_write_windows,
                    "stack writes of the lines holding the read slots only", "stack", "stack sweep"),
    "stack-stage": (_core.set_stack_stage_prefetch,
                    "prefetchw of the AVX-512 stack rows' staging row", "stack", "stack sweep"),
    "stack-aligned": (_core.set_stack_aligned_loads,
                      "aligned loads and permutes for the AVX-512 stack rows' shifted rows",
                      "stack", "stack sweep"),
    "stack-streams": (_core.set_stack_wide_streams,
                      "widest streaming stores (not 16-byte ones) for the stack's ring writes",
                      "stack", "stack sweep"),
}


def run(args, threads, on, switch="prefetch"):
    setter = SWITCHES[switch][0]
    setter(on)
    try:
        t = time.process_time()
        out = cc.process_ccd(*args, threads=threads, seed=1, convention="crowdsource")
        cpu = time.process_time() - t
    finally:
        setter(True)
    m = out.meta["cloudcov"]
    return dict(cpu=cpu, stars=m["core_seconds_stars"], stack=m["core_seconds_stack"],
                written=m["stack_values_written"], computed=m["stack_values"],
                cols={c: np.asarray(out[c]) for c in COLUMNS})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--switch", choices=sorted(SWITCHES), default="prefetch")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-decam", action="store_true", help="only the flat field")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bench_prefetch.txt"))
    args = ap.parse_args(argv)
    say = Report()

    _, what, key, label = SWITCHES[args.switch]
    say(f"{provenance()}; {what} on/off, {args.threads} threads, {args.repeat} alternations; "
        f"{load_note()}")
    fields = [("flat field 768x768, 300 stars", make_flat()[:7])]
    if not args.no_decam:
        fields.append(("DECam CCD 4094x2046, 10000 stars, S6 mask, psf_r", make_ccd(10000, 0)))
    for name, inputs in fields:
        run(inputs, args.threads, True, args.switch)   # warm-up (imports, first-touch of the buffers)
        res = {True: [], False: []}
        for rep in range(args.repeat):
            for on in ((False, True) if rep % 2 == 0 else (True, False)):
                res[on].append(run(inputs, args.threads, on, args.switch))
        same = all(np.array_equal(a["cols"][c], b["cols"][c], equal_nan=True)
                   for a in res[True] for b in res[False] for c in COLUMNS)
        med = {on: {k: float(np.median([r[k] for r in res[on]]))
                    for k in ("cpu", "stars", "stack", "written", "computed")} for on in res}
        other, olabel = ("stack", "stack sweep") if key == "stars" else ("stars", "star batches")
        say(f"{name}: {label} {med[False][key]:.2f} core-s without the {what}, "
            f"{med[True][key]:.2f} with (x{med[False][key] / med[True][key]:.2f}); whole "
            f"process_ccd {med[False]['cpu']:.2f} -> {med[True]['cpu']:.2f} core-s; {olabel} "
            f"{med[False][other]:.2f} / {med[True][other]:.2f}; stack values written to the ring "
            f"{med[False]['written'] / 1e9:.3f} G / {med[True]['written'] / 1e9:.3f} G of "
            f"{med[True]['computed'] / 1e9:.2f} G computed; outputs bitwise equal: {same}")
        say(f"  {label} per run, off / on: " + ", ".join(
            f"{a[key]:.2f}/{b[key]:.2f}" for a, b in zip(res[False], res[True])))
        if not same:
            raise SystemExit(f"outputs differ with and without the {what}")
    return say.write(args.out)


if __name__ == "__main__":
    sys.exit(main())
