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

The guard judges C_kk by 1 / (||C_kk||_1 rho), rho the Rayleigh quotient of C_kk^-1 at the
incremental (LAPACK ?laic1) approximate smallest singular vector of its factor: a lower bound
on ||C_kk^-1||_2 costing one pass over the factor and one solve. For every star of every
field the benchmark also builds C_kk in Python (``local_covariance``, the star counts on its
diagonal), computes its exact 2-norm condition number (float64 eigenvalues) and prints the
range of estimate / exact for that estimate and for LAPACK ?pocon's 1-norm estimate
1 / (||C_kk||_1 est||C_kk^-1||_1) (the guard before 2026-12), both from the float32 factor
(``_core.guard_estimates``), with how many stars each puts above the threshold 1 / (1e2 eps).

``--ckk-estimate`` (benchmarks only) runs process_ccd with another C_kk estimate: ``pocon``
(``_core.set_guard_pocon_estimate``) or ``triangular`` (``_core.set_guard_triangular_estimate``:
the square of the triangular ?trcon estimate of its factor, as the guard judges P), to show what
each does to the rate of re-solved stars.

Run: python benchmarks/bench_guard.py [--out FILE] [--ckk-estimate {ice,pocon,triangular}]
(default benchmarks/results/bench_guard.txt, ice)
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
from _provenance import Report, load_note, provenance  # noqa: E402


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


def estimate_quality(args, kw):
    """Per star of one field: (exact cond_2, incremental estimate, ?pocon estimate) of C_kk."""
    from cloudcov import _core
    from cloudcov.covariance import local_covariance
    from cloudcov.lpi import prepare_ccd
    from cloudcov.perstar import pixel_classes
    from cloudcov.psf import as_psf_model

    image, model, sky, cat, psf, gain, dq = args
    thr = kw.get("thr", 20)
    prep = prepare_ccd(image, model, sky, cat, psf, gain, dq, thr=thr)
    psf_model, Np, h = as_psf_model(psf), 33, 16
    rows = []
    for r, c, f in zip(np.asarray(cat["x"], float), np.asarray(cat["y"], float), np.asarray(cat["flux"], float)):
        if not (np.isfinite(r) and np.isfinite(c)):
            continue
        R, C = int(np.rint(r)) + prep.pad_rows, int(np.rint(c)) + prep.pad_cols
        try:
            cov, _ = local_covariance(prep.image, R, C, Np, 129)
        except ValueError:   # stamp or boxcar window leaves the padded image
            continue
        cut = np.s_[R - h:R + h + 1, C - h:C + h + 1]
        good = pixel_classes(prep.bad[cut], psf_model(r, c, Np), f, thr=thr).good.ravel()
        if good.sum() < 2:
            continue
        a = np.triu(np.asarray(cov, np.float64))[np.ix_(good, good)]
        a = a + np.triu(a, 1).T     # the upper triangle, as the kernel reads it
        a[np.diag_indices_from(a)] += prep.stars[cut].ravel()[good]
        ev = np.linalg.eigvalsh(a)
        a32 = np.asfortranarray(a, dtype=np.float32)
        anorm = float(np.abs(a32).sum(axis=0).max())
        if ev[0] <= 0 or _core.lapack_potrf(a32) != 0:
            continue
        rho, est1 = _core.guard_estimates(a32)
        rows.append((ev[-1] / ev[0], anorm * rho, anorm * est1))
    return np.array(rows).reshape(-1, 3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "results" / "bench_guard.txt"))
    ap.add_argument("--ckk-estimate", choices=("ice", "pocon", "triangular"), default="ice")
    args_ = ap.parse_args(argv)
    from cloudcov import _core
    _core.set_guard_pocon_estimate(args_.ckk_estimate == "pocon")
    _core.set_guard_triangular_estimate(args_.ckk_estimate == "triangular")
    say = Report()

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
        q = estimate_quality(args, kw)
        if len(q):
            lim = 1 / (1e2 * np.finfo(np.float32).eps)
            say(f"  C_kk of {len(q)} stars: exact cond_2 median {np.median(q[:, 0]):.3g}, max "
                f"{q[:, 0].max():.3g} ({int(np.sum(q[:, 0] > lim))} above {lim:.3g}); estimate / exact: "
                f"incremental {np.min(q[:, 1] / q[:, 0]):.2f}-{np.max(q[:, 1] / q[:, 0]):.2f} "
                f"({int(np.sum(q[:, 1] > lim))} above), ?pocon {np.min(q[:, 2] / q[:, 0]):.2f}-"
                f"{np.max(q[:, 2] / q[:, 0]):.2f} ({int(np.sum(q[:, 2] > lim))} above)")
    say.write(args_.out)


if __name__ == "__main__":
    main()
