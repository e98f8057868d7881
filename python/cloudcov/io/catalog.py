"""Catalogue FITS tables, written atomically and read back with the LPI column dtypes."""
from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np
from astropy.table import Table

__all__ = ["write_fits_table", "read_fits_table"]

#: On-disk dtype of int8 columns. FITS has no signed byte: astropy writes numpy int8 as a
#: logical column ('L', read back as bool: values lost) and reads 'B' with TZERO=-128 as
#: float. ``dnt`` only uses bits 0-6, so it is stored as unsigned byte ('B').
_INT8_ON_DISK = np.uint8


def _fits_safe(table):
    out = table.copy(copy_data=False)
    for name in out.colnames:
        col = out[name]
        if col.dtype == np.int8:
            data = np.asarray(col)
            out[name] = data.astype(_INT8_ON_DISK if data.size == 0 or data.min() >= 0 else np.int16)
    return out


def write_fits_table(table, path, *, extname="CAT", header=None, overwrite=True):
    """Write a table to a FITS file atomically (temporary file, then rename).

    Parameters
    ----------
    table : astropy.table.Table
        Table to write. int8 columns (``dnt``) are stored as unsigned bytes (int16 if they
        hold negative values) because astropy cannot round-trip signed bytes through FITS;
        :func:`read_fits_table` restores int8. ``meta['cloudcov']`` scalars become header
        cards (keys truncated to 8 characters, upper case).
    path : str or pathlib.Path
        Output file; its directory is created if needed.
    extname : str, optional
        EXTNAME of the table HDU (default ``"CAT"``).
    header : astropy.io.fits.Header, optional
        Extra cards for the table HDU.
    overwrite : bool, optional
        Replace an existing file (default True); otherwise FileExistsError.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is False.
    OSError
        On write failure; the destination is then untouched and no temporary file is left.
    """
    from astropy.io import fits

    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (overwrite=False)")
    path.parent.mkdir(parents=True, exist_ok=True)
    t = _fits_safe(table)
    meta = dict(t.meta.get("cloudcov", {}))
    t.meta = {}
    hdu = fits.table_to_hdu(t)
    hdu.name = extname
    for k, v in meta.items():
        if isinstance(v, (bool, int, float, str, np.integer, np.floating)):
            hdu.header[k.upper()[:8]] = v
    if header is not None:
        hdu.header.update(header)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_fits_table(path, *, extname="CAT"):
    """Read a catalogue written by :func:`write_fits_table`, restoring LPI dtypes.

    Parameters
    ----------
    path : str or pathlib.Path
    extname : str, optional
        Table extension to read (default ``"CAT"``).

    Returns
    -------
    astropy.table.Table
        With ``dnt`` as int8 and ``kcond0``, ``kcond``, ``kpred`` as int32 when present.

    Raises
    ------
    FileNotFoundError, KeyError
        Missing file or extension.
    """
    from ..lpi import OUTPUT_COLUMNS

    t = Table.read(path, hdu=extname)
    for name, dt in OUTPUT_COLUMNS.items():
        if name in t.colnames and t[name].dtype != dt:
            t[name] = np.asarray(t[name]).astype(dt)
    return t
