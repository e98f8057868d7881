#!/usr/bin/env python
"""Simulated DECaPS2-like survey: HEALPix maps of error-bar calibration (LPI paper sec. 5.4).

The paper's Figs. 12-13 map, per NSIDE=32 pixel of the DECaPS2 footprint, the factor
IQR/1.34896 by which the injected stars' Z-scores say the error bars are too small, for
conventional (crowdsource) and LPI photometry (medians 1.17 and 1.02, up to 5x vs 2x toward
the bulge). This script builds a small simulated survey with the same ingredients and runs
it end to end through the user-facing commands:

1. **Footprint** (``--lmin --lmax --bmax``): every NSIDE=32 (RING) pixel whose centre has
   ``lmin < l < lmax`` and ``|b| <= bmax`` (l wrapped to [-180, 180)). DECaPS2 is
   ``-120 < l < +5, |b| <= 10`` (``--footprint decaps2``, 757 pixels); the committed run
   uses ``-25 < l < +5, |b| <= 3`` (53 pixels: the bulge and the inner disk), which fits
   ~30-40 min on 2 heavily shared cores (see RESULTS.md "HEALPix maps").
2. **One small synthetic CCD per pixel**, placed at the pixel centre (TAN WCS, 0.263"/px),
   sky 300 ADU, gain 4 e-/ADU, Moffat beta=3 PSF with FWHM drawn per exposure in
   [3.8, 5.0] px. Its side is ``clip(sqrt(N0 / density), 160, 320)`` px (N0 = 1000 stars), so
   each CCD has the model's *local* density (stars per pixel) while small CCDs keep the run
   short.
3. **Star density** (stars per px^2 down to 150 ADU, about half the detection limit; about a
   third of them are detected)::

       density = 3.0e-3                                         (floor)
               + 9.0e-3 exp(-|b| / 3 deg) exp(-|l| / 40 deg)    (thin disk)
               + 1.3e-2 exp(-(l/7 deg)^2 / 2 - (b/4 deg)^2 / 2) (bulge)

   i.e. ~1-3e-3 detections per px^2 in the disk and ~9e-3 at the Galactic centre (DECaPS2:
   1.7e-3 in a typical and 2.3e-2 in a crowded field, paper sec. 5.3); fluxes from
   ``N(>F) ~ F^-1`` between 150 and 1e5 ADU (the undetected stars make unresolved,
   structured background in crowded pixels).
4. **Background structure**, growing toward the plane: ``A(l, b) sigma_sky f(row, col)`` with
   ``A = 0.1 + 0.3 exp(-|b| / 2 deg) + 0.5 exp(-(l/8)^2/2 - (b/5)^2/2)`` and ``f`` a seeded
   Gaussian random field with power spectrum ``P(k) ~ k^-3`` (unit standard deviation). In
   three "nebulae" (Carina l=-73, b=-0.8; Vela l=-96, b=-2.8; the Galactic centre), within
   3 deg, half of ``f`` is replaced by a random patch of the real images in
   ``shared/data/real`` (HorseHead DSS plate for Carina and Vela, Spitzer GLIMPSE for the
   centre; median removed, unit robust sigma, clipped to [-5, 20]).
5. **Conventional photometry**: crowdsource ``fit_im`` with a refitted PSF on the original
   image (as ``04_injection.py``); **injections**: 10% of the good detections, fluxes from
   their ECDF, the fitted PSF, >= 33 px from the edges, Poisson noise, weights updated
   (``04_injection.inject``). Each pixel gets ``ceil(40 / expected isolated injections)``
   injection images (at most 4). Each injection image is re-run through crowdsource *with
   the fitted PSF fixed* (``refit_psf=False``; a cost saving: the injected stars then have
   exactly the model PSF, which favours conventional photometry). Scored stars are
   *isolated*: no other detection or injected star within 4/3 FWHM (paper sec. 4.3; truth
   ``isolated`` column, passed to the maps as ``use``); the JSON also has the numbers for all
   matched stars (``all_matched``), which are dominated by blends in crowded pixels.
6. **Files** in the DECam CP + crowdsource layout (``raw/``, ``cat/``, ``mod/``; one
   "exposure" per group of ``--pixels-per-exposure`` pixels, CCD ``P<ipix>`` + letter per
   injection image) and a truth table per exposure; written atomically, so preparing
   resumes too (an exposure with its truth file is done).
7. **LPI** through ``cloudcov survey`` (``cloudcov.survey.run_survey``, Dask/local executor,
   resumable) on a manifest of the exposures; if the installed cloudcov has no
   ``run_survey``, ``run_exposure(resume=True)`` over the manifest (noted in the JSON).
8. **Maps** with ``cloudcov.maps`` exactly as ``cloudcov maps`` does (truth matched within
   1", per CCD): NSIDE=32 IQR/1.34896 maps of conventional and LPI Z, the clipped mean of
   ``dcflux/dflux`` (Fig. 13 analogue), pixels with > 30 scored stars.

Cuts: ``dnt & ~(4|8|16) == 0`` (bits 8/16: the crowdsource PSF has slightly negative
pixels, true for most stars; 4: cloudcov's float64 retry), ``cchi2/kcond > 0.7``, no bad
flags, ``rchi2 < 100``, ``fracflux > 0.5`` (paper footnote 15 otherwise).

Outputs (``--out``, default ``validation/results/healpix/``): ``results.json``,
``pixels.ecsv`` (per-pixel numbers), ``maps.fits`` (HEALPix, healpy), ``maps_iqr.png``
(conventional and LPI), ``map_ratio.png`` (dcflux/dflux), ``map_lpi_over_conv.png``. The
simulated survey itself (CP/crowdsource files, truth tables, manifest, LPI outputs in
``cer/``, ``survey_log.ecsv``) goes to ``--work`` (default ``validation/healpix_work/``,
git-ignored; ``<out>/work`` with ``--quick``). Interrupt and rerun the same command to resume:
prepared exposures are kept, and ``run_survey(resume=True)`` skips finished exposures.

Run::

    python validation/scripts/06_healpix_maps.py                         # full run (53 pixels)
    python validation/scripts/06_healpix_maps.py --footprint decaps2     # 757 pixels, hours
    python validation/scripts/06_healpix_maps.py --quick --out /tmp/hp   # 2 pixels, 30-60 s

``--quick``: two disk pixels (-40 < l < -30, |b| <= 3), CCDs <= 192 px, one injection image
with 30% injections, pixels with >= 10 stars, the local engine with one worker.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
DEFAULT_OUT = REPO / "validation" / "results" / "healpix"
sys.path.insert(0, str(SCRIPTS))

import _synth  # noqa: E402

NSIDE = 32
SKY, GAIN = _synth.SKY, _synth.GAIN
SIG_SKY = math.sqrt(SKY * GAIN) / GAIN
PIXSCALE = 0.263          # arcsec / px (DECam)
N0 = 1000                 # target stars per CCD (to FMIN; ~1/3 are detected)
SIDE_MIN, SIDE_MAX = 160, 320
FMIN, FMAX = 150.0, 1.0e5
TARGET_ISO = 40           # expected isolated injected stars per pixel
MAX_IMAGES = 4
INJECT_FRAC = 0.1
QUICK_FRAC = 0.3
THRESHOLD = 5.0
NEBULAE = (("carina", -73.0, -0.8, "HorseHead.fits"), ("vela", -96.0, -2.8, "HorseHead.fits"),
           ("galactic_centre", 0.0, 0.0, "spitzer_example_image.fits"))
NEBULA_RADIUS = 3.0
DNT_IGNORE = 4 | 8 | 16
PAPER = {"median_iqr_conventional": 1.17, "median_iqr_lpi": 1.02,
         "bulge_max_conventional": 5.0, "bulge_max_lpi": 2.0}
TARGETS = {"median_iqr_lpi": [0.97, 1.03], "worst_iqr_lpi_max": 1.5,
           "lpi_closer_where_conventional_gt": 1.1}
FILT, VERS = "r", "sim"


def _load(name, file):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod            # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


def _inj():
    return _load("injection04", SCRIPTS / "04_injection.py")


# ----------------------------------------------------------------------------- the model
def wrap_l(l):
    return (np.asarray(l, float) + 180.0) % 360.0 - 180.0


def star_density(l, b):
    """Stars per px^2 brighter than FMIN (documented in the module docstring)."""
    l, b = wrap_l(l), np.asarray(b, float)
    return (3.0e-3 + 9.0e-3 * np.exp(-np.abs(b) / 3.0) * np.exp(-np.abs(l) / 40.0)
            + 1.3e-2 * np.exp(-0.5 * (l / 7.0) ** 2 - 0.5 * (b / 4.0) ** 2))


def structure_amplitude(l, b):
    """Background-structure rms in units of the sky noise."""
    l, b = wrap_l(l), np.asarray(b, float)
    return (0.1 + 0.3 * np.exp(-np.abs(b) / 2.0)
            + 0.5 * np.exp(-0.5 * (l / 8.0) ** 2 - 0.5 * (b / 5.0) ** 2))


def region(l, b):
    """'bulge' within 10 deg of the Galactic centre (|l| < 10, |b| < 10), else 'disk'."""
    l = wrap_l(l)
    return np.where((np.abs(l) < 10.0) & (np.abs(np.asarray(b)) < 10.0), "bulge", "disk")


def footprint(lmin, lmax, bmax, nside=NSIDE):
    import healpy as hp

    ip = np.arange(hp.nside2npix(nside))
    l, b = hp.pix2ang(nside, ip, lonlat=True)
    l = wrap_l(l)
    m = (l > lmin) & (l < lmax) & (np.abs(b) <= bmax)
    return ip[m], l[m], b[m]


def plan(args):
    """Pixels, their CCD sizes and exposures."""
    ip, l, b = footprint(args.lmin, args.lmax, args.bmax)
    if args.max_pixels:
        sel = np.random.default_rng([args.seed, 7]).permutation(ip.size)[:args.max_pixels]
        sel.sort()
        ip, l, b = ip[sel], l[sel], b[sel]
    dens = star_density(l, b)
    amp = structure_amplitude(l, b)
    side = np.clip(np.sqrt(N0 / dens), SIDE_MIN, args.side_max).astype(int)
    side += side % 2
    exps = []
    ppe = args.pixels_per_exposure
    for k in range(0, ip.size, ppe):
        exps.append(dict(index=len(exps), date=f"260101_{len(exps):06d}",
                         pixels=[dict(ipix=int(ip[j]), l=float(l[j]), b=float(b[j]),
                                      density=float(dens[j]), amp=float(amp[j]),
                                      side=int(side[j]))
                                 for j in range(k, min(k + ppe, ip.size))]))
    return exps


# ----------------------------------------------------------------------------- images
def grf(shape, rng, slope=3.0):
    """Gaussian random field with P(k) ~ k^-slope, unit standard deviation."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k = np.hypot(ky, kx)
    k[0, 0] = np.inf
    amp = k ** (-slope / 2.0)
    f = np.fft.irfft2((rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)) * amp,
                      s=shape)
    return f / f.std()


