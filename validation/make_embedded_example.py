#!/usr/bin/env python
"""Build cloudcov's embedded real example from the DSS Horsehead plate scan.

The script cuts a 400x400 px region around the Horsehead nebula (B33) out of
``HorseHead.fits`` (astropy-data; Digitized Sky Survey scan of a UK Schmidt
SERC-ER plate), builds a noise model for the photographic grain, runs the real
crowdsource pipeline (``crowdsource.crowdsource_base.fit_im``) on it and writes

* ``python/cloudcov/data/horsehead_example.fits`` with extensions
  IMAGE, MODEL, SKY, DQ, IVAR, PSF, PSF_REC and CAT (see
  ``python/cloudcov/data/README.md``),
* ``validation/figures/embedded_example_detections.png`` (cutout with the
  crowdsource detections) and
  ``validation/figures/embedded_example_residual.png`` (image, model,
  image - model).

Conventions are crowdsource's: numpy arrays are ``[row, col]``; catalogue ``x``
is the ROW index and ``y`` the column index, 0-based, pixel centres at
integers.

How to rerun (about 10 s on one core)::

    python3 -m venv /tmp/venv-cs && . /tmp/venv-cs/bin/activate
    pip install numpy scipy astropy matplotlib
    pip install --no-deps crowdsourcephoto   # NOT tensorflow/keras
    python validation/make_embedded_example.py            # defaults
    python validation/make_embedded_example.py --seed 0 --out /tmp/x.fits \\
        --figdir /tmp/figs

Choices (details in the data README):

* Noise: DSS pixels are photographic density, the grain noise is spatially
  correlated (correlation length ~2-3 px) and grows with density.  The
  per-pixel sigma is estimated from second differences at a lag of 6 px
  (beyond the grain correlation length, insensitive to linear gradients of
  the nebula): ``D = I - (I[+6] + I[-6])/2`` has ``var(D) = 1.5 sigma^2``.
  A 3-sigma-clipped standard deviation is taken in 25x25 px blocks (both
  axes pooled), median-filtered over 3x3 blocks and interpolated
  bilinearly: ``IVAR = 1/sigma^2``, zero on flagged pixels.
* Saturation: the density saturates in the cores of bright stars at about
  21000-22400; pixels >= ``--satlevel`` (21000), grown by one pixel, get
  DQ = 3 (the DECam CP code for "saturated") and zero weight.
* Gain: there is no physical gain for a plate.  GAIN is the
  Poisson-equivalent value ``median(SKY * IVAR)`` over weighted pixels, i.e.
  ``gain * sky ~ (sky / sigma)^2``, so that ``Poisson(gain*sky)/gain`` has the
  measured grain variance.  It comes out ~0.04 "e-/ADU" and is nearly the same
  in the dark head and in the bright nebula (the grain variance is roughly
  proportional to the density).  GAINCRWD (crowdsource's own definition,
  median(IMAGE*IVAR)) is recorded as well.
* crowdsource: the initial PSF is a Moffat (beta=3, FWHM 3 px); crowdsource
  refits it each iteration with ``crowdsource.psf.fit_linear_static_wing``
  (Moffat (beta=3) convolved with a "static" stamp, plus a 9x9 pixelized
  residual, constant over the cutout).  The DECam static PSF does not apply to
  a plate, so a delta-function static stamp (63x63) is written to a temporary
  ``$DECAM_DIR/data/psfs/psf_dssR_deconv_mod.fits.gz``; the fitted PSF is then
  a pure Moffat+residual model.  As crowdsource's nebulosity mask would do
  (decam_proc.read_data), every pixel gets the diffuse (2^21), nodeblend
  (2^30) and sharp (2^31) bits: without the "sharp" test the rim of the
  Horsehead is shredded into hundreds of spurious sources.  The crowdsource
  ``dq`` input follows decam_proc's convention ``2**code | bits``, so the
  catalogue ``flags`` decode exactly like DECaPS flags (clean star: bit 0 set;
  stored as int32, hence negative because of bit 31).  Decode with
  ``flags.astype('i8') & 0xFFFFFFFF``: ``.view('u4')`` on the big-endian
  ('>i4') column read from FITS reinterprets it as little-endian and
  byte-swaps the value (0xC0200001 reads as 0x010020C0).
* Threshold: crowdsource's significance assumes independent pixels; the grain
  correlation inflates the real scatter of the PSF-matched significance by a
  factor ~3.6 (recorded as SIGINFL).  ``--threshold 12`` (about 3.5 "true"
  sigma, plus crowdsource's sharpness test) keeps real stars only; 8 starts
  picking grain peaks, 16 loses a few faint real stars.  For the same reason
  crowdsource's ``dflux`` underestimates the real flux errors of faint stars
  by about SIGINFL.

The run is deterministic (crowdsource's fit uses no random numbers; the
global numpy RNG is seeded with ``--seed`` anyway and the seed is recorded).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from functools import partial
from importlib import metadata
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS, FITSFixedWarning
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "real" / "HorseHead.fits"
DEFAULT_OUT = REPO / "python" / "cloudcov" / "data" / "horsehead_example.fits"
DEFAULT_FIGDIR = REPO / "validation" / "figures"

# DECam CP data-quality code used for saturated pixels (PLVER >= 3.5).
DQ_SATURATED = 3
# decam_proc.extrabits['diffuse']
DIFFUSE_BIT = 2**21
PSF_STAMP_SIZE = 63
STATIC_FILTER = "dssR"


def parse_slice(text: str) -> slice:
    lo, hi = (int(v) for v in text.split(":"))
    if not 0 <= lo < hi:
        raise argparse.ArgumentTypeError(f"bad slice {text!r}")
    return slice(lo, hi)


def block_grid_to_pixels(grid: np.ndarray, block: int, shape) -> np.ndarray:
    """Bilinear interpolation of per-block values (block centres) to every pixel of ``shape``,
    constant beyond the outermost block centres."""
    nbr, nbc = grid.shape
    rc = (np.arange(nbr) + 0.5) * block - 0.5
    cc = (np.arange(nbc) + 0.5) * block - 0.5
    rp = np.interp(np.arange(shape[0]), rc, np.arange(nbr))
    cp = np.interp(np.arange(shape[1]), cc, np.arange(nbc))
    coords = np.meshgrid(rp, cp, indexing="ij")
    return ndimage.map_coordinates(grid, coords, order=1, mode="nearest")


def noise_sigma(im: np.ndarray, lag: int = 6, block: int = 25):
    """Per-pixel grain sigma.

    1. Mask stars and sharp nebular edges: ``|image - 15 px median| > 5`` rough
       sigma, grown by 3 px.
    2. Second differences at lag ``lag`` along rows and columns,
       ``D = I - (I[-lag] + I[+lag])/2``, kept only where none of the three taps
       is masked; ``var(D) = 1.5 sigma^2`` when the grain is uncorrelated at
       ``lag`` (it is, beyond ~3 px), and linear gradients cancel.
    3. 3-sigma-clipped standard deviation of D/sqrt(1.5) in ``block`` x ``block``
       blocks (both axes pooled).
    4. Fit ``var = a + b * level`` over blocks (level = block median of the
       15 px median-filtered image; iterative 3-sigma clipping of blocks).
       Photographic granularity grows with density (Selwyn's law), and blocks
       on the sharp rim of the nebula are biased high by residual structure;
       blocks off the relation by more than 3 robust sigma (or with < 200
       clean differences) are replaced by the relation's value.
    5. 3x3-block median filter, bilinear interpolation to pixels.

    Returns (sigma map, (a, b), number of replaced blocks).
    """
    a = im.astype("f8")
    level = ndimage.median_filter(a, size=15, mode="reflect")
    hp = a - level
    rough = 1.4826 * np.median(np.abs(hp - np.median(hp)))
    bad = ndimage.binary_dilation(np.abs(hp) > 5 * rough, iterations=3)
    a = np.where(bad, np.nan, a)
    diffs = []
    for axis in (0, 1):
        d = np.full_like(a, np.nan)
        sl = [slice(None)] * 2
        sl[axis] = slice(lag, -lag)
        lo = [slice(None)] * 2
        lo[axis] = slice(0, -2 * lag)
        hi = [slice(None)] * 2
        hi[axis] = slice(2 * lag, None)
        d[tuple(sl)] = a[tuple(sl)] - 0.5 * (a[tuple(lo)] + a[tuple(hi)])
        diffs.append(d / np.sqrt(1.5))
    nbr = int(np.ceil(a.shape[0] / block))
    nbc = int(np.ceil(a.shape[1] / block))
    var = np.full((nbr, nbc), np.nan)
    lev = np.zeros((nbr, nbc))
    for i in range(nbr):
        for j in range(nbc):
            s = np.s_[i * block:(i + 1) * block, j * block:(j + 1) * block]
            lev[i, j] = np.median(level[s])
            v = np.concatenate([d[s].ravel() for d in diffs])
            v = v[np.isfinite(v)]
            if v.size >= 200:
                var[i, j] = sigma_clipped_stats(v, sigma=3, maxiters=10)[2] ** 2
    ok = np.isfinite(var)
    if ok.sum() < 10:
        raise RuntimeError("too few clean blocks for the noise estimate")
    keep = ok.copy()
    for _ in range(20):
        coef = np.polyfit(lev[keep], var[keep], 1)
        resid = var - np.polyval(coef, lev)
        rsig = 1.4826 * np.median(np.abs(resid[keep]))
        new = ok & (np.abs(resid) < 3 * rsig)
        if np.array_equal(new, keep):
            break
        keep = new
    pred = np.polyval(coef, lev)
    if np.any(pred <= 0):
        raise RuntimeError(f"variance-density relation not positive: {coef}")
    grid = np.sqrt(np.where(keep, var, pred))
    grid = ndimage.median_filter(grid, size=3, mode="nearest")
    sigma = block_grid_to_pixels(grid, block, a.shape)
    return sigma, (float(coef[1]), float(coef[0])), int((~keep).sum())


def write_static_stamp(decam_dir: Path) -> None:
    """Delta-function 'static' PSF so fit_linear_static_wing fits Moffat+resid."""
    (decam_dir / "data" / "psfs").mkdir(parents=True)
    st = np.zeros((PSF_STAMP_SIZE, PSF_STAMP_SIZE), dtype="f4")
    st[PSF_STAMP_SIZE // 2, PSF_STAMP_SIZE // 2] = 1.0
    fits.writeto(decam_dir / "data" / "psfs" / f"psf_{STATIC_FILTER}_deconv_mod.fits.gz", st)


def run_crowdsource(im, ivar, dq_cs, threshold, fwhm0, verbose):
    """Real crowdsource fit.  Returns (cat, model, sky, psf, psf_from_record)."""
    import crowdsource.psf as psfmod
    from crowdsource import crowdsource_base as cb

    tmp = Path(tempfile.mkdtemp(prefix="cloudcov_dss_psf_"))
    old = os.environ.get("DECAM_DIR")
    try:
        write_static_stamp(tmp)
        os.environ["DECAM_DIR"] = str(tmp)
        psf0 = psfmod.SimplePSF(psfmod.moffat_psf(fwhm0, beta=3.0, stampsz=PSF_STAMP_SIZE,
                                                  deriv=False))
        psf0.fitfun = partial(psfmod.fit_linear_static_wing, filter=STATIC_FILTER, pixsz=9)
        cat, model, sky, psf = cb.fit_im(
            im, psf0, weight=np.sqrt(ivar).astype("f4"), dq=dq_cs, psfderiv=True,
            refit_psf=True, threshold=threshold, ntilex=1, ntiley=1,
            verbose=verbose)
        rec = psf.serialize() if hasattr(psf, "serialize") else None
        psf_rec = (psfmod.linear_static_wing_from_record(rec[0], filter=STATIC_FILTER)
                   if rec is not None and "convparam" in rec.dtype.names else None)
    finally:
        if old is None:
            os.environ.pop("DECAM_DIR", None)
        else:
            os.environ["DECAM_DIR"] = old
        shutil.rmtree(tmp, ignore_errors=True)
    return cat, model, sky, psf, rec, psf_rec


def significance_inflation(resid, ivar, psfstamp):
    """Robust scatter of crowdsource's PSF significance image of a residual."""
    from crowdsource import crowdsource_base as cb
    sig, _ = cb.significance_image(resid, np.zeros_like(resid), np.sqrt(ivar), psfstamp,
                                   sz=psfstamp.shape[0])
    b = psfstamp.shape[0] // 2
    inner = sig[b:-b, b:-b][ivar[b:-b, b:-b] > 0]
    return float(sigma_clipped_stats(inner, sigma=3, maxiters=10)[2])


def make_figures(im, model, dq, cat, figdir: Path, rows: slice, cols: slice, thr: float):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.visualization import (AsinhStretch, ImageNormalize, PercentileInterval,
                                       ZScaleInterval)

    figdir.mkdir(parents=True, exist_ok=True)
    ext = (-0.5, im.shape[1] - 0.5, -0.5, im.shape[0] - 0.5)
    norm = ImageNormalize(im, interval=PercentileInterval(99.5), stretch=AsinhStretch(0.3))
    fig, ax = plt.subplots(figsize=(8.5, 8))
    ax.imshow(im, origin="lower", cmap="gray", norm=norm, extent=ext, interpolation="nearest")
    sat = (cat["flags"].view("u4") & (2**DQ_SATURATED)) != 0
    ax.scatter(cat["y"][~sat], cat["x"][~sat], s=110, facecolors="none", edgecolors="r", lw=0.9,
               label=f"crowdsource detections ({np.sum(~sat)})")
    ax.scatter(cat["y"][sat], cat["x"][sat], s=160, facecolors="none", edgecolors="c", lw=0.9,
               label=f"centre flagged saturated ({np.sum(sat)})")
    ax.set_xlim(ext[:2])
    ax.set_ylim(ext[2:])
    ax.set_xlabel("column = catalogue y (pix)")
    ax.set_ylabel("row = catalogue x (pix)")
    ax.set_title(f"DSS SERC-ER Horsehead, rows {rows.start}:{rows.stop}, cols {cols.start}:"
                 f"{cols.stop}\ncrowdsource fit_im, threshold {thr:g} (asinh stretch)", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=9)
    fig.savefig(figdir / "embedded_example_detections.png", dpi=90, bbox_inches="tight")
    plt.close(fig)

    resid = np.where(dq == 0, im - model, np.nan)
    fig, axs = plt.subplots(1, 3, figsize=(17, 6))
    mnorm = ImageNormalize(model, interval=PercentileInterval(99.5), stretch=AsinhStretch(0.3))
    mnorm.vmin, mnorm.vmax = norm.vmin, norm.vmax
    axs[0].imshow(im, origin="lower", cmap="gray", norm=norm, extent=ext)
    axs[0].set_title("IMAGE (density units)")
    axs[1].imshow(model, origin="lower", cmap="gray", norm=mnorm, extent=ext)
    axs[1].set_title("MODEL = crowdsource sky + stars (same stretch)")
    rnorm = ImageNormalize(resid[np.isfinite(resid)], interval=ZScaleInterval())
    cm = matplotlib.colormaps["gray"].copy()
    cm.set_bad("tab:red")
    imr = axs[2].imshow(resid, origin="lower", cmap=cm, norm=rnorm, extent=ext)
    axs[2].set_title("IMAGE - MODEL (zscale; DQ-flagged pixels red)")
    fig.colorbar(imr, ax=axs[2], fraction=0.046)
    for a in axs:
        a.set_xlabel("column (y)")
        a.set_ylabel("row (x)")
    fig.savefig(figdir / "embedded_example_residual.png", dpi=70, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="HorseHead.fits")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output FITS file")
    p.add_argument("--figdir", type=Path, default=DEFAULT_FIGDIR, help="figure directory")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="numpy global RNG seed (recorded)")
    p.add_argument("--rows", type=parse_slice, default=slice(210, 610),
                   help="row (NAXIS2) slice of the original image, 0-based, end exclusive")
    p.add_argument("--cols", type=parse_slice, default=slice(420, 820),
                   help="column (NAXIS1) slice of the original image")
    p.add_argument("--threshold", type=float, default=12.0,
                   help="crowdsource detection threshold (its nominal sigma units)")
    p.add_argument("--satlevel", type=float, default=21000.0,
                   help="density at which the plate is treated as saturated")
    p.add_argument("--fwhm0", type=float, default=3.0, help="initial Moffat FWHM (pix)")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)

    np.random.seed(args.seed)
    t0 = time.time()
    import crowdsource  # noqa: F401  (fail early with a clear message)
    cs_version = metadata.version("crowdsourcephoto")

    with fits.open(args.input) as hdul:
        hdr0 = hdul[0].header.copy()
        full = hdul[0].data
    rows, cols = args.rows, args.cols
    if rows.stop > full.shape[0] or cols.stop > full.shape[1]:
        p.error(f"cutout outside the {full.shape} image")
    im = np.ascontiguousarray(full[rows, cols]).astype("f4")

    # --- noise model and data quality -------------------------------------
    sigma, (var0, var1), nrepl = noise_sigma(im)
    sat = im >= args.satlevel
    grown = ndimage.binary_dilation(sat, structure=np.ones((3, 3), bool))
    dq = np.where(grown, DQ_SATURATED, 0).astype("i2")
    ivar = (1.0 / sigma**2).astype("f4")
    ivar[dq != 0] = 0.0
    # crowdsource dq input, as decam_proc.read_data builds it: 2**code, plus the
    # nebulosity bits on every pixel (the whole cutout is nebulous).  int64 so
    # that bit 31 does not overflow numpy-2 int32 arithmetic in peakfind.
    from crowdsource import crowdsource_base as cb
    dq_cs = (2 ** dq.astype("i8")) | DIFFUSE_BIT | cb.nodeblend_maskbit | cb.sharp_maskbit

    # --- crowdsource -----------------------------------------------------
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cat, model, sky, psf, rec, psf_rec = run_crowdsource(
            im, ivar, dq_cs, args.threshold, args.fwhm0, args.verbose)
    model = np.asarray(model, dtype="f4")
    sky = np.asarray(sky, dtype="f4")
    cen = (im.shape[0] // 2, im.shape[1] // 2)
    stamp = np.asarray(psf(cen[0], cen[1], stampsz=PSF_STAMP_SIZE), dtype="f8")
    stamp = (stamp / stamp.sum()).astype("f4")
    h = PSF_STAMP_SIZE // 2
    rr, cc = np.mgrid[-h:h + 1, -h:h + 1]
    psf_cen = (float((rr * stamp).sum()), float((cc * stamp).sum()))
    # the two ways of turning the PSF record back into a PSF (ECOSYSTEM.md 1):
    # from the stored polynomial stamp, and from convparam/resparam
    psfrdiff = psfsdiff = np.nan
    if rec is not None:
        import crowdsource.psf as psfmod
        pst = psfmod.VariablePixelizedPSF(rec["stamp"][0], normalize=59)
        sst = np.asarray(pst(cen[0], cen[1], stampsz=PSF_STAMP_SIZE), dtype="f8")
        psfsdiff = float(np.max(np.abs(sst / sst.sum() - stamp)) / stamp.max())
    if psf_rec is not None:
        srec = np.asarray(psf_rec(cen[0], cen[1], stampsz=PSF_STAMP_SIZE), dtype="f8")
        psfrdiff = float(np.max(np.abs(srec / srec.sum() - stamp)) / stamp.max())

    good = ivar > 0
    gain = float(np.median((sky * ivar)[good]))
    gaincrwd = float(np.median((im * ivar)[good]))
    if not gain > 0:
        raise RuntimeError(f"non-positive gain {gain}")
    siginfl = significance_inflation(im - model, ivar, stamp)

    # --- catalogue -------------------------------------------------------
    from astropy.table import Table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(hdr0, naxis=2)
    wcs_cut = wcs[rows, cols]
    tab = Table(cat)
    for c in ("x", "y"):
        tab[c] = np.asarray(tab[c], dtype="f8")
    tab["flags"] = np.asarray(tab["flags"], dtype="i4")
    for c in tab.colnames:
        if c not in ("x", "y", "flags") and tab[c].dtype.kind == "f":
            tab[c] = np.asarray(tab[c], dtype="f4")
    tab["passno"] = np.asarray(tab["passno"], dtype="i2")
    ra, dec = wcs_cut.all_pix2world(tab["y"], tab["x"], 0)
    tab["ra"] = np.asarray(ra, "f8")
    tab["dec"] = np.asarray(dec, "f8")
    tab["gain"] = np.full(len(tab), gain, dtype="f4")
    units = {"x": "pix", "y": "pix", "dx": "pix", "dy": "pix", "fwhm": "pix", "xiso": "pix",
             "yiso": "pix", "ra": "deg", "dec": "deg"}

    # --- write -----------------------------------------------------------
    ph = fits.Header()
    ph["ORIGIN"] = ("cloudcov", "embedded real example")
    ph["CREATOR"] = ("validation/make_embedded_example.py", "script that made this file")
    ph["DATASRC"] = ("astropy-data HorseHead.fits", "astropy/astropy-data tutorials")
    ph["SURVEY"] = (hdr0.get("SURVEY", "SERC-ER").strip(), "DSS (STScI/MAST), UK Schmidt")
    ph["TELESCOP"] = hdr0.get("TELESCOP", "")
    ph["EMULSION"] = hdr0.get("EMULSION", "")
    ph["FILTER"] = hdr0.get("FILTER", "")
    ph["PLATEID"] = hdr0.get("PLATEID", "")
    ph["DATE-OBS"] = hdr0.get("DATE-OBS", "")
    ph["COPYRGHT"] = (hdr0.get("COPYRGHT", "AAO/ROE").strip(), "plate copyright (DSS)")
    ph["OBJECT"] = ("Horsehead nebula (B33)", "")
    ph["CUTROW0"] = (rows.start, "first row (NAXIS2, 0-based) of original image")
    ph["CUTROW1"] = (rows.stop, "end row (exclusive)")
    ph["CUTCOL0"] = (cols.start, "first column (NAXIS1, 0-based) of original")
    ph["CUTCOL1"] = (cols.stop, "end column (exclusive)")
    ph["CUTSLICE"] = (f"[{rows.start}:{rows.stop}, {cols.start}:{cols.stop}]", "numpy [row, col]")
    ph["BUNIT"] = ("density", "DSS photographic density units (ADU-like)")
    ph["GAIN"] = (gain, "[e-/ADU] Poisson-equiv.: median(SKY*IVAR)")
    ph["GAINCRWD"] = (gaincrwd, "crowdsource def.: median(IMAGE*IVAR)")
    ph["SKYCRWD"] = (float(np.median(sky[good])), "median crowdsource sky")
    ph["FWHMCRWD"] = (float(np.median(tab["fwhm"])) if len(tab) else 0.0, "[pix] median cat fwhm")
    ph["SATLEV"] = (args.satlevel, "density treated as saturated (DQ=3)")
    ph["NOISEMTH"] = ("lag-6 2nd diff, 25px blocks", "per-pixel sigma estimator")
    ph["NOISEV0"] = (var0, "block var = NOISEV0 + NOISEV1*density (fit)")
    ph["NOISEV1"] = (var1, "slope of the variance-density relation")
    ph["NOISEREP"] = (nrepl, "blocks replaced by the relation")
    ph["SIGINFL"] = (siginfl, "scatter of cs significance of IMAGE-MODEL")
    ph["THRESH"] = (args.threshold, "crowdsource fit_im threshold")
    ph["FWHM0"] = (args.fwhm0, "[pix] initial Moffat FWHM")
    ph["PSFFIT"] = ("fit_linear_static_wing", "crowdsource PSF refit (delta static)")
    ph["PSFCENX"] = (psf_cen[0], "[pix] PSF stamp centroid offset, rows")
    ph["PSFCENY"] = (psf_cen[1], "[pix] PSF stamp centroid offset, cols")
    ph["PSFSDIFF"] = (psfsdiff, "max|PSF_REC stamp decode - PSF|/peak")
    ph["PSFRDIFF"] = (psfrdiff, "max|PSF_REC convparam decode - PSF|/peak")
    ph["NSTARS"] = (len(tab), "rows in CAT")
    ph["CSVER"] = (cs_version, "crowdsourcephoto version")
    ph["CSCALL"] = ("fit_im(psfderiv,refit_psf,ntile=1)", "see CREATOR docstring")
    ph["SEED"] = (args.seed, "numpy RNG seed")
    ph["NPVER"] = (np.__version__, "numpy version")
    ph["COMMENT"] = "Credit: Digitized Sky Survey (STScI/MAST), UK Schmidt Telescope SERC-ER"
    ph["COMMENT"] = "plate (AAO/ROE), via astropy-data (HorseHead.fits)."
    ph["COMMENT"] = "Coordinates: crowdsource convention, CAT x = row (axis 0), y = column,"
    ph["COMMENT"] = "0-based, pixel centres at integers. Residual = IMAGE - MODEL."

    imhdr = wcs_cut.to_header()
    imhdr["BUNIT"] = "density"
    comp = dict(compression_type="GZIP_2", quantize_level=0)
    hdus = [fits.PrimaryHDU(header=ph),
            fits.CompImageHDU(im, header=imhdr, name="IMAGE", **comp),
            fits.CompImageHDU(model, header=imhdr, name="MODEL", **comp),
            fits.CompImageHDU(sky, header=imhdr, name="SKY", **comp),
            fits.CompImageHDU(dq, header=imhdr, name="DQ", compression_type="GZIP_2"),
            fits.CompImageHDU(ivar, header=imhdr, name="IVAR", **comp),
            fits.ImageHDU(stamp, name="PSF")]
    hdus[-1].header["PSFX"] = (cen[0], "row at which the PSF was evaluated")
    hdus[-1].header["PSFY"] = (cen[1], "column at which the PSF was evaluated")
    hdus[-1].header["COMMENT"] = "crowdsource PSF, centred on the middle pixel, sum = 1"
    if rec is not None:
        hdus.append(fits.BinTableHDU(rec, name="PSF_REC"))
        hdus[-1].header["STATIC"] = ("delta", "static stamp used by fit_linear_static_wing")
    cathdu = fits.BinTableHDU(tab, name="CAT")
    for i, name in enumerate(tab.colnames, start=1):
        if name in units:
            cathdu.header[f"TUNIT{i}"] = units[name]
    cathdu.header["COMMENT"] = "flags: crowdsource flags (DECam-like dq = 2**DQ | 2^21 | 2^30 | 2^31)"
    cathdu.header["COMMENT"] = "decode as flags.astype('i8') & 0xFFFFFFFF (not .view('u4'): big-endian)"
    hdus.append(cathdu)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp.fits")
    fits.HDUList(hdus).writeto(tmp_out, overwrite=True, checksum=True)
    os.replace(tmp_out, args.out)

    if not args.no_figures:
        make_figures(im, model, dq, tab, args.figdir, rows, cols, args.threshold)

    print(f"cutout [{rows.start}:{rows.stop}, {cols.start}:{cols.stop}] -> {im.shape}")
    print(f"sigma: median {np.median(sigma):.0f} (range {sigma.min():.0f}-{sigma.max():.0f}); "
          f"var = {var0:.4g} + {var1:.4g}*level, {nrepl} blocks replaced; "
          f"saturated+grown pixels {int((dq != 0).sum())}")
    print(f"detections {len(tab)}; GAIN {gain:.4f}, GAINCRWD {gaincrwd:.4f}; "
          f"SIGINFL {siginfl:.2f}; PSF centroid {psf_cen[0]:+.3f},{psf_cen[1]:+.3f}; "
          f"record decode diffs: stamp {psfsdiff:.2g}, convparam {psfrdiff:.2g}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
