"""Preliminary infill of masked pixels and Poisson noise on infilled pixels (paper sec. 2.5)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from ._validate import INT32_MAX, as_float, as_image, as_int, as_mask, as_rng, same_shape

__all__ = ["InfillResult", "prelim_infill", "add_sky_noise"]


@dataclass(frozen=True)
class InfillResult:
    """Output of :func:`prelim_infill`.

    Attributes
    ----------
    image : (nrow, ncol) ndarray
        Input image with every masked pixel replaced (same dtype).
    rounds : int
        Boxcar rounds run.
    widths : tuple of (int, int)
        ``(widx, widy)`` of the last round run (``(0, 0)`` when nothing was masked).
    n_fallback : int
        Masked pixels that no round could fill, set to the image median instead.
    """

    image: np.ndarray
    rounds: int
    widths: tuple
    n_fallback: int


def prelim_infill(image, mask, *, widx=19, widy=None, widmult=1.4, max_rounds=10, min_good=10,
                  julia_compat=False):
    """Replace masked pixels by boxcar means of the surrounding good pixels.

    Each round computes, for every still-masked pixel, the mean of the good pixels in a
    ``widx x widy`` window centred on it (reflective padding at the edges, numpy
    ``mode='reflect'``) and accepts it when the window holds more than ``min_good`` good
    pixels. Windows grow by ``widmult`` (rounded to the nearest odd width, ties to even)
    for up to ``max_rounds`` rounds; pixels still unfilled get the image median.

    Parameters
    ----------
    image : (nrow, ncol) ndarray of float32 or float64
        Image to infill (residuals in the afterburner). Values under the mask are ignored
        and may be NaN/inf; unmasked values must be finite.
    mask : (nrow, ncol) bool or integer ndarray
        Nonzero where the pixel must be infilled.
    widx, widy : int, optional
        Odd starting widths along rows / columns (default 19; ``widy`` defaults to ``widx``).
    widmult : float, optional
        Growth factor of the window per round (default 1.4).
    max_rounds : int, optional
        Maximum number of rounds (default 10).
    min_good : int, optional
        A window must contain more than this many good pixels (default 10).
    julia_compat : bool, optional
        Fallback value as CloudCovErr.jl v0.9.2: the median of the image with masked pixels
        set to zero. Default: the median of the good pixels.

    Returns
    -------
    InfillResult

    Raises
    ------
    TypeError, ValueError
        Bad arrays or parameters; ``mask`` masking every pixel; ``max_rounds > 1000``; window
        widths growing so large that the reflect-padded copy of the image (all rounds' padding
        is allocated up front) would exceed ``max(4 * image.size, 2**22)`` pixels.

    Notes
    -----
    Mirrors CloudCovErr.jl ``prelim_infill!`` (src/preprocess.jl); paper sec. 2.5.
    """
    image = as_image("image", image, allow_nonfinite=True)
    mask = as_mask("mask", mask, image.shape)
    good = mask == 0
    if not np.all(np.isfinite(image[good])):
        raise ValueError("image: contains NaN or infinite values outside the mask")
    if not good.any():
        raise ValueError("mask: every pixel is masked; nothing to infill from")
    widx = as_int("widx", widx, minimum=1, odd=True, maximum=INT32_MAX)
    widy = widx if widy is None else as_int("widy", widy, minimum=1, odd=True, maximum=INT32_MAX)
    widmult = as_float("widmult", widmult, positive=True)
    max_rounds = as_int("max_rounds", max_rounds, minimum=0, maximum=1000)
    min_good = as_int("min_good", min_good, minimum=0, maximum=INT32_MAX)
    out, still, rounds, wr, wc, unfilled = _core.prelim_infill(image, mask, widx, widy, widmult,
                                                               max_rounds, min_good)
    if unfilled:
        if julia_compat:
            med = np.median(np.where(good, image, 0))
        else:
            med = np.median(image[good])
        out[still != 0] = med
    return InfillResult(image=out, rounds=int(rounds), widths=(int(wr), int(wc)),
                        n_fallback=int(unfilled))


def add_sky_noise(image, mask, sky, gain, rng=None):
    """Give infilled residual pixels the Poisson noise of the sky (paper eq. 7).

    For masked pixels, with residual ``r = model - image`` and sky ``b``: draw
    ``n ~ Poisson(gain * |b - r|)`` and set ``r = b - n / gain``, so that the implied data
    ``b - r`` has Poisson noise in electrons.

    Parameters
    ----------
    image : (nrow, ncol) ndarray of float32 or float64
        Infilled residual image (finite), ADU.
    mask : (nrow, ncol) bool or integer ndarray
        Nonzero for the infilled pixels that receive noise.
    sky : (nrow, ncol) ndarray
        Sky model in ADU (finite).
    gain : float
        Gain in e-/ADU, > 0.
    rng : numpy.random.Generator or int or None, optional
        Random source (``np.random.default_rng(rng)``); seed it for reproducible output.

    Returns
    -------
    out : (nrow, ncol) ndarray, dtype of ``image``
        A new array; unmasked pixels are unchanged.

    Raises
    ------
    TypeError, ValueError
        Bad arrays, shape mismatch, non-positive gain.

    Notes
    -----
    Mirrors CloudCovErr.jl ``add_sky_noise!`` (src/preprocess.jl). Julia's MersenneTwister
    stream cannot be reproduced; the distribution is the same.
    """
    image = as_image("image", image)
    mask = as_mask("mask", mask, image.shape)
    sky = as_image("sky", sky, copy_ok=True)
    same_shape("image", image, sky=sky)
    gain = as_float("gain", gain, positive=True)
    gen = as_rng("rng", rng)
    out = image.copy()
    idx = np.flatnonzero(mask)
    b = sky.reshape(-1)[idx].astype(np.float64)
    r = image.reshape(-1)[idx].astype(np.float64)
    with np.errstate(over="ignore"):
        lam = gain * np.abs(b - r)
    if lam.size and not lam.max() <= _POISSON_LAM_MAX:
        raise ValueError(f"gain, sky, image: the Poisson mean gain * |sky - image| reaches "
                         f"{lam.max():.3g} e- on masked pixels (numpy's limit is "
                         f"{_POISSON_LAM_MAX:.3g})")
    counts = gen.poisson(lam)
    with np.errstate(over="ignore"):
        new = (b - counts / gain).astype(out.dtype)
    if not np.all(np.isfinite(new)):
        raise ValueError(f"sky, gain: the noisy values overflow the {out.dtype} image")
    out.reshape(-1)[idx] = new
    return out


#: Largest Poisson mean numpy's Generator.poisson accepts (it raises ValueError beyond).
_POISSON_LAM_MAX = float(np.iinfo(np.int64).max) - np.sqrt(np.iinfo(np.int64).max) * 10

