"""What the per-star benchmarks share: their field and the bare ``spotrf`` floor.

``perstar_field``: 60 PSF stars on a 360 x 360 float32 noise image, Np = 33 (by default), the
field of ``profile_perstar.py`` (and through it ``profile_breakdown.py``),
``bench_gather_cache.py`` and ``bench_kernels.py``'s per-star part.
``spd_matrix`` and ``spotrf_times``: a well-conditioned SPD matrix of a given size and the CPU
time of factorising it through the LAPACK table cloudcov's kernels call (the floor every
per-star ratio is taken against; ``bench_ccd.py`` times it at the stars' sizes).
"""
from __future__ import annotations

import time

import numpy as np

import cloudcov as cc
from cloudcov import _core


def perstar_field(Np=33, w=129, side=360, nstar=60, seed=1, rng=None):
    """Build the field and its stack, drawing from ``rng`` if given, else from a new
    generator seeded with ``seed``.

    Returns a dict: ``Np``, ``w`` (boxcar width, both axes), ``img`` (float32 residual image,
    white noise of sigma 20), ``bim`` and ``st`` (``cc.shift_stack`` of it), ``stars`` (the
    star model image, float32), ``bad`` (uint8, 2% of pixels), ``rows``/``cols`` (int64 star
    centres, sorted by row, every stamp and its boxcar window inside the image), ``psf``
    (float64 Np x Np Gaussian of sigma 2 px) and ``psfs`` (it in float32, nstar x Np x Np),
    ``flux`` (3e4 each: psf > 20 / 3e4 gives ~100 hidden pixels) and ``circ`` (the circular
    stamp mask). A bordered matrix of ~780 per star.
    """
    if rng is None:
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
                cols=cols[order], psf=psf, psfs=psfs, flux=flux, circ=circ)


def spd_matrix(nb, rng):
    """A well-conditioned nb x nb SPD matrix (M M^T / nb + I, M standard normal nb x 2 nb),
    float32, Fortran order: the stand-in for a bordered matrix of that size."""
    M = rng.standard_normal((nb, 2 * nb)).astype(np.float32)
    return np.asfortranarray(M @ M.T / nb + np.eye(nb, dtype=np.float32))


def spotrf_times(A0, calls, clock=time.thread_time, work=None, lda=None):
    """CPU seconds of each of ``calls`` factorisations of ``A0`` by ``_core.lapack_potrf``
    (the LAPACK table cloudcov's kernels call), each on a fresh copy made outside the timed
    region (in ``work``, a Fortran-ordered array like ``A0``, if given).

    Call it with the BLAS on one thread (``threadpoolctl.threadpool_limits(1)``): then
    ``clock=time.thread_time`` (the default) is the factorisation's own CPU time. The process
    clock would also count BLAS worker threads that spin for a while after a multi-threaded
    BLAS call or a change of the thread count (OpenBLAS parks them only after a timeout): on
    the 2-core EPYC a spotrf of n = 782 read 6.1-6.4 ms of process time just after such a
    call instead of its 2.3 ms.

    With ``lda`` (>= the order n of ``A0``), each call factorises the leading n x n block of an
    (lda, n) Fortran-ordered array, as the per-star stage does with lda = n rounded up to whole
    cache lines (``ld_bordered``)."""
    n = A0.shape[0]
    if lda is None:
        A = A0.copy(order="F") if work is None else work
    else:
        A = np.zeros((lda, n), dtype=A0.dtype, order="F") if work is None else work
    out = np.empty(calls)
    for k in range(calls):
        A[:n] = A0
        c = clock()
        _core.lapack_potrf(A, n)
        out[k] = clock() - c
    return out


def ld_bordered(n, dtype=np.float32):
    """The per-star stage's leading dimension for a bordered matrix of order n: n rounded up to
    whole 64-byte cache lines (``bordered_ld`` in cpp/include/cloudcov/conditioning.hpp)."""
    k = 64 // np.dtype(dtype).itemsize
    return -(-n // k) * k
