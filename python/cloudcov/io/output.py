"""Per-exposure LPI outputs: a FITS file like CloudCovErr.jl's ``cer`` file or an HDF5 file,
written atomically, with per-CCD part files for resumable runs.

FITS layout (``.cat.cer.fits``)
    ``PRIMARY``: copy of the crowdsource catalogue's primary header (the exposure header)
    plus ``CLOUDVER`` and the exposure identity; one ``<CCD>_CAT`` binary table per CCD with
    the crowdsource columns followed by the LPI columns (``cflux``, ``dcflux``,
    ``dcflux_diag``, ``fdb_res``, ``fdb_pred``, ``cchi2`` float32; ``kcond0``, ``kcond``,
    ``kpred`` int32; ``dnt`` stored as uint8 because FITS has no signed byte, see
    :mod:`cloudcov.io.catalog`). Each table header holds ``CCPARAMS`` (JSON of the
    parameters that define the result), ``CCINFO`` (JSON: version, input files, timings,
    statistics), readable ``LPI*`` cards, and ``CHECKSUM``/``DATASUM``.

HDF5 layout (``.cat.cer.h5``)
    Root attributes ``format``, ``cloudcov_version``, ``primary_header`` (the exposure
    header as text) and the exposure identity; per CCD, astropy's HDF5 table layout
    (``Table.write(..., serialize_meta=True)``): one compound dataset ``/<CCD>`` (gzip or lzf,
    byte shuffle, Fletcher-32 checksums; ``dnt`` int8) holding the input and LPI columns, and
    its YAML metadata ``/<CCD>.__table_column_meta__`` (column units, e.g. ``adu``, and
    ``meta['params']``, ``meta['info']``). So ``Table.read("out.h5", path="N6")`` returns the
    CCD's table, and pandas or h5py users find one compound dataset per CCD. The dataset's
    attributes repeat every parameter, ``params_json``, ``info_json``, ``input_<kind>`` file
    names, ``cloudcov_version``, ``nstars``, ``sha256`` (of the data and the YAML, checked on
    resume) and ``complete``.

Writing: HDF5 files are built in memory and written to disk with ordinary file writes, so a
full disk gives a clean ``OSError`` (no HDF5 library state to unwind) and the temporary file
is removed; FITS files are written by astropy with ``CHECKSUM``/``DATASUM``.

A CCD is *done* when its table is present, passes verification (FITS CHECKSUM/DATASUM and the
header/file-size layout; HDF5 Fletcher-32 and the stored SHA-256) and its recorded
``CCPARAMS``/``params_json`` equals the parameters of the new run.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import warnings

import numpy as np
from astropy.table import Table

from .._columns import restore_dtypes
from .._provenance import version as _version
from ._files import atomic_path, fits_layout_problem, native, write_bytes
from .catalog import fits_safe, json_text

__all__ = [
    "FORMATS", "format_of", "output_path", "parts_dir", "part_path", "write_ccd_output",
    "ccd_status", "verify_ccd", "output_ccds", "assemble_output", "read_output",
]

FORMATS = ("fits", "hdf5")
_SUFFIX = {"fits": ".fits", "hdf5": ".h5"}
_SUFFIXES = {"fits": (".fits", ".fit", ".fts"), "hdf5": (".h5", ".hdf5", ".hdf", ".he5")}
_META = ".__table_column_meta__"
_PARAM_CARDS = {"thr": "LPITHR", "outthr": "LPIOUTTH", "Np": "LPINP", "widx": "LPIWIDX",
                "widy": "LPIWIDY", "dtype": "LPIDTYPE", "seed": "LPISEED"}


def _check_format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    return fmt


def format_of(path, fmt=None):
    """The output format of a file name, checked against an explicit ``fmt``.

    Parameters
    ----------
    path : str or path-like
        Output file; ``.fits``/``.fit``/``.fts`` mean FITS, ``.h5``/``.hdf5``/``.hdf``/``.he5``
        HDF5 (case-insensitive).
    fmt : {"fits", "hdf5"} or None, optional
        The format asked for (``--format``); None: from the suffix, FITS if it says nothing.

    Returns
    -------
    {"fits", "hdf5"}

    Raises
    ------
    ValueError
        ``fmt`` contradicts the suffix (e.g. ``--format hdf5 --out x.fits``), or is unknown.
    """
    name = pathlib.Path(path).name.lower()
    implied = next((f for f, sfx in _SUFFIXES.items() if name.endswith(sfx)), None)
    if fmt is None:
        return implied or "fits"
    _check_format(fmt)
    if implied is not None and implied != fmt:
        raise ValueError(f"format: {fmt!r} does not match the output name {path} (a "
                         f"{implied.upper()} suffix); change --format or the suffix")
    return fmt


def output_path(out_dir, date, filt, vers, fmt="fits"):
    """Output file of one exposure: ``<out_dir>/c4d_<date>_ooi_<filt>_<vers>.cat.cer.<ext>``.

    Parameters
    ----------
    out_dir : str or path-like
        CloudCovErr.jl writes to ``<basecat>/cer/``.
    date, filt, vers : str
    fmt : {"fits", "hdf5"}, optional
        ``.fits`` or ``.h5``.

    Returns
    -------
    pathlib.Path
    """
    return pathlib.Path(out_dir) / f"c4d_{date}_ooi_{filt}_{vers}.cat.cer{_SUFFIX[_check_format(fmt)]}"


def parts_dir(out):
    """Folder of the per-CCD part files of an output file: ``<out>.parts``."""
    out = pathlib.Path(out)
    return out.with_name(out.name + ".parts")


def part_path(out, ccd, fmt):
    """Part file of one CCD: ``<out>.parts/<ccd><suffix>``."""
    return parts_dir(out) / f"{ccd}{_SUFFIX[_check_format(fmt)]}"


def _canonical(params):
    """Parameters as they come back from JSON (for equality tests)."""
    return json.loads(json_text(params))


def _ccd_hdu(table, ccd, params, info):
    from astropy.io import fits

    t = fits_safe(table)
    t.meta = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        hdu = fits.table_to_hdu(t)
    hdu.name = f"{ccd}_CAT"
    h = hdu.header
    h["NSTARS"] = (len(table), "stars in this CCD")
    h["CLOUDVER"] = (str(info.get("version", "")), "cloudcov version")
    for key, card in _PARAM_CARDS.items():
        if key in params and isinstance(params[key], (int, float, str, np.integer, np.floating)):
            h[card] = params[key]
    h["CCPARAMS"] = json_text(params)
    h["CCINFO"] = json_text(info)
    h["COMMENT"] = "cloudcov LPI columns: cflux dcflux dcflux_diag fdb_res fdb_pred cchi2"
    h["COMMENT"] = "kcond0 kcond kpred dnt (dnt int8 bits stored as uint8)."
    h["COMMENT"] = "x = row, y = column (crowdsource convention, 0-based)."
    return hdu


def _primary_hdu(primary_header, exposure):
    from astropy.io import fits

    hdr = fits.Header()
    if primary_header is not None:
        for card in primary_header.cards:
            if card.keyword in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "CHECKSUM", "DATASUM") \
                    or card.keyword.startswith("NAXIS"):
                continue
            hdr.append(card)
    hdr["CLOUDVER"] = (_version(), "cloudcov version")
    for k, v in (exposure or {}).items():
        hdr[k] = v
    return fits.PrimaryHDU(header=hdr)


def _h5_digest(f, ccd):
    """SHA-256 of a CCD's stored table: the dataset's bytes, then its YAML metadata."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(f[ccd][()]).tobytes())
    if ccd + _META in f:
        for line in f[ccd + _META][()]:
            h.update(bytes(line))
            h.update(b"\n")
    return h.hexdigest()


