"""Inputs of :func:`cloudcov.process_ccd` from any pipeline's FITS products.

Used by ``cloudcov ccd --image ... --model ... --sky ... --cat ... --psf ... --gain ...``.
"""
from __future__ import annotations

import os
import re

import numpy as np

from ._files import InputFileError, read_image_hdu
from .tables import read_catalog

__all__ = ["split_ext", "read_image_spec", "read_generic_inputs"]

_EXT = re.compile(r"^(?P<path>.+?)\[(?P<ext>[^\[\]]+)\]$")


def split_ext(spec):
    """Split ``"file.fits[EXT]"`` (cfitsio's extension syntax) into ``(path, ext)``.

    Parameters
    ----------
    spec : str or path-like
        A path, optionally followed by ``[NAME]`` or ``[INDEX]``.

    Returns
    -------
    path : str
    ext : str, int or None
        Extension name, index (digits) or None when absent.

    Examples
    --------
    >>> split_ext("c4d_ooi.fits.fz[S6]")
    ('c4d_ooi.fits.fz', 'S6')
    >>> split_ext("model.fits[1]")
    ('model.fits', 1)
    >>> split_ext("psf.fits")
    ('psf.fits', None)
    """
    spec = os.fspath(spec)
    m = _EXT.match(spec)
    if m is None or os.path.exists(spec):
        return spec, None
    ext = m.group("ext").strip()
    return m.group("path"), int(ext) if ext.isdigit() else ext


def read_image_spec(spec, kind, *, dtype=np.float64):
    """Read a 2-D image given as ``file.fits[EXT]``.

    Parameters
    ----------
    spec : str or path-like
        FITS file and optional extension (default: the first HDU holding a 2-D image).
    kind : str
        What it is (``"image"``, ``"model"``), for error messages.
    dtype : numpy dtype, optional
        Output dtype (default float64).

    Returns
    -------
    data : (nrow, ncol) ndarray
        Indexed ``[row, col]`` (FITS NAXIS2, NAXIS1).
    header : astropy.io.fits.Header

    Raises
    ------
    FileNotFoundError, InputFileError
        Missing file or extension, or no 2-D image (the message names file and extension).
    """
    from ._files import open_fits

    path, ext = split_ext(spec)
    if ext is None:
        with open_fits(path, kind) as hdul:
            ext = next((i for i, h in enumerate(hdul)
                        if getattr(h, "is_image", False) and h.header.get("NAXIS", 0) == 2), None)
        if ext is None:
            raise InputFileError(path, None, f"{kind}: no 2-D image extension")
    return read_image_hdu(path, ext, kind, dtype=dtype)


def read_generic_inputs(image, model, cat, psf, gain, *, sky=None, dq=None, convention=None,
                        x=None, y=None, flux=None, origin=0):
    """Read the inputs of :func:`cloudcov.process_ccd` from FITS files of any pipeline.

    Parameters
    ----------
    image, model : str or path-like
        ``file.fits[EXT]``: the image and the pipeline's model (sky + stars), same shape, ADU.
    cat : str or path-like
        ``file.fits[EXT]`` (a table) or an HDF5 file ``file.h5[GROUP]``: the catalogue.
    psf : str or path-like
        ``file.fits[EXT]``: an odd square PSF stamp centred on its middle pixel (any size),
        normalised as the catalogue fluxes assume (unit sum for total fluxes).
    gain : float or str
        Gain in e-/ADU, or the name of an ``image`` header keyword holding it (``"GAIN"``).
    sky : str, path-like or float, optional
        ``file.fits[EXT]`` or a constant (ADU); default 0 (the model's sky then also counts as
        star light in the Poisson noise of infilled pixels; give it when known).
    dq : str or path-like, optional
        ``file.fits[EXT]``: data-quality image, nonzero = bad.
    convention : {"crowdsource", "photutils"} or None, optional
        Meaning of the catalogue's ``x``/``y`` (see :func:`cloudcov.io.tables.catalog_columns`;
        None: from the column names, else crowdsource's with a warning from ``process_ccd``).
    x, y, flux : str, optional
        Catalogue column names (default: found by name, as ``process_ccd`` does).
    origin : {0, 1}, optional
        Index of the first pixel's centre in the catalogue (1 for FITS/IRAF/SExtractor); needs
        ``convention`` or explicit names when 1.

    Returns
    -------
    dict
        ``image``, ``model``, ``sky`` (float64 arrays), ``catalog`` (Table), ``psf``
        (float64 stamp), ``gain`` (float), ``dq`` (int32 array or None), ``convention``,
        ``columns`` and ``files``: pass everything but ``files`` to ``process_ccd``.

    Raises
    ------
    FileNotFoundError, InputFileError, ValueError
        Missing files/extensions/columns/keywords, shape mismatch, bad gain.
    """
    img, hdr = read_image_spec(image, "image")
    mod, _ = read_image_spec(model, "model")
    if mod.shape != img.shape:
        raise ValueError(f"model {model}: shape {mod.shape} != image shape {img.shape}")
    files = {"image": os.fspath(image), "model": os.fspath(model), "cat": os.fspath(cat),
             "psf": os.fspath(psf)}
    if sky is None:
        skyarr = np.zeros_like(img)
    elif isinstance(sky, (int, float, np.number)) or _is_number(sky):
        skyarr = np.full_like(img, float(sky))
    else:
        skyarr, _ = read_image_spec(sky, "sky")
        files["sky"] = os.fspath(sky)
        if skyarr.shape != img.shape:
            raise ValueError(f"sky {sky}: shape {skyarr.shape} != image shape {img.shape}")
    dqarr = None
    if dq is not None:
        dqarr, _ = read_image_spec(dq, "dq", dtype=None)
        files["dq"] = os.fspath(dq)
        if dqarr.shape != img.shape:
            raise ValueError(f"dq {dq}: shape {dqarr.shape} != image shape {img.shape}")
        dqarr = (dqarr != 0).astype(np.uint8)
    stamp, _ = read_image_spec(psf, "psf")
    if _is_number(gain):
        g = float(gain)
    else:
        if gain not in hdr:
            raise InputFileError(*split_ext(image), f"image: no header keyword {gain!r} for "
                                 "--gain (give a number or an existing keyword)")
        g = float(hdr[gain])
    cpath, cext = split_ext(cat)
    names = {k: v for k, v in (("x", x), ("y", y), ("flux", flux)) if v is not None}
    if origin != 0 or (names and convention is not None):
        table = read_catalog(cpath, cext, convention=convention or "crowdsource",
                             origin=origin, **names)
        convention, columns = "crowdsource", None     # read_catalog returns x = row, 0-based
    else:
        from .tables import _read_fits_table, _read_hdf5_group, is_hdf5
        from astropy.table import Table

        t, meta = (_read_hdf5_group if is_hdf5(cpath) else _read_fits_table)(cpath, cext)
        table = Table(t, meta=meta)
        columns = names or None
    return dict(image=img, model=mod, sky=skyarr, catalog=table, psf=stamp, gain=g, dq=dqarr,
                convention=convention, columns=columns, files=files)


def _is_number(v):
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
