"""Which optimized LAPACK the C++ kernels call: scipy's OpenBLAS (default) or Intel MKL.

The per-star stage is one Cholesky factorisation (``?potrf``) of each star's bordered
covariance plus a few triangular solves and condition estimates; the GPR imputation also
factorises. cloudcov does not implement these: it calls an optimized LAPACK through a
function table in its C++ core. By default that table holds the routines scipy ships
(``scipy.linalg.cython_lapack`` / ``cython_blas``: OpenBLAS). Intel's MKL, installed from
PyPI (``pip install "cloudcov[mkl]"``, the ``mkl`` package), factorises the per-star matrices
of ~700-800 rows 1.5-1.8x faster on AVX-512 Intel CPUs (``benchmarks/bench_kernels.py``), but
1.3x slower than scipy's OpenBLAS at those sizes on an AMD EPYC (Zen 4, AVX-512;
``benchmarks/bench_lapack.py``): MKL does not run its fast code paths on other vendors' CPUs.

Select it per process with the environment variable ``CLOUDCOV_LAPACK`` (read when cloudcov
is imported; ``scipy``, the default, ``mkl``, or ``auto``: MKL when it is installed and the
CPU is an Intel one) or at run time with :func:`set_lapack`. The choice changes results at
float round-off only (a
different but equally accurate factorisation; tested against the default), is recorded in
the ``lapack`` entry of a run's metadata, and, for each of them, results stay bitwise
identical for any thread count.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import platform
import site
import sys
import warnings

from . import _core
from .errors import CloudCovWarning

__all__ = ["set_lapack", "lapack_info", "LAPACK_ENV"]

#: Environment variable read at import: ``scipy`` (default), ``mkl`` or ``auto``.
LAPACK_ENV = "CLOUDCOV_LAPACK"

_ROUTINES = ("spotrf", "dpotrf", "spotrs", "dpotrs", "slacn2", "dlacn2",
             "strsv", "dtrsv", "sgemv", "dgemv", "slaic1", "dlaic1")
_MKL_INTERFACE_LP64 = 0
_MKL_THREADING_SEQUENTIAL = 1

_state = {"name": "scipy", "library": "scipy.linalg.cython_lapack / cython_blas", "version": None}
_mkl = {}   # the loaded MKL (CDLL, path, version), kept alive for the process


def _cpu_vendor():
    """The CPU vendor string (``"GenuineIntel"``, ``"AuthenticAMD"``, ...) or None if unknown.

    Linux: ``vendor_id`` of ``/proc/cpuinfo``; elsewhere :func:`platform.processor` when it
    names the vendor (Windows does).
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    proc = platform.processor()
    for vendor in ("GenuineIntel", "AuthenticAMD", "HygonGenuine"):
        if vendor in proc:
            return vendor
    return None


def _find_mkl():
    """Path of MKL's single dynamic library ``libmkl_rt``, or None."""
    dirs = [os.path.join(p, "lib") for p in (sys.prefix, sys.base_prefix, site.USER_BASE) if p]
    for d in dirs:
        hits = sorted(glob.glob(os.path.join(d, "libmkl_rt.so*")) + glob.glob(os.path.join(d, "libmkl_rt*.dylib"))
                      + glob.glob(os.path.join(d, "mkl_rt*.dll")))
        if hits:
            return hits[0]
    return ctypes.util.find_library("mkl_rt")


