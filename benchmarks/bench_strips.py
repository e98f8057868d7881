"""Strip width vs stack cost measured inside process_ccd (issue 14 item 3).

Runs benchmarks/bench_ccd.py (4094 x 2046 CCD, real S6 mask and PSF, 50 stars so that the
stack dominates) in a fresh process per stack budget; the budget sets the number of strips
(cloudcov.tiling.plan_strips: the fewest strips whose ring holds Np + 16 rows) and so the
strip width, i.e. the size of each shift row's running sums ((out_cols + 128) x 72 doubles) and
staging row (out_cols x 65 floats) that the sweep keeps hot. Prints the in-situ stack
core-seconds per CCD for each width.

Then the strip width at 10,000 stars (budgets of 4, 6, 8 and 10 strips), and the ring length
at a fixed width (4 strips): the 10,000-star CCD with a ring of
Np + 16 (default), Np + 48 and Np + 112 rows (cloudcov.tiling.RING_EXTRA_ROWS), budgets
raised so that the strips stay 544 columns wide. A longer ring means fewer, longer rounds
of stack rows between star batches (each round reloads every shift row's running sums).

The widths are run in two passes, in turn, because this machine's timings drift.

Run: python benchmarks/bench_strips.py [--out FILE]   (default benchmarks/results/bench_strips.txt)
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _provenance import Report, load_note, provenance  # noqa: E402

import cloudcov.tiling  # noqa: E402
from cloudcov.tiling import plan_strips  # noqa: E402

BUDGETS_MIB = [900, 768, 230, 120]
BUDGETS_10K_MIB = [256, 160, 120, 100]
RING_EXTRA = [16, 48, 112]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "results" / "bench_strips.txt"))
    args = ap.parse_args(argv)
    say = Report()

    say(f"{provenance()}; strip-width benchmark (4094 x 2046, 50 stars); {load_note()} (run nice'd)")
    for rep, mib in [(r, m) for r in range(2) for m in BUDGETS_MIB]:
        strips = plan_strips((0, 4094), (0, 2046), max_memory=mib << 20)
        width = strips[0].col1 - strips[0].col0 + 32
        out = subprocess.run([sys.executable, str(HERE / "bench_ccd.py"), "--nstar", "50", "--max-memory",
                              str(mib << 20), "--no-reference", "--out", "/dev/null"],
                             check=True, capture_output=True, text=True).stdout
        res = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
        acc_kib = (width + 128) * 72 * 8 / 1024   # vertical sums of the strip's input columns
        say(f"pass {rep + 1}: budget {mib:4d} MiB: {res['nstrips']} strip(s) of {width} output columns (running sums "
            f"{acc_kib:.0f} KiB + staging {width * 65 * 4 / 1024:.0f} KiB per shift row): stack "
            f"{res['stack']:.1f} core-s in situ, whole CCD {res['core_s']:.1f} core-s, peak RSS "
            f"{res['rss_gib']:.2f} GiB")
    say()
    say("strip width at 10,000 stars (default ring Np + 16 rows), two passes in turn:")
    for rep, mib in [(r, m) for r in range(2) for m in BUDGETS_10K_MIB]:
        strips = plan_strips((0, 4094), (0, 2046), max_memory=mib << 20)
        width = strips[0].col1 - strips[0].col0 + 32
        out = subprocess.run([sys.executable, str(HERE / "bench_ccd.py"), "--max-memory", str(mib << 20),
                              "--no-reference", "--out", "/dev/null"],
                             check=True, capture_output=True, text=True).stdout
        res = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
        say(f"pass {rep + 1}: budget {mib:4d} MiB: {res['nstrips']} strips of {width} output columns "
            f"(running sums {(width + 128) * 72 * 8 / 1024:.0f} KiB per shift row): stack "
            f"{res['stack']:.1f} core-s in situ, star batches {res['stars']:.1f}, whole CCD "
            f"{res['core_s']:.1f} core-s, peak RSS {res['rss_gib']:.2f} GiB")
    say()
    say("ring length at 4 strips of 544 output columns, 10,000 stars (stars interleaved with the "
        "stack rounds), two passes:")
    nslot = 33 * 65
    for rep in range(2):
        for extra in RING_EXTRA:
            mib = -(-(33 + extra) * 544 * nslot * 4 // (1 << 20))   # exactly 4 strips' ring
            default, cloudcov.tiling.RING_EXTRA_ROWS = cloudcov.tiling.RING_EXTRA_ROWS, extra
            strips = plan_strips((0, 4094), (0, 2046), max_memory=mib << 20)   # as the child plans
            cloudcov.tiling.RING_EXTRA_ROWS = default
            assert len(strips) == 4 and strips[0].ring_rows == 33 + extra, (extra, strips[0])
            out = subprocess.run([sys.executable, str(HERE / "bench_ccd.py"), "--max-memory",
                                  str(mib << 20), "--ring-extra", str(extra), "--no-reference",
                                  "--out", "/dev/null"],
                                 check=True, capture_output=True, text=True).stdout
            res = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
            rounds = next(l for l in out.splitlines() if "sweep rounds" in l)
            rounds = int(rounds.split(" sweep rounds")[0].rsplit(" ", 1)[1])
            say(f"pass {rep + 1}: ring Np + {extra:3d} rows ({mib} MiB): {rounds} rounds, stack "
                f"{res['stack']:.1f} core-s in situ, star batches {res['stars']:.1f} core-s, whole CCD "
                f"{res['core_s']:.1f} core-s, peak RSS {res['rss_gib']:.2f} GiB")
    say.write(args.out)


if __name__ == "__main__":
    main()
