"""Imputation of masked pixels: LPI (CloudCovFix.jl), GPR (astrofix), median and Gaussian baselines.

``impute(image, mask, method=...)`` replaces every masked pixel of an image by an estimate
from its good neighbours and reports a per-pixel uncertainty ``std`` and, optionally, random
draws. The four methods share one input check, one result type and one fallback report:

``"lpi"``
    Local pixelwise infilling with the covariance of the image itself (the shifted-product
    stack of the photometry path), as CloudCovFix.jl ``proc_continuous`` / ``proc_discrete``.
``"gpr"``
    Gaussian-process regression with a squared-exponential or Ornstein-Uhlenbeck kernel whose
    amplitude and scale are trained on the image's own bright pixels (Zhang & Brandt 2021,
    astrofix).
``"median"``
    Median of the good pixels in a ``size x size`` box (the usual hot-pixel replacement).
``"gaussian"``
    ``astropy.convolution.interpolate_replace_nans`` with a ``Gaussian2DKernel`` (astrofix's
    baseline).

Conventions: images are ``[row, col]``; pixel values in image units (ADU); positions 0-based.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._validate import INT32_MAX, as_float, as_int, as_mask, as_numeric_array, as_rng, as_threads
from .tiling import DEFAULT_MAX_MEMORY

__all__ = ["ImputeResult", "impute", "METHODS"]

#: Methods understood by :func:`impute`.
METHODS = ("lpi", "gpr", "median", "gaussian")

#: 1 / Phi^-1(3/4): MAD -> standard deviation of a Gaussian.
_MAD_TO_SIGMA = 1.482602218505602


@dataclass(frozen=True)
class ImputeResult:
    """Result of :func:`impute`.

    Attributes
    ----------
    image : (nrow, ncol) ndarray of float32 or float64
        Input image with every masked pixel replaced by the method's estimate (the conditional
        mean for ``lpi`` and ``gpr``). Good pixels are the input values, bit for bit. Float
        inputs keep their dtype; integer and bool inputs give float64.
    std : (nrow, ncol) ndarray, dtype of ``image``
        Standard deviation of ``true - image`` predicted for each imputed pixel (image
        units); exactly 0 on good pixels. ``lpi``/``gpr``: the square root of the conditional
        variance. ``median``/``gaussian``: the local robust scatter of the good pixels in the
        window (``1.4826 * MAD``) inflated by the estimator's own variance, see :func:`impute`.
    draws : (n_draw, nrow, ncol) ndarray or None
        Random images: good pixels as in the input, imputed pixels drawn from the predictive
        distribution (multivariate for ``lpi``/``gpr``, independent for the baselines).
        ``None`` when ``n_draw == 0``.
    mask : (nrow, ncol) ndarray of bool
        The pixels that were imputed (input mask, plus non-finite pixels if ``nan_as_bad``).
    method : str
        The method used.
    params : dict
        Parameters used or fitted (method options after defaults, fitted hyperparameters).
    fallback : (nrow, ncol) ndarray of bool
        Imputed pixels whose neighbourhood had too few good pixels for the method itself and
        were filled by a fallback (see ``fallback_reasons``); a subset of ``mask``.
    fallback_reasons : dict of str -> int
        Number of pixels per fallback kind (empty when no fallback was needed).
    """

    image: np.ndarray
    std: np.ndarray
    draws: np.ndarray | None
    mask: np.ndarray
    method: str
    params: dict = field(default_factory=dict)
    fallback: np.ndarray | None = None
    fallback_reasons: dict = field(default_factory=dict)

    @property
    def n_imputed(self) -> int:
        """Number of imputed pixels."""
        return int(np.count_nonzero(self.mask))

    @property
    def n_fallback(self) -> int:
        """Number of imputed pixels filled by a fallback."""
        return 0 if self.fallback is None else int(np.count_nonzero(self.fallback))


# ----------------------------------------------------------------------------- input checks

def _prepare(image, mask, nan_as_bad):
    """Validated float working copy of ``image`` and the boolean mask of pixels to impute."""
    arr = as_numeric_array("image", image)
    if arr.ndim != 2:
        raise ValueError(f"image: expected a 2-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"image: empty array of shape {arr.shape}")
    dt = arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    img = np.array(arr, dtype=dt, order="C", copy=True)
    if mask is None:
        bad = np.zeros(img.shape, bool)
    else:
        bad = as_mask("mask", mask, img.shape).astype(bool)
    nonfinite = ~np.isfinite(img)
    if nonfinite.any():
        if nan_as_bad:
            bad |= nonfinite
        elif (nonfinite & ~bad).any():
            n = int(np.count_nonzero(nonfinite & ~bad))
            raise ValueError(f"image: {n} NaN or infinite values outside the mask "
                             "(pass nan_as_bad=True to impute them)")
    if bad.all():
        raise ValueError("mask: every pixel is masked; nothing to impute from")
    img[bad] = np.nan  # never read: makes any accidental use of a masked value visible
    return img, bad


def _check_options(method, options, allowed):
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"impute(method={method!r}): unexpected keyword argument(s) "
                        f"{', '.join(unknown)}; allowed: {', '.join(sorted(allowed)) or 'none'}")


def _as_bool(name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {v!r}")
    return bool(v)


# ----------------------------------------------------------------------------- local windows

def _window_values(img_nan, rows, cols, half, chunk):
    """Yield ``(start, stop, values)`` with the ``(2 half + 1)^2`` window values of pixels
    ``rows[start:stop], cols[start:stop]`` (row-major window order; NaN for masked pixels and
    pixels beyond the edge)."""
    w = 2 * half + 1
    pad = np.pad(img_nan, half, mode="constant", constant_values=np.nan)
    d = np.arange(w)
    for s in range(0, rows.size, chunk):
        r = rows[s:s + chunk, None, None] + d[None, :, None]
        c = cols[s:s + chunk, None, None] + d[None, None, :]
        yield s, min(s + chunk, rows.size), pad[r, c].reshape(r.shape[0], w * w)


def _chunk(max_memory, w):
    # the gathered windows and three temporaries of the same size
    return max(1, int(max_memory) // (w * w * 8 * 4))


def _robust_sigma(vals):
    """1.4826 * MAD of the non-NaN values of each row (NaN where a row has none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows handled by the caller
        med = np.nanmedian(vals, axis=1)
        return _MAD_TO_SIGMA * np.nanmedian(np.abs(vals - med[:, None]), axis=1), med


def _median_fill(img_nan, bad, todo, size, min_good, max_memory, reasons):
    """Median (and predictive std) of the good pixels around each pixel of ``todo``.

    The box starts at ``size`` and is grown to ``2 size + 1`` up to four times for pixels with
    fewer than ``min_good`` good pixels; what is still short gets the median and robust sigma
    of all good pixels. Returns ``(mean, std, fell_back)`` for ``todo``'s pixels in
    ``np.nonzero`` order.
    """
    rows, cols = np.nonzero(todo)
    mean = np.empty(rows.size)
    std = np.empty(rows.size)
    done = np.zeros(rows.size, bool)
    grown = np.zeros(rows.size, bool)
    s = size
    for attempt in range(5):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        half = s // 2
        for a, b, vals in _window_values(img_nan, rows[idx], cols[idx], half, _chunk(max_memory, s)):
            n = np.count_nonzero(~np.isnan(vals), axis=1)
            ok = n >= min_good
            sel = idx[a:b][ok]
            sig, med = _robust_sigma(vals[ok])
            mean[sel] = med
            # var(true - median) = sigma^2 (1 + pi / (2 n)) for n exchangeable Gaussian neighbours
            std[sel] = sig * np.sqrt(1.0 + np.pi / (2.0 * n[ok]))
            done[sel] = True
            grown[sel] = attempt > 0
        s = 2 * s + 1
    if grown.any():
        reasons["median_box_grown"] = reasons.get("median_box_grown", 0) + int(grown.sum())
    rest = ~done
    if rest.any():
        good = img_nan[~bad]
        med = float(np.median(good))
        sig = _MAD_TO_SIGMA * float(np.median(np.abs(good - med)))
        mean[rest] = med
        std[rest] = sig * math.sqrt(1.0 + np.pi / (2.0 * good.size))
        reasons["global_median"] = reasons.get("global_median", 0) + int(rest.sum())
    return mean, std, grown | rest


# ----------------------------------------------------------------------------- baselines

def _impute_median(img_nan, bad, max_memory, options):
    _check_options("median", options, ("size", "min_good"))
    size = as_int("size", options.get("size", 5), minimum=1, odd=True, maximum=4095)
    min_good = as_int("min_good", options.get("min_good", 3), minimum=1, maximum=INT32_MAX)
    reasons = {}
    mean, std, fb = _median_fill(img_nan, bad, bad, size, min_good, max_memory, reasons)
    fallback = np.zeros(bad.shape, bool)
    fallback[bad] = fb
    return mean, std, fallback, reasons, dict(size=size, min_good=min_good)


def _impute_gaussian(img_nan, bad, max_memory, options):
    from astropy.convolution import Gaussian2DKernel, interpolate_replace_nans

    _check_options("gaussian", options, ("sigma", "min_good"))
    sigma = as_float("sigma", options.get("sigma", 1.0), positive=True)
    if sigma > 256:
        raise ValueError(f"sigma: must be <= 256 pixels, got {sigma}")
    min_good = as_int("min_good", options.get("min_good", 3), minimum=1, maximum=INT32_MAX)
    kernel = Gaussian2DKernel(x_stddev=sigma)
    karr = np.asarray(kernel.array, dtype=np.float64)
    half = karr.shape[0] // 2
    if not bad.any():
        return (np.empty(0), np.empty(0), np.zeros(bad.shape, bool), {},
                dict(sigma=sigma, kernel_size=int(karr.shape[0]), min_good=min_good))
    with warnings.catch_warnings():
        # astropy warns about all-NaN kernel footprints; those pixels fall back below
        warnings.simplefilter("ignore")
        conv = interpolate_replace_nans(img_nan.astype(np.float64), kernel, boundary="fill",
                                        fill_value=np.nan)
    rows, cols = np.nonzero(bad)
    mean = conv[rows, cols]
    std = np.full(rows.size, np.nan)
    ok_all = np.zeros(rows.size, bool)
    kflat = karr.reshape(-1)
    for a, b, vals in _window_values(img_nan, rows, cols, half, _chunk(max_memory, karr.shape[0])):
        goodw = ~np.isnan(vals)
        n = np.count_nonzero(goodw, axis=1)
        s1 = np.sum(goodw * kflat, axis=1)  # row-wise: independent of the chunking
        s2 = np.sum(goodw * (kflat * kflat), axis=1)
        ok = (n >= min_good) & np.isfinite(mean[a:b]) & (s1 > 0)
        sig, _ = _robust_sigma(vals)
        with np.errstate(invalid="ignore", divide="ignore"):
            # var(true - sum w x / sum w) = sigma^2 (1 + sum w^2 / (sum w)^2), white noise
            std[a:b] = np.where(ok, sig * np.sqrt(1.0 + s2 / (s1 * s1)), np.nan)
        ok_all[a:b] = ok
    reasons = {}
    fallback = np.zeros(bad.shape, bool)
    if not ok_all.all():
        todo = np.zeros(bad.shape, bool)
        todo[rows[~ok_all], cols[~ok_all]] = True
        m2, s2_, _ = _median_fill(img_nan, bad, todo, karr.shape[0], min_good, max_memory, reasons)
        mean[~ok_all] = m2
        std[~ok_all] = s2_
        reasons = {"gaussian_to_" + k: v for k, v in reasons.items()}
        reasons["gaussian_kernel_short"] = int((~ok_all).sum())
        fallback = todo
    return mean, std, fallback, reasons, dict(sigma=sigma, kernel_size=int(karr.shape[0]),
                                             min_good=min_good)


# ----------------------------------------------------------------------------- public entry

def impute(image, mask=None, method="lpi", *, n_draw=0, rng=None, threads=None,
           max_memory=DEFAULT_MAX_MEMORY, progress=False, nan_as_bad=True, **options):
    """Replace masked pixels of an image by estimates from their good neighbours.

    Parameters
    ----------
    image : (nrow, ncol) array_like, real numeric
        Image, ``[row, col]``, image units (ADU). Float32/float64 keep their dtype in the
        output, other numeric types give float64. Values under the mask are never read.
    mask : (nrow, ncol) ndarray of bool or integer, or None
        Non-zero = bad pixel to impute (a dq-style integer array works as is). ``None``: only
        the non-finite pixels (with ``nan_as_bad``).
    method : {"lpi", "gpr", "median", "gaussian"}
        Imputation method (see the module docstring and the method options below).
    n_draw : int, optional
        Number of random images to draw from the predictive distribution (default 0).
    rng : numpy.random.Generator or int or None, optional
        Random source for the draws and for the training-image noise of ``lpi``; an integer
        seed gives the same output whatever ``threads`` and ``max_memory``.
    threads : int or None, optional
        Worker threads for the C++ kernels (``lpi``, ``gpr``); ``None`` = 1, 0 = all cores.
        The numpy baselines run on one thread. Results do not depend on it.
    max_memory : int, optional
        Working-memory budget in bytes for the stack (``lpi``) and for window gathers
        (default 768 MiB, :data:`cloudcov.tiling.DEFAULT_MAX_MEMORY`). Results do not
        depend on it.
    progress : bool, optional
        Show a progress bar (tqdm) for the long methods.
    nan_as_bad : bool, optional
        Impute non-finite pixels too (default True). With False, a non-finite pixel outside
        the mask raises ValueError.
    **options
        Method options.

        ``median``: ``size`` (odd box width, default 5, astrofix's baseline), ``min_good``
        (good pixels required in the box, default 3).

        ``gaussian``: ``sigma`` (kernel standard deviation in pixels, default 1, astrofix's
        baseline), ``min_good`` (default 3).

    Returns
    -------
    ImputeResult

    Raises
    ------
    TypeError
        Non-numeric ``image``, non-bool/integer ``mask``, an option unknown to ``method``,
        wrongly typed parameters.
    ValueError
        Non-2-D or empty ``image``; ``mask`` shape differs; every pixel masked; unknown
        ``method``; out-of-range parameters; non-finite good pixels with ``nan_as_bad=False``.

    Notes
    -----
    Fallbacks (never a silent NaN): a pixel whose neighbourhood lacks good pixels for its
    method is filled by the median of a growing box (``2 size + 1``, four times), then by the
    median of all good pixels; such pixels are flagged in ``ImputeResult.fallback`` and
    counted per kind in ``fallback_reasons``.

    ``std`` of the baselines. For ``median`` and ``gaussian`` ``std`` is a predictive scatter,
    not a model posterior: with ``sigma`` = 1.4826 x the MAD of the good pixels of the window
    (the box for ``median``, the kernel footprint for ``gaussian``), the variance of
    ``true - estimate`` for exchangeable Gaussian neighbours, ``sigma^2 (1 + pi / (2 n))`` for
    the median of ``n`` values and ``sigma^2 (1 + sum w^2 / (sum w)^2)`` for the kernel-
    weighted mean. It is honest on flat backgrounds; near stars the window scatter includes the
    star's gradient, so it is large there, which is also where these estimators are poor.
    Their draws are independent Gaussians with that ``std``.

    Sources: CloudCovFix.jl (``lpi``), Zhang & Brandt 2021 (astrofix; ``gpr`` and the two
    baselines, their sec. 5: 5 x 5 median, astropy convolution with sigma = 1).
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    n_draw = as_int("n_draw", n_draw, minimum=0, maximum=INT32_MAX)
    gen = as_rng("rng", rng)
    threads = as_threads(threads)
    max_memory = as_int("max_memory", max_memory, minimum=1)
    progress = _as_bool("progress", progress)
    nan_as_bad = _as_bool("nan_as_bad", nan_as_bad)
    img, bad = _prepare(image, mask, nan_as_bad)
    dt = img.dtype

    cov_draw = None  # (mean, cov-factor) draws of lpi/gpr come from the method itself
    if method == "median":
        mean, std, fallback, reasons, params = _impute_median(img, bad, max_memory, options)
    elif method == "gaussian":
        mean, std, fallback, reasons, params = _impute_gaussian(img, bad, max_memory, options)
    else:  # pragma: no cover - filled in by the lpi / gpr commits
        raise NotImplementedError(f"method={method!r} is not implemented yet")

    out = img
    out[bad] = mean
    stdimg = np.zeros(img.shape, dt)
    stdimg[bad] = std
    draws = None
    if n_draw and cov_draw is None:
        draws = np.repeat(out[None], n_draw, axis=0)
        noise = gen.standard_normal((n_draw, mean.size))
        draws[:, bad] = (mean[None, :] + std[None, :] * noise).astype(dt)
    if not (np.all(np.isfinite(out)) and np.all(np.isfinite(stdimg))):  # pragma: no cover
        raise FloatingPointError(f"impute(method={method!r}) produced non-finite values; "
                                 "please report this")
    return ImputeResult(image=out, std=stdimg, draws=draws, mask=bad, method=method,
                        params=params, fallback=fallback, fallback_reasons=reasons)

