"""Where a star's time goes: perf (cpu-clock sampling) over the per-star stage, sorted by stage.

Runs ``profile_perstar.py REPS guard noref`` (60 stars of a 360 x 360 float32 field, Np=33,
129 x 129 boxcar, ~100 hidden pixels, one thread) under ``perf record -e cpu-clock``, adds the
sampled CPU time of every symbol into the stages below and divides by the number of star
calls; then times the same stars against a bare ``spotrf`` of the median bordered size in a
second run (``profile_perstar.py REPS``), so the stages can be read against the floor, and
in a third run (``profile_perstar.py REPS both``) what the condition guard costs: the stars
with and without it, alternated, and the ``strsv`` its condition estimates are made of:

- Cholesky: the kernels that ``?potrf`` runs (scipy's OpenBLAS: ``sgemm``/``strsm``/``ssyrk``/
  ``spotf2`` and their packing copies; with ``CLOUDCOV_LAPACK=mkl``, MKL's level-3 and
  factorisation routines; the small ``?potrs`` on the hidden block included);
- gather: the bordered matrix's assembly, ``detail::build_bordered`` (since bb9dc82; the
  compiler inlines ``StackCov::fill`` into it): the covariance lookups in the stack, their
  prefetch, the matrix writes, the run tables and C_kk's column sums; and any ``StackCov``
  symbol left out of line;
- cloudcov loop: the rest of cloudcov's own code (stamps, pixel classes, diag(P), the solve
  set-up, result arrays);
- estimates and solves: cloudcov's condition-estimate loops around LAPACK (``inv_norm2_est``
  with its ``dot_fixed``, ``inv_norm1_est``, ``tri_rcond1``) and the other OpenBLAS / LAPACK routines (``?laic1`` with ``?dot`` and one
  ``?trsv`` for the C_kk condition estimate, ``?lacn2`` with ``?trsv`` for P's,
  ``?trsv``/``?gemv`` for z and the prediction, ...);
- other: Python, the kernel, libc (mostly the set-up of the field and its stack, not per star).

Needs Linux ``perf`` (``perf stat -e cpu-clock true`` must work). Sampling shows where the CPU
is, not why: the gather is bound by its scattered reads of the stack (see README).

Run: python benchmarks/profile_breakdown.py [REPS] [--out FILE]
"""
from __future__ import annotations

import argparse
import collections
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _provenance import provenance, write_result  # noqa: E402

HERE = pathlib.Path(__file__).parent
NSTAR = 60   # stars per call in profile_perstar.py

CHOLESKY = re.compile(r"^(sgemm_|strsm_|ssyrk|spotf2|spotrf|spotrs|slauum|strmm_)")
MKL_SOLVES = re.compile(r"(trsv|gemv|lacn2|lacon|laic1|dot|axpy|scal|amax|asum|nrm2|copy_?$)")
#: the guard's fixed-order dot product (simd.hpp): its dispatcher and its per-level bodies
DOT_FIXED = re.compile(r"^(float |double )?cloudcov::(\w+::)?dot_fixed\b")
STAGES = ("Cholesky", "gather", "cloudcov loop", "estimates and solves", "other")


def is_cloudcov_core(dso):
    """Whether a sample's shared object is cloudcov's extension (``_core.cpython-*.so``), by its
    file name: MKL's ``libmkl_core.so`` also holds ``_core`` (its LAPACK drivers, ``?laic1``
    among them, had been counted as cloudcov's loop)."""
    return pathlib.PurePosixPath(dso.strip("()[] ")).name.startswith("_core.")


def stage(sym, dso):
    """Stage of one sample from its symbol and shared object."""
    if is_cloudcov_core(dso):
        if sym.startswith(("cloudcov::StackCov", "cloudcov::detail::build_bordered")):
            return "gather"
        if sym.startswith(("cloudcov::detail::inv_norm", "cloudcov::detail::tri_rcond")) or \
                DOT_FIXED.match(sym):
            return "estimates and solves"
        return "cloudcov loop"
    if "openblas" in dso and "openblas64" not in dso and "thread_server" not in sym:   # scipy's, the one _core calls
        return "Cholesky" if CHOLESKY.match(sym) else "estimates and solves"
    if "libmkl" in dso:   # CLOUDCOV_LAPACK=mkl: MKL's internal names (mkl_blas_*, mkl_lapack_*)
        return "estimates and solves" if MKL_SOLVES.search(sym) else "Cholesky"
    return "other"


