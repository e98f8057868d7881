"""Defect finders: hot, dead and stuck pixels and cosmic rays, as bit-plane masks.

Single-frame finders compare every pixel with the median of its neighbours (the
``scipy.ndimage`` local-median practice of ``shared/papers/003``, with a robust sigma and a
star-core guard); cosmic rays come from astroscrappy's LACosmic (van Dokkum 2001) or, when
installed, deepCR (Zhang & Bloom 2020). Masks of all classes combine into one ``uint8``
image of bit planes (:data:`DEFECT_BITS`), decoded by :func:`decode_defects` as the
``dnt``/``flags`` decoders of :mod:`cloudcov.flags` do.

Conventions: images are ``[row, col]`` arrays in ADU (any real dtype), ``gain`` in e-/ADU,
``readnoise`` in electrons, ``bias`` (a constant pedestal still in the data) in ADU.

The local statistics of one pixel ``x``:

- ``bg``: median of the ``size x size`` box *without* the pixel itself (``size=5``: 24
  neighbours), the background the pixel should have;
- ``d = x - bg`` and its noise ``sigma``: ``astropy.stats.mad_std`` of ``d`` over the image
  (read and sky noise; estimated, or given), plus, with ``gain``, the Poisson variance of the
  local excess ``max(bg - median(bg), 0) / gain`` of sources;
- the *structure ratio* ``s = max(med3 - bg, trim8 - bg) / d``, ``med3`` the 3 x 3 median
  including the pixel and ``trim8`` the mean of its 8 neighbours without the brightest one.
  A defect touches at most a few of the nine pixels, so both stay near the background and
  ``s ~ 0`` (noise ~0.06 at 6 sigma); a star (or any source broader than a pixel) lifts its
  neighbours: ``s ~ 0.3-0.5`` for a FWHM of 2 px, whether the star is centred on a pixel or
  between four (where the median alone gives only ~0.25). A pixel is flagged only if
  ``s < guard`` (default 0.2): the star-core guard. It is LACosmic's fine-structure idea
  (van Dokkum 2001, sec. 2.3) applied to the local-median test, and it also protects pixels on
  the steep flanks of stars (``med3 ~ x`` there, ``s ~ 1``) from being called dead. Clusters
  of up to ~3 defective pixels pass; larger ones are left to the cosmic-ray finder.
"""
from __future__ import annotations

import importlib.util
import math

import numpy as np

from ._validate import as_float, as_int, as_numeric_array

__all__ = [
    "DEFECT_BITS", "DEFECT_DTYPE", "find_hot_pixels", "find_dead_pixels", "find_persistent_defects",
    "find_cosmic_rays", "grow_mask", "combine_defects", "decode_defects", "defect_names",
    "defect_counts", "local_deviation", "LocalDeviation", "DEEPCR_DEFAULT_MODEL",
]

#: Bit of each defect class in a defect mask (``uint8``). A pixel may have several bits.
DEFECT_BITS = {
    "hot": 1,           # single-frame hot pixel: far above its local median, guard passed
    "dead": 2,          # single-frame dead/cold pixel: far below its local median, guard passed
    "stuck": 4,         # same value (within a tolerance) in every frame of a stack
    "cosmic_ray": 8,    # cosmic-ray pixel (astroscrappy LACosmic or deepCR)
    "cr_wing": 16,      # grown around cosmic rays (dilation), not detected itself
    "persistent": 32,   # bad at the same detector position in several frames (with hot/dead/stuck)
    "dq": 64,           # non-zero in a data-quality mask given by the user
    "nonfinite": 128,   # NaN or infinite input value
}
#: dtype of defect masks.
DEFECT_DTYPE = np.dtype(np.uint8)
#: deepCR mask model used by ``find_cosmic_rays(method="deepcr")`` (HST ACS/WFC F606W).
DEEPCR_DEFAULT_MODEL = "ACS-WFC-F606W-2-32"


# ------------------------------------------------------------------------------ helpers

def _as_frame(name, image):
    """2-D real array -> float64 copy plus its non-finite mask (errors name ``name``)."""
    a = as_numeric_array(name, image)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D image, got shape {a.shape}")
    if a.shape[0] < 3 or a.shape[1] < 3:
        raise ValueError(f"{name}: image must be at least 3 x 3, got shape {a.shape}")
    x = np.array(a, dtype=np.float64, copy=True)
    bad = ~np.isfinite(x)
    return x, bad


