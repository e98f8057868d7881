"""PSF adapters: every PSF input becomes a callable ``psf(row, col, size) -> (size, size)``.

Stamps are float64 arrays indexed ``[row, col]`` and centred on pixel
``(rint(row), rint(col))``; positions are 0-based with pixel centres at integers.
crowdsource's ``x`` is the row and ``y`` the column.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy.table import Table

from ._validate import as_image
from .errors import CloudCovWarning

__all__ = [
    "CallablePSF",
    "CrowdsourcePSF",
    "ModelPSF",
    "StampPSF",
    "as_psf_model",
    "crop_or_pad",
    "is_crowdsource_record",
    "psf_from_crowdsource_record",
]

#: Size of the central box whose sum normalises crowdsource's record PSFs (its ``normalizesz``).
CROWDSOURCE_NORMALIZE = 59
#: Default point where the two record decoders are compared: the centre of a DECam CCD,
#: ``(4094 // 2, 2046 // 2)`` in ``(row, col)``.
DECAM_CCD_CENTER = (2047, 1023)

_INSTALL_HINT = ("pip install --no-deps crowdsourcephoto  (--no-deps: its declared "
                 "tensorflow/keras requirements are not needed by crowdsource.psf)")
# Serialises the temporary $DECAM_DIR switch around crowdsource's static-PSF loader.
_DECAM_DIR_LOCK = threading.Lock()


def crop_or_pad(stamp, size):
    """Centre-crop or zero-pad an odd square stamp to ``(size, size)``.

    Parameters
    ----------
    stamp : (n, n) ndarray
        Odd-sized stamp centred on its middle pixel.
    size : int
        Odd output size.

    Returns
    -------
    out : (size, size) ndarray of float64
    """
    n = stamp.shape[0]
    out = np.zeros((size, size))
    if size <= n:
        o = (n - size) // 2
        out[:] = stamp[o:o + size, o:o + size]
    else:
        o = (size - n) // 2
        out[o:o + n, o:o + n] = stamp
    return out


class StampPSF:
    """A position-independent PSF given as one odd square stamp.

    Parameters
    ----------
    stamp : (n, n) ndarray
        PSF stamp centred on its middle pixel, finite values, odd ``n``; any normalisation
        consistent with the catalogue fluxes (crowdsource: unit sum).

    Notes
    -----
    ``psf(row, col, size)`` returns the stamp cropped or zero-padded to ``size``; the
    sub-pixel position of the star is ignored.
    """

    def __init__(self, stamp):
        stamp = as_image("psf", stamp, dtype=np.float64)
        if stamp.shape[0] != stamp.shape[1] or stamp.shape[0] % 2 != 1:
            raise ValueError(f"psf: expected an odd square stamp, got shape {stamp.shape}")
        self.stamp = stamp

    def __call__(self, row, col, size):
        return crop_or_pad(self.stamp, int(size))


class CallablePSF:
    """Wrap a user callable ``f(row, col, size)``, checking what it returns.

    Parameters
    ----------
    fn : callable
        ``fn(row, col, size)`` with ``row, col`` 0-based image coordinates (crowdsource
        convention: row = ``x``) returning a finite ``(size, size)`` stamp centred on pixel
        ``(rint(row), rint(col))``.
    """

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"psf: expected an array, a callable or a crowdsource PSF, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, row, col, size):
        out = np.asarray(self.fn(row, col, size), dtype=np.float64)
        if out.shape != (size, size):
            raise ValueError(f"psf: callable returned shape {out.shape} for size {size} at "
                             f"(row, col) = ({row}, {col})")
        if not np.all(np.isfinite(out)):
            raise ValueError(f"psf: callable returned NaN/inf at (row, col) = ({row}, {col})")
        return out


#: Position-parameter names recognised on astropy/photutils models, ``(x, y)``: photutils
#: PSF models (``ImagePSF``, ``CircularGaussianPRF``, ``GriddedPSFModel``, ...) and
#: astropy's ``Moffat2D``/``AiryDisk2D`` use ``x_0``/``y_0``; ``Gaussian2D`` uses
#: ``x_mean``/``y_mean``.
MODEL_POSITION_NAMES = (("x_0", "y_0"), ("x_mean", "y_mean"))
#: Side of the grid on which a model without a ``flux`` parameter is normalised.
MODEL_NORM_SIZE = 511


class ModelPSF:
    """An astropy or photutils 2-D model as a PSF ``psf(row, col, size)``.

    Parameters
    ----------
    model : astropy.modeling.Model
        A model with two inputs ``(x, y)`` and one output, ``x`` = column and ``y`` = row
        (astropy's convention, 0-based, pixel centres at integers): a photutils PSF model
        (``ImagePSF``, ``CircularGaussianPRF``, ``CircularGaussianPSF``, ``MoffatPSF``,
        ``GriddedPSFModel``, ...) or any ``Fittable2DModel`` (``Gaussian2D``, ``Moffat2D``).
        It is not modified (a private copy is evaluated).
    x_name, y_name : str, optional
        Names of its column and row position parameters (default: the first pair of
        :data:`MODEL_POSITION_NAMES` that it has).
    flux_name : str or None, optional
        Name of its flux (integral) parameter, set to 1 for every stamp so that the stamp has
        the unit normalisation photutils fluxes assume (default ``"flux"`` when the model has
        it). A model without one (e.g. ``Gaussian2D``, whose ``amplitude`` is a peak) is
        divided by its sum over a :data:`MODEL_NORM_SIZE`-pixel square centred on the star, so
        catalogue fluxes are totals.

    Raises
    ------
    TypeError
        ``model`` is not a 2-input, 1-output astropy model.
    ValueError
        Position or flux parameters not found (the message lists the model's parameters), or
        the model sums to zero or a non-finite value.

    Notes
    -----
    ``psf(row, col, size)`` evaluates the model at the pixel centres of the ``size x size``
    stamp centred on ``(rint(row), rint(col))`` with its position set to
    ``(x, y) = (col, row)``. PRF models (photutils ``ImagePSF`` from an ePSF, ``*PRF``) give
    pixel-integrated values; PSF models are sampled at the centres, as photutils'
    ``discretize_method="center"``. Any stamp size works (cloudcov evaluates ``Np`` pixels
    per star and 511 pixels at the CCD centre for the static core mask); outside an
    ``ImagePSF``'s data the model is 0. Calls from several threads at once are not supported.

    Examples
    --------
    >>> from astropy.modeling.models import Gaussian2D
    >>> psf = ModelPSF(Gaussian2D(x_stddev=1.5, y_stddev=1.5))
    >>> stamp = psf(10.2, 20.7, 33)          # (row, col, size)
    >>> stamp.shape, round(float(stamp.sum()), 4)
    ((33, 33), 1.0)
    """

    def __init__(self, model, x_name=None, y_name=None, flux_name="flux"):
        from astropy.modeling import Model

        if not isinstance(model, Model) or model.n_inputs != 2 or model.n_outputs != 1:
            raise TypeError(f"psf: expected a 2-input, 1-output astropy model, got "
                            f"{type(model).__name__}")
        names = tuple(model.param_names)
        if x_name is None and y_name is None:
            pair = next((p for p in MODEL_POSITION_NAMES if set(p) <= set(names)), None)
            if pair is None:
                raise ValueError(f"psf: model {type(model).__name__} has no position parameters "
                                 f"{' or '.join('/'.join(p) for p in MODEL_POSITION_NAMES)} "
                                 f"(has {names}); pass x_name= and y_name=")
            x_name, y_name = pair
        for what, name in (("x_name", x_name), ("y_name", y_name)):
            if name not in names:
                raise ValueError(f"psf: {what} {name!r} is not a parameter of "
                                 f"{type(model).__name__} (has {names})")
        if flux_name is not None and flux_name not in names:
            if flux_name != "flux":
                raise ValueError(f"psf: flux_name {flux_name!r} is not a parameter of "
                                 f"{type(model).__name__} (has {names})")
            flux_name = None
        self.model = model.copy()
        self.x_name, self.y_name, self.flux_name = x_name, y_name, flux_name
        if flux_name is not None:
            setattr(self.model, flux_name, 1.0)
        self._norm = 1.0
        if flux_name is None:
            total = float(np.sum(self._eval(0.0, 0.0, MODEL_NORM_SIZE)))
            if not (np.isfinite(total) and total != 0):
                raise ValueError(f"psf: model {type(model).__name__} sums to {total} over "
                                 f"{MODEL_NORM_SIZE}^2 pixels; cannot normalise it")
            self._norm = total

    def _eval(self, row, col, size):
        h = (size - 1) // 2
        r0, c0 = int(np.rint(row)), int(np.rint(col))
        yy, xx = np.mgrid[r0 - h:r0 + h + 1, c0 - h:c0 + h + 1]
        setattr(self.model, self.x_name, float(col))
        setattr(self.model, self.y_name, float(row))
        out = self.model(xx.astype(np.float64), yy.astype(np.float64))
        return np.asarray(getattr(out, "value", out), dtype=np.float64)

    def __call__(self, row, col, size):
        """PSF stamp at ``(row, col)``.

        Parameters
        ----------
        row, col : float
            0-based position (row = numpy axis 0 = photutils ``y``), pixel centres at integers.
        size : int
            Odd stamp size.

        Returns
        -------
        (size, size) ndarray of float64
            Centred on ``(rint(row), rint(col))``, indexed ``[row, col]``.
        """
        size = int(size)
        out = self._eval(row, col, size) / self._norm
        if not np.all(np.isfinite(out)):
            raise ValueError(f"psf: model {type(self.model).__name__} gave NaN/inf at "
                             f"(row, col) = ({row}, {col})")
        return out

    def __repr__(self):
        return (f"ModelPSF({type(self.model).__name__}, x_name={self.x_name!r}, "
                f"y_name={self.y_name!r}, flux_name={self.flux_name!r})")


# --------------------------------------------------------------------------------------
# crowdsource (optional dependency)
# --------------------------------------------------------------------------------------

def _crowdsource_psf_module():
    """Import ``crowdsource.psf`` lazily, with an install hint if it is missing."""
    try:
        import crowdsource.psf as cspsf
    except ImportError as exc:
        raise ImportError("crowdsource PSF records and objects need the optional package "
                          f"crowdsourcephoto: {_INSTALL_HINT}") from exc
    return cspsf


def _call_crowdsource(model, row, col, size):
    """``model(row, col, stampsz=size)`` as float64.

    Silences crowdsource's use of the deprecated ``scipy.ndimage.interpolation`` namespace
    (ECOSYSTEM trap 3). Where that namespace is gone (SciPy >= 2) and the model is a
    ``VariablePixelizedPSF``-like object (``render_model`` and ``norm`` methods), the same
    steps are done by :func:`_eval_pixelized`.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*scipy\.ndimage\.(interpolation|filters)",
                                    category=DeprecationWarning)
            return np.asarray(model(row, col, stampsz=size), dtype=np.float64)
    except ImportError:
        if not (hasattr(model, "render_model") and hasattr(model, "norm")):
            raise
    return _eval_pixelized(model, row, col, size)


def _eval_pixelized(model, row, col, size):
    """Evaluate a crowdsource ``VariablePixelizedPSF`` without its ``__call__``.

    Same steps as crowdsource (polynomial stamp centred on ``rint``, sub-pixel spline shift
    of order 4 with ``mode='nearest'``, division by the polynomial norm) through the public
    ``render_model``/``norm`` methods and :func:`scipy.ndimage.shift`; used when
    crowdsource's own shift wrapper cannot import ``scipy.ndimage.interpolation``.
    """
    from scipy import ndimage

    stamp = np.asarray(model.render_model(row, col, stampsz=size), dtype=np.float64)
    stamp = ndimage.shift(stamp, (row - np.round(row), col - np.round(col)), order=4,
                          mode="nearest")
    return stamp / float(model.norm(row, col))


def _record_names(rec):
    """Field names of a record-like object, or None."""
    names = getattr(getattr(rec, "dtype", None), "names", None)
    if names is None and hasattr(rec, "array"):          # astropy FITS_record
        names = getattr(getattr(rec.array, "dtype", None), "names", None)
    if names is None and hasattr(rec, "colnames"):       # astropy Table / Row
        names = tuple(rec.colnames)
    if names is None and isinstance(rec, Mapping):
        names = tuple(rec.keys())
    return names


def is_crowdsource_record(obj):
    """Whether ``obj`` looks like a crowdsource PSF record (fields ``offset`` and ``stamp``).

    Parameters
    ----------
    obj : object
        Candidate: numpy structured array/record, astropy ``FITS_rec``/``FITS_record``,
        ``Table``/``Row`` or mapping.

    Returns
    -------
    bool
    """
    names = _record_names(obj)
    return names is not None and {"offset", "stamp"} <= set(names)


def _normalise_record(rec):
    """Record -> dict of native numpy arrays in crowdsource's (numpy) axis order.

    Returns the dict and whether the input was in FITS/Julia (reversed) axis order.
    """
    names = _record_names(rec)
    if names is None or not {"offset", "stamp"} <= set(names):
        raise ValueError(f"psf record: expected fields 'offset' and 'stamp' (crowdsource "
                         f"serialize()), got {names}")
    # one-row tables (e.g. ``hdul['N4_PSF'].data``) are accepted as their only row
    if (isinstance(rec, np.ndarray) and rec.shape != ()) or isinstance(rec, Table):
        if len(rec) != 1:
            raise ValueError(f"psf record: expected one row, got {len(rec)}")
        rec = rec[0]
    out = {}
    for name in ("offset", "stamp", "convparam", "resparam"):
        if name in names:
            out[name] = np.array(rec[name], dtype=np.float64)   # native byte order copy
    stamp = out["stamp"]
    s = stamp.shape
    if stamp.ndim != 4:
        raise ValueError(f"psf record: expected a 4-D 'stamp' (polynomial coefficients x "
                         f"stamp), got shape {s}")
    if s[2] == s[3] and s[2] % 2 == 1 and s[2] > max(s[0], s[1]):
        reversed_axes = False
    elif s[0] == s[1] and s[0] % 2 == 1 and s[0] > max(s[2], s[3]):
        reversed_axes = True            # FITS TDIM / Julia order (n, n, 2, 2)
        out["stamp"] = np.ascontiguousarray(stamp.transpose())
        if "resparam" in out and out["resparam"].ndim == 3:
            out["resparam"] = np.ascontiguousarray(out["resparam"].transpose())
    else:
        raise ValueError(f"psf record: 'stamp' shape {s} is neither (p, q, n, n) (numpy) nor "
                         "(n, n, q, p) (FITS/Julia) with odd n")
    if not np.all(np.isfinite(out["stamp"])):
        raise ValueError("psf record: 'stamp' has NaN/inf")
    return out, reversed_axes


class CrowdsourcePSF:
    """A crowdsource PSF record (DECaPS ``<CCD>_PSF``) as a callable ``psf(row, col, size)``.

    Parameters
    ----------
    rec : record-like
        One crowdsource ``psf.serialize()`` record with fields ``offset`` (2,), ``stamp``
        (p, q, n, n) and, for the ``"params"`` decoder, ``convparam`` (13,) and ``resparam``
        (3, 9, 9): an astropy ``FITS_record``/``Row``, a numpy structured scalar, a mapping,
        or a one-row table (``hdul['N4_PSF'].data``). Stamps in FITS/Julia axis order
        (``(n, n, 2, 2)``, as the DECaPS datamodel writes ``STAMP=[511,511,2,2]``) are
        transposed to numpy order. Any float dtype or byte order; converted to float64.
    filter : str, optional
        Filter name of the static PSF file ``psf_<filter>_deconv_mod.fits.gz`` (DECaPS:
        ``'g'``, ``'r'``, ``'i'``, ``'z'``, ``'Y'``). Required by the ``"params"`` and
        ``"both"`` decoders.
    decoder : {"stamp", "params", "both"}, optional
        ``"stamp"`` (default): ``crowdsource.psf.VariablePixelizedPSF(rec['stamp'],
        normalize=59)``, the linear polynomial stamp that crowdsource fitted and used.
        ``"params"``: ``crowdsource.psf.linear_static_wing_from_record(rec, filter)``, which
        rebuilds the PSF from the Moffat wing parameters ``convparam``, the static PSF and
        the residual ``resparam`` exactly as CloudCovErr.jl's ``load_psfmodel`` does.
        ``"both"``: build both, compare them (see Notes) and evaluate the one named by
        ``use``.
    static_psf_dir : str or path-like, optional
        Where the static PSF is: a ``$DECAM_DIR``-style root holding
        ``data/psfs/psf_<filter>_deconv_mod.fits.gz``, or the folder holding the file
        itself. Default: ``$DECAM_DIR``.
    use : {"stamp", "params"}, optional
        Decoder evaluated when ``decoder="both"`` (default ``"stamp"``).
    rtol : float, optional
        Disagreement tolerance of the ``"both"`` comparison (default 1e-3), relative to the
        peak of the ``"stamp"`` decode.
    center : (float, float), optional
        ``(row, col)`` where the decoders are compared (default :data:`DECAM_CCD_CENTER`,
        the centre of a 4094 x 2046 DECam CCD; pass ``(nrow // 2, ncol // 2)`` for other
        images).

    Attributes
    ----------
    model : crowdsource.psf.VariablePixelizedPSF
        The crowdsource model that ``__call__`` evaluates.
    stamp_model, params_model : crowdsource.psf.VariablePixelizedPSF or None
        The decoders that were built.
    offset : (2,) ndarray of float64
        The record's ``offset``, kept for reference and not applied (neither crowdsource's
        ``__call__`` nor CloudCovErr.jl applies it).
    order : int or None
        Polynomial order of the fit from ``resparam`` (0 if only its first plane is nonzero,
        crowdsource's rule), None without ``resparam``.
    wing_dropped : bool or None
        True when the ``"params"`` decode loses the Moffat wing: ``convparam`` has more than
        4 values (so crowdsource's ``modelstampcorn`` reads it as an order-1 fit) but its
        wing normalisation ``convparam[9]`` is 0, as stored for order-0 fits. Needs no static
        PSF. None without ``convparam``.
    fits_order : bool
        True when the record's ``stamp`` came in FITS/Julia axis order and was transposed.
    max_rel_diff : float
        ``max|params - stamp| / max|stamp|`` over the full stamp at ``center`` (``"both"``
        only; NaN otherwise).
    decoders_disagree : bool or None
        ``max_rel_diff > rtol`` (``"both"`` only; None when not compared).

    Raises
    ------
    ImportError
        crowdsourcephoto is not installed (install with ``pip install --no-deps
        crowdsourcephoto``).
    ValueError
        Malformed record, unknown ``decoder``/``use``, or ``filter`` missing for
        ``"params"``/``"both"``.
    FileNotFoundError
        The static PSF file was not found.

    Warns
    -----
    CloudCovWarning
        ``decoder="both"`` and the decoders disagree by more than ``rtol``.

    Notes
    -----
    The default is ``"stamp"`` because the stored stamp is exactly the polynomial PSF that
    crowdsource fitted and subtracted (on the embedded example it reproduces the fitted PSF
    to 3e-8 of the peak), it needs no static PSF file, and it avoids an upstream decoding
    problem: ``fit_linear_static_wing`` stores 13 ``convparam`` values but fills only 4 for
    order-0 fits (fewer than 10 bright stars), and ``modelstampcorn`` then reads the wing
    normalisation from ``convparam[9] = 0`` and drops the wing (ECOSYSTEM.md 1, trap 1; on
    the embedded example the ``"params"`` decode is off by 4.8 times the peak). Use
    ``"params"`` for bit-level parity with CloudCovErr.jl, and ``"both"`` to flag the CCDs
    where the two disagree.

    Both decoders return crowdsource ``VariablePixelizedPSF`` objects, normalised so the
    central 59 x 59 pixels sum to 1. Evaluation calls ``model(row, col, stampsz=size)``
    (crowdsource's ``x`` = row): the polynomial in ``(row/1000, col/1000)`` is centred on
    ``(rint(row), rint(col))``, shifted by the sub-pixel offset with a spline of order 4
    (``mode='nearest'``) and divided by the polynomial norm; the result is float64 (float32
    where crowdsource zero-pads a stamp to a larger ``size``). If crowdsource's shift wrapper
    cannot import the deprecated ``scipy.ndimage.interpolation`` namespace (SciPy >= 2), the
    same steps are done here through the model's ``render_model``/``norm`` methods. Calls
    from several Python threads at once are not supported (the deprecation warning is
    silenced with :class:`warnings.catch_warnings`, which is process-global);
    :func:`cloudcov.process_ccd` evaluates PSFs in its calling thread.

    Source: crowdsource ``psf.py`` (``VariablePixelizedPSF``, ``stamp2model``,
    ``linear_static_wing_from_record``); CloudCovErr.jl ``decam.jl`` (``load_psfmodel``).
    """

    def __init__(self, rec, filter=None, decoder="stamp", static_psf_dir=None, *, use="stamp",
                 rtol=1e-3, center=DECAM_CCD_CENTER):
        if decoder not in ("stamp", "params", "both"):
            raise ValueError(f"decoder: expected 'stamp', 'params' or 'both', got {decoder!r}")
        if use not in ("stamp", "params"):
            raise ValueError(f"use: expected 'stamp' or 'params', got {use!r}")
        if not (np.isfinite(rtol) and rtol > 0):
            raise ValueError(f"rtol: expected a positive number, got {rtol}")
        cspsf = _crowdsource_psf_module()
        fields, self.fits_order = _normalise_record(rec)
        self.decoder = decoder
        self.use = use if decoder == "both" else decoder
        self.filter = filter
        self.rtol = float(rtol)
        self.center = (float(center[0]), float(center[1]))
        self.offset = fields["offset"]
        res = fields.get("resparam")
        self.order = None if res is None else int(np.any(res[1:]))
        cp = fields.get("convparam")
        self.wing_dropped = None if cp is None else bool(cp.size > 4
                                                         and (cp.size < 10 or cp[9] == 0))
        self.stamp_model = self.params_model = None
        if decoder in ("stamp", "both"):
            self.stamp_model = cspsf.VariablePixelizedPSF(fields["stamp"],
                                                          normalize=CROWDSOURCE_NORMALIZE)
        if decoder in ("params", "both"):
            missing = {"convparam", "resparam"} - set(fields)
            if missing:
                raise ValueError(f"psf record: decoder {decoder!r} needs fields {sorted(missing)}")
            self.params_model = _params_model(cspsf, fields, filter, static_psf_dir)
        self.model = self.stamp_model if self.use == "stamp" else self.params_model
        self.max_rel_diff = float("nan")
        self.decoders_disagree = None
        if decoder == "both":
            self.max_rel_diff = self._compare()
            self.decoders_disagree = bool(self.max_rel_diff > self.rtol)
            if self.decoders_disagree:
                warnings.warn(
                    f"crowdsource PSF record: the 'stamp' and 'params' decoders differ by "
                    f"{self.max_rel_diff:.3g} of the peak at (row, col) = {self.center} "
                    f"(tolerance {self.rtol:g}; wing_dropped={self.wing_dropped}); using "
                    f"{self.use!r}", CloudCovWarning, stacklevel=2)

    def _compare(self):
        size = int(self.stamp_model.stamp.shape[-1])
        a = _call_crowdsource(self.stamp_model, *self.center, size)
        b = _call_crowdsource(self.params_model, *self.center, size)
        return float(np.max(np.abs(b - a)) / np.max(np.abs(a)))

    def __call__(self, row, col, size):
        """PSF stamp at ``(row, col)``.

        Parameters
        ----------
        row, col : float
            0-based position (crowdsource ``x``, ``y``), pixel centres at integers.
        size : int
            Odd stamp size; larger than the record's stamp means zero padding.

        Returns
        -------
        (size, size) ndarray of float64
            Centred on ``(rint(row), rint(col))``, indexed ``[row, col]``.
        """
        size = int(size)
        out = _call_crowdsource(self.model, row, col, size)
        if out.shape != (size, size) or not np.all(np.isfinite(out)):
            raise ValueError(f"psf: crowdsource record PSF gave shape {out.shape} (finite: "
                             f"{bool(np.all(np.isfinite(out)))}) for size {size} at "
                             f"(row, col) = ({row}, {col})")
        return out

    def __repr__(self):
        return (f"CrowdsourcePSF(decoder={self.decoder!r}, use={self.use!r}, "
                f"stamp={tuple(self.model.stamp.shape)}, order={self.order}, "
                f"wing_dropped={self.wing_dropped}, decoders_disagree={self.decoders_disagree})")


def _params_model(cspsf, fields, filter, static_psf_dir):
    """crowdsource's ``linear_static_wing_from_record`` with the static PSF found for it."""
    if not filter:
        raise ValueError("filter: the 'params' decoder needs the filter name of the static PSF "
                         "file psf_<filter>_deconv_mod.fits.gz")
    name = f"psf_{filter}_deconv_mod.fits.gz"
    root = Path(static_psf_dir) if static_psf_dir is not None else Path(
        os.environ.get("DECAM_DIR", ""))
    tmp = None
    if (root / "data" / "psfs" / name).is_file():
        pass
    elif static_psf_dir is not None and (root / name).is_file():
        # a plain folder of static PSFs: give crowdsource the layout it expects
        tmp = tempfile.mkdtemp(prefix="cloudcov_static_psf_")
        (Path(tmp) / "data" / "psfs").mkdir(parents=True)
        shutil.copyfile(root / name, Path(tmp) / "data" / "psfs" / name)
        root = Path(tmp)
    else:
        where = "static_psf_dir" if static_psf_dir is not None else "$DECAM_DIR"
        raise FileNotFoundError(
            f"static PSF {name} not found under {where} = {str(root)!r} (looked in "
            f"data/psfs/ and, for static_psf_dir, the folder itself); pass static_psf_dir or "
            f"use decoder='stamp'")
    rec = {k: fields[k] for k in ("offset", "convparam", "resparam")}
    try:
        with _DECAM_DIR_LOCK:
            old = os.environ.get("DECAM_DIR")
            os.environ["DECAM_DIR"] = str(root)
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", category=DeprecationWarning,
                                            message=r".*scipy\.ndimage\.(interpolation|filters)")
                    return cspsf.linear_static_wing_from_record(rec, filter=filter)
            finally:
                if old is None:
                    os.environ.pop("DECAM_DIR", None)
                else:
                    os.environ["DECAM_DIR"] = old
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def psf_from_crowdsource_record(rec, filter=None, decoder="stamp", static_psf_dir=None, **kw):
    """Turn a crowdsource PSF record into a callable ``psf(row, col, size)``.

    Shorthand for :class:`CrowdsourcePSF` (same parameters, attributes and errors).

    Parameters
    ----------
    rec : record-like
        crowdsource ``psf.serialize()`` record (DECaPS ``<CCD>_PSF`` row).
    filter : str, optional
        Static PSF filter name (``"params"``/``"both"`` decoders).
    decoder : {"stamp", "params", "both"}, optional
        Default ``"stamp"``.
    static_psf_dir : str or path-like, optional
        Static PSF location (default ``$DECAM_DIR``).
    **kw
        ``use``, ``rtol``, ``center`` of :class:`CrowdsourcePSF`.

    Returns
    -------
    CrowdsourcePSF

    Examples
    --------
    >>> from astropy.io import fits  # doctest: +SKIP
    >>> with fits.open("c4d_..._ooi_g_v1.cat.fits") as f:  # doctest: +SKIP
    ...     psf = psf_from_crowdsource_record(f["N4_PSF"].data[0])
    >>> psf(2047.3, 1023.0, 33).shape  # doctest: +SKIP
    (33, 33)
    """
    return CrowdsourcePSF(rec, filter=filter, decoder=decoder, static_psf_dir=static_psf_dir,
                          **kw)


