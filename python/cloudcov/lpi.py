"""The LPI afterburner on one CCD (the Python counterpart of CloudCovErr.jl ``proc_ccd``)."""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
from astropy.table import Table
from threadpoolctl import threadpool_limits

from . import _core
from ._columns import OUTPUT_COLUMNS, set_output_units
from ._validate import (as_dtype, as_float, as_image, as_int, as_mask, as_Np, available_cores,
                        cap_threads, same_shape)
from .errors import CloudCovWarning
from .infill import add_sky_noise, prelim_infill
from .io.tables import catalog_columns
from .masks import gen_mask_static_psf, outest_bounds
from .noise import check_thresholds, residual_noise, suggest_thresholds
from .perstar import circle_mask
from .lapack import lapack_info
from .psf import as_psf_model
from .tiling import DEFAULT_MAX_MEMORY, sweep_plan

__all__ = ["process_ccd", "prepare_ccd", "star_details", "PreparedCCD", "OUTPUT_COLUMNS"]

log = logging.getLogger("cloudcov")


#: dnt bit of stars that are not measured (stamp off the image, or NaN/inf/masked x, y, flux).
#: It is the sign bit of the int8 column: those stars have ``dnt < 0``.
DNT_NOT_MEASURED = 128

#: Size of the static PSF stamp used to mask bright stars (CloudCovErr.jl: 511).
BIG_PSF_SIZE = 511


def _catalog_columns(catalog, convention, columns=None):
    """Return (table, row, col, flux, usable, convention) from a table-like catalogue;
    ``usable`` marks rows whose x, y and flux are finite and not masked.

    The position and flux columns and the convention come from
    :func:`cloudcov.io.tables.catalog_columns` (photutils names imply ``"photutils"``); an
    unstated convention warns. Units of Quantity columns are dropped from the values read.
    """
    if isinstance(catalog, Table):
        table = catalog.copy(copy_data=True)
    elif isinstance(catalog, np.ndarray) and catalog.dtype.names:
        table = Table(catalog)
    elif isinstance(catalog, dict):
        table = Table({k: np.asarray(v) for k, v in catalog.items()})
    elif hasattr(catalog, "to_dict") and hasattr(catalog, "columns"):   # pandas DataFrame
        table = Table.from_pandas(catalog)
    else:
        raise TypeError("catalog: expected an astropy Table, a structured array, a dict of "
                        f"arrays or a DataFrame, got {type(catalog).__name__}")
    names = catalog_columns(table.colnames, convention, columns, table.meta)
    xname, yname, fname, convention, implied = names
    if not implied:
        warnings.warn(f"catalog columns {xname!r}/{yname!r} do not say which is the row; "
                      f"assuming convention='crowdsource' ({xname!r} = row = numpy axis 0). "
                      f"Pass convention='crowdsource' or 'photutils' ({xname!r} = column) to "
                      "silence this", CloudCovWarning, stacklevel=4)
    cols, usable = {}, np.ones(len(table), bool)
    for key, name in (("x", xname), ("y", yname), ("flux", fname)):
        col = table[name]
        data = getattr(col, "value", col)               # Quantity -> plain values
        try:
            cols[key] = np.asarray(np.ma.getdata(data), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"catalog: column '{name}' is not numeric ({exc})") from exc
        usable &= np.isfinite(cols[key]) & ~np.ma.getmaskarray(col)
    x, y, flux = cols["x"], cols["y"], cols["flux"]
    row, col = (x, y) if convention == "crowdsource" else (y, x)
    return table, row, col, flux, usable, convention


def _row_list(idx, limit=10):
    """``"3, 17, 20"`` (catalogue row numbers, at most ``limit`` then ``...``)."""
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    return shown + (", ..." if len(idx) > limit else "")


def _measurable(row, col, usable, shape, Np, stacklevel=4):
    """Stars whose Np x Np stamp overlaps the image and whose x, y, flux are usable.

    The others are not measured (dnt bit 128, NaN outputs): padding the image out to them
    would make memory and time depend on catalogue positions. Warns with their count.
    """
    h = (Np - 1) // 2
    ri, ci = _centres(row, usable), _centres(col, usable)
    overlap = usable & (ri + h >= 0) & (ri - h < shape[0]) & (ci + h >= 0) & (ci - h < shape[1])
    off = np.flatnonzero(usable & ~overlap)
    unusable = np.flatnonzero(~usable)
    if off.size or unusable.size:
        parts = []
        if off.size:
            parts.append(f"{off.size} whose {Np}x{Np} stamp does not overlap the {shape[0]}x{shape[1]} "
                         f"image (rows {_row_list(off)})")
        if unusable.size:
            parts.append(f"{unusable.size} with NaN, infinite or masked x, y or flux "
                         f"(rows {_row_list(unusable)})")
        warnings.warn(f"catalog: {off.size + unusable.size} of {len(row)} stars not measured: "
                      + "; ".join(parts) + f" (NaN outputs, dnt bit {DNT_NOT_MEASURED})",
                      CloudCovWarning, stacklevel=stacklevel)
    return overlap


