"""HEALPix maps of error-bar calibration from injection tests (LPI paper sec. 5.4, Figs. 12-13).

The survey-wide check of Saydjari & Finkbeiner (2022, sec. 5.4): for the injected stars of
an injection test, the Z-scores ``(flux - true) / dflux`` (conventional) and
``(cflux - true) / dcflux`` (LPI) are binned into HEALPix pixels (NSIDE=32 in the paper) and
each pixel's ``IQR / 1.34896`` is the factor by which the error bars are too small (1 when
they are right; only pixels with more than 30 stars are shown). The ratio ``dcflux / dflux``
of the LPI to the conventional uncertainty, an outlier-clipped mean per pixel (footnote 15),
needs no injections and is mapped at any NSIDE (512 in the paper's Fig. 13).

Functions
---------
:func:`healpix_map`
    Any statistic of values per HEALPix pixel (``iqr``, ``median``, ``mean``, ``count``,
    ``clipped_mean`` or a callable), with a minimum count.
:func:`zscores`, :func:`iqr_sigma`
    Z-scores and the robust width ``IQR / 1.34896``.
:func:`quality_cuts`
    The paper's footnote-15 cuts (each optional), via :func:`cloudcov.flags.decaps_ok`.
:func:`sky_positions`, :func:`positions_from_wcs`
    ra/dec of catalogue rows, from the ``ra``/``dec`` columns or from an image WCS and the
    catalogue's row/column (crowdsource ``x`` = row, ``y`` = column).
:func:`load_outputs`, :func:`match_truth`, :func:`error_maps`
    The ``cloudcov maps`` pipeline: read cloudcov outputs, match an injected-truth table,
    compute the maps.
:func:`write_maps`, :func:`read_maps`, :func:`plot_maps`
    HEALPix FITS (atomic, via healpy) and figures.

healpy is an optional dependency (``pip install "cloudcov[maps]"``; the test extra has it).
"""
from __future__ import annotations

import numbers
import os
import pathlib
from collections.abc import Mapping

import numpy as np

__all__ = [
    "IQR_NORMAL", "PAPER_CUTS", "iqr_sigma", "zscores", "healpix_map", "sky_positions",
    "positions_from_wcs", "quality_cuts", "clip_outliers", "load_outputs", "read_truth",
    "match_truth", "error_maps", "write_maps", "read_maps", "plot_maps",
]

#: IQR of the standard normal distribution, ``2 sqrt(2) erfinv(1/2)`` (the paper's 1.34896).
IQR_NORMAL = 1.3489795003921634

#: Keyword arguments of :func:`cloudcov.flags.decaps_ok` for the paper's footnote-15 cuts.
PAPER_CUTS = dict(dnt=True, dnt_ignore=0, min_cchi2_per_kcond=0.7, max_rchi2=100.0,
                  min_fracflux=0.5)

_STATISTICS = ("iqr", "median", "mean", "count", "clipped_mean")
_FRAMES = ("galactic", "icrs")


def _healpy():
    try:
        import healpy
    except ImportError as exc:  # pragma: no cover - healpy is in the test extra
        raise ImportError("cloudcov.maps needs healpy: pip install 'cloudcov[maps]'") from exc
    return healpy


def iqr_sigma(z, axis=None):
    """Robust width of Z-scores: ``IQR / 1.34896`` (1 for a standard normal sample).

    Parameters
    ----------
    z : array_like of float
        Z-scores; non-finite values are ignored.
    axis : int, optional
        Axis along which to compute (default: the flattened array).

    Returns
    -------
    float or ndarray
        ``(P75 - P25) / IQR_NORMAL`` (numpy's linear-interpolation percentiles); NaN where
        fewer than 2 finite values remain.

    Notes
    -----
    LPI paper sec. 5.4 / Fig. 12: the factor by which the flux uncertainties must be
    multiplied for the Z-scores to have the IQR of N(0, 1).
    """
    z = np.asarray(z, dtype=np.float64)
    z = np.where(np.isfinite(z), z, np.nan)
    if axis is None:
        z = z[np.isfinite(z)]
        if z.size < 2:
            return float("nan")
        q25, q75 = np.percentile(z, [25, 75])
        return float((q75 - q25) / IQR_NORMAL)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN slices -> NaN
        q25, q75 = np.nanpercentile(z, [25, 75], axis=axis)
    n = np.sum(np.isfinite(z), axis=axis)
    return np.where(n >= 2, (q75 - q25) / IQR_NORMAL, np.nan)


