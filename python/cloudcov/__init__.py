"""cloudcov: local pixelwise infilling (LPI) photometry on structured backgrounds."""
from .errors import CloudCovError, CloudCovWarning, NumericalError

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only hit on broken installs
    raise ImportError(
        "cloudcov's compiled extension cloudcov._core could not be imported. "
        "Did you forget to build it? Reinstall with `pip install .` from the source tree."
    ) from exc

__version__ = "0.1.0"