def _as_bool_mask(name, mask, shape):
    if mask is None:
        return np.zeros(shape, bool)
    m = as_numeric_array(name, mask)
    if m.shape != tuple(shape):
        raise ValueError(f"{name}: shape {m.shape} != image shape {tuple(shape)}")
    if m.dtype.kind == "f" and not np.all(np.isfinite(m)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return m != 0


def _footprint_ring(size):
    fp = np.ones((size, size), bool)
    fp[size // 2, size // 2] = False
    return fp


class LocalDeviation:
    """Local-median statistics of one image (see the module notes).

    Attributes
    ----------
    image : (nrow, ncol) ndarray of float64
        The image with excluded pixels (NaN or ``mask``) replaced by the median of the others.
    excluded : (nrow, ncol) ndarray of bool
        Pixels that are never flagged (non-finite or in ``mask``).
    bg : ndarray of float64
        Median of the ``size x size`` neighbours (pixel itself excluded), ADU.
    med3 : ndarray of float64
        3 x 3 median including the pixel, ADU.
    d : ndarray of float64
        ``image - bg``, ADU.
    sigma : ndarray of float64
        Noise of ``d``, ADU.
    ratio : ndarray of float64
        Structure ratio ``max(med3 - bg, trim8 - bg) / d`` (``inf`` where ``d == 0``).
    sigma0 : float
        Background noise (``mad_std`` of ``d`` or the given ``sigma``), ADU.
    low2 : ndarray of float64
        Second-lowest of the 8 neighbours (a dead pixel is below it: a pixel in the saddle
        between two close stars is below its box median but not below its neighbours).
    """

    __slots__ = ("image", "excluded", "bg", "med3", "d", "sigma", "ratio", "sigma0", "low2")

    @property
    def z(self):
        """``d / sigma``: deviation in units of the noise."""
        return self.d / self.sigma


def local_deviation(image, *, size=5, sigma=None, gain=None, mask=None):
    """Deviation of every pixel from the median of its neighbours, with its noise.

    Parameters
    ----------
    image : (nrow, ncol) array_like of real
        Image in ADU, ``[row, col]``. NaN/inf pixels are excluded (never flagged; replaced by
        the median of the finite pixels for the neighbours' statistics).
    size : int, optional
        Odd side of the neighbour box (default 5: the 24 surrounding pixels).
    sigma : float or (nrow, ncol) array_like, optional
        Noise of ``d`` in ADU. Default: ``astropy.stats.mad_std`` of ``d`` over the
        non-excluded pixels (robust to the defects themselves).
    gain : float, optional
        e-/ADU. Adds the Poisson variance ``max(bg - median(bg), 0) / gain`` of sources above
        the median background to ``sigma**2`` (the MAD measures the sky + read noise only).
    mask : (nrow, ncol) array_like of bool or int, optional
        Pixels known bad (non-zero): excluded like NaN.

    Returns
    -------
    LocalDeviation

    Raises
    ------
    ValueError
        Wrong shapes, ``size`` even or < 3, non-positive ``gain``/``sigma``, an image with
        fewer than 9 usable pixels.
    TypeError
        Non-numeric input.

    Notes
    -----
    Median filters are ``scipy.ndimage.median_filter`` with ``mode="reflect"``; the structure
    ratio is the star-core guard described in the module notes (the median-filter detection
    of ``shared/papers/003``, made robust as in LACosmic's fine-structure test).
    """
    from astropy.stats import mad_std
    from scipy import ndimage

    x, bad = _as_frame("image", image)
    size = as_int("size", size, minimum=3, odd=True)
    excluded = bad | _as_bool_mask("mask", mask, x.shape)
    if np.count_nonzero(~excluded) < 9:
        raise ValueError("image: fewer than 9 usable (finite, unmasked) pixels")
    if excluded.any():
        x[excluded] = np.median(x[~excluded])
    bg = ndimage.median_filter(x, footprint=_footprint_ring(size), mode="reflect")
    med3 = ndimage.median_filter(x, size=3, mode="reflect")
    # mean of the 8 neighbours without the brightest one (a second star indicator that
    # undersampled stars centred between pixels cannot escape)
    ring3 = np.ones((3, 3), bool)
    ring3[1, 1] = False
    trim = (ndimage.uniform_filter(x, 3, mode="reflect") * 9.0 - x
            - ndimage.maximum_filter(x, footprint=ring3, mode="reflect")) / 7.0
    low2 = ndimage.rank_filter(x, 1, footprint=ring3, mode="reflect")  # 2nd lowest neighbour
    d = x - bg
    if sigma is None:
        sigma0 = float(mad_std(d[~excluded]))
        if not sigma0 > 0:  # quantised flat data: fall back to the plain std
            sigma0 = float(np.std(d[~excluded]))
        if not sigma0 > 0:
            sigma0 = 1.0
        var = np.full(x.shape, sigma0 ** 2)
    else:
        s = as_numeric_array("sigma", sigma).astype(np.float64)
        if s.ndim not in (0, 2) or (s.ndim == 2 and s.shape != x.shape):
            raise ValueError(f"sigma: expected a scalar or an array of shape {x.shape}, got {s.shape}")
        if not np.all(np.isfinite(s) & (s > 0)):
            raise ValueError("sigma: must be finite and > 0")
        sigma0 = float(np.median(s))
        var = np.broadcast_to(s ** 2, x.shape).copy()
    if gain is not None:
        gain = as_float("gain", gain, positive=True)
        var += np.maximum(bg - np.median(bg[~excluded]), 0.0) / gain
    out = LocalDeviation()
    out.image, out.excluded, out.bg, out.med3, out.d, out.low2 = x, excluded, bg, med3, d, low2
    out.sigma = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(d != 0, d, 1.0)
        out.ratio = np.where(d != 0, np.maximum((med3 - bg) / dd, (trim - bg) / dd), np.inf)
    out.sigma0 = sigma0
    return out


def _check_thresholds(nsigma, guard):
    nsigma = as_float("nsigma", nsigma, positive=True)
    if guard is not None:
        guard = as_float("guard", guard)
        if not 0 < guard <= 1:
            raise ValueError(f"guard: must be in (0, 1], got {guard}")
    return nsigma, guard


def _flag(dev, sign, nsigma, guard, saturation=None):
    with np.errstate(invalid="ignore"):
        out = (sign * dev.d > nsigma * dev.sigma) & ~dev.excluded
        if guard is not None:
            out &= np.abs(dev.ratio) < guard
            if sign < 0:
                out &= dev.image < dev.low2
    if saturation is not None:
        out &= dev.image < saturation
    return out


# ------------------------------------------------------------------------------ finders

def find_hot_pixels(image, size=5, nsigma=6.0, *, sigma=None, gain=None, guard=0.2, mask=None,
                    saturation=None):
    """Hot pixels: far above the median of their neighbours and narrower than a star.

    Parameters
    ----------
    image : (nrow, ncol) array_like of real
        One frame in ADU, ``[row, col]``; NaN pixels are never flagged.
    size : int, optional
        Odd neighbour box (default 5).
    nsigma : float, optional
        Threshold on ``d / sigma`` (default 6).
    sigma, gain, mask
        Noise model and excluded pixels, as :func:`local_deviation`.
    guard : float or None, optional
        Star-core guard: flag only pixels whose structure ratio (module notes) is below
        ``guard`` (default 0.2; module notes). ``None`` switches the guard off (the plain
        median-filter test of ``shared/papers/003``, which flags star cores).
    saturation : float, optional
        Pixels at or above this value (ADU) are never hot (saturated stars).

    Returns
    -------
    (nrow, ncol) ndarray of bool
        True for hot pixels.

    Raises
    ------
    ValueError, TypeError
        Bad input, as :func:`local_deviation`; ``nsigma <= 0``; ``guard`` outside (0, 1].

    Notes
    -----
    Source: the local-median thresholding of ``shared/papers/003`` (sec. 4) with a robust
    sigma instead of ``np.std`` and the guard of LACosmic's fine-structure test.
    """
    nsigma, guard = _check_thresholds(nsigma, guard)
    dev = local_deviation(image, size=size, sigma=sigma, gain=gain, mask=mask)
    return _flag(dev, +1, nsigma, guard, saturation)


def find_dead_pixels(image, size=5, nsigma=6.0, *, sigma=None, gain=None, guard=0.2, mask=None):
    """Dead (cold) pixels: far below the median of their neighbours, not on a star's flank.

    Parameters
    ----------
    image : (nrow, ncol) array_like of real
        One frame in ADU, ``[row, col]``; NaN pixels are never flagged.
    size : int, optional
        Odd neighbour box (default 5).
    nsigma : float, optional
        Threshold on ``-d / sigma`` (default 6).
    sigma, gain, mask
        Noise model and excluded pixels, as :func:`local_deviation`.
    guard : float or None, optional
        Flag only pixels with structure ratio ``< guard`` (default 0.2). A
        pixel on the flank of a star sits below the median of a box that reaches into the
        core, but its 3 x 3 median falls with it (``ratio ~ 1``); a dead pixel leaves the
        3 x 3 median at the background (``ratio ~ 0``). ``None``: no guard.

    Returns
    -------
    (nrow, ncol) ndarray of bool
        True for dead pixels.

    Raises
    ------
    ValueError, TypeError
        As :func:`find_hot_pixels`.

    Notes
    -----
    Source: ``shared/papers/003`` sec. 4.2 (``diff < -threshold``), robust sigma, guard.
    """
    nsigma, guard = _check_thresholds(nsigma, guard)
    dev = local_deviation(image, size=size, sigma=sigma, gain=gain, mask=mask)
    return _flag(dev, -1, nsigma, guard)


def _as_frames(frames):
    if isinstance(frames, np.ndarray):
        arrs = list(frames) if frames.ndim == 3 else None
        if arrs is None:
            raise ValueError(f"frames: expected a 3-D array or a sequence of 2-D images, got shape {frames.shape}")
    else:
        try:
            arrs = list(frames)
        except TypeError:
            raise TypeError(f"frames: expected a sequence of 2-D images, got {type(frames).__name__}") from None
    if len(arrs) < 2:
        raise ValueError(f"frames: need at least 2 frames, got {len(arrs)}")
    out = []
    for k, a in enumerate(arrs):
        a = as_numeric_array(f"frames[{k}]", a)
        if a.ndim != 2:
            raise ValueError(f"frames[{k}]: expected a 2-D image, got shape {a.shape}")
        if out and a.shape != out[0].shape:
            raise ValueError(f"frames[{k}]: shape {a.shape} != frames[0] shape {out[0].shape} "
                             "(persistent defects need frames of one detector, same size)")
        out.append(a)
    return out


def _stuck_chance(n, sigma, tol, quantum):
    """Chance that ``n`` Gaussian values of noise ``sigma`` have range <= ``tol``.

    Continuous data (``quantum == 0``): ``sqrt(n) tol**(n-1) (2 pi sigma**2)**(-(n-1)/2)``;
    data quantised in steps ``q``: ``n**-0.5 (2 pi (sigma/q)**2)**(-(n-1)/2) ((t+1)**n - t**n)``
    with ``t = floor(tol / q)`` (exact equality: ``t = 0``). Small-window approximations.
    """
    if quantum > 0:
        s = sigma / quantum
        t = math.floor(tol / quantum + 1e-9)
        return n ** -0.5 * (2 * np.pi * s ** 2) ** (-(n - 1) / 2) * ((t + 1) ** n - t ** n)
    return np.sqrt(n) * tol ** (n - 1) * (2 * np.pi * sigma ** 2) ** (-(n - 1) / 2)


def _chance_coincidences(z_sorted, npix, t, m):
    """Expected number of pixels beyond ``t`` in ``>= m`` frames by chance (independent frames).

    ``z_sorted[k]``: sorted deviations of frame ``k``; the per-frame rate ``p_k`` is the
    fraction beyond ``t`` (empirical, so non-Gaussian tails count); the number of frames a
    pixel is flagged in is Poisson-binomial with those rates.
    """
    probs = [1.0 - np.searchsorted(z, t, side="right") / npix for z in z_sorted]
    dist = np.zeros(len(probs) + 1)
    dist[0] = 1.0
    for p in probs:                      # Poisson-binomial by convolution
        dist[1:] = dist[1:] * (1 - p) + dist[:-1] * p
        dist[0] *= 1 - p
    return npix * float(dist[m:].sum())


def _persistent(frames, *, size=5, nsigma=4.0, min_frames=2, guard=0.2, sigma=None, gain=None,
                stuck_tol=0.0, quantum=None, p_chance=1e-9, max_chance=0.5, saturation=None,
                masks=None):
    """Implementation of :func:`find_persistent_defects`; returns ``(bits, info)``."""
    arrs = _as_frames(frames)
    n = len(arrs)
    nsigma, guard = _check_thresholds(nsigma, guard)
    min_frames = as_int("min_frames", min_frames, minimum=1, maximum=n)
    stuck_tol = as_float("stuck_tol", stuck_tol)
    if stuck_tol < 0:
        raise ValueError(f"stuck_tol: must be >= 0, got {stuck_tol}")
    p_chance = as_float("p_chance", p_chance)
    max_chance = as_float("max_chance", max_chance, positive=True)
    if masks is not None:
        masks = list(masks)
        if len(masks) != n:
            raise ValueError(f"masks: {len(masks)} masks for {n} frames")
    if saturation is None:
        if len({a.dtype for a in arrs}) == 1 and arrs[0].dtype.kind in "iu":
            saturation = float(np.iinfo(arrs[0].dtype).max)
    else:
        saturation = as_float("saturation", saturation)
    if quantum is None:
        quantum = 1.0 if all(a.dtype.kind in "iub" or np.all(a[np.isfinite(a)] == np.round(a[np.isfinite(a)]))
                             for a in arrs) else 0.0
    quantum = as_float("quantum", quantum)
    if quantum < 0:
        raise ValueError(f"quantum: must be >= 0, got {quantum}")
    shape = arrs[0].shape
    npix = shape[0] * shape[1]
    zhot, zdead = [], []
    any_excl = np.zeros(shape, bool)
    var_sum = np.zeros(shape)
    for k, a in enumerate(arrs):
        dev = local_deviation(a, size=size, sigma=sigma, gain=gain,
                              mask=None if masks is None else masks[k])
        z = dev.z
        ok = ~dev.excluded
        if guard is not None:
            with np.errstate(invalid="ignore"):
                ok &= np.abs(dev.ratio) < guard
        zh = np.where(ok, z, -np.inf)
        if saturation is not None:
            zh[dev.image >= saturation] = -np.inf
        zhot.append(zh)
        zdead.append(np.where(ok & (dev.image < dev.low2) if guard is not None else ok, -z, -np.inf))
        any_excl |= dev.excluded
        var_sum += dev.sigma ** 2
    info = {"n_frames": n, "min_frames": min_frames}
    flagged = {}
    for name, zs in (("hot", zhot), ("dead", zdead)):
        srt = [np.sort(z.ravel()) for z in zs]
        t = nsigma
        while _chance_coincidences(srt, npix, t, min_frames) > max_chance and t < 1e3:
            t *= 1.05
        info[f"nsigma_{name}"] = t
        info[f"chance_{name}"] = _chance_coincidences(srt, npix, t, min_frames)
        nflag = np.sum([z > t for z in zs], axis=0)
        flagged[name] = nflag >= min_frames
    stack = np.stack([np.asarray(a, np.float64) for a in arrs])
    with np.errstate(invalid="ignore"):
        spread = np.max(stack, axis=0) - np.min(stack, axis=0)
    equal = (spread <= stuck_tol) & ~any_excl
    if saturation is not None:
        equal &= ~(np.min(stack, axis=0) >= saturation)
    chance = _stuck_chance(n, np.sqrt(var_sum / n), stuck_tol, quantum)
    stuck = equal & ((chance < p_chance) | flagged["hot"] | flagged["dead"])
    info["n_equal"] = int(np.count_nonzero(equal))
    info["quantum"] = quantum
    out = np.zeros(shape, DEFECT_DTYPE)
    out[flagged["hot"]] |= DEFECT_BITS["hot"]
    out[flagged["dead"]] |= DEFECT_BITS["dead"]
    out[stuck] |= DEFECT_BITS["stuck"]
    out[flagged["hot"] | flagged["dead"] | stuck] |= DEFECT_BITS["persistent"]
    return out, info


def find_persistent_defects(frames, *, size=5, nsigma=4.0, min_frames=2, guard=0.2, sigma=None,
                            gain=None, stuck_tol=0.0, quantum=None, p_chance=1e-9, max_chance=0.5,
                            saturation=None, masks=None):
    """Hot, dead and stuck pixels at the same detector position in several frames.

    Parameters
    ----------
    frames : (n, nrow, ncol) array_like or sequence of n (nrow, ncol) arrays
        ``n >= 2`` exposures of one detector in *detector* coordinates (as read out, not
        registered on the sky). The sky may be dithered between them or not: defects stay
        at their detector position either way, stars are rejected by the guard.
    size : int, optional
        Neighbour box of :func:`local_deviation` (default 5).
    nsigma : float, optional
        Smallest per-frame threshold on ``|d| / sigma`` (default 4). It is raised (by 5 %
        steps) until the expected number of pixels beyond it in ``min_frames`` frames *by
        chance* is at most ``max_chance``; the chance rate is taken from each frame's own
        fraction of pixels beyond the threshold, so heavy non-Gaussian tails (many transient
        outliers) raise it instead of producing false persistent pixels.
    min_frames : int, optional
        Frames in which a pixel must be hot (or dead) to be persistent (default 2).
    guard : float or None, optional
        Star-core guard of :func:`find_hot_pixels` (default 0.2).
    sigma, gain : optional
        Noise model of :func:`local_deviation` (``sigma`` one value for all frames).
    stuck_tol : float, optional
        A pixel is stuck if its values across frames span at most ``stuck_tol`` ADU
        (default 0: identical) **and** that is improbable by chance (``p_chance``), or it is
        also a persistent hot/dead pixel.
    quantum : float, optional
        Step of quantised data (default: 1 if every frame is integer-valued, else 0).
    p_chance : float, optional
        Largest chance probability per pixel (from its noise, Gaussian small-window
        approximation) for which equal values alone make a pixel stuck (default 1e-9). With
        few frames of noisy data equality is common by chance (three frames with 21 ADU
        noise: 2e-4 per pixel), and only stuck pixels at a deviant value are found.
    max_chance : float, optional
        Expected chance coincidences allowed per class over the image (default 0.5).
    saturation : float, optional
        Pixels at or above this value are never hot, nor stuck when saturated in every
        frame (saturated stars repeat one value). Default: the largest value of the integer
        dtype for integer frames, else none.
    masks : sequence of n (nrow, ncol) arrays, optional
        Known bad pixels per frame (non-zero), excluded like NaN.

    Returns
    -------
    (nrow, ncol) ndarray of uint8
        Bit planes of :data:`DEFECT_BITS`: ``hot``, ``dead`` and/or ``stuck``, each together
        with ``persistent``; 0 elsewhere.

    Raises
    ------
    ValueError
        Fewer than 2 frames, frames of different shapes (the message names the frame),
        ``min_frames`` outside ``[1, n]``, bad thresholds.
    TypeError
        Non-numeric frames.

    Notes
    -----
    Source: the dark-frame persistent masks of ``shared/papers/003`` sec. 6.1, done on the
    science frames themselves with per-frame local-median statistics; stuck pixels as the
    paper defines them (locked to one value regardless of light), with a chance test.
    """
    return _persistent(frames, size=size, nsigma=nsigma, min_frames=min_frames, guard=guard,
                       sigma=sigma, gain=gain, stuck_tol=stuck_tol, quantum=quantum,
                       p_chance=p_chance, max_chance=max_chance, saturation=saturation,
                       masks=masks)[0]


def _deepcr_available():
    return importlib.util.find_spec("deepCR") is not None


def find_cosmic_rays(image, gain, readnoise, *, method="lacosmic", bias=0.0, mask=None,
                     sigclip=4.5, sigfrac=0.3, objlim=5.0, satlevel=None, niter=4, sepmed=True,
                     fsmode="median", psffwhm=2.5, peak_nsigma=6.0, deepcr_model=DEEPCR_DEFAULT_MODEL,
                     threshold=0.5, device="CPU", return_clean=False, cleantype="meanmask"):
    """Cosmic-ray pixels of one exposure: astroscrappy's LACosmic, or deepCR.

    Parameters
    ----------
    image : (nrow, ncol) array_like of real
        One exposure in ADU, ``[row, col]``, sky included (the noise model needs it). NaN
        pixels are passed as masked and never flagged.
    gain : float
        Gain in e-/ADU (required: LACosmic's noise model works in electrons).
    readnoise : float
        Read noise in electrons (>= 0).
    method : {"lacosmic", "deepcr"}, optional
        ``"lacosmic"`` (default): ``astroscrappy.detect_cosmics`` (McCully et al., a C
        implementation of van Dokkum 2001). ``"deepcr"``: the deepCR mask network (Zhang &
        Bloom 2020; needs ``pip install deepCR`` and torch) on the image in electrons.
    bias : float, optional
        Constant pedestal still in the data (ADU), subtracted before detection so that the
        Poisson noise model sees only the sky and sources (e.g. 500 for MaxIm frames with
        ``PEDESTAL = -500``). Default 0.
    mask : (nrow, ncol) array_like of bool or int, optional
        Known bad pixels (non-zero): ignored by astroscrappy (``inmask``), never flagged.
    sigclip, sigfrac, objlim, niter, sepmed, fsmode, psffwhm : optional
        astroscrappy parameters (its defaults: 4.5, 0.3, 5.0, 4, True, "median", 2.5).
    satlevel : float, optional
        Saturation in ADU (converted to electrons for astroscrappy); default: none
        (``np.inf``).
    peak_nsigma : float or None, optional
        Keep a detected cosmic ray (8-connected group of flagged pixels) only if its
        brightest pixel is at least ``peak_nsigma`` noise sigmas above the median of its
        neighbours (:func:`local_deviation`, with ``gain``); default 6, the hot-pixel
        threshold: a cosmic ray must have one pixel a single-pixel test would call hot. This removes
        LACosmic's detections next to *negative* outliers: the Laplacian of a pixel beside a
        low pixel is positive although the pixel itself is normal (on the M13 frames, with
        their heavy negative noise tail, most default LACosmic detections are of that kind).
        ``None`` keeps astroscrappy's mask as it is.
    deepcr_model : str, optional
        deepCR mask model name or ``.pth`` path (default :data:`DEEPCR_DEFAULT_MODEL`).
    threshold : float, optional
        deepCR probability threshold (default 0.5, deepCR's).
    device : {"CPU", "GPU"}, optional
        deepCR device.
    return_clean : bool, optional
        Also return astroscrappy's cleaned image (ADU, bias restored) made with
        ``cleantype`` ({"median", "medmask", "meanmask", "idw"}; LACosmic only).

    Returns
    -------
    crmask : (nrow, ncol) ndarray of bool
        Cosmic-ray pixels (no growth; see :func:`grow_mask`).
    clean : (nrow, ncol) ndarray of float64
        Only with ``return_clean``.

    Raises
    ------
    ValueError
        ``gain`` missing/None or not > 0, ``readnoise < 0``, unknown ``method``, bad shapes.
    ImportError
        ``method="deepcr"`` without the deepCR package (the message says how to install it).
    """
    if gain is None:
        raise ValueError("gain: required for cosmic-ray detection (e-/ADU); read it from the "
                         "header (GAIN/EGAIN) or measure it (photon transfer)")
    gain = as_float("gain", gain, positive=True)
    if readnoise is None:
        raise ValueError("readnoise: required for cosmic-ray detection (electrons)")
    readnoise = as_float("readnoise", readnoise)
    if readnoise < 0:
        raise ValueError(f"readnoise: must be >= 0, got {readnoise}")
    bias = as_float("bias", bias)
    x, bad = _as_frame("image", image)
    excluded = bad | _as_bool_mask("mask", mask, x.shape)
    fill = np.median(x[~excluded]) if (~excluded).any() else 0.0
    x[excluded] = fill
    x -= bias
    if method == "lacosmic":
        import astroscrappy

        sat = np.inf if satlevel is None else (as_float("satlevel", satlevel) - bias) * gain
        crmask, clean = astroscrappy.detect_cosmics(
            x.astype(np.float32), inmask=excluded, sigclip=float(sigclip), sigfrac=float(sigfrac),
            objlim=float(objlim), gain=gain, readnoise=readnoise, satlevel=sat,
            niter=as_int("niter", niter, minimum=1), sepmed=bool(sepmed), cleantype=cleantype,
            fsmode=fsmode, psffwhm=float(psffwhm), verbose=False)
        crmask = np.asarray(crmask, bool) & ~excluded
        if peak_nsigma is not None:
            crmask = _keep_peaked(crmask, x, excluded, gain, as_float("peak_nsigma", peak_nsigma))
        if return_clean:
            return crmask, np.asarray(clean, np.float64) + bias
        return crmask
    if method == "deepcr":
        if return_clean:
            raise ValueError("return_clean: only with method='lacosmic'")
        if not _deepcr_available():
            raise ImportError("method='deepcr' needs the deepCR package (and torch): "
                              "pip install 'cloudcov[deepcr]'")
        from deepCR import deepCR

        mdl = deepCR(mask=deepcr_model, device=device)
        threshold = as_float("threshold", threshold)
        # deepCR models are trained on electrons (HST _flc images); the image is sky + sources
        crmask = np.asarray(mdl.clean((x * gain).astype(np.float32), threshold=threshold,
                                      inpaint=False), dtype=float) > 0.5
        if crmask.shape != x.shape:
            raise ValueError(f"deepCR returned a mask of shape {crmask.shape} for {x.shape}")
        crmask &= ~excluded
        if peak_nsigma is not None:
            crmask = _keep_peaked(crmask, x, excluded, gain, as_float("peak_nsigma", peak_nsigma))
        return crmask
    raise ValueError(f"method: expected 'lacosmic' or 'deepcr', got {method!r}")


def _keep_peaked(crmask, x, excluded, gain, peak_nsigma):
    """Cosmic-ray groups (8-connected) whose brightest pixel is >= peak_nsigma above bg."""
    from scipy import ndimage

    if not crmask.any():
        return crmask
    dev = local_deviation(x, gain=gain, mask=excluded | crmask)
    # the noise/background of a flagged pixel come from its unflagged neighbours; its value is its own
    z = np.where(crmask, (x - dev.bg) / dev.sigma, -np.inf)
    lab, n = ndimage.label(crmask, structure=np.ones((3, 3), bool))
    peak = ndimage.maximum(z, labels=lab, index=np.arange(1, n + 1))
    keep = np.concatenate([[False], np.asarray(peak) >= peak_nsigma])
    return keep[lab]


def grow_mask(mask, grow=1, *, connectivity=2):
    """Pixels added by growing (dilating) a mask: the wings of cosmic rays.

    Parameters
    ----------
    mask : (nrow, ncol) array_like of bool
    grow : int, optional
        Dilation iterations (default 1: the 3 x 3 neighbourhood, deepCR's "dilated" masks).
    connectivity : {1, 2}, optional
        1: 4-connected (cross), 2: 8-connected (square, default).

    Returns
    -------
    (nrow, ncol) ndarray of bool
        The grown pixels only (``dilate(mask) & ~mask``); empty for ``grow=0``.

    Raises
    ------
    ValueError
        ``grow < 0`` or ``connectivity`` not 1 or 2.
    """
    from scipy import ndimage

    m = np.asarray(mask, bool)
    grow = as_int("grow", grow, minimum=0)
    connectivity = as_int("connectivity", connectivity, minimum=1, maximum=2)
    if grow == 0 or not m.any():
        return np.zeros(m.shape, bool)
    st = ndimage.generate_binary_structure(2, connectivity)
    return ndimage.binary_dilation(m, structure=st, iterations=grow) & ~m


# ------------------------------------------------------------------------------ bit planes

def combine_defects(shape=None, **classes):
    """Combine boolean masks of defect classes into one ``uint8`` bit-plane mask.

    Parameters
    ----------
    shape : tuple, optional
        Output shape (default: that of the first mask).
    **classes : (nrow, ncol) array_like of bool, or uint8 defect masks
        Keyword = class name of :data:`DEFECT_BITS` (``hot=..., cosmic_ray=...``) with a
        boolean mask, or ``bits=`` an existing defect mask (or a list of them) to OR in.
        ``None`` values are skipped.

    Returns
    -------
    (nrow, ncol) ndarray of uint8

    Raises
    ------
    ValueError
        Unknown class name, or masks of different shapes.
    """
    arrays = []
    for name, m in classes.items():
        if m is None:
            continue
        if name == "bits":
            for b in (m if isinstance(m, (list, tuple)) else [m]):
                arrays.append((None, np.asarray(b)))
        elif name in DEFECT_BITS:
            arrays.append((name, np.asarray(m)))
        else:
            raise ValueError(f"{name}: not a defect class (known: {', '.join(DEFECT_BITS)})")
    if shape is None:
        if not arrays:
            raise ValueError("combine_defects: give a shape or at least one mask")
        shape = arrays[0][1].shape
    out = np.zeros(shape, DEFECT_DTYPE)
    for name, a in arrays:
        if a.shape != tuple(shape):
            raise ValueError(f"{name or 'bits'}: shape {a.shape} != {tuple(shape)}")
        if name is None:
            out |= a.astype(DEFECT_DTYPE)
        else:
            out[a != 0] |= DEFECT_BITS[name]
    return out


def decode_defects(defects):
    """Split a defect mask into named boolean arrays (as :func:`cloudcov.flags.decode_dnt`).

    Parameters
    ----------
    defects : array_like of int
        Defect mask (``uint8`` bit planes of :data:`DEFECT_BITS`, e.g. the ``DEFECTS``
        extension of ``cloudcov clean``; any integer dtype with values < 256).

    Returns
    -------
    dict of str -> ndarray of bool
        One entry per :data:`DEFECT_BITS` name (``hot`` 1, ``dead`` 2, ``stuck`` 4,
        ``cosmic_ray`` 8, ``cr_wing`` 16, ``persistent`` 32, ``dq`` 64, ``nonfinite`` 128)
        and ``any`` (any bit set).

    Raises
    ------
    TypeError
        Non-integer input.
    ValueError
        Negative values or values >= 256.

    Examples
    --------
    >>> d = decode_defects(np.array([0, 1 | 32, 8], np.uint8))
    >>> d["hot"].tolist(), d["persistent"].tolist(), d["cosmic_ray"].tolist()
    ([False, True, False], [False, True, False], [False, False, True])
    """
    a = np.asarray(defects)
    if a.dtype.kind not in "iub":
        raise TypeError(f"defects: expected integers, got dtype {a.dtype}")
    u = a.astype(np.int64)
    if u.size and (u.min() < 0 or u.max() > 255):
        raise ValueError("defects: values must be in [0, 255] (uint8 bit planes)")
    out = {name: (u & bit) != 0 for name, bit in DEFECT_BITS.items()}
    out["any"] = u != 0
    return out


def defect_names(value):
    """Names of the defect bits set in one value (see :func:`decode_defects`).

    Parameters
    ----------
    value : int

    Returns
    -------
    list of str
    """
    u = int(value)
    if not 0 <= u <= 255:
        raise ValueError(f"defects: value must be in [0, 255], got {u}")
    return [name for name, bit in DEFECT_BITS.items() if u & bit]


def defect_counts(defects):
    """Number of pixels with each defect bit, and with any.

    Parameters
    ----------
    defects : array_like of int
        Defect mask.

    Returns
    -------
    dict of str -> int
        ``{name: count}`` for every :data:`DEFECT_BITS` name, plus ``"any"``.
    """
    return {k: int(np.count_nonzero(v)) for k, v in decode_defects(defects).items()}
