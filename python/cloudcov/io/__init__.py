"""File input/output: catalogues (FITS tables, written atomically)."""
from .catalog import read_fits_table, write_fits_table

__all__ = ["read_fits_table", "write_fits_table"]
