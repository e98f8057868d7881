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
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._validate import INT32_MAX, as_float, as_int, as_mask, as_numeric_array, as_rng, as_threads
from .tiling import DEFAULT_MAX_MEMORY

__all__ = ["ImputeResult", "impute", "gpr_weights", "METHODS"]

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

        ``lpi``: ``Np`` (odd stamp side, default 9), ``widx``/``widy`` (odd boxcar widths of the
        covariance training window along rows/columns, default 129), ``mode``
        (``"independent"``, default, or ``"continuous"``), ``centers`` (``(rows, cols)``
        integer arrays: CloudCovFix.jl ``proc_discrete``), ``noise`` (``"gaussian"`` or
        ``"poisson"``; default ``"poisson"`` when ``gain`` is given), ``gain`` (e-/ADU),
        ``rlim`` (squared radius in pixel^2 beyond which stamp pixels are not used; default
        none), ``dtype`` (stack precision, default float64), ``guard`` (condition-number
        guard, default True), ``assign_half`` (half-size of the box of masked pixels a stamp
        predicts, default ``max(1, (Np-1)//4)``), ``min_good`` (good pixels a stamp needs, default
        ``Np``), ``calibrate`` (default True), ``n_calib`` (calibration pixels, default 2000),
        ``sym`` (accepted, see Notes).

        ``gpr``: ``kernel`` (``"se"`` squared exponential, default, or ``"ou"``
        Ornstein-Uhlenbeck), ``a`` and ``h`` (fixed amplitude in noise units and scale in
        pixels, isotropic or ``(h_row, h_col)``; give both or neither), ``init`` (start of the
        fit, ``(a, h)`` or ``(a, h_row, h_col)`` for an anisotropic fit; default ``(3, 1)``),
        ``width`` (odd window, default 9), ``mu``/``tau`` (penalty, default 3000/200),
        ``sig_clip`` (training pixels at least this many noise sigma above the background,
        default 7, about astrofix's 10 MAD), ``max_clip`` (and below ``1/max_clip`` of the
        peak above background, default 5), ``min_train`` (the clip is lowered to 5, 3, 1, then
        none until this many training pixels exist, default 1000), ``max_train`` (random
        subsample, default 10000), ``noise``/``gain`` (as ``lpi``), ``calibrate`` (default
        True), ``min_good`` (default 3).

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

    ``lpi`` (CloudCovFix.jl ``proc_continuous``/``proc_discrete``, our conventions). The
    training image is the image minus its median, with the masked pixels replaced by the
    preliminary infill (:func:`cloudcov.prelim_infill`) plus noise (``noise="gaussian"``: the
    white-noise sigma, IQR/1.349 of adjacent-row differences divided by sqrt(2) -- CloudCovFix.jl
    uses the IQR sigma of the differenced image itself, sqrt(2) too large for white noise;
    ``noise="poisson"``: sqrt(sigma^2 + max(value - background, 0) / gain)), padded by
    reflection. Its shifted-product stack is swept in memory-budgeted strips (the photometry
    path's C++ ``lpi_strip``) and each stamp is conditioned by the photometry path's kernel
    (Cholesky of the good-pixel covariance, condition-number guard with float64 retry and
    minimal regularisation instead of CloudCovFix.jl's SVD fallback). Stamps: masked pixels are
    visited by distance from the image centre (CloudCovFix.jl order); an unassigned one opens
    an ``Np x Np`` stamp centred on it that predicts the unassigned masked pixels within
    ``assign_half`` of its centre, so each masked pixel is filled exactly once, from the good
    pixels of its stamp. ``mode="independent"`` conditions every stamp on the original good
    pixels only (one sweep, parallel); ``mode="continuous"`` colours the stamps so that
    overlapping stamps differ in colour and processes colour after colour, later stamps
    conditioning on the earlier fills as ``proc_continuous`` does (one sweep per colour, and per
    draw: several times slower). Independent is the default: on the real frames of
    ``validation/scripts/05_imputation.py`` it is as accurate and calibrated (see
    validation/RESULTS_imputation.md). Draws: per stamp, ``xbar + S z`` with ``S`` the symmetric
    square root of the conditional covariance and ``z ~ N(0, 1)`` drawn in stamp order (results
    do not depend on threads or strips). ``std`` is the square root of the conditional variance
    times a calibration factor: the IQR/1.349 of the Z-scores of ``n_calib`` random good pixels,
    each hidden alone in its own stamp of the same sweep, in up to 10 bins of predicted level
    (a Gaussian model with the 129-pixel window covariance over-predicts the scatter of
    background pixels near stars; the factor is recorded in ``params["calibration"]``). ``sym``:
    CloudCovFix.jl's ``build_cov_sym!`` averages the two anchorings of each pixel pair
    (products over the window of pixel i with shift d, and of pixel j = i + d with shift -d).
    With cloudcov's boxcar sums of products (no circular shifts) the two are the same sum
    (substitute q -> q + d), so the covariance is already symmetric; ``sym=True`` is accepted
    for CloudCovFix.jl compatibility and changes nothing (tested).

    ``gpr`` (astrofix's model, Zhang & Brandt 2021, written from the paper). In units of the
    white-noise sigma (background subtracted), ``k = a^2 exp(-r^2/2h^2)`` (SE) or
    ``a^2 exp(-r/h)`` (OU), with ``r`` scaled per axis for ``(h_row, h_col)``. Training set: good
    pixels whose whole window is good and inside the image, above ``sig_clip`` sigma and below
    ``1/max_clip`` of the peak (above background: a raw frame's bias makes astrofix's
    "1/5 of the maximum" empty). ``(a, h)`` minimise the mean absolute leave-one-out residual
    of the training pixels times ``1 + exp((a - mu)/tau)`` (astrofix eq. 7), with
    ``scipy.optimize.minimize(method="Powell")`` under ``a >= 1``, ``1/2 <= h <= width``.
    Each masked pixel is predicted from the good pixels of its window: ``v = (K_GG + I)^-1 k``
    by Cholesky (LAPACK via scipy), ``w = v / sum(v)`` (astrofix's normalisation), model
    variance ``a^2 + 1 - k.v (2/s - 1/s^2)``; the all-good pattern's weights are computed once,
    interior windows with up to 8 other bad pixels reuse its Cholesky factor (block update),
    others get their own factorisation (C++, threads, GIL released). ``std`` = model standard
    deviation x local noise (white sigma; with ``poisson`` also the Poisson term) x the
    leave-one-out calibration factor of random good pixels in 10 level bins. Draws are
    independent Gaussians with that ``std`` (the correlation of errors of neighbouring masked
    pixels is not modelled; use ``lpi`` for joint draws).

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

    cov_draw = None  # (n_draw, n_masked) draws of lpi/gpr come from the method itself
    if method == "median":
        mean, std, fallback, reasons, params = _impute_median(img, bad, max_memory, options)
    elif method == "gaussian":
        mean, std, fallback, reasons, params = _impute_gaussian(img, bad, max_memory, options)
    elif method == "lpi":
        mean, std, fallback, reasons, params, cov_draw = _impute_lpi(
            img, bad, gen, n_draw, threads, max_memory, progress, options)
    else:
        mean, std, fallback, reasons, params = _impute_gpr(img, bad, gen, n_draw, threads,
                                                           max_memory, progress, options)

    out = img
    out[bad] = mean
    stdimg = np.zeros(img.shape, dt)
    stdimg[bad] = std
    draws = None
    if n_draw:
        draws = np.repeat(out[None], n_draw, axis=0)
        if cov_draw is None:
            noise = gen.standard_normal((n_draw, mean.size))
            draws[:, bad] = (mean[None, :] + std[None, :] * noise).astype(dt)
        else:
            draws[:, bad] = cov_draw.astype(dt)
    if not (np.all(np.isfinite(out)) and np.all(np.isfinite(stdimg))
            and (draws is None or np.all(np.isfinite(draws)))):  # pragma: no cover
        raise FloatingPointError(f"impute(method={method!r}) produced non-finite values; "
                                 "please report this")
    return ImputeResult(image=out, std=stdimg, draws=draws, mask=bad, method=method,
                        params=params, fallback=fallback, fallback_reasons=reasons)



# ----------------------------------------------------------------------------- noise models

def _white_sigma(img_nan, bad):
    """White-noise sigma from adjacent-row differences of good pixels: IQR/1.349 / sqrt(2).

    CloudCovFix.jl uses ``sig_iqr`` of the row-differenced image itself, the sigma of a
    difference of two pixels, i.e. sqrt(2) times the white-noise sigma of one pixel; cloudcov
    divides by sqrt(2).
    """
    both = ~bad[1:, :] & ~bad[:-1, :]
    d = (img_nan[1:, :] - img_nan[:-1, :])[both]
    if d.size < 2:
        good = img_nan[~bad]
        q1, q3 = np.percentile(good, [25, 75])
        return float(q3 - q1) / 1.3489795003921634
    q1, q3 = np.percentile(d, [25, 75])
    return float(q3 - q1) / 1.3489795003921634 / math.sqrt(2.0)


def _noise_sigma(values, noise, sigma_white, bkg, gain):
    """Per-pixel noise sigma of ``values`` (ADU) under the noise model."""
    if noise == "gaussian":
        return np.full(np.shape(values), sigma_white)
    # poisson above the background (Gaussian approximation) plus the background white noise
    return np.sqrt(sigma_white ** 2 + np.maximum(np.asarray(values) - bkg, 0.0) / gain)


def _noise_options(options, img_nan, bad):
    gain = options.get("gain")
    if gain is not None:
        gain = as_float("gain", gain, positive=True)
    noise = options.get("noise", "poisson" if gain is not None else "gaussian")
    if noise not in ("poisson", "gaussian"):
        raise ValueError(f"noise: expected 'poisson' or 'gaussian', got {noise!r}")
    if noise == "poisson" and gain is None:
        raise ValueError("noise='poisson' needs gain (e-/ADU)")
    sig = _white_sigma(img_nan, bad)
    bkg = float(np.median(img_nan[~bad]))
    return noise, gain, sig, bkg


# ----------------------------------------------------------------------------- LPI

def _lpi_stamps(bad, Np, assign_half, centers):
    """Stamp centres and the masked pixels each one predicts (every masked pixel once).

    Without ``centers`` (CloudCovFix.jl ``proc_continuous`` order): masked pixels are visited
    by distance from the image centre (ties by row, then column); an unassigned pixel opens a
    stamp centred on it that takes every unassigned masked pixel within ``assign_half`` rows
    and columns of its centre. With ``centers`` (``proc_discrete``): masked pixels go to the
    nearest given centre (Chebyshev distance, ties to the first centre) within ``(Np-1)/2``;
    pixels no centre reaches are not imputed by LPI (they fall back).

    Returns ``(rows, cols, label)`` with ``label`` the stamp index of each masked pixel in
    ``np.nonzero(bad)`` order (-1 when unassigned).
    """
    pr, pc = np.nonzero(bad)
    nrow, ncol = bad.shape
    label_img = np.full(bad.shape, -1, np.int64)
    if centers is None:
        d2 = (pr - nrow // 2) ** 2 + (pc - ncol // 2) ** 2
        order = np.lexsort((pc, pr, d2))
        rows, cols = [], []
        a = assign_half
        for i in order:
            r, c = int(pr[i]), int(pc[i])
            if label_img[r, c] >= 0:
                continue
            k = len(rows)
            rows.append(r)
            cols.append(c)
            r0, r1, c0, c1 = max(r - a, 0), min(r + a + 1, nrow), max(c - a, 0), min(c + a + 1, ncol)
            sub = label_img[r0:r1, c0:c1]
            sub[(sub < 0) & bad[r0:r1, c0:c1]] = k
        rows = np.asarray(rows, np.int64)
        cols = np.asarray(cols, np.int64)
    else:
        rows, cols = centers
        h = (Np - 1) // 2
        best = np.full(pr.size, np.iinfo(np.int64).max)
        for k in range(rows.size):
            d = np.maximum(np.abs(pr - rows[k]), np.abs(pc - cols[k]))
            take = (d <= h) & (d < best)
            best[take] = d[take]
            label_img[pr[take], pc[take]] = k
    return rows, cols, label_img[pr, pc]


def _colour_stamps(rows, cols, Np):
    """Greedy colouring (in stamp order) so that stamps of one colour never overlap."""
    n = rows.size
    colour = np.zeros(n, np.int64)
    cell = {}
    for k in range(n):
        gr, gc = int(rows[k]) // Np, int(cols[k]) // Np
        used = set()
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                for j in cell.get((gr + dr, gc + dc), ()):
                    if abs(int(rows[j]) - int(rows[k])) < Np and abs(int(cols[j]) - int(cols[k])) < Np:
                        used.add(int(colour[j]))
        c = 0
        while c in used:
            c += 1
        colour[k] = c
        cell.setdefault((gr, gc), []).append(k)
    return colour


def _lpi_pass(train_pad, data_pad, bad_pad, R, C, hidden, circ, Np, widx, widy, max_memory, dt,
              guard, threads, progress):
    """One strip sweep over the padded training image: conditional mean/cov of each stamp's
    hidden pixels given its good pixels (C++ ``lpi_impute_strip``)."""
    from threadpoolctl import threadpool_limits

    from . import _core
    from .tiling import progress_bar, sweep_plan

    n = R.size
    kp = hidden.reshape(n, -1).sum(axis=1).astype(np.int64)
    xbar = [None] * n
    pcov = [None] * n
    dnt = np.zeros(n, np.int8)
    kcond = np.zeros(n, np.int32)
    sweeps, ring_buf, bim_buf = sweep_plan(R, C, Np, widx, widy, max_memory, dt)
    it = progress_bar(sweeps, "cloudcov impute strips", progress)
    for sw in it:
        sel = sw.sel
        kps = kp[sel]
        xo = np.zeros(sel.size + 1, np.int64)
        np.cumsum(kps, out=xo[1:])
        po = np.zeros(sel.size + 1, np.int64)
        np.cumsum(kps * kps, out=po[1:])
        with threadpool_limits(1):
            out = _core.lpi_impute_strip(train_pad, sw.r0, sw.r1, sw.c0, sw.c1, sw.ring_rows,
                                         ring_buf, bim_buf, Np, widx, widy, data_pad, bad_pad,
                                         np.ascontiguousarray(R[sel]), np.ascontiguousarray(C[sel]),
                                         np.ascontiguousarray(hidden[sel]), circ, False,
                                         bool(guard), threads, xo, po)
        dnt[sel] = out["dnt"]
        kcond[sel] = out["kcond"]
        for j, k in enumerate(sel):
            xbar[k] = out["xbar"][xo[j]:xo[j + 1]]
            pcov[k] = out["pcov"][po[j]:po[j + 1]].reshape(kps[j], kps[j])
    return xbar, pcov, dnt, kcond


_LPI_OPTIONS = ("Np", "widx", "widy", "mode", "centers", "noise", "gain", "rlim", "dtype", "guard",
                "assign_half", "min_good", "calibrate", "n_calib", "sym")


def _as_centers(centers, shape):
    try:
        rows, cols = centers
    except (TypeError, ValueError):
        raise TypeError("centers: expected a pair (rows, cols) of integer arrays") from None
    rows = as_numeric_array("centers[0]", rows).reshape(-1)
    cols = as_numeric_array("centers[1]", cols).reshape(-1)
    if rows.size != cols.size:
        raise ValueError(f"centers: {rows.size} rows but {cols.size} cols")
    if rows.size == 0:
        raise ValueError("centers: empty")
    for name, v, n in (("centers[0]", rows, shape[0]), ("centers[1]", cols, shape[1])):
        if v.dtype.kind == "f" and not np.all(v == np.round(v)):
            raise ValueError(f"{name}: expected integer pixel positions")
        if v.min() < 0 or v.max() >= n:
            raise ValueError(f"{name}: positions must lie in [0, {n - 1}]")
    return rows.astype(np.int64), cols.astype(np.int64)


def _lpi_training(img_nan, bad, Np, widx, widy, noise, gain, sig_white, bkg, gen, dt):
    """LPI training image (CloudCovFix.jl ``proc_continuous`` preprocessing).

    The background ``bkg`` is subtracted (``work``, 0 under the mask), masked pixels get the
    preliminary infill (:func:`cloudcov.prelim_infill`), the image is padded by reflection
    by ``(Np-1)/2 + (wid-1)/2`` (mask padded True) and every masked or padding pixel gets
    noise from the noise model. Returns ``(work, train_pad, bad_pad, pad)``.
    """
    from .infill import prelim_infill

    h = (Np - 1) // 2
    work = np.where(bad, 0.0, img_nan - bkg)
    inf = prelim_infill(work, bad)
    pr, pc = h + (widx - 1) // 2, h + (widy - 1) // 2
    pad = ((pr, pr), (pc, pc))
    train_pad = np.pad(inf.image, pad, mode="reflect")
    bad_pad = np.pad(bad, pad, mode="constant", constant_values=True)
    sig = _noise_sigma(train_pad[bad_pad] + bkg, noise, sig_white, bkg, gain)
    train_pad[bad_pad] += sig * gen.standard_normal(sig.size)
    return work, np.ascontiguousarray(train_pad, dtype=dt), bad_pad, pad


def _calibration_table(level, z):
    """IQR/1.349 of Z-scores in up to 10 equal-count bins of ``level`` (>= 200 per bin)."""
    order = np.argsort(level)
    nb = int(min(10, max(1, level.size // 200)))
    edges = np.linspace(0, level.size, nb + 1).astype(int)
    centres, facs = [], []
    for b in range(nb):
        sl = order[edges[b]:edges[b + 1]]
        q1, q3 = np.percentile(z[sl], [25, 75])
        centres.append(float(np.median(level[sl])))
        facs.append(float(q3 - q1) / 1.3489795003921634)
    return centres, facs


def _fallback_fill(img_nan, bad, mr, mc, ok, max_memory, prefix, reasons):
    """Median-box fallback (:func:`_median_fill`) for the masked pixels ``~ok`` (of
    ``mr, mc``); returns ``(mean, std, fallback mask)`` of those pixels, counts in ``reasons``."""
    todo = np.zeros(bad.shape, bool)
    todo[mr[~ok], mc[~ok]] = True
    r2 = {}
    m2, s2, _ = _median_fill(img_nan, bad, todo, 5, 3, max_memory, r2)
    reasons.update({f"{prefix}_to_{k}": v for k, v in r2.items()})
    return m2, s2, todo


def _impute_lpi(img_nan, bad, gen, n_draw, threads, max_memory, progress, options):
    from ._validate import as_dtype, as_Np
    from .perstar import circle_mask

    _check_options("lpi", options, _LPI_OPTIONS)
    Np = as_Np(options.get("Np", 9))
    widx = as_int("widx", options.get("widx", 129), minimum=1, odd=True, maximum=INT32_MAX)
    widy = options.get("widy")
    widy = widx if widy is None else as_int("widy", widy, minimum=1, odd=True, maximum=INT32_MAX)
    mode = options.get("mode", "independent")
    if mode not in ("independent", "continuous"):
        raise ValueError(f"mode: expected 'independent' or 'continuous', got {mode!r}")
    dt = as_dtype("dtype", options.get("dtype", "float64"))
    guard = _as_bool("guard", options.get("guard", True))
    rlim = options.get("rlim")
    rlim = None if rlim is None else as_float("rlim", rlim, positive=True)
    h = (Np - 1) // 2
    assign_half = as_int("assign_half", options.get("assign_half", max(1, h // 2)), minimum=0,
                         maximum=h)
    min_good = as_int("min_good", options.get("min_good", Np), minimum=1, maximum=Np * Np)
    sym = _as_bool("sym", options.get("sym", False))   # see the Notes: already symmetric
    calibrate = _as_bool("calibrate", options.get("calibrate", True))
    n_calib = as_int("n_calib", options.get("n_calib", 2000), minimum=200, maximum=10**6)
    centers = options.get("centers")
    if centers is not None:
        centers = _as_centers(centers, bad.shape)
    noise, gain, sig_white, bkg = _noise_options(options, img_nan, bad)
    params = dict(Np=Np, widx=widx, widy=widy, mode=mode, dtype=dt.name, guard=guard,
                  rlim=rlim, sym=sym, calibrate=calibrate, assign_half=assign_half,
                  min_good=min_good, noise=noise, gain=gain, sigma_white=sig_white, background=bkg,
                  centers=None if centers is None else int(centers[0].size))

    work, train_pad, bad_pad, pad = _lpi_training(img_nan, bad, Np, widx, widy, noise, gain,
                                                  sig_white, bkg, gen, dt)
    pr, pc = pad[0][0], pad[1][0]
    circ = (np.zeros((Np, Np), np.uint8) if rlim is None
            else circle_mask(Np, rlim).astype(np.uint8))

    rows, cols, label = _lpi_stamps(bad, Np, assign_half, centers)
    mr, mc = np.nonzero(bad)
    n = rows.size
    assigned = label >= 0
    fr = mr[assigned] - rows[label[assigned]] + h
    fc = mc[assigned] - cols[label[assigned]] + h
    hidden = np.zeros((n, Np, Np), np.uint8)
    hidden[label[assigned], fr, fc] = 1
    # order of the concatenated per-stamp predictions: stamp, then flat index in the stamp
    sub = np.flatnonzero(assigned)
    order = sub[np.lexsort((fr * Np + fc, label[assigned]))]
    R, C = rows + pr, cols + pc
    # calibration stamps: random good pixels hidden one at a time (their Z-scores calibrate std)
    goodflat = np.flatnonzero(~bad.reshape(-1))
    ncal = min(n_calib, goodflat.size) if calibrate and goodflat.size >= 200 else 0
    if ncal:
        cal = np.sort(gen.choice(goodflat.size, ncal, replace=False))
        cr, cc_ = np.unravel_index(goodflat[cal], bad.shape)
        cal_hidden = np.zeros((ncal, Np, Np), np.uint8)
        cal_hidden[:, h, h] = 1
        Rc, Cc = cr.astype(np.int64) + pr, cc_.astype(np.int64) + pc

    mean = np.full(mr.size, np.nan)
    std = np.full(mr.size, np.nan)
    draws_vals = None if n_draw == 0 else np.full((n_draw, mr.size), np.nan)
    ok_stamp = np.zeros(n, bool)
    n_guard = 0

    def conditional_draws(xbar, pcov, sel_stamps, k_order):
        # z ~ N(0, 1) in stamp order: independent of threads and strips
        out = np.empty((n_draw, k_order.size))
        pos = 0
        for k in sel_stamps:
            kp = xbar[k].size
            if ok_stamp[k]:
                w, v = np.linalg.eigh(pcov[k])
                root = v * np.sqrt(np.clip(w, 0, None))
                out[:, pos:pos + kp] = xbar[k][None, :] + (root @ gen.standard_normal((kp, n_draw))).T
            else:
                out[:, pos:pos + kp] = np.nan
            pos += kp
        return out

    data0 = np.ascontiguousarray(np.pad(work, pad, mode="reflect"), dtype=dt)
    stamp_of = np.full(mr.size, -1)
    stamp_of[assigned] = label[assigned]
    if n == 0:
        pass
    elif mode == "independent":
        bad_u8 = np.ascontiguousarray(bad_pad, np.uint8)
        if ncal:
            xbar, pcov, dnt, kcond = _lpi_pass(train_pad, data0, bad_u8, np.concatenate([R, Rc]),
                                               np.concatenate([C, Cc]),
                                               np.concatenate([hidden, cal_hidden]), circ, Np,
                                               widx, widy, max_memory, dt, guard, threads, progress)
            cal_out = (xbar[n:], pcov[n:], dnt[n:])
            xbar, pcov, dnt, kcond = xbar[:n], pcov[:n], dnt[:n], kcond[:n]
        else:
            xbar, pcov, dnt, kcond = _lpi_pass(train_pad, data0, bad_u8, R, C, hidden, circ, Np,
                                               widx, widy, max_memory, dt, guard, threads, progress)
        ok_stamp = (dnt & 64 == 0) & (kcond >= min_good)
        n_guard = int(np.count_nonzero(dnt & 4))
        mean[order] = np.concatenate(xbar)
        std[order] = np.sqrt(np.clip(np.concatenate([np.diag(p) for p in pcov]), 0, None))
        if n_draw:
            draws_vals[:, order] = conditional_draws(xbar, pcov, range(n), order)
    else:
        if ncal:
            cx, cp, cd, _ = _lpi_pass(train_pad, data0, np.ascontiguousarray(bad_pad, np.uint8),
                                      Rc, Cc, cal_hidden, circ, Np, widx, widy, max_memory, dt,
                                      guard, threads, False)
            cal_out = (cx, cp, cd)
        colour = _colour_stamps(rows, cols, Np)
        params["n_colours"] = int(colour.max()) + 1
        filled = np.zeros(bad.shape, bool)
        images = [work.copy()] + [work.copy() for _ in range(n_draw)]
        for c in range(int(colour.max()) + 1):
            sel = np.flatnonzero(colour == c)
            bad_c = np.ascontiguousarray(np.pad(bad & ~filled, pad, mode="constant",
                                                constant_values=True), np.uint8)
            # pixels of this colour, in the order of the concatenated predictions
            in_c = np.isin(label[order], sel)
            ordc = order[in_c]
            remap = np.full(n, -1)
            remap[sel] = np.arange(sel.size)
            for d, im in enumerate(images):
                dpad = np.ascontiguousarray(np.pad(im, pad, mode="reflect"), dtype=dt)
                xbar, pcov, dnt, kcond = _lpi_pass(train_pad, dpad, bad_c, R[sel], C[sel],
                                                   hidden[sel], circ, Np, widx, widy,
                                                   max_memory, dt, guard, threads, False)
                vals = np.concatenate(xbar)
                if d == 0:
                    ok_stamp[sel] = (dnt & 64 == 0) & (kcond >= min_good)
                    n_guard += int(np.count_nonzero(dnt & 4))
                    mean[ordc] = vals
                    std[ordc] = np.sqrt(np.clip(np.concatenate([np.diag(p) for p in pcov]), 0, None))
                    im[mr[ordc], mc[ordc]] = np.where(np.isfinite(vals), vals, 0.0)
                else:
                    okc = np.repeat(ok_stamp[sel], [x.size for x in xbar])
                    dv = np.empty(vals.size)
                    pos = 0
                    for j, x in enumerate(xbar):
                        kp = x.size
                        if okc[pos] if kp else False:
                            w, v = np.linalg.eigh(pcov[j])
                            root = v * np.sqrt(np.clip(w, 0, None))
                            dv[pos:pos + kp] = x + root @ gen.standard_normal(kp)
                        else:
                            dv[pos:pos + kp] = np.nan
                        pos += kp
                    draws_vals[d - 1, ordc] = dv
                    im[mr[ordc], mc[ordc]] = np.where(np.isfinite(dv), dv, 0.0)
            filled[mr[ordc], mc[ordc]] = True

    # std calibration: IQR/1.349 of the calibration pixels' Z-scores in bins of predicted level
    calib = None
    if ncal and n:
        cx, cp, cd = cal_out
        okc = (cd & 64 == 0)
        pred = np.array([v[0] if v.size else np.nan for v in cx])
        sd = np.sqrt(np.clip(np.array([v[0, 0] if v.size else np.nan for v in cp]), 0, None))
        truth = work[cr, cc_]
        okc &= np.isfinite(pred) & (sd > 0)
        if okc.sum() >= 200:
            zc = (truth[okc] - pred[okc]) / sd[okc]
            centres, facs = _calibration_table(pred[okc] / sig_white, zc)
            calib = dict(level_sigma=centres, factor=facs, n=int(okc.sum()))
            fac = np.interp(np.nan_to_num(mean) / sig_white, centres, facs)
            std = std * fac
            if draws_vals is not None:
                draws_vals = mean[None, :] + fac[None, :] * (draws_vals - mean[None, :])
    params["calibration"] = calib
    # fallbacks: unassigned pixels (centers), stamps with too few good pixels or no stable solve
    good_px = (stamp_of >= 0) & ok_stamp[np.maximum(stamp_of, 0)] & np.isfinite(mean) & np.isfinite(std)
    reasons = {}
    fallback = np.zeros(bad.shape, bool)
    if not good_px.all():
        m2, s2, fallback = _fallback_fill(img_nan, bad, mr, mc, good_px, max_memory, "lpi", reasons)
        mean[~good_px] = m2 - bkg
        std[~good_px] = s2
        if draws_vals is not None:
            draws_vals[:, ~good_px] = (m2 - bkg)[None, :] + s2[None, :] * gen.standard_normal(
                (n_draw, m2.size))
        nun = int(np.count_nonzero(stamp_of < 0))
        if nun:
            reasons["lpi_no_center"] = nun
        nbad = int((~good_px).sum()) - nun
        if nbad:
            reasons["lpi_too_few_good_or_unstable"] = nbad
    params.update(n_stamps=int(n), n_guard=n_guard)
    mean = mean + bkg
    if draws_vals is not None:
        draws_vals = draws_vals + bkg
    return mean, std, fallback, reasons, params, draws_vals


# ----------------------------------------------------------------------------- GPR

_GPR_OPTIONS = ("kernel", "a", "h", "width", "mu", "tau", "sig_clip", "max_clip", "noise", "gain",
                "calibrate", "max_train", "init", "min_train", "min_good")
_GPR_KERNELS = {"se": 0, "ou": 1}


def _gpr_cov(kernel, a, h_row, h_col, dr, dc):
    """Covariance function values (astrofix K_SE / K_OU, paper eqs. 4-6) at offsets (dr, dc)."""
    u = (np.asarray(dr, float) / h_row) ** 2 + (np.asarray(dc, float) / h_col) ** 2
    return a * a * (np.exp(-0.5 * u) if kernel == "se" else np.exp(-np.sqrt(u)))


def gpr_weights(kernel, a, h, width=9):
    """Normalised GPR interpolation kernel of an isolated bad pixel and its model variance.

    Parameters
    ----------
    kernel : {"se", "ou"}
        Squared-exponential or Ornstein-Uhlenbeck covariance function.
    a : float
        Amplitude in units of the pixel noise sigma (astrofix's a / sigma), > 0.
    h : float or (float, float)
        Scale in pixels, isotropic or ``(h_row, h_col)``.
    width : int, optional
        Odd window width (default 9).

    Returns
    -------
    weights : (width, width) ndarray of float64
        Weights of the neighbours (centre 0), summing to 1.
    var : float
        Model variance of ``measured - weights . window`` in units of sigma^2.

    Notes
    -----
    Zhang & Brandt 2021 (astrofix) eq. 3 with C_data = I: ``v = (K_GG + I)^-1 k_G`` by a
    Cholesky solve, ``w = v / sum(v)``; ``var = a^2 + 1 - k_G.v (2/s - 1/s^2)``, ``s = sum(v)``.
    The same formulas, for any pattern of good pixels, are evaluated in C++ by
    ``cloudcov._core.gpr_impute``.
    """
    import scipy.linalg

    h_row, h_col = (h, h) if np.ndim(h) == 0 else (float(h[0]), float(h[1]))
    half = width // 2
    d = np.arange(-half, half + 1)
    dr, dc = np.meshgrid(d, d, indexing="ij")
    keep = (dr != 0) | (dc != 0)
    dr, dc = dr[keep], dc[keep]
    K = _gpr_cov(kernel, a, h_row, h_col, dr[:, None] - dr[None, :], dc[:, None] - dc[None, :])
    K[np.diag_indices_from(K)] += 1.0
    k = _gpr_cov(kernel, a, h_row, h_col, dr, dc)
    v = scipy.linalg.cho_solve(scipy.linalg.cho_factor(K, lower=True), k)
    s = v.sum()
    w = np.zeros((width, width))
    w[keep.reshape(width, width)] = v / s
    var = a * a + 1.0 - float(k @ v) * (2.0 / s - 1.0 / (s * s))
    return w, var


def _full_windows(x, ok, rows, cols, half):
    """(n, w*w) windows of pixels whose full window lies inside and is all ``ok``."""
    w = 2 * half + 1
    d = np.arange(-half, half + 1)
    r = rows[:, None, None] + d[None, :, None]
    c = cols[:, None, None] + d[None, None, :]
    return x[r, c].reshape(rows.size, w * w), ok[r, c].reshape(rows.size, w * w).all(axis=1)


def _impute_gpr(img_nan, bad, gen, n_draw, threads, max_memory, progress, options):
    import scipy.optimize
    from scipy.ndimage import minimum_filter

    from . import _core

    _check_options("gpr", options, _GPR_OPTIONS)
    kernel = options.get("kernel", "se")
    if kernel not in _GPR_KERNELS:
        raise ValueError(f"kernel: expected 'se' or 'ou', got {kernel!r}")
    width = as_int("width", options.get("width", 9), minimum=3, odd=True, maximum=129)
    half = width // 2
    mu = as_float("mu", options.get("mu", 3000.0), positive=True)
    tau = as_float("tau", options.get("tau", 200.0), positive=True)
    sig_clip = as_float("sig_clip", options.get("sig_clip", 7.0))
    max_clip = as_float("max_clip", options.get("max_clip", 5.0), positive=True)
    max_train = as_int("max_train", options.get("max_train", 10000), minimum=10)
    min_train = as_int("min_train", options.get("min_train", 1000), minimum=1)
    min_good = as_int("min_good", options.get("min_good", 3), minimum=1)
    calibrate = _as_bool("calibrate", options.get("calibrate", True))
    aniso = False
    a_fix, h_fix = options.get("a"), options.get("h")
    if (a_fix is None) != (h_fix is None):
        raise ValueError("a, h: give both (fixed hyperparameters) or neither (fitted)")
    init = options.get("init")
    if h_fix is not None:
        a_fix = as_float("a", a_fix, positive=True)
        if np.ndim(h_fix) == 0:
            h_fix = (as_float("h", h_fix, positive=True),) * 2
        else:
            if len(h_fix) != 2:
                raise ValueError("h: expected a scale or (h_row, h_col)")
            h_fix = (as_float("h[0]", h_fix[0], positive=True), as_float("h[1]", h_fix[1], positive=True))
    elif init is not None:
        aniso = len(init) == 3
        if len(init) not in (2, 3):
            raise ValueError("init: expected (a, h) or (a, h_row, h_col)")
    noise, gain, sig_white, bkg = _noise_options(options, img_nan, bad)
    if not sig_white > 0:
        raise ValueError("image: the white-noise sigma of the good pixels is 0; GPR needs noise")
    nrow, ncol = bad.shape
    xs = np.where(bad, 0.0, (img_nan - bkg) / sig_white)   # noise units, background 0
    ok = ~bad

    # ---- training set (astrofix sec. 4.1): bright good pixels with a complete, good window
    interior = np.zeros(bad.shape, bool)
    interior[half:nrow - half, half:ncol - half] = True
    full_ok = interior & (minimum_filter(ok.astype(np.uint8), size=width, mode="constant", cval=0) > 0)
    top = float(np.max(xs[ok]))
    fit_info = {}
    if h_fix is None:
        thr_used = None
        for clip in (sig_clip, 5.0, 3.0, 1.0, -np.inf):
            if clip > sig_clip:
                continue
            upper = top / max_clip if top / max_clip > clip else np.inf   # below 1/max_clip of the peak
            ts = full_ok & (xs > clip) & (xs < upper)
            if np.count_nonzero(ts) >= min_train or clip == -np.inf:
                thr_used = clip
                break
        tr, tc = np.nonzero(ts)
        if tr.size > max_train:
            pick = np.sort(gen.choice(tr.size, max_train, replace=False))
            tr, tc = tr[pick], tc[pick]
        if tr.size == 0:
            raise ValueError("image: no good pixel has a complete good window for GPR training")
        win, _ = _full_windows(xs, ok, tr, tc, half)
        centre = win[:, (width * width) // 2].copy()

        a_max = mu + 40.0 * tau      # penalty e^40 there: never optimal, keeps K + I tame

        def unpack(q):
            a = math.exp(q[0])
            hr = math.exp(q[1])
            return a, hr, (math.exp(q[2]) if aniso else hr)

        def objective(q):
            a, hr, hc = unpack(q)
            w, _ = gpr_weights(kernel, a, (hr, hc), width)
            res = np.mean(np.abs(centre - win @ w.reshape(-1)))
            return res * (1.0 + math.exp(min((a - mu) / tau, 50.0)))   # astrofix eq. 7 penalty

        x0 = np.asarray(init if init is not None else (3.0, 1.0), float)
        if np.any(x0 <= 0):
            raise ValueError("init: a and h must be > 0")
        lo = [0.0] + [math.log(0.5)] * (len(x0) - 1)
        hi = [math.log(a_max)] + [math.log(float(width))] * (len(x0) - 1)
        q0 = np.clip(np.log(x0), lo, hi)
        opt = scipy.optimize.minimize(objective, q0, method="Powell", bounds=list(zip(lo, hi)))
        a_f, hr_f, hc_f = unpack(opt.x)
        opt.x = np.array([a_f, hr_f, hc_f])
        a_fit = float(opt.x[0])
        h_use = (float(opt.x[1]), float(opt.x[2]))
        fit_info = dict(n_train=int(tr.size), train_threshold_sigma=thr_used,
                        train_residual=float(opt.fun), n_eval=int(opt.nfev))
    else:
        a_fit, h_use = a_fix, h_fix
    w_full, var_full = gpr_weights(kernel, a_fit, h_use, width)

    # ---- imputation (C++): precomputed all-good weights, Cholesky per other pattern
    mr, mc = np.nonzero(bad)
    out = _core.gpr_impute(np.ascontiguousarray(xs), np.ascontiguousarray(bad, np.uint8),
                           mr.astype(np.int64), mc.astype(np.int64), half, _GPR_KERNELS[kernel],
                           a_fit, h_use[0], h_use[1], np.ascontiguousarray(w_full.reshape(-1)),
                           var_full, threads)
    mean_s, var_s = out["mean"], out["var"]

    # ---- std: model variance x local noise^2, calibrated on leave-one-out residuals
    def sigma_loc(m_s):
        return _noise_sigma(m_s * sig_white + bkg, noise, sig_white, bkg, gain) / sig_white

    calib = None
    cfac = np.ones(mr.size)
    if calibrate:
        cand = np.flatnonzero(full_ok.reshape(-1))
        ncal = min(cand.size, 10000)
        if ncal >= 200:
            pick = np.sort(gen.choice(cand.size, ncal, replace=False))
            cr, cc = np.unravel_index(cand[pick], bad.shape)
            win, _ = _full_windows(xs, ok, cr, cc, half)
            pred = win @ w_full.reshape(-1)
            u = (win[:, (width * width) // 2] - pred) / (sigma_loc(pred) * math.sqrt(var_full))
            centres, facs = _calibration_table(pred, u)
            calib = dict(level_sigma=centres, factor=facs)
            cfac = np.interp(mean_s, centres, facs)
    std_s = cfac * sigma_loc(np.nan_to_num(mean_s)) * np.sqrt(np.clip(var_s, 0, None))

    okp = (out["ngood"] >= min_good) & np.isfinite(mean_s) & np.isfinite(std_s)
    mean = mean_s * sig_white + bkg
    std = std_s * sig_white
    reasons = {}
    fallback = np.zeros(bad.shape, bool)
    if not okp.all():
        m2, s2, fallback = _fallback_fill(img_nan, bad, mr, mc, okp, max_memory, "gpr", reasons)
        mean[~okp] = m2
        std[~okp] = s2
        reasons["gpr_too_few_good"] = int((~okp).sum())
    params = dict(kernel=kernel, a=a_fit, h=list(h_use), width=width, mu=mu, tau=tau,
                  fitted=h_fix is None, sig_clip=sig_clip, max_clip=max_clip, noise=noise,
                  gain=gain, sigma_white=sig_white, background=bkg, var_full=var_full,
                  n_full_pattern=int(np.count_nonzero(out["full"])), calibration=calib,
                  **fit_info)
    return mean, std, fallback, reasons, params
