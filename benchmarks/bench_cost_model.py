"""Cost model of one CCD, core-s = a * area + b * nstar + c, and the DECaPS2 extrapolation
(issue 14 item 4).

Runs benchmarks/bench_ccd.py (synthetic CCD, real S6 mask corner and psf_r, fresh process)
for a sweep of image areas and star counts, fits the model by least squares, and
extrapolates to DECaPS2 (1.32e6 CCDs of 4094 x 2046, 34e9 detections; anchor:
CloudCovErr.jl 203k core-h; goal <= 10k core-h).

Run: python benchmarks/bench_cost_model.py [--full RESULT] [--out FILE]
(writes benchmarks/results/bench_cost_model.txt; --full: the bench_ccd.py output whose
10,000-star CCD joins the fit, default benchmarks/results/bench_ccd.txt; the sweep runs
with the LAPACK that CLOUDCOV_LAPACK selects, which should be that of the --full run)
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _provenance import Report, load_note, provenance  # noqa: E402

SWEEP = [((1024, 2046), 50), ((2048, 2046), 2500), ((4094, 2046), 50)]
# plus the full CCD with 10,000 stars of benchmarks/results/bench_ccd.txt (its RESULT line)
DECAPS2_CCDS, DECAPS2_DETECTIONS, CCD_AREA = 1.32e6, 34e9, 4094 * 2046


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", default=str(HERE / "results" / "bench_ccd.txt"),
                    help="bench_ccd.py output of the full 10,000-star CCD")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_cost_model.txt"))
    args = ap.parse_args(argv)
    say = Report()

    say(f"{provenance()}; cost-model sweep; {load_note()} (run nice'd; 2 threads, core-s = process CPU)")
    rows = []
    for (nr, nc), ns in SWEEP:
        out = subprocess.run([sys.executable, str(HERE / "bench_ccd.py"), "--shape", str(nr), str(nc),
                              "--nstar", str(ns), "--no-reference", "--out", "/dev/null"],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
        rows.append(r)
        say(f"{nr} x {nc}, {ns} stars: {r['core_s']:.1f} core-s (stack {r['stack']:.1f}, stars "
            f"{r['stars']:.1f}), peak RSS {r['rss_gib']:.2f} GiB")
    full = pathlib.Path(args.full)
    r = json.loads(next(l for l in full.read_text().splitlines() if l.startswith("RESULT "))[7:])
    rows.append(r)
    say(f"{r['rows']} x {r['cols']}, {r['nstar']} stars: {r['core_s']:.1f} core-s (stack {r['stack']:.1f}, "
        f"stars {r['stars']:.1f}), peak RSS {r['rss_gib']:.2f} GiB (from {full.name})")
    X = np.array([[r["rows"] * r["cols"], r["nstar"], 1.0] for r in rows])
    y = np.array([r["core_s"] for r in rows])
    (a, b, c), *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ np.array([a, b, c])
    say(f"fit: core-s = {a * 1e6:.3f} per Mpix + {b * 1e3:.3f} per 1000 stars + {c:.2f} "
        f"(max |residual| {np.abs(resid).max():.2f} core-s)")
    total = (a * CCD_AREA + c) * DECAPS2_CCDS + b * DECAPS2_DETECTIONS
    say(f"DECaPS2: {DECAPS2_CCDS:.3g} CCDs x {CCD_AREA / 1e6:.2f} Mpix + {DECAPS2_DETECTIONS:.3g} "
        f"detections -> {(a * CCD_AREA + c) * DECAPS2_CCDS / 3600:.0f} + {b * DECAPS2_DETECTIONS / 3600:.0f} "
        f"= {total / 3600:.0f} core-h (goal <= 10k; CloudCovErr.jl 203k)")
    if "floor_stars" in r:   # the full CCD's measured floors (bench_ccd.py's floors())
        per_star = r["floor_stars"] / r["nstar"]
        # the stack's floor: its writes at each core's share of the bandwidth the run's threads
        # get together (at one core's bandwidth where not measured), or its arithmetic alone
        # where bench_ccd.py measured it and it is the larger (the two fully overlapped)
        stack_floor = max(r.get("floor_stack_shared", r["floor_stack"]), r.get("floor_stack_arithmetic", 0.0))
        per_ccd = stack_floor + r["core_s"] - r["stack"] - r["stars"]   # + prep and output as measured
        fl = per_ccd * DECAPS2_CCDS + per_star * DECAPS2_DETECTIONS
        say(f"floor of the same algorithm: {per_star * 1e3:.2f} core-ms per detection (bare spotrf of "
            f"its bordered matrix) and {per_ccd:.1f} core-s per CCD (stack computed and written once: "
            f"the larger of its arithmetic alone and its writes at each core's share of the bandwidth, "
            f"plus prep/output as measured) -> {per_ccd * DECAPS2_CCDS / 3600:.0f} + "
            f"{per_star * DECAPS2_DETECTIONS / 3600:.0f} = {fl / 3600:.0f} core-h; the 10k core-h goal "
            f"is {'below' if fl / 3600 > 1e4 else 'above'} this floor")
    say.write(args.out)


if __name__ == "__main__":
    main()
