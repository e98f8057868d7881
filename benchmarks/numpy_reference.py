"""Plain numpy/scipy implementation of the LPI kernels, the baseline of the speed ratios.

It is the same algorithm as cloudcov's C++ core written the way a careful numpy user
would: vectorised products and cumulative-sum boxcars per shift, fancy-index gathers of
the per-star covariance and scipy's Cholesky. It is not used by the package.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg


def boxcar_cumsum(x, wr, wc):
    """Valid-region boxcar sums by 2-D cumulative sums in float64."""
    c = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    c[1:, 1:] = np.cumsum(np.cumsum(x, axis=0, dtype=np.float64), axis=1)
    return c[wr:, wc:] - c[:-wr, wc:] - c[wr:, :-wc] + c[:-wr, :-wc]


def prelim_infill_numpy(x, bad, w0=19, widmult=1.4, max_rounds=10, min_good=10):
    """The preliminary infill (CloudCovErr.jl ``prelim_infill!``): each round gives the
    still-masked pixels whose window (numpy-reflect edges) holds more than ``min_good`` good
    pixels the mean of those; windows grow by ``widmult`` (odd, ties to even); the rest get the
    median of the good pixels. Whole-image cumulative-sum boxcars in float64 every round.
    Returns (image in x's dtype, rounds run)."""
    good = ~bad
    vals = np.where(good, x, 0).astype(np.float64)
    out = x.copy()
    todo = bad.copy()
    w, rounds = w0, 0
    while rounds < max_rounds and todo.any():
        h = (w - 1) // 2
        sums = boxcar_cumsum(np.pad(vals, h, mode="reflect"), w, w)
        counts = np.rint(boxcar_cumsum(np.pad(good.astype(np.float64), h, mode="reflect"), w, w))
        ok = todo & (counts > min_good)
        out[ok] = sums[ok] / counts[ok]
        todo &= ~ok
        w = int(np.round((w * widmult - 1) / 2)) * 2 + 1
        rounds += 1
    out[todo] = np.median(x[good])
    return out, rounds


def shift_stack_numpy(x, Np, wr, wc, shifts, dtype=np.float32):
    """Stack (rows, cols, len(shifts)) for the given list of (drow, dcol) shifts."""
    nr, nc = x.shape
    pad = np.zeros((nr + Np, nc + 2 * Np))
    pad[:nr, Np:Np + nc] = x
    out = np.empty((nr - wr + 1, nc - wc + 1, len(shifts)), dtype=dtype)
    xd = x.astype(np.float64)
    for s, (dr, dc) in enumerate(shifts):
        out[:, :, s] = boxcar_cumsum(xd * pad[dr:dr + nr, Np + dc:Np + dc + nc], wr, wc)
    return boxcar_cumsum(xd, wr, wc).astype(dtype), out


def all_shifts(Np):
    return [(0, dc) for dc in range(Np)] + [(dr, dc) for dr in range(1, Np) for dc in range(1 - Np, Np)]


class StarGather:
    """Index arrays mapping a stamp's (i, j) pixel pairs to stack slots (built once per Np)."""

    def __init__(self, Np):
        idx = np.arange(Np * Np)
        r, c = np.divmod(idx, Np)
        i, j = np.meshgrid(idx, idx, indexing="ij")
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        self.dr, self.dk = r[hi] - r[lo], c[hi] - c[lo] + Np - 1
        self.Np, self.r, self.c, self.lo, self.hi = Np, r, c, lo, hi

    def cov(self, bimage, stack, r0, c0, N):
        """stack: cloudcov layout (Np, rows, cols, 2 Np - 1)."""
        rr, cc = self.r + r0, self.c + c0
        S = stack[self.dr, rr[self.lo], cc[self.lo], self.dk].astype(np.float64)
        b = bimage[rr, cc].astype(np.float64)
        cov = (S / N - np.outer(b, b) / N ** 2) * (N / (N - 1))
        return cov, b / N


def condition_numpy(cov, mu, good, hidden, data, stars, psf):
    """Eqs. 4, 5, 9, 10 with scipy's Cholesky (float64)."""
    C = cov.copy()
    C[np.diag_indices_from(C)] += stars
    k, ks = good, hidden
    cf = scipy.linalg.cho_factor(C[np.ix_(k, k)], lower=True, check_finite=False)
    Cks = C[np.ix_(k, ks)]
    A = scipy.linalg.cho_solve(cf, Cks, check_finite=False)
    y = data[k] - mu[k]
    xbar = A.T @ y + mu[ks]
    P = C[np.ix_(ks, ks)] - Cks.T @ A
    pf = scipy.linalg.cho_factor(P, lower=True, check_finite=False)
    p = psf[ks]
    q = scipy.linalg.cho_solve(pf, p, check_finite=False)
    var = p @ q
    chi2 = y @ scipy.linalg.cho_solve(cf, y, check_finite=False)
    return var ** -0.5, np.sum(p ** 2 / np.diag(P)) ** -0.5, data[ks] @ q / var, xbar @ q / var, chi2
