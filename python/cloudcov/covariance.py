"""Boxcar sums, the shifted-product stack and per-star covariance lookup (paper eq. 6).

Conventions: images are ``[row, col]`` numpy arrays. ``widx`` is the boxcar width along rows
(axis 0, crowdsource's ``x``) and ``widy`` along columns (axis 1, crowdsource's ``y``).
CloudCovErr.jl works on the transposed (column-major FITS) array, so its ``widx`` is our
``widy``: pass Julia's ``(wx, wy)`` as ``widx=wy, widy=wx``. With the default square window
(129 x 129) the two agree.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._validate import INT32_MAX, as_image, as_int, as_Np, as_threads

__all__ = ["boxcar", "stack_value", "shift_stack", "build_cov", "local_covariance"]


def _widths(widx, widy, shape=None, name_x="widx", name_y="widy"):
    widx = as_int(name_x, widx, minimum=1, odd=True, maximum=INT32_MAX)
    widy = widx if widy is None else as_int(name_y, widy, minimum=1, odd=True, maximum=INT32_MAX)
    if shape is not None:
        if widx > shape[0]:
            raise ValueError(f"{name_x}: window {widx} larger than the image ({shape[0]} rows)")
        if widy > shape[1]:
            raise ValueError(f"{name_y}: window {widy} larger than the image ({shape[1]} columns)")
    return widx, widy


class ShiftStack(np.ndarray):
    """A shifted-product stack (a numpy array) that records the boxcar widths it sums over.

    :func:`shift_stack` returns its stack as this subclass (a view, no copy) with
    ``widths = (widx, widy)``; :func:`build_cov` refuses other widths instead of returning a
    wrongly normalised covariance. Slices keep the record; arrays from elsewhere have none
    (``widths`` is None) and cannot be checked.
    """

    widths = None

    def __array_finalize__(self, obj):
        self.widths = getattr(obj, "widths", None)


def boxcar(image, widx, widy=None, *, mean=False):
    """Boxcar sums (or means) of an image over its valid region, by running sums.

    Parameters
    ----------
    image : (nrow, ncol) ndarray of float32 or float64
        C-contiguous input image, finite values.
    widx, widy : int
        Odd window widths along rows and columns (``widy`` defaults to ``widx``); each must
        not exceed the image size along its axis.
    mean : bool, optional
        Divide the sums by ``widx * widy``.

    Returns
    -------
    out : (nrow - widx + 1, ncol - widy + 1) ndarray, same dtype as ``image``
        ``out[r, c] = sum(image[r:r + widx, c:c + widy])``; the window starting at (r, c),
        i.e. centred on pixel ``(r + (widx-1)//2, c + (widy-1)//2)``. Sums are accumulated in
        float64 whatever the input dtype.

    Raises
    ------
    TypeError
        If ``image`` is not a float32/float64 ndarray.
    ValueError
        Wrong ndim, non-contiguous, NaN/inf values, even or too large widths.

    Notes
    -----
    Mirrors CloudCovErr.jl ``boxsmooth!`` (src/cov.jl).

    Examples
    --------
    >>> import numpy as np, cloudcov
    >>> cloudcov.boxcar(np.ones((5, 5)), 3)[0, 0]
    np.float64(9.0)
    """
    image = as_image("image", image)
    widx, widy = _widths(widx, widy, image.shape)
    out = _core.boxcar(image, widx, widy)
    if mean:
        out /= widx * widy
    return out


def stack_value(stack, row, col, drow, dcol):
    """Read one entry of a stack from :func:`shift_stack`, for a shift of any sign.

    Parameters
    ----------
    stack : (Np, nrow, ncol, 2 Np - 1) ndarray
        Stack returned by :func:`shift_stack`.
    row, col : int
        Boxcar-output pixel (0-based).
    drow, dcol : int
        Shift, ``|drow|, |dcol| < Np``.

    Returns
    -------
    float
        ``sum over the window at (row, col) of x[i, j] * x[i + drow, j + dcol]``. For
        ``drow < 0`` this is the stored mirror entry ``stack[-drow, row + drow, col + dcol,
        -dcol + Np - 1]``; for ``drow >= 0`` it is ``stack[drow, row, col, dcol + Np - 1]``.

    Raises
    ------
    ValueError
        Wrong stack shape, shift or position out of range.
    """
    stack = as_image("stack", stack, ndim=4, allow_nonfinite=True)
    Np = stack.shape[0]
    if Np < 3 or Np % 2 != 1 or stack.shape[3] != 2 * Np - 1:
        raise ValueError(f"stack: expected shape (Np, nrow, ncol, 2 Np - 1) with odd Np >= 3, "
                         f"got {stack.shape}")
    drow = as_int("drow", drow, minimum=1 - Np, maximum=Np - 1)
    dcol = as_int("dcol", dcol, minimum=1 - Np, maximum=Np - 1)
    row = as_int("row", row)
    col = as_int("col", col)
    if drow < 0:
        row, col, drow, dcol = row + drow, col + dcol, -drow, -dcol
    if not (0 <= row < stack.shape[1] and 0 <= col < stack.shape[2]):
        raise ValueError(f"(row, col): position outside the stack's {stack.shape[1:3]} pixels "
                         "(after mirroring a negative drow)")
    return stack[drow, row, col, dcol + Np - 1].item()


def shift_stack(image, Np=33, widx=129, widy=None, *, threads=1, out=None):
    """Boxcar sums of the image and of its products with shifted copies of itself.

    Parameters
    ----------
    image : (nrow, ncol) ndarray of float32 or float64
        C-contiguous tile of the (infilled) residual image, finite values.
    Np : int, optional
        Odd stamp size (default 33).
    widx, widy : int, optional
        Odd boxcar widths along rows / columns (default 129; ``widy`` defaults to ``widx``).
    threads : int, optional
        Threads for the loop over shifts (0 = all cores, at most 2**31 - 1). The result is bitwise identical for
        any thread count. The GIL is released.
    out : tuple (bimage, stack), optional
        Preallocated outputs of the shapes and dtype below (no silent copy: wrong arrays
        raise).

    Returns
    -------
    bimage : (nrow - widx + 1, ncol - widy + 1) ndarray, dtype of ``image``
        Boxcar sums of ``image`` (valid region).
    stack : (Np, nrow - widx + 1, ncol - widy + 1, 2 Np - 1) ShiftStack, dtype of ``image``
        A numpy array recording ``widths = (widx, widy)`` for :func:`build_cov` (``out[1]`` is
        returned as given; it records the widths when it is itself a ShiftStack).
        ``stack[drow, r, c, dcol + Np - 1]`` = sum over the window at (r, c) of
        ``image[i, j] * image[i + drow, j + dcol]`` for ``0 <= drow < Np``,
        ``|dcol| < Np`` (negative ``drow``: the mirror entry, see :func:`stack_value`).
        Products whose partner pixel leaves the tile count as zero (such entries are never
        used by stamps inside the valid region). Running sums are accumulated in float64.
        Memory: ``Np (2 Np - 1) * dtype.itemsize`` bytes per output pixel (8.6 kB for Np=33
        float32). Each shift row ``stack[drow]`` is contiguous.

    Raises
    ------
    TypeError, ValueError
        Invalid image, Np, widths or ``out`` arrays.

    Notes
    -----
    Mirrors CloudCovErr.jl ``cov_avg!`` (src/cov.jl): paper eq. 6 as boxcar means of shifted
    products. CloudCovErr.jl skips the redundant half ``drow == 0, dcol < 0``; cloudcov computes
    it too (1.5% more work) so that every shift row has the same width.
    """
    image = as_image("image", image)
    Np = as_Np(Np)
    widx, widy = _widths(widx, widy, image.shape)
    threads = as_threads(threads)
    shape = (image.shape[0] - widx + 1, image.shape[1] - widy + 1)
    sshape = (Np,) + shape + (2 * Np - 1,)
    if out is None:
        bimage = np.empty(shape, dtype=image.dtype)
        stack = np.empty(sshape, dtype=image.dtype).view(ShiftStack)
    else:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"out: expected a tuple (bimage, stack) of two arrays, got {type(out).__name__}")
        bimage, stack = out
        for name, a, shp in (("out[0]", bimage, shape), ("out[1]", stack, sshape)):
            if not isinstance(a, np.ndarray) or a.shape != shp or a.dtype != image.dtype \
                    or not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError(f"{name}: expected a writeable C-contiguous {image.dtype} array "
                                 f"of shape {shp}")
    _core.shift_stack(image, Np, widx, widy, bimage, stack, threads)
    if isinstance(stack, ShiftStack):
        stack.widths = (widx, widy)
    return bimage, stack


def build_cov(bimage, stack, row, col, Np, widx, widy=None, *, julia_compat=False):
    """Covariance matrix and mean of an Np x Np stamp, looked up in the stack.

    Parameters
    ----------
    bimage, stack : ndarrays from :func:`shift_stack` (float32 or float64)
    row, col : int
        Stamp centre in boxcar-output coordinates (0-based): the stamp covers
        ``bimage[row - h : row + h + 1, col - h : col + h + 1]`` with ``h = (Np - 1) // 2``.
        For a tile ``x``, boxcar-output pixel (r, c) is centred on ``x[r + (widx-1)//2,
        c + (widy-1)//2]``.
    Np : int
        Odd stamp size.
    widx, widy : int
        The boxcar widths used for the stack (``widy`` defaults to ``widx``); a stack from
        :func:`shift_stack` records them and other values are refused.
    julia_compat : bool, optional
        Reproduce CloudCovErr.jl v0.9.2 exactly: arithmetic in the stack precision in Julia's
        order, and the mean returned as ``sqrt(mu * mu) = |mu|``. Default: float64 arithmetic
        and the signed local mean (paper eq. 4).

    Returns
    -------
    cov : (Np**2, Np**2) ndarray, dtype of the stack
        Symmetric covariance over the flattened (row-major) stamp,
        ``(<x_i x_j> - <x_i><x_j>) * N / (N - 1)`` with ``N = widx * widy`` samples.
    mu : (Np**2,) ndarray
        Local boxcar mean of each stamp pixel.

    Raises
    ------
    ValueError
        Inconsistent shapes, a stamp that leaves ``bimage``, ``widx = widy = 1``, or widths
        other than those the stack records (:class:`ShiftStack`).

    Notes
    -----
    Mirrors CloudCovErr.jl ``build_cov!`` (src/perstar.jl) after its "fix mu bug" commit.
    """
    recorded = getattr(stack, "widths", None)
    bimage = as_image("bimage", bimage, allow_nonfinite=True)
    stack = as_image("stack", stack, ndim=4, allow_nonfinite=True)
    Np = as_Np(Np)
    widx, widy = _widths(widx, widy)
    if widx * widy < 2:
        raise ValueError("widx, widy: the N/(N-1) normalisation needs N = widx * widy >= 2 "
                         "boxcar samples, got widx = widy = 1")
    if recorded is not None and tuple(recorded) != (widx, widy):
        raise ValueError(f"widx, widy: ({widx}, {widy}) differ from the boxcar widths "
                         f"{tuple(recorded)} the stack was computed with (shift_stack)")
    if stack.dtype != bimage.dtype:
        raise TypeError(f"stack: dtype {stack.dtype} != bimage dtype {bimage.dtype}")
    if stack.shape != (Np,) + bimage.shape + (2 * Np - 1,):
        raise ValueError(f"stack: shape {stack.shape} does not match bimage {bimage.shape} and Np={Np}")
    h = (Np - 1) // 2
    row = as_int("row", row)
    col = as_int("col", col)
    if not (h <= row < bimage.shape[0] - h and h <= col < bimage.shape[1] - h):
        raise ValueError(f"(row, col) = ({row}, {col}): the {Np}x{Np} stamp leaves the boxcar "
                         f"image of shape {bimage.shape}")
    return _core.build_cov(bimage, stack, Np, widx, widy, row - h, col - h, bool(julia_compat))


def local_covariance(image, row, col, Np=33, widx=129, widy=None, *, julia_compat=False):
    """Local covariance and mean of the Np x Np stamp centred on image pixel (row, col).

    A convenience for inspection and tests: computes the stack only on the sub-image the
    stamp needs, then calls :func:`build_cov`.

    Parameters
    ----------
    image : (nrow, ncol) ndarray of float32 or float64
        Residual image (infilled, finite).
    row, col : int
        Stamp centre, 0-based image pixel. The stamp and its boxcar windows must lie inside
        the image: ``(Np-1)//2 + (widx-1)//2 <= row < nrow - (Np-1)//2 - (widx-1)//2`` and
        likewise for ``col`` with ``widy``.
    Np, widx, widy, julia_compat
        As in :func:`shift_stack` and :func:`build_cov`.

    Returns
    -------
    cov : (Np**2, Np**2) ndarray
    mu : (Np**2,) ndarray

    Raises
    ------
    ValueError
        If the stamp plus its sampling windows leave the image.

    Notes
    -----
    Equivalent to CloudCovErr.jl ``cov_avg!`` + ``build_cov!`` for one star; paper eq. 6.
    """
    image = as_image("image", image)
    Np = as_Np(Np)
    widx, widy = _widths(widx, widy)
    row = as_int("row", row)
    col = as_int("col", col)
    h = (Np - 1) // 2
    ax, ay = h + (widx - 1) // 2, h + (widy - 1) // 2
    if not (ax <= row < image.shape[0] - ax and ay <= col < image.shape[1] - ay):
        raise ValueError(f"(row, col) = ({row}, {col}): stamp plus boxcar windows "
                         f"(half-sizes {ax}, {ay}) leave the image of shape {image.shape}")
    tile = np.ascontiguousarray(image[row - ax:row + ax + 1, col - ay:col + ay + 1])
    bimage, stack = shift_stack(tile, Np, widx, widy)
    return build_cov(bimage, stack, h, h, Np, widx, widy, julia_compat=julia_compat)