def _write_h5_table(f, ccd, table, params, info, compression):
    """One CCD in astropy's HDF5 table layout, with attributes for h5py/pandas users."""
    t = table.copy(copy_data=False)
    t.meta = {"ccd": ccd, "params": _canonical(params), "info": json.loads(json_text(info))}
    kw = {}
    if len(t):
        kw = dict(compression=compression, shuffle=True, fletcher32=True)
        if compression == "gzip":
            kw["compression_opts"] = 4
    t.write(f, path=ccd, format="hdf5", serialize_meta=True, **kw)
    d = f[ccd]
    for k, v in params.items():
        if isinstance(v, (bool, int, float, str, np.integer, np.floating, np.bool_)):
            d.attrs[k] = v
    d.attrs["params_json"] = json_text(params)
    d.attrs["info_json"] = json_text(info)
    d.attrs["cloudcov_version"] = str(info.get("version", ""))
    for kind, p in (info.get("files") or {}).items():
        d.attrs[f"input_{kind}"] = os.fspath(p)
    d.attrs["nstars"] = len(table)
    d.attrs["sha256"] = _h5_digest(f, ccd)
    d.attrs["complete"] = True


def _h5_root_attrs(f, primary_header, exposure):
    f.attrs["format"] = "cloudcov-cer"
    f.attrs["cloudcov_version"] = _version()
    if primary_header is not None:
        f.attrs["primary_header"] = primary_header.tostring(sep="\n", endcard=False, padding=False)
    for k, v in (exposure or {}).items():
        f.attrs[k] = v


