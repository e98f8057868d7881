"""DECam Community Pipeline (CP) products: ``ooi`` image, ``oow`` inverse variance, ``ood``
data quality; plain FITS or fpack ``.fits.fz``, one extension per CCD (``S1..S31``,
``N1..N31``).

Arrays are numpy ``[row, col]`` (FITS NAXIS2, NAXIS1), native byte order. Mirrors
CloudCovErr.jl ``read_decam`` and ``inject_rename`` (src/decam.jl) and crowdsource's
``decaps_filenames``, ``read_data`` and ``correct_sky_offset`` (decam_proc.py).
"""
from __future__ import annotations

import logging
import os
import pathlib
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import CloudCovWarning
from ._files import InputFileError, open_fits, read_image_hdu

__all__ = [
    "DecamCCD", "decam_filenames", "inject_rename", "read_decam", "read_decam_image",
    "read_decam_dq", "read_decam_ivar", "read_primary_header", "correct_s7", "s7_weight",
    "badpix_mask",
]

log = logging.getLogger("cloudcov")

#: DQ code written where the image is NaN/inf but the ``ood`` says the pixel is fine.
NODATA_CODE = 2


def decam_filenames(base, date, filt, vers, ccd=None):
    """File names of one DECam exposure, as CloudCovErr.jl ``read_decam`` builds them.

    Parameters
    ----------
    base : str or path-like
        Directory and file-name prefix, concatenated as in CloudCovErr.jl (e.g.
        ``"/n/fink2/decaps/c4d_"``). An existing directory (or a string ending in ``/``) is
        taken as that directory with the prefix ``c4d_``.
    date : str
        Exposure date-time ``YYMMDD_HHMMSS`` (e.g. ``"170119_085651"``).
    filt : str
        Filter (``"g"``, ``"r"``, ``"i"``, ``"z"``, ``"Y"``).
    vers : str
        CP version tag (``"v1"``).
    ccd : str, optional
        CCD name; a name ending in ``I`` (injection test, e.g. ``"N7I"``) maps the files
        with :func:`inject_rename`.

    Returns
    -------
    dict
        ``ooi``, ``oow``, ``ood``: ``<base><date>_<kind>_<filt>_<vers>.fits.fz`` as
        ``pathlib.Path``.
    """
    prefix = _prefix(base)
    out = {kind: pathlib.Path(f"{prefix}{date}_{kind}_{filt}_{vers}.fits.fz")
           for kind in ("ooi", "oow", "ood")}
    if ccd is not None and str(ccd).endswith("I"):
        out = {k: inject_rename(v) for k, v in out.items()}
    return out


def _prefix(base):
    base = os.fspath(base)
    if base.endswith(os.sep) or os.path.isdir(base):
        return os.path.join(base, "c4d_")
    return base


def inject_rename(path):
    """Injection-test file of an exposure file (CloudCovErr.jl ``inject_rename``).

    ``<dir>/<parent>/<name>.fits.fz`` becomes ``<dir>/decapsi/<name>.I.fits.fz``.

    Parameters
    ----------
    path : str or path-like
        An exposure file ending in ``.fits.fz``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If ``path`` does not end in ``.fits.fz``.
    """
    p = pathlib.Path(path)
    if not p.name.endswith(".fits.fz"):
        raise ValueError(f"inject_rename: expected a .fits.fz file, got {p}")
    name = p.name[: -len("fits.fz")] + "I.fits.fz"
    return p.parent.parent / "decapsi" / name


