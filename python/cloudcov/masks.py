"""Masks of the afterburner: static-PSF cores of catalogued stars and padding helpers."""
from __future__ import annotations

import numpy as np

from ._validate import as_float, as_image, as_int, as_numeric_array, to_float

__all__ = ["findmaxpsf", "gen_mask_static_psf", "outest_bounds"]


def findmaxpsf(psf, thr=20):
    """Flux above which the PSF-threshold mask reaches the border of a PSF stamp.

    Parameters
    ----------
    psf : (n, m) ndarray
        PSF stamp (finite).
    thr : float, optional
        Masking threshold in ADU (default 20).

    Returns
    -------
    flim : float
        ``thr / max(border pixels of psf)``: stars brighter than this need a larger stamp
        (``inf`` when the border is zero, as Julia's ``thr / 0``).

    Raises
    ------
    ValueError
        Bad stamp or threshold.

    Notes
    -----
    Mirrors CloudCovErr.jl ``findmaxpsf`` (src/preprocess.jl).
    """
    psf = as_image("psf", psf, copy_ok=True)
    thr = as_float("thr", thr, positive=True)
    border = np.concatenate([psf[0], psf[-1], psf[:, 0], psf[:, -1]])
    bmax = float(border.max())
    return float("inf") if bmax == 0 else thr / bmax


def _stamp_or(mask, stamp, r, c):
    """OR a boolean stamp centred on (r, c) into mask, clipped at the image edges."""
    hr, hc = (stamp.shape[0] - 1) // 2, (stamp.shape[1] - 1) // 2
    r0, r1 = max(0, r - hr), min(mask.shape[0], r + hr + 1)
    c0, c1 = max(0, c - hc), min(mask.shape[1], c + hc + 1)
    if r0 >= r1 or c0 >= c1:
        return
    mask[r0:r1, c0:c1] |= stamp[r0 - (r - hr):r1 - (r - hr), c0 - (c - hc):c1 - (c - hc)]


def gen_mask_static_psf(mask, psf_big, psf_small, rows, cols, flux, thr=20):
    """Mask the cores of catalogued stars with one static PSF, in place.

    Pixels where ``|flux| * psf > thr`` around each star are set in ``mask``. Stars fainter
    than :func:`findmaxpsf` of ``psf_small`` use ``psf_small``; brighter ones use the larger
    ``psf_big`` stamp.

    Parameters
    ----------
    mask : (nrow, ncol) ndarray of bool
        Modified in place (bitwise or).
    psf_big, psf_small : ndarray
        Odd-sized PSF stamps centred on their middle pixel, evaluated once (CloudCovErr.jl
        uses the PSF at the CCD centre, 511 px and Np px).
    rows, cols : (nstar,) array_like
        Star positions (0-based, pixel centres at integers); stamps are centred on
        ``np.rint`` of them (ties to even). Stars off the image are allowed.
    flux : (nstar,) array_like
        Star fluxes in ADU.
    thr : float, optional
        Threshold in ADU (default 20).

    Returns
    -------
    mask : the same array

    Raises
    ------
    TypeError, ValueError
        Bad arrays (mask not bool, even stamps, length mismatch, non-finite positions).

    Notes
    -----
    Mirrors CloudCovErr.jl ``gen_mask_staticPSF2!`` (src/preprocess.jl); paper sec. 5.1.
    """
    if not isinstance(mask, np.ndarray) or mask.dtype != bool or mask.ndim != 2:
        raise TypeError("mask: expected a 2-D numpy bool array (modified in place)")
    if not mask.flags.writeable:
        raise ValueError("mask: array is read-only (it is modified in place)")
    psf_big = as_image("psf_big", psf_big, copy_ok=True)
    psf_small = as_image("psf_small", psf_small, copy_ok=True)
    for name, p in (("psf_big", psf_big), ("psf_small", psf_small)):
        if p.shape[0] % 2 != 1 or p.shape[1] % 2 != 1:
            raise ValueError(f"{name}: stamp sides must be odd, got shape {p.shape}")
    thr = as_float("thr", thr, positive=True)
    rows, cols, flux = (to_float(name, as_numeric_array(name, a).reshape(-1), np.float64)
                        for name, a in (("rows", rows), ("cols", cols), ("flux", flux)))
    if not (rows.size == cols.size == flux.size):
        raise ValueError(f"rows, cols, flux: lengths differ ({rows.size}, {cols.size}, {flux.size})")
    flim = findmaxpsf(psf_small, thr)
    # Positions beyond +-2**62 are far off any image: clip them so the int64 cast is exact.
    ri = np.rint(np.clip(rows, -2.0**62, 2.0**62)).astype(np.int64)
    ci = np.rint(np.clip(cols, -2.0**62, 2.0**62)).astype(np.int64)
    fa = np.abs(flux)
    with np.errstate(over="ignore"):  # thr / f -> inf for denormal fluxes: nothing masked
        for r, c, f in zip(ri, ci, fa):
            if f <= 0:
                continue
            psf = psf_big if f > flim else psf_small
            _stamp_or(mask, psf > thr / f, int(r), int(c))
    return mask


def outest_bounds(centres, size):
    """Padding needed so that every integer centre lies inside ``[0, size)``.

    Parameters
    ----------
    centres : array_like of int
        0-based integer star centres along one axis.
    size : int
        Image size along that axis.

    Returns
    -------
    pad : int
        The largest distance by which any centre falls outside ``[0, size - 1]`` (0 if none).

    Raises
    ------
    TypeError, ValueError
        Non-numeric or non-integer centres, ``size`` not an integer >= 1.

    Notes
    -----
    Mirrors CloudCovErr.jl ``outest_bounds`` (src/cov.jl) in 0-based coordinates.
    """
    size = as_int("size", size, minimum=1)
    c = as_numeric_array("centres", centres).reshape(-1)
    if c.dtype.kind == "f" and not (np.all(np.isfinite(c)) and np.all(c == np.round(c))):
        raise ValueError("centres: expected integer values (finite, no fractional part)")
    if c.size == 0:
        return 0
    lo, hi = int(c.min()), int(c.max())  # Python ints: no int64 overflow
    return max(0, -lo, hi - (size - 1))
