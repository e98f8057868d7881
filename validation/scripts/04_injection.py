#!/usr/bin/env python
"""Injection tests of LPI photometry on three real fields (paper secs. 4.3, 5.2, 5.3).

For each field -- the nebulous DSS HorseHead plate, the crowded 2MASS K mosaic of the
Galactic centre and the Spitzer/IRAC GLIMPSE mosaic (README's "uncrowded" field) -- this
script

1. builds a noise model, data-quality mask and weights, converts the image to
   "DECam-like ADU" (see *Units* below) and runs the real crowdsource pipeline
   (``crowdsource.crowdsource_base.fit_im`` with a refitted PSF, as
   ``validation/make_embedded_example.py`` does);
2. makes ``--nimages`` injection images: 10% more stars (``--inject-frac``) with the
   PSF crowdsource fitted to the original image, fluxes drawn from the ECDF of the
   detected good stars, uniform positions >= 33 px from the edges, Poisson noise at the
   field's gain and the weights updated for it (as ``crowdsource.decam_inject`` does for
   DECaPS2);
3. re-runs crowdsource on every injection image as if it were a standard image (new
   sky, new PSF fit, new catalogue), matches the injected stars to detections within
   ``--match-radius`` (1 px) one to one, and flags injected stars with another source
   (original detection or other injected star) closer than 4/3 FWHM (paper sec. 4.3);
4. runs ``cloudcov.process_ccd`` on every injection image's crowdsource outputs;
5. computes, for the matched, isolated injected stars with a clean ``dnt``:
   conventional ``Z = (flux - true)/dflux`` and LPI ``Z = (cflux - true)/dcflux``; the
   IQR/1.349 of each; the fraction with ``|Z| > 3``; the paper's eq. 11 ratio
   ``sigma(f^b/dcflux) / sigma((flux - true)/dcflux)``; and the correlation of ``Z`` with
   the local crowdsource residual (mean of ``(image - model) * sqrt(ivar)`` in an annulus
   ``2 FWHM <= r <= 16 px`` around the star) and with ``fdb_res``.

Outputs in ``--out`` (default ``validation/results/injection/``): ``injection.json`` (all
numbers, configuration, timings), ``injection_data.npz`` (per-star arrays and quantised
residual images, for the figures and the notebook), and the figures
``injection_zmap_<field>.png`` (paper Fig. 10), ``injection_zpdf.png`` (Fig. 8 right),
``injection_fb_vs_err.png`` (Fig. 11).

Units.  cloudcov keeps three constants of CloudCovErr.jl in absolute ADU: ``thr`` and
``outthr`` (parameters) and the 1e4 ADU floor below which a star is masked as if it had
1e4 ADU (hard-coded, paper sec. 5.1); crowdsource has absolute constants too (e.g.
``guessflux > 1e5``).  To give all of them their DECaPS meaning relative to the noise, every
image is multiplied by ``scale = 10 / median(sigma)`` before anything else, so that the sky
noise is 10 "ADU" (DECaPS: thr = 20 ADU is ~1-2 sigma of sky), and the gain is divided by
``scale``.  Then ``thr=20, outthr=20000`` are used unchanged.  Z-scores and the eq. 11 ratio
do not depend on this scale; fluxes in the JSON are in the scaled units (divide by
``scale`` for the native ones).

Fields (native units -> noise model -> gain):

* ``horsehead``: full 893x891 DSS plate, photographic density.  Noise and saturation as in
  ``make_embedded_example.py`` (lag-6 second differences, variance-density relation,
  saturation at 21000 grown by 1 px -> DQ 3); every pixel gets crowdsource's nebulosity
  bits (diffuse, nodeblend, sharp); threshold 12; Poisson-equivalent gain
  ``median(sky*ivar)``.
* ``gc``: 400x400 centre of the 720x721 2MASS K mosaic (5"/px, stars ~1.6 px FWHM).  The
  instrumental noise is far below the confusion noise of unresolved stars, so sigma is the
  lower-envelope scatter ``P50 - P15.87`` of the 15-px-median high-passed image in 40 px
  blocks (3x3-block median, bilinear); threshold 5; Poisson-equivalent gain.
* ``spitzer``: 513x512 cutout of the IRAC 4.5 um GLIMPSE mosaic.  MJy/sr -> DN of one
  1.2 s frame with ``DN = I * EXPTIME / FLUXCONV`` (header: FLUXCONV is MJy/sr per DN/s);
  gain = header GAIN (3.7 e-/DN, conservative: the mosaic averages ~2 frames);
  sigma as for ``gc`` (the background is confusion-limited too, ~7 DN vs ~3 DN of photon
  noise); 3 NaN pixels -> DQ 1; threshold 5.

Run (about 13 minutes on 2 cores for all fields; ``--quick`` about 1 minute; ``--reanalyse``
recomputes the statistics and figures from the stored per-star arrays in seconds)::

    python validation/scripts/04_injection.py --field all
    python validation/scripts/04_injection.py --field horsehead --quick --out /tmp/inj
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage, stats
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "real"
DEFAULT_OUT = REPO / "validation" / "results" / "injection"

# decam_inject.scatter_stars' "bad" flag bits (DECam CP codes as 2**code, plus
# crowdsource's extrabits) -- a star with any of them is not used for the flux ECDF.
BADFLAGS = 2**1 + 2**3 + 2**4 + 2**5 + 2**7 + 2**20 + 2**23 + 2**24
DQ_SATURATED = 3
DIFFUSE_BIT = 2**21
NOISE_TARGET = 10.0      # sky sigma in "DECam-like ADU" after scaling
EDGE = 33                # injected centres >= 33 px from the edges (decam_inject)
INJ_STAMP = 63           # size of the rendered PSF stamp for injected stars
ANNULUS_MAX = 16.0       # outer radius of the local-residual annulus (= LPI good circle)
# dnt bits that do not disqualify a star from the headline sample ("clean"): 4 (cloudcov's
# condition-number guard redid the solve in float64 -- not a CloudCovErr.jl bit), 8 and 16
# (the crowdsource PSF has slightly negative pixels, min/max > -0.1; |PSF| is used).
CLEAN_IGNORED_BITS = 4 | 8 | 16
PAPER = {"eq11": {"uncrowded": 0.23, "crowded": 0.76, "nebulous": 0.95},
         "iqr_footprint_median": {"conventional": 1.17, "lpi": 1.02}}
ROLE = {"horsehead": "nebulous", "gc": "crowded", "spitzer": "uncrowded"}


@dataclass
class FieldConfig:
    name: str
    file: str
    rows: tuple
    cols: tuple
    quick_rows: tuple
    quick_cols: tuple
    threshold: float
    fwhm0: float
    noise: str            # "plate" | "envelope"
    nebulous_bits: bool
    nimages: int
    satlevel: float | None = None
    units: str = ""


FIELDS = {
    "horsehead": FieldConfig(
        "horsehead", "HorseHead.fits", (0, 893), (0, 891), (0, 893), (0, 891),
        threshold=12.0, fwhm0=3.0, noise="plate", nebulous_bits=True, nimages=24,
        satlevel=21000.0, units="photographic density"),
    "gc": FieldConfig(
        "gc", "gc_2mass_k.fits", (160, 560), (160, 560), (260, 420), (260, 420),
        threshold=5.0, fwhm0=1.5, noise="envelope", nebulous_bits=False, nimages=4,
        units="2MASS K DN (Montage mosaic)"),
    "spitzer": FieldConfig(
        "spitzer", "spitzer_example_image.fits", (0, 513), (256, 768), (0, 200), (400, 656),
        threshold=5.0, fwhm0=2.0, noise="envelope", nebulous_bits=False, nimages=2,
        units="DN per 1.2 s frame (from MJy/sr)"),
}


# ----------------------------------------------------------------------------- helpers
def _load_embedded_module():
    path = REPO / "validation" / "make_embedded_example.py"
    spec = importlib.util.spec_from_file_location("make_embedded_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def envelope_sigma(im, good, block=40, hp_size=15):
    """Lower-envelope noise: ``P50 - P15.87`` of the high-passed image in blocks.

    In confusion-limited fields most pixels hold some star light, so a clipped standard
    deviation measures the confusion, not the sky noise; the lower half of the pixel
    distribution is much less affected by the (positive) star light.
    """
    a = np.where(good, im, np.nan).astype("f8")
    fill = np.where(good, a, np.nanmedian(a))
    hp = a - ndimage.median_filter(fill, size=hp_size, mode="reflect")
    nbr = -(-a.shape[0] // block)
    nbc = -(-a.shape[1] // block)
    grid = np.full((nbr, nbc), np.nan)
    for i in range(nbr):
        for j in range(nbc):
            v = hp[i * block:(i + 1) * block, j * block:(j + 1) * block].ravel()
            v = v[np.isfinite(v)]
            if v.size >= 100:
                p16, p50 = np.percentile(v, [15.87, 50])
                grid[i, j] = p50 - p16
    grid[~np.isfinite(grid)] = np.nanmedian(grid)
    grid = ndimage.median_filter(grid, size=3, mode="nearest")
    return _load_embedded_module().block_grid_to_pixels(grid, block, a.shape)


def load_field(cfg: FieldConfig, quick: bool, mee):
    """Image in scaled units, DQ, IVAR, gain and the bookkeeping for one field."""
    path = REAL / cfg.file
    with fits.open(path) as hdul:
        hdr = hdul[0].header.copy()
        full = np.asarray(hdul[0].data, dtype="f8")
    rows, cols = (cfg.quick_rows, cfg.quick_cols) if quick else (cfg.rows, cfg.cols)
    im = np.ascontiguousarray(full[rows[0]:rows[1], cols[0]:cols[1]])
    info = dict(file=str(path.name), rows=list(rows), cols=list(cols), shape=list(im.shape),
                units_native=cfg.units)
    if cfg.name == "spitzer":
        conv = float(hdr["EXPTIME"]) / float(hdr["FLUXCONV"])
        im = im * conv
        gain_native = float(hdr["GAIN"])
        info.update(mjysr_to_dn=conv, gain_source="header GAIN (e-/DN, one 1.2 s frame)")
    bad = ~np.isfinite(im)
    im[bad] = np.nanmedian(im)
    dq = np.where(bad, 1, 0).astype("i2")
    if cfg.satlevel is not None:
        sat = ndimage.binary_dilation(im >= cfg.satlevel, structure=np.ones((3, 3), bool))
        dq[sat] = DQ_SATURATED
    if cfg.noise == "plate":
        sigma, (v0, v1), nrep = mee.noise_sigma(im)
        info.update(noise_model="plate grain: lag-6 2nd differences, var-density relation",
                    noise_var0=v0, noise_var1=v1, noise_blocks_replaced=nrep)
    else:
        sigma = envelope_sigma(im, dq == 0)
        info.update(noise_model="lower envelope P50-P15.87 of 15px-median high-pass, 40px blocks")
    sig_med = float(np.median(sigma[dq == 0]))
    scale = NOISE_TARGET / sig_med
    im = (im * scale).astype("f4")
    sigma = sigma * scale
    ivar = (1.0 / sigma**2).astype("f4")
    ivar[dq != 0] = 0
    if cfg.name == "spitzer":
        gain = gain_native / scale
    else:
        gain = None   # Poisson-equivalent median(SKY * IVAR), after the first crowdsource run
        gain_native = None
        info.update(gain_source="Poisson-equivalent median(crowdsource SKY * IVAR) of the "
                                "original image (make_embedded_example.py)")
    info.update(sigma_median_native=sig_med, scale=scale, gain=gain, gain_native=gain_native,
                satlevel=None if cfg.satlevel is None else cfg.satlevel * scale,
                threshold=cfg.threshold, fwhm0=cfg.fwhm0, n_dq=int((dq != 0).sum()))
    return im, dq, ivar, gain, info


def crowdsource_dq(dq, nebulous):
    from crowdsource import crowdsource_base as cb
    dq_cs = 2 ** dq.astype("i8")
    if nebulous:
        dq_cs = dq_cs | DIFFUSE_BIT | cb.nodeblend_maskbit | cb.sharp_maskbit
    return dq_cs


def run_cs(mee, im, ivar, dq, cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat, model, sky, psf, rec, _ = mee.run_crowdsource(
            im, ivar, crowdsource_dq(dq, cfg.nebulous_bits), cfg.threshold, cfg.fwhm0, False)
    return cat, np.asarray(model, "f4"), np.asarray(sky, "f4"), psf


def psf_stamp(psf, r, c, size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(psf(r, c, stampsz=size), dtype="f8")


def sample_fluxes(flux, n, rng):
    """Inverse-ECDF sampling (crowdsource.decam_inject.sample_stars)."""
    xs = np.sort(flux)
    ys = np.arange(1, xs.size + 1) / xs.size
    u = rng.uniform(0, 1, n)
    return np.interp(u, ys, xs)


def inject(im, ivar, dq, cat, psf, gain, frac, rng, satlevel=None):
    """Add ``frac * n_good`` stars; returns image, ivar, dq and the truth table."""
    flags = np.asarray(cat["flags"]).astype("i8") & 0xFFFFFFFF
    flux = np.asarray(cat["flux"], "f8")
    good = ((flags & BADFLAGS) == 0) & (flux > 0)
    good &= flux < np.percentile(flux[good], 99)   # analogue of DECaPS2's "< 17 mag" cut
    n = max(1, int(round(frac * good.sum())))
    amp = sample_fluxes(flux[good], n, rng)
    nr, nc = im.shape
    xr = rng.uniform(EDGE, nr - EDGE, n)
    yc = rng.uniform(EDGE, nc - EDGE, n)
    h = INJ_STAMP // 2
    add = np.zeros((nr + 2 * h, nc + 2 * h))
    for i in range(n):
        st = psf_stamp(psf, xr[i], yc[i], INJ_STAMP)   # centred on rint(x), rint(y)
        lam = amp[i] * gain * st
        draw = (rng.poisson(np.clip(lam, 0, None)) + np.minimum(lam, 0)) / gain
        r0, c0 = int(np.rint(xr[i])), int(np.rint(yc[i]))
        add[r0:r0 + INJ_STAMP, c0:c0 + INJ_STAMP] += draw
    add = add[h:-h, h:-h]
    im2 = (im + add).astype("f4")
    weighted = ivar > 0
    var = 1.0 / np.where(weighted, ivar, 1.0) + np.clip(add, 0, None) / gain
    ivar2 = np.where(weighted, 1.0 / var, 0).astype("f4")
    dq2 = dq.copy()
    if satlevel is not None:   # the injected image is processed as a standard image
        sat = ndimage.binary_dilation(im2 >= satlevel, structure=np.ones((3, 3), bool))
        dq2[sat & (dq2 == 0)] = DQ_SATURATED
        ivar2[dq2 != 0] = 0
    truth = dict(x=xr, y=yc, flux=amp)
    return im2, ivar2, dq2, truth, int(good.sum())


def match(truth, cat, cat0, radius, iso_dist):
    """One-to-one match of injected stars to detections; isolation flag."""
    tx = np.column_stack([truth["x"], truth["y"]])
    det = np.column_stack([np.asarray(cat["x"], "f8"), np.asarray(cat["y"], "f8")])
    idx = np.full(len(tx), -1)
    if len(det):
        d, j = cKDTree(det).query(tx, distance_upper_bound=radius)
        ok = np.isfinite(d)
        idx[ok] = j[ok]
        # a detection claimed by two injected stars is a blend: drop both
        u, cnt = np.unique(idx[idx >= 0], return_counts=True)
        idx[np.isin(idx, u[cnt > 1])] = -1
    # isolation: nearest other source among original detections and other injected stars
    orig = np.column_stack([np.asarray(cat0["x"], "f8"), np.asarray(cat0["y"], "f8")])
    d0 = cKDTree(orig).query(tx)[0] if len(orig) else np.full(len(tx), np.inf)
    if len(tx) > 1:
        d1 = cKDTree(tx).query(tx, k=2)[0][:, 1]
    else:
        d1 = np.full(len(tx), np.inf)
    nearest = np.minimum(d0, d1)
    return idx, nearest, nearest > iso_dist


def annulus_residual(resid_sig, ok, r, c, r_in, r_out=ANNULUS_MAX):
    """Mean of the sigma-normalised residual in ``r_in <= dist <= r_out`` around (r, c)."""
    h = int(np.ceil(r_out))
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
    out = np.full(len(r), np.nan)
    nr, nc = resid_sig.shape
    for k in range(len(r)):
        r0, c0 = int(np.rint(r[k])), int(np.rint(c[k]))
        dist = np.hypot(yy + r0 - r[k], xx + c0 - c[k])
        ring = (dist >= r_in) & (dist <= r_out)
        rr, cc = yy[ring] + r0, xx[ring] + c0
        inside = (rr >= 0) & (rr < nr) & (cc >= 0) & (cc < nc)
        rr, cc = rr[inside], cc[inside]
        m = ok[rr, cc]
        if m.sum() >= 10:
            out[k] = float(resid_sig[rr[m], cc[m]].mean())
    return out


def robust_sigma(z):
    z = z[np.isfinite(z)]
    if z.size < 4:
        return float("nan")
    q75, q25 = np.percentile(z, [75, 25])
    return float((q75 - q25) / 1.34898)


def zstats(z):
    z = np.asarray(z, "f8")
    z = z[np.isfinite(z)]
    if z.size == 0:
        return dict(n=0)
    k = int(np.sum(np.abs(z) > 3))
    ci = stats.binomtest(k, z.size).proportion_ci(0.95, method="exact")
    return dict(n=int(z.size), median=float(np.median(z)), mean=float(np.mean(z)),
                std=float(np.std(z)), iqr_sigma=robust_sigma(z),
                frac_abs_gt3=k / z.size, n_abs_gt3=k,
                frac_abs_gt3_ci95=[float(ci.low), float(ci.high)])


def correlation(a, b):
    m = np.isfinite(a) & np.isfinite(b)
    if m.sum() < 5:
        return dict(n=int(m.sum()), pearson=float("nan"), spearman=float("nan"))
    sp = stats.spearmanr(a[m], b[m])
    pe = stats.pearsonr(a[m], b[m])
    return dict(n=int(m.sum()), pearson=float(pe[0]), pearson_p=float(pe[1]),
                spearman=float(sp[0]), spearman_p=float(sp[1]))


def bootstrap(fn, arrays, rng, n=300):
    """Bootstrap standard error of ``fn(*arrays)`` over stars."""
    m = len(arrays[0])
    if m < 5:
        return float("nan")
    vals = []
    for _ in range(n):
        i = rng.integers(0, m, m)
        vals.append(fn(*(a[i] for a in arrays)))
    vals = np.asarray(vals)
    return float(np.nanstd(vals))


SNR_BINS = ((0, 10), (10, 30), (30, 100), (100, np.inf))


def _rms(v):
    v = v[np.isfinite(v)]
    return float(np.sqrt(np.mean(v**2))) if v.size else float("nan")


def eq11(fb, err, dcflux, robust=False):
    s = robust_sigma if robust else (lambda v: float(np.std(v[np.isfinite(v)])))
    return s(fb / dcflux) / s(err / dcflux)


def summarise(stars, rng):
    """All numbers of one field from the per-star table (dict of arrays)."""
    out = {"dnt_bits_matched": {str(b): int(np.sum(stars["matched"] & (stars["dnt"] & b != 0)))
                                for b in (1, 2, 4, 8, 16, 32, 64)},
           "n_injected": int(stars["matched"].size), "n_matched": int(stars["matched"].sum()),
           "n_matched_isolated": int((stars["matched"] & stars["isolated"]).sum())}
    sel_names = {"dnt0": stars["dnt"] == 0,
                 "dnt_no_negpsf": (stars["dnt"] & ~(8 | 16)) == 0,
                 "clean": (stars["dnt"] & ~CLEAN_IGNORED_BITS) == 0}
    base_iso = stars["matched"] & stars["isolated"]
    base_all = stars["matched"]
    for sname, dsel in sel_names.items():
        for bname, base in (("isolated", base_iso), ("all_matched", base_all)):
            m = base & dsel & np.isfinite(stars["dcflux"]) & (stars["dflux"] > 0)
            true = stars["true"][m]
            zc = (stars["flux"][m] - true) / stars["dflux"][m]
            zl = (stars["cflux"][m] - true) / stars["dcflux"][m]
            fb = stars["cflux"][m] - stars["flux"][m]            # fdb_tot
            err = stars["flux"][m] - true
            dc = stars["dcflux"][m]
            res = dict(n=int(m.sum()), conventional=zstats(zc), lpi=zstats(zl))
            res["eq11_std"] = float(eq11(fb, err, dc)) if m.sum() > 2 else float("nan")
            res["eq11_robust"] = float(eq11(fb, err, dc, robust=True)) if m.sum() > 4 else float("nan")
            res["eq11_std_se"] = bootstrap(lambda a, b, c: eq11(a, b, c), (fb, err, dc), rng)
            res["eq11_robust_se"] = bootstrap(lambda a, b, c: eq11(a, b, c, True), (fb, err, dc), rng)
            res["iqr_sigma_se"] = {"conventional": bootstrap(robust_sigma, (zc,), rng),
                                   "lpi": bootstrap(robust_sigma, (zl,), rng)}
            loc = stars["local_resid"][m]
            res["corr_local_resid"] = {"conventional": correlation(zc, loc),
                                       "lpi": correlation(zl, loc)}
            fres = stars["fdb_res"][m] / dc
            res["corr_fdb_res"] = {"conventional": correlation(zc, fres),
                                   "lpi": correlation(zl, fres)}
            ferr_c, ferr_l = err / true, (stars["cflux"][m] - true) / true
            res["frac_err"] = {
                "conventional": {"iqr_sigma": robust_sigma(ferr_c), "rms": _rms(ferr_c)},
                "lpi": {"iqr_sigma": robust_sigma(ferr_l), "rms": _rms(ferr_l)}}
            # paper Fig. 11: f^b (paper sign, flux - cflux) against the flux error
            res["corr_fb_err"] = correlation(-fb / true, ferr_c)
            snr = true / stars["dflux"][m]
            res["by_snr"] = []
            for lo, hi in SNR_BINS:
                k = (snr >= lo) & (snr < hi)
                res["by_snr"].append(dict(snr=[lo, hi], n=int(k.sum()), conventional=zstats(zc[k]),
                                          lpi=zstats(zl[k])))
            res["median_dcflux_over_dflux"] = float(np.median(dc / stars["dflux"][m])) if m.any() else float("nan")
            res["median_dcflux_over_diag"] = float(np.median(dc / stars["dcflux_diag"][m])) if m.any() else float("nan")
            out[f"{sname}/{bname}"] = res
    return out


# ----------------------------------------------------------------------------- per field
def run_field(cfg: FieldConfig, args, mee, log):
    import cloudcov

    t_field = time.perf_counter()
    timings = dict(crowdsource=0.0, cloudcov=0.0, inject=0.0)
    im, dq, ivar, gain, info = load_field(cfg, args.quick, mee)
    log(f"[{cfg.name}] {info['shape']} scale {info['scale']:.4g}")
    t = time.perf_counter()
    cat0, model0, sky0, psf0 = run_cs(mee, im, ivar, dq, cfg)
    timings["crowdsource"] += time.perf_counter() - t
    if gain is None:
        gain = float(np.median((sky0 * ivar)[ivar > 0]))
        info.update(gain=gain, gain_native=gain * info["scale"])
    cen = (im.shape[0] // 2, im.shape[1] // 2)
    stamp = psf_stamp(psf0, cen[0], cen[1], INJ_STAMP)
    from crowdsource import psf as cspsf
    fwhm = float(cspsf.neff_fwhm(stamp / stamp.sum()))
    minmax = float(stamp.min() / stamp.max())
    r_in = max(2.0 * fwhm, 4.0)
    iso_dist = 4.0 / 3.0 * fwhm
    beam = 4 * np.pi * (fwhm / 2.3548) ** 2
    info.update(n_detected=len(cat0), psf_fwhm=fwhm, psf_minmax=minmax,
                density_per_pix=len(cat0) / im.size, sources_per_beam=len(cat0) / im.size * beam,
                annulus=[r_in, ANNULUS_MAX], isolation_px=iso_dist)
    log(f"[{cfg.name}] crowdsource: {len(cat0)} stars in {timings['crowdsource']:.1f} s; "
        f"FWHM {fwhm:.2f} px, PSF min/max {minmax:.3g}, gain {gain:.4g}")
    resid0 = np.where(dq == 0, (im - model0) * np.sqrt(ivar), np.nan)

    nimages = 1 if args.quick else (args.nimages or cfg.nimages)
    frac = args.inject_frac if args.inject_frac is not None else (0.5 if args.quick else 0.1)
    cols = {k: [] for k in ("image", "x", "y", "true", "matched", "isolated", "nearest", "xdet",
                            "ydet", "flux", "dflux", "cflux", "dcflux", "dcflux_diag", "fdb_res",
                            "fdb_pred", "cchi2", "kcond", "kpred", "dnt", "local_resid",
                            "csflags")}
    per_image = []
    for k in range(nimages):
        rng = np.random.default_rng([args.seed, list(FIELDS).index(cfg.name), k])
        t = time.perf_counter()
        im2, ivar2, dq2, truth, ngood = inject(im, ivar, dq, cat0, psf0, gain, frac, rng,
                                                info["satlevel"])
        timings["inject"] += time.perf_counter() - t
        t = time.perf_counter()
        cat, model, sky, psf = run_cs(mee, im2, ivar2, dq2, cfg)
        tcs = time.perf_counter() - t
        timings["crowdsource"] += tcs
        idx, nearest, iso = match(truth, cat, cat0, args.match_radius, iso_dist)
        t = time.perf_counter()
        lpi = cloudcov.process_ccd(im2, model, sky, cat, psf, gain, dq=dq2, thr=args.thr,
                                   outthr=args.outthr, seed=args.seed * 1000 + k,
                                   threads=args.threads)
        tlpi = time.perf_counter() - t
        timings["cloudcov"] += tlpi
        n = len(truth["x"])
        m = idx >= 0
        j = np.where(m, idx, 0)
        resid_sig = np.where(dq2 == 0, (im2 - model) * np.sqrt(ivar2), 0)
        loc = annulus_residual(resid_sig, dq2 == 0, truth["x"], truth["y"], r_in)
        get = lambda name, dt="f8": np.where(m, np.asarray(lpi[name], dt)[j], np.nan if dt == "f8" else 0)
        cols["image"].append(np.full(n, k))
        cols["x"].append(truth["x"])
        cols["y"].append(truth["y"])
        cols["true"].append(truth["flux"])
        cols["matched"].append(m)
        cols["isolated"].append(iso)
        cols["nearest"].append(nearest)
        cols["xdet"].append(get("x"))
        cols["ydet"].append(get("y"))
        for name in ("flux", "dflux", "cflux", "dcflux", "dcflux_diag", "fdb_res", "fdb_pred",
                     "cchi2"):
            cols[name].append(get(name))
        for name in ("kcond", "kpred", "dnt"):
            cols[name].append(get(name, "i8"))
        cols["csflags"].append(np.where(m, np.asarray(cat["flags"]).astype("i8")[j] & 0xFFFFFFFF, 0))
        cols["local_resid"].append(loc)
        meta = lpi.meta.get("cloudcov", {})
        per_image.append(dict(n_injected=n, n_good_for_ecdf=ngood, n_detected=len(cat),
                              n_matched=int(m.sum()), n_isolated_matched=int((m & iso).sum()),
                              seconds_crowdsource=round(tcs, 2), seconds_cloudcov=round(tlpi, 2),
                              cloudcov_meta={kk: v for kk, v in meta.items()
                                             if isinstance(v, (int, float, str, bool))}))
        log(f"[{cfg.name}] image {k + 1}/{nimages}: injected {n}, detected {len(cat)}, "
            f"matched {int(m.sum())} ({int((m & iso).sum())} isolated); crowdsource {tcs:.1f} s, "
            f"cloudcov {tlpi:.1f} s ({len(cat)} stars)")
    # the stored precision (STAR_COLUMNS), so that --reanalyse reproduces these numbers
    stars = stars_arrays(dict(stars={k: np.concatenate(v).astype(STAR_COLUMNS[k])
                                     for k, v in cols.items()}))
    rng = np.random.default_rng([args.seed, 99])
    summary = summarise(stars, rng)
    timings["total"] = time.perf_counter() - t_field
    info.update(nimages=nimages, inject_frac=frac, match_radius=args.match_radius,
                thr=args.thr, outthr=args.outthr, threads=args.threads)
    return dict(config=info, per_image=per_image, summary=summary,
                timings={k: round(v, 2) for k, v in timings.items()},
                stars=stars), resid0


STAR_COLUMNS = {"image": "i2", "x": "f4", "y": "f4", "true": "f4", "matched": "?",
                "isolated": "?", "nearest": "f4", "xdet": "f4", "ydet": "f4", "flux": "f4", "dflux": "f4", "cflux": "f4",
                "dcflux": "f4", "dcflux_diag": "f4", "fdb_res": "f4", "fdb_pred": "f4",
                "cchi2": "f4", "kcond": "i4", "kpred": "i4", "dnt": "i2", "local_resid": "f4",
                "csflags": "i8"}


def stars_arrays(res):
    """Per-star dict of numpy arrays (float64 / int64 / bool) of one field's result."""
    out = {}
    for k, v in res["stars"].items():
        a = np.asarray(v)
        out[k] = a.astype(bool) if a.dtype.kind == "b" else (
            a.astype(np.int64) if a.dtype.kind in "iu" else a.astype(np.float64))
    return out


