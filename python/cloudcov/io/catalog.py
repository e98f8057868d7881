"""Catalogue FITS tables, written atomically and read back with the LPI column dtypes."""
from __future__ import annotations

import json
import os
import pathlib

import numpy as np
from astropy.table import Table

from .._columns import restore_dtypes
from ._files import atomic_path

__all__ = ["write_fits_table", "read_fits_table", "fits_safe", "json_text"]

#: On-disk dtype of int8 columns. FITS has no signed byte: astropy writes numpy int8 as a
#: logical column ('L', read back as bool: values lost) and reads 'B' with TZERO=-128 as
#: float. ``dnt`` only uses bits 0-6, so it is stored as unsigned byte ('B').
_INT8_ON_DISK = np.uint8


def json_text(obj):
    """Compact, key-sorted JSON of parameters/metadata (numpy scalars and paths as plain
    values), as stored in the ``CCPARAMS``/``CCINFO`` cards and HDF5 attributes."""
    return json.dumps(obj, sort_keys=True, default=_json_default)


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, (pathlib.Path, os.PathLike)):
        return os.fspath(o)
    return repr(o)


def fits_safe(table):
    """A shallow copy of ``table`` whose int8 columns FITS can store (see ``_INT8_ON_DISK``)."""
    out = table.copy(copy_data=False)
    for name in out.colnames:
        col = out[name]
        if col.dtype == np.int8:
            data = np.asarray(col)
            unit = col.unit
            out[name] = data.astype(_INT8_ON_DISK if data.size == 0 or data.min() >= 0 else np.int16)
            out[name].unit = unit
    return out


def write_fits_table(table, path, *, extname="CAT", header=None, overwrite=True):
    """Write a table to a FITS file atomically (temporary file, then rename).

    Parameters
    ----------
    table : astropy.table.Table
        Table to write. int8 columns (``dnt``) are stored as unsigned bytes (int16 if they
        hold negative values) because astropy cannot round-trip signed bytes through FITS;
        :func:`read_fits_table` restores int8. ``meta['cloudcov']`` (the parameters and
        timings of :func:`cloudcov.process_ccd`) is stored as JSON in the ``CCPARAMS`` card.
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
    ValueError
        If ``path`` exists and is not a regular file (a directory, or a device such as
        ``/dev/null``, which the rename would replace).
    OSError
        On write failure; the destination is then untouched and no temporary file is left.
    """
    from astropy.io import fits

    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (overwrite=False)")
    t = fits_safe(table)
    meta = dict(t.meta.get("cloudcov", {}))
    t.meta = {}
    hdu = fits.table_to_hdu(t)
    hdu.name = extname
    if meta:
        hdu.header["CCPARAMS"] = json_text(meta)
    if header is not None:
        hdu.header.update(header)
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)
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
        With ``dnt`` as int8 and ``kcond0``, ``kcond``, ``kpred`` as int32 when present, and
        ``meta['cloudcov']`` decoded from the ``CCPARAMS`` card.

    Raises
    ------
    FileNotFoundError, KeyError
        Missing file or extension.
    """
    t = Table.read(path, hdu=extname)
    params = t.meta.pop("CCPARAMS", None)
    if params is not None:
        t.meta["cloudcov"] = json.loads(params)
    return restore_dtypes(t)
