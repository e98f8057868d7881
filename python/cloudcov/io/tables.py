"""Star catalogues from FITS tables or HDF5 groups, mapped to cloudcov's convention."""
from __future__ import annotations

import os

import numpy as np
from astropy.table import Table

from ._files import InputFileError, get_hdu, native, open_fits

__all__ = ["read_catalog", "is_hdf5", "catalog_columns", "KNOWN_COLUMNS", "CONVENTION_META"]

CONVENTIONS = ("crowdsource", "photutils")

#: Position and flux column names recognised in a catalogue, in order of preference, with the
#: convention they imply: photutils ``PSFPhotometry`` fits (``x_fit``...), photutils initial
#: or simulated parameters (``x_0``...; ``make_psf_model_image``), photutils
#: ``DAOStarFinder``/``SourceCatalog`` centroids, and plain ``x``/``y``/``flux`` (crowdsource's
#: names, which do not say which axis is which).
KNOWN_COLUMNS = (
    (("x_fit", "y_fit", "flux_fit"), "photutils"),
    (("x_0", "y_0", "flux_0"), "photutils"),
    (("x_0", "y_0", "flux"), "photutils"),
    (("xcentroid", "ycentroid", "flux"), "photutils"),
    (("x", "y", "flux"), None),
)
#: Columns only crowdsource writes (``decam_proc``/``crowdsource_base``): a table holding them
#: with ``x``/``y`` is in crowdsource's convention.
CROWDSOURCE_ONLY = ("passno", "fracflux", "fluxlbs", "spread_model", "decapsid")
#: ``Table.meta`` key recording the convention of the table's ``x``/``y`` (set by cloudcov's
#: readers; honoured by :func:`catalog_columns`).
CONVENTION_META = "cloudcov_convention"


def catalog_columns(colnames, convention=None, columns=None, meta=None):
    """Which catalogue columns hold the position and flux, and in which convention.

    Parameters
    ----------
    colnames : sequence of str
        The catalogue's column names.
    convention : {"crowdsource", "photutils"} or None, optional
        ``"crowdsource"``: ``x`` is the row (numpy axis 0), ``y`` the column;
        ``"photutils"`` (astropy, DAOPHOT, SExtractor): ``x`` is the column. None (default):
        implied by the names (photutils names, see :data:`KNOWN_COLUMNS`; crowdsource-only
        columns, see :data:`CROWDSOURCE_ONLY`) or by ``meta[CONVENTION_META]``, else
        ``"crowdsource"`` with a warning.
    columns : mapping, optional
        ``{"x": name, "y": name, "flux": name}`` (any subset) naming the columns explicitly;
        the others are found as above.
    meta : mapping, optional
        The table's ``meta``.

    Returns
    -------
    x, y, flux : str
        Column names.
    convention : str
        ``"crowdsource"`` or ``"photutils"``.
    implied : bool
        False when the convention was neither given, nor implied by the names or the meta
        (the caller warns).

    Raises
    ------
    ValueError
        Unknown convention, a ``columns`` key other than x, y, flux, or a column missing (the
        message lists the table's columns).
    """
    names = list(colnames)
    if convention is not None and convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS} or None, got {convention!r}")
    columns = dict(columns or {})
    unknown = set(columns) - {"x", "y", "flux"}
    if unknown:
        raise ValueError(f"columns: keys must be 'x', 'y', 'flux', got {sorted(unknown)}")
    for key, name in columns.items():
        if name not in names:
            raise ValueError(f"catalog: column {name!r} (columns[{key!r}]) not found "
                             f"(have {names})")
    found, implied_conv = None, None
    for cand, conv in KNOWN_COLUMNS:
        pick = tuple(columns.get(k, c) for k, c in zip(("x", "y", "flux"), cand))
        if all(n in names for n in pick):
            found, implied_conv = pick, conv
            # explicit position names do not tell the convention
            if "x" in columns or "y" in columns:
                implied_conv = None
            break
    if found is None:
        missing = [k for k in ("x", "y", "flux") if k not in columns]
        raise ValueError(f"catalog: no position/flux columns (looked for "
                         f"{', '.join('/'.join(c) for c, _ in KNOWN_COLUMNS)}"
                         + (f" for {missing}" if len(missing) < 3 else "")
                         + f"; pass columns={{'x': ..., 'y': ..., 'flux': ...}}); have {names}")
    if convention is not None:
        return (*found, convention, True)
    if implied_conv is None and meta is not None and meta.get(CONVENTION_META) in CONVENTIONS:
        implied_conv = meta[CONVENTION_META]
    if implied_conv is None and found[:2] == ("x", "y") and set(CROWDSOURCE_ONLY) & set(names):
        implied_conv = "crowdsource"
    if implied_conv is None:
        return (*found, "crowdsource", False)
    return (*found, implied_conv, True)


def is_hdf5(path):
    """Whether ``path`` is an HDF5 file (by its signature, else by its suffix).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    bool
    """
    path = os.fspath(path)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"
    return path.lower().endswith((".h5", ".hdf5", ".hdf", ".he5"))