def primary_selection(res):
    """Selection used for the headline numbers: matched, isolated, clean ``dnt``.

    ``dnt & ~(4|8|16) == 0``: the crowdsource PSFs of the plate and of the 2MASS mosaic have
    slightly negative pixels, so bits 8/16 fire for every star there; bit 4 (cloudcov's
    float64 retry) fires for most stars of correlated-noise fields.  Strict ``dnt == 0``
    and ``dnt & ~(8|16) == 0`` are in the JSON as well.
    """
    return "clean/isolated"


# ----------------------------------------------------------------------------- figures
def _sel(res):
    s = stars_arrays(res)
    d = (s["dnt"] & ~CLEAN_IGNORED_BITS) == 0
    m = s["matched"] & s["isolated"] & d & np.isfinite(s["dcflux"]) & (s["dflux"] > 0)
    return s, m


def _save_palette_png(fig, path, dpi):
    """Save as an 8-bit palette PNG (the noisy residual makes RGB PNGs ~0.5 MB)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(
        path, optimize=True)


def _finish(fig, path, dpi=80, palette=False):
    """Save and close the figure when ``path`` is given; otherwise return it."""
    import matplotlib.pyplot as plt

    if path is None:
        return fig
    if palette:
        _save_palette_png(fig, path, dpi)
    else:
        fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return None


def fig_zmap(res, resid, name, path=None):
    """Paper Fig. 10: residual image, conventional Z and LPI Z of injected stars on it."""
    import matplotlib.pyplot as plt

    s, m = _sel(res)
    zc = (s["flux"] - s["true"]) / s["dflux"]
    zl = (s["cflux"] - s["true"]) / s["dcflux"]
    nr, nc = resid.shape
    # display only: Gaussian smoothing (sigma = PSF sigma) brings out the structured residual
    psig = max(res["config"]["psf_fwhm"] / 2.3548, 1.0)
    resid = ndimage.gaussian_filter(resid, psig)
    vmax = 3.0 * robust_sigma(resid.ravel())   # +-3 robust sigma of the smoothed residual
    wide = nc > 1.3 * nr
    fig, axs = plt.subplots(1, 3, figsize=(18, 5.6 if not wide else 4.2), constrained_layout=True)
    ext = (-0.5, nc - 0.5, -0.5, nr - 0.5)
    im0 = axs[0].imshow(resid, origin="lower", cmap="gray", vmin=-vmax, vmax=vmax,
                        extent=ext, interpolation="nearest")
    fig.colorbar(im0, ax=axs[0], shrink=0.8, label=f"(image - model)/sigma, smoothed {psig:.1f} px")
    axs[0].set_title(f"{name} ({ROLE[name]}): crowdsource residual of the original image",
                     fontsize=11)
    for ax, z, lab in ((axs[1], zc, "conventional Z = (flux - true)/dflux"),
                       (axs[2], zl, "LPI Z = (cflux - true)/dcflux")):
        ax.imshow(resid, origin="lower", cmap="gray", vmin=-vmax, vmax=vmax, extent=ext,
                  interpolation="nearest", alpha=0.55)
        zz = np.clip(z[m], -5, 5)
        order = np.argsort(np.abs(zz))
        sc = ax.scatter(s["y"][m][order], s["x"][m][order], c=zz[order], cmap="RdBu_r",
                        vmin=-5, vmax=5, s=(14 if m.sum() < 800 else 7) + 10 * np.abs(zz[order]),
                        edgecolors="k", linewidths=0.3)
        st = zstats(z[m])
        ax.set_title(f"{lab}, injected stars\nIQR/1.349 = {st['iqr_sigma']:.2f}, |Z|>3: "
                     f"{100 * st['frac_abs_gt3']:.1f}% ({st['n_abs_gt3']}/{st['n']})", fontsize=11)
        fig.colorbar(sc, ax=ax, shrink=0.8, label="Z (clipped at +-5)")
    for ax in axs:
        ax.set_xlim(ext[:2])
        ax.set_ylim(ext[2:])
        ax.set_xlabel("column (y, px)")
        ax.set_ylabel("row (x, px)")
    return _finish(fig, path, dpi=72, palette=True)


def fig_zpdf(results, path=None):
    """Paper Fig. 8 right: PDFs of conventional vs LPI Z, one panel per field."""
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axs = plt.subplots(1, len(names), figsize=(6 * len(names), 4.8), squeeze=False,
                            constrained_layout=True)
    bins = np.linspace(-8, 8, 65)
    g = np.linspace(-8, 8, 400)
    for ax, name in zip(axs[0], names):
        res = results[name]
        s, m = _sel(res)
        zc = ((s["flux"] - s["true"]) / s["dflux"])[m]
        zl = ((s["cflux"] - s["true"]) / s["dcflux"])[m]
        for z, lab, col in ((zc, "conventional", "tab:orange"), (zl, "LPI", "tab:blue")):
            st = zstats(z)
            ax.hist(np.clip(z, bins[0] + 1e-6, bins[-1] - 1e-6), bins=bins, density=True,
                    histtype="step", lw=2, color=col,
                    label=f"{lab}: median {st['median']:+.2f}, IQR/1.349 {st['iqr_sigma']:.2f}")
        ax.plot(g, stats.norm.pdf(g), "k--", lw=1, label="N(0, 1)")
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 8)
        ax.set_xlim(bins[0], bins[-1])
        ax.set_xlabel("Z (clipped into the end bins)")
        ax.set_ylabel("PDF")
        ax.set_title(f"{name} ({ROLE[name]}), {int(m.sum())} injected stars", fontsize=11)
        ax.legend(fontsize=8.5, loc="upper left")
    return _finish(fig, path)


def fig_fb(results, path=None):
    """Paper Fig. 11: f^b/true vs fractional flux error (paper sign: f^b = flux - cflux)."""
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axs = plt.subplots(1, len(names), figsize=(5.6 * len(names), 5.2), squeeze=False,
                            constrained_layout=True)
    for ax, name in zip(axs[0], names):
        res = results[name]
        s, m = _sel(res)
        xe = ((s["flux"] - s["true"]) / s["true"])[m]
        yb = ((s["flux"] - s["cflux"]) / s["true"])[m]
        lim = float(np.nanpercentile(np.abs(np.concatenate([xe, yb])), 98)) * 1.15
        lim = max(lim, 0.05)
        H, xed, yed = np.histogram2d(xe, yb, bins=40, range=[[-lim, lim], [-lim, lim]])
        Hs = ndimage.gaussian_filter(H, 1.0)
        levels = [lv for lv in np.nanmax(Hs) * np.array([0.05, 0.15, 0.35, 0.6, 0.85]) if lv > 0]
        xc = 0.5 * (xed[1:] + xed[:-1])
        yc = 0.5 * (yed[1:] + yed[:-1])
        ax.scatter(xe, yb, s=5, c="0.35", alpha=0.6, lw=0)
        if len(levels) > 1 and m.sum() > 30:
            ax.contourf(xc, yc, Hs.T, levels=levels + [np.nanmax(Hs) * 1.01], cmap="viridis",
                        alpha=0.75)
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=1, label="1:1 (fully debiased)")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.axvline(0, color="0.5", lw=0.8)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        primary = res["summary"][primary_selection(res)]
        cc = np.corrcoef(xe, yb)[0, 1] if m.sum() > 2 else np.nan
        ax.set_title(f"{name} ({ROLE[name]}): eq. 11 ratio {primary['eq11_std']:.2f}\n"
                     f"(paper {PAPER['eq11'][ROLE[name]]:.2f}); Pearson r = {cc:.2f}, N = {int(m.sum())}",
                     fontsize=11)
        ax.set_xlabel("(flux - true) / true   [crowdsource fractional error]")
        ax.set_ylabel("f^b / true = (flux - cflux) / true")
        ax.legend(loc="upper left", fontsize=9)
    return _finish(fig, path)


def quantise_resid(resid, maxside=450):
    """uint8 residual/sigma in [-4, 4] binned so that the longer side <= maxside."""
    b = int(np.ceil(max(resid.shape) / maxside))
    r = np.nan_to_num(resid, nan=0.0)
    if b > 1:
        nr, nc = (resid.shape[0] // b) * b, (resid.shape[1] // b) * b
        r = r[:nr, :nc].reshape(nr // b, b, nc // b, b).mean(axis=(1, 3))
    q = np.clip(np.rint((np.clip(r, -4, 4) + 4) / 8 * 254), 0, 254).astype(np.uint8)
    return q, b


def dequantise_resid(q, b, shape):
    r = q.astype("f4") / 254 * 8 - 4
    if b > 1:
        r = np.repeat(np.repeat(r, b, axis=0), b, axis=1)
        full = np.zeros(shape, "f4")
        full[:r.shape[0], :r.shape[1]] = r
        r = full
    return r


def make_figures(results, resids, outdir):
    outdir = Path(outdir)
    paths = []
    for name, res in results.items():
        p = outdir / f"injection_zmap_{name}.png"
        fig_zmap(res, resids[name], name, p)
        paths.append(p)
    fig_zpdf(results, outdir / "injection_zpdf.png")
    fig_fb(results, outdir / "injection_fb_vs_err.png")
    return paths + [outdir / "injection_zpdf.png", outdir / "injection_fb_vs_err.png"]


def load_results(outdir):
    """``(data, results, residuals)`` of a run, for the notebook and the figures.

    ``data`` is the JSON; ``results[field]`` its field entry plus ``"stars"`` (per-star
    arrays from ``injection_data.npz``); ``residuals[field]`` the de-quantised
    (image - model)/sigma of the original crowdsource fit.
    """
    outdir = Path(outdir)
    with open(outdir / "injection.json") as f:
        data = json.load(f)
    results, resids = {}, {}
    with np.load(outdir / "injection_data.npz") as z:
        for name, res in data["fields"].items():
            results[name] = dict(res, stars={c: z[f"{name}/{c}"] for c in STAR_COLUMNS})
            resids[name] = dequantise_resid(z[f"{name}/resid"], int(z[f"{name}/resid_bin"]),
                                            tuple(res["config"]["shape"]))
    return data, results, resids


def reanalyse(outdir, seed):
    """Recompute every field's ``summary`` from ``injection_data.npz``; rewrite the JSON."""
    outdir = Path(outdir)
    data, results, _ = load_results(outdir)
    for name, res in results.items():
        stars = stars_arrays(res)
        data["fields"][name]["summary"] = summarise(stars, np.random.default_rng([seed, 99]))
    data["reanalysed"] = ("summaries recomputed from injection_data.npz with "
                          f"04_injection.py --reanalyse --seed {seed} --out {outdir.name}")
    with open(outdir / "injection.json", "w") as f:
        json.dump(data, f, indent=1)
    print(headline({n: data["fields"][n] for n in data["fields"]}))


