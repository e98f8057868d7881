"""What the stack's layout costs the per-star gather: the gather reading the stack, against the
same gather reading a compact copy of each star's entries, under perf, same machine, alternated.

The per-star gather (``detail::build_bordered`` with ``StackCov::fill``) reads, for each stamp
pixel and each later stamp row, Np contiguous stack entries: ~50-100 scattered runs of 132
bytes per matrix column (Np = 33), ~2.4 MB per star from a stack far larger than the caches.
A redesign of the sweep could write every star's entries contiguously instead (one block per
stamp row and shift row). Before building it, this script measures what it could gain: with
``_core.set_gather_compact(True)`` each star's entries are first copied into a compact
per-thread buffer (``StackCov::compact_window``, layout [stamp row][shift row][stamp col][col])
and the gather reads them from there, the same arithmetic in the same order (outputs are
checked bitwise equal). The copy is a symbol of its own, so perf tells it from the gather:

- **gather, stack**: the gather as it runs in production;
- **gather, compact**: the same gather reading entries laid out contiguously, just written by
  the copy (so in L2/L3: an optimistic stand-in for a sweep that wrote them earlier);
- **window copy**: the copy, which reads the stack as the gather does (not part of any design).

``gather, stack - gather, compact`` bounds what contiguous windows could save the gather, as a
share of the Cholesky (both counted in perf's cpu-clock samples of the same run, so the ratio
is immune to the machine's speed changes between runs). The 60 stars of ``profile_perstar.py``
(360 x 360 float32 field, Np = 33, 129 x 129 boxcar, condition guard on, one thread).

Needs Linux ``perf``. Run: python benchmarks/bench_gather_layout.py [--reps R] [--repeat N] [--out FILE]
(writes benchmarks/results/bench_gather_layout.txt)
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _provenance import Report, load_note, provenance  # noqa: E402

HERE = pathlib.Path(__file__).parent
MODES = ("stack", "compact")


def star_call(F, threads=1):
    """One lpi_stars call on the per-star field F (guard on); returns the outputs."""
    from cloudcov import _core
    return _core.lpi_stars(F["st"], F["bim"], F["Np"], F["w"], F["w"], 0, 0, F["img"], F["stars"], F["bad"],
                           F["rows"], F["cols"], F["psfs"], F["flux"], F["circ"], 20.0, False, True, True,
                           threads)


def driver(mode, reps):
    """Child process under perf: the per-star field's stars, reps times, gather in `mode`."""
    from threadpoolctl import threadpool_limits

    from _perstar import perstar_field
    from cloudcov import _core
    F = perstar_field()
    _core.set_gather_compact(mode == "compact")
    with threadpool_limits(1):
        star_call(F)   # warm-up (workspaces, LAPACK buffers)
        print(f"TIMED_START {time.clock_gettime(time.CLOCK_MONOTONIC):.6f}", flush=True)
        for _ in range(reps):
            star_call(F)
        print(f"TIMED_END {time.clock_gettime(time.CLOCK_MONOTONIC):.6f}", flush=True)


def stage_of(sym, dso):
    """profile_breakdown's stages, with the compact copy on its own."""
    from profile_breakdown import is_cloudcov_core, stage
    if is_cloudcov_core(dso) and "compact_window" in sym:
        return "window copy"
    return stage(sym, dso)


def outputs_equal():
    """Star outputs bitwise equal with the gather reading the stack and the compact copy
    (float32 and float64 stacks, one and two threads)."""
    from threadpoolctl import threadpool_limits

    from _perstar import perstar_field
    from cloudcov import _core
    F = perstar_field()
    F64 = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype == np.float32 else v)
           for k, v in F.items()}
    ok = True
    with threadpool_limits(1):
        for field in (F, F64):
            for threads in (1, 2):
                prev = _core.set_gather_compact(False)
                a = star_call(field, threads)
                _core.set_gather_compact(True)
                b = star_call(field, threads)
                _core.set_gather_compact(prev)
                ok &= all(np.array_equal(np.asarray(a[k]), np.asarray(b[k]), equal_nan=True) for k in a)
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10, help="repeats of the 60 stars per profiled run")
    ap.add_argument("--repeat", type=int, default=4, help="alternations of the two layouts")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_gather_layout.txt"))
    ap.add_argument("--driver", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.driver:
        driver(args.driver, args.reps)
        return
    if shutil.which("perf") is None:
        sys.exit("bench_gather_layout: needs Linux perf (e.g. Debian's linux-perf)")
    from profile_breakdown import perf_window
    say = Report()
    say(f"{provenance()}; {load_note()}")
    say(f"per-star gather reading the stack or a compact copy of each star's entries; perf record -e "
        f"cpu-clock, {args.repeat} alternations of {args.reps} x 60 stars (one thread, float32, guard on); "
        f"sampled CPU as a share of the Cholesky's samples in the same run")
    say(f"star outputs bitwise equal with either layout (float32 and float64, 1 and 2 threads): "
        f"{outputs_equal()}")
    share = {m: {"gather": [], "window copy": [], "stars": []} for m in MODES}
    for rep in range(args.repeat):
        for mode in (MODES if rep % 2 == 0 else MODES[::-1]):
            ns, _, _ = perf_window([sys.executable, __file__, "--driver", mode, "--reps", str(args.reps)],
                                   stage_of, 4999)
            chol = ns["Cholesky"]
            share[mode]["gather"].append(ns["gather"] / chol)
            share[mode]["window copy"].append(ns["window copy"] / chol)
            share[mode]["stars"].append(sum(v for k, v in ns.items() if k not in ("other", "window copy")) / chol)
    med = {m: {k: statistics.median(v) for k, v in share[m].items()} for m in MODES}
    for m in MODES:
        say(f"gather reading the {m:<7s}: gather {med[m]['gather']:.3f} x Cholesky "
            f"(runs {', '.join(f'{v:.3f}' for v in share[m]['gather'])}); window copy "
            f"{med[m]['window copy']:.3f}; star calls without the copy {med[m]['stars']:.3f}")
    saved = [a - b for a, b in zip(share["stack"]["gather"], share["compact"]["gather"])]
    say(f"=> contiguous windows could save the gather at most {statistics.median(saved):.3f} x the Cholesky "
        f"(paired by alternation: {', '.join(f'{v:.3f}' for v in saved)}), the compact entries being "
        f"fresh in cache; the gather's remaining {med['compact']['gather']:.3f} x is its work per entry "
        f"and the matrix writes")
    say.write(args.out)


if __name__ == "__main__":
    main()
