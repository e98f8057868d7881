"""Atomic multi-extension image FITS writes (``cloudcov clean``; ``FILE[EXT]`` inputs are read
by :func:`cloudcov.io.imputed.read_image_spec`)."""
from __future__ import annotations

import pathlib

import numpy as np

from ._files import atomic_path
from .imputed import _STRUCTURAL

__all__ = ["write_image_file", "STRUCTURAL_KEYWORDS"]

#: Header keywords that describe the data layout; never copied from an input header
#: (the set of :mod:`cloudcov.io.imputed`).
STRUCTURAL_KEYWORDS = _STRUCTURAL


def _clean_header(header):
    from astropy.io import fits

    h = fits.Header()
    if header is None:
        return h
    for card in header.cards:
        if card.keyword in STRUCTURAL_KEYWORDS:
            continue
        h.append(card)
    return h


def write_image_file(path, primary, extensions=(), *, header=None, overwrite=True):
    """Write a primary image and image extensions to one FITS file, atomically.

    Parameters
    ----------
    path : str or path-like
        Output file; its directory is created.
    primary : ndarray
        Primary image (2-D).
    extensions : sequence of (extname, ndarray, Header or None)
        Image extensions in order; ``ndarray`` of any FITS-storable dtype (bool is stored
        as uint8).
    header : astropy.io.fits.Header, optional
        Cards for the primary HDU (structural keywords of an input header are dropped).
    overwrite : bool, optional
        Replace an existing file (default True); otherwise FileExistsError.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileExistsError
        ``overwrite=False`` and the file exists.
    OSError
        On write failure; the destination is untouched and no temporary file remains
        (:func:`cloudcov.io._files.atomic_path`).
    """
    from astropy.io import fits

    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (overwrite=False)")
    hdus = [fits.PrimaryHDU(np.ascontiguousarray(primary), header=_clean_header(header))]
    for name, data, hdr in extensions:
        a = np.ascontiguousarray(data)
        if a.dtype == bool:
            a = a.astype(np.uint8)
        hdus.append(fits.ImageHDU(a, header=_clean_header(hdr), name=name))
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path