def _centres(v, usable):
    """Stamp centres ``rint(v)`` as int64 (0 for unusable rows; far values clipped to
    +-2**62 so that the cast is exact and later arithmetic cannot overflow)."""
    return np.where(usable, np.rint(np.clip(np.where(usable, v, 0.0), -2.0**62, 2.0**62)), 0).astype(np.int64)


@dataclass
class PreparedCCD:
    """Intermediate arrays of the afterburner (output of :func:`prepare_ccd`).

    Attributes
    ----------
    image : ndarray
        Padded, infilled residual with Poisson noise on infilled pixels (the covariance input).
    raw : ndarray
        Padded raw residual ``model - image`` (the stamps' data).
    stars : ndarray
        Padded star counts ``|model - sky| / gain``.
    bad : ndarray of uint8
        Padded mask (1 = masked; padding is masked).
    mask : ndarray of bool
        Unpadded mask (dq | static-PSF cores | outliers).
    infill : InfillResult
    pad_rows, pad_cols : int
        Padding added on each side; padded pixel (r + pad_rows, c + pad_cols) is image (r, c).
    ri, ci : ndarray of int64
        Stamp centres ``rint(row)``, ``rint(col)`` in image coordinates (0 for stars with
        NaN, infinite or masked positions; clipped to +-2**62).
    measured : ndarray of bool
        Stars whose stamp overlaps the image and whose x, y, flux are finite and unmasked;
        the others are not measured (dnt bit 128) and do not widen the padding.
    """

    image: np.ndarray
    raw: np.ndarray
    stars: np.ndarray
    bad: np.ndarray
    mask: np.ndarray
    infill: object
    pad_rows: int
    pad_cols: int
    ri: np.ndarray
    ci: np.ndarray
    measured: np.ndarray


@dataclass(frozen=True)
class _Inputs:
    """Validated, normalised inputs of :func:`process_ccd` / :func:`prepare_ccd` (``_setup``).

    Images are float32 or float64 and C-contiguous (the caller's arrays when already so, other
    dtypes converted to float64; never modified);
    ``bad`` is a new bool copy of the dq mask (the mask step adds to it in place); ``usable``
    marks catalogue rows with finite, unmasked x, y and flux (they enter the static-PSF mask),
    ``measured`` those of them whose stamp overlaps the image (they are processed); ``row``, ``col``, ``flux`` are float64 catalogue columns in image
    coordinates (``row`` = numpy axis 0); ``dt`` is the working dtype; ``noise`` the residual
    noise (:func:`cloudcov.noise.residual_noise`) that ``"auto"`` thresholds are scaled from.
    """

    image: np.ndarray
    model: np.ndarray
    sky: np.ndarray
    bad: np.ndarray
    gain: float
    thr: float
    outthr: float
    Np: int
    widx: int
    widy: int
    max_memory: int
    dt: np.dtype
    threads: int
    psf_model: object
    table: Table
    row: np.ndarray
    col: np.ndarray
    flux: np.ndarray
    usable: np.ndarray
    measured: np.ndarray
    convention: str = "crowdsource"
    flux_floor: float = 1e4
    noise: float = float("nan")


def _residual(inp):
    """Step 1: residual ``model - image`` (CloudCovErr.jl sign, paper footnote 2), float64."""
    return np.subtract(inp.model, inp.image, dtype=np.float64)


