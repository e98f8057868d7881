"""Per-star pixel classes and Gaussian conditioning (paper eqs. 4, 5, 9, 10)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from . import _core
from ._validate import as_float, as_image, as_int, as_mask, as_Np, as_numeric_array, as_rng, to_float

__all__ = ["circle_mask", "PixelClasses", "pixel_classes", "ConditionedStar", "cond_cov_est",
           "DNT_BITS"]

#: Meaning of the ``dnt`` quality bits (DESIGN.md sec. 4).
DNT_BITS = {
    1: "too few good pixels (kcond0 < 4 Np): radius cut dropped",
    2: "still too few: outer one-pixel ring of the stamp forced good",
    4: "condition-number guard engaged: float64 retry and/or diagonal regularisation",
    8: "PSF has negative pixels (|PSF| used)",
    16: "PSF min/max < -1e-3",
    32: "PSF min/max < -1e-1",
    64: "no stable solution: float outputs are NaN",
    128: "not measured: the star's stamp does not overlap the image, or its x, y or flux is NaN, "
         "infinite or masked; float outputs NaN, counts 0 (the int8 sign bit: dnt < 0)",
}


def circle_mask(Np, rlim=256):
    """Mask of the stamp pixels beyond a radius from the centre.

    Parameters
    ----------
    Np : int
        Odd stamp size.
    rlim : float, optional
        Squared radius in pixel^2 (default 256, i.e. radius 16).

    Returns
    -------
    mask : (Np, Np) ndarray of bool
        True where ``drow**2 + dcol**2 > rlim`` (pixels "ignored" by the radius cut).

    Raises
    ------
    ValueError
        If ``Np`` is even, < 3 or > 1023, or ``rlim`` is not finite.

    Notes
    -----
    Mirrors CloudCovErr.jl ``kstar_circle_mask`` (src/preprocess.jl).
    """
    Np = as_Np(Np)
    rlim = as_float("rlim", rlim)
    h = (Np - 1) // 2
    d = np.arange(-h, h + 1)
    return (d[:, None] ** 2 + d[None, :] ** 2) > rlim


@dataclass(frozen=True)
class PixelClasses:
    """Pixel classes of one star's stamp (output of :func:`pixel_classes`).

    Attributes
    ----------
    good : (Np, Np) ndarray of bool
        Pixels used to condition the prediction (the paper's k).
    hidden : (Np, Np) ndarray of bool
        Pixels predicted under the star (k*).
    ignored : (Np, Np) ndarray of bool
        Neither good nor hidden.
    psf : (Np, Np) ndarray of float64
        The PSF stamp as used (``|psf|`` when it had negative pixels).
    kcond0, kcond, kpred, dnt : int
        Initial and final number of good pixels, number of hidden pixels, quality bits.
    """

    good: np.ndarray
    hidden: np.ndarray
    ignored: np.ndarray
    psf: np.ndarray
    kcond0: int
    kcond: int
    kpred: int
    dnt: int


def pixel_classes(kmasked, psf, flux, *, thr=20, circmask=None, rlim=256, flux_floor=1e4):
    """Classify the pixels of a star's stamp as good, hidden or ignored, and set ``dnt``.

    Parameters
    ----------
    kmasked : (Np, Np) ndarray of bool or int
        Upstream mask of the stamp (dq, other stars' cores, outliers); nonzero = masked.
    psf : (Np, Np) ndarray of float
        PSF stamp of the star (peak-normalised or unit-sum, as the photometry used),
        centred on the stamp centre, finite values.
    flux : float
        Star flux in ADU; pixels with ``psf > thr / max(flux, flux_floor)`` are hidden.
    thr : float, optional
        Masking threshold in ADU (default 20).
    circmask : (Np, Np) ndarray of bool, optional
        Pixels beyond the radius cut; default ``circle_mask(Np, rlim)``.
    rlim : float, optional
        Squared radius of the default circle mask (default 256).
    flux_floor : float, optional
        Fainter stars are masked as if they had this flux (default 1e4 ADU, CloudCovErr.jl's
        value for DECam; scale it with ``thr`` for other units).

    Returns
    -------
    PixelClasses
        ``dnt`` bits 1, 2, 8, 16, 32 as CloudCovErr.jl: 1 when fewer than ``4 Np`` good
        pixels remain after the radius cut (the cut is then dropped), 2 when still too few
        (the outer ring of the stamp is forced good and not hidden), 8/16/32 for negative PSF
        pixels (min/max < 0, < -1e-3, < -1e-1; ``|psf|`` is then used).

    Raises
    ------
    TypeError, ValueError
        Wrong shapes, dtypes or non-finite values.

    Notes
    -----
    Mirrors CloudCovErr.jl ``gen_pix_mask`` (src/perstar.jl); paper sec. 5.1.
    """
    psf = as_image("psf", psf, dtype=np.float64)
    if psf.shape[0] != psf.shape[1]:
        raise ValueError(f"psf: expected a square (Np, Np) stamp, got shape {psf.shape}")
    Np = as_Np(psf.shape[0])
    kmasked = as_mask("kmasked", kmasked, psf.shape)
    flux = as_float("flux", flux)
    thr = as_float("thr", thr, positive=True)
    flux_floor = as_float("flux_floor", flux_floor, positive=True)
    if circmask is None:
        circmask = circle_mask(Np, rlim)
    circmask = as_mask("circmask", circmask, psf.shape)
    not_good, hidden, psf_used, kcond0, kcond, kpred, dnt = _core.pixel_classes(
        kmasked, psf, circmask, flux, thr, flux_floor)
    good = not_good == 0
    hidden = hidden != 0
    return PixelClasses(good=good, hidden=hidden, ignored=~good & ~hidden, psf=psf_used,
                        kcond0=kcond0, kcond=kcond, kpred=kpred, dnt=dnt)


@dataclass(frozen=True)
class ConditionedStar:
    """Result of :func:`cond_cov_est` for one star (fluxes in image units, ADU).

    Attributes
    ----------
    dcflux : float
        Flux uncertainty from the full conditional covariance, ``(p^T P^-1 p)^-1/2`` (eq. 10).
    dcflux_diag : float
        Same with only the diagonal of P.
    fdb_tot, fdb_res, fdb_pred : float
        Flux correction ``fdb_pred - fdb_res`` (add it to the input flux) and its two terms
        (eq. 9).
    cchi2 : float
        chi^2 of the good pixels under the local covariance.
    dnt : int
        Guard bits: 4 (the guard changed the computation: float64 retry and/or
        regularisation), 64 (no stable solution, NaNs; also, without bit 4, for a star with no
        good or no hidden pixels).
    precision : int
        32 or 64: precision of the accepted solve (0 when none).
    reg : float
        Diagonal regularisation added by the guard (0 when none).
    mean : (Np, Np) ndarray or None
        ``data`` with hidden pixels replaced by the conditional mean (``export_mean``).
    draws : (n_draw, Np, Np) ndarray or None
        ``data`` with hidden pixels replaced by draws from the conditional distribution.
    """

    dcflux: float
    dcflux_diag: float
    fdb_tot: float
    fdb_res: float
    fdb_pred: float
    cchi2: float
    dnt: int
    precision: int
    reg: float
    mean: np.ndarray | None = None
    draws: np.ndarray | None = None


def _stamp_vector(name, a, n):
    a = as_numeric_array(name, a)
    if a.size != n:
        raise ValueError(f"{name}: expected {n} pixels (an (Np, Np) stamp or flat), got shape {a.shape}")
    return a.reshape(n)


def cond_cov_est(cov, mu, not_good, hidden, data, stars, psf, *, diag_on=True, export_mean=False,
                 n_draw=0, rng=None, guard=True):
    """Predict the hidden pixels of a stamp from its good pixels and correct the star's flux.

    Parameters
    ----------
    cov : (n, n) ndarray of float32 or float64, n = Np**2
        Local covariance over the flattened (row-major) stamp. Read like CloudCovErr.jl: only
        the upper triangles of the good-good and hidden-hidden blocks, the good-hidden block
        as given (identical for a symmetric matrix). Its dtype is the working precision.
    mu : (n,) ndarray
        Local mean of each stamp pixel.
    not_good : (Np, Np) or (n,) bool array
        True for pixels not used for conditioning (hidden or ignored): CloudCovErr.jl ``km``.
    hidden : (Np, Np) or (n,) bool array
        True for the pixels to predict (k*): ``kpsf2d``.
    data : (Np, Np) or (n,) array
        Residual stamp (model - image, not infilled), ADU.
    stars : (Np, Np) or (n,) array
        Star counts ``|model - sky| / gain`` added to the diagonal when ``diag_on``.
    psf : (Np, Np) or (n,) array
        PSF stamp (use ``|psf|``, see :func:`pixel_classes`).
    diag_on : bool, optional
        Add ``stars`` to the covariance diagonal (default True).
    export_mean : bool, optional
        Also return the mean reconstruction.
    n_draw : int, optional
        Number of draws from the conditional distribution to return.
    rng : numpy.random.Generator or int or None, optional
        Source of the normal deviates for the draws (``np.random.default_rng(rng)``).
    guard : bool, optional
        Condition-number guard (default True): retry in float64 and then with a minimal
        diagonal regularisation when the Cholesky fails or the estimated condition number
        exceeds ``1e-2 / eps`` of the working precision (about 8e4 in float32; dnt bit 4);
        NaN outputs and dnt bit 64 when no stable solution exists. With ``guard=False`` a failed Cholesky gives NaN
        outputs and bit 64, like CloudCovErr.jl's caller.

    Returns
    -------
    ConditionedStar

    Raises
    ------
    TypeError, ValueError
        Wrong shapes, dtypes, non-finite inputs or a negative ``n_draw``.

    Notes
    -----
    Mirrors CloudCovErr.jl ``condCovEst_wdiag`` (src/perstar.jl); paper eqs. 4, 5, 9, 10.
    Draws use the symmetric square root of the conditional covariance (eigendecomposition,
    negative round-off eigenvalues clipped to zero), as Julia's SVD-based square root.
    """
    cov = as_image("cov", cov)
    n = cov.shape[0]
    if cov.shape[1] != n:
        raise ValueError(f"cov: expected a square matrix, got shape {cov.shape}")
    Np = int(round(np.sqrt(n)))
    if Np * Np != n:
        raise ValueError(f"cov: size {n} is not Np**2")
    mu = to_float("mu", _stamp_vector("mu", mu, n), cov.dtype)
    ng = as_mask("not_good", _stamp_vector("not_good", not_good, n))
    hd = as_mask("hidden", _stamp_vector("hidden", hidden, n))
    vecs = {}
    for name, a in (("data", data), ("stars", stars), ("psf", psf)):
        vecs[name] = to_float(name, _stamp_vector(name, a, n), np.float64)
    n_draw = as_int("n_draw", n_draw, minimum=0)
    keep = bool(export_mean or n_draw)
    with threadpool_limits(1, user_api="blas"):   # one star: a multi-threaded BLAS only waits
        r = _core.cond_cov_est(cov, mu, ng, hd, vecs["data"], vecs["stars"], vecs["psf"],
                               bool(diag_on), bool(guard), keep)
    mean = draws = None
    hidx = np.flatnonzero(hd)
    ok = not (r["dnt"] & 64)
    if export_mean:
        m = vecs["data"].copy()
        m[hidx] = r["xbar"] if ok else np.nan
        mean = m.reshape(Np, Np)
    if n_draw:
        gen = as_rng("rng", rng)
        d = np.repeat(vecs["data"][None, :], n_draw, axis=0)
        if ok and hidx.size:
            w, v = scipy.linalg.eigh(r["pcov"])
            sqrt_cov = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
            noise = sqrt_cov @ gen.standard_normal((hidx.size, n_draw))
            d[:, hidx] = r["xbar"][None, :] + noise.T
        else:
            d[:, hidx] = np.nan
        draws = d.reshape(n_draw, Np, Np)
    return ConditionedStar(dcflux=r["dcflux"], dcflux_diag=r["dcflux_diag"],
                           fdb_tot=r["fdb_pred"] - r["fdb_res"], fdb_res=r["fdb_res"],
                           fdb_pred=r["fdb_pred"], cchi2=r["cchi2"], dnt=r["dnt"],
                           precision=r["precision"], reg=r["reg"], mean=mean, draws=draws)
