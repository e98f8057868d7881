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

__all__ = ["InputFileError", "open_fits", "read_image_hdu", "atomic_path", "native",
           "fits_layout_problem", "truncation_problem", "remove_stale_temporaries",
           "write_bytes"]


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
    # a cut file: get_hdu / fits_layout_problem / truncation_problem say so in the error
    warnings.filterwarnings("ignore", message=r"File may have been truncated",
                            category=AstropyUserWarning)


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


def fits_layout_problem(path, hdul, index):
    """Why HDU ``index`` of an open FITS file does not fit the file, or None.

    Checks what the header declares against the bytes on disk: the data must end within the
    file (else it is truncated, or BITPIX/NAXISn/PCOUNT lie), the next HDU must start right
    after it (else the header's data size is wrong), and a binary table's column formats
    (TFORMn) must add up to its row width (NAXIS1).

    Parameters
    ----------
    path : str or path-like
    hdul : astropy.io.fits.HDUList
        Opened from ``path``.
    index : int
        The HDU.

    Returns
    -------
    str or None
        A sentence naming the cards involved (for an :class:`InputFileError`).
    """
    from astropy.io import fits

    size = os.path.getsize(path)
    hdu = hdul[index]
    hdr = hdu.header
    info = hdu.fileinfo()       # (HDUList.fileinfo would parse every later header)
    if info is None:
        return None
    end = int(info["datLoc"]) + int(info["datSpan"])
    raw = hdr                                   # the header of what is on disk
    if isinstance(hdu, fits.CompImageHDU):      # tile-compressed: a binary table on disk
        raw = getattr(getattr(hdu, "_bintable", None), "header", None)
        if raw is None:                         # astropy internals moved: do not guess
            return None
    naxes = " x ".join(str(raw.get(f"NAXIS{k}")) for k in range(int(raw.get("NAXIS", 0)), 0, -1))
    decl = (f"BITPIX = {raw.get('BITPIX')}, NAXIS = {naxes or 0}"
            + (f", PCOUNT = {raw.get('PCOUNT')}" if raw.get("PCOUNT") else ""))
    nbytes = _data_bytes(raw)
    if int(info["datLoc"]) + nbytes > size:
        return (f"file truncated or header corrupt: the header declares {nbytes} data "
                f"bytes ({decl}) from byte {info['datLoc']}, but the file has {size} bytes")
    if end < size:
        with open(path, "rb") as f:
            f.seek(end)
            nxt = f.read(80)
        if nxt.strip(b"\0 ") and not nxt.startswith(b"XTENSION="):
            return (f"header corrupt: the data size it declares ({decl}) does not end where "
                    f"the next extension's header starts (byte {end})")
    if isinstance(hdu, fits.BinTableHDU) and not isinstance(hdu, fits.CompImageHDU):
        try:
            width = hdu.columns.dtype.itemsize
        except Exception as exc:  # unparseable TFORMn
            return f"table header corrupt: cannot parse its column formats ({exc})"
        if width != int(hdr.get("NAXIS1", width)):
            forms = ", ".join(f"{c.name}={c.format}" for c in hdu.columns)
            return (f"table header corrupt: the column formats (TFORMn: {forms}) take {width} "
                    f"bytes per row but NAXIS1 = {hdr.get('NAXIS1')}")
    return None


def _data_bytes(hdr):
    """Data bytes an HDU header declares (FITS standard sec. 4.4.1, without padding)."""
    naxis = int(hdr.get("NAXIS", 0))
    n = 0
    if naxis:
        n = 1
        for k in range(1, naxis + 1):
            n *= int(hdr.get(f"NAXIS{k}", 0))
    return abs(int(hdr.get("BITPIX", 8))) // 8 * int(hdr.get("GCOUNT", 1)) * (
        int(hdr.get("PCOUNT", 0)) + n)