_REAL_CACHE = {}


def real_patch(name, shape, rng):
    """Random crop of a real image, median removed, unit robust sigma, clipped [-5, 20]."""
    from astropy.io import fits

    if name not in _REAL_CACHE:
        with fits.open(REAL / name) as h:
            a = np.asarray(h[0].data, "f8")
        a = np.where(np.isfinite(a), a, np.nanmedian(a))
        _REAL_CACHE[name] = a
    a = _REAL_CACHE[name]
    r0 = rng.integers(0, max(a.shape[0] - shape[0], 0) + 1)
    c0 = rng.integers(0, max(a.shape[1] - shape[1], 0) + 1)
    p = a[r0:r0 + shape[0], c0:c0 + shape[1]]
    if p.shape != shape:
        p = np.pad(p, [(0, shape[0] - p.shape[0]), (0, shape[1] - p.shape[1])], mode="reflect")
    p = p - np.median(p)
    s = np.subtract(*np.percentile(p, [75, 25])) / 1.349
    return np.clip(p / (s if s > 0 else 1.0), -5.0, 20.0)


def moffat_render(shape, rows, cols, fluxes, fwhm, beta=3.0, half=20):
    """Sum of unit-integral Moffat stars at sub-pixel positions (analytic pixel centres)."""
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    norm = (beta - 1.0) / (np.pi * alpha ** 2)
    img = np.zeros((shape[0] + 4 * half, shape[1] + 4 * half))
    d = np.arange(-half, half + 1)
    for r, c, f in zip(rows, cols, fluxes):
        r0, c0 = int(np.rint(r)), int(np.rint(c))
        if r0 < -half or c0 < -half or r0 >= shape[0] + half or c0 >= shape[1] + half:
            continue
        dr = (d + r0 - r)[:, None]
        dc = (d + c0 - c)[None, :]
        st = f * norm * (1.0 + (dr ** 2 + dc ** 2) / alpha ** 2) ** (-beta)
        img[r0 + half:r0 + 3 * half + 1, c0 + half:c0 + 3 * half + 1] += st
    return img[2 * half:-2 * half, 2 * half:-2 * half]