def _write_h5_file(path, fill):
    """Build an HDF5 file in memory with ``fill(h5py.File)``, then write it to ``path``.

    HDF5's own disk writes on a full disk leave the library in a state h5py cannot unwind
    (errors at close, aborts); building the file image in memory and writing its bytes with
    Python's file API turns a full disk into a plain ``OSError``.
    """
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w", track_order=True) as f:
        fill(f)
    write_bytes(path, buf.getbuffer())


def _h5_ccds(f):
    """Complete CCD tables of an open HDF5 output, in file order."""
    import h5py

    return [k for k, v in f.items() if isinstance(v, h5py.Dataset) and not k.endswith(_META)
            and bool(v.attrs.get("complete", False))]


def write_ccd_output(path, table, ccd, *, params, info=None, fmt="fits", primary_header=None,
                     exposure=None, compression="gzip"):
    """Write one CCD's output table to its own file, atomically.

    Parameters
    ----------
    path : str or path-like
        Destination (a part file or the output of ``cloudcov ccd``).
    table : astropy.table.Table
        Output of :func:`cloudcov.process_ccd` (input columns + LPI columns).
    ccd : str
        CCD name (FITS extension ``<ccd>_CAT``, HDF5 group ``<ccd>``).
    params : dict
        Parameters that define the result (JSON-serialisable); compared by :func:`ccd_status`.
    info : dict, optional
        Provenance: ``version``, ``files`` (input paths), timings, statistics.
    fmt : {"fits", "hdf5"}, optional
    primary_header : astropy.io.fits.Header, optional
        Exposure header for the FITS primary HDU / HDF5 root attribute.
    exposure : dict, optional
        Extra primary cards / root attributes (scalars; FITS keys of <= 8 characters).
    compression : {"gzip", "lzf"}, optional
        HDF5 dataset compression (default gzip level 4).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        Unknown ``fmt`` or ``compression``.
    OSError
        Write failure; ``path`` is then untouched.
    """
    _check_format(fmt)
    if compression not in ("gzip", "lzf"):
        raise ValueError(f"compression: expected 'gzip' or 'lzf', got {compression!r}")
    info = dict(info or {})
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        if fmt == "fits":
            from astropy.io import fits

            hdus = fits.HDUList([_primary_hdu(primary_header, exposure),
                                 _ccd_hdu(table, ccd, params, info)])
            hdus.writeto(tmp, overwrite=True, checksum=True)
        else:
            def fill(f):
                _h5_root_attrs(f, primary_header, exposure)
                _write_h5_table(f, ccd, table, params, info, compression)

            _write_h5_file(tmp, fill)
    return path


def output_ccds(path):
    """CCDs present in an output file, in file order.

    Parameters
    ----------
    path : str or path-like
        FITS (``<CCD>_CAT`` extensions) or HDF5 (complete groups) output.

    Returns
    -------
    list of str
        Empty when the file is missing or unreadable.
    """
    from .tables import is_hdf5

    path = pathlib.Path(path)
    if not path.exists():
        return []
    try:
        if is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                return _h5_ccds(f)
        from astropy.io import fits

        with fits.open(path, memmap=False) as hdul:
            return [h.name[:-4] for h in hdul if h.name.endswith("_CAT")]
    except Exception:   # unreadable or corrupt: holds nothing usable
        return []