def truncation_problem(path, hdul):
    """Why a FITS file ends early, or None: the last HDU that loads extends past the file end.

    Parameters
    ----------
    path : str or path-like
    hdul : astropy.io.fits.HDUList
        Opened from ``path`` (all HDUs are loaded).

    Returns
    -------
    str or None
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul.readall()
        except Exception as exc:
            return f"file truncated or corrupt after extension {len(hdul) - 1} ({exc})"
    for w in caught:
        if "truncated" in str(w.message):
            return f"file truncated: {w.message}"
    if len(hdul):
        problem = fits_layout_problem(path, hdul, len(hdul) - 1)
        if problem:
            return problem
        info = hdul[-1].fileinfo()
        end = int(info["datLoc"]) + int(info["datSpan"]) if info else None
        size = os.path.getsize(path)
        if end is not None and end < size:
            with open(path, "rb") as f:
                f.seek(end)
                tail = f.read(80)
            if tail.startswith(b"XTENSION="):   # an extension header cut before its END card
                return (f"file truncated: the extension header at byte {end} is incomplete "
                        f"(the file ends at byte {size})")
    return None


def extension_names(hdul):
    """Upper-case EXTNAMEs of an open HDUList, in file order (PRIMARY included)."""
    return [hdu.name.upper() for hdu in hdul]


def get_hdu(hdul, path, extname, kind):
    """``hdul[extname]`` or an :class:`InputFileError` that names the file and extension.

    The extension's header is checked against the file (:func:`fits_layout_problem`): a
    truncated file or a header that lies about its data size (BITPIX, NAXISn, TFORMn) is
    reported as such, not as a missing extension or a failed reshape.
    """
    from astropy.utils.exceptions import AstropyUserWarning

    with warnings.catch_warnings():
        # garbage parsed as a header after a lying one: the checks below name the cause
        warnings.simplefilter("ignore", AstropyUserWarning)
        return _get_hdu(hdul, path, extname, kind)


def _get_hdu(hdul, path, extname, kind):
    try:
        hdu = hdul[extname]
    except KeyError:
        why = truncation_problem(path, hdul)
        have = [n for n in extension_names(hdul) if n != "PRIMARY"]
        shown = ", ".join(have[:12]) + (" ..." if len(have) > 12 else "")
        if why:
            raise InputFileError(path, extname, f"{kind}: extension not found, {why} "
                                 f"(extensions before the damage: {shown})") from None
        raise InputFileError(path, extname, f"{kind}: extension not found (have: {shown})") from None
    why = fits_layout_problem(path, hdul, hdul.index_of(extname))
    if why:
        raise InputFileError(path, extname, f"{kind}: {why}")
    return hdu


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
def atomic_path(path):
    """A temporary path beside ``path`` that replaces it only if the block succeeds.

    Parameters
    ----------
    path : str or path-like
        Final destination; its directory is created.

    Yields
    ------
    pathlib.Path
        Temporary file (``<name>.<random>.tmp`` in the same directory) to write.

    Raises
    ------
    ValueError
        If ``path`` exists and is not a regular file (a directory, or a device, FIFO or socket
        such as ``/dev/null``): renaming the temporary file over it would replace it (run as
        root, an output sent to ``/dev/null`` used to delete the device). Checked before the
        block runs.

    Notes
    -----
    ``os.replace`` is atomic on POSIX within one file system: readers see the old file or the
    new one, never a partial write. On error the temporary file is removed; a killed process
    may leave a ``*.tmp`` file, which is never mistaken for output and which
    :func:`remove_stale_temporaries` removes (under the output's lock).
    """
    path = pathlib.Path(path)
    if path.exists() and not path.is_file():
        raise ValueError(f"{path}: exists and is not a regular file (a directory, device, FIFO or "
                         "socket); cloudcov writes an output by renaming a temporary file over it, "
                         "which would replace it: give a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = pathlib.Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())        # mkstemp makes 0600; give a normal file mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def temporary_pattern(path):
    """Glob pattern of the temporary files :func:`atomic_path` makes for ``path``."""
    return pathlib.Path(path).name + ".*.tmp"


def remove_stale_temporaries(path):
    """Remove temporaries of ``path`` left by a killed writer (``<name>.<random>.tmp``).

    Call it only while holding the output's lock (:func:`cloudcov.io.locking.exclusive_lock`):
    then no live writer owns them. Symbolic links are left alone.

    Parameters
    ----------
    path : str or path-like
        The output whose temporaries to remove.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    for tmp in path.parent.glob(temporary_pattern(path)):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_bytes(path, data):
    """Write ``data`` to ``path`` and flush it to disk (fsync); errors raise ``OSError``.

    Parameters
    ----------
    path : str or path-like
        Usually the temporary path of :func:`atomic_path`.
    data : bytes-like
    """
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
