"""The preliminary infill of a full DECam CCD: cloudcov.prelim_infill against a plain numpy/scipy
implementation of the same rounds, in the same process.

Input: the residual of bench_ccd.py's synthetic DECam CCD (4094 x 2046, 10,000 stars; model -
image, float32) under its real S6 dq mask (5.8% of the pixels, with runs that need all 8
rounds of the default schedule: width 19 growing by 1.4, more than 10 good pixels). The
reference is tests/lpi_reference.py's ``prelim_infill`` (a ``scipy.ndimage.correlate`` of the
zeroed image and of the good-pixel indicator over the whole image in every round), the
cloudcov call is the public ``cloudcov.prelim_infill`` (which runs each round's boxcar sums
only along the rows that still hold a masked pixel, as far as the last of them). Both are
timed by process CPU time (one thread each), median of ``--repeats``; the results are
compared pixel by pixel.

Run: python benchmarks/bench_infill.py [--repeats 5] [--out FILE]
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _provenance import Report, load_note, provenance  # noqa: E402


def cpu_median(fn, repeats):
    """(median process CPU seconds of ``repeats`` calls of fn, the last result)."""
    ts = []
    for _ in range(repeats):
        t = time.process_time()
        out = fn()
        ts.append(time.process_time() - t)
    return float(np.median(ts)), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bench_infill.txt"))
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import cloudcov as cc
    from bench_ccd import make_ccd
    from numpy_reference import prelim_infill_numpy

    say = Report()
    say(f"{provenance()}; preliminary infill benchmark; {load_note()}")
    image, model, sky, cat, psf, gain, dq = make_ccd(10000, 0)
    resid = np.subtract(model, image, dtype=np.float32)
    bad = dq != 0
    say(f"DECam CCD residual {resid.shape[0]} x {resid.shape[1]} float32, real S6 dq mask: "
        f"{int(bad.sum())} masked pixels ({100 * bad.mean():.1f}%)")
    t_cc, res = cpu_median(lambda: cc.prelim_infill(resid, bad), args.repeats)
    say(f"cloudcov.prelim_infill: {t_cc:.3f} core-s (median of {args.repeats}), {res.rounds} rounds, "
        f"last window {res.widths[0]} x {res.widths[1]}, {res.n_fallback} pixels left to the median")
    t_np, (ref32, nround) = cpu_median(lambda: prelim_infill_numpy(resid, bad), args.repeats)
    assert nround == res.rounds
    diff = np.abs(res.image.astype(np.float64) - ref32.astype(np.float64))
    ulp = np.spacing(np.abs(ref32)).astype(np.float64)
    say(f"numpy reference (numpy_reference.prelim_infill_numpy, cumulative-sum boxcars per round): "
        f"{t_np:.3f} core-s (median of {args.repeats})")
    same = int(np.sum(diff[bad] == 0))
    rest = "" if same == int(bad.sum()) else (
        f", the rest within {float(np.max(diff[bad] / ulp[bad])):.1f} ulp (summation order)")
    say(f"speed ratio x{t_np / t_cc:.1f}; infilled pixels equal to the reference's float32 value: "
        f"{same} of {int(bad.sum())}{rest}")
    return say.write(args.out)


if __name__ == "__main__":
    sys.exit(main())