def _is_model(obj):
    """Whether ``obj`` is an astropy model (without importing astropy.modeling needlessly)."""
    import sys

    mod = sys.modules.get("astropy.modeling")
    return mod is not None and isinstance(obj, mod.Model)


def as_psf_model(psf):
    """Turn a PSF input into a callable ``psf(row, col, size) -> (size, size)`` float64 array.

    Parameters
    ----------
    psf : ndarray, astropy/photutils model, callable, crowdsource PSF object or record
        A stamp (see :class:`StampPSF`), a photutils PSF model or astropy 2-D model (see
        :class:`ModelPSF`, evaluated on the pixel grid at any stamp size), a callable (see
        :class:`CallablePSF`), a
        crowdsource PSF object (``crowdsource.psf`` models are called as
        ``psf(row, col, stampsz=size)``; rows are crowdsource's ``x``), or a crowdsource
        ``serialize()`` record with fields ``offset`` and ``stamp`` (DECaPS ``<CCD>_PSF``),
        decoded with :class:`CrowdsourcePSF` defaults (``decoder="stamp"``).

    Returns
    -------
    callable

    Raises
    ------
    TypeError, ValueError
        Unsupported or invalid PSF.
    ImportError
        A crowdsource record was given and crowdsourcephoto is not installed.
    """
    if isinstance(psf, (StampPSF, CallablePSF, CrowdsourcePSF, ModelPSF)):
        return psf
    if _is_model(psf):
        return ModelPSF(psf)
    if is_crowdsource_record(psf):
        return CrowdsourcePSF(psf)
    if isinstance(psf, np.ndarray):
        return StampPSF(psf)
    if type(psf).__module__.startswith("crowdsource"):
        return CallablePSF(lambda r, c, size: _call_crowdsource(psf, r, c, size))
    return CallablePSF(psf)