def _load_mkl():
    """Load MKL once: LP64 interface, sequential threading layer (each kernel thread makes
    its own single-threaded calls), and the addresses of the routines the table needs."""
    if _mkl:
        return _mkl
    path = _find_mkl()
    if path is None:
        raise RuntimeError("set_lapack('mkl'): Intel MKL is not installed (pip install mkl, or "
                           "pip install 'cloudcov[mkl]'); libmkl_rt was not found")
    lib = ctypes.CDLL(path)
    # Both must be set before MKL computes anything in this process; they return the layer
    # now in force (or -1), which must be the one asked for.
    for fn, want, what in ((lib.MKL_Set_Interface_Layer, _MKL_INTERFACE_LP64, "LP64 interface"),
                           (lib.MKL_Set_Threading_Layer, _MKL_THREADING_SEQUENTIAL, "sequential threading")):
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_int]
        got = fn(want)
        if got != want:
            raise RuntimeError(f"set_lapack('mkl'): MKL ({path}) could not be set to the {what} "
                               f"layer (it was already in use in this process with another one)")
    buf = ctypes.create_string_buffer(256)
    lib.mkl_get_version_string(buf, ctypes.c_int(len(buf)))
    addr = {name: ctypes.cast(getattr(lib, name + "_"), ctypes.c_void_p).value for name in _ROUTINES}
    _mkl.update(lib=lib, path=path, version=buf.value.decode(errors="replace").strip(), addr=addr)
    return _mkl


def set_lapack(name):
    """Select the LAPACK the C++ kernels call, for the whole process.

    Parameters
    ----------
    name : {"scipy", "mkl", "auto"}
        ``"scipy"``: the OpenBLAS routines scipy ships (the default); ``"mkl"``: Intel MKL
        from the ``mkl`` package (LP64 interface, sequential threading layer); ``"auto"``:
        MKL when it is installed and usable and the CPU is an Intel one (vendor
        ``GenuineIntel``), else scipy's (with a :class:`~cloudcov.CloudCovWarning` when MKL
        is installed but cannot be used). On other CPUs MKL is installed but not chosen:
        measured 1.3x slower than scipy's OpenBLAS per ``spotrf`` of 700-800 rows on an AMD EPYC
        (``benchmarks/results/bench_lapack_epyc.txt``); ask for ``"mkl"`` to use it anyway.

    Returns
    -------
    dict
        :func:`lapack_info` after the switch.

    Raises
    ------
    ValueError
        If ``name`` is not one of the above.
    RuntimeError
        If ``"mkl"`` is asked for and MKL is not installed or cannot be put in the LP64,
        sequential mode (the table is then left as it was).

    Notes
    -----
    Call it between runs, not while a cloudcov kernel runs in another Python thread. Results
    differ between the two at float round-off only; for either, they are bitwise identical
    for any thread count. MKL's interface and threading layers are process-wide: another MKL
    user in the same process (an MKL-built numpy, say) then also runs MKL sequentially, and
    one that set other layers first makes ``"mkl"`` fail.
    """
    if not isinstance(name, str) or name not in ("scipy", "mkl", "auto"):
        raise ValueError(f"name: expected 'scipy', 'mkl' or 'auto', got {name!r}")
    if name == "auto":
        if not (_mkl or _find_mkl() is not None) or _cpu_vendor() != "GenuineIntel":
            name = "scipy"
        else:
            try:
                _load_mkl()
                name = "mkl"
            except (RuntimeError, OSError, AttributeError) as exc:   # installed but unusable
                warnings.warn(f"set_lapack('auto'): using scipy's LAPACK: {exc}", CloudCovWarning,
                              stacklevel=2)
                name = "scipy"
    if name == "scipy":
        _core.use_scipy_lapack()
        _state.update(name="scipy", library="scipy.linalg.cython_lapack / cython_blas", version=None)
    else:
        m = _load_mkl()
        _core.set_lapack(m["addr"])
        _state.update(name="mkl", library=m["path"], version=m["version"])
    return lapack_info()


def lapack_info():
    """The LAPACK the C++ kernels call now.

    Returns
    -------
    dict
        ``name`` (``"scipy"`` or ``"mkl"``), ``library`` (where the routines come from) and
        ``version`` (MKL's version string; None for scipy's, whose version is scipy's).
    """
    return dict(_state)


def _from_environment():
    """Apply ``CLOUDCOV_LAPACK`` at import (unset or empty: scipy's)."""
    value = os.environ.get(LAPACK_ENV, "").strip().lower()
    if not value:
        return
    if value not in ("scipy", "mkl", "auto"):
        raise ValueError(f"{LAPACK_ENV}: expected 'scipy', 'mkl' or 'auto', got {value!r}")
    set_lapack(value)
