"""The per-star benchmarks' field: 60 PSF stars on a 360 x 360 float32 noise image, Np = 33.

Shared by ``profile_perstar.py`` (and through it ``profile_breakdown.py``) and
``bench_gather_cache.py``, so that their per-star figures are of the same stars.
"""
from __future__ import annotations

import numpy as np

import cloudcov as cc


def perstar_field(Np=33, w=129, side=360, nstar=60, seed=1):
    """Build the field and its stack.

    Returns a dict: ``Np``, ``w`` (boxcar width, both axes), ``img`` (float32 residual image,
    white noise of sigma 20), ``bim`` and ``st`` (``cc.shift_stack`` of it), ``stars`` (the
    star model image, float32), ``bad`` (uint8, 2% of pixels), ``rows``/``cols`` (int64 star
    centres, sorted by row, every stamp and its boxcar window inside the image), ``psfs``
    (float32, nstar x Np x Np Gaussian of sigma 2 px), ``flux`` (3e4 each) and ``circ`` (the
    circular stamp mask). ~100 hidden pixels and a bordered matrix of ~780 per star.
    """
    rng = np.random.default_rng(seed)
    img = (rng.standard_normal((side, side)) * 20).astype(np.float32)
    bim, st = cc.shift_stack(img, Np, w, w)
    h, a = (Np - 1) // 2, (w - 1) // 2
    rows = rng.integers(h + a, side - h - a, nstar).astype(np.int64)
    cols = rng.integers(h + a, side - h - a, nstar).astype(np.int64)
    y, x = np.mgrid[-h:h + 1, -h:h + 1]
    psf = np.exp(-(x**2 + y**2) / 8.0)
    psf /= psf.sum()
    flux = np.full(nstar, 3.0e4)
    psfs = np.repeat(psf[None].astype(np.float32), nstar, axis=0)
    stars = np.zeros_like(img)
    for r, c, f in zip(rows, cols, flux):
        stars[r - h:r + h + 1, c - h:c + h + 1] += (f * psf / 4.0).astype(np.float32)
    bad = (rng.random(img.shape) < 0.02).astype(np.uint8)
    circ = cc.circle_mask(Np).astype(np.uint8)
    order = np.argsort(rows, kind="stable")
    return dict(Np=Np, w=w, img=img, bim=bim, st=st, stars=stars, bad=bad, rows=rows[order],
                cols=cols[order], psfs=psfs, flux=flux, circ=circ)