@dataclass
class DecamCCD:
    """One CCD of a DECam CP exposure.

    Attributes
    ----------
    ccd : str
        Extension name.
    image : (nrow, ncol) ndarray of float32
        ``ooi`` in ADU (S7 optionally amplifier-corrected, see :func:`read_decam`).
    dq : (nrow, ncol) ndarray of int32
        ``ood`` codes (0 = good); NaN/inf image pixels with code 0 get code 2 (no data).
    ivar : (nrow, ncol) ndarray of float32 or None
        ``oow`` inverse variance (ADU^-2), trimmed to the image shape, non-finite values 0.
    header : astropy.io.fits.Header
        The CCD's ``ooi`` header (``CCDNUM``, ``FWHM``, WCS...).
    primary_header : astropy.io.fits.Header
        The ``ooi`` primary header (``EXPNUM``, ``PLVER``, ``FILTER``, ``MJD-OBS``...).
    files : dict
        The files read (``ooi``, ``ood`` and maybe ``oow``) as strings.
    s7_correction : tuple of float or None
        ``(offset, slope)`` removed from the right half of S7, when applied.
    """

    ccd: str
    image: np.ndarray
    dq: np.ndarray
    ivar: np.ndarray | None
    header: object
    primary_header: object
    files: dict = field(default_factory=dict)
    s7_correction: tuple | None = None

    @property
    def expnum(self):
        """Exposure number (int; the CP sometimes stores ``EXPNUM`` as a string), or None."""
        v = self.primary_header.get("EXPNUM")
        try:
            return int(str(v).strip())
        except (TypeError, ValueError):
            return None

    @property
    def plver(self):
        """CP pipeline version (``PLVER``), or None."""
        return self.primary_header.get("PLVER")


def read_primary_header(path, kind="ooi"):
    """Primary header of a CP (or crowdsource) file.

    Parameters
    ----------
    path : str or path-like
    kind : str, optional
        For error messages.

    Returns
    -------
    astropy.io.fits.Header

    Raises
    ------
    FileNotFoundError, InputFileError
    """
    with open_fits(path, kind) as hdul:
        return hdul[0].header.copy()


def read_decam_image(path, ccd):
    """Read one CCD of an ``ooi`` file.

    Parameters
    ----------
    path : str or path-like
        ``ooi`` file (plain or ``.fits.fz``).
    ccd : str
        Extension name (``"S6"``).

    Returns
    -------
    image : (nrow, ncol) ndarray of float32
        ADU, NaN kept.
    header : astropy.io.fits.Header

    Raises
    ------
    FileNotFoundError, InputFileError
    """
    return read_image_hdu(path, ccd, "ooi image", dtype=np.float32)


def read_decam_dq(path, ccd):
    """Read one CCD of an ``ood`` data-quality file.

    Parameters
    ----------
    path : str or path-like
        ``ood`` file (plain or ``.fits.fz``).
    ccd : str
        Extension name.

    Returns
    -------
    dq : (nrow, ncol) ndarray of int32
        CP codes (PLVER >= 3.5) or bitmask (older; see :func:`cloudcov.flags.cp_dq_codes`);
        cloudcov masks every nonzero pixel, as CloudCovErr.jl does.
    header : astropy.io.fits.Header

    Raises
    ------
    FileNotFoundError, InputFileError
        Also when the extension holds floats.
    """
    dq, hdr = read_image_hdu(path, ccd, "ood data quality")
    if dq.dtype.kind not in "iub":
        raise InputFileError(path, ccd, f"ood data quality: expected integers, got {dq.dtype}")
    return dq.astype(np.int32), hdr


def read_decam_ivar(path, ccd, shape=None):
    """Read one CCD of an ``oow`` inverse-variance file.

    Parameters
    ----------
    path : str or path-like
        ``oow`` file.
    ccd : str
        Extension name.
    shape : (int, int), optional
        Image shape. Some CP versions write ``oow`` 2 px larger than ``ooi`` in both axes
        (legacypipe ``read_invvar``); such arrays are trimmed by 1 px on every side.

    Returns
    -------
    ivar : (nrow, ncol) ndarray of float32
        ADU^-2; NaN/inf set to 0 (no weight, as crowdsource).
    header : astropy.io.fits.Header

    Raises
    ------
    FileNotFoundError, InputFileError
        Also when the shape is neither ``shape`` nor 2 px larger.
    """
    iv, hdr = read_image_hdu(path, ccd, "oow inverse variance", dtype=np.float32)
    if shape is not None and iv.shape != tuple(shape):
        if iv.shape == (shape[0] + 2, shape[1] + 2):
            iv = np.ascontiguousarray(iv[1:-1, 1:-1])
        else:
            raise InputFileError(path, ccd, f"oow inverse variance: shape {iv.shape} does not "
                                 f"match the image shape {tuple(shape)}")
    iv[~np.isfinite(iv)] = 0.0
    return iv, hdr


