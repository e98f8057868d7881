"""Shared pieces of the synthetic validation scripts (LPI paper sec. 4).

Conventions (cloudcov's, DESIGN.md sec. 3): images are ``[row, col]`` numpy arrays;
crowdsource catalogue ``x`` is the row and ``y`` the column, 0-based, pixel centres at
integers; cloudcov's residual is ``model - image``; fluxes in ADU, gain in e-/ADU.

DECaPS-like constants (documented in validation/RESULTS.md):

* sky 300 ADU, gain 4 e-/ADU (per-pixel sky sigma 8.7 ADU); the real DECam CP cutouts in
  ``shared/data/real`` have gains 3.7-3.9 e-/ADU and 45 s r-band sky 174 ADU, DECaPS g
  exposures are 96 s;
* PSF: Moffat, beta = 3, FWHM 4.5 px (1.2" at 0.263"/px), so 4/3 FWHM = 6 px as quoted in
  paper sec. 4.3; stamp 149 x 149 normalised to unit sum (fluxes are total fluxes);
* star flux 5e4 ADU: central pixel ~1,600 ADU, i.e. in crowdsource's 59 x 59 stamp class
  (1e3 < peak < 2e4 ADU), as the paper's "~18th g-band magnitude" stars (sec. 4.3).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parents[1]
RESULTS = REPO / "validation" / "results"

SKY = 300.0          # ADU
GAIN = 4.0           # e-/ADU
FWHM = 4.5           # px
BETA = 3.0
PSF_SIZE = 149
FLUX = 5.0e4         # ADU
FIL_FWHM = 6.7       # px, paper sec. 4.1
SIG2FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))


# ------------------------------------------------------------------------------ CLI

def base_parser(name, doc):
    import argparse
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--out", type=Path, default=RESULTS / name,
                   help=f"output folder (default validation/results/{name}/)")
    p.add_argument("--quick", action="store_true",
                   help="small configuration for tests (runs in < ~30 s)")
    p.add_argument("--threads", type=int, default=None,
                   help="cloudcov threads (default: all cores available)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    return p


def environment():
    import cloudcov
    from cloudcov._provenance import provenance

    env = dict(python=platform.python_version(), numpy=np.__version__,
               cloudcov=cloudcov.__version__, provenance=provenance(), machine=platform.machine(),
               processor=_cpu_name(), ncpu=len(os.sched_getaffinity(0))
               if hasattr(os, "sched_getaffinity") else os.cpu_count())
    try:
        from importlib import metadata
        env["crowdsourcephoto"] = metadata.version("crowdsourcephoto")
    except Exception:  # pragma: no cover - crowdsource optional for script 02
        pass
    return env


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def to_jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return None if not np.isfinite(v) else round(v, 6)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(to_jsonable(data), indent=1) + "\n")
    os.replace(tmp, path)


def load_json(path):
    return json.loads(Path(path).read_text())


class Timer:
    def __init__(self):
        self.t = {}

    @contextlib.contextmanager
    def __call__(self, name):
        t0 = time.perf_counter()
        yield
        self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t0


# ------------------------------------------------------------------------------ images

def moffat_stamp(fwhm=FWHM, beta=BETA, size=PSF_SIZE):
    """Moffat PSF sampled at pixel centres on a (size, size) stamp, unit sum."""
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    h = size // 2
    d = np.arange(-h, h + 1, dtype=np.float64)
    r2 = d[:, None] ** 2 + d[None, :] ** 2
    st = (1.0 + r2 / alpha**2) ** (-beta)
    return st / st.sum()


def add_stars(shape, rows, cols, fluxes, stamp):
    """Noise-free star image: stamp * flux centred on integer (row, col) positions."""
    h = stamp.shape[0] // 2
    pad = np.zeros((shape[0] + 2 * h, shape[1] + 2 * h))
    fluxes = np.broadcast_to(np.asarray(fluxes, dtype=np.float64), np.shape(rows))
    for r, c, f in zip(np.asarray(rows, int), np.asarray(cols, int), fluxes):
        pad[r:r + 2 * h + 1, c:c + 2 * h + 1] += f * stamp
    return pad[h:h + shape[0], h:h + shape[1]]


def poisson_image(mu, gain, rng):
    """Poisson(gain * mu) / gain: the observed image in ADU."""
    if np.any(mu < 0):
        raise ValueError("negative expected counts: lower the filament amplitude")
    return rng.poisson(gain * mu) / gain


def gaussian_profile(x, centre, fwhm=FIL_FWHM):
    return np.exp(-0.5 * ((x - centre) / (fwhm / SIG2FWHM)) ** 2)


# ------------------------------------------------------------------------------ photometry

def run_crowdsource(image, expected, stamp, gain, *, threshold=5.0, nodeblend_sharp=False):
    """Conventional photometry: crowdsource ``fit_im`` with the injected PSF kept fixed.

    ``weight`` (crowdsource's inverse sigma) is the exact per-pixel noise of the synthetic
    image, ``sqrt(gain / expected)``, so that crowdsource's ``dflux`` includes the star's own
    Poisson noise and the conventional Z-scores are N(0, 1) on flat sky. The sky is
    crowdsource's own (median in 20 px boxes, bilinear; paper's "smooth background").
    With ``nodeblend_sharp`` every pixel carries crowdsource's nodeblend and sharp bits
    (paper sec. 4.1 footnote 7).

    Returns (catalogue as a structured array, model image, sky image, seconds).
    """
    import crowdsource.crowdsource_base as cb
    import crowdsource.psf as psfmod

    im = np.ascontiguousarray(image, dtype=np.float32)
    weight = np.sqrt(gain / expected).astype(np.float32)
    dq = np.zeros(im.shape, dtype=np.int64)
    if nodeblend_sharp:
        dq |= cb.nodeblend_maskbit | cb.sharp_maskbit
    psf = psfmod.SimplePSF(stamp.astype(np.float32).copy(), normalize=-1)   # keep unit sum
    t0 = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        cat, model, sky, _ = cb.fit_im(im, psf, weight=weight, dq=dq, psfderiv=True,
                                       refit_psf=False, threshold=threshold, ntilex=1,
                                       ntiley=1, verbose=False)
    return cat, np.asarray(model, np.float64), np.asarray(sky, np.float64), \
        time.perf_counter() - t0


def match(true_rows, true_cols, cat, radius=1.5):
    """Nearest detection of every true star; (index into cat, distance, matched?)."""
    from scipy.spatial import cKDTree
    if len(cat) == 0:
        n = len(true_rows)
        return np.zeros(n, int), np.full(n, np.inf), np.zeros(n, bool)
    tree = cKDTree(np.c_[np.asarray(cat["x"], float), np.asarray(cat["y"], float)])
    d, i = tree.query(np.c_[true_rows, true_cols])
    # a detection may be the nearest of two true stars: keep only its closest partner
    ok = d < radius
    best = {}
    for k in np.flatnonzero(ok):
        if i[k] not in best or d[k] < d[best[i[k]]]:
            best[i[k]] = k
    unique = np.zeros_like(ok)
    unique[list(best.values())] = True
    return i, d, ok & unique


# ------------------------------------------------------------------------------ statistics

def iqr_sigma(z):
    z = np.asarray(z, float)
    z = z[np.isfinite(z)]
    if z.size < 2:
        return np.nan
    q75, q25 = np.percentile(z, [75, 25])
    return (q75 - q25) / 1.34896


def zstats(z):
    """Summary of a Z-score sample (finite values only)."""
    z = np.asarray(z, float)
    n_all = z.size
    z = z[np.isfinite(z)]
    n = z.size
    if n == 0:
        return dict(n=0, n_nonfinite=n_all)
    return dict(n=n, n_nonfinite=n_all - n, mean=z.mean(),
                sem=z.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                median=np.median(z),
                median_se=1.2533 * iqr_sigma(z) / np.sqrt(n) if n > 1 else np.nan,
                std=z.std(ddof=1) if n > 1 else np.nan, iqr_sigma=iqr_sigma(z),
                iqr_sigma_se=1.166 * iqr_sigma(z) / np.sqrt(n) if n > 1 else np.nan,
                frac_abs_gt3=np.mean(np.abs(z) > 3), max_abs=np.abs(z).max())
