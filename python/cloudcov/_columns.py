"""The LPI output columns: names, dtypes and units (DESIGN.md sec. 4).

A leaf module (numpy and astropy only) shared by :mod:`cloudcov.lpi`, which makes the
columns, and :mod:`cloudcov.io`, which writes and reads them, so that neither imports the
other.
"""
from __future__ import annotations

import numpy as np

__all__ = ["OUTPUT_COLUMNS", "FLUX_COLUMNS", "FLUX_UNIT", "set_output_units", "restore_dtypes"]

#: Output columns added to the catalogue and their dtypes (DESIGN.md sec. 4).
OUTPUT_COLUMNS = {
    "cflux": np.float32, "dcflux": np.float32, "dcflux_diag": np.float32,
    "fdb_res": np.float32, "fdb_pred": np.float32, "cchi2": np.float32,
    "kcond0": np.int32, "kcond": np.int32, "kpred": np.int32, "dnt": np.int8,
}

#: Output columns in image units (fluxes and flux offsets); the others are dimensionless.
FLUX_COLUMNS = ("cflux", "dcflux", "dcflux_diag", "fdb_res", "fdb_pred")

#: Unit of the flux columns: image units, ADU for DECam (FITS ``TUNIT = 'adu'``).
FLUX_UNIT = "adu"


def set_output_units(table):
    """Give the flux output columns the unit ``adu``, in place.

    Parameters
    ----------
    table : astropy.table.Table or astropy.table.QTable
        A table holding the :data:`OUTPUT_COLUMNS` (absent ones are skipped). In a
        ``QTable`` the flux columns become ``Quantity`` columns; in a ``Table`` they are
        ``Column`` objects with ``unit = adu``. Other columns (the catalogue's own, with
        whatever units they carry) are left alone.

    Returns
    -------
    table
        The same table.
    """
    import astropy.units as u
    from astropy.table import QTable

    unit = u.Unit(FLUX_UNIT)
    for name in FLUX_COLUMNS:
        if name not in table.colnames:
            continue
        if isinstance(table, QTable):
            table[name] = u.Quantity(np.asarray(getattr(table[name], "value", table[name])),
                                     unit, copy=False)
        else:
            table[name].unit = unit
    return table


def restore_dtypes(table):
    """Cast the output columns of a table read from disk back to :data:`OUTPUT_COLUMNS`.

    Parameters
    ----------
    table : astropy.table.Table
        E.g. read from FITS, where ``dnt`` is stored as an unsigned byte.

    Returns
    -------
    table
        The same table, columns replaced where their dtype differed (units kept).
    """
    for name, dt in OUTPUT_COLUMNS.items():
        if name in table.colnames and table[name].dtype != dt:
            unit = getattr(table[name], "unit", None)
            table[name] = np.asarray(table[name]).astype(dt)
            if unit is not None:
                table[name].unit = unit
    return table