def badpix_mask(ccd, path=None):
    """crowdsource's static bad-pixel mask of one CCD, if available.

    Parameters
    ----------
    ccd : str
        CCD name (an injection suffix ``I`` is dropped).
    path : str or path-like, optional
        ``badpixmasksefs_comp.fits``; default ``$DECAM_DIR/data/badpixmasksefs_comp.fits``.

    Returns
    -------
    (nrow, ncol) ndarray of bool or None
        True on bad pixels; None when no file is found.

    Raises
    ------
    InputFileError
        The file exists but lacks the CCD.
    """
    if path is None:
        root = os.environ.get("DECAM_DIR")
        if not root:
            return None
        path = pathlib.Path(root) / "data" / "badpixmasksefs_comp.fits"
    if not os.path.exists(path):
        return None
    name = ccd[: ccd.index("I")] if "I" in ccd else ccd
    data, _ = read_image_hdu(path, name, "static bad-pixel mask")
    return data != 0


def s7_weight(ivar, dq, badpix=None, wcutoff=0.0):
    """Weights used to fit the S7 amplifier offset, as crowdsource's ``read_data``.

    Parameters
    ----------
    ivar : (nrow, ncol) ndarray
        Inverse variance (``oow``).
    dq : (nrow, ncol) ndarray of int
        CP DQ codes (PLVER >= 3.5).
    badpix : (nrow, ncol) ndarray of bool, optional
        Static bad-pixel mask (:func:`badpix_mask`).
    wcutoff : float, optional
        Inverse variances below it get no weight (crowdsource default 0).

    Returns
    -------
    (nrow, ncol) ndarray of float32
        ``sqrt(ivar)``, zero where the DQ code is not 0 or 7, where ``ivar < wcutoff`` or
        not finite, and on static bad pixels.
    """
    ivar = np.asarray(ivar, dtype=np.float32)
    dqbits = np.left_shift(np.int64(1), np.clip(np.asarray(dq, np.int64), 0, 62))
    zero = ((dqbits & ~(2**0 | 2**7)) != 0) | ~np.isfinite(ivar)
    with np.errstate(invalid="ignore"):
        zero |= ivar < wcutoff
    if badpix is not None:
        zero |= badpix
    w = np.where(zero, np.float32(0), ivar)
    return np.sqrt(np.maximum(w, 0), dtype=np.float32)


def correct_s7(image, weight=None, bdy=10, damp=5.0):
    """Remove the floating amplifier offset of the right half of CCD S7.

    Fits ``delta = offset + slope * (row - median row)`` to the difference of the 10 columns
    on each side of the amplifier boundary (mirrored about it) with a damped least-squares
    loss, and subtracts it from the right half. Same model, loss, start and solver as
    crowdsource's ``correct_sky_offset`` (decam_proc.py), which CloudCovErr.jl calls through
    ``read_data(..., corrects7=true)`` in ``read_decam``.

    Parameters
    ----------
    image : (nrow, ncol) ndarray
        S7 image (ADU); not modified.
    weight : (nrow, ncol) ndarray, optional
        Per-pixel weights (crowdsource: ``sqrt(ivar)`` with bad pixels 0, see
        :func:`s7_weight`); default 10 everywhere, crowdsource's default.
    bdy : int, optional
        Columns used on each side of the boundary (default 10).
    damp : float, optional
        Damping scale of the loss (default 5).

    Returns
    -------
    corrected : (nrow, ncol) ndarray of float32
    params : (float, float) or None
        ``(offset, slope)`` in ADU and ADU/row; None when no pixel pair has weight (the image
        is returned unchanged).

    Notes
    -----
    Pixels where the image is NaN/inf get zero weight here (crowdsource would propagate the
    NaN into the fit).
    """
    from scipy.optimize import leastsq

    im = np.array(image, dtype=np.float32, copy=True)
    nrow, ncol = im.shape
    xx = np.arange(nrow, dtype=np.float32)
    xx -= np.median(xx)
    xx = xx.reshape(-1, 1)
    w = np.full(im.shape, 10, np.float32) if weight is None else np.asarray(weight, np.float32)
    w = np.where(np.isfinite(im), w, np.float32(0))
    half = ncol // 2
    right = np.s_[:, half + bdy:half:-1]
    left = np.s_[:, half - bdy:half]
    use = (w[right] > 0) & (w[left] > 0)
    if not use.any():
        return im, None
    delta = im[right] - im[left]
    wmin = np.minimum(w[right], w[left])

    def damped(par):
        chi = ((delta - par[0] - par[1] * xx) * wmin)[use]
        return 2 * damp * np.sign(chi) * (np.sqrt(1 + np.abs(chi) / damp) - 1)

    par = leastsq(damped, [np.median(delta[use]), 0.0])[0]
    im[:, half:] -= par[0] + par[1] * xx
    return im, (float(par[0]), float(par[1]))


