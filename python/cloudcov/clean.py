"""Clean one frame end to end: find defects, combine with a dq mask, impute, write.

``clean(image, ...)`` runs the finders of :mod:`cloudcov.defects` (hot/dead pixels, persistent
hot/dead/stuck pixels when other frames of the same detector are given, cosmic rays), ORs
them with a user data-quality mask into one bit-plane defect mask (:data:`DEFECT_BITS`), and
fills every flagged pixel with :func:`cloudcov.impute`. :func:`write_clean` stores the result
(``cloudcov clean`` on the command line).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ._validate import as_float, as_int, as_numeric_array
from .defects import (DEFECT_BITS, _persistent, combine_defects, defect_counts, find_cosmic_rays,
                      grow_mask, local_deviation, _flag, _check_thresholds)
from .tiling import DEFAULT_MAX_MEMORY

__all__ = ["CleanResult", "clean", "write_clean", "CLEAN_EXTENSIONS"]

log = logging.getLogger("cloudcov.clean")

#: Extensions of a ``cloudcov clean`` file after the primary (cleaned image), in order.
CLEAN_EXTENSIONS = ("DEFECTS", "STD", "DRAWS")

#: Short header keywords of the counts per defect class.
_COUNT_KEYS = {"hot": "CCNHOT", "dead": "CCNDEAD", "stuck": "CCNSTUCK", "cosmic_ray": "CCNCR",
               "cr_wing": "CCNCRWNG", "persistent": "CCNPERS", "dq": "CCNDQ",
               "nonfinite": "CCNNAN", "any": "CCNBAD"}


@dataclass(frozen=True)
class CleanResult:
    """Result of :func:`clean`.

    Attributes
    ----------
    image : (nrow, ncol) ndarray of float32 or float64
        Cleaned image: flagged pixels imputed, all others the input values (ADU).
    defects : (nrow, ncol) ndarray of uint8
        Defect bit planes (:data:`cloudcov.defects.DEFECT_BITS`; decode with
        :func:`cloudcov.defects.decode_defects`). Every pixel with a non-zero value was imputed.
    std : (nrow, ncol) ndarray
        Predicted standard deviation of each imputed value (0 on unflagged pixels), ADU.
    draws : (n_draw, nrow, ncol) ndarray or None
        Random cleaned images from the imputation's predictive distribution.
    counts : dict of str -> int
        Pixels per defect class (``hot``, ``dead``, ``stuck``, ``cosmic_ray``, ``cr_wing``,
        ``persistent``, ``dq``, ``nonfinite``, ``any``), plus ``imputed`` and ``fallback``.
    params : dict
        Every parameter used (finders, thresholds chosen for persistence, imputation).
    seconds : dict of str -> float
        Wall time per step.
    """

    image: np.ndarray
    defects: np.ndarray
    std: np.ndarray
    draws: np.ndarray | None
    counts: dict
    params: dict
    seconds: dict = field(default_factory=dict)


class _Steps:
    """A tqdm bar over the steps on a terminal, log lines always."""

    def __init__(self, names, progress):
        self.bar = None
        if progress is not False and names:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=len(names), desc="cloudcov clean", unit="step",
                                disable=None if progress is None else False, leave=False)
        self.t = time.perf_counter()
        self.seconds = {}

    def done(self, name, msg):
        now = time.perf_counter()
        self.seconds[name] = now - self.t
        self.t = now
        log.info("clean: %s (%.2f s)", msg, self.seconds[name])
        if self.bar is not None:
            self.bar.set_postfix_str(name)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _lone(crm, hot):
    """Single-pixel cosmic-ray groups (8-connected) that are hot pixels."""
    from scipy import ndimage

    if not crm.any():
        return crm
    lab, n = ndimage.label(crm, structure=np.ones((3, 3), bool))
    size = np.bincount(lab.ravel())
    return crm & hot & (size[lab] == 1)


def clean(image, *, frames=None, dq=None, method="median", gain=None, readnoise=None, bias=0.0,
          hot=True, dead=True, cosmic_rays=True, size=5, nsigma=6.0, guard=0.2,
          persistent_nsigma=4.0, min_frames=2, cr_method="lacosmic", cr_grow=1, sigclip=4.5,
          sigfrac=0.3, objlim=5.0, satlevel=None, n_draw=0, rng=None, threads=None,
          max_memory=DEFAULT_MAX_MEMORY, progress=False, impute_options=None):
    """Find the defects of one frame and impute them.

    Parameters
    ----------
    image : (nrow, ncol) array_like of real
        The frame to clean, ADU, ``[row, col]``. NaN/inf pixels are flagged (``nonfinite``)
        and imputed.
    frames : sequence of (nrow, ncol) array_like, optional
        Other exposures of the same detector, in detector coordinates (dithered or not). With
        them, :func:`cloudcov.defects.find_persistent_defects` runs on ``[image, *frames]``
        (hot/dead/stuck + ``persistent`` bits).
    dq : (nrow, ncol) array_like of int or bool, optional
        Data-quality mask of ``image`` (non-zero = bad, e.g. a DECam ``ood``): flagged ``dq``,
        excluded from the finders' statistics, imputed.
    method : {"median", "gaussian", "lpi", "gpr"}, optional
        :func:`cloudcov.impute` method (default ``"median"``).
    gain : float
        e-/ADU; required when ``cosmic_rays`` is on (LACosmic's noise model); with it the
        hot/dead finders also add source Poisson noise.
    readnoise : float
        Read noise in electrons; required with ``cosmic_rays``.
    bias : float, optional
        Constant pedestal in the data (ADU) for the cosmic-ray noise model (default 0).
    hot, dead, cosmic_rays : bool, optional
        Which single-frame finders run (default all).
    size, nsigma, guard : optional
        :func:`cloudcov.defects.find_hot_pixels` / ``find_dead_pixels`` box, threshold
        (default 6) and star-core guard (default 0.2).
    persistent_nsigma, min_frames : optional
        :func:`cloudcov.defects.find_persistent_defects` starting threshold (default 4) and
        frames required (default 2).
    cr_method : {"lacosmic", "deepcr"}, optional
        Cosmic-ray finder (default astroscrappy's LACosmic).
    cr_grow : int, optional
        Dilation iterations of the cosmic-ray mask (3 x 3 each); grown pixels get the
        ``cr_wing`` bit and are imputed (default 1; 0 = none). A lone cosmic-ray pixel that is
        also a hot pixel is not grown.
    sigclip, sigfrac, objlim, satlevel : optional
        LACosmic parameters (astroscrappy defaults; ``satlevel`` in ADU, default none).
    n_draw, rng, threads, max_memory : optional
        Passed to :func:`cloudcov.impute`.
    progress : bool or None, optional
        Progress bar over the steps (tqdm): True always, None only on a terminal, False never
        (default). Each step is also logged (logger ``cloudcov.clean``, INFO).
    impute_options : dict, optional
        Method options for :func:`cloudcov.impute` (e.g. ``{"size": 5}`` for ``median``). For
        ``lpi`` and ``gpr`` the ``gain`` is passed on unless given here (Poisson noise model).

    Returns
    -------
    CleanResult

    Raises
    ------
    ValueError
        ``gain``/``readnoise`` missing with ``cosmic_rays``; ``frames[k]`` or ``dq`` of another
        shape than ``image``; bad thresholds; a fully flagged image.
    TypeError
        Non-numeric input.

    Notes
    -----
    Dead pixels and persistent defects are passed to LACosmic as masked: the positive
    Laplacian next to a deep negative pixel would otherwise be called a cosmic ray (on the
    M13 frames, with their 0.5 % transient negative pixels, most LACosmic detections are of
    that kind), and a persistent hot pixel is a detector defect. One-frame hot pixels are not
    masked: in one exposure they and one-pixel cosmic rays are indistinguishable and may
    carry both bits (a lone one is not grown).
    """
    from .impute import impute

    t0 = time.perf_counter()
    a = as_numeric_array("image", image)
    if a.ndim != 2:
        raise ValueError(f"image: expected a 2-D image, got shape {a.shape}")
    shape = a.shape
    work = np.array(a, dtype=a.dtype if a.dtype in (np.float32, np.float64) else np.float64)
    nonfinite = ~np.isfinite(work)
    if frames is not None:
        frames = list(frames)
        for k, f in enumerate(frames):
            fa = as_numeric_array(f"frames[{k}]", f)
            if fa.shape != shape:
                raise ValueError(f"frames[{k}]: shape {fa.shape} != image shape {shape} "
                                 "(frames must be exposures of the same detector)")
            frames[k] = fa
    dqm = None
    if dq is not None:
        d = as_numeric_array("dq", dq)
        if d.shape != shape:
            raise ValueError(f"dq: shape {d.shape} != image shape {shape}")
        dqm = d != 0
    nsigma, guard = _check_thresholds(nsigma, guard)
    cr_grow = as_int("cr_grow", cr_grow, minimum=0)
    if cosmic_rays:
        if gain is None:
            raise ValueError("gain: required for cosmic-ray detection (e-/ADU); give gain= "
                             "(cloudcov clean --gain, or GAIN in the header) or cosmic_rays=False")
        if readnoise is None:
            raise ValueError("readnoise: required for cosmic-ray detection (electrons); give "
                             "readnoise= (--readnoise, or RDNOISE in the header) or cosmic_rays=False")
    if gain is not None:
        gain = as_float("gain", gain, positive=True)
    bias = as_float("bias", bias)
    known = nonfinite if dqm is None else (nonfinite | dqm)

    names = [n for n, on in (("hot/dead", hot or dead), ("persistent", frames),
                             ("cosmic rays", cosmic_rays), ("impute", True)) if on]
    steps = _Steps(names, progress)
    try:
        hotm = deadm = None
        if hot or dead:
            dev = local_deviation(work, size=size, gain=gain, mask=known)
            hotm = _flag(dev, +1, nsigma, guard, satlevel) if hot else None
            deadm = _flag(dev, -1, nsigma, guard) if dead else None
            steps.done("hot/dead", f"hot {0 if hotm is None else int(hotm.sum())}, dead "
                       f"{0 if deadm is None else int(deadm.sum())} (nsigma {nsigma}, sigma "
                       f"{dev.sigma0:.4g} ADU)")
            del dev
        pers = None
        pinfo = {}
        if frames:
            pers, pinfo = _persistent([work, *frames], size=size, nsigma=persistent_nsigma,
                                      min_frames=min_frames, guard=guard, gain=gain,
                                      saturation=satlevel,
                                      masks=[known] + [None] * len(frames))
            steps.done("persistent", "persistent " + ", ".join(
                f"{k} {v}" for k, v in defect_counts(pers).items()
                if k in ("hot", "dead", "stuck")) + f" over {len(frames) + 1} frames")
        crm = wing = None
        if cosmic_rays:
            crmask_in = known.copy()
            if deadm is not None:
                crmask_in |= deadm
            if pers is not None:  # known detector defects are not cosmic rays
                crmask_in |= pers != 0
            crm = find_cosmic_rays(work, gain, readnoise, method=cr_method, bias=bias,
                                   mask=crmask_in, sigclip=sigclip, sigfrac=sigfrac,
                                   objlim=objlim, satlevel=satlevel)
            # grow real cosmic rays only: a lone hot pixel that LACosmic also calls a cosmic
            # ray has no wings
            hot_any = np.zeros(shape, bool) if hotm is None else hotm.copy()
            if pers is not None:
                hot_any |= (pers & DEFECT_BITS["hot"]) != 0
            wing = grow_mask(crm & ~_lone(crm, hot_any), cr_grow) & ~known & ~crm
            steps.done("cosmic rays", f"cosmic rays {int(crm.sum())} pixels, wings "
                       f"{int(wing.sum())} (grow {cr_grow})")
        defects = combine_defects(shape, hot=hotm, dead=deadm, cosmic_ray=crm, cr_wing=wing,
                                  dq=dqm, nonfinite=nonfinite, bits=pers)
        opts = dict(impute_options or {})
        if method in ("lpi", "gpr") and gain is not None:
            opts.setdefault("gain", gain)   # their Poisson noise model (white sigma + signal/gain)
        res = impute(work, defects != 0, method=method, n_draw=n_draw, rng=rng, threads=threads,
                     max_memory=max_memory, progress=bool(progress), **opts)
        steps.done("impute", f"imputed {res.n_imputed} pixels with {method} "
                   f"({res.n_fallback} by fallback)")
    finally:
        steps.close()
    counts = defect_counts(defects)
    counts["imputed"] = res.n_imputed
    counts["fallback"] = res.n_fallback
    params = dict(method=method, gain=gain, readnoise=readnoise, bias=bias, hot=bool(hot),
                  dead=bool(dead), cosmic_rays=bool(cosmic_rays), size=size, nsigma=nsigma,
                  guard=guard, n_frames=1 + (len(frames) if frames else 0),
                  persistent_nsigma=persistent_nsigma, min_frames=min_frames,
                  cr_method=cr_method if cosmic_rays else None, cr_grow=cr_grow, sigclip=sigclip,
                  sigfrac=sigfrac, objlim=objlim, satlevel=satlevel, n_draw=n_draw,
                  rng=rng if isinstance(rng, (int, np.integer)) or rng is None else repr(rng),
                  dq=dq is not None, impute_params=res.params,
                  fallback_reasons=res.fallback_reasons)
    if pinfo:
        params["persistent_info"] = pinfo
    steps.seconds["total"] = time.perf_counter() - t0
    return CleanResult(image=res.image, defects=defects, std=res.std, draws=res.draws,
                       counts=counts, params=params, seconds=steps.seconds)


def write_clean(path, result, *, header=None, inputs=None, overwrite=True):
    """Write a :class:`CleanResult` to a FITS file atomically.

    Layout: PRIMARY = cleaned image (input dtype if float, else float64) with the input
    ``header`` (structural keywords dropped) plus the parameters and counts; ``DEFECTS``
    (uint8 bit planes, the bit names in ``BIT<k>`` cards); ``STD`` (same dtype as the image);
    ``DRAWS`` (``(n_draw, nrow, ncol)``) when draws were made.

    Header cards (primary): ``CCMETHOD`` imputation method, ``CCNSIG`` / ``CCGUARD`` /
    ``CCSIZE`` hot/dead threshold, guard and box, ``CCPNSIG`` persistence threshold,
    ``CCNFRAME`` frames used, ``CCGAIN``, ``CCRDNOIS``, ``CCBIAS``, ``CCCRMETH``, ``CCCRSIG``
    (sigclip), ``CCCRFRC`` (sigfrac), ``CCCROBJ`` (objlim), ``CCCRGROW``, ``CCNDRAW``,
    ``CCSEED``; counts ``CCNHOT``, ``CCNDEAD``, ``CCNSTUCK``, ``CCNCR``, ``CCNCRWNG``,
    ``CCNPERS``, ``CCNDQ``, ``CCNNAN``, ``CCNBAD`` (any), ``CCNIMP``, ``CCNFALLB``;
    ``CCPARAMS`` (every parameter as JSON), ``CCINPUT1..`` (input files), ``CLOUDVER``.

    Parameters
    ----------
    path : str or path-like
        Output file.
    result : CleanResult
    header : astropy.io.fits.Header, optional
        Input image header to keep.
    inputs : sequence of str, optional
        Input file names to record.
    overwrite : bool, optional
        Replace an existing file (default True).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileExistsError, OSError
        As :func:`cloudcov.io.images.write_image_file` (nothing partial is left behind).
    """
    from astropy.io import fits

    from . import __version__
    from .io.images import write_image_file
    from .io.catalog import json_text

    p = result.params
    h = fits.Header() if header is None else header.copy()

    def card(key, value, comment):
        if value is None:
            value = "none"
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            value = value.item()
        if isinstance(value, str) and len(value) > 40:
            h[key] = value          # long strings (file names): no comment, CONTINUE cards
        else:
            h[key] = (value, comment)

    card("CLOUDVER", __version__, "cloudcov version")
    card("CCMETHOD", p["method"], "cloudcov clean: imputation method")
    card("CCNSIG", p["nsigma"], "hot/dead threshold (sigma)")
    card("CCGUARD", p["guard"], "star-core guard (structure ratio)")
    card("CCSIZE", p["size"], "local-median box (px)")
    card("CCNFRAME", p["n_frames"], "frames used for persistent defects")
    card("CCPNSIG", p["persistent_nsigma"], "persistent threshold start (sigma)")
    card("CCMINFR", p["min_frames"], "frames a persistent defect needs")
    card("CCGAIN", p["gain"], "gain (e-/ADU)")
    card("CCRDNOIS", p["readnoise"], "read noise (e-)")
    card("CCBIAS", p["bias"], "pedestal subtracted for LACosmic (ADU)")
    card("CCCRMETH", p["cr_method"], "cosmic-ray finder")
    card("CCCRSIG", p["sigclip"], "LACosmic sigclip")
    card("CCCRFRC", p["sigfrac"], "LACosmic sigfrac")
    card("CCCROBJ", p["objlim"], "LACosmic objlim")
    card("CCCRGROW", p["cr_grow"], "cosmic-ray dilation iterations")
    card("CCNDRAW", p["n_draw"], "imputation draws")
    card("CCSEED", p["rng"] if isinstance(p["rng"], (int, type(None))) else str(p["rng"]),
         "imputation seed")
    for k, key in _COUNT_KEYS.items():
        card(key, result.counts[k], f"pixels flagged {k}")
    card("CCNIMP", result.counts["imputed"], "pixels imputed")
    card("CCNFALLB", result.counts["fallback"], "imputed by fallback")
    for k, name in enumerate(inputs or (), start=1):
        card(f"CCINPUT{k}"[:8], str(name), "input file")
    h["CCPARAMS"] = json_text(p)
    dh = fits.Header()
    for name, bit in DEFECT_BITS.items():
        dh[f"BIT{bit.bit_length() - 1}"] = (name, f"defect bit value {bit}")
    dh["BUNIT"] = ("bitmask", "cloudcov.defects.DEFECT_BITS")
    exts = [("DEFECTS", result.defects, dh), ("STD", result.std, None)]
    if result.draws is not None:
        exts.append(("DRAWS", result.draws, None))
    return write_image_file(path, result.image, exts, header=h, overwrite=overwrite)


# ------------------------------------------------------------------------------ command line

#: Header keywords searched for the gain (e-/ADU) and the read noise (e-), in order.
GAIN_KEYWORDS = ("GAIN", "EGAIN", "CCDGAIN", "ARAWGAIN")
READNOISE_KEYWORDS = ("RDNOISE", "READNOIS", "RON", "READNOISE")


def _header_value(header, keys):
    for k in keys:
        v = header.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v), k
    return None, None


def add_cli_parser(sub):
    """Register ``cloudcov clean`` on an argparse sub-parser collection (used by cli.py)."""
    c = sub.add_parser(
        "clean", help="find hot/dead/stuck pixels and cosmic rays, impute them, write the frame",
        description="Detect defects in IN (hot/dead pixels, persistent hot/dead/stuck pixels "
        "with --frames, cosmic rays with astroscrappy), combine them with a dq mask, impute "
        "every flagged pixel and write OUT: PRIMARY = cleaned image (input header kept, "
        "parameters and counts added), DEFECTS (uint8 bit planes: 1 hot, 2 dead, 4 stuck, "
        "8 cosmic_ray, 16 cr_wing, 32 persistent, 64 dq, 128 nonfinite), STD, DRAWS.")
    c.add_argument("image", metavar="IN.fits[EXT]", help="frame to clean")
    c.add_argument("--frames", nargs="+", default=None, metavar="F.fits[EXT]",
                   help="other exposures of the same detector (persistent defects)")
    c.add_argument("--dq", default=None, metavar="DQ.fits[EXT]",
                   help="data-quality mask (non-zero = bad), e.g. a DECam ood file")
    c.add_argument("--method", choices=("lpi", "gpr", "median", "gaussian"), default="median",
                   help="imputation method (default median)")
    c.add_argument("--n-draw", type=int, default=0, help="random draws to write (DRAWS)")
    c.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    c.add_argument("--gain", type=float, default=None,
                   help="e-/ADU (default: GAIN/EGAIN header card; required for cosmic rays)")
    c.add_argument("--readnoise", type=float, default=None,
                   help="read noise in e- (default: RDNOISE/READNOIS header card)")
    c.add_argument("--bias", type=float, default=None,
                   help="pedestal in the data, ADU (default: -PEDESTAL card if present, else 0)")
    c.add_argument("--nsigma", type=float, default=6.0, help="hot/dead threshold (default 6)")
    c.add_argument("--guard", type=float, default=0.2, help="star-core guard (default 0.2)")
    c.add_argument("--size", type=int, default=5, help="local-median box (default 5)")
    c.add_argument("--no-cosmic-rays", action="store_true", help="skip cosmic-ray detection")
    c.add_argument("--cr-method", choices=("lacosmic", "deepcr"), default="lacosmic",
                   help="cosmic-ray finder (default lacosmic = astroscrappy)")
    c.add_argument("--cr-grow", type=int, default=1,
                   help="dilate cosmic rays by this many 3x3 steps (default 1)")
    c.add_argument("--sigclip", type=float, default=4.5, help="LACosmic sigclip (default 4.5)")
    c.add_argument("--objlim", type=float, default=5.0, help="LACosmic objlim (default 5)")
    c.add_argument("--satlevel", type=float, default=None, help="saturation (ADU)")
    c.add_argument("--threads", type=int, default=None, help="imputation threads")
    c.add_argument("--out", required=True, metavar="OUT.fits", help="output file")
    c.set_defaults(func=run_cli)
    return c


def run_cli(args):
    """``cloudcov clean``: returns the exit status (1 on bad input, with a message)."""
    import sys

    from .errors import CloudCovError
    from .io.imputed import parse_image_spec, read_image_spec

    on_tty = sys.stderr.isatty()
    if not on_tty:  # log lines instead of a progress bar
        log.setLevel(logging.INFO)
    try:
        image, header = read_image_spec(args.image, "image")
        path, ext = parse_image_spec(args.image)
        if ext not in (None, 0):  # instrument cards (GAIN, ...) often live in the primary
            from .io._files import open_fits
            with open_fits(path, "image") as hdul:
                prim = hdul[0].header
                for key in GAIN_KEYWORDS + READNOISE_KEYWORDS + ("PEDESTAL",):
                    if key in prim and key not in header:
                        header[key] = prim[key]
        frames = None
        if args.frames:
            frames = [read_image_spec(f, f"frames[{k}]")[0] for k, f in enumerate(args.frames)]
        dq = read_image_spec(args.dq, "dq")[0] if args.dq else None
        gain, readnoise, bias = args.gain, args.readnoise, args.bias
        if gain is None:
            gain, key = _header_value(header, GAIN_KEYWORDS)
            if key:
                log.info("clean: gain %g e-/ADU from %s", gain, key)
        if readnoise is None:
            readnoise, key = _header_value(header, READNOISE_KEYWORDS)
            if key:
                log.info("clean: read noise %g e- from %s", readnoise, key)
        if bias is None:
            ped, _ = _header_value(header, ("PEDESTAL",))
            bias = 0.0 if ped is None else -ped
            if ped is not None:
                log.info("clean: bias %g ADU from PEDESTAL", bias)
        res = clean(image, frames=frames, dq=dq, method=args.method, gain=gain,
                    readnoise=readnoise, bias=bias, cosmic_rays=not args.no_cosmic_rays,
                    size=args.size, nsigma=args.nsigma, guard=args.guard,
                    cr_method=args.cr_method, cr_grow=args.cr_grow, sigclip=args.sigclip,
                    objlim=args.objlim, satlevel=args.satlevel, n_draw=args.n_draw,
                    rng=args.seed, threads=args.threads, progress=None if on_tty else False)
        inputs = [args.image] + list(args.frames or []) + ([args.dq] if args.dq else [])
        write_clean(args.out, res, header=header, inputs=inputs)
    except (OSError, ValueError, TypeError, ImportError, CloudCovError) as exc:
        print(f"cloudcov clean: error: {exc}", file=sys.stderr)
        return 1
    c = res.counts
    print(f"cloudcov clean: {c['any']} defect pixels imputed with {args.method} in "
          f"{res.seconds['total']:.1f} s: hot {c['hot']}, dead {c['dead']}, stuck {c['stuck']}, "
          f"cosmic_ray {c['cosmic_ray']} (+{c['cr_wing']} wing), persistent {c['persistent']}, "
          f"dq {c['dq']}, nonfinite {c['nonfinite']}")
    print(f"  output: {args.out}")
    return 0
