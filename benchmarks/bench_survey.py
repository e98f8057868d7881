"""Survey-driver benchmark: throughput of ``run_survey`` per engine and worker count, the
per-task overhead against a serial loop of ``run_exposure``, and a DECaPS2 cost model.

The survey is the simulated one of the tests (tests/_survey_files.py): N small exposures made
from the real DECam cutouts N6/N2 (fitted by the real crowdsource) and the embedded Horsehead
example (S1), with Np=9, 21 x 21 boxcar. For each engine (local, dask, parsl: those
installed) and 1 and 2 workers (1 thread each) it runs the whole survey in a fresh output
folder and reports wall time, engine start-up, CCDs/s and stars/s after start-up, the 2-worker
speed-up and the load balance (task-seconds / (workers x wall)). The per-task overhead is
``(wall_1worker - startup - serial_wall) / tasks``, given relative to this survey's CCD cost
(tiny CCDs: it inflates the ratio) and to a DECam-size CCD from
benchmarks/results/bench_ccd.txt and bench_ccd_50stars.txt.

Cost model (DECaPS2: 1.32e6 CCDs, 34e9 detections): core-seconds = CCDs x c_ccd + stars x
c_star + tasks x overhead, with c_ccd and c_star from the two DECam-size runs (50 and 10,000
stars) and the overhead measured here; anchor CloudCovErr.jl 203k core-hours.

Run: python benchmarks/bench_survey.py [--exposures 20] [--repeats 1]
Writes benchmarks/results/bench_survey.txt (needs crowdsourcephoto for the DECam CCDs).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import re
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(HERE))
from _provenance import Report, provenance  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "real"
FAST = dict(Np=9, widx=21)
DECAPS2_CCDS, DECAPS2_STARS, JULIA_CORE_H = 1.32e6, 34e9, 203e3
CCDS_PER_EXPOSURE = 60


def decam_ccd_costs():
    """(c_ccd core-s, c_star core-s) from the committed DECam-size CCD benchmarks."""
    def core_s(name):
        text = (HERE / "results" / name).read_text()
        n = int(re.search(r"4094x2046, (\d+) stars", text).group(1))
        c = float(re.search(r"=> ([\d.]+) core-s per CCD", text).group(1))
        return n, c

    (n1, c1), (n2, c2) = core_s("bench_ccd_50stars.txt"), core_s("bench_ccd.txt")
    c_star = (c2 - c1) / (n2 - n1)
    return c1 - n1 * c_star, c_star, (n1, c1, n2, c2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exposures", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1, help="runs per configuration (median)")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_survey.txt"))
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import importlib.util

    import _survey_files as sf
    from cloudcov.campaign import run_survey
    from cloudcov.survey import run_exposure

    say = Report()

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench_survey_"))
    try:
        exp = None
        if importlib.util.find_spec("crowdsource") is not None:
            exp = sf.make_exposure(REAL, tmp / "exposure")
        sv = sf.make_survey(tmp / "survey", args.exposures, exp)
        say(f"{provenance()}; python {platform.python_version()}; {platform.machine()}; "
            f"{os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.1f}")
        say(f"simulated survey: {args.exposures} exposures, CCDs {' '.join(sv['ccds'])} "
            f"(real DECam cutouts + embedded example), Np=9, 21x21 boxcar, 1 thread per task")

        def serial(out):
            t0 = time.perf_counter()
            c0 = time.process_time()
            nccd = nstar = 0
            for r in sv["rows"]:
                res = run_exposure(r["base"], r["date"], r["filt"], r["vers"], r["basecat"],
                                   out_dir=out, ccdlist=r["ccdlist"].split() or None,
                                   threads=1, progress=False, **FAST)
                nccd += len(res.processed)
                nstar += sum(res.nstars.values())
            return time.perf_counter() - t0, time.process_time() - c0, nccd, nstar

        sv_rows = sv["rows"]
        sv["rows"] = sv_rows[:2]
        serial(tmp / "warm")                       # imports, caches
        sv["rows"] = sv_rows
        runs = [serial(tmp / f"serial{k}") for k in range(args.repeats)]
        s_wall = float(np.median([r[0] for r in runs]))
        s_cpu = float(np.median([r[1] for r in runs]))
        nccd, nstar = runs[0][2], runs[0][3]
        ntask = args.exposures
        say(f"serial loop of run_exposure (in process): {s_wall:.2f} s wall, {s_cpu:.2f} "
            f"core-s CPU for {nccd} CCDs, {nstar} stars -> {nccd / s_wall:.2f} CCDs/s, "
            f"{nstar / s_wall:.0f} stars/s; {s_wall / nccd * 1e3:.0f} ms per CCD")
        say()
        say(f"{'engine':8s} {'workers':>7s} {'wall s':>8s} {'start s':>8s} {'CCDs/s':>8s} "
            f"{'stars/s':>8s} {'balance':>8s} {'task CPU s':>10s} {'driver CPU s':>12s} "
            f"{'overhead/task wall ms':>22s} {'CPU ms':>8s}")
        table = {}
        for engine in ("local", "dask", "parsl"):
            mod = {"dask": "distributed", "parsl": "parsl"}.get(engine)
            if mod and importlib.util.find_spec(mod) is None:
                say(f"{engine:8s} (not installed)")
                continue
            for w in (1, 2):
                res_list = []
                for k in range(args.repeats):
                    out = tmp / f"{engine}{w}_{k}"
                    c0 = time.process_time()
                    res = run_survey(sv["manifest"], out, executor=engine, workers=w,
                                     threads_per_worker=1, progress=False, **FAST)
                    res.driver_cpu = time.process_time() - c0
                    assert not res.failed and res.ccds == nccd, res.summary()
                    res_list.append(res)
                wall = float(np.median([r.seconds for r in res_list]))
                start = float(np.median([r.startup_seconds for r in res_list]))
                work = wall - start
                bal = float(np.median([r.task_seconds / (w * (r.seconds - r.startup_seconds))
                                       for r in res_list]))
                tcpu = float(np.median([r.task_cpu_seconds for r in res_list]))
                dcpu = float(np.median([r.driver_cpu for r in res_list]))
                over = (work - s_wall) / ntask if w == 1 else float("nan")
                # CPU: tasks + driver (its engine threads; for dask the in-process scheduler)
                # minus the serial loop; engine start-up excluded only from wall
                over_cpu = (tcpu + dcpu - s_cpu) / ntask
                table[engine, w] = dict(wall=wall, start=start, work=work, over=over,
                                        over_cpu=over_cpu)
                say(f"{engine:8s} {w:7d} {wall:8.2f} {start:8.2f} {nccd / work:8.2f} "
                    f"{nstar / work:8.0f} {bal:8.2f} {tcpu:10.2f} {dcpu:12.2f} "
                    + (f"{over * 1e3:22.1f}" if w == 1 else f"{'':22s}")
                    + f" {over_cpu * 1e3:8.1f}")
        say()
        c_ccd, c_star, (n1, c1, n2, c2) = decam_ccd_costs()
        decam = c_ccd + c_star * 10000
        per_ccd_here = s_wall / nccd
        per_ccd_cpu = s_cpu / nccd
        for engine in ("local", "dask", "parsl"):
            if (engine, 1) not in table:
                continue
            t1, t2 = table[engine, 1], table[engine, 2]
            for kind, over, per in (("wall", t1["over"], per_ccd_here),
                                    ("CPU", t1["over_cpu"], per_ccd_cpu)):
                say(f"{engine}: per-task overhead ({kind}, 1 worker vs serial loop) "
                    f"{over * 1e3:.1f} ms = {over / per * 100:.1f}% of this survey's "
                    f"{per * 1e3:.0f} ms CCD, {over / decam * 100:.3f}% of a DECam-size CCD "
                    f"({decam:.1f} core-s, 10k stars), "
                    f"{over / CCDS_PER_EXPOSURE / decam * 100:.4f}% per CCD of a 60-CCD "
                    f"exposure task (target < 2%)")
            say(f"{engine}: 2 workers / 1 worker (wall after start-up) = "
                f"x{t1['work'] / t2['work']:.2f} (target >= 1.8)")
        say()
        say(f"cost model (DECam-size CCD benchmarks: {c1:.1f} core-s with {n1} stars, {c2:.1f} "
            f"core-s with {n2} stars => c_ccd = {c_ccd:.2f} core-s per CCD, c_star = "
            f"{c_star * 1e3:.2f} core-ms per star)")
        over = max(table.get(("local", 1), {}).get("over_cpu", 0.0), 0.0)
        ccd_h = DECAPS2_CCDS * c_ccd / 3600
        star_h = DECAPS2_STARS * c_star / 3600
        task_h = DECAPS2_CCDS / CCDS_PER_EXPOSURE * over / 3600
        total = ccd_h + star_h + task_h
        say(f"DECaPS2 ({DECAPS2_CCDS:.3g} CCDs, {DECAPS2_STARS:.3g} detections, "
            f"{DECAPS2_CCDS / CCDS_PER_EXPOSURE:.0f} exposure tasks): {ccd_h / 1e3:.1f}k core-h "
            f"per-CCD + {star_h / 1e3:.1f}k core-h per-star + {task_h:.1f} core-h task overhead "
            f"= {total / 1e3:.1f}k core-h (CloudCovErr.jl: {JULIA_CORE_H / 1e3:.0f}k core-h, "
            f"x{JULIA_CORE_H / total:.1f} less)")
        say(f"load average at end {os.getloadavg()[0]:.1f} (2-core machine shared with other "
            f"jobs: ratios from one run, medians of {args.repeats} repeat(s))")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say.write(args.out)


if __name__ == "__main__":
    main()
