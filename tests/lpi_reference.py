"""An independent end-to-end reference of :func:`cloudcov.process_ccd` (plain numpy/scipy).

Written from Saydjari & Finkbeiner 2022 (sec. 2.3-2.6, 5.1; eqs. 4, 5, 6, 9, 10) and the
semantics of CloudCovErr.jl ``proc_ccd`` (src/decam.jl) and the functions it calls
(``gen_mask_staticPSF2!``, ``prelim_infill!``, ``build_cov!``, ``gen_pix_mask``,
``condCovEst_wdiag``), with cloudcov's documented departures (DESIGN.md, README): the signed
local mean (not Julia's ``|mean|``), non-finite residuals masked and their raw stamp pixels
taken from the infill, the infill fallback median over good pixels, no tiling (every star
processed), stars whose stamp misses the image flagged instead of padding out to them.

Nothing here calls ``cloudcov._core`` or any cloudcov function: every step is redone the slow
and obvious way, so that a mistake in the fast pipeline (a sign, a mask, a threshold, a
padding mode) shows up as a mismatch. It is meant for small images, small ``Np`` and small
boxcars (explicit ``N x Np**2`` sample matrices per star).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy import ndimage

#: dnt bit of stars whose stamp does not overlap the image (cloudcov, not CloudCovErr.jl).
OFF_IMAGE_BIT = 128


def reflect_index(i, n):
    """Index into ``[0, n)`` of position ``i`` under numpy ``mode='reflect'`` padding (the edge
    pixel is not repeated: ..., 2, 1, [0, 1, ..., n-1], n-2, ...), any distance from the image."""
    i = np.asarray(i, dtype=np.int64)
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    m = np.mod(i, period)
    return np.where(m < n, m, period - m)


def static_psf_mask(shape, psf_big, psf_small, rows, cols, flux, thr):
    """CloudCovErr.jl ``gen_mask_staticPSF2!``: OR the ``psf > thr / |flux|`` stamp of every
    star (the 511-px stamp for stars brighter than ``thr / max(border of psf_small)``) into a
    mask, clipped at the edges."""
    mask = np.zeros(shape, bool)
    border = np.concatenate([psf_small[0], psf_small[-1], psf_small[:, 0], psf_small[:, -1]])
    flim = np.inf if border.max() == 0 else thr / border.max()
    for r, c, f in zip(np.rint(rows).astype(int), np.rint(cols).astype(int), np.abs(flux)):
        if f <= 0:
            continue
        stamp = psf_big if f > flim else psf_small
        h = (stamp.shape[0] - 1) // 2
        hit = stamp > thr / f
        for dr, dc in zip(*np.nonzero(hit)):
            rr, cc = r - h + dr, c - h + dc
            if 0 <= rr < shape[0] and 0 <= cc < shape[1]:
                mask[rr, cc] = True
    return mask


def next_width(w, widmult=1.4):
    """CloudCovErr.jl's infill window growth: ``round((w * widmult - 1) / 2) * 2 + 1`` with
    Julia's round-half-to-even."""
    return int(np.round((w * widmult - 1) / 2)) * 2 + 1


def prelim_infill(resid, bad, *, w0=19, widmult=1.4, max_rounds=10, min_good=10):
    """CloudCovErr.jl ``prelim_infill!`` (paper sec. 2.5): each round fills the still-masked
    pixels whose ``w x w`` window (numpy-reflect edges) holds more than ``min_good`` of the
    originally good pixels with their mean; windows grow by ``widmult``; what is left gets the
    median of the good pixels (cloudcov's default fallback)."""
    good = ~bad
    vals = np.where(good, resid, 0.0)
    out = resid.copy()
    todo = bad.copy()
    w = w0
    for _ in range(max_rounds):
        if not todo.any():
            break
        kernel = np.ones((w, w))
        # scipy's 'mirror' is numpy's 'reflect'
        sums = ndimage.correlate(vals, kernel, mode="mirror")
        counts = ndimage.correlate(good.astype(np.int64), kernel.astype(np.int64), mode="mirror")
        ok = todo & (counts > min_good)
        out[ok] = sums[ok] / counts[ok]
        todo &= ~(counts > min_good)
        w = next_width(w, widmult)
    out[todo] = np.median(resid[good])
    return out


