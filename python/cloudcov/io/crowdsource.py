"""crowdsource outputs for DECam: the catalogue file (``<CCD>_HDR``, ``<CCD>_PSF``,
``<CCD>_CAT``) and the model file (``<CCD>_MOD``, ``<CCD>_SKY``), and :func:`read_ccd`, which
gathers everything :func:`cloudcov.process_ccd` needs for one CCD.

crowdsource's catalogue ``x`` is the row (numpy axis 0, FITS NAXIS2) and ``y`` the column,
both 0-based with pixel centres at integers: cloudcov's native convention, so no conversion
is made. Mirrors CloudCovErr.jl ``read_crowdsource``, ``load_psfmodel_cs`` and
``get_catnames`` (src/decam.jl), which convert to Julia's 1-based transposed arrays instead.
"""
from __future__ import annotations

import os
import pathlib
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from ..errors import CloudCovWarning
from ._files import (InputFileError, get_hdu, native, open_fits, read_image_hdu,
                     truncation_problem)
from .decam import read_decam

__all__ = [
    "CCDInputs", "crowdsource_filenames", "crowdsource_ccds", "read_crowdsource_catalog",
    "read_crowdsource_header", "crowdsource_gain", "read_crowdsource_psf",
    "read_crowdsource_model", "read_ccd",
]

#: Catalogue columns that process_ccd needs.
REQUIRED_COLUMNS = ("x", "y", "flux")


def crowdsource_filenames(basecat, date, filt, vers):
    """crowdsource file names of one exposure, as CloudCovErr.jl ``read_crowdsource``.

    Parameters
    ----------
    basecat : str or path-like
        Directory holding the ``cat/`` and ``mod/`` folders.
    date, filt, vers : str
        Exposure date-time ``YYMMDD_HHMMSS``, filter and CP version tag.

    Returns
    -------
    dict
        ``cat``: ``<basecat>/cat/c4d_<date>_ooi_<filt>_<vers>.cat.fits``; ``mod``:
        ``<basecat>/mod/c4d_<date>_ooi_<filt>_<vers>.mod.fits`` (``pathlib.Path``).
    """
    stem = f"c4d_{date}_ooi_{filt}_{vers}"
    base = pathlib.Path(basecat)
    return {"cat": base / "cat" / f"{stem}.cat.fits", "mod": base / "mod" / f"{stem}.mod.fits"}


def crowdsource_ccds(cat_path):
    """CCDs with a catalogue (``<CCD>_CAT`` extension), in file order.

    Parameters
    ----------
    cat_path : str or path-like
        crowdsource catalogue file.

    Returns
    -------
    list of str
        CCD names (``"S6"``, ``"N7I"``). CCDs whose crowdsource fit failed have no
        extension and are not listed.

    Raises
    ------
    FileNotFoundError, InputFileError

    Notes
    -----
    Mirrors CloudCovErr.jl ``get_catnames``.
    """
    with open_fits(cat_path, "crowdsource catalogue") as hdul:
        names = [hdu.name for hdu in hdul]
        why = truncation_problem(cat_path, hdul)
    if why:     # a cut file would silently drop the CCDs after the cut
        raise InputFileError(cat_path, None, f"crowdsource catalogue: {why}")
    return [n[:-4] for n in names if n.upper().endswith("_CAT") and len(n) > 4]


