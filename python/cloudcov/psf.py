"""PSF adapters: every PSF input becomes a callable ``psf(row, col, size) -> (size, size)``."""
from __future__ import annotations

import numpy as np

from ._validate import as_image

__all__ = ["StampPSF", "CallablePSF", "as_psf_model", "crop_or_pad"]


def crop_or_pad(stamp, size):
    """Centre-crop or zero-pad an odd square stamp to ``(size, size)``.

    Parameters
    ----------
    stamp : (n, n) ndarray
        Odd-sized stamp centred on its middle pixel.
    size : int
        Odd output size.

    Returns
    -------
    out : (size, size) ndarray of float64
    """
    n = stamp.shape[0]
    out = np.zeros((size, size))
    if size <= n:
        o = (n - size) // 2
        out[:] = stamp[o:o + size, o:o + size]
    else:
        o = (size - n) // 2
        out[o:o + n, o:o + n] = stamp
    return out


class StampPSF:
    """A position-independent PSF given as one odd square stamp.

    Parameters
    ----------
    stamp : (n, n) ndarray
        PSF stamp centred on its middle pixel, finite values, odd ``n``; any normalisation
        consistent with the catalogue fluxes (crowdsource: unit sum).

    Notes
    -----
    ``psf(row, col, size)`` returns the stamp cropped or zero-padded to ``size``; the
    sub-pixel position of the star is ignored.
    """

    def __init__(self, stamp):
        stamp = as_image("psf", stamp, dtype=np.float64)
        if stamp.shape[0] != stamp.shape[1] or stamp.shape[0] % 2 != 1:
            raise ValueError(f"psf: expected an odd square stamp, got shape {stamp.shape}")
        self.stamp = stamp

    def __call__(self, row, col, size):
        return crop_or_pad(self.stamp, int(size))


class CallablePSF:
    """Wrap a user callable ``f(row, col, size)``, checking what it returns.

    Parameters
    ----------
    fn : callable
        ``fn(row, col, size)`` with ``row, col`` 0-based image coordinates (crowdsource
        convention: row = ``x``) returning a finite ``(size, size)`` stamp centred on pixel
        ``(rint(row), rint(col))``.
    """

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"psf: expected an array, a callable or a crowdsource PSF, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, row, col, size):
        out = np.asarray(self.fn(row, col, size), dtype=np.float64)
        if out.shape != (size, size):
            raise ValueError(f"psf: callable returned shape {out.shape} for size {size} at "
                             f"(row, col) = ({row}, {col})")
        if not np.all(np.isfinite(out)):
            raise ValueError(f"psf: callable returned NaN/inf at (row, col) = ({row}, {col})")
        return out


def as_psf_model(psf):
    """Turn a PSF input into a callable ``psf(row, col, size) -> (size, size)`` float64 array.

    Parameters
    ----------
    psf : ndarray, callable or object with ``render_model``/``__call__``
        A stamp (see :class:`StampPSF`), a callable (see :class:`CallablePSF`), or a
        crowdsource PSF object (``crowdsource.psf`` models are called as
        ``psf(row, col, stampsz=size)``; rows are crowdsource's ``x``).

    Returns
    -------
    callable

    Raises
    ------
    TypeError, ValueError
        Unsupported or invalid PSF.
    """
    if isinstance(psf, (StampPSF, CallablePSF)):
        return psf
    if isinstance(psf, np.ndarray):
        return StampPSF(psf)
    if type(psf).__module__.startswith("crowdsource"):
        return CallablePSF(lambda r, c, size: psf(r, c, stampsz=size))
    return CallablePSF(psf)
