"""Condition-guard rate and float32 accuracy (issue 14 item 2).

For each field, process_ccd runs in float32 (the default) and float64; prints the fraction
of stars the guard re-solved (dnt bit 4), and for the float32 solves it accepted the largest
|cflux32 - cflux64| / dcflux64 and |dcflux32 / dcflux64 - 1| (targets: <= 5% re-solved on
flat synthetic fields; 1e-3 sigma and 1e-5 relative).

Fields: the synthetic flat field (768 x 768, flat 800 ADU sky + Poisson noise, gain 4,
300 Gaussian-PSF stars of 3e3-3e4 ADU, the generator of tests/test_lpi.py), the embedded
example (thr=1000 as in its tests, and the default thr=20), and the real DECam CP cutouts N6
(375 x 280) and N2 (251 x 245) with the real crowdsource fit of tests/_survey_files.py
(needs crowdsourcephoto).

``--ckk-estimate triangular`` (benchmarks only, ``_core.set_guard_triangular_estimate``) judges
C_kk by the square of the cheaper triangular estimate of its Cholesky factor, as the guard
judges P, instead of LAPACK's ?pocon estimate: it shows what that cheaper estimate would do
to the rate of re-solved stars.

Run: python benchmarks/bench_guard.py [--out FILE] [--ckk-estimate {pocon,triangular}]
(default benchmarks/results/bench_guard.txt, pocon)
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
from astropy.table import Table

import cloudcov as cc

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _provenance import load_note, provenance, write_result  # noqa: E402


def fields():
    from test_lpi import synthetic_ccd
    image, model, sky, cat, psf, gain = synthetic_ccd(np.random.default_rng(20221121),
                                                      shape=(768, 768), n=300)
    yield "flat field 768x768, 300 stars", (image, model, sky, cat, psf, gain, None), {}
    ex = cc.example.load_example()
    exargs = (ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"], ex["dq"])
    yield "embedded example (thr=1000)", exargs, dict(thr=1000)
    yield "embedded example (thr=20)", exargs, {}
    try:
        import crowdsource.crowdsource_base  # noqa: F401
    except ImportError:
        print("crowdsourcephoto not installed: DECam cutouts skipped")
        return
    from _survey_files import CUTOUTS, _fit, _read
    real = HERE.parents[1] / "shared" / "data" / "real"
    for ccd in ("N6", "N2"):
        pattern = CUTOUTS[ccd][0]
        im, ivar, dq = (_read(real / pattern.format(kind=k), ccd)[0] for k in ("ooi", "oow", "ood"))
        im = im.astype("f4")
        cat, model, sky, psf, wt = _fit(im, ivar.astype("f4"), dq)
        gain = float(np.nanmedian((im * wt**2)[wt > 0]))
        tab = Table({"x": cat["x"], "y": cat["y"], "flux": cat["flux"]})
        yield f"DECam cutout {ccd} {im.shape[0]}x{im.shape[1]}", (im, model, sky, tab, psf, gain, dq), {}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "results" / "bench_guard.txt"))
    ap.add_argument("--ckk-estimate", choices=("pocon", "triangular"), default="pocon")
    args_ = ap.parse_args(argv)
    from cloudcov import _core
    _core.set_guard_triangular_estimate(args_.ckk_estimate == "triangular")
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    say(f"{provenance()}; guard benchmark, C_kk condition estimate: {args_.ckk_estimate}; {load_note()}")
    for name, args, kw in fields():
        o32 = cc.process_ccd(*args, threads=2, **kw)
        o64 = cc.process_ccd(*args, threads=2, dtype="float64", **kw)
        dnt = np.asarray(o32["dnt"]).astype(int)
        g = dnt & 4 != 0
        kept = (dnt & 68) == 0
        dc = np.max(np.abs(o32["dcflux"][kept] / o64["dcflux"][kept] - 1)) if kept.any() else np.nan
        cf = (np.max(np.abs(o32["cflux"][kept] - o64["cflux"][kept]) / o64["dcflux"][kept])
              if kept.any() else np.nan)
        say(f"{name}: {len(dnt)} stars, guard re-solved {g.sum()} ({100 * g.mean():.1f}%), "
            f"unstable {int(np.sum(dnt & 64 != 0))}; float32 accepted {kept.sum()}: "
            f"max |dcflux32/dcflux64 - 1| {dc:.1e} (target 1e-5), "
            f"max |cflux32 - cflux64|/dcflux {cf:.1e} (target 1e-3)")
    write_result(lines, args_.out)


if __name__ == "__main__":
    main()
