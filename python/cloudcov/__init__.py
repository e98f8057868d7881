"""cloudcov: local pixelwise infilling (LPI) photometry on structured backgrounds.

A Python port of CloudCovErr.jl (Saydjari & Finkbeiner 2022) with a C++ core. Images are
``[row, col]`` numpy arrays; positions are 0-based with pixel centres at integers; fluxes
and residuals are in ADU and gains in e-/ADU.
"""
import logging

from .errors import CloudCovError, CloudCovWarning, NumericalError

logging.getLogger("cloudcov").addHandler(logging.NullHandler())

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only hit on broken installs
    raise ImportError(
        "cloudcov's compiled extension cloudcov._core could not be imported. "
        "Did you forget to build it? Reinstall with `pip install .` from the source tree."
    ) from exc

from .lapack import lapack_info, set_lapack
from . import lapack as _lapack

_lapack._from_environment()

from .covariance import boxcar, build_cov, local_covariance, shift_stack, stack_value
from . import io
from .infill import InfillResult, add_sky_noise, prelim_infill
from .impute import ImputeResult, impute
from .lpi import OUTPUT_COLUMNS, PreparedCCD, prepare_ccd, process_ccd, star_details
from .masks import findmaxpsf, gen_mask_static_psf, outest_bounds
from .perstar import (DNT_BITS, ConditionedStar, PixelClasses, circle_mask, cond_cov_est,
                      pixel_classes)
from .psf import as_psf_model
from .adapters import from_photutils
from . import noise
from . import tiling
from .tiling import plan_strips

from ._provenance import version as _version

__version__ = _version()

__all__ = [
    "set_lapack", "lapack_info",
    "process_ccd", "prepare_ccd", "star_details", "PreparedCCD", "OUTPUT_COLUMNS", "as_psf_model", "plan_strips",
    "from_photutils",
    "CloudCovError", "CloudCovWarning", "NumericalError",
    "boxcar", "stack_value", "shift_stack", "build_cov", "local_covariance",
    "prelim_infill", "add_sky_noise", "InfillResult",
    "impute", "ImputeResult",
    "findmaxpsf", "gen_mask_static_psf", "outest_bounds",
    "circle_mask", "pixel_classes", "PixelClasses", "cond_cov_est", "ConditionedStar", "DNT_BITS",
]

# defect finding and cleaning (issue 10)
from . import defects
from .clean import CleanResult, clean

__all__ += ["defects", "clean", "CleanResult"]
