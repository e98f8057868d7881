"""Where a whole CCD's time goes inside process_ccd: perf (cpu-clock sampling) over one run.

profile_breakdown.py profiles the per-star stage alone (60 stars of a small field, one
thread). This profiles it where it runs: one ``process_ccd`` of the DECam-size CCD of
bench_ccd.py (4094 x 2046, 10,000 stars, real S6 mask and PSF; ``--nstar``), 2 threads by
default, under ``perf record -e cpu-clock``, and sorts the samples of the call by stage:

- stack arithmetic: ``stack_group`` (the sweep's running sums at the CPU's SIMD level);
- stack writes: ``store_row`` and ``copy_stream`` (copying the rows the stamps read into the
  ring, streaming stores; ``copy_stream`` has its own symbol where the compiler does not
  inline it, as since a15e519);
- Cholesky, gather, estimates and solves: as in profile_breakdown.py (the per-star
  factorisation, the covariance lookups in the ring, LAPACK's condition estimates and the
  other BLAS calls);
- cloudcov loop: the rest of cloudcov's own code (pixel classes, stamps, the solve set-up;
  ``[unknown]`` samples inside ``_core``, its functions without an exported symbol,
  are counted here);
- preparation: the kernels that run before the sweeps (``prelim_infill``, the boxcar sums of
  the masks and of each strip);
- other: Python, numpy, libc and the kernel (preparation, PSF stamps, output).

It prints each stage's sampled seconds and share, the star stage's overheads as multiples of
its own Cholesky (the in-situ counterpart of profile_breakdown's ratios to a bare
``spotrf``), and the run's own split from its metadata (``core_seconds_stack``,
``core_seconds_stars``).

Needs Linux ``perf``. Run: python benchmarks/profile_ccd.py [--nstar N] [--threads T] [--out FILE]
"""
from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _provenance import load_note, provenance, write_result  # noqa: E402
from profile_breakdown import is_cloudcov_core, perf_window, symbol_lines, stage as star_stage  # noqa: E402

HERE = pathlib.Path(__file__).parent
STAGES = ("stack arithmetic", "stack writes", "Cholesky", "gather", "cloudcov loop",
          "estimates and solves", "preparation", "other")

CHILD = r"""
import sys, time, warnings
sys.path.insert(0, sys.argv[1])
warnings.simplefilter("ignore")
import bench_ccd, cloudcov as cc
args = bench_ccd.make_ccd(int(sys.argv[2]), 0)
print(f"TIMED_START {time.clock_gettime(time.CLOCK_MONOTONIC):.6f}", flush=True)
out = cc.process_ccd(*args, threads=int(sys.argv[3]), seed=1)
print(f"TIMED_END {time.clock_gettime(time.CLOCK_MONOTONIC):.6f}", flush=True)
m = out.meta["cloudcov"]
print(f"META {m['core_seconds_stack']} {m['core_seconds_stars']} {m['nstrips']}", flush=True)
"""


def stage(sym, dso):
    """Stage of one sample from its symbol and shared object."""
    if is_cloudcov_core(dso):
        if "store_row" in sym or "copy_stream" in sym:
            return "stack writes"
        if ("stack_group" in sym or "group_impl" in sym or "rows_registers" in sym or "needed_end" in sym
                or "StackStream" in sym):
            return "stack arithmetic"
        if "prelim_infill" in sym or "boxcar_sum" in sym:
            return "preparation"
    return star_stage(sym, dso)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nstar", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results" / "profile_ccd.txt"))
    args = ap.parse_args(argv)
    if shutil.which("perf") is None:
        sys.exit("profile_ccd: needs Linux perf (e.g. Debian's linux-perf)")
    lines = [f"{provenance()}; whole-CCD profile (perf record -e cpu-clock, 999 Hz); {load_note()}"]
    ns, top, stdout = perf_window([sys.executable, "-c", CHILD, str(HERE), str(args.nstar), str(args.threads)],
                                  stage, 999, keep_other=True)   # only the process_ccd call
    stack_s, stars_s, nstrips = re.search(r"META (\S+) (\S+) (\S+)", stdout).groups()
    total = sum(ns.values())
    lines.append(f"process_ccd of the DECam CCD (4094 x 2046, {args.nstar} stars, real S6 mask and PSF), "
                 f"{args.threads} threads, {nstrips} strips: {total / 1e9:.1f} s sampled in the call; its "
                 f"metadata: stack sweep {float(stack_s):.1f} core-s, star batches {float(stars_s):.1f} core-s")
    for k in STAGES:
        lines.append(f"  {k:<22s} {ns[k] / 1e9:6.2f} s  {100 * ns[k] / total:5.1f}%")
    chol = ns["Cholesky"]
    star = sum(ns[k] for k in ("Cholesky", "gather", "cloudcov loop", "estimates and solves"))
    lines.append(f"star stage sampled {star / 1e9:.1f} s = {star / chol:.3f} x its own Cholesky: gather "
                 f"{ns['gather'] / chol:.3f}x, cloudcov loop {ns['cloudcov loop'] / chol:.3f}x, estimates and "
                 f"solves {ns['estimates and solves'] / chol:.3f}x (profile_breakdown.py gives the same "
                 f"stages against a bare spotrf)")
    lines.append(f"stack sampled {(ns['stack arithmetic'] + ns['stack writes']) / 1e9:.1f} s: arithmetic "
                 f"{ns['stack arithmetic'] / 1e9:.1f} s, ring writes {ns['stack writes'] / 1e9:.1f} s")
    lines.append("largest symbols (share of the sampled call):")
    lines += symbol_lines(top, total, 14)
    print("\n".join(lines))
    write_result(lines, args.out)


if __name__ == "__main__":
    main()