def simulate_ccd(pix, fwhm, rng):
    """Original image (ADU), constant ivar, DQ, true star list."""
    n = pix["side"]
    shape = (n, n)
    margin = 20
    area = (n + 2 * margin) ** 2
    nstar = rng.poisson(pix["density"] * area)
    rows = rng.uniform(-margin, n + margin, nstar)
    cols = rng.uniform(-margin, n + margin, nstar)
    u = rng.uniform(0, 1, nstar)
    flux = 1.0 / (1.0 / FMIN - u * (1.0 / FMIN - 1.0 / FMAX))     # N(>F) ~ F^-1
    field = grf(shape, rng)
    neb = None
    for name, l0, b0, file in NEBULAE:
        if math.hypot(float(wrap_l(pix["l"] - l0)), pix["b"] - b0) < NEBULA_RADIUS:
            neb = name
            field = 0.5 * field + 0.5 * real_patch(file, shape, rng)
            break
    mu = SKY + pix["amp"] * SIG_SKY * field + moffat_render(shape, rows, cols, flux, fwhm)
    im = (rng.poisson(np.clip(mu, 0, None) * GAIN) / GAIN).astype("f4")
    ivar = np.full(shape, GAIN / SKY, "f4")
    dq = np.zeros(shape, "i2")
    return im, ivar, dq, dict(n_true=int(nstar), nebula=neb)


