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
    header as text) and the exposure identity; one group per CCD with one dataset per column
    (gzip or lzf, byte shuffle, Fletcher-32 checksums; ``dnt`` int8), and attributes: every
    parameter, ``params_json``, ``info_json``, ``input_<kind>`` file names,
    ``cloudcov_version``, ``nstars``, ``column_order`` and, written last, ``complete``.

A CCD is *done* when its table is present and its recorded ``CCPARAMS``/``params_json``
equals the parameters of the new run.
"""
from __future__ import annotations

import json
import os
import pathlib
import warnings

import numpy as np
from astropy.table import Table

from ._files import atomic_path, native

__all__ = [
    "FORMATS", "output_path", "parts_dir", "part_path", "write_ccd_output", "ccd_status",
    "output_ccds", "assemble_output", "read_output",
]

FORMATS = ("fits", "hdf5")
_SUFFIX = {"fits": ".fits", "hdf5": ".h5"}
_PARAM_CARDS = {"thr": "LPITHR", "outthr": "LPIOUTTH", "Np": "LPINP", "widx": "LPIWIDX",
                "widy": "LPIWIDY", "dtype": "LPIDTYPE", "seed": "LPISEED"}


def _check_format(fmt):
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
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


def _json(obj):
    return json.dumps(obj, sort_keys=True, default=_json_default)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, (pathlib.Path, os.PathLike)):
        return os.fspath(o)
    return repr(o)


def _canonical(params):
    """Parameters as they come back from JSON (for equality tests)."""
    return json.loads(_json(params))


def _ccd_hdu(table, ccd, params, info):
    from astropy.io import fits

    from .catalog import _fits_safe

    t = _fits_safe(table)
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
    h["CCPARAMS"] = _json(params)
    h["CCINFO"] = _json(info)
    h["COMMENT"] = "cloudcov LPI columns: cflux dcflux dcflux_diag fdb_res fdb_pred cchi2"
    h["COMMENT"] = "kcond0 kcond kpred dnt (dnt int8 bits stored as uint8)."
    h["COMMENT"] = "x = row, y = column (crowdsource convention, 0-based)."
    return hdu


def _primary_hdu(primary_header, exposure):
    from astropy.io import fits

    from .. import _core

    hdr = fits.Header()
    if primary_header is not None:
        for card in primary_header.cards:
            if card.keyword in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "CHECKSUM", "DATASUM") \
                    or card.keyword.startswith("NAXIS"):
                continue
            hdr.append(card)
    hdr["CLOUDVER"] = (_core.__version__, "cloudcov version")
    for k, v in (exposure or {}).items():
        hdr[k] = v
    return fits.PrimaryHDU(header=hdr)


def _h5_columns(table):
    cols = {}
    for name in table.colnames:
        a = np.asarray(table[name])
        if a.dtype.kind == "U":
            a = np.char.encode(a, "utf-8")
        cols[name] = native(a)
    return cols


def _write_h5_group(f, ccd, table, params, info, compression):
    g = f.create_group(ccd)
    for name, a in _h5_columns(table).items():
        kw = {}
        if a.size and a.dtype.kind != "S":
            kw = dict(compression=compression, shuffle=True, fletcher32=True)
            if compression == "gzip":
                kw["compression_opts"] = 4
        g.create_dataset(name, data=a, **kw)
    g.attrs["column_order"] = np.array([n.encode() for n in table.colnames])
    for k, v in params.items():
        if isinstance(v, (bool, int, float, str, np.integer, np.floating, np.bool_)):
            g.attrs[k] = v
    g.attrs["params_json"] = _json(params)
    g.attrs["info_json"] = _json(info)
    g.attrs["cloudcov_version"] = str(info.get("version", ""))
    for kind, p in (info.get("files") or {}).items():
        g.attrs[f"input_{kind}"] = os.fspath(p)
    g.attrs["nstars"] = len(table)
    g.attrs["complete"] = True


def _h5_root_attrs(f, primary_header, exposure):
    from .. import _core

    f.attrs["format"] = "cloudcov-cer"
    f.attrs["cloudcov_version"] = _core.__version__
    if primary_header is not None:
        f.attrs["primary_header"] = primary_header.tostring(sep="\n", endcard=False, padding=False)
    for k, v in (exposure or {}).items():
        f.attrs[k] = v


def write_ccd_output(path, table, ccd, *, params, info=None, fmt="fits", primary_header=None,
                     exposure=None, compression="gzip", before_replace=None):
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
    before_replace : callable, optional
        Test hook, see :func:`cloudcov.io._files.atomic_path`.

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
    with atomic_path(path, before_replace) as tmp:
        if fmt == "fits":
            from astropy.io import fits

            hdus = fits.HDUList([_primary_hdu(primary_header, exposure),
                                 _ccd_hdu(table, ccd, params, info)])
            hdus.writeto(tmp, overwrite=True, checksum=True)
        else:
            import h5py

            with h5py.File(tmp, "w", track_order=True) as f:
                _h5_root_attrs(f, primary_header, exposure)
                _write_h5_group(f, ccd, table, params, info, compression)
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
                return [k for k in f.keys() if bool(f[k].attrs.get("complete", False))]
        from astropy.io import fits

        with fits.open(path, memmap=False) as hdul:
            return [h.name[:-4] for h in hdul if h.name.endswith("_CAT")]
    except (OSError, ValueError):
        return []


def ccd_status(path, ccd, params):
    """Whether one CCD of an output file is complete with the given parameters.

    Parameters
    ----------
    path : str or path-like
        Output file (FITS or HDF5; final file or part file).
    ccd : str
    params : dict
        Parameters of the new run.

    Returns
    -------
    {"done", "missing", "mismatch", "unreadable"}
        ``done``: table present and its recorded parameters equal ``params``.
    """
    from .tables import is_hdf5

    path = pathlib.Path(path)
    if not path.exists():
        return "missing"
    want = _canonical(params)
    try:
        if is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                if ccd not in f or not bool(f[ccd].attrs.get("complete", False)):
                    return "missing"
                g = f[ccd]
                got = json.loads(g.attrs["params_json"])
                n = int(g.attrs["nstars"])
                if any(g[k].shape[:1] != (n,) for k in g.keys()):
                    return "unreadable"
        else:
            from astropy.io import fits

            with fits.open(path, memmap=False) as hdul:
                names = [h.name for h in hdul]
                if f"{ccd}_CAT" not in names:
                    return "missing"
                hdr = hdul[f"{ccd}_CAT"].header
                got = json.loads(hdr["CCPARAMS"])
                if int(hdr["NAXIS2"]) != int(hdr["NSTARS"]):
                    return "unreadable"
    except (OSError, KeyError, ValueError, TypeError):
        return "unreadable"
    return "done" if got == want else "mismatch"


def assemble_output(path, sources, *, fmt="fits", primary_header=None, exposure=None,
                    before_replace=None):
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
    before_replace : callable, optional
        Test hook.

    Returns
    -------
    pathlib.Path
    """
    _check_format(fmt)
    path = pathlib.Path(path)
    with atomic_path(path, before_replace) as tmp:
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

            with h5py.File(tmp, "w", track_order=True) as f:
                _h5_root_attrs(f, primary_header, exposure)
                for ccd, src in sources:
                    with h5py.File(src, "r") as s:
                        s.copy(s[ccd], f, name=ccd)
    return path


