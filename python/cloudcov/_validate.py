"""Argument checks at the Python boundary. Every error names the argument and the problem."""
from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(name: str, dtype) -> np.dtype:
    """Return ``dtype`` as float32/float64 numpy dtype, or raise ValueError naming ``name``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name}: not a dtype: {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name}: expected float32 or float64, got {dt}")
    return dt


def as_image(name: str, a, *, dtype=None, ndim: int = 2, allow_nonfinite: bool = False,
             copy_ok: bool = False) -> np.ndarray:
    """Check a float image and return it as a C-contiguous float32/float64 array.

    Without ``dtype`` the array must already be C-contiguous float32 or float64 (it is never
    copied silently). With ``dtype`` (or ``copy_ok``) a conversion is made on purpose.
    """
    if not isinstance(a, np.ndarray):
        if copy_ok or dtype is not None:
            a = np.asarray(a)
        else:
            raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if dtype is not None:
        dt = as_dtype("dtype", dtype)
        if a.dtype.kind not in "fiub":
            raise TypeError(f"{name}: expected a numeric array, got dtype {a.dtype}")
        a = np.ascontiguousarray(a, dtype=dt)
    else:
        if a.dtype not in FLOAT_DTYPES:
            if copy_ok and a.dtype.kind in "fiub":
                a = np.ascontiguousarray(a, dtype=np.float64)
            else:
                raise TypeError(f"{name}: expected float32 or float64, got dtype {a.dtype}")
        if not a.flags.c_contiguous:
            if copy_ok:
                a = np.ascontiguousarray(a)
            else:
                raise ValueError(f"{name}: expected a C-contiguous array (use np.ascontiguousarray)")
    if any(s == 0 for s in a.shape):
        raise ValueError(f"{name}: empty array of shape {a.shape}")
    if not allow_nonfinite and not np.all(np.isfinite(a)):
        nbad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{name}: contains {nbad} NaN or infinite values")
    return a


def as_mask(name: str, a, shape=None) -> np.ndarray:
    """Return a boolean-like array as C-contiguous uint8 (1 = masked), checking its shape."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected a boolean or integer mask, got dtype {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name}: shape {a.shape} != expected {tuple(shape)}")
    return np.ascontiguousarray(a != 0, dtype=np.uint8)


def as_int(name: str, v, *, minimum=None, odd: bool = False, maximum=None) -> int:
    """Check an integer parameter (bools rejected)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {v!r}")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {v}")
    if odd and v % 2 != 1:
        raise ValueError(f"{name}: must be odd, got {v}")
    return v


def as_Np(v) -> int:
    """Check the stamp size Np (odd, >= 3)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"Np: expected an integer, got {v!r}")
    if v < 3 or v % 2 != 1:
        raise ValueError(f"Np must be odd and >= 3, got {v}")
    return int(v)


def as_float(name: str, v, *, positive: bool = False, finite: bool = True) -> float:
    """Check a real scalar."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {v!r}")
    v = float(v)
    if finite and not np.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v}")
    if positive and not v > 0:
        raise ValueError(f"{name}: must be > 0, got {v}")
    return v


def as_threads(v) -> int:
    """Check a thread count (0 = all cores, None = 1)."""
    if v is None:
        return 1
    return as_int("threads", v, minimum=0)


def same_shape(ref_name: str, ref: np.ndarray, **others) -> None:
    """Raise ValueError if any array in ``others`` has a shape different from ``ref``."""
    for name, a in others.items():
        if a is not None and a.shape != ref.shape:
            raise ValueError(f"{name}.shape {a.shape} != {ref_name}.shape {ref.shape}")