def _read_hdf5_group(path, group):
    import h5py

    if not os.path.exists(path):
        raise FileNotFoundError(f"catalogue file not found: {path}")
    with h5py.File(path, "r") as f:
        if group is None:
            grp = f
        elif group not in f:
            raise InputFileError(path, group, f"no HDF5 group (have {sorted(f.keys())})")
        else:
            grp = f[group]
        if isinstance(grp, h5py.Dataset):      # one compound dataset
            return Table(native(grp[()])), dict(grp.attrs)
        names = [k for k in grp.keys() if isinstance(grp[k], h5py.Dataset)]
        if "column_order" in grp.attrs:
            order = [str(c) for c in grp.attrs["column_order"]]
            names = [n for n in order if n in names] + [n for n in names if n not in order]
        cols = {}
        for n in names:
            a = grp[n][()]
            if a.dtype.kind == "O":
                a = np.asarray(a, dtype=str)
            cols[n] = native(np.asarray(a))
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise InputFileError(path, group, f"datasets of different lengths {sorted(lengths)}")
        return Table(cols, names=names), dict(grp.attrs)


def _read_fits_table(path, ext):
    with open_fits(path, "catalogue") as hdul:
        if ext is None:
            ext = next((i for i, h in enumerate(hdul) if hasattr(h, "columns")), None)
            if ext is None:
                raise InputFileError(path, None, "no table extension")
        hdu = get_hdu(hdul, path, ext, "catalogue")
        if not hasattr(hdu, "columns"):
            raise InputFileError(path, ext, "not a table extension")
        names = list(hdu.columns.names)
        data = hdu.data
        cols = {n: native(np.asarray(data[n])) for n in names}
        meta = {k: hdu.header[k] for k in ("EXTNAME",) if k in hdu.header}
    return Table(cols, names=names), meta


def read_catalog(path, ext=None, *, convention="crowdsource", x="x", y="y", flux="flux",
                 origin=0):
    """Read a star catalogue from a FITS table or an HDF5 group, in cloudcov's convention.

    Parameters
    ----------
    path : str or path-like
        FITS file (a ``BinTableHDU``) or HDF5 file (a group with one 1-D dataset per column,
        as cloudcov writes, or one compound dataset).
    ext : str or int, optional
        FITS extension (name or index; default: the first table) or HDF5 group path
        (default: the root group).
    convention : {"crowdsource", "photutils"}, optional
        Meaning of the position columns in the file: ``"crowdsource"`` (default) has ``x`` =
        row (numpy axis 0) and ``y`` = column; ``"photutils"`` (astropy, DAOPHOT, SExtractor)
        has ``x`` = column and ``y`` = row.
    x, y, flux : str, optional
        Names of the position and flux columns in the file (default ``x``, ``y``, ``flux``;
        e.g. ``x_fit``, ``y_fit``, ``flux_fit`` for photutils).
    origin : {0, 1}, optional
        Index of the first pixel's centre in the file (1 for FITS/IRAF/SExtractor
        ``X_IMAGE``); subtracted from the positions.

    Returns
    -------
    astropy.table.Table
        Every column of the file (native byte order), with ``x`` (row), ``y`` (column) and
        ``flux`` in cloudcov's (crowdsource's) convention, 0-based: pass it to
        :func:`cloudcov.process_ccd` with the default ``convention="crowdsource"``. When the
        file's ``x``/``y`` had another meaning, the original columns are kept as ``x_in``,
        ``y_in``. ``meta['convention_in']`` records the input convention.

    Raises
    ------
    FileNotFoundError, InputFileError
        Missing file, extension/group or column (the message names the file and extension).
    ValueError
        Unknown ``convention`` or ``origin``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    if origin not in (0, 1):
        raise ValueError(f"origin: expected 0 or 1, got {origin!r}")
    path = os.fspath(path)
    if is_hdf5(path):
        table, meta = _read_hdf5_group(path, ext)
    else:
        table, meta = _read_fits_table(path, ext)
    for name in (x, y, flux):
        if name not in table.colnames:
            raise InputFileError(path, ext, f"catalogue: missing column '{name}' "
                                 f"(have {table.colnames})")
    xs = np.asarray(table[x], dtype=np.float64) - origin
    ys = np.asarray(table[y], dtype=np.float64) - origin
    row, col = (xs, ys) if convention == "crowdsource" else (ys, xs)
    renamed = convention != "crowdsource" or origin != 0 or (x, y) != ("x", "y")
    if renamed:
        for name in ("x", "y"):
            if name in table.colnames:
                table.rename_column(name, f"{name}_in")
    table["x"] = row
    table["y"] = col
    if flux != "flux":
        if "flux" in table.colnames:
            table.rename_column("flux", "flux_in")
        table["flux"] = table[flux]
    table.meta.update(meta)
    table.meta["convention_in"] = convention
    table.meta[CONVENTION_META] = "crowdsource"   # x, y are now row, column
    return table
