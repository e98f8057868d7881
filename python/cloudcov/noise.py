"""Image-noise scaling of the masking thresholds (``thr``, ``outthr``, ``flux_floor``).

The defaults of :func:`cloudcov.process_ccd` are DECaPS2's DECam values in ADU (``thr=20``,
``outthr=20000``, ``flux_floor=1e4``). They fit an image whose residual noise is about 10 ADU
(a DECam sky); on other data (photographic plates, images in e-/s or MJy/sr) they hide far too
many or too few pixels. :func:`residual_noise` measures the noise, :func:`suggest_thresholds`
scales the DECaPS2 values to it, and :func:`check_thresholds` warns when ``thr`` is off.
"""
from __future__ import annotations

import warnings

import numpy as np

from .errors import CloudCovWarning

__all__ = ["residual_noise", "suggest_thresholds", "check_thresholds", "THR_PER_NOISE",
           "OUTTHR_PER_THR", "FLUX_FLOOR_PER_THR", "MISFIT_FACTOR"]

#: ``thr`` in units of the residual noise: 20 ADU on a DECam sky of ~10 ADU noise (DECaPS2).
THR_PER_NOISE = 2.0
#: ``outthr / thr`` of DECaPS2 (20000 / 20).
OUTTHR_PER_THR = 1000.0
#: ``flux_floor / thr`` of DECaPS2 (1e4 / 20).
FLUX_FLOOR_PER_THR = 500.0
#: :func:`check_thresholds` warns when ``thr`` is more than this factor away from the suggestion.
MISFIT_FACTOR = 5.0
#: Pixels sampled by :func:`residual_noise` (whole rows, evenly spaced).
NOISE_SAMPLE = 1 << 20


def residual_noise(image, model, bad=None, *, max_pixels=NOISE_SAMPLE):
    """Robust per-pixel noise of the residual ``model - image``.

    Parameters
    ----------
    image, model : (nrow, ncol) ndarray
        Image and model (sky + stars) in the same units (ADU).
    bad : (nrow, ncol) bool ndarray, optional
        Pixels to ignore (dq); non-finite residuals are ignored too.
    max_pixels : int, optional
        Evenly spaced whole rows are sampled up to about this many pixels (default 2**20), so
        the cost and memory are bounded on a full CCD.

    Returns
    -------
    float
        ``1.4826 * MAD(d) / sqrt(2)`` of the differences ``d`` between horizontally adjacent
        usable residual pixels (units of the image): the white-noise sigma, insensitive to
        smooth structure (nebulosity) and to the few pixels that stars leave. NaN when fewer
        than 100 pixel pairs are usable.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> image = rng.normal(100.0, 10.0, (200, 200))
    >>> round(residual_noise(image, np.full((200, 200), 100.0)), 0)
    10.0
    """
    image = np.asarray(image)
    model = np.asarray(model)
    nrow = image.shape[0]
    step = max(1, int(np.ceil(nrow * image.shape[1] / max(int(max_pixels), 1))))
    resid = model[::step].astype(np.float64) - image[::step]
    ok = np.isfinite(resid)
    if bad is not None:
        ok &= ~np.asarray(bad, bool)[::step]
    d = np.diff(resid, axis=1)[ok[:, 1:] & ok[:, :-1]]
    if d.size < 100:
        return float("nan")
    return float(1.482602218505602 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def suggest_thresholds(noise):
    """DECaPS2's thresholds scaled to a residual noise.

    Parameters
    ----------
    noise : float
        Residual noise per pixel (units of the image), e.g. from :func:`residual_noise`.

    Returns
    -------
    dict
        ``thr = THR_PER_NOISE * noise``, ``outthr = OUTTHR_PER_THR * thr``,
        ``flux_floor = FLUX_FLOOR_PER_THR * thr`` (floats, units of the image). At a noise of
        10 ADU these are DECaPS2's 20, 20000 and 1e4.

    Raises
    ------
    ValueError
        ``noise`` is not finite and positive.

    Examples
    --------
    >>> suggest_thresholds(10.0)
    {'thr': 20.0, 'outthr': 20000.0, 'flux_floor': 10000.0}
    """
    noise = float(noise)
    if not (np.isfinite(noise) and noise > 0):
        raise ValueError(f"noise: cannot scale the thresholds from a residual noise of {noise} "
                         "(too few usable pixels, or a noiseless image); pass thr, outthr and "
                         "flux_floor as numbers")
    thr = THR_PER_NOISE * noise
    return dict(thr=thr, outthr=OUTTHR_PER_THR * thr, flux_floor=FLUX_FLOOR_PER_THR * thr)


def check_thresholds(thr, noise, *, stacklevel=2):
    """Warn when ``thr`` is more than :data:`MISFIT_FACTOR` away from the noise-scaled value.

    Parameters
    ----------
    thr : float
        PSF masking threshold in use (units of the image).
    noise : float
        Residual noise per pixel (:func:`residual_noise`); NaN or 0 skips the check.
    stacklevel : int, optional
        Passed to :func:`warnings.warn`.

    Returns
    -------
    bool
        True when it warned.

    Warns
    -----
    CloudCovWarning
        Naming the measured noise and the suggested ``thr``, ``outthr`` and ``flux_floor``.
    """
    if not (np.isfinite(noise) and noise > 0):
        return False
    s = suggest_thresholds(noise)
    ratio = thr / s["thr"]
    if 1.0 / MISFIT_FACTOR <= ratio <= MISFIT_FACTOR:
        return False
    warnings.warn(
        f"thr={thr:g} is {ratio:.3g} x the {s['thr']:.3g} suggested by the residual noise "
        f"{noise:.3g} per pixel ({THR_PER_NOISE:g} sigma; the defaults are DECam ADU values): "
        f"{'far too many' if ratio < 1 else 'too few'} pixels will be hidden under the stars. "
        f"Pass thr='auto', outthr='auto', flux_floor='auto' (here thr={s['thr']:.3g}, "
        f"outthr={s['outthr']:.3g}, flux_floor={s['flux_floor']:.3g}) or your own values",
        CloudCovWarning, stacklevel=stacklevel + 1)
    return True