def read_crowdsource_catalog(cat_path, ccd, *, required=REQUIRED_COLUMNS):
    """Read the ``<CCD>_CAT`` table of a crowdsource catalogue file.

    Parameters
    ----------
    cat_path : str or path-like
        crowdsource catalogue file.
    ccd : str
        CCD name.
    required : sequence of str, optional
        Columns that must be present and finite (default ``x``, ``y``, ``flux``).

    Returns
    -------
    astropy.table.Table
        Every column in file order and in native byte order; crowdsource dtypes (``x``,
        ``y``, ``ra``, ``dec`` float64; ``flags`` int32 with the sign bit; ``decapsid``
        int64; most others float32). ``x`` = row, ``y`` = column, 0-based.

    Raises
    ------
    FileNotFoundError, InputFileError
        Missing file or extension, not a table, missing or non-finite required column (the
        message names the file and the extension).
    """
    ext = f"{ccd}_CAT"
    with open_fits(cat_path, "crowdsource catalogue") as hdul:
        hdu = get_hdu(hdul, cat_path, ext, "crowdsource catalogue")
        if not hasattr(hdu, "columns"):
            raise InputFileError(cat_path, ext, "crowdsource catalogue: not a table extension")
        try:
            data = hdu.data
        except Exception as exc:
            raise InputFileError(cat_path, ext, f"cannot read the table ({exc})") from exc
        names = list(hdu.columns.names)
        if data is None:
            cols = {n: np.zeros(0, dtype=native(np.zeros(0, hdu.columns[n].dtype)).dtype)
                    for n in names}
        else:
            cols = {n: native(np.asarray(data[n])) for n in names}
    table = Table(cols, names=names) if names else Table()
    for name in required:
        if name not in table.colnames:
            raise InputFileError(cat_path, ext, f"crowdsource catalogue: missing column "
                                 f"'{name}' (have {table.colnames})")
        a = np.asarray(table[name])
        if a.dtype.kind not in "fiu" or a.ndim != 1:
            raise InputFileError(cat_path, ext, f"column '{name}': expected a numeric column, "
                                 f"got dtype {a.dtype} shape {a.shape}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise InputFileError(cat_path, ext, f"column '{name}': "
                                 f"{int(np.sum(~np.isfinite(a)))} NaN/inf values")
    return table


def read_crowdsource_header(cat_path, ccd):
    """The ``<CCD>_HDR`` header (CCD header plus ``GAINCRWD``, ``SKYCRWD``, ``FWHMCRWD``).

    Parameters
    ----------
    cat_path : str or path-like
    ccd : str

    Returns
    -------
    astropy.io.fits.Header

    Raises
    ------
    FileNotFoundError, InputFileError
    """
    ext = f"{ccd}_HDR"
    with open_fits(cat_path, "crowdsource catalogue") as hdul:
        return get_hdu(hdul, cat_path, ext, "crowdsource catalogue").header.copy()


def crowdsource_gain(header, path="<header>", ccd=None):
    """Gain (e-/ADU) from crowdsource's ``GAINCRWD`` card.

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping
        The ``<CCD>_HDR`` header.
    path, ccd : str, optional
        File and CCD, for messages.

    Returns
    -------
    float
        ``|GAINCRWD|``.

    Raises
    ------
    InputFileError
        Missing, non-numeric, zero or non-finite ``GAINCRWD``.

    Warns
    -----
    CloudCovWarning
        Negative ``GAINCRWD`` (its absolute value is used, as CloudCovErr.jl does).
    """
    ext = f"{ccd}_HDR" if ccd else None
    if "GAINCRWD" not in header:
        raise InputFileError(path, ext, "no GAINCRWD card (crowdsource gain)")
    try:
        gain = float(header["GAINCRWD"])
    except (TypeError, ValueError):
        raise InputFileError(path, ext, f"GAINCRWD is not a number: {header['GAINCRWD']!r}") from None
    if not np.isfinite(gain) or gain == 0:
        raise InputFileError(path, ext, f"GAINCRWD = {gain}: expected a finite nonzero gain")
    if gain < 0:
        warnings.warn(f"{path}[{ext}]: GAINCRWD = {gain} is negative; do not trust this "
                      "exposure's input. Using |gain| as CloudCovErr.jl does",
                      CloudCovWarning, stacklevel=2)
        gain = abs(gain)
    return gain


