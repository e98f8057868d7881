"""Shared helpers of the file readers and writers: errors naming the file and extension,
quiet FITS access, atomic output paths."""
from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
import warnings

import numpy as np

from ..errors import CloudCovError

__all__ = ["InputFileError", "open_fits", "read_image_hdu", "atomic_path", "native"]


class InputFileError(CloudCovError):
    """An input file or one of its extensions is missing, unreadable or inconsistent.

    Attributes
    ----------
    path : str
        The file.
    extname : str or None
        The extension (HDU name or HDF5 group), when the problem is in one.
    """

    def __init__(self, path, extname, problem):
        self.path = str(path)
        self.extname = extname
        where = f"{self.path}[{extname}]" if extname else self.path
        super().__init__(f"{where}: {problem}")


def _quiet_fits_warnings():
    """Silence the floods of CP header warnings (as crowdsource's read_data does)."""
    from astropy.io.fits.verify import VerifyWarning
    from astropy.utils.exceptions import AstropyUserWarning

    warnings.filterwarnings("ignore", message=r".*following header keyword is invalid",
                            category=AstropyUserWarning)
    warnings.filterwarnings("ignore", category=VerifyWarning)


@contextlib.contextmanager
def open_fits(path, kind="FITS"):
    """``astropy.io.fits.open`` with CP header warnings silenced and a clear error.

    Parameters
    ----------
    path : str or path-like
    kind : str, optional
        What the file is (``"ooi"``, ``"crowdsource catalogue"``), for error messages.

    Yields
    ------
    astropy.io.fits.HDUList

    Raises
    ------
    FileNotFoundError
        The file does not exist (the message names it and ``kind``).
    InputFileError
        The file is not readable FITS.
    """
    from astropy.io import fits

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{kind} file not found: {path}")
    with warnings.catch_warnings():
        _quiet_fits_warnings()
        try:
            hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
        except OSError as exc:
            raise InputFileError(path, None, f"cannot read {kind} file as FITS ({exc})") from exc
        try:
            yield hdul
        finally:
            hdul.close()


def extension_names(hdul):
    """Upper-case EXTNAMEs of an open HDUList, in file order (PRIMARY included)."""
    return [hdu.name.upper() for hdu in hdul]


def get_hdu(hdul, path, extname, kind):
    """``hdul[extname]`` or an :class:`InputFileError` that names the file and extension."""
    try:
        return hdul[extname]
    except KeyError:
        have = [n for n in extension_names(hdul) if n != "PRIMARY"]
        shown = ", ".join(have[:12]) + (" ..." if len(have) > 12 else "")
        raise InputFileError(path, extname, f"{kind}: extension not found (have: {shown})") from None


def read_image_hdu(path, extname, kind, *, dtype=None):
    """Read one image extension as a native-byte-order array, with its header.

    Parameters
    ----------
    path : str or path-like
        FITS file, plain or tile-compressed (fpack ``.fits.fz``).
    extname : str
        Extension name (``"S6"``, ``"N6_MOD"``).
    kind : str
        What it is, for error messages.
    dtype : numpy dtype, optional
        Output dtype (default: the stored type in native byte order).

    Returns
    -------
    data : (nrow, ncol) ndarray
        C-contiguous, indexed ``[row, col]`` (FITS NAXIS2, NAXIS1).
    header : astropy.io.fits.Header

    Raises
    ------
    FileNotFoundError, InputFileError
        Missing file, missing extension, or an extension without a 2-D image.
    """
    with open_fits(path, kind) as hdul:
        hdu = get_hdu(hdul, path, extname, kind)
        with warnings.catch_warnings():
            _quiet_fits_warnings()
            try:
                data = hdu.data
            except Exception as exc:  # corrupt compressed tiles, truncated files
                raise InputFileError(path, extname, f"{kind}: cannot read data ({exc})") from exc
            header = hdu.header.copy()
        if data is None or np.ndim(data) != 2:
            shape = None if data is None else np.shape(data)
            raise InputFileError(path, extname, f"{kind}: expected a 2-D image, got {shape}")
        data = native(np.asarray(data), dtype)
    return data, header


def native(a, dtype=None):
    """C-contiguous copy in native byte order (and ``dtype`` when given)."""
    dt = a.dtype.newbyteorder("=") if dtype is None else np.dtype(dtype)
    return np.ascontiguousarray(a.astype(dt, copy=True))


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, before_replace=None):
    """A temporary path beside ``path`` that replaces it only if the block succeeds.

    Parameters
    ----------
    path : str or path-like
        Final destination; its directory is created.
    before_replace : callable, optional
        Called with the temporary path after the block, just before ``os.replace`` (a test
        hook for killing a run between the two).

    Yields
    ------
    pathlib.Path
        Temporary file (``<name>.<random>.tmp`` in the same directory) to write.

    Notes
    -----
    ``os.replace`` is atomic on POSIX within one file system: readers see the old file or the
    new one, never a partial write. On error the temporary file is removed; a killed process
    may leave a ``*.tmp`` file, which is never mistaken for output.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = pathlib.Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())        # mkstemp makes 0600; give a normal file mode
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