def verify_ccd(path, ccd):
    """Check one CCD's table in an output file against its stored checksums.

    Parameters
    ----------
    path : str or path-like
        Output file (FITS or HDF5; final file or part file).
    ccd : str

    Returns
    -------
    str or None
        None when the table verifies; else why not (missing, truncated, checksum or hash
        mismatch, unreadable).

    Notes
    -----
    FITS: the header/file-size layout of the ``<CCD>_CAT`` extension, then astropy's
    ``verify_checksum`` (header + data, ``CHECKSUM``) and ``verify_datasum`` (``DATASUM``);
    a missing card fails. HDF5: reading the whole dataset checks every chunk's Fletcher-32
    checksum, and the SHA-256 of the data and metadata must equal the stored ``sha256``.
    """
    from .tables import is_hdf5

    path = pathlib.Path(path)
    if not path.is_file():
        return "file missing"
    try:
        if is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                if ccd not in _h5_ccds(f):
                    return f"no complete table {ccd}"
                d = f[ccd]
                if d.shape != (int(d.attrs["nstars"]),):
                    return f"{d.shape} rows stored, {int(d.attrs['nstars'])} recorded"
                want = d.attrs.get("sha256")
                if want is None:
                    return "no stored sha256"
                got = _h5_digest(f, ccd)        # reads every chunk: Fletcher-32 checked
                if got != str(want):
                    return "SHA-256 of the stored table does not match the recorded one"
            return None
        from astropy.io import fits

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                try:
                    idx = hdul.index_of(f"{ccd}_CAT")
                except KeyError:
                    from ._files import truncation_problem

                    why = truncation_problem(path, hdul)
                    return f"no extension {ccd}_CAT" + (f" ({why})" if why else "")
                why = fits_layout_problem(path, hdul, idx)
                if why:
                    return why
                hdu = hdul[idx]
                if hdu.verify_datasum() != 1:
                    return "DATASUM verification failed (data changed or card missing)"
                if hdu.verify_checksum() != 1:
                    return "CHECKSUM verification failed (header or data changed, or card missing)"
                if int(hdu.header["NAXIS2"]) != int(hdu.header["NSTARS"]):
                    return f"NAXIS2 = {hdu.header['NAXIS2']} but NSTARS = {hdu.header['NSTARS']}"
        return None
    except Exception as exc:    # truncated or garbled beyond what the checks above name
        return f"unreadable ({type(exc).__name__}: {exc})"


def _recorded_params(path, ccd):
    from .tables import is_hdf5

    if is_hdf5(path):
        import h5py

        with h5py.File(path, "r") as f:
            return json.loads(f[ccd].attrs["params_json"])
    from astropy.io import fits

    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        return json.loads(hdul[f"{ccd}_CAT"].header["CCPARAMS"])


def ccd_status(path, ccd, params, *, reason=None):
    """Whether one CCD of an output file is complete, intact and made with given parameters.

    Parameters
    ----------
    path : str or path-like
        Output file (FITS or HDF5; final file or part file).
    ccd : str
    params : dict
        Parameters of the new run.
    reason : list, optional
        If given, the reason of a ``"corrupt"`` status is appended to it.

    Returns
    -------
    {"done", "missing", "mismatch", "corrupt"}
        ``done``: the table is present, passes :func:`verify_ccd` and its recorded parameters
        equal ``params``; ``corrupt``: present but fails verification (truncated, flipped
        bytes, unreadable).
    """
    path = pathlib.Path(path)
    if not path.exists():
        return "missing"
    why = verify_ccd(path, ccd)
    if why is not None:
        if why.startswith(("no extension", "no complete table")) and "truncated" not in why:
            return "missing"
        if reason is not None:
            reason.append(why)
        return "corrupt"
    try:
        got = _recorded_params(path, ccd)
    except Exception as exc:
        if reason is not None:
            reason.append(f"recorded parameters unreadable ({type(exc).__name__}: {exc})")
        return "corrupt"
    return "done" if got == _canonical(params) else "mismatch"


