"""Memory-budgeted strips for the shifted-product stack."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _core
from ._validate import as_dtype, as_int, as_Np

__all__ = ["Strip", "stack_bytes", "plan_strips", "DEFAULT_MAX_MEMORY"]

#: Default ceiling for the stack ring buffer (bytes): 256 MiB. A ring of Np + 16 rows is
#: all a sweep needs, so the budget only sets the strip width; on a DECam CCD it gives 4 strips
#: of 544 boxcar-output columns, whose running sums (306 KiB per shift row) and staging row
#: stay in a core's L2 cache: the stack costs no more than with 2 strips (measured in situ,
#: benchmarks/results/bench_strips.txt) and the ring is 0.21 GiB instead of 0.41 GiB.
DEFAULT_MAX_MEMORY = 256 << 20


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
    whose ring holds at least ``Np + 16`` rows are chosen, and the ring holds no more than
    that (nor than the strip's rows): a larger ring would only lengthen the rounds of the
    sweep, not reduce its work, so memory is set by what the image needs, ``max_memory`` being
    the ceiling.

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
    want = min(out_rows, Np + 16)
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
