"""Argument checks at the Python boundary. Every error names the argument and the problem."""
from __future__ import annotations

import numbers
import os
import warnings

import numpy as np

from .errors import CloudCovWarning

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Largest stamp size (cpp kMaxNp): keeps Np**2, Np**4 and the stack depth far from overflow.
MAX_NP = 1023
#: Largest value of parameters passed to C ``int`` arguments (threads, min_good, widths).
INT32_MAX = 2**31 - 1


def as_numeric_array(name: str, a) -> np.ndarray:
    """``np.asarray(a)`` that must give a real numeric (or bool) array; errors name ``name``."""
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{name}: cannot be converted to a numeric array ({exc})") from exc
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    return arr


def to_float(name: str, a: np.ndarray, dtype) -> np.ndarray:
    """C-contiguous copy of a real numeric array in ``dtype``; out-of-range values raise."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(a, dtype=dtype)
    if not np.all(np.isfinite(out)):
        if np.all(np.isfinite(a)):
            raise ValueError(f"{name}: values overflow {np.dtype(dtype)}")
        raise ValueError(f"{name}: contains NaN or infinite values")
    return out


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
            try:
                a = np.asarray(a)
            except (TypeError, ValueError, OverflowError) as exc:
                raise TypeError(f"{name}: cannot be converted to an array ({exc})") from exc
        else:
            raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if dtype is not None:
        dt = as_dtype("dtype", dtype)
        if a.dtype.kind not in "fiub":
            raise TypeError(f"{name}: expected a numeric array, got dtype {a.dtype}")
        with np.errstate(over="ignore"):  # overflow gives inf, reported below
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
    if v > MAX_NP:
        raise ValueError(f"Np must be <= {MAX_NP}, got {v}")
    return int(v)


def as_float(name: str, v, *, positive: bool = False, finite: bool = True) -> float:
    """Check a real scalar."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {v!r}")
    try:
        v = float(v)
    except OverflowError:  # a Python int beyond the float range
        raise ValueError(f"{name}: must be finite, got an integer of {int(v).bit_length()} bits") from None
    if finite and not np.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v}")
    if positive and not v > 0:
        raise ValueError(f"{name}: must be > 0, got {v}")
    return v


def available_cores() -> int:
    """Cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` elsewhere)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cap_threads(n: int, *, stacklevel: int = 3) -> int:
    """``min(n, available_cores())``, with a CloudCovWarning when the request is lowered.

    Per-thread workspaces are allocated for every thread, so an unbounded request would make
    memory depend on it (``threads=10**5`` used to allocate gigabytes).
    """
    cores = available_cores()
    if n > cores:
        warnings.warn(f"threads: {n} requested but only {cores} cores are available; using {cores}",
                      CloudCovWarning, stacklevel=stacklevel)
        return cores
    return n


def as_threads(v) -> int:
    """Check a thread count (0 = all cores, None = 1), capped at the available cores."""
    if v is None:
        return 1
    v = as_int("threads", v, minimum=0, maximum=INT32_MAX)
    return v if v == 0 else cap_threads(v, stacklevel=4)


def as_rng(name: str, rng) -> np.random.Generator:
    """``np.random.default_rng(rng)`` with errors naming the argument."""
    try:
        return np.random.default_rng(rng)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"{name}: expected a numpy Generator, a seed or None ({exc})") from exc


def same_shape(ref_name: str, ref: np.ndarray, **others) -> None:
    """Raise ValueError if any array in ``others`` has a shape different from ``ref``."""
    for name, a in others.items():
        if a is not None and a.shape != ref.shape:
            raise ValueError(f"{name}.shape {a.shape} != {ref_name}.shape {ref.shape}")