def circle_ignored(Np, rlim):
    """Stamp pixels beyond the radius cut: ``drow**2 + dcol**2 > rlim`` (``kstar_circle_mask``)."""
    h = (Np - 1) // 2
    d = np.arange(-h, h + 1)
    return d[:, None] ** 2 + d[None, :] ** 2 > rlim


def pixel_classes(kmasked, psf, flux, *, thr, rlim, flux_floor):
    """CloudCovErr.jl ``gen_pix_mask``: good / hidden pixels, counts and dnt bits 1, 2, 8, 16, 32.

    Returns ``(good, hidden, psf_used, kcond0, kcond, kpred, dnt)`` (2-D bool stamps)."""
    Np = psf.shape[0]
    hidden = psf > thr / (flux_floor if flux < flux_floor else flux)
    not_good = kmasked | hidden | circle_ignored(Np, rlim)
    kcond0 = Np * Np - int(not_good.sum())
    dnt = 0
    if kcond0 < 4 * Np:
        dnt |= 1
        not_good = kmasked | hidden
    if Np * Np - int(not_good.sum()) < 4 * Np:
        dnt |= 2
        ring = np.ones((Np, Np), bool)
        ring[1:-1, 1:-1] = False
        not_good = not_good & ~ring
        hidden = hidden & ~ring
    ratio = psf.min() / psf.max()
    psf_used = np.abs(psf) if ratio < 0 else psf.copy()
    dnt |= (8 if ratio < 0 else 0) | (16 if ratio < -1e-3 else 0) | (32 if ratio < -1e-1 else 0)
    return ~not_good, hidden, psf_used, kcond0, Np * Np - int(not_good.sum()), int(hidden.sum()), dnt


def sample_covariance(img, R, C, Np, widx, widy):
    """Eq. 6 the slow way: one sample per shift ``(s, t)`` of the boxcar window, each the
    ``Np x Np`` stamp of ``img`` centred on ``(R + s, C + t)`` (numpy-reflect beyond the
    edges); ``cov`` is their sample covariance (N - 1 normalisation), ``mu`` their mean."""
    h, dx, dy = (Np - 1) // 2, (widx - 1) // 2, (widy - 1) // 2
    d = np.arange(-h, h + 1)
    V = np.empty((widx * widy, Np * Np))
    k = 0
    for s in range(-dx, dx + 1):
        ri = reflect_index(R + s + d, img.shape[0])
        for t in range(-dy, dy + 1):
            ci = reflect_index(C + t + d, img.shape[1])
            V[k] = img[np.ix_(ri, ci)].reshape(-1)
            k += 1
    return np.cov(V, rowvar=False, ddof=1), V.mean(axis=0)


def condition(cov, mu, good, hidden, data, stars, psf):
    """CloudCovErr.jl ``condCovEst_wdiag`` (eqs. 4, 5, 9, 10) with dense solves.

    Returns ``(dcflux, dcflux_diag, fdb_res, fdb_pred, cchi2)``."""
    cov = cov + np.diag(stars.reshape(-1))      # Poisson counts of the modelled stars, sec. 5.1
    g, hd = np.flatnonzero(good.reshape(-1)), np.flatnonzero(hidden.reshape(-1))
    x, mu, p = data.reshape(-1), mu.reshape(-1), psf.reshape(-1)[hd]
    Ckk, Cks, Css = cov[np.ix_(g, g)], cov[np.ix_(g, hd)], cov[np.ix_(hd, hd)]
    A = scipy.linalg.solve(Ckk, Cks, assume_a="pos")
    xbar = A.T @ (x[g] - mu[g]) + mu[hd]                         # eq. 4
    P = Css - Cks.T @ A                                          # eq. 5
    Pp = scipy.linalg.solve(P, p, assume_a="pos")
    var = p @ Pp                                                 # eq. 10
    chi2 = (x[g] - mu[g]) @ scipy.linalg.solve(Ckk, x[g] - mu[g], assume_a="pos")
    return (var ** -0.5, np.sum(p ** 2 / np.diag(P)) ** -0.5, (x[hd] @ Pp) / var,
            (xbar @ Pp) / var, chi2)                             # eq. 9: fdb_res, fdb_pred


