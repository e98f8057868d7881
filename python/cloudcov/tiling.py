"""Memory-budgeted strips for the shifted-product stack."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _core
from ._validate import as_dtype, as_int, as_Np

__all__ = ["Strip", "stack_bytes", "plan_strips", "sweep_plan", "DEFAULT_MAX_MEMORY"]

#: Default ceiling for the stack ring buffer (bytes): 256 MiB. A ring of Np + 16 rows is
#: all a sweep needs, so the budget only sets the strip width; on a DECam CCD it gives 4 strips
#: of 544 boxcar-output columns, whose running sums (the vertical sums of the strip's 672 input
#: columns, 378 KiB per shift row) and staging row stay in a core's L2 cache: the stack costs no
#: more than with 2 strips (measured in situ, benchmarks/results/bench_strips.txt) and the ring
#: is 0.21 GiB instead of 0.41 GiB.
DEFAULT_MAX_MEMORY = 256 << 20

#: Rows the stack ring holds beyond one stamp (``Np + RING_EXTRA_ROWS``): each round of a
#: sweep advances at most this many rows before the stars whose stamps are complete are
#: processed. Longer rounds (48 or 112) did not make the stack cheaper inside a 10,000-star
#: CCD run, while the larger ring costs memory or narrower strips
#: (benchmarks/results/bench_strips.txt). Results never depend on it.
RING_EXTRA_ROWS = 16


def stack_bytes(out_rows, out_cols, Np, dtype="float32"):
    """Bytes of a stack with a ``(out_rows, out_cols)`` boxcar image.

    Parameters
    ----------
    out_rows, out_cols : int
        Boxcar-output (stack) size of the tile.
    Np : int
        Odd stamp size.
    dtype : str or numpy dtype, optional
        float32 (default) or float64.

    Returns
    -------
    int
        ``out_rows * out_cols * Np * (2 Np - 1) * itemsize``.
    """
    Np = as_Np(Np)
    return int(out_rows) * int(out_cols) * int(_core.n_slots(Np)) * as_dtype("dtype", dtype).itemsize


@dataclass(frozen=True)
class Strip:
    """One vertical strip of star centres, swept top to bottom (see :func:`plan_strips`).

    Attributes
    ----------
    col0, col1 : int
        Star centres with ``col0 <= col < col1`` belong to the strip.
    ring_rows : int
        Boxcar-output rows held by the strip's stack ring buffer.
    """

    col0: int
    col1: int
    ring_rows: int


def _ring_rows(max_memory, out_cols, Np, itemsize):
    return max_memory // (out_cols * int(_core.n_slots(Np)) * itemsize)


def plan_strips(star_rows, star_cols, Np=33, widx=129, widy=None, max_memory=DEFAULT_MAX_MEMORY,
                dtype="float32"):
    """Split the star-centre columns into strips whose stack ring buffers fit a memory budget.

    Each strip is processed in one sweep down the image (the boxcar running sums are never
    restarted), keeping only ``ring_rows`` boxcar-output rows of the stack in memory. The
    work is about ``nstrips * (rows + widx) * (strip_cols + Np + widy)``, so the fewest strips
    whose ring holds at least ``Np + RING_EXTRA_ROWS`` (16) rows are chosen, and the ring
    holds no more than that (nor than the strip's rows): a larger ring would only lengthen the
    rounds of the sweep, not reduce its work, so memory is set by what the image needs,
    ``max_memory`` being the ceiling.

    Parameters
    ----------
    star_rows, star_cols : (int, int)
        Half-open ranges ``[start, stop)`` of star-centre rows and columns.
    Np : int, optional
        Odd stamp size (default 33).
    widx, widy : int, optional
        Odd boxcar widths along rows / columns (default 129; ``widy`` defaults to ``widx``).
    max_memory : int, optional
        Bytes allowed for a strip's stack ring buffer (default 256 MiB).
    dtype : str or numpy dtype, optional
        Stack dtype (default float32).

    Returns
    -------
    strips : list of Strip
        Left to right; every centre column belongs to exactly one strip.

    Raises
    ------
    ValueError
        If the budget cannot hold ``Np`` rows of the narrowest useful strip.
    """
    Np = as_Np(Np)
    widx = as_int("widx", widx, minimum=1, odd=True)
    widy = widx if widy is None else as_int("widy", widy, minimum=1, odd=True)
    max_memory = as_int("max_memory", max_memory, minimum=1)
    itemsize = as_dtype("dtype", dtype).itemsize
    r0, r1 = (int(v) for v in star_rows)
    c0, c1 = (int(v) for v in star_cols)
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"empty star region rows {star_rows}, cols {star_cols}")
    out_rows = r1 - r0 + Np - 1
    want = min(out_rows, Np + RING_EXTRA_ROWS)
    W = c1 - c0
    for ns in range(1, W + 1):
        width = math.ceil(W / ns)
        if _ring_rows(max_memory, width + Np - 1, Np, itemsize) >= want:
            break
    else:
        ns, width = W, 1
    if _ring_rows(max_memory, width + Np - 1, Np, itemsize) < min(out_rows, Np):
        raise ValueError(f"max_memory: {max_memory} bytes cannot hold {Np} rows of a one-column "
                         f"strip's stack ({stack_bytes(Np, Np, Np, dtype)} bytes needed)")
    edges = np.linspace(c0, c1, ns + 1).round().astype(int)
    strips = []
    for i in range(ns):
        oc = int(edges[i + 1] - edges[i]) + Np - 1
        # More rows than `want` would only make the sweep's rounds longer, not its work less.
        ring = int(min(want, _ring_rows(max_memory, oc, Np, itemsize)))
        strips.append(Strip(int(edges[i]), int(edges[i + 1]), ring))
    return strips


@dataclass(frozen=True)
class StripSweep:
    """One strip's sweep: which centres, the input window, ring rows (see :func:`sweep_plan`).

    Attributes
    ----------
    sel : ndarray of int64
        Indices of the centres in the strip, sorted by row (stable).
    r0, r1, c0, c1 : int
        Padded-image window ``[r0:r1, c0:c1]`` whose stack the strip sweeps.
    ring_rows : int
        Boxcar-output rows held by the ring buffer.
    """

    sel: np.ndarray
    r0: int
    r1: int
    c0: int
    c1: int
    ring_rows: int


def sweep_plan(R, C, Np, widx, widy, max_memory, dtype):
    """Strips of padded stamp centres and the shared ring/bimage buffers for ``lpi_strip``.

    Parameters
    ----------
    R, C : (n,) ndarray of int64
        Stamp centres in padded-image coordinates (the padding must hold every stamp and its
        boxcar window: ``(Np - 1) / 2 + (wid - 1) / 2`` pixels beyond the centres).
    Np, widx, widy, max_memory, dtype
        As :func:`plan_strips` (``widy`` not None).

    Returns
    -------
    sweeps : list of StripSweep
        Non-empty strips, left to right; every centre is in exactly one.
    ring_buf, bim_buf : ndarray of ``dtype``
        Buffers large enough for every strip (reused strip after strip). ``ring_buf`` starts on
        a 64-byte cache-line boundary: the sweep writes whole lines of the ring (those holding
        the entries the stamps read), so that which lines, and how many values
        (``stack_values_written``), then follow from the inputs alone, not from where the
        allocator put the buffer.

    Notes
    -----
    The one strip plan of the C++ sweep (``lpi_strip``), shared by :func:`cloudcov.process_ccd`
    and :func:`cloudcov.impute`. Results never depend on it (each centre's stamp and boxcar
    window are complete in its strip).
    """
    dt = np.dtype(dtype)
    strips = plan_strips((int(R.min()), int(R.max()) + 1), (int(C.min()), int(C.max()) + 1),
                         Np, widx, widy, max_memory, dt)
    nslot = int(_core.n_slots(Np))
    h = (Np - 1) // 2
    mr, mc = h + (widx - 1) // 2, h + (widy - 1) // 2
    out_rows = int(R.max() - R.min()) + Np   # boxcar-output rows of a strip holding every centre
    ring_len = max((s.col1 - s.col0 + Np - 1) * s.ring_rows for s in strips) * nslot
    bim_len = max(s.col1 - s.col0 + Np - 1 for s in strips) * out_rows
    sweeps = []
    for strip in strips:
        sel = np.flatnonzero((C >= strip.col0) & (C < strip.col1))
        if sel.size == 0:
            continue
        sel = sel[np.argsort(R[sel], kind="stable")]
        a0, a1 = int(R[sel].min()) - mr, int(R[sel].max()) + mr + 1
        b0, b1 = strip.col0 - mc, strip.col1 + mc
        ring_rows = min(strip.ring_rows, a1 - a0 - widx + 1)
        sweeps.append(StripSweep(sel, a0, a1, b0, b1, ring_rows))
    return sweeps, _aligned_empty(ring_len, dt), np.empty(bim_len, dtype=dt)


def _aligned_empty(n, dtype, align=64):
    """An uninitialised 1-d C-contiguous array of ``n`` elements of ``dtype`` whose data start
    on an ``align``-byte boundary (a view into a slightly larger byte buffer, which it keeps
    alive).

    Parameters
    ----------
    n : int
        Number of elements (>= 0).
    dtype : numpy dtype
    align : int
        Alignment in bytes, a power of two that is a multiple of the item size.

    Returns
    -------
    ndarray of shape (n,)
    """
    dt = np.dtype(dtype)
    if align <= 0 or align & (align - 1) or align % dt.itemsize:
        raise ValueError(f"align: expected a power of two multiple of {dt.itemsize} bytes, got {align}")
    raw = np.empty(int(n) * dt.itemsize + align, dtype=np.uint8)
    off = -raw.ctypes.data % align
    return raw[off:off + int(n) * dt.itemsize].view(dt)


def progress_bar(iterable, desc, enabled):
    """``tqdm(iterable)`` when ``enabled`` and tqdm is importable, else ``iterable``."""
    if enabled:
        try:
            from tqdm.auto import tqdm
            return tqdm(iterable, desc=desc, unit="strip")
        except ImportError:  # pragma: no cover
            pass
    return iterable
