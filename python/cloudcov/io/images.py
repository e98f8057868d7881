"""Image FITS files: ``FILE.fits[EXT]`` arguments and atomic multi-extension image writes."""
from __future__ import annotations

import pathlib
import re

import numpy as np

from ._files import InputFileError, atomic_path, get_hdu, native, open_fits

__all__ = ["split_extension", "read_image", "write_image_file", "STRUCTURAL_KEYWORDS"]

#: Header keywords that describe the data layout; never copied from an input header.
STRUCTURAL_KEYWORDS = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3",
                       "EXTEND", "PCOUNT", "GCOUNT", "BZERO", "BSCALE", "BLANK", "EXTNAME",
                       "CHECKSUM", "DATASUM", "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZNAXIS1",
                       "ZNAXIS2", "ZTILE1", "ZTILE2", "ZCMPTYPE", "ZQUANTIZ")

_EXT_RE = re.compile(r"^(?P<path>.+?)\[(?P<ext>[^\[\]]+)\]$")


def split_extension(spec):
    """Split ``"file.fits[EXT]"`` into ``("file.fits", "EXT")`` (``EXT`` a name or an index).

    Parameters
    ----------
    spec : str or path-like
        File name, optionally followed by ``[EXTNAME]`` or ``[index]`` (cfitsio style).

    Returns
    -------
    path : str
    ext : str, int or None
        Upper-case name, integer index, or None when not given.
    """
    s = str(spec)
    m = _EXT_RE.match(s)
    if m is None or pathlib.Path(s).exists():
        return s, None
    ext = m.group("ext").strip()
    return m.group("path"), int(ext) if ext.isdigit() else ext.upper()


def read_image(spec, kind="image", *, dtype=None):
    """Read a 2-D image from ``file.fits[EXT]`` (default: the first HDU holding a 2-D image).

    Parameters
    ----------
    spec : str or path-like
        ``file.fits``, ``file.fits[NAME]`` or ``file.fits[index]``; plain or fpack files.
    kind : str, optional
        What it is, for error messages.
    dtype : numpy dtype, optional
        Output dtype (default: the stored type, native byte order; BZERO-scaled unsigned
        integers come back as uint16/uint32 as astropy reads them).

    Returns
    -------
    data : (nrow, ncol) ndarray
        ``[row, col]`` (FITS NAXIS2, NAXIS1), C-contiguous, native byte order.
    header : astropy.io.fits.Header
        Header of that HDU (with the primary header's cards merged under it for an
        extension, so that GAIN etc. in the primary are found).
    ext : str or int
        The extension read.

    Raises
    ------
    FileNotFoundError, InputFileError
        Missing file, missing extension, no 2-D image.
    """
    path, ext = split_extension(spec)
    with open_fits(path, kind) as hdul:
        if ext is None:
            for k, hdu in enumerate(hdul):
                if hdu.is_image and hdu.header.get("NAXIS", 0) == 2:
                    ext = k
                    break
            else:
                raise InputFileError(path, None, f"{kind}: no 2-D image HDU in the file")
        if isinstance(ext, int):
            if not 0 <= ext < len(hdul):
                raise InputFileError(path, ext, f"{kind}: no HDU number {ext} ({len(hdul)} HDUs)")
            hdu = hdul[ext]
        else:
            hdu = get_hdu(hdul, path, ext, kind)
        data = hdu.data
        if data is None or np.ndim(data) != 2:
            raise InputFileError(path, ext, f"{kind}: expected a 2-D image, got "
                                 f"{None if data is None else np.shape(data)}")
        header = hdu.header.copy()
        if hdu is not hdul[0]:
            for card in hdul[0].header.cards:
                if card.keyword not in header and card.keyword not in STRUCTURAL_KEYWORDS \
                        and card.keyword not in ("COMMENT", "HISTORY", ""):
                    header.append(card)
        data = native(np.asarray(data), dtype)
    return data, header, ext


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
