"""File input/output: catalogues (FITS tables, written atomically), DECam CP files,
crowdsource outputs, catalogues from FITS/HDF5, and per-exposure LPI outputs (FITS/HDF5)."""
from .catalog import read_fits_table, write_fits_table

__all__ = ["read_fits_table", "write_fits_table"]

# --- survey files: DECam CP products, crowdsource outputs, exposure outputs (issue 4) ---
from ._files import InputFileError
from .crowdsource import (CCDInputs, crowdsource_ccds, crowdsource_filenames, crowdsource_gain,
                          read_ccd, read_crowdsource_catalog, read_crowdsource_header,
                          read_crowdsource_model, read_crowdsource_psf)
from .decam import (DecamCCD, correct_s7, decam_filenames, inject_rename, read_decam,
                    read_decam_dq, read_decam_image, read_decam_ivar)
from .output import (assemble_output, ccd_status, format_of, output_ccds, output_path,
                     read_output, verify_ccd, write_ccd_output)
from .tables import read_catalog

__all__ += [
    "InputFileError", "CCDInputs", "read_ccd", "crowdsource_ccds", "crowdsource_filenames",
    "crowdsource_gain", "read_crowdsource_catalog", "read_crowdsource_header",
    "read_crowdsource_model", "read_crowdsource_psf", "DecamCCD", "decam_filenames",
    "inject_rename", "read_decam", "read_decam_image", "read_decam_dq", "read_decam_ivar",
    "correct_s7", "read_catalog", "output_path", "write_ccd_output", "assemble_output",
    "ccd_status", "verify_ccd", "format_of", "output_ccds", "read_output",
]
