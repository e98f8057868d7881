"""FITS files of ``cloudcov impute``: ``FILE[EXT]`` image specs in, imputed image + STD, MASK,
DRAWS extensions out (written atomically)."""
from __future__ import annotations

import re

import numpy as np

from ._files import InputFileError, atomic_path, get_hdu, native, open_fits
from .catalog import json_text

__all__ = ["parse_image_spec", "read_image_spec", "write_impute_fits", "MASK_BITS"]

#: Bits of the MASK extension.
MASK_BITS = {1: "pixel imputed", 2: "imputed by a fallback (too few good neighbours)"}

#: Header keys never copied from the input (structure of the new HDUs).
_STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "BZERO",
               "BSCALE", "BLANK", "XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "CHECKSUM",
               "DATASUM", "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZNAXIS1", "ZNAXIS2", "ZTILE1",
               "ZTILE2", "ZCMPTYPE", "ZQUANTIZ"}


def parse_image_spec(spec):
    """Split ``"file.fits[EXT]"`` into ``("file.fits", EXT)``.

    ``EXT`` is an extension name (``"S6"``) or an integer HDU index (``"1"``); without
    brackets it is ``None`` (the first HDU holding a 2-D image).
    """
    m = re.fullmatch(r"(.+)\[([^\[\]]+)\]", str(spec))
    if not m:
        return str(spec), None
    ext = m.group(2).strip()
    return m.group(1), int(ext) if re.fullmatch(r"\d+", ext) else ext


def read_image_spec(spec, kind="image"):
    """Read the 2-D image of ``FILE[EXT]`` (native byte order) and its header.

    Raises
    ------
    FileNotFoundError, InputFileError
        Missing file or extension, or no 2-D image there.
    """
    path, ext = parse_image_spec(spec)
    with open_fits(path, kind) as hdul:
        if ext is None:
            ext = next((i for i, h in enumerate(hdul) if h.data is not None and np.ndim(h.data) == 2),
                       None)
            if ext is None:
                raise InputFileError(path, None, f"{kind}: no HDU holds a 2-D image")
        if isinstance(ext, int) and not 0 <= ext < len(hdul):
            raise InputFileError(path, str(ext), f"{kind}: HDU index out of range (file has {len(hdul)})")
        hdu = hdul[ext] if isinstance(ext, int) else get_hdu(hdul, path, ext, kind)
        data = hdu.data
        if data is None or np.ndim(data) != 2:
            raise InputFileError(path, str(ext), f"{kind}: expected a 2-D image, got "
                                 f"{None if data is None else np.shape(data)}")
        return native(np.asarray(data)), hdu.header.copy()


def write_impute_fits(path, result, header, provenance):
    """Write an :class:`cloudcov.impute.ImputeResult` to a FITS file, atomically.

    HDUs: PRIMARY = imputed image (input header kept, structural keys dropped; ``CCMETHOD``
    and the JSON parameters/provenance in ``CCPARAMS``/``CCPROV``); ``STD`` (float, 0 on good
    pixels); ``MASK`` (uint8 bits, :data:`MASK_BITS`); ``DRAWS`` (``(n_draw, nrow, ncol)``,
    only when draws were made).

    Parameters
    ----------
    path : str or path-like
        Output file; replaced only when the whole file is written.
    result : ImputeResult
    header : astropy.io.fits.Header or None
        Input header to keep.
    provenance : dict
        JSON-serialisable provenance (version, input files, options, seconds).
    """
    from astropy.io import fits

    hdr = fits.Header()
    if header is not None:
        for card in header.cards:
            if card.keyword and card.keyword.upper() not in _STRUCTURAL:
                try:
                    hdr.append(card)
                except (ValueError, KeyError):  # pragma: no cover - malformed input card
                    continue
    hdr["CCMETHOD"] = (result.method, "cloudcov impute method")
    hdr["CCNIMP"] = (result.n_imputed, "pixels imputed")
    hdr["CCNFALL"] = (result.n_fallback, "pixels imputed by a fallback")
    hdr["CCPARAMS"] = json_text(result.params)
    hdr["CCPROV"] = json_text(provenance)
    mask = result.mask.astype(np.uint8) | (2 * result.fallback.astype(np.uint8))
    hdus = [fits.PrimaryHDU(result.image, header=hdr),
            fits.ImageHDU(result.std, name="STD"),
            fits.ImageHDU(mask, name="MASK")]
    hdus[2].header["BIT1"] = MASK_BITS[1]
    hdus[2].header["BIT2"] = MASK_BITS[2]
    if result.draws is not None:
        hdus.append(fits.ImageHDU(result.draws, name="DRAWS"))
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True, checksum=True)