def wcs_header(pix, shape):
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.io import fits

    c = SkyCoord(l=pix["l"] * u.deg, b=pix["b"] * u.deg, frame="galactic").icrs
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = float(c.ra.deg), float(c.dec.deg)
    h["CRPIX1"], h["CRPIX2"] = (shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0
    h["CD1_1"], h["CD1_2"] = -PIXSCALE / 3600.0, 0.0
    h["CD2_1"], h["CD2_2"] = 0.0, PIXSCALE / 3600.0
    h["GLON"], h["GLAT"], h["HPIX32"] = pix["l"], pix["b"], pix["ipix"]
    return h


@contextlib.contextmanager
def quiet():
    """crowdsource prints (e.g. 'crazy xy and yy values') and warns a lot."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def crowdsource_fixed(im, ivar, dq_cs, psf):
    from crowdsource import crowdsource_base as cb

    with quiet():
        cat, model, sky, _ = cb.fit_im(im, psf, weight=np.sqrt(ivar).astype("f4"), dq=dq_cs,
                                       psfderiv=True, refit_psf=False, threshold=THRESHOLD,
                                       ntilex=1, ntiley=1, verbose=False)
    return cat, np.asarray(model, "f4"), np.asarray(sky, "f4")


# ----------------------------------------------------------------------------- prepare
def exposure_paths(work, date):
    stem = f"c4d_{date}_ooi_{FILT}_{VERS}"
    return dict(ooi=work / "raw" / f"c4d_{date}_ooi_{FILT}_{VERS}.fits.fz",
                ood=work / "raw" / f"c4d_{date}_ood_{FILT}_{VERS}.fits.fz",
                cat=work / "cat" / f"{stem}.cat.fits", mod=work / "mod" / f"{stem}.mod.fits",
                truth=work / "truth" / f"{stem}.truth.ecsv")


def prepare_exposure(exp, work, seed, quick):
    """Simulate, run crowdsource, inject, re-run, write the exposure's files. Resumable."""
    from astropy.io import fits
    from astropy.table import Table, vstack
    from numpy.lib.recfunctions import rec_append_fields

    from cloudcov.io._files import atomic_path
    from cloudcov.maps import positions_from_wcs

    paths = exposure_paths(work, exp["date"])
    if paths["truth"].exists():   # done before: count its CCDs and stars from the truth file
        done = Table.read(paths["truth"], format="ascii.ecsv")
        return dict(date=exp["date"], skipped=True, nccd=len(np.unique(done["ccd"])),
                    nstars=len(done))
    t0 = time.perf_counter()
    inj = _inj()
    mee = _load("mee", REPO / "validation" / "make_embedded_example.py")
    rng_e = np.random.default_rng([seed, 1, exp["index"]])
    fwhm = float(rng_e.uniform(3.8, 5.0))
    prim = fits.Header()
    prim["DATE-OBS"] = "2026-01-01"
    prim["EXPNUM"] = exp["index"]
    prim["FILTER"] = FILT
    prim["PLVER"] = "V4.8"
    prim["SIMFWHM"] = fwhm
    hdus = {k: [fits.PrimaryHDU(header=prim)] for k in ("ooi", "ood", "cat", "mod")}
    truths, stats = [], []
    t_cs = 0.0
    for pix in exp["pixels"]:
        rng = np.random.default_rng([seed, 2, pix["ipix"]])
        im, ivar, dq, info = simulate_ccd(pix, fwhm, rng)
        hdr = wcs_header(pix, im.shape)
        dq_cs = (2 ** dq.astype("i8"))
        t = time.perf_counter()
        with quiet():
            cat0, model0, sky0, psf, _, _ = mee.run_crowdsource(im, ivar, dq_cs, THRESHOLD,
                                                                 fwhm, False)
        t_cs += time.perf_counter() - t
        stamp = inj.psf_stamp(psf, im.shape[0] // 2, im.shape[1] // 2, inj.INJ_STAMP)
        from crowdsource import psf as cspsf
        fwhm_fit = float(cspsf.neff_fwhm(stamp / stamp.sum()))
        iso_dist = 4.0 / 3.0 * fwhm          # paper sec. 4.3, with the exposure's FWHM
        flags0 = np.asarray(cat0["flags"]).astype("i8") & 0xFFFFFFFF
        ngood = int((((flags0 & inj.BADFLAGS) == 0) & (np.asarray(cat0["flux"]) > 0)).sum())
        n_per = max(1, int(round(INJECT_FRAC * ngood)))
        p_iso = math.exp(-math.pi * iso_dist ** 2 * len(cat0) / im.size)
        nimg = 1 if quick else int(min(MAX_IMAGES, math.ceil(TARGET_ISO / (n_per * p_iso))))
        for k in range(nimg):
            ccd = f"P{pix['ipix']:05d}{chr(ord('A') + k)}"
            rng_k = np.random.default_rng([seed, 3, pix["ipix"], k])
            frac = QUICK_FRAC if quick else INJECT_FRAC
            with quiet():
                im2, ivar2, dq2, truth, _ = inj.inject(im, ivar, dq, cat0, psf, GAIN, frac, rng_k)
            t = time.perf_counter()
            cat, model, sky = crowdsource_fixed(im2, ivar2, 2 ** dq2.astype("i8"), psf)
            t_cs += time.perf_counter() - t
            _, nearest, iso = inj.match(truth, cat, cat0, 1.0, iso_dist)
            ra, dec = positions_from_wcs(hdr, np.asarray(cat["x"]), np.asarray(cat["y"]))
            cat = rec_append_fields(cat, ["ra", "dec"], [ra, dec])
            h = hdr.copy()
            h["GAINCRWD"] = GAIN
            h["SKYCRWD"] = float(np.median(sky))
            h["FWHMCRWD"] = fwhm_fit
            h["SIMNTRUE"] = info["n_true"]
            hdus["ooi"].append(fits.CompImageHDU(im2, hdr, name=ccd, compression_type="GZIP_2",
                                                 quantize_level=0))
            hdus["ood"].append(fits.CompImageHDU(dq2.astype("i4"), hdr, name=ccd,
                                                 compression_type="RICE_1"))
            hdus["cat"] += [fits.ImageHDU(header=h, name=f"{ccd}_HDR"),
                            fits.BinTableHDU(psf.serialize(), name=f"{ccd}_PSF"),
                            fits.BinTableHDU(cat, name=f"{ccd}_CAT")]
            hdus["mod"] += [fits.ImageHDU(model, hdr, name=f"{ccd}_MOD"),
                            fits.ImageHDU(sky, hdr, name=f"{ccd}_SKY")]
            tra, tdec = positions_from_wcs(hdr, truth["x"], truth["y"])
            truths.append(Table(dict(ra=tra, dec=tdec, flux=truth["flux"], x=truth["x"],
                                     y=truth["y"], ccd=np.full(tra.size, ccd),
                                     date=np.full(tra.size, exp["date"]),
                                     ipix=np.full(tra.size, pix["ipix"]),
                                     nearest=nearest, isolated=iso)))
        stats.append(dict(ipix=pix["ipix"], n_true=info["n_true"], n_detected=len(cat0),
                          n_good=ngood, n_injected_per_image=n_per, n_images=nimg,
                          psf_fwhm_fit=fwhm_fit, nebula=info["nebula"]))
    for kind in ("ooi", "ood", "cat", "mod"):
        with atomic_path(paths[kind]) as tmp:
            fits.HDUList(hdus[kind]).writeto(tmp, overwrite=True)
    truth = vstack(truths)
    truth.meta = dict(exposure=exp["date"], psf_fwhm_true=fwhm, pixels=stats,
                      seconds=round(time.perf_counter() - t0, 2),
                      seconds_crowdsource=round(t_cs, 2))
    with atomic_path(paths["truth"]) as tmp:          # last: marks the exposure done
        truth.write(tmp, format="ascii.ecsv", overwrite=True)
    return dict(date=exp["date"], skipped=False, seconds=time.perf_counter() - t0,
                seconds_crowdsource=t_cs, nccd=len(truths), nstars=len(truth))


def _prep_one(a):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return prepare_exposure(*a)


# ----------------------------------------------------------------------------- LPI
def write_manifest(exps, work):
    from astropy.table import Table

    from cloudcov.io._files import atomic_path

    t = Table(dict(base=[str(work / "raw" / "c4d_")] * len(exps),
                   date=[e["date"] for e in exps], filt=[FILT] * len(exps),
                   vers=[VERS] * len(exps), basecat=[str(work)] * len(exps)))
    path = work / "manifest.ecsv"
    with atomic_path(path) as tmp:
        t.write(tmp, format="ascii.ecsv", overwrite=True)
    return path


def run_lpi(manifest, exps, work, args, log):
    """cloudcov survey on the manifest (run_survey), else run_exposure per row."""
    from cloudcov import survey

    out = work / "cer"
    if hasattr(survey, "run_survey"):
        kw = dict(out_dir=out, executor=args.executor, workers=args.workers,
                  threads_per_worker=1, resume=True)
        import inspect

        sig = inspect.signature(survey.run_survey)
        kw = {k: v for k, v in kw.items() if k in sig.parameters}
        log(f"cloudcov survey: run_survey({manifest.name}, {kw})")
        survey.run_survey(manifest, **kw)
        how = f"cloudcov.survey.run_survey(executor={args.executor!r}, workers={args.workers})"
    else:
        log("cloudcov.survey.run_survey not available: run_exposure(resume=True) per exposure")
        for e in exps:
            try:
                survey.run_exposure(str(work / "raw" / "c4d_"), e["date"], FILT, VERS, str(work),
                                    out_dir=out, resume=True, threads=1, progress=None)
            except survey.SurveyError as exc:
                log(f"  {e['date']}: {exc}")
        how = "cloudcov.survey.run_exposure(resume=True) per exposure (no run_survey yet)"
    outputs = sorted(out.glob("*.cat.cer.fits"))
    return outputs, how


# ----------------------------------------------------------------------------- analysis
def analyse(outputs, truth_paths, exps, args):
    """The maps of ``cloudcov maps`` (isolated injected stars), and the same without isolation."""
    from astropy.table import Table, vstack

    from cloudcov import maps as cm

    cat = cm.load_outputs(outputs)
    truth = vstack([Table.read(p) for p in truth_paths], metadata_conflicts="silent")
    truth.meta = {}
    kw = dict(nside=NSIDE, statistic="iqr", cuts="paper", min_count=args.min_count,
              match_radius=1.0, cut_overrides=dict(dnt_ignore=DNT_IGNORE))
    truth["use"] = truth["isolated"]
    from cloudcov.io._files import atomic_path

    with atomic_path(Path(truth_paths[0]).parents[1] / "truth_all.ecsv") as tmp:   # for cloudcov maps
        truth.write(tmp, format="ascii.ecsv", overwrite=True)
    res = cm.error_maps(cat, truth, **kw)
    st = res["stars"]
    sc = np.asarray(st["passed"], bool)
    for name, col in (("zmed_conventional", "z_conventional"), ("zmed_lpi", "z_lpi")):
        res["maps"][name] = cm.healpix_map(st["l"][sc], st["b"][sc], st[col][sc], NSIDE, "median",
                                           min_count=args.min_count)[0]
    truth.remove_column("use")
    res["all_matched"] = cm.error_maps(cat, truth, **kw)
    return res


def cm_iqr(z):
    from cloudcov.maps import iqr_sigma

    return iqr_sigma(np.asarray(z, float))


def summarise(res, exps, args):
    mp = res["maps"]
    pixinfo = {p["ipix"]: p for e in exps for p in e["pixels"]}
    ip = np.array(sorted(pixinfo))
    ok = np.isfinite(mp["z_lpi"][ip]) & np.isfinite(mp["z_conventional"][ip])
    good = ip[ok]
    zc, zl = mp["z_conventional"][good], mp["z_lpi"][good]
    reg = np.array([str(region(pixinfo[p]["l"], pixinfo[p]["b"])) for p in good])
    out = dict(nside=NSIDE, n_pixels_footprint=int(ip.size), n_pixels=int(good.size),
               min_count=args.min_count,
               median_iqr_conventional=float(np.median(zc)) if good.size else None,
               median_iqr_lpi=float(np.median(zl)) if good.size else None,
               worst_iqr_lpi=float(np.max(zl)) if good.size else None,
               max_iqr_lpi=float(np.max(zl)) if good.size else None,
               min_iqr_lpi=float(np.min(zl)) if good.size else None,
               max_iqr_conventional=float(np.max(zc)) if good.size else None,
               median_ratio_dcflux_dflux=float(np.nanmedian(mp["ratio"][good])) if good.size else None,
               regions={})
    for r in ("bulge", "disk"):
        k = reg == r
        out["regions"][r] = dict(
            n_pixels=int(k.sum()),
            median_iqr_conventional=float(np.median(zc[k])) if k.any() else None,
            median_iqr_lpi=float(np.median(zl[k])) if k.any() else None,
            max_iqr_conventional=float(np.max(zc[k])) if k.any() else None,
            max_iqr_lpi=float(np.max(zl[k])) if k.any() else None)
    hi = zc > TARGETS["lpi_closer_where_conventional_gt"]
    closer = np.abs(zl - 1) < np.abs(zc - 1)
    st, sa = res["stars"], res["all_matched"]["stars"]
    out["pooled"] = {}
    for name, t in (("isolated", st), ("all_matched", sa)):
        m = np.asarray(t["passed"], bool)
        out["pooled"][name] = dict(
            n=int(m.sum()), iqr_conventional=cm_iqr(t["z_conventional"][m]),
            iqr_lpi=cm_iqr(t["z_lpi"][m]),
            median_z_conventional=float(np.median(t["z_conventional"][m])) if m.any() else None,
            median_z_lpi=float(np.median(t["z_lpi"][m])) if m.any() else None)
    ma = res["all_matched"]["maps"]
    oka = np.isfinite(ma["z_lpi"][ip]) & np.isfinite(ma["z_conventional"][ip])
    out["all_matched"] = dict(
        n_pixels=int(oka.sum()),
        median_iqr_conventional=float(np.median(ma["z_conventional"][ip][oka])) if oka.any() else None,
        median_iqr_lpi=float(np.median(ma["z_lpi"][ip][oka])) if oka.any() else None,
        max_iqr_lpi=float(np.max(ma["z_lpi"][ip][oka])) if oka.any() else None)
    out["n_pixels_conventional_gt_1p1"] = int(hi.sum())
    out["n_lpi_closer_where_conventional_gt_1p1"] = int((closer & hi).sum())
    out["frac_pixels_lpi_closer"] = float(closer.mean()) if good.size else None
    out["targets_met"] = dict(
        median_iqr_lpi=bool(good.size and TARGETS["median_iqr_lpi"][0] <= out["median_iqr_lpi"]
                            <= TARGETS["median_iqr_lpi"][1]),
        worst_iqr_lpi=bool(good.size and out["max_iqr_lpi"] <= TARGETS["worst_iqr_lpi_max"]),
        lpi_closer_where_conventional_gt_1p1=bool(hi.any() and (closer | ~hi).all()))
    rows = []
    for p in ip:
        q = pixinfo[p]
        rows.append(dict(ipix=int(p), l=q["l"], b=q["b"], region=str(region(q["l"], q["b"])),
                         density=q["density"], amp=q["amp"], side=q["side"],
                         n_scored=int(mp["count"][p]), n_detections=int(mp["count_all"][p]),
                         iqr_conventional=float(mp["z_conventional"][p]),
                         iqr_lpi=float(mp["z_lpi"][p]), median_z_conventional=float(mp["zmed_conventional"][p]),
                         median_z_lpi=float(mp["zmed_lpi"][p]),
                         ratio_dcflux_dflux=float(mp["ratio"][p])))
    return out, rows


def figures(res, outdir, lonra, latra):
    from cloudcov import maps as cm

    mp = res["maps"]
    cm.plot_maps([("conventional: IQR/1.349 of (flux - true)/dflux", mp["z_conventional"]),
                  ("LPI: IQR/1.349 of (cflux - true)/dcflux", mp["z_lpi"])],
                 outdir / "maps_iqr.png", lonra=lonra, latra=latra, vmin=0.0, vmax=2.0,
                 label="factor by which the error bars are too small")
    cm.plot_maps([("dcflux / dflux (LPI / conventional uncertainty), clipped mean",
                   mp["ratio"])], outdir / "map_ratio.png", lonra=lonra, latra=latra,
                 vmin=0.0, vmax=2.0, label="dcflux / dflux")
    cm.plot_maps([("IQR/1.349 LPI / IQR/1.349 conventional", mp["z_ratio"])],
                 outdir / "map_lpi_over_conv.png", lonra=lonra, latra=latra, vmin=0.0, vmax=2.0,
                 label="LPI / conventional")
    scatter(res, outdir / "iqr_scatter.png")
    return ["maps_iqr.png", "map_ratio.png", "map_lpi_over_conv.png", "iqr_scatter.png"]


def scatter(res, path):
    """Per pixel: LPI vs conventional IQR/1.349, coloured by region (disk / bulge)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import healpy as hp

    mp = res["maps"]
    ok = np.isfinite(mp["z_lpi"]) & np.isfinite(mp["z_conventional"])
    ip = np.flatnonzero(ok)
    l, b = hp.pix2ang(NSIDE, ip, lonlat=True)
    reg = region(l, b)
    fig, ax = plt.subplots(figsize=(6.2, 5.4), constrained_layout=True)
    hi = max(2.0, float(np.nanmax(mp["z_conventional"][ip])) * 1.05) if ip.size else 2.0
    ax.axhspan(0.97, 1.03, color="0.85", label="target: LPI median 1.00 +- 0.03")
    ax.axhline(1.5, color="0.5", ls=":", label="target: worst LPI pixel <= 1.5")
    ax.plot([0, hi], [0, hi], "k--", lw=0.8, label="LPI = conventional")
    for r, c in (("disk", "tab:blue"), ("bulge", "tab:red")):
        k = reg == r
        ax.scatter(mp["z_conventional"][ip][k], mp["z_lpi"][ip][k], s=18, c=c,
                   label=f"{r} ({int(k.sum())} pixels)")
    ax.set_xlim(0.5, hi)
    ax.set_ylim(0.5, max(2.0, float(np.nanmax(mp["z_lpi"][ip])) * 1.05) if ip.size else 2.0)
    ax.set_xlabel("conventional IQR/1.349 of Z (per NSIDE=32 pixel)")
    ax.set_ylabel("LPI IQR/1.349 of Z")
    ax.legend(fontsize=8, loc="upper left")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _git_commit():
    import subprocess

    try:
        c = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                           text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return c + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


# ----------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--work", type=Path, default=None,
                   help="simulated survey files (default <repo>/validation/healpix_work)")
    p.add_argument("--quick", action="store_true",
                   help="4 pixels, one injection image each (50%% injections): seconds")
    p.add_argument("--footprint", choices=("run", "decaps2"), default="run",
                   help="run: -25 < l < 5, |b| <= 3 (the committed run); decaps2: -120 < l < 5, "
                        "|b| <= 10 (~740 pixels, hours on 2 cores)")
    p.add_argument("--lmin", type=float, default=None)
    p.add_argument("--lmax", type=float, default=None)
    p.add_argument("--bmax", type=float, default=None)
    p.add_argument("--max-pixels", type=int, default=None, help="random subset of the footprint")
    p.add_argument("--side-max", type=int, default=SIDE_MAX)
    p.add_argument("--pixels-per-exposure", type=int, default=4)
    p.add_argument("--min-count", type=int, default=31, help="> 30 stars (paper)")
    p.add_argument("--executor", default="dask", help="cloudcov survey executor (default dask)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--prep-workers", type=int, default=2)
    p.add_argument("--no-figures", action="store_true")
    args = p.parse_args(argv)
    fp = dict(run=(-25.0, 5.0, 3.0), decaps2=(-120.0, 5.0, 10.0))[args.footprint]
    if args.quick:
        fp = (-40.0, -30.0, 3.0)
        args.max_pixels = args.max_pixels or 2
        args.side_max = min(args.side_max, 192)
        args.pixels_per_exposure = 2
        args.min_count = min(args.min_count, 10)
        args.executor = "local" if args.executor == "dask" else args.executor
        args.workers = 1
    args.lmin = fp[0] if args.lmin is None else args.lmin
    args.lmax = fp[1] if args.lmax is None else args.lmax
    args.bmax = fp[2] if args.bmax is None else args.bmax
    work = args.work or (args.out / "work" if args.quick else REPO / "validation" / "healpix_work")
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def log(msg):
        print(f"{time.perf_counter() - t0:7.1f}s {msg}", flush=True)

    import cloudcov

    exps = plan(args)
    npix = sum(len(e["pixels"]) for e in exps)
    log(f"footprint {args.lmin} < l < {args.lmax}, |b| <= {args.bmax}: {npix} pixels, "
        f"{len(exps)} exposures")
    tp = time.perf_counter()
    jobs = [(e, work, args.seed, args.quick) for e in exps]
    prep = []
    if args.prep_workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(args.prep_workers) as ex:
            for r in ex.map(_prep_one, jobs):
                prep.append(r)
                log(f"prepared {r['date']}" + (" (already done)" if r["skipped"] else
                    f": {r['nccd']} CCDs, {r['nstars']} injected, {r['seconds']:.1f} s"))
    else:
        for j in jobs:
            r = _prep_one(j)
            prep.append(r)
            log(f"prepared {r['date']}" + (" (already done)" if r["skipped"] else
                f": {r['nccd']} CCDs, {r['nstars']} injected, {r['seconds']:.1f} s"))
    t_prep = time.perf_counter() - tp
    manifest = write_manifest(exps, work)
    tl = time.perf_counter()
    outputs, how = run_lpi(manifest, exps, work, args, log)
    t_lpi = time.perf_counter() - tl
    truth_paths = [exposure_paths(work, e["date"])["truth"] for e in exps]
    res = analyse(outputs, truth_paths, exps, args)
    summary, rows = summarise(res, exps, args)
    from astropy.table import Table

    from cloudcov import maps as cm

    Table(rows).write(args.out / "pixels.ecsv", format="ascii.ecsv", overwrite=True)
    keep = ("count", "count_all", "z_conventional", "z_lpi", "z_ratio", "ratio",
            "zmed_conventional", "zmed_lpi")
    cm.write_maps(args.out / "maps.fits", {k: res["maps"][k] for k in keep},
                  meta=dict(NSIDE0=NSIDE, MINCOUNT=args.min_count))
    lonra = (args.lmin - 3, args.lmax + 3)
    latra = (-args.bmax - 3, args.bmax + 3)
    figs = [] if args.no_figures else figures(res, args.out, lonra, latra)
    total = time.perf_counter() - t0
    env = _synth.environment()
    data = dict(
        description="Simulated DECaPS2-like survey, HEALPix maps of IQR/1.349 of Z "
                    "(validation/scripts/06_healpix_maps.py; paper sec. 5.4)",
        command=" ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        quick=args.quick, seed=args.seed,
        provenance=dict(cloudcov_version=cloudcov.__version__, git_commit=_git_commit(),
                        environment=env),
        footprint=dict(lmin=args.lmin, lmax=args.lmax, bmax=args.bmax, nside=NSIDE,
                       n_exposures=len(exps), n_ccds_lpi=int(sum(r.get("nccd", 0) for r in prep))),
        model=dict(density="3.0e-3 + 9.0e-3 exp(-|b|/3) exp(-|l|/40) + 1.3e-2 exp(-(l/7)^2/2 - (b/4)^2/2) px^-2",
                   structure="A sigma_sky GRF(P~k^-3), A = 0.1 + 0.3 exp(-|b|/2) + 0.5 exp(-(l/8)^2/2 - (b/5)^2/2)",
                   nebulae=[dict(name=n, l=l0, b=b0, image=f, radius=NEBULA_RADIUS)
                            for n, l0, b0, f in NEBULAE],
                   sky=SKY, gain=GAIN, fluxes=[FMIN, FMAX], ccd_side=[SIDE_MIN, args.side_max],
                   n0=N0, inject_frac=QUICK_FRAC if args.quick else INJECT_FRAC,
                   target_isolated_per_pixel=TARGET_ISO, max_images=MAX_IMAGES,
                   isolation="no other source within 4/3 x the simulated PSF FWHM",
                   crowdsource_threshold=THRESHOLD, injection_refit_psf=False),
        selection=dict(cuts="paper footnote 15", dnt_ignore=DNT_IGNORE, isolation="none (as the "
                       "paper's survey maps); isolated-only numbers under 'isolated'",
                       match_radius_arcsec=1.0),
        lpi_run=how, paper=PAPER, targets=TARGETS,
        n_injected=len(res["stars"]), n_matched=res["n_matched"], n_scored=res["n_scored"],
        seconds=dict(total=round(total, 1), prepare=round(t_prep, 1), lpi=round(t_lpi, 1),
                     prepare_crowdsource=round(sum(r.get("seconds_crowdsource", 0) for r in prep), 1)),
        figures=figs, **summary)
    with open(args.out / "results.json", "w") as f:
        json.dump(_synth.to_jsonable(data), f, indent=1)
    log(f"{summary['n_pixels']} pixels with >= {args.min_count} stars: median IQR/1.349 "
        f"conventional {summary['median_iqr_conventional']}, LPI {summary['median_iqr_lpi']}; "
        f"max LPI {summary['max_iqr_lpi']}; regions {summary['regions']}")
    log(f"pooled: {summary['pooled']}")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