def assemble_output(path, sources, *, fmt="fits", primary_header=None, exposure=None):
    """Write an exposure's output file from per-CCD sources, atomically.

    Parameters
    ----------
    path : str or path-like
        Output file.
    sources : list of (str, path)
        ``(ccd, file)`` in output order; each file holds that CCD (a part file or an earlier
        output file, possibly ``path`` itself). Data are copied, not re-computed.
    fmt : {"fits", "hdf5"}, optional
    primary_header : astropy.io.fits.Header, optional
        Exposure header (FITS primary HDU / HDF5 ``primary_header`` attribute).
    exposure : dict, optional
        Extra primary cards / root attributes.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OSError
        Write failure (e.g. a full disk): ``path`` is untouched, no temporary file is left.
    """
    _check_format(fmt)
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        if fmt == "fits":
            from astropy.io import fits

            opened = {}
            try:
                hdus = [_primary_hdu(primary_header, exposure)]
                for ccd, src in sources:
                    src = os.fspath(src)
                    if src not in opened:
                        opened[src] = fits.open(src, memmap=True)
                    hdus.append(opened[src][f"{ccd}_CAT"])
                fits.HDUList(hdus).writeto(tmp, overwrite=True, checksum=True)
            finally:
                for h in opened.values():
                    h.close()
        else:
            import h5py

            def fill(f):
                _h5_root_attrs(f, primary_header, exposure)
                for ccd, src in sources:
                    with h5py.File(src, "r") as s:
                        s.copy(s[ccd], f, name=ccd)
                        if ccd + _META in s:
                            s.copy(s[ccd + _META], f, name=ccd + _META)

            _write_h5_file(tmp, fill)
    return path


def _read_h5_ccd(f, name):
    from astropy.io.misc.hdf5 import read_table_hdf5

    d = f[name]
    if name + _META in f:
        t = read_table_hdf5(f, path=name, character_as_bytes=False)
        params, info = t.meta.get("params"), t.meta.get("info")
    else:                                   # written without astropy's metadata
        t = Table(native(d[()]))
        params = info = None
    t = Table(t, copy=False)
    for c in t.colnames:
        if t[c].dtype.byteorder not in ("=", "|") and t[c].dtype.str[0] != np.dtype("=f8").str[0]:
            unit = t[c].unit
            t[c] = native(np.asarray(t[c]))
            t[c].unit = unit
    t.meta = {"params": params if params is not None else json.loads(d.attrs["params_json"]),
              "info": info if info is not None else json.loads(d.attrs["info_json"])}
    return restore_dtypes(t)


def read_output(path, ccd=None):
    """Read LPI output tables (FITS ``cer``-like or HDF5) with their recorded metadata.

    Parameters
    ----------
    path : str or path-like
    ccd : str, optional
        One CCD; default all.

    Returns
    -------
    astropy.table.Table or dict of str -> Table
        The table of ``ccd`` (a ``Table``), or every CCD's table in file order (a dict).
        Columns in native byte order, ``dnt`` restored to int8, units kept (the flux
        columns are in ``adu``); ``meta`` has ``params`` and ``info`` (dicts) and, for FITS,
        ``header``.

    Raises
    ------
    FileNotFoundError
        Missing file.
    KeyError
        ``ccd`` not in the file.

    Notes
    -----
    Plain astropy reads the same files: ``Table.read(path, hdu="N6_CAT")`` (FITS) or
    ``Table.read(path, path="N6")`` (HDF5, with units and ``meta``).
    """
    from .tables import is_hdf5

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"output file not found: {path}")
    out = {}
    if is_hdf5(path):
        import h5py

        with h5py.File(path, "r") as f:
            names = _h5_ccds(f)
            for name in names if ccd is None else [ccd]:
                if name not in names:
                    raise KeyError(f"{path}: no table {name!r} (have {names})")
                out[name] = _read_h5_ccd(f, name)
    else:
        from astropy.io import fits

        with fits.open(path, memmap=False) as hdul:
            names = [h.name[:-4] for h in hdul if h.name.endswith("_CAT")]
            for name in names if ccd is None else [ccd]:
                if name not in names:
                    raise KeyError(f"{path}: no extension {name}_CAT (have {names})")
                hdu = hdul[f"{name}_CAT"]
                cols = list(hdu.columns.names)
                t = Table({c: native(np.asarray(hdu.data[c])) for c in cols}, names=cols)
                for c in hdu.columns:
                    if c.unit:
                        t[c.name].unit = c.unit
                t.meta["params"] = json.loads(hdu.header["CCPARAMS"])
                t.meta["info"] = json.loads(hdu.header["CCINFO"])
                t.meta["header"] = hdu.header.copy()
                out[name] = restore_dtypes(t)
    return out[ccd] if ccd is not None else out
