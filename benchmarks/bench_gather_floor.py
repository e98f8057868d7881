"""What the per-star gather costs, part by part: its memory trips, its work per entry, the matrix
writes and C_kk's column sums, each timed alone on the same stars as a share of a bare spotrf.

The per-star gather (``detail::build_bordered``) assembles each star's bordered matrix (order
n ~ 782 at the DECaPS2 defaults: ~306,000 entries of the lower triangle) from ~2.4 MB of
scattered stack entries, in runs of up to Np contiguous values. ``_core.gather_probe`` prepares
each star's stamp as the per-star stage does (not timed) and times one traversal alone, in
thread CPU seconds (``cloudcov::gather_probe``, cpp/include/cloudcov/lpi_stars.hpp):

- **gather (stage)**: the gather as the guarded float32 stage runs it, with C_kk's column sums;
- **gather**: the same without the column sums;
- **reads, every entry**: the same runs and prefetch, reading every entry (summed in 8
  independent partial sums), writing nothing;
- **reads, one per line**: the same, reading one entry per 64-byte line the runs span: the
  memory trips of the reads and nothing else;
- **matrix writes**: the entries the gather writes, written (a constant), nothing read;
- **gather into L1**: the gather's reads and arithmetic, its results written into an L1-sized
  buffer instead of the matrix.

The modes are alternated (a different order each repeat), each over all 60 stars in turn, so
that every star's stack entries are cold as in the stage (60 x 2.4 MB is more than any cache
here); the bare ``spotrf`` of the median bordered order is timed between them, and every figure
is given as a share of it (median over the repeats of per-repeat ratios). Checksums first check
that the traversals visit the gather's entries: the reads sum the raw entries the gather reads,
the writes count n (n - 1) / 2 entries, and the L1 variant sums to the gather's own matrix.

The 60 stars of ``profile_perstar.py`` (360 x 360 float32 field, Np = 33, 129 x 129 boxcar,
one thread). Run: python benchmarks/bench_gather_floor.py [--repeat N] [--out FILE]
(writes benchmarks/results/bench_gather_floor.txt)
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _provenance import Report, load_note, provenance  # noqa: E402

HERE = pathlib.Path(__file__).parent
MODES = {0: "gather (stage)", 1: "gather", 2: "reads, every entry", 3: "reads, one per line",
         4: "matrix writes", 5: "gather into L1"}


def field_args(F):
    """The positional arguments of _core.lpi_stars / _core.gather_probe for the field F."""
    return (F["st"], F["bim"], F["Np"], F["w"], F["w"], 0, 0, F["img"], F["stars"], F["bad"],
            F["rows"], F["cols"], F["psfs"], F["flux"], F["circ"], 20.0)


def checks(F, out):
    """The checksums of the probe's traversals against the gather's own matrix and counts
    (out: the field's lpi_stars outputs); returns (ok, message)."""
    from cloudcov import _core
    args = field_args(F)
    n = (np.asarray(out["kcond"]) + np.asarray(out["kpred"])).astype(np.int64)
    _, c1 = _core.gather_probe(*args, 1, True)
    _, c4 = _core.gather_probe(*args, 4, True)
    _, c5 = _core.gather_probe(*args, 5, True)
    writes = np.array_equal(c4, n * (n - 1) / 2)
    l1 = np.allclose(c5, c1, rtol=1e-9, atol=0)
    return writes and l1, (f"entries written = n (n - 1) / 2 for every star: {writes}; the L1 variant's "
                           f"results sum to the gather's matrix: {l1}")


def measure(F, nb, repeat):
    """The modes alternated `repeat` times, with the bare spotrf of order nb before and after
    each round: (ratios {mode: [per repeat x spotrf]}, ms {mode: [...]}, spotrf ms [...])."""
    from threadpoolctl import threadpool_limits

    from _perstar import spd_matrix, spotrf_times
    from cloudcov import _core
    fa = field_args(F)
    A0 = spd_matrix(nb, np.random.default_rng(1))
    work = A0.copy(order="F")
    ratio = {m: [] for m in MODES}
    ms = {m: [] for m in MODES}
    spotrf = []
    order = list(MODES)
    with threadpool_limits(1):
        _core.gather_probe(*fa, 0)   # warm-up (first touch of the workspaces)
        for rep in range(repeat):
            rot = order[rep % len(order):] + order[:rep % len(order)]
            t_ref = float(np.median(spotrf_times(A0, 9, work=work)))
            for m in rot:
                t = float(np.mean(_core.gather_probe(*fa, m)))
                ms[m].append(1e3 * t)
                ratio[m].append(t / t_ref)
            t_ref2 = float(np.median(spotrf_times(A0, 9, work=work)))
            spotrf.append(1e3 * 0.5 * (t_ref + t_ref2))
            for m in MODES:   # against the mean of the spotrf timed before and after
                ratio[m][-1] *= t_ref / (0.5 * (t_ref + t_ref2))
    return ratio, ms, spotrf


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9, help="alternations of the modes")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_gather_floor.txt"))
    args = ap.parse_args(argv)
    from _perstar import perstar_field
    from cloudcov import _core
    F = perstar_field()
    say = Report()
    say(f"{provenance()}; {load_note()}")
    out = _core.lpi_stars(*field_args(F), False, True, True, 1)
    nb = int(np.median(out["kcond"]) + np.median(out["kpred"]))
    ok, msg = checks(F, out)
    say(f"per-star gather split by parts; 60 stars, float32, one thread, thread CPU time; {args.repeat} "
        f"alternations of the modes; checks: {msg}")
    if not ok:
        say.write(args.out)
        sys.exit("bench_gather_floor: a traversal's checksum is wrong")
    ratio, ms, spotrf = measure(F, nb, args.repeat)
    med = {m: statistics.median(ratio[m]) for m in MODES}
    say(f"bare spotrf of the median bordered order n = {nb}: {statistics.median(spotrf):.3f} ms "
        f"(median of the repeats; range {min(spotrf):.3f}-{max(spotrf):.3f})")
    for m, name in MODES.items():
        say(f"  {name:<22s} {statistics.median(ms[m]):6.3f} ms per star = {med[m]:.3f} x spotrf "
            f"(per repeat {', '.join(f'{v:.3f}' for v in ratio[m])})")

    def paired(a, b):
        return statistics.median([x - y for x, y in zip(ratio[a], ratio[b])])

    lines_writes = [x + y for x, y in zip(ratio[3], ratio[4])]
    say(f"parts (medians of per-repeat differences, x spotrf): C_kk's column sums {paired(0, 1):.3f}; "
        f"matrix writes in the gather (gather - gather into L1) {paired(1, 5):.3f}; "
        f"arithmetic beyond reading every entry (gather into L1 - reads) {paired(5, 2):.3f}; "
        f"reading every entry beyond one per line {paired(2, 3):.3f}")
    g = ratio[1]
    say(f"=> floors: the reads' trips to memory alone (one read per line) {med[3]:.3f} x spotrf, with the "
        f"matrix writes alone added {statistics.median(lines_writes):.3f}; the gather without the column "
        f"sums is {statistics.median([a / b for a, b in zip(g, ratio[3])]):.2f} x the first and "
        f"{statistics.median([a / b for a, b in zip(g, lines_writes)]):.2f} x the second; the gather as "
        f"the stage runs it (with the sums) {statistics.median([a / b for a, b in zip(ratio[0], lines_writes)]):.2f} x "
        f"the second")
    say.write(args.out)


if __name__ == "__main__":
    main()