def perf_window(cmd, stage_of, freq, keep_other=False):
    """Run ``cmd`` under ``perf record -e cpu-clock -F freq`` and add up the sampled CPU (ns) of
    the samples between the TIMED_START and TIMED_END lines it prints (CLOCK_MONOTONIC).

    Returns (ns per stage, ns per (stage, symbol) -- without stage "other" unless keep_other --,
    the command's stdout); ``stage_of(sym, dso)`` names each sample's stage.
    """
    with tempfile.TemporaryDirectory() as tmp:
        data = pathlib.Path(tmp) / "perf.data"
        run = subprocess.run(["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-e", "cpu-clock", "-F", str(freq),
                              "-o", str(data), "--", *cmd], capture_output=True, text=True, check=True)
        script = subprocess.run(["perf", "script", "-i", str(data), "-F", "time,period,ip,sym,dso"],
                                capture_output=True, text=True, check=True).stdout
    t0 = float(re.search(r"TIMED_START ([\d.]+)", run.stdout).group(1))
    t1 = float(re.search(r"TIMED_END ([\d.]+)", run.stdout).group(1))
    ns = collections.Counter()
    top = collections.Counter()
    for line in script.splitlines():
        m = re.match(r"\s*([\d.]+):\s+(\d+)\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
        if not m or not t0 <= float(m.group(1)) <= t1:   # only the timed window
            continue
        period, sym, dso = int(m.group(2)), re.sub(r"\+0x[0-9a-f]+$", "", m.group(3)), m.group(4)
        st = stage_of(sym, dso)
        ns[st] += period
        if keep_other or st != "other":
            top[(st, sym[:70])] += period
    return ns, top, run.stdout


def symbol_lines(top, total, n):
    """The n largest (stage, symbol) entries of ``top`` as report lines, in % of ``total``."""
    return [f"  {100 * v / total:5.1f}%  {st:<20s} {sym}" for (st, sym), v in top.most_common(n)]


def perf_samples(reps):
    """ns of CPU per stage over the run of profile_perstar.py REPS guard noref, and its output."""
    ns, top, stdout = perf_window([sys.executable, str(HERE / "profile_perstar.py"), str(reps), "guard", "noref"],
                                  stage, 4999)
    out = "; ".join(x for x in stdout.strip().splitlines() if not x.startswith("TIMED_"))
    return ns, top, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reps", nargs="?", type=int, default=20, help="repeats of the 60 stars")
    ap.add_argument("--out", default=str(HERE / "results" / "profile_breakdown.txt"))
    args = ap.parse_args(argv)
    if shutil.which("perf") is None:
        sys.exit("profile_breakdown: needs Linux perf (e.g. Debian's linux-perf)")
    lines = [provenance() + "; per-star profile (perf record -e cpu-clock, 4999 Hz)"]
    ns, top, out = perf_samples(args.reps)
    calls = args.reps * NSTAR
    lines.append(f"profiled run: {out}")
    timed = subprocess.run([sys.executable, str(HERE / "profile_perstar.py"), str(max(5, args.reps // 2))],
                           capture_output=True, text=True, check=True).stdout.strip()
    lines.append(f"timed run without perf (process CPU; bare spotrf of the median bordered size, same "
                 f"LAPACK, same run): {timed}")
    per_star = float(re.search(r"per star ([\d.]+) ms", timed).group(1))
    floor = float(re.search(r"spotrf ([\d.]+) ms", timed).group(1))
    star_ns = sum(ns[k] for k in STAGES if k != "other")
    lines.append(f"samples in the {calls} timed star calls (one thread): {star_ns / calls / 1e6:.3f} ms "
                 f"per star sampled, other code {ns['other'] / calls / 1e6:.3f} ms; split of the timed "
                 f"{per_star:.2f} ms per star by the sampled shares:")
    for k in STAGES[:-1]:
        share = ns[k] / star_ns
        lines.append(f"  {k:<22s} {100 * share:5.1f}%  {share * per_star:6.3f} ms  "
                     f"= {share * per_star / floor:5.3f} x spotrf")
    lines.append(f"  {'per star':<22s} {'':6s}  {per_star:6.3f} ms  = {per_star / floor:5.3f} x spotrf "
                 f"({floor:.2f} ms)")
    both = subprocess.run([sys.executable, str(HERE / "profile_perstar.py"), str(max(10, args.reps)), "both"],
                          capture_output=True, text=True, check=True).stdout.strip()
    lines.append(f"what the condition guard costs (third run, stars with and without the guard and spotrf "
                 f"alternated; the solves its estimates are made of timed alone): {both}")
    lines.append("largest symbols (share of the sampled star calls):")
    lines += symbol_lines(top, star_ns, 12)
    print("\n".join(lines))
    write_result(lines, args.out)


if __name__ == "__main__":
    main()