def read_crowdsource_psf(cat_path, ccd, *, decoder="stamp", filter=None, static_psf_dir=None,
                         center=None):
    """Decode the ``<CCD>_PSF`` record into a callable PSF.

    Parameters
    ----------
    cat_path : str or path-like
    ccd : str
    decoder : {"stamp", "params", "both"}, optional
        See :class:`cloudcov.psf.CrowdsourcePSF` (default ``"stamp"``; ``"params"`` rebuilds
        the PSF from the static DECam PSF as CloudCovErr.jl ``load_psfmodel_cs``).
    filter : str, optional
        Filter of the static PSF (``"params"``/``"both"``); default: first letter of the
        primary header's ``FILTER``.
    static_psf_dir : str or path-like, optional
        Where ``psf_<filter>_deconv_mod.fits.gz`` is (default ``$DECAM_DIR``).
    center : (float, float), optional
        ``(row, col)`` where ``"both"`` compares the decoders (default: a DECam CCD centre).

    Returns
    -------
    cloudcov.psf.CrowdsourcePSF
        ``psf(row, col, size)`` with crowdsource's ``x`` = row.

    Raises
    ------
    FileNotFoundError, InputFileError
        Missing file or extension, or a record that cannot be decoded.
    ImportError
        crowdsourcephoto is not installed.
    """
    from ..psf import DECAM_CCD_CENTER, CrowdsourcePSF

    ext = f"{ccd}_PSF"
    with open_fits(cat_path, "crowdsource catalogue") as hdul:
        hdu = get_hdu(hdul, cat_path, ext, "crowdsource PSF")
        try:
            rec = np.array(hdu.data)
        except Exception as exc:
            raise InputFileError(cat_path, ext, f"cannot read the PSF record ({exc})") from exc
        prim_filter = str(hdul[0].header.get("FILTER", "")).strip()
    if filter is None and decoder != "stamp":
        filter = prim_filter[:1] or None
    try:
        return CrowdsourcePSF(rec, filter=filter, decoder=decoder, static_psf_dir=static_psf_dir,
                              center=DECAM_CCD_CENTER if center is None else center)
    except (ValueError, TypeError) as exc:
        raise InputFileError(cat_path, ext, f"cannot decode the crowdsource PSF record: {exc}") from exc


def read_crowdsource_model(mod_path, ccd, shape=None, image_ref="the image"):
    """Read the model (stars + sky) and sky images of one CCD.

    Parameters
    ----------
    mod_path : str or path-like
        crowdsource model file (``.mod.fits``; CompImageHDUs, lossy-quantised by crowdsource).
    ccd : str
    shape : (int, int), optional
        Expected shape (the image's); default: the two must agree with each other.
    image_ref : str, optional
        How to name the image in shape errors (e.g. ``"ooi.fits.fz[S6]"``).

    Returns
    -------
    model, sky : (nrow, ncol) ndarray of float32
        ``<CCD>_MOD`` and ``<CCD>_SKY`` (ADU).

    Raises
    ------
    FileNotFoundError, InputFileError
        Missing file or extensions, or different shapes.
    """
    out = []
    for ext, kind in ((f"{ccd}_MOD", "crowdsource model"), (f"{ccd}_SKY", "crowdsource sky")):
        a, _ = read_image_hdu(mod_path, ext, kind, dtype=np.float32)
        if shape is None:
            shape, image_ref = a.shape, f"{ccd}_MOD"
        elif a.shape != tuple(shape):
            raise InputFileError(mod_path, ext, f"{kind} shape {a.shape} does not match "
                                 f"{image_ref} shape {tuple(shape)}")
        out.append(a)
    return out[0], out[1]


@dataclass
class CCDInputs:
    """Everything :func:`cloudcov.process_ccd` needs for one CCD (from :func:`read_ccd`).

    Attributes
    ----------
    ccd : str
    image : (nrow, ncol) ndarray of float32
        ``ooi`` (ADU).
    dq : (nrow, ncol) ndarray of int32
        ``ood`` (nonzero = masked).
    model, sky : (nrow, ncol) ndarray of float32
        crowdsource ``<CCD>_MOD`` and ``<CCD>_SKY``.
    catalog : astropy.table.Table
        crowdsource ``<CCD>_CAT`` (``x`` = row, ``y`` = column, 0-based).
    psf : cloudcov.psf.CrowdsourcePSF or None
        Decoded ``<CCD>_PSF`` (None for an empty catalogue without a PSF record).
    gain : float
        ``|GAINCRWD|`` (e-/ADU).
    ivar : ndarray or None
        ``oow`` when read.
    header : astropy.io.fits.Header
        The CCD's ``ooi`` header.
    cat_header : astropy.io.fits.Header
        ``<CCD>_HDR``.
    primary_header : astropy.io.fits.Header
        ``ooi`` primary header.
    files : dict
        Paths read (``ooi``, ``ood``, ``oow``, ``cat``, ``mod``) as strings.
    s7_correction : tuple or None
        ``(offset, slope)`` removed from S7, when applied.
    """

    ccd: str
    image: np.ndarray
    dq: np.ndarray
    model: np.ndarray
    sky: np.ndarray
    catalog: Table
    psf: object
    gain: float
    ivar: np.ndarray | None = None
    header: object = None
    cat_header: object = None
    primary_header: object = None
    files: dict = field(default_factory=dict)
    s7_correction: tuple | None = None

    def process_args(self):
        """Positional arguments of :func:`cloudcov.process_ccd`.

        Returns
        -------
        tuple
            ``(image, model, sky, catalog, psf, gain, dq)``.
        """
        psf = self.psf if self.psf is not None else np.ones((1, 1))
        return (self.image, self.model, self.sky, self.catalog, psf, self.gain, self.dq)