def zscores(flux, dflux, truth):
    """Z-scores of measured fluxes against the true (injected) fluxes.

    Parameters
    ----------
    flux, dflux, truth : array_like of float, same shape
        Measured flux, its 1-sigma uncertainty and the true flux, in the same units (ADU).
        Conventional: ``flux``, ``dflux``; LPI: ``cflux``, ``dcflux``.

    Returns
    -------
    ndarray of float64
        ``(flux - truth) / dflux``; NaN where ``dflux <= 0`` or any input is not finite.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    f, d, t = (np.asarray(a, dtype=np.float64) for a in (flux, dflux, truth))
    if not (f.shape == d.shape == t.shape):
        raise ValueError(f"zscores: flux, dflux and truth must have the same shape, got "
                         f"{f.shape}, {d.shape}, {t.shape}")
    ok = np.isfinite(f) & np.isfinite(d) & np.isfinite(t) & (d > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, (f - t) / np.where(ok, d, 1.0), np.nan)


def _check_nside(nside):
    hp = _healpy()
    if isinstance(nside, bool) or not isinstance(nside, numbers.Integral) or not hp.isnsideok(int(nside), nest=True):
        raise ValueError(f"nside: expected a power of 2 between 1 and 2**29, got {nside!r}")
    return int(nside)


def _convert_frame(lon, lat, from_frame, to_frame):
    if from_frame == to_frame:
        return lon, lat
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(lon * u.deg, lat * u.deg, frame=from_frame).transform_to(to_frame)
    if to_frame == "galactic":
        return c.l.deg, c.b.deg
    return c.ra.deg, c.dec.deg


def _group_quantiles(sorted_vals, starts, counts, q):
    """Linear-interpolation quantile ``q`` of each contiguous group of a sorted array."""
    h = (counts - 1) * q
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    frac = h - lo
    vlo = sorted_vals[starts + lo]
    vhi = sorted_vals[starts + hi]
    return vlo + frac * (vhi - vlo)


def healpix_map(lon, lat, values=None, nside=32, statistic="iqr", frame="galactic", nest=False,
                min_count=30, input_frame=None, clip=10.0):
    """A statistic of ``values`` in each HEALPix pixel.

    Parameters
    ----------
    lon, lat : array_like of float, shape (n,)
        Positions in degrees: Galactic ``l, b`` or ICRS ``ra, dec`` (see ``input_frame``).
    values : array_like of float, shape (n,), optional
        The values to summarise (e.g. Z-scores). Non-finite values are dropped before
        counting. Not needed for ``statistic="count"``.
    nside : int, optional
        HEALPix NSIDE, a power of 2 (default 32, the paper's Fig. 12).
    statistic : {"iqr", "median", "mean", "count", "clipped_mean"} or callable, optional
        ``iqr`` = ``IQR / 1.34896`` (:func:`iqr_sigma`), ``median``, ``mean``, ``count``;
        ``clipped_mean`` = mean of the values within ``clip * IQR / 1.34896`` of the pixel's
        median (the paper's footnote-15 clipping, here per pixel); a callable gets the 1-D
        array of one pixel's values and returns a float.
    frame : {"galactic", "icrs"}, optional
        Coordinate system of the map (default Galactic, as the paper's figures).
    nest : bool, optional
        NESTED pixel ordering (default RING).
    min_count : int, optional
        Pixels with fewer finite values than this are NaN in the map (default 30: the paper
        keeps pixels with more than 30 stars, i.e. ``min_count=31``). Their counts are kept.
    input_frame : {"galactic", "icrs"}, optional
        Frame of ``lon, lat`` (default: ``frame``); converted with astropy when different.
    clip : float, optional
        Clipping factor of ``clipped_mean`` (default 10).

    Returns
    -------
    values_map : ndarray of float64, shape (12 * nside**2,)
        The statistic per pixel; NaN for pixels with fewer than ``min_count`` values
        (:func:`write_maps` stores NaN as ``healpy.UNSEEN``).
    counts : ndarray of int64, shape (12 * nside**2,)
        Number of finite values per pixel.

    Raises
    ------
    ValueError
        Shapes differ, positions not finite, latitudes outside [-90, 90], bad ``nside``,
        ``statistic``, ``frame`` or ``min_count``.
    TypeError
        ``values`` missing for a statistic that needs it.

    Notes
    -----
    Pixels are ``healpy.ang2pix(nside, lon, lat, lonlat=True, nest=nest)``. Quantiles use
    numpy's default linear interpolation, computed for all pixels at once from one sort,
    O(n log n) for any number of pixels.
    """
    hp = _healpy()
    nside = _check_nside(nside)
    if frame not in _FRAMES:
        raise ValueError(f"frame: expected one of {_FRAMES}, got {frame!r}")
    input_frame = frame if input_frame is None else input_frame
    if input_frame not in _FRAMES:
        raise ValueError(f"input_frame: expected one of {_FRAMES}, got {input_frame!r}")
    if not (callable(statistic) or statistic in _STATISTICS):
        raise ValueError(f"statistic: expected one of {_STATISTICS} or a callable, got {statistic!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, numbers.Integral) or min_count < 0:
        raise ValueError(f"min_count: expected an integer >= 0, got {min_count!r}")
    lon = np.asarray(lon, dtype=np.float64).ravel()
    lat = np.asarray(lat, dtype=np.float64).ravel()
    if lon.shape != lat.shape:
        raise ValueError(f"lon, lat: shapes differ ({lon.shape} vs {lat.shape})")
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        raise ValueError("lon, lat: contain NaN or infinite values")
    if np.any(np.abs(lat) > 90):
        raise ValueError("lat: values outside [-90, 90] degrees")
    if values is None:
        if statistic != "count":
            raise TypeError(f"values: required for statistic {statistic!r}")
        values = np.zeros(lon.shape)
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.shape != lon.shape:
        raise ValueError(f"values: shape {values.shape} differs from lon {lon.shape}")
    lon, lat = _convert_frame(lon, lat, input_frame, frame)
    npix = hp.nside2npix(nside)
    keep = np.isfinite(values)
    ipix = hp.ang2pix(nside, lon[keep], lat[keep], lonlat=True, nest=nest).astype(np.int64)
    v = values[keep]
    counts = np.bincount(ipix, minlength=npix).astype(np.int64)
    out = np.full(npix, np.nan)
    if statistic == "count":
        out[:] = counts
    elif statistic == "mean":
        s = np.bincount(ipix, weights=v, minlength=npix)
        nz = counts > 0
        out[nz] = s[nz] / counts[nz]
    else:
        order = np.lexsort((v, ipix))
        sv, sp = v[order], ipix[order]
        pix, starts, n = np.unique(sp, return_index=True, return_counts=True)
        if statistic in ("iqr", "median", "clipped_mean"):
            q50 = _group_quantiles(sv, starts, n, 0.5)
            if statistic == "median":
                out[pix] = q50
            else:
                width = (_group_quantiles(sv, starts, n, 0.75)
                         - _group_quantiles(sv, starts, n, 0.25)) / IQR_NORMAL
                if statistic == "iqr":
                    out[pix] = np.where(n >= 2, width, np.nan)
                else:
                    k = np.repeat(np.arange(pix.size), n)
                    inl = np.abs(sv - q50[k]) <= clip * width[k]
                    s = np.bincount(k, weights=np.where(inl, sv, 0.0), minlength=pix.size)
                    c = np.bincount(k, weights=inl.astype(np.float64), minlength=pix.size)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        out[pix] = np.where(c > 0, s / c, np.nan)
        else:
            for p, a, m in zip(pix, starts, n):
                out[p] = float(statistic(sv[a:a + m]))
    out[counts < min_count] = np.nan
    return out, counts


def positions_from_wcs(wcs, row, col):
    """Sky positions of image pixels from a FITS WCS.

    Parameters
    ----------
    wcs : astropy.wcs.WCS or astropy.io.fits.Header
        Celestial WCS of the image.
    row, col : array_like of float
        0-based positions with pixel centres at integers, ``row`` along the first numpy axis
        (FITS NAXIS2; crowdsource ``x``), ``col`` along the second (FITS NAXIS1; crowdsource
        ``y``) -- cloudcov's convention (DESIGN.md sec. 3).

    Returns
    -------
    lon, lat : ndarray of float64
        World coordinates in degrees in the WCS's frame (ra, dec for DECam).

    Notes
    -----
    ``WCS.all_pix2world(col, row, 0)``: astropy's pixel ``x`` is the column; origin 0.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    if isinstance(wcs, fits.Header):
        wcs = WCS(wcs)
    if not isinstance(wcs, WCS):
        raise TypeError(f"wcs: expected an astropy WCS or FITS header, got {type(wcs).__name__}")
    row = np.asarray(row, dtype=np.float64)
    col = np.asarray(col, dtype=np.float64)
    if row.shape != col.shape:
        raise ValueError(f"row, col: shapes differ ({row.shape} vs {col.shape})")
    lon, lat = wcs.all_pix2world(col, row, 0)
    return np.asarray(lon, np.float64), np.asarray(lat, np.float64)


def sky_positions(table, wcs=None, *, convention="crowdsource"):
    """ICRS ra, dec (degrees) of catalogue rows.

    Parameters
    ----------
    table : astropy Table or mapping of columns
        With ``ra`` and ``dec`` columns (used when present) or ``x`` and ``y``.
    wcs : astropy.wcs.WCS or FITS header, optional
        Needed when the table has no ``ra``/``dec``.
    convention : {"crowdsource", "photutils"}, optional
        Meaning of ``x, y``: crowdsource (default) ``x`` = row, ``y`` = column; photutils
        ``x`` = column, ``y`` = row.

    Returns
    -------
    ra, dec : ndarray of float64

    Raises
    ------
    KeyError
        No ``ra``/``dec`` and no ``wcs`` (or no ``x``/``y``).
    """
    names = table.colnames if hasattr(table, "colnames") else list(table.keys())
    if "ra" in names and "dec" in names:
        return np.asarray(table["ra"], np.float64), np.asarray(table["dec"], np.float64)
    if wcs is None:
        raise KeyError("sky_positions: table has no 'ra'/'dec' columns; pass the image wcs")
    if "x" not in names or "y" not in names:
        raise KeyError("sky_positions: table has neither 'ra'/'dec' nor 'x'/'y' columns")
    if convention not in ("crowdsource", "photutils"):
        raise ValueError(f"convention: expected 'crowdsource' or 'photutils', got {convention!r}")
    x, y = np.asarray(table["x"], np.float64), np.asarray(table["y"], np.float64)
    row, col = (x, y) if convention == "crowdsource" else (y, x)
    return positions_from_wcs(wcs, row, col)


def quality_cuts(table, cuts="paper", **overrides):
    """The LPI paper's quality cuts (footnote 15), each optional.

    Parameters
    ----------
    table : astropy Table or mapping of columns
        cloudcov output (``dnt``, ``cchi2``, ``kcond``) with the crowdsource columns
        (``flags``, ``rchi2``, ``fracflux``).
    cuts : {"paper", "dnt", "none"} or dict, optional
        ``paper``: ``dnt == 0``, ``cchi2/kcond > 0.7``, no bad crowdsource flags
        (:data:`cloudcov.flags.DECAPS_BAD_FLAGS`), ``rchi2 < 100``, ``fracflux > 0.5``;
        ``dnt``: only ``dnt == 0``; ``none``: keep everything; a dict: keyword arguments of
        :func:`cloudcov.flags.decaps_ok`.
    **overrides
        Replace single settings, e.g. ``max_rchi2=None`` (skip that cut) or
        ``dnt_ignore=4 | 8 | 16``.

    Returns
    -------
    ndarray of bool
        True for rows that pass.

    Raises
    ------
    ValueError
        Unknown ``cuts``.
    KeyError
        A column needed by an enabled cut is missing.
    """
    from .flags import DECAPS_BAD_FLAGS, decaps_ok

    if isinstance(cuts, Mapping):
        kw = dict(cuts)
    elif cuts == "paper":
        kw = dict(PAPER_CUTS, bad_flags=DECAPS_BAD_FLAGS)
    elif cuts == "dnt":
        kw = dict(dnt=True, bad_flags=None, min_cchi2_per_kcond=None, max_rchi2=None,
                  min_fracflux=None)
    elif cuts == "none":
        kw = dict(dnt=False, bad_flags=None, min_cchi2_per_kcond=None, max_rchi2=None,
                  min_fracflux=None)
    else:
        raise ValueError(f"cuts: expected 'paper', 'dnt', 'none' or a dict, got {cuts!r}")
    kw.update(overrides)
    return decaps_ok(table, **kw)


def clip_outliers(values, groups=None, k=10.0):
    """Outlier mask of the paper's footnote 15: beyond ``k * IQR / 1.349`` of the median.

    Parameters
    ----------
    values : array_like of float, shape (n,)
    groups : array_like, shape (n,), optional
        Group label per value (the paper clips per CCD); default one group.
    k : float, optional
        Clipping factor (default 10).

    Returns
    -------
    ndarray of bool
        True for values kept (finite and within ``k`` robust sigma of their group's median).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    g = np.zeros(v.shape, np.int64) if groups is None else np.unique(
        np.asarray(groups).ravel(), return_inverse=True)[1]
    if g.shape != v.shape:
        raise ValueError(f"groups: shape {g.shape} differs from values {v.shape}")
    keep = np.isfinite(v)
    for j in np.unique(g):
        m = (g == j) & keep
        if m.sum() < 2:
            continue
        med = np.median(v[m])
        w = iqr_sigma(v[m])
        keep[(g == j) & (np.abs(v - med) > k * w)] = False
    return keep


# ------------------------------------------------------------------ catalogue pipeline

def load_outputs(paths):
    """Read cloudcov outputs (FITS or HDF5) into one table.

    Parameters
    ----------
    paths : iterable of str or path-like
        Output files of ``cloudcov exposure`` / ``ccd`` / ``survey``
        (:func:`cloudcov.io.read_output`).

    Returns
    -------
    astropy.table.Table
        Every CCD's rows stacked, plus columns ``file`` (output file name), ``date`` (the
        exposure date-time, ``""`` when not recorded), ``ccd`` and ``row`` (row index in its
        CCD table).

    Raises
    ------
    FileNotFoundError
        A missing file.
    ValueError
        No rows at all.
    """
    from astropy.table import Table, vstack

    from .io import read_output

    parts = []
    for path in paths:
        path = pathlib.Path(path)
        for ccd, t in read_output(path).items():
            info = t.meta.get("info", {}) or {}
            date = str((info.get("exposure") or {}).get("date", ""))
            t = Table(t, copy=False)
            t.meta = {}
            t["file"] = np.full(len(t), path.name)
            t["date"] = np.full(len(t), date)
            t["ccd"] = np.full(len(t), str(ccd))
            t["row"] = np.arange(len(t), dtype=np.int64)
            parts.append(t)
    if not parts or sum(len(t) for t in parts) == 0:
        raise ValueError("load_outputs: the outputs hold no rows")
    return vstack(parts, join_type="inner", metadata_conflicts="silent")


def read_truth(path):
    """Read an injected-truth table (any format astropy reads: FITS, ECSV, CSV, HDF5).

    The table has one row per injected star with columns

    ``ra``, ``dec`` (float, degrees, ICRS)
        True position.
    ``flux`` (float, catalogue units, ADU)
        True (injected) flux.
    ``ccd`` (str), ``date`` (str), optional
        When present, a star is only matched to detections of the same CCD / exposure
        (``date`` as recorded by ``cloudcov exposure``, e.g. ``170119_085651``), so that
        overlapping exposures do not match each other's injections.
    ``id`` (int), optional
        For matching by identifier (:func:`match_truth` ``by_id``).
    ``use`` (bool), optional
        Stars with ``use == False`` are matched but not scored (e.g. not isolated).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    astropy.table.Table

    Raises
    ------
    FileNotFoundError, KeyError
        Missing file; missing ``ra``/``dec``/``flux`` column.
    """
    from astropy.table import Table

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"truth table not found: {path}")
    t = Table.read(path)
    for c in ("ra", "dec", "flux"):
        if c not in t.colnames:
            raise KeyError(f"truth table {path}: missing column {c!r} (have {t.colnames})")
    return t


def match_truth(catalog, truth, radius=1.0, by_id=None):
    """Match injected stars to detections, one to one.

    Parameters
    ----------
    catalog : astropy Table
        Detections with ``ra``, ``dec`` (degrees) and, when the truth has them, ``ccd`` and
        ``date`` (as :func:`load_outputs` adds).
    truth : astropy Table
        See :func:`read_truth`.
    radius : float, optional
        Match radius in arcsec (default 1.0; 0.26" per DECam pixel).
    by_id : str, optional
        Catalogue column holding the truth ``id``; matches on identifiers instead of positions.

    Returns
    -------
    ndarray of int64, shape (len(truth),)
        Index of the matched catalogue row for each truth row, -1 when unmatched. A
        detection that is the nearest match of two or more injected stars is a blend: all of
        them are unmatched (as ``validation/scripts/04_injection.py``).

    Notes
    -----
    Positional matching: nearest detection within ``radius`` on the sphere
    (``astropy.coordinates.match_coordinates_sky``), within each (``date``, ``ccd``) group
    present in both tables.
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord, match_coordinates_sky

    n = len(truth)
    idx = np.full(n, -1, np.int64)
    if by_id is not None:
        if by_id not in catalog.colnames or "id" not in truth.colnames:
            raise KeyError(f"match_truth: by_id needs catalogue column {by_id!r} and truth 'id'")
        lookup = {}
        for i, v in enumerate(np.asarray(catalog[by_id])):
            lookup.setdefault(v, []).append(i)
        for k, v in enumerate(np.asarray(truth["id"])):
            hit = lookup.get(v, [])
            if len(hit) == 1:
                idx[k] = hit[0]
        return idx
    keys = [c for c in ("date", "ccd") if c in truth.colnames and c in catalog.colnames]

    def labels(t):
        if not keys:
            return np.zeros(len(t), dtype="U1")
        return np.array(["\x1f".join(str(t[c][i]) for c in keys) for i in range(len(t))])

    tl, cl = labels(truth), labels(catalog)
    cra, cdec = np.asarray(catalog["ra"], np.float64), np.asarray(catalog["dec"], np.float64)
    tra, tdec = np.asarray(truth["ra"], np.float64), np.asarray(truth["dec"], np.float64)
    for lab in np.unique(tl):
        ti = np.flatnonzero(tl == lab)
        ci = np.flatnonzero(cl == lab)
        if ci.size == 0:
            continue
        tc = SkyCoord(tra[ti] * u.deg, tdec[ti] * u.deg)
        cc = SkyCoord(cra[ci] * u.deg, cdec[ci] * u.deg)
        if ci.size == 1:
            sep = tc.separation(cc[0])
            j = np.zeros(ti.size, np.int64)
        else:
            j, sep, _ = match_coordinates_sky(tc, cc)
        ok = sep.arcsec <= radius
        idx[ti[ok]] = ci[np.asarray(j)[ok]]
    got = idx[idx >= 0]
    u_, cnt = np.unique(got, return_counts=True)
    idx[np.isin(idx, u_[cnt > 1])] = -1
    return idx


def error_maps(catalog, truth=None, *, nside=32, statistic="iqr", cuts="paper", frame="galactic",
               nest=False, min_count=31, match_radius=1.0, by_id=None, ratio_nside=None,
               cut_overrides=None):
    """The maps of ``cloudcov maps``: Z-score widths and the LPI/conventional error ratio.

    Parameters
    ----------
    catalog : astropy Table
        cloudcov outputs (:func:`load_outputs`), with ``ra``/``dec``.
    truth : astropy Table, optional
        Injected stars (:func:`read_truth`). Without it only the ratio and count maps are made.
    nside : int, optional
        NSIDE of the Z-score maps (default 32).
    statistic : str or callable, optional
        Statistic of the Z-scores per pixel (default ``iqr``: IQR/1.34896).
    cuts : str or dict, optional
        :func:`quality_cuts` (default ``paper``), applied to the matched detections (Z maps)
        and to all detections (ratio map).
    frame : {"galactic", "icrs"}, optional
    nest : bool, optional
    min_count : int, optional
        Minimum stars per pixel (default 31: the paper's "> 30 stars").
    match_radius : float, optional
        arcsec (default 1).
    by_id : str, optional
        Match by identifier (see :func:`match_truth`).
    ratio_nside : int, optional
        NSIDE of the ``ratio`` map (default ``nside``).
    cut_overrides : dict, optional
        Extra keyword arguments of :func:`quality_cuts`.

    Returns
    -------
    dict
        ``maps``: dict name -> array (``count_all``, ``ratio`` = per-CCD-clipped mean of
        ``dcflux / dflux`` (paper footnote 15), and with ``truth``: ``count``,
        ``z_conventional``, ``z_lpi`` = the statistic of the conventional ``(flux - true) /
        dflux`` and LPI ``(cflux - true) / dcflux`` Z-scores, and ``z_ratio`` =
        ``z_lpi / z_conventional``); ``nside``, ``ratio_nside``; ``stars``: per-injected-star
        table (truth columns + ``matched``, ``passed``, ``z_conventional``, ``z_lpi``,
        ``l``, ``b``) or None; ``n_detections``, ``n_passed``.
    """
    from astropy.table import Table

    cut_overrides = dict(cut_overrides or {})
    ratio_nside = nside if ratio_nside is None else ratio_nside
    ra, dec = sky_positions(catalog)
    passed = quality_cuts(catalog, cuts, **cut_overrides)
    maps = {}
    flux = np.asarray(catalog["dflux"], np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(catalog["dcflux"], np.float64) / flux
    ratio = np.where(flux > 0, ratio, np.nan)
    groups = np.char.add(np.char.add(np.asarray(catalog["file"]).astype(str), "/"),
                         np.asarray(catalog["ccd"]).astype(str)) if "ccd" in catalog.colnames else None
    keep = passed & clip_outliers(ratio, groups)
    maps["ratio"], maps["count_ratio"] = healpix_map(
        ra[keep], dec[keep], ratio[keep], ratio_nside, "mean", frame, nest, min_count,
        input_frame="icrs")
    maps["count_all"] = healpix_map(ra, dec, None, nside, "count", frame, nest, 0,
                                    input_frame="icrs")[0].astype(np.int64)
    out = dict(maps=maps, nside=nside, ratio_nside=ratio_nside, frame=frame, nest=nest,
               min_count=min_count, stars=None, n_detections=len(catalog),
               n_passed=int(passed.sum()))
    if truth is None:
        return out
    idx = match_truth(catalog, truth, match_radius, by_id)
    m = idx >= 0
    j = np.where(m, idx, 0)
    true = np.asarray(truth["flux"], np.float64)

    def col(name):
        return np.where(m, np.asarray(catalog[name], np.float64)[j], np.nan)

    zc = zscores(col("flux"), col("dflux"), true)
    zl = zscores(col("cflux"), col("dcflux"), true)
    use = m & passed[j]
    if "use" in truth.colnames:
        use &= np.asarray(truth["use"], bool)
    tra, tdec = np.asarray(truth["ra"], np.float64), np.asarray(truth["dec"], np.float64)
    l, b = _convert_frame(tra, tdec, "icrs", "galactic")
    lon, lat = (l, b) if frame == "galactic" else (tra, tdec)
    zmap_c, count = healpix_map(lon[use], lat[use], zc[use], nside, statistic, frame, nest,
                                min_count)
    zmap_l, _ = healpix_map(lon[use], lat[use], zl[use], nside, statistic, frame, nest,
                            min_count)
    maps.update(count=count, z_conventional=zmap_c, z_lpi=zmap_l)
    with np.errstate(divide="ignore", invalid="ignore"):
        maps["z_ratio"] = zmap_l / zmap_c
    stars = Table(truth, copy=True)
    stars["matched"] = m
    stars["passed"] = use
    stars["z_conventional"] = zc
    stars["z_lpi"] = zl
    stars["l"], stars["b"] = l, b
    out.update(stars=stars, n_matched=int(m.sum()), n_scored=int(use.sum()))
    return out


# ------------------------------------------------------------------ files and figures

def write_maps(path, maps, *, nest=False, frame="galactic", meta=None, overwrite=True):
    """Write HEALPix maps to one FITS file (``healpy.write_map``), atomically.

    Parameters
    ----------
    path : str or path-like
    maps : dict of str -> ndarray
        Maps of one NSIDE (one binary-table column each; names of <= 8 upper-case characters
        are safest for other readers). NaN is written as ``healpy.UNSEEN``.
    nest : bool, optional
    frame : {"galactic", "icrs"}, optional
        Recorded as ``COORDSYS`` (``G`` / ``C``).
    meta : dict, optional
        Extra header cards (key -> scalar value; keys of <= 8 characters).
    overwrite : bool, optional
        Replace an existing file (default True).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        Maps of different sizes, or a size that is not a HEALPix map.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    hp = _healpy()
    from .io._files import atomic_path

    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (overwrite=False)")
    names = list(maps)
    if not names:
        raise ValueError("maps: nothing to write")
    sizes = {np.size(maps[k]) for k in names}
    if len(sizes) != 1 or not hp.isnpixok(sizes.pop()):
        raise ValueError(f"maps: expected HEALPix maps of one size, got sizes "
                         f"{[np.size(maps[k]) for k in names]}")
    arrays, dtypes = [], []
    for k in names:
        a = np.asarray(maps[k])
        if a.dtype.kind in "iub":
            arrays.append(a.astype(np.int64))
            dtypes.append(np.int64)
        else:
            a = np.where(np.isfinite(a), a, hp.UNSEEN).astype(np.float64)
            arrays.append(a)
            dtypes.append(np.float64)
    extra = [(str(k)[:8].upper(), v) for k, v in (meta or {}).items()]
    with atomic_path(path) as tmp:
        hp.write_map(os.fspath(tmp), arrays, nest=nest, coord="G" if frame == "galactic" else "C",
                     column_names=[k.upper() for k in names], dtype=dtypes, overwrite=True,
                     extra_header=extra)
    return path


def read_maps(path):
    """Read a file of :func:`write_maps` back.

    Returns
    -------
    maps : dict of str -> ndarray
        Column name (lower case) -> map; ``healpy.UNSEEN`` turned back into NaN for float maps.
    header : astropy.io.fits.Header
    """
    hp = _healpy()
    from astropy.io import fits

    with fits.open(path) as hdul:
        h = hdul[1].header.copy()
        names = [c.lower() for c in hdul[1].columns.names]
    data = hp.read_map(os.fspath(path), field=tuple(range(len(names))), nest=None, dtype=None)
    data = np.atleast_2d(data)
    out = {}
    for k, a in zip(names, data):
        a = np.asarray(a)
        if a.dtype.kind == "f":
            a = np.where(a == hp.UNSEEN, np.nan, a)
        out[k] = a
    return out, h


def plot_maps(panels, path=None, *, lonra=(-125.0, 10.0), latra=(-12.0, 12.0), vmin=0.0,
              vmax=2.0, nest=False, ncols=1, title=None, cmap="RdBu_r", label=None, dpi=110,
              xsize=1600):
    """Draw HEALPix maps of error-bar factors on a Galactic Cartesian view.

    Parameters
    ----------
    panels : list of (str, ndarray)
        (title, map) pairs; Galactic maps of any NSIDE, projected with
        ``healpy.projector.CartesianProj`` (nearest pixel) and drawn with matplotlib with
        Galactic longitude increasing to the left, and a 5/10-degree graticule.
    path : str or path-like, optional
        PNG to write (atomically); otherwise the figure is returned.
    lonra, latra : (float, float), optional
        Longitude and latitude range in degrees (default: the DECaPS2 footprint,
        -125 < l < 10, |b| < 12).
    vmin, vmax : float, optional
        Colour range (default 0-2: a diverging scale centred on 1, white = correct errors).
    nest : bool, optional
    ncols : int, optional
    title : str, optional
        Figure title.
    cmap : str, optional
        Diverging colormap (default ``RdBu_r``: red = error bars too small); unmapped pixels
        grey.
    label : str, optional
        Colour-bar label.
    dpi, xsize : int, optional
        Output resolution and projection width in samples.

    Returns
    -------
    matplotlib.figure.Figure or pathlib.Path
    """
    hp = _healpy()
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    nrows = -(-n // ncols)
    width = float(lonra[1] - lonra[0])
    height = float(latra[1] - latra[0])
    ysize = max(int(xsize * height / width), 10)
    panel_w = 9.0
    panel_h = panel_w * height / width + 1.3
    fig, axs = plt.subplots(nrows, ncols, figsize=(panel_w * ncols + 1.2, panel_h * nrows + 0.5),
                            squeeze=False, constrained_layout=True)
    base = matplotlib.colormaps[cmap]
    cm = base.with_extremes(bad="0.85", under=base(0.0), over=base(1.0))
    proj = hp.projector.CartesianProj(lonra=list(lonra), latra=list(latra), coord="G",
                                      xsize=xsize, ysize=ysize)
    im = None
    for k, (name, m) in enumerate(panels):
        ax = axs[k // ncols, k % ncols]
        m = np.asarray(m, np.float64)
        ns = hp.npix2nside(m.size)
        img = proj.projmap(np.where(np.isfinite(m), m, np.nan),
                           lambda x, y, z, ns=ns: hp.vec2pix(ns, x, y, z, nest=nest))
        img = np.ma.masked_invalid(img)
        im = ax.imshow(img, origin="lower", extent=(lonra[1], lonra[0], latra[0], latra[1]),
                       cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="equal")
        ax.set_xticks(np.arange(np.ceil(lonra[0] / 10) * 10, lonra[1] + 1e-9, 10))
        ax.set_yticks(np.arange(np.ceil(latra[0] / 5) * 5, latra[1] + 1e-9, 5))
        ax.grid(color="0.3", alpha=0.4, lw=0.5)
        ax.set_xlabel("Galactic longitude l (deg)")
        ax.set_ylabel("b (deg)")
        ax.set_title(name, fontsize=11)
        fig.colorbar(im, ax=ax, shrink=0.9, extend="both", label=label or "")
    for k in range(n, nrows * ncols):
        axs[k // ncols, k % ncols].set_visible(False)
    if title:
        fig.suptitle(title)
    if path is None:
        return fig
    from .io._files import atomic_path

    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path