def _masks(inp, resid):
    """Step 2: ``inp.bad`` |= static-PSF cores | outliers (|resid| > outthr or not finite).

    Returns the pixels whose residual is not finite (they are set to 0 in ``resid``).
    Raises ValueError naming each mask's share when no pixel is left.
    """
    nrow, ncol = inp.image.shape
    psf_big = inp.psf_model(nrow // 2, ncol // 2, BIG_PSF_SIZE)
    psf_small = inp.psf_model(nrow // 2, ncol // 2, inp.Np)
    bad = inp.bad   # modified in place
    n_dq = int(bad.sum())
    u = inp.usable
    static = np.zeros_like(bad)
    gen_mask_static_psf(static, psf_big, psf_small, inp.row[u], inp.col[u], inp.flux[u], inp.thr)
    bad |= static
    with np.errstate(invalid="ignore"):
        outlier = ~(np.abs(resid) <= inp.outthr)          # also catches NaN residuals under dq
    bad |= outlier
    nonfin = ~np.isfinite(resid)
    resid[nonfin] = 0.0
    if bad.all():
        raise ValueError(
            f"every one of the {bad.size} pixels is masked, nothing is left to learn the "
            f"covariance from: dq flags {n_dq}, the static-PSF cores of the catalogue "
            f"(thr = {inp.thr:g}) cover {int(static.sum())}, |model - image| > outthr "
            f"(= {inp.outthr:g}) or non-finite: {int(outlier.sum())} "
            f"({int(nonfin.sum())} non-finite)")
    return nonfin


def _prelim(inp, resid, nonfin, julia_compat):
    """Step 3: preliminary infill of the masked pixels, in the working precision (as
    CloudCovErr.jl). Returns the working-precision residual (non-finite pixels replaced by
    their infill, so that raw stamps never see NaN) and the :class:`InfillResult`."""
    resid_t = resid.astype(inp.dt)
    inf = prelim_infill(resid_t, inp.bad, julia_compat=julia_compat)
    resid_t[nonfin] = inf.image[nonfin]
    return resid_t, inf


def _padding(inp, ri, ci):
    """Step 5 geometry: rows and columns of reflective padding on each side so that every
    measured star's stamp and its covariance boxcar window lie inside the padded image (at
    most ``Np - 1 + (wid - 1) // 2`` on each side: unmeasured stars do not count)."""
    nrow, ncol = inp.image.shape
    h = (inp.Np - 1) // 2
    pr = h + (inp.widx - 1) // 2 + outest_bounds(ri, nrow)
    pc = h + (inp.widy - 1) // 2 + outest_bounds(ci, ncol)
    return pr, pc


def _prepare(inp, seed, sky_noise, julia_compat):
    """Steps 1-5 of :func:`process_ccd`: residual, masks, preliminary infill, padding and sky
    noise (added to the padded infilled image, whose padding is masked)."""
    resid = _residual(inp)
    nonfin = _masks(inp, resid)
    resid_t, inf = _prelim(inp, resid, nonfin, julia_compat)
    del resid, nonfin   # the float64 residual is not needed any more (peak memory)
    ri, ci = _centres(inp.row, inp.usable), _centres(inp.col, inp.usable)
    pr, pc = _padding(inp, ri[inp.measured], ci[inp.measured])
    pad = ((pr, pr), (pc, pc))
    in_image = np.pad(inf.image, pad, mode="reflect")
    in_raw = np.ascontiguousarray(np.pad(resid_t, pad, mode="reflect"))
    in_bad = np.pad(inp.bad, pad, mode="constant", constant_values=True)
    stars = np.subtract(inp.model, inp.sky, dtype=np.float64)   # one float64 temporary
    np.abs(stars, out=stars)
    stars /= inp.gain
    in_stars = np.ascontiguousarray(np.pad(stars.astype(inp.dt), pad, mode="reflect"))
    del stars
    if sky_noise:   # step 4: Poisson noise on infilled (and padding) pixels, eq. 7
        in_sky = np.pad(inp.sky.astype(np.float64, copy=False), pad, mode="reflect")
        in_image = add_sky_noise(in_image, in_bad, in_sky, inp.gain, rng=seed)
        del in_sky
    in_image = np.ascontiguousarray(in_image, dtype=inp.dt)
    in_bad_u8 = np.ascontiguousarray(in_bad, dtype=np.uint8)
    return PreparedCCD(in_image, in_raw, in_stars, in_bad_u8, inp.bad, inf, pr, pc, ri, ci,
                       inp.measured)


def _setup(image, model, sky, catalog, psf, gain, dq, thr, outthr, Np, widx, widy, max_memory,
           dtype, threads, convention, columns=None, flux_floor=1e4):
    """Validate and normalise the inputs of process_ccd / prepare_ccd into an :class:`_Inputs`."""
    dt = as_dtype("dtype", dtype)
    # float32 and float64 inputs are used as given (no float64 copies: the steps that need
    # float64 arithmetic ask for it per operation, which gives the same values); other dtypes
    # are converted to float64.
    image = as_image("image", image, copy_ok=True, allow_nonfinite=True)
    model = as_image("model", model, copy_ok=True, allow_nonfinite=True)
    sky = as_image("sky", sky, copy_ok=True, allow_nonfinite=True)
    same_shape("image", image, model=model, sky=sky)
    if dq is not None:
        if not isinstance(dq, np.ndarray):
            raise TypeError(f"dq: expected a numpy.ndarray, got {type(dq).__name__}")
        if dq.shape != image.shape:
            raise ValueError(f"dq.shape {dq.shape} != image.shape {image.shape}")
        bad = as_mask("dq", dq, image.shape).astype(bool)
    else:
        bad = np.zeros(image.shape, bool)
    for name, a in (("model", model), ("sky", sky)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: contains {np.size(a) - np.count_nonzero(np.isfinite(a))} "
                             "NaN or infinite values")
    nonfinite = ~np.isfinite(image)
    if np.any(nonfinite & ~bad):
        raise ValueError(f"image: contains {int(np.sum(nonfinite & ~bad))} NaN or infinite values "
                         "not flagged in dq")
    gain = as_float("gain", gain)
    if gain == 0:
        raise ValueError("gain: must be nonzero (e-/ADU)")
    if gain < 0:
        warnings.warn(f"gain {gain} is negative; using |gain| as CloudCovErr.jl does",
                      CloudCovWarning, stacklevel=3)
        gain = abs(gain)
    noise = residual_noise(image, model, bad)
    auto = {k: v for k, v in (("thr", thr), ("outthr", outthr), ("flux_floor", flux_floor))
            if isinstance(v, str)}
    for k, v in auto.items():
        if v != "auto":
            raise ValueError(f"{k}: expected a positive number or 'auto', got {v!r}")
    if auto:
        suggested = suggest_thresholds(noise)
        thr, outthr, flux_floor = (suggested[k] if k in auto else v for k, v in
                                   (("thr", thr), ("outthr", outthr), ("flux_floor", flux_floor)))
    thr = as_float("thr", thr, positive=True)
    outthr = as_float("outthr", outthr, positive=True)
    flux_floor = as_float("flux_floor", flux_floor, positive=True)
    if "thr" not in auto:
        check_thresholds(thr, noise, stacklevel=3)
    Np = as_Np(Np)
    widx = as_int("widx", widx, minimum=1, odd=True)
    widy = widx if widy is None else as_int("widy", widy, minimum=1, odd=True)
    _check_geometry(image.shape, Np, widx, widy)
    max_memory = as_int("max_memory", max_memory, minimum=1)
    if threads is None or threads == 0:
        threads = available_cores()
    threads = cap_threads(as_int("threads", threads, minimum=1), stacklevel=4)
    psf_model = as_psf_model(psf)
    table, row, col, flux, usable, convention = _catalog_columns(catalog, convention, columns)
    measured = _measurable(row, col, usable, image.shape, Np)
    return _Inputs(image=image, model=model, sky=sky, bad=bad, gain=gain, thr=thr, outthr=outthr,
                   Np=Np, widx=widx, widy=widy, max_memory=max_memory, dt=dt, threads=threads,
                   psf_model=psf_model, table=table, row=row, col=col, flux=flux, usable=usable,
                   measured=measured, convention=convention, flux_floor=flux_floor, noise=noise)


def _check_geometry(shape, Np, widx, widy):
    """Refuse stamps and boxcar windows larger than the image, and windows of one sample.

    Larger ones would be filled by reflected copies of the image (repeated samples, singular
    covariances); ``widx = widy = 1`` leaves N - 1 = 0 in the covariance normalisation.
    """
    for name, w, n, axis in (("Np", Np, shape[0], "rows"), ("Np", Np, shape[1], "columns"),
                             ("widx", widx, shape[0], "rows"), ("widy", widy, shape[1], "columns")):
        if w > n:
            raise ValueError(f"{name}: {w} pixels is larger than the image ({n} {axis}, image "
                             f"shape {shape}); use {name} <= {n}")
    if widx * widy < 2:
        raise ValueError("widx, widy: the N/(N-1) covariance normalisation needs N = widx * widy "
                         ">= 2 boxcar samples, got widx = widy = 1")


def prepare_ccd(image, model, sky, catalog, psf, gain, dq=None, *, thr=20, outthr=20000, Np=33,
                widx=129, widy=None, dtype="float32", seed=0, sky_noise=True, julia_compat=False,
                convention=None, columns=None):
    """Steps 1-5 of :func:`process_ccd` alone: masks, infill, sky noise and padding.

    For inspecting what the afterburner sees (e.g. the stamps of a star, see
    :func:`star_details`). Parameters are those of :func:`process_ccd`.

    Returns
    -------
    PreparedCCD

    Raises
    ------
    TypeError, ValueError
        As :func:`process_ccd`.
    """
    inp = _setup(image, model, sky, catalog, psf, gain, dq, thr, outthr, Np, widx, widy,
                 DEFAULT_MAX_MEMORY, dtype, 1, convention, columns)
    return _prepare(inp, seed, sky_noise, julia_compat)


def star_details(prep, row, col, flux, psf, *, Np=33, widx=129, widy=None, thr=20, rlim=256,
                 n_draw=2, rng=0, julia_compat=False, flux_floor=1e4):
    """Stamps, pixel classes, mean infill and draws of one star (paper Fig. 5).

    Parameters
    ----------
    prep : PreparedCCD
        From :func:`prepare_ccd` with the same ``Np``, ``widx``, ``widy``.
    row, col : float
        Star position in image coordinates (0-based, row = crowdsource ``x``).
    flux : float
        Star flux (ADU).
    psf : ndarray or callable
        As in :func:`process_ccd`.
    Np, widx, widy, thr, rlim, julia_compat, flux_floor
        As in :func:`process_ccd`.
    n_draw : int, optional
        Draws of the hidden pixels to return (default 2).
    rng : numpy.random.Generator or int, optional
        Random source of the draws.

    Returns
    -------
    dict
        ``data`` (raw residual stamp), ``classes`` (:class:`PixelClasses`), ``result``
        (:class:`ConditionedStar` with ``mean`` and ``draws``), ``cov`` and ``mu``.

    Raises
    ------
    ValueError
        If the stamp leaves the padded image.
    """
    from .covariance import local_covariance
    from .perstar import cond_cov_est, pixel_classes

    widy = widx if widy is None else widy
    h = (Np - 1) // 2
    R = int(np.rint(row)) + prep.pad_rows
    C = int(np.rint(col)) + prep.pad_cols
    cov, mu = local_covariance(prep.image, R, C, Np, widx, widy, julia_compat=julia_compat)
    sl = np.s_[R - h:R + h + 1, C - h:C + h + 1]
    stamp_psf = as_psf_model(psf)(row, col, Np)
    pc = pixel_classes(prep.bad[sl], stamp_psf, flux, thr=thr, rlim=rlim, flux_floor=flux_floor)
    res = cond_cov_est(cov, mu, ~pc.good, pc.hidden, prep.raw[sl], prep.stars[sl], pc.psf,
                       export_mean=True, n_draw=n_draw, rng=rng)
    return dict(data=np.asarray(prep.raw[sl], dtype=np.float64), classes=pc, result=res, cov=cov, mu=mu)


def process_ccd(image, model, sky, catalog, psf, gain, dq=None, *, thr=20, outthr=20000, Np=33,
                widx=129, widy=None, max_memory=DEFAULT_MAX_MEMORY, dtype="float32", seed=0,
                sky_noise=True, julia_compat=False, threads=None, progress=False,
                convention=None, columns=None, rlim=256, guard=True, flux_floor=1e4):
    """Run the LPI afterburner on one CCD: corrected fluxes and honest uncertainties.

    Parameters
    ----------
    image : (nrow, ncol) ndarray
        Image in ADU (e.g. DECam ``ooi``). NaN/inf allowed only where ``dq`` is nonzero.
    model : (nrow, ncol) ndarray
        Model image (sky + stars) of the photometry pipeline (crowdsource ``MOD``), finite.
    sky : (nrow, ncol) ndarray
        Sky/background model (crowdsource ``SKY``), finite.
    catalog : astropy Table or QTable, structured array, dict of arrays or DataFrame
        Detections: positions (0-based pixel coordinates, centres at integers) and fluxes
        (ADU), found by name (:data:`cloudcov.io.tables.KNOWN_COLUMNS`): photutils'
        ``x_fit``/``y_fit``/``flux_fit``, ``x_0``/``y_0``/``flux_0``,
        ``xcentroid``/``ycentroid``/``flux`` (these imply ``convention="photutils"``), or
        ``x``/``y``/``flux``; or named by ``columns``. Every input column is kept. Negative
        fluxes are measured: their hidden pixels are those of a star of ``flux_floor`` (the
        static core mask uses ``|flux|``), and ``cflux = flux + fdb_tot``. Stars whose Np x Np stamp overlaps
        the image are measured (off-image stamp pixels are masked and reflected). Stars whose
        stamp misses the image, or whose ``x``, ``y`` or ``flux`` is NaN, infinite or masked,
        are not measured: NaN floats, zero counts, dnt bit 128, and one CloudCovWarning
        naming their count and rows; they never change the padding, memory or time.
    psf : ndarray, astropy/photutils model, callable, crowdsource PSF or PSF record
        PSF stamp (odd, square, centred, any size: cropped or zero-padded), a photutils PSF
        model (``ImagePSF``, ``CircularGaussianPRF``, ...) or astropy ``Fittable2DModel``
        (evaluated on the pixel grid, :class:`cloudcov.psf.ModelPSF`),
        ``psf(row, col, size) -> (size, size)``, a
        crowdsource PSF object, or a crowdsource ``serialize()`` record (DECaPS ``<CCD>_PSF``
        row; decoded from its stored stamp, see :class:`cloudcov.psf.CrowdsourcePSF`, which
        needs the optional ``crowdsourcephoto``). See :func:`cloudcov.as_psf_model`.
        It is evaluated at each star for its Np x Np stamp, and at the CCD centre
        (``nrow // 2, ncol // 2``) at 511 and Np pixels for the static core mask.
    gain : float
        Gain in e-/ADU. Negative values warn and use ``|gain|`` (as CloudCovErr.jl); zero or
        non-finite values raise.
    dq : (nrow, ncol) integer or bool ndarray, optional
        Data-quality mask; nonzero pixels are masked (DECam ``ood``).
    thr : float or "auto", optional
        PSF masking threshold in ADU (default 20, DECaPS2's): pixels with ``flux * psf > thr``
        are masked for the covariance and hidden under their star (stars below ``flux_floor``
        count as ``flux_floor``). ``"auto"``: twice the residual noise measured on the image
        (:func:`cloudcov.noise.suggest_thresholds`; 20 ADU on a DECam sky). A numeric ``thr``
        more than 5 times away from that value warns (:func:`cloudcov.noise.check_thresholds`)
        with the measured noise and the suggested values.
    outthr : float or "auto", optional
        Residuals with ``|model - image| > outthr`` ADU are masked (default 20000; ``"auto"``:
        1000 ``thr``, DECaPS2's ratio).
    Np : int, optional
        Odd stamp size (default 33).
    widx, widy : int, optional
        Odd boxcar widths along rows / columns for the covariance samples (default 129).
    max_memory : int, optional
        Bytes allowed for the shifted-product stack's ring buffer (default 256 MiB); it sets the
        number of strips and ring rows (:func:`cloudcov.tiling.plan_strips`). Results do not
        depend on it beyond float round-off (< 1e-6 relative).
    dtype : {"float32", "float64"}, optional
        Precision of the stack and of the per-star solves (default float32, as DECaPS2).
    seed : int or numpy.random.Generator, optional
        Seed of the Poisson noise added to infilled pixels (default 0).
    sky_noise : bool, optional
        Add Poisson noise to infilled pixels (paper eq. 7; default True).
    julia_compat : bool, optional
        Reproduce CloudCovErr.jl v0.9.2 where it deviates from the paper: ``|mean|`` as the
        local mean, float32 arithmetic order in the covariance lookup, zero-including median
        in the infill fallback.
    threads : int or None, optional
        Threads of the C++ kernels; None or 0 uses every core available to the process
        (``os.sched_getaffinity``). Larger requests are lowered to that with a
        CloudCovWarning, so memory never depends on the request. Results are bitwise
        identical for any thread count.
    progress : bool or None, optional
        True: a progress bar over the stars (tqdm), advanced as each strip's stars are done.
        None: the bar on a terminal, otherwise an INFO log line (logger ``"cloudcov"``) at
        most every 30 s and at the end (batch jobs). False (default): neither.
    convention : {"crowdsource", "photutils"} or None, optional
        Meaning of ``x``/``y``: crowdsource has ``x`` = row (numpy axis 0); photutils and
        astropy have ``x`` = column. None (default): implied by photutils column names, by
        crowdsource-only columns (``passno``, ``fracflux``, ...) or by tables from cloudcov's
        readers; otherwise ``"crowdsource"`` with a :class:`CloudCovWarning`.
    columns : mapping, optional
        ``{"x": ..., "y": ..., "flux": ...}`` (any subset): the catalogue's position and flux
        column names, e.g. ``{"x": "X_IMAGE", "y": "Y_IMAGE", "flux": "FLUX_PSF"}`` (then pass
        ``convention``; 1-based positions must be shifted first, see
        :func:`cloudcov.io.read_catalog`).
    rlim : float, optional
        Squared radius (pixel^2) of the good-pixel circle (default 256).
    guard : bool, optional
        Condition-number guard of the per-star solve (default True; see
        :func:`cloudcov.cond_cov_est`).
    flux_floor : float or "auto", optional
        Stars fainter than this are masked as if they had this flux (default 1e4 ADU, the
        DECaPS2 value; ``"auto"``: 500 ``thr``, DECaPS2's ratio).

    Returns
    -------
    astropy.table.Table
        Every input column plus ``cflux`` (= ``flux + fdb_tot``), ``dcflux``,
        ``dcflux_diag``, ``fdb_res``, ``fdb_pred``, ``cchi2`` (float32), ``kcond0``,
        ``kcond``, ``kpred`` (int32) and ``dnt`` (int8, bits in :data:`cloudcov.DNT_BITS`;
        bit 128, not measured, is the sign bit); ``meta["cloudcov"]`` holds the parameters
        (thresholds as used, ``"auto"`` resolved), the residual ``noise``, the convention,
        the package version, the LAPACK used (``lapack``: ``"scipy"`` or ``"mkl"``, see
        :func:`cloudcov.set_lapack`), the seed, infill statistics, ``n_not_measured`` and
        timings.

    Raises
    ------
    TypeError, ValueError
        Invalid arrays (shape mismatch, NaN in the model, bad dtype), parameters or catalogue;
        ``Np``, ``widx`` or ``widy`` larger than the image; ``widx = widy = 1``; every pixel
        masked (the message gives the share of dq, the static-PSF cores and ``outthr``).

    Notes
    -----
    Mirrors CloudCovErr.jl ``proc_ccd`` (src/decam.jl) without file I/O, following
    DESIGN.md sec. 1: residual ``model - image``; mask = dq | static-PSF cores
    (``gen_mask_staticPSF2!``) | outliers; ``prelim_infill!``; ``add_sky_noise!``; reflective
    padding; memory-budgeted strips of the shifted-product stack (each swept once, its stack
    kept in a ring buffer); per-star covariance, pixel
    classes and conditioning (paper eqs. 4-10). Unlike CloudCovErr.jl, every star is
    processed whatever the tiling, the stack is accumulated in double, and Np is free.

    Examples
    --------
    The embedded example (a DSS plate run through crowdsource), thresholds scaled to its noise:

    >>> import cloudcov
    >>> from cloudcov.example import load_example
    >>> ex = load_example()
    >>> out = cloudcov.process_ccd(ex["image"], ex["model"], ex["sky"], ex["catalog"],
    ...                            ex["psf"], ex["gain"], dq=ex["dq"], thr="auto", seed=0,
    ...                            threads=1)
    >>> len(out), int(((out["dnt"] & 64) != 0).sum())
    (49, 0)
    >>> round(out.meta["cloudcov"]["thr"] / out.meta["cloudcov"]["noise"], 6)
    2.0
    """
    t_start = time.perf_counter()
    inp = _setup(image, model, sky, catalog, psf, gain, dq, thr, outthr, Np, widx, widy,
                 max_memory, dtype, threads, convention, columns, flux_floor)
    del image, model, sky, catalog, dq
    flux_floor = inp.flux_floor
    meta = _run_meta(inp, seed=seed, sky_noise=sky_noise, julia_compat=julia_compat,
                     convention=inp.convention, rlim=rlim, guard=guard, flux_floor=flux_floor)
    if not inp.measured.any():     # empty catalogue, or no star on the image
        meta.update(n_not_measured=len(inp.table))
        return _output_table(inp, _star_results(inp), meta)
    prep = _prepare(inp, seed, sky_noise, julia_compat)              # steps 1-5
    inp = replace(inp, image=None, model=None, sky=None)   # drop our references before the stack
    infill_stats = dict(infill_rounds=prep.infill.rounds, infill_fallback=prep.infill.n_fallback,
                        n_masked=int(prep.mask.sum()))
    prep = replace(prep, infill=None, mask=None)   # the sweep needs neither (peak memory)
    t_prep = time.perf_counter() - t_start
    psfs = _star_psfs(inp)
    res, strips, t_lpi, cpu = _sweep_strips(inp, prep, psfs, rlim=rlim, julia_compat=julia_compat,
                                            guard=guard, flux_floor=flux_floor, progress=progress)
    meta.update(nstrips=len(strips), ring_rows=int(max(s.ring_rows for s in strips)),
                **infill_stats, n_unstable=int(np.sum(res["dnt"] & 64 != 0)),
                n_not_measured=int(np.sum(~inp.measured)),
                n_guard=int(np.sum(res["dnt"] & 4 != 0)), threads=inp.threads,
                seconds_prep=round(t_prep, 3), seconds_lpi=round(t_lpi, 3),
                core_seconds_stack=round(cpu["stack"], 3), core_seconds_stars=round(cpu["stars"], 3),
                sweep_rounds=cpu["rounds"], ring_bytes=cpu["ring_bytes"],
                stack_values=cpu["stack_values"], stack_values_written=cpu["stack_values_written"],
                seconds_total=round(time.perf_counter() - t_start, 3))
    table = _output_table(inp, res, meta)
    log.info("%d stars in %d strip(s): %.1f s (stack + stars), guard %d, unstable %d",
             len(table), len(strips), t_lpi, meta["n_guard"], meta["n_unstable"])
    return table


def _run_meta(inp, *, seed, sky_noise, julia_compat, convention, rlim, guard, flux_floor):
    """Parameters of the run recorded in the output table's ``meta["cloudcov"]``."""
    return dict(thr=inp.thr, outthr=inp.outthr, Np=inp.Np, widx=inp.widx, widy=inp.widy,
                max_memory=inp.max_memory, dtype=inp.dt.name, gain=inp.gain,
                sky_noise=bool(sky_noise), julia_compat=bool(julia_compat),
                convention=convention, rlim=float(rlim), guard=bool(guard),
                flux_floor=flux_floor, noise=float(inp.noise),
                seed=seed if isinstance(seed, (int, np.integer)) else repr(seed),
                lapack=lapack_info()["name"], version=_core.__version__)


def _star_psfs(inp):
    """PSF stamp of every measured star at its own position, ``(nmeasured, Np, Np)`` in the
    working dtype (catalogue order)."""
    idx = np.flatnonzero(inp.measured)
    psfs = np.empty((idx.size, inp.Np, inp.Np), dtype=inp.dt)
    for j, k in enumerate(idx):
        psfs[j] = inp.psf_model(inp.row[k], inp.col[k], inp.Np)
    return psfs


def _star_results(inp):
    """Per-star output buffers: NaN floats, zero counts, dnt bit 128 on unmeasured stars."""
    nstar = len(inp.table)
    res = {name: np.full(nstar, np.nan) for name in ("dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2")}
    res.update(kcond0=np.zeros(nstar, np.int32), kcond=np.zeros(nstar, np.int32),
               kpred=np.zeros(nstar, np.int32), dnt=np.zeros(nstar, np.int8))
    res["dnt"][~inp.measured] = np.uint8(DNT_NOT_MEASURED).view(np.int8)
    return res

def _sweep_strips(inp, prep, psfs, *, rlim, julia_compat, guard, flux_floor, progress):
    """Step 6: the stack in memory-budgeted vertical strips, each swept once top to bottom
    with its stack kept in a ring buffer, and the per-star covariance, pixel classes and
    conditioning of the strip's stars (``_core.lpi_strip``; strip plan from
    :func:`cloudcov.tiling.sweep_plan`, shared with :func:`cloudcov.impute`).

    Returns the per-star result arrays of every catalogue row (float64 floats; unmeasured
    stars keep NaN and dnt bit 128, see :func:`_star_results`), the strips, the wall seconds
    spent in the kernel and its process CPU seconds (all threads) split into the stack sweep
    and the star batches (``{"stack", "stars", "rounds", "ring_bytes", "stack_values",
    "stack_values_written"}``; ``stack_values``: shifted-product values computed by the sweeps,
    ``stack_values_written``: those written to the ring, the entries the stamps read).
    """
    Np, widx, widy, dt = inp.Np, inp.widx, inp.widy, inp.dt
    circ = circle_mask(Np, rlim).astype(np.uint8)
    stars = np.flatnonzero(inp.measured)            # psfs[j] is star stars[j]
    R, C = prep.ri[stars] + prep.pad_rows, prep.ci[stars] + prep.pad_cols
    flux = inp.flux[stars]
    res = _star_results(inp)
    sweeps, ring_buf, bim_buf = sweep_plan(R, C, Np, widx, widy, inp.max_memory, dt)
    report = _StarProgress(stars.size, progress)
    t_lpi = 0.0
    cpu = dict(stack=0.0, stars=0.0, rounds=0, ring_bytes=int(ring_buf.nbytes), stack_values=0,
               stack_values_written=0)
    nslot = int(_core.n_slots(Np))
    done = np.zeros(stars.size, bool)
    for sw in sweeps:
        sel = sw.sel
        t0 = time.perf_counter()
        with threadpool_limits(1):
            out = _core.lpi_strip(prep.image, sw.r0, sw.r1, sw.c0, sw.c1, sw.ring_rows, ring_buf,
                                  bim_buf, Np, widx, widy, prep.raw, prep.stars, prep.bad,
                                  np.ascontiguousarray(R[sel]), np.ascontiguousarray(C[sel]),
                                  np.ascontiguousarray(psfs[sel]), np.ascontiguousarray(flux[sel]),
                                  circ, inp.thr, bool(julia_compat), True, bool(guard), inp.threads,
                                  flux_floor)
        t_lpi += time.perf_counter() - t0
        cpu["stack"] += out["stack_cpu_s"]
        cpu["stars"] += out["stars_cpu_s"]
        cpu["rounds"] += int(out["rounds"])
        # values the sweep computed (every boxcar-output pixel of the strip) and wrote to the
        # ring (only those its stamps read)
        cpu["stack_values"] += (sw.r1 - sw.r0 - widx + 1) * (sw.c1 - sw.c0 - widy + 1) * nslot
        cpu["stack_values_written"] += int(out["stack_values_written"])
        for name in res:
            res[name][stars[sel]] = out[name]
        done[sel] = True
        report.update(sel.size)
        log.debug("strip cols %d:%d: %d stars, ring %d rows, %.2f s", sw.c0, sw.c1,
                  sel.size, sw.ring_rows, time.perf_counter() - t0)
    report.close()
    assert done.all(), "internal error: a star was not assigned to any strip"
    return res, sweeps, t_lpi, cpu


#: Seconds between progress log lines when no progress bar is shown.
PROGRESS_LOG_SECONDS = 30.0


class _StarProgress:
    """Progress over the stars: a tqdm bar (``progress=True``, or None on a terminal) or an
    INFO log line at most every :data:`PROGRESS_LOG_SECONDS` (None elsewhere: batch jobs)."""

    def __init__(self, nstar, progress):
        import sys

        self.nstar, self.n, self.bar, self.log = nstar, 0, None, False
        self.t0 = self.last = time.perf_counter()
        tty = progress is None and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        if progress or tty:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=nstar, desc="cloudcov", unit="star")
            except ImportError:  # pragma: no cover
                self.log = True
        elif progress is None:
            self.log = True

    def update(self, n):
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.log:
            now = time.perf_counter()
            if now - self.last >= PROGRESS_LOG_SECONDS or self.n == self.nstar:
                self.last = now
                log.info("LPI: %d/%d stars (%.0f%%) in %.1f s", self.n, self.nstar,
                         100.0 * self.n / max(self.nstar, 1), now - self.t0)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _output_table(inp, res, meta):
    """Step 7: the input catalogue plus the LPI columns (``cflux = flux + fdb_pred - fdb_res``,
    eq. 9) in the dtypes of :data:`OUTPUT_COLUMNS`, with ``meta["cloudcov"]``."""
    table = inp.table
    fdb_tot = res["fdb_pred"] - res["fdb_res"]
    table["cflux"] = (inp.flux + fdb_tot).astype(np.float32)
    for name in ("dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2"):
        table[name] = res[name].astype(np.float32)
    for name in ("kcond0", "kcond", "kpred", "dnt"):
        table[name] = res[name].astype(OUTPUT_COLUMNS[name])
    table.meta["cloudcov"] = meta
    return set_output_units(table)