def read_ccd(ccd, *, ooi, ood, cat, mod, oow=None, corrects7=False, psf_decoder="stamp",
             filter=None, static_psf_dir=None, badpix=None):
    """Read one CCD's DECam images and crowdsource outputs, checking they fit together.

    Parameters
    ----------
    ccd : str
        CCD name (extension ``ccd`` in the CP files, ``<ccd>_CAT/_HDR/_PSF`` in ``cat``,
        ``<ccd>_MOD/_SKY`` in ``mod``).
    ooi, ood : str or path-like
        CP image and data-quality files.
    cat, mod : str or path-like
        crowdsource catalogue and model files.
    oow : str or path-like, optional
        CP inverse-variance file (needed for ``corrects7`` on S7).
    corrects7 : bool, optional
        S7 amplifier correction (see :func:`cloudcov.io.decam.read_decam`).
    psf_decoder, filter, static_psf_dir
        See :func:`read_crowdsource_psf`.
    badpix : optional
        Static bad-pixel mask for the S7 correction (see :func:`~cloudcov.io.decam.read_decam`).

    Returns
    -------
    CCDInputs
        ``process_ccd(*inputs.process_args(), ...)`` runs the afterburner.

    Raises
    ------
    FileNotFoundError
        A file is missing (the message names it).
    InputFileError
        A missing extension, a table without ``x``/``y``/``flux``, a bad ``GAINCRWD``, or
        arrays of different shapes (image vs model/sky/dq); the message names the file and
        the extension.

    Warns
    -----
    CloudCovWarning
        Negative ``GAINCRWD``; NaN image pixels with DQ 0.

    Notes
    -----
    Mirrors CloudCovErr.jl ``read_decam`` + ``read_crowdsource`` + ``load_psfmodel_cs``
    (src/decam.jl) without their index conversions: arrays stay ``[row, col]`` and the
    catalogue keeps crowdsource's 0-based ``x`` = row.
    """
    dec = read_decam(ooi, ood, ccd, oow=oow, corrects7=corrects7, badpix=badpix)
    table = read_crowdsource_catalog(cat, ccd)
    cat_header = read_crowdsource_header(cat, ccd)
    gain = crowdsource_gain(cat_header, os.fspath(cat), ccd)
    model, sky = read_crowdsource_model(mod, ccd, shape=dec.image.shape,
                                        image_ref=f"{os.fspath(ooi)}[{ccd}]")
    psf = None
    if len(table) > 0 or _has_ext(cat, f"{ccd}_PSF"):
        center = (dec.image.shape[0] // 2, dec.image.shape[1] // 2)
        psf = read_crowdsource_psf(cat, ccd, decoder=psf_decoder, filter=filter,
                                   static_psf_dir=static_psf_dir, center=center)
    files = dict(dec.files, cat=os.fspath(cat), mod=os.fspath(mod))
    return CCDInputs(ccd, dec.image, dec.dq, model, sky, table, psf, gain, dec.ivar, dec.header,
                     cat_header, dec.primary_header, files, dec.s7_correction)


def _has_ext(path, ext):
    with open_fits(path, "crowdsource catalogue") as hdul:
        return ext.upper() in [h.name.upper() for h in hdul]