def headline(results):
    """Plain-text table of the main numbers."""
    lines = [f"{'field':10s} {'N':>5s} {'convIQR':>8s} {'lpiIQR':>7s} {'conv>3':>7s} {'lpi>3':>7s} "
             f"{'eq11':>6s} {'eq11rob':>7s} {'rC_loc':>7s} {'rL_loc':>7s} {'sel':>22s}"]
    for name, res in results.items():
        sel = primary_selection(res)
        p = res["summary"][sel]
        lines.append(
            f"{name:10s} {p['n']:5d} {p['conventional'].get('iqr_sigma', np.nan):8.2f} "
            f"{p['lpi'].get('iqr_sigma', np.nan):7.2f} "
            f"{100 * p['conventional'].get('frac_abs_gt3', np.nan):6.1f}% "
            f"{100 * p['lpi'].get('frac_abs_gt3', np.nan):6.1f}% {p['eq11_std']:6.2f} "
            f"{p['eq11_robust']:7.2f} {p['corr_local_resid']['conventional']['spearman']:7.2f} "
            f"{p['corr_local_resid']['lpi']['spearman']:7.2f} {sel:>22s}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--field", choices=list(FIELDS) + ["all"], default="all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--quick", action="store_true",
                   help="one small cutout per field, one injection image, 50%% injections")
    p.add_argument("--nimages", type=int, default=None,
                   help="injection images per field (default: per-field, >= 300 matched stars)")
    p.add_argument("--inject-frac", type=float, default=None,
                   help="injected stars / good detected stars (default 0.1; 0.5 with --quick)")
    p.add_argument("--match-radius", type=float, default=1.0)
    p.add_argument("--thr", type=float, default=20.0, help="cloudcov thr in scaled ADU")
    p.add_argument("--outthr", type=float, default=20000.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--figures-only", action="store_true",
                   help="redraw the figures from the outputs already in --out")
    p.add_argument("--reanalyse", action="store_true",
                   help="recompute the statistics in injection.json (and the figures) from "
                        "the per-star arrays already in --out, without rerunning crowdsource")
    args = p.parse_args(argv)
    if args.figures_only or args.reanalyse:
        import matplotlib
        matplotlib.use("Agg")
        if args.reanalyse:
            reanalyse(args.out, args.seed)
        make_figures(*load_results(args.out)[1:], args.out)
        return 0

    import matplotlib
    matplotlib.use("Agg")
    if not REAL.is_dir():
        p.error(f"real data directory {REAL} not found")
    import crowdsource  # noqa: F401
    import cloudcov

    mee = _load_embedded_module()
    np.random.seed(args.seed)   # crowdsource does not draw, but be safe
    args.out.mkdir(parents=True, exist_ok=True)
    names = list(FIELDS) if args.field == "all" else [args.field]
    t0 = time.perf_counter()

    def log(msg):
        print(f"{time.perf_counter() - t0:7.1f}s {msg}", flush=True)

    from cloudcov._provenance import provenance
    prov = provenance()         # when the run starts (its own outputs do not count)
    results, resids = {}, {}
    for name in names:
        results[name], resids[name] = run_field(FIELDS[name], args, mee, log)
    total = time.perf_counter() - t0

    data = dict(
        description="cloudcov injection tests on real fields (validation/scripts/04_injection.py)",
        command=" ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        seed=args.seed, quick=args.quick, seconds_total=round(total, 1),
        machine=dict(platform=platform.platform(), processor=platform.processor(),
                     cpu_count=os.cpu_count(), python=platform.python_version()),
        versions=dict(cloudcov=cloudcov.__version__, numpy=np.__version__,
                      crowdsourcephoto=metadata.version("crowdsourcephoto")),
        provenance=prov,
        paper=PAPER, roles=ROLE,
        targets=dict(eq11_ordering="uncrowded < crowded < nebulous", eq11_uncrowded_max=0.3,
                     nebulous_lpi_frac_abs_gt3_max=1.5 * 0.0027, corr_local_resid_max=0.1),
        primary_selection={n: primary_selection(r) for n, r in results.items()},
        data_file="injection_data.npz (per-star arrays '<field>/<column>', quantised "
                  "residual images '<field>/resid' with binning '<field>/resid_bin')",
        fields={n: {k: v for k, v in r.items() if k != "stars"} for n, r in results.items()})
    with open(args.out / "injection.json", "w") as f:
        json.dump(data, f, indent=1)
    arrays = {}
    for name, r in results.items():
        for col, dt in STAR_COLUMNS.items():
            arrays[f"{name}/{col}"] = np.asarray(r["stars"][col]).astype(dt)
        arrays[f"{name}/resid"], arrays[f"{name}/resid_bin"] = quantise_resid(resids[name])
    np.savez_compressed(args.out / "injection_data.npz", **arrays)
    if not args.no_figures:
        make_figures(*load_results(args.out)[1:], args.out)
    print(headline(results))
    print(f"total {total:.1f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
