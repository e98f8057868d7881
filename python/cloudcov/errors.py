"""Exceptions and warnings raised by cloudcov."""

__all__ = ["CloudCovError", "NumericalError", "CloudCovWarning"]


class CloudCovError(RuntimeError):
    """Base class of cloudcov's own runtime errors (bad arguments raise ValueError/TypeError)."""


class NumericalError(CloudCovError):
    """A numerical failure that aborts a whole call (per-star failures are flagged in ``dnt``)."""


class CloudCovWarning(UserWarning):
    """Warnings about inputs that cloudcov corrected or could not fully use."""