def reference_process_ccd(image, model, sky, rows, cols, flux, psf, gain, dq=None, *, thr=20,
                          outthr=20000, Np=33, widx=129, widy=None, rlim=256, flux_floor=1e4):
    """``process_ccd(..., sky_noise=False, dtype="float64")`` the slow, independent way.

    Parameters are those of :func:`cloudcov.process_ccd`, with the catalogue as ``rows``,
    ``cols`` (0-based image coordinates) and ``flux``, and ``psf(row, col, size)`` a callable.

    Returns
    -------
    dict of ndarray
        ``cflux``, ``dcflux``, ``dcflux_diag``, ``fdb_res``, ``fdb_pred``, ``cchi2`` (float64),
        ``kcond0``, ``kcond``, ``kpred``, ``dnt`` (int64), and the intermediate ``bad`` mask and
        ``infill`` image.
    """
    widy = widx if widy is None else widy
    image, model, sky = (np.asarray(a, np.float64) for a in (image, model, sky))
    rows, cols, flux = (np.asarray(a, np.float64) for a in (rows, cols, flux))
    nrow, ncol = image.shape
    # 1. residual (CloudCovErr.jl sign, paper footnote 2)
    resid = model - image
    # 2. masks: dq | static-PSF cores | outliers (and non-finite residuals)
    bad = np.zeros(image.shape, bool) if dq is None else np.asarray(dq) != 0
    bad |= static_psf_mask(image.shape, psf(nrow // 2, ncol // 2, 511),
                           psf(nrow // 2, ncol // 2, Np), rows, cols, flux, thr)
    finite = np.isfinite(resid)
    bad |= ~finite
    bad[finite] |= np.abs(resid[finite]) > outthr
    resid = np.where(finite, resid, 0.0)
    # 3. preliminary infill; raw stamps take the infill where the residual is not finite
    infill = prelim_infill(resid, bad)
    raw = np.where(finite, resid, infill)
    stars_img = np.abs(model - sky) / gain
    n = len(rows)
    out = {k: np.full(n, np.nan) for k in ("dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2")}
    out.update({k: np.zeros(n, np.int64) for k in ("kcond0", "kcond", "kpred", "dnt")})
    h = (Np - 1) // 2
    d = np.arange(-h, h + 1)
    for k in range(n):
        R, C = int(np.rint(rows[k])), int(np.rint(cols[k]))
        if R + h < 0 or R - h >= nrow or C + h < 0 or C - h >= ncol:
            out["dnt"][k] = OFF_IMAGE_BIT        # the stamp misses the image: nothing to measure
            continue
        # 5. reflective padding, as index arithmetic; the padding is masked
        ri, ci = reflect_index(R + d, nrow), reflect_index(C + d, ncol)
        inside = ((R + d >= 0) & (R + d < nrow))[:, None] & ((C + d >= 0) & (C + d < ncol))[None, :]
        kmasked = bad[np.ix_(ri, ci)] | ~inside
        data, stars = raw[np.ix_(ri, ci)], stars_img[np.ix_(ri, ci)]
        # 6. covariance from explicit shifted samples of the infilled residual (eq. 6)
        cov, mu = sample_covariance(infill, R, C, Np, widx, widy)
        good, hidden, p, kcond0, kcond, kpred, dnt = pixel_classes(
            kmasked, psf(rows[k], cols[k], Np), flux[k], thr=thr, rlim=rlim, flux_floor=flux_floor)
        out["kcond0"][k], out["kcond"][k], out["kpred"][k], out["dnt"][k] = kcond0, kcond, kpred, dnt
        if good.any() and hidden.any():
            vals = condition(cov, mu, good, hidden, data, stars, p)
            for name, v in zip(("dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2"), vals):
                out[name][k] = v
        else:
            out["dnt"][k] |= 64          # nothing to condition on or nothing to predict
    # 7. corrected flux (eq. 9)
    out["cflux"] = flux + out["fdb_pred"] - out["fdb_res"]
    out["bad"], out["infill"] = bad, infill
    return out