def read_decam(ooi, ood, ccd, *, oow=None, corrects7=False, badpix=None):
    """Read the image, data quality and (optionally) inverse variance of one DECam CCD.

    Parameters
    ----------
    ooi, ood : str or path-like
        CP image and data-quality files (plain or fpack ``.fits.fz``).
    ccd : str
        Extension name (``"S6"``, ``"N10"``, injection ``"N7I"``).
    oow : str or path-like, optional
        CP inverse-variance file; needed for ``corrects7`` on S7.
    corrects7 : bool, optional
        Remove the S7 amplifier offset (:func:`correct_s7`) when ``ccd`` starts with ``S7``
        (default False, as ``decaps2.jl`` without ``--cS7``).
    badpix : str, path-like, ndarray or None, optional
        Static bad-pixel mask for the S7 weights: a ``badpixmasksefs_comp.fits`` path, a
        boolean array, or None for ``$DECAM_DIR/data/badpixmasksefs_comp.fits`` when it
        exists (otherwise the weights come from ``oow``/``ood`` alone, with a warning).

    Returns
    -------
    DecamCCD

    Raises
    ------
    FileNotFoundError, InputFileError
        Missing files or extensions, non-image extensions, shape mismatches (the message
        names the file and the extension).
    ValueError
        ``corrects7`` on S7 without ``oow``.

    Warns
    -----
    CloudCovWarning
        NaN/inf image pixels with DQ 0 (given DQ code 2); S7 correction without a static
        bad-pixel mask.

    Notes
    -----
    Mirrors CloudCovErr.jl ``read_decam`` (src/decam.jl), which returns the image and the DQ
    and re-reads S7 through crowdsource's ``read_data`` for the amplifier correction.
    """
    image, hdr = read_decam_image(ooi, ccd)
    dq, _ = read_decam_dq(ood, ccd)
    if dq.shape != image.shape:
        raise InputFileError(ood, ccd, f"ood data quality: shape {dq.shape} does not match the "
                             f"ooi image {os.fspath(ooi)}[{ccd}] shape {image.shape}")
    prim = read_primary_header(ooi)
    files = {"ooi": os.fspath(ooi), "ood": os.fspath(ood)}
    ivar = None
    if oow is not None:
        ivar, _ = read_decam_ivar(oow, ccd, image.shape)
        files["oow"] = os.fspath(oow)
    nonfin = ~np.isfinite(image) & (dq == 0)
    if nonfin.any():
        warnings.warn(f"{os.fspath(ooi)}[{ccd}]: {int(nonfin.sum())} NaN/inf pixels with DQ 0; "
                      f"flagged with DQ code {NODATA_CODE} (no data)", CloudCovWarning,
                      stacklevel=2)
        dq[nonfin] = NODATA_CODE
    s7 = None
    if corrects7 and ccd.upper().startswith("S7"):
        if ivar is None:
            raise ValueError(f"{ccd}: the S7 correction needs the oow (inverse variance) file")
        if isinstance(badpix, np.ndarray):
            bp = badpix.astype(bool)
        else:
            bp = badpix_mask(ccd, badpix)
        if bp is None:
            warnings.warn(f"{ccd}: no static bad-pixel mask ($DECAM_DIR/data/"
                          "badpixmasksefs_comp.fits); S7 correction weights use oow/ood only",
                          CloudCovWarning, stacklevel=2)
        elif bp.shape != image.shape:
            raise InputFileError(badpix if badpix is not None else "badpixmasksefs_comp.fits",
                                 ccd, f"static bad-pixel mask shape {bp.shape} != image shape "
                                 f"{image.shape}")
        from ..flags import cp_dq_codes

        codes = cp_dq_codes(dq, prim.get("PLVER", "V99"))
        image, s7 = correct_s7(image, s7_weight(ivar, codes, bp))
        log.info("%s: S7 amplifier correction offset %.3f ADU, slope %.3g ADU/row", ccd,
                 *(s7 if s7 else (0.0, 0.0)))
    return DecamCCD(ccd, image, dq, ivar, hdr, prim, files, s7)