def _restore_dtypes(table):
    from ..lpi import OUTPUT_COLUMNS

    for name, dt in OUTPUT_COLUMNS.items():
        if name in table.colnames and table[name].dtype != dt:
            table[name] = np.asarray(table[name]).astype(dt)
    return table


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
        The table of ``ccd``, or every CCD's table in file order. Columns in native byte
        order, ``dnt`` restored to int8; ``meta`` has ``params`` and ``info`` (dicts) and,
        for FITS, ``header``.

    Raises
    ------
    FileNotFoundError
        Missing file.
    KeyError
        ``ccd`` not in the file.
    """
    from .tables import is_hdf5

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"output file not found: {path}")
    out = {}
    if is_hdf5(path):
        import h5py

        with h5py.File(path, "r") as f:
            names = [k for k in f.keys() if bool(f[k].attrs.get("complete", False))]
            for name in names if ccd is None else [ccd]:
                if name not in f:
                    raise KeyError(f"{path}: no group {name!r} (have {names})")
                g = f[name]
                order = [c.decode() if isinstance(c, bytes) else str(c)
                         for c in g.attrs["column_order"]]
                t = Table({c: native(g[c][()]) for c in order}, names=order)
                t.meta["params"] = json.loads(g.attrs["params_json"])
                t.meta["info"] = json.loads(g.attrs["info_json"])
                out[name] = _restore_dtypes(t)
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
                t.meta["params"] = json.loads(hdu.header["CCPARAMS"])
                t.meta["info"] = json.loads(hdu.header["CCINFO"])
                t.meta["header"] = hdu.header.copy()
                out[name] = _restore_dtypes(t)
    return out[ccd] if ccd is not None else out
