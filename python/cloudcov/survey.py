"""Exposure runner: the LPI afterburner over the CCDs of one DECam exposure, resumable.

Mirrors CloudCovErr.jl ``proc_all`` / ``proc_ccd`` (src/decam.jl) and ``decaps2.jl``: read
the crowdsource catalogue's CCD list, skip CCDs already done (``--resume``), run each CCD
and save the input columns plus the LPI columns, one table per CCD. Differences:

* Output is written atomically. Each finished CCD goes to a part file
  ``<output>.parts/<CCD>.fits|.h5`` (temporary file + ``os.replace``); the exposure file is
  assembled from them (again atomically) when the run ends, and the parts are then removed.
  A killed run leaves finished parts; ``resume=True`` reuses them, and CCDs of an existing
  output file, when they pass verification (FITS CHECKSUM/DATASUM, HDF5 Fletcher-32 and
  SHA-256) and their recorded parameters match. (CloudCovErr.jl appends to the output file in
  place, which a crash can corrupt.)
* One run at a time per output: the run holds :func:`cloudcov.io.locking.exclusive_lock` on
  the exposure file; a second run on it fails at once, naming the holder. Under the lock,
  temporaries left by a killed run are removed.
* An existing output is never replaced by a less complete one, and never replaced without
  ``resume`` or ``overwrite``. A CCD that fails (any error, ``MemoryError`` included: missing
  extension, inconsistent shapes, a full disk...) is logged with the file and extension and
  the other CCDs still run; the output is then assembled only if it holds every CCD of the
  existing output (else the existing file is kept byte-identical and this run's CCDs stay in
  the part folder for a ``resume``), and :class:`SurveyError` is raised at the end.
* Seeds: the exposure seed is ``YYMMDD * 10**6 + HHMMSS`` from the date string, as
  CloudCovErr.jl; each CCD gets ``numpy.random.SeedSequence([exposure seed, *ccd bytes])``
  (see :func:`ccd_seed`) so CCDs get different noise (CloudCovErr.jl reuses one seed for every
  CCD). NumPy's generator cannot reproduce Julia's MersenneTwister stream.
* Julia's ``--wx`` is the width along Julia's x, which is the numpy *column* axis: it maps
  to cloudcov's ``widy``, and ``--wy`` to ``widx``. (CloudCovErr.jl's ``proc_all`` forwards
  ``widy=widx``, so its ``--wy`` has no effect; here it does.)
* Strips are chosen from a memory budget (``max_memory``); ``--tilex/--tiley`` are accepted by
  the CLI and ignored.
"""
from __future__ import annotations

import logging
import os
import pathlib
import re
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from ._provenance import version as _version
from .errors import CloudCovError
from .io._files import remove_stale_temporaries
from .io.crowdsource import crowdsource_ccds, crowdsource_filenames, read_ccd
from .io.decam import decam_filenames, read_primary_header
from .io.locking import exclusive_lock
from .io.output import (assemble_output, ccd_status, output_ccds, output_path, part_path,
                        parts_dir, verify_ccd, write_ccd_output)
from .tiling import DEFAULT_MAX_MEMORY

__all__ = ["SurveyError", "OutputExistsError", "ExposureResult", "date_seed", "ccd_seed",
           "lpi_params", "ccd_params", "run_ccd", "run_exposure", "parse_bytes", "run_survey"]

log = logging.getLogger("cloudcov")

#: Errors that fail one CCD without stopping the exposure: all of them (MemoryError and
#: OSError included); only KeyboardInterrupt/SystemExit stop the run.
CCD_ERRORS = (Exception,)


class OutputExistsError(CloudCovError, FileExistsError):
    """The output exists and neither ``resume`` nor ``overwrite`` was asked for."""


class SurveyError(CloudCovError):
    """Some CCDs of an exposure failed; the others were written.

    Attributes
    ----------
    result : ExposureResult
    """

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


@dataclass
class ExposureResult:
    """What :func:`run_exposure` did.

    Attributes
    ----------
    output : pathlib.Path or None
        The exposure's output file (None when nothing was written).
    processed : list of str
        CCDs computed in this run.
    skipped : list of str
        CCDs already done (resume).
    absent : list of str
        Requested CCDs without a crowdsource catalogue.
    failed : dict of str -> str
        CCD -> error message.
    nstars : dict of str -> int
        Stars per processed CCD.
    recomputed : dict of str -> str
        CCDs found in an earlier output or part file that failed verification (corrupt,
        truncated) and were recomputed -> why.
    kept : pathlib.Path or None
        Set when an existing output was kept unchanged because this run could not make a
        file at least as complete (its computed CCDs are in ``<output>.parts``).
    seconds : float
        Wall time.
    """

    output: pathlib.Path | None
    processed: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    absent: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    nstars: dict = field(default_factory=dict)
    recomputed: dict = field(default_factory=dict)
    kept: pathlib.Path | None = None
    seconds: float = 0.0


def date_seed(date):
    """Exposure seed from the date string, as CloudCovErr.jl ``proc_ccd``.

    Parameters
    ----------
    date : str
        ``YYMMDD_HHMMSS`` (e.g. ``"170119_085651"``).

    Returns
    -------
    int
        ``YYMMDD * 10**6 + HHMMSS`` (e.g. 170119085651).

    Raises
    ------
    ValueError
        If ``date`` is not ``YYMMDD_HHMMSS``.
    """
    m = re.fullmatch(r"(\d{6})_(\d{6})", str(date))
    if not m:
        raise ValueError(f"date: expected YYMMDD_HHMMSS, got {date!r}")
    return int(m.group(1)) * 10**6 + int(m.group(2))


def ccd_seed(base_seed, ccd):
    """Per-CCD seed: ``SeedSequence([base_seed, *ccd.encode()])`` reduced to 63 bits.

    Parameters
    ----------
    base_seed : int
        Exposure seed (:func:`date_seed`) or a user seed, >= 0.
    ccd : str
        CCD name (ASCII).

    Returns
    -------
    int
        Seed in ``[0, 2**63)`` passed to :func:`cloudcov.process_ccd`; differs between CCDs
        and exposures, and is the same for every rerun.
    """
    ss = np.random.SeedSequence([int(base_seed), *str(ccd).encode("ascii")])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def lpi_params(*, thr=20, outthr=20000, Np=33, widx=129, widy=None, dtype="float32",
               corrects7=False, psf_decoder="stamp", sky_noise=True, julia_compat=False,
               rlim=256, guard=True):
    """The parameters that define an LPI result (recorded in outputs, compared on resume).

    Parameters
    ----------
    thr, outthr, Np, widx, widy, dtype, sky_noise, julia_compat, rlim, guard
        As in :func:`cloudcov.process_ccd` (``widx`` along rows, ``widy`` along columns;
        ``widy`` defaults to ``widx``).
    corrects7 : bool, optional
        S7 amplifier correction.
    psf_decoder : {"stamp", "params", "both"}, optional
        crowdsource PSF record decoder.

    Returns
    -------
    dict
        JSON-friendly values. Thread count and memory budget are not included: results do
        not depend on them beyond float round-off.

    Raises
    ------
    ValueError
        Bad ``dtype`` or ``psf_decoder``.
    """
    dt = np.dtype(dtype).name
    if dt not in ("float32", "float64"):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype!r}")
    if psf_decoder not in ("stamp", "params", "both"):
        raise ValueError(f"psf_decoder: expected 'stamp', 'params' or 'both', got {psf_decoder!r}")
    return dict(thr=float(thr), outthr=float(outthr), Np=int(Np), widx=int(widx),
                widy=int(widx if widy is None else widy), dtype=dt, corrects7=bool(corrects7),
                psf_decoder=psf_decoder, sky_noise=bool(sky_noise),
                julia_compat=bool(julia_compat), rlim=float(rlim), guard=bool(guard))


def ccd_params(p0, base_seed, ccd):
    """The recorded parameters of one CCD of an exposure (what :func:`ccd_status` compares).

    Parameters
    ----------
    p0 : dict
        :func:`lpi_params` of the run.
    base_seed : int
        Exposure seed (:func:`date_seed` of the date, or the user's ``seed``).
    ccd : str
        CCD name.

    Returns
    -------
    dict
        ``p0`` plus ``base_seed`` and the CCD's ``seed`` (:func:`ccd_seed`).
    """
    return dict(p0, base_seed=int(base_seed), seed=ccd_seed(base_seed, ccd))


def parse_bytes(text):
    """Parse a memory size: ``"1073741824"``, ``"512M"``, ``"2G"``, ``"1.5GiB"``.

    Parameters
    ----------
    text : str or int

    Returns
    -------
    int
        Bytes (K, M, G, T are powers of 1024).

    Raises
    ------
    ValueError
        Unparseable or non-positive.
    """
    if isinstance(text, (int, np.integer)):
        n = int(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
        if not m:
            raise ValueError(f"memory size: cannot parse {text!r} (e.g. 1073741824, 512M, 2G)")
        mult = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[m.group(2).lower()]
        n = int(float(m.group(1)) * mult)
    if n <= 0:
        raise ValueError(f"memory size: must be positive, got {text!r}")
    return n


def _compute_ccd(ccd, files, params, seed, *, threads, max_memory, filter=None,
                 static_psf_dir=None, badpix=None):
    """Read, run and time one CCD. Returns (table, info)."""
    from .lpi import process_ccd

    t0 = time.perf_counter()
    inputs = read_ccd(ccd, ooi=files["ooi"], ood=files["ood"], cat=files["cat"],
                      mod=files["mod"],
                      oow=files.get("oow") if params["corrects7"] and ccd.upper().startswith("S7")
                      else None,
                      corrects7=params["corrects7"], psf_decoder=params["psf_decoder"],
                      filter=filter, static_psf_dir=static_psf_dir, badpix=badpix)
    t_read = time.perf_counter() - t0
    nstars = len(inputs.catalog)
    log.info("%s: started, %d stars, image %s, gain %.3f e-/ADU", ccd, nstars,
             inputs.image.shape, inputs.gain)
    table = process_ccd(*inputs.process_args(), thr=params["thr"], outthr=params["outthr"],
                        Np=params["Np"], widx=params["widx"], widy=params["widy"],
                        max_memory=max_memory, dtype=params["dtype"], seed=seed,
                        sky_noise=params["sky_noise"], julia_compat=params["julia_compat"],
                        threads=threads, progress=False, convention="crowdsource",
                        rlim=params["rlim"], guard=params["guard"])
    meta = dict(table.meta.pop("cloudcov", {}))
    seconds = time.perf_counter() - t0
    dnt = np.asarray(table["dnt"]).astype(np.int64)
    info = dict(version=_version(), files={k: os.fspath(v) for k, v in inputs.files.items()},
                nstars=nstars, seconds=round(seconds, 3), seconds_read=round(t_read, 3),
                n_guard=int(np.sum(dnt & 4 != 0)), n_unstable=int(np.sum(dnt & 64 != 0)),
                gain=inputs.gain, shape=list(inputs.image.shape), threads=threads,
                max_memory=max_memory, s7_correction=inputs.s7_correction,
                lapack=meta.get("lapack"),
                process_ccd={k: v for k, v in meta.items()
                             if k.startswith(("seconds", "n_", "nstrips", "ring_rows", "infill"))})
    log.info("%s: %d stars in %.1f s, guard %d, unstable %d", ccd, nstars, seconds,
             info["n_guard"], info["n_unstable"])
    if info["n_unstable"]:
        log.warning("%s: %d stars without a stable solution (dnt bit 64; CloudCovErr.jl: "
                    "'There were posDef errors')", ccd, info["n_unstable"])
    return table, info


def _refuse_existing(out, resume, overwrite):
    if out is not None and pathlib.Path(out).exists() and not (resume or overwrite):
        raise OutputExistsError(f"{out}: output exists; pass --resume (keep what is done and "
                                f"verified) or --overwrite (recompute and replace it)")


def run_ccd(ccd, *, ooi, ood, cat, mod, oow=None, out=None, fmt="fits", seed=0, resume=False,
            overwrite=False, threads=None, max_memory=DEFAULT_MAX_MEMORY, compression="gzip",
            filter=None, static_psf_dir=None, badpix=None, **params):
    """Run the afterburner on one CCD given explicit file names (``cloudcov ccd``).

    Parameters
    ----------
    ccd : str
        CCD name.
    ooi, ood, cat, mod : str or path-like
        CP image and DQ files, crowdsource catalogue and model files.
    oow : str or path-like, optional
        CP inverse-variance file (for ``corrects7`` on S7).
    out : str or path-like, optional
        Output file (one ``<CCD>_CAT`` table or HDF5 group); not written when None.
    fmt : {"fits", "hdf5"}, optional
    seed : int, optional
        Exposure seed (e.g. :func:`date_seed`); the CCD's seed is :func:`ccd_seed`.
    resume : bool, optional
        Return the existing ``out`` when it holds this CCD, verified, with the same
        parameters; otherwise recompute and replace it.
    overwrite : bool, optional
        Replace an existing ``out``. Without ``resume`` or ``overwrite`` an existing ``out``
        is an error (nothing is computed).
    threads : int or None, optional
        Threads of the C++ kernels (None: all cores).
    max_memory : int, optional
        Bytes for the stack's ring buffer (see :func:`cloudcov.tiling.plan_strips`).
    compression : {"gzip", "lzf"}, optional
        HDF5 compression.
    filter, static_psf_dir, badpix
        See :func:`cloudcov.io.read_ccd`.
    **params
        :func:`lpi_params` keywords (``thr``, ``outthr``, ``Np``, ``widx``, ``widy``,
        ``dtype``, ``corrects7``, ``psf_decoder``, ...).

    Returns
    -------
    astropy.table.Table
        Input columns + LPI columns; ``meta['params']`` and ``meta['info']``.

    Raises
    ------
    FileNotFoundError, InputFileError, ValueError
        Bad inputs (messages name the file and extension).
    OutputExistsError
        ``out`` exists and neither ``resume`` nor ``overwrite`` is set.
    cloudcov.io.locking.OutputLockedError
        Another process is writing ``out``.

    Notes
    -----
    Mirrors CloudCovErr.jl ``proc_ccd``.
    """
    from .io.output import read_output

    p = lpi_params(**params)
    p["base_seed"] = int(seed)
    p["seed"] = ccd_seed(seed, ccd)
    files = {"ooi": ooi, "ood": ood, "cat": cat, "mod": mod}
    if oow is not None:
        files["oow"] = oow
    if out is None:
        table, info = _compute_ccd(ccd, files, p, p["seed"], threads=threads,
                                   max_memory=max_memory, filter=filter,
                                   static_psf_dir=static_psf_dir, badpix=badpix)
    else:
        _refuse_existing(out, resume, overwrite)
        with exclusive_lock(out):
            for tmp in remove_stale_temporaries(out):
                log.warning("removed a stale temporary file %s (from an interrupted run)", tmp)
            if resume:
                why = []
                status = ccd_status(out, ccd, p, reason=why)
                if status == "done":
                    log.info("%s: already done in %s; skipped", ccd, out)
                    return read_output(out, ccd)
                if status == "corrupt":
                    log.warning("%s: %s fails verification (%s); recomputing", ccd, out, why[0])
            table, info = _compute_ccd(ccd, files, p, p["seed"], threads=threads,
                                       max_memory=max_memory, filter=filter,
                                       static_psf_dir=static_psf_dir, badpix=badpix)
            prim = read_primary_header(cat, "crowdsource catalogue")
            write_ccd_output(out, table, ccd, params=p, info=info, fmt=fmt, primary_header=prim,
                             compression=compression)
    table.meta["params"] = p
    table.meta["info"] = info
    return table


def _progress(iterable, total, enabled):
    if enabled is False:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    # enabled None: tqdm decides (off when stderr is not a terminal)
    return tqdm(iterable, total=total, desc="cloudcov CCDs", unit="ccd",
                disable=None if enabled is None else False)


def run_exposure(base, date, filt, vers, basecat, *, out_dir=None, fmt="fits", ccdlist=None,
                 resume=False, overwrite=False, seed=None, threads=None,
                 max_memory=DEFAULT_MAX_MEMORY, progress=None, compression="gzip", filter=None,
                 static_psf_dir=None, badpix=None, raise_on_error=True, **params):
    """Run the afterburner on every CCD of one DECam exposure (``cloudcov exposure``).

    Parameters
    ----------
    base : str or path-like
        CP file prefix (``"/data/decaps/c4d_"``, or a directory): the files are
        ``<base><date>_{ooi,oow,ood}_<filt>_<vers>.fits.fz`` (injection CCDs ``*I``: see
        :func:`cloudcov.io.decam.inject_rename`).
    date : str
        ``YYMMDD_HHMMSS``.
    filt, vers : str
        Filter and CP version tag.
    basecat : str or path-like
        Folder with ``cat/`` and ``mod/`` (crowdsource outputs).
    out_dir : str or path-like, optional
        Output folder (default ``<basecat>/cer``, as CloudCovErr.jl).
    fmt : {"fits", "hdf5"}, optional
        ``c4d_<date>_ooi_<filt>_<vers>.cat.cer.fits`` or ``.cat.cer.h5``.
    ccdlist : sequence of str, optional
        Run only these CCDs. Names without a crowdsource catalogue are logged and skipped.
    resume : bool, optional
        Keep CCDs already done (part files of a killed run, or tables of an existing output
        file) that pass verification and whose recorded parameters match; run the rest
        (CCDs that fail verification are recomputed, and the log says so). CCDs of an
        existing output that this run does not request (``ccdlist``) are kept, with their own
        recorded parameters (CloudCovErr.jl ``--resume`` appends).
    overwrite : bool, optional
        Recompute every requested CCD, discarding earlier parts, and replace the existing
        output (its CCDs not requested are copied over unchanged), but only with a file at
        least as complete: if a CCD fails that the existing file holds, the existing file is
        kept byte-identical and this run's CCDs stay in ``<output>.parts``. Without
        ``resume`` or ``overwrite``, an existing output is an error (nothing is computed).
    seed : int, optional
        Exposure seed; default :func:`date_seed` of ``date``.
    threads : int or None, optional
        C++ threads per CCD (None: all cores).
    max_memory : int, optional
        Bytes for the shifted-product stack's ring buffer.
    progress : bool or None, optional
        Progress bar over CCDs (None: only on a terminal).
    compression : {"gzip", "lzf"}, optional
        HDF5 compression.
    filter, static_psf_dir, badpix
        See :func:`cloudcov.io.read_ccd`.
    raise_on_error : bool, optional
        Raise :class:`SurveyError` after the run when some CCDs failed (default True).
    **params
        :func:`lpi_params` keywords (``thr``, ``outthr``, ``Np``, ``widx``, ``widy``,
        ``dtype``, ``corrects7``, ``psf_decoder``, ...).

    Returns
    -------
    ExposureResult

    Raises
    ------
    FileNotFoundError, InputFileError
        The crowdsource catalogue file is missing or unreadable (nothing is written).
    OutputExistsError
        The output exists and neither ``resume`` nor ``overwrite`` is set.
    cloudcov.io.locking.OutputLockedError
        Another run holds the output's lock (the message names its host, pid and command).
    cloudcov.CloudCovError
        ``<output>.parts`` is a symbolic link (never followed).
    SurveyError
        Some CCDs failed, or the output could not be written (``raise_on_error``); the CCDs
        computed are in the output or, when it was kept, in the part folder.

    Notes
    -----
    Mirrors CloudCovErr.jl ``proc_all`` (src/decam.jl); see the module docstring for the
    differences (atomic part files, per-CCD seeds, ``wx``/``wy`` mapping).
    """
    t0 = time.perf_counter()
    cp = decam_filenames(base, date, filt, vers)
    cs = crowdsource_filenames(basecat, date, filt, vers)
    out = output_path(pathlib.Path(basecat) / "cer" if out_dir is None else out_dir,
                      date, filt, vers, fmt)
    p0 = lpi_params(**params)
    _refuse_existing(out, resume, overwrite)
    with exclusive_lock(out):
        result = _run_exposure_locked(base, date, filt, vers, cp, cs, out, p0, fmt=fmt,
                                      ccdlist=ccdlist, resume=resume, seed=seed,
                                      threads=threads, max_memory=max_memory,
                                      progress=progress, compression=compression,
                                      filter=filter, static_psf_dir=static_psf_dir,
                                      badpix=badpix)
    result.seconds = time.perf_counter() - t0
    log.info("%s: %d CCDs computed, %d already done, %d absent, %d failed in %.1f s",
             out.name, len(result.processed), len(result.skipped), len(result.absent),
             len(result.failed), result.seconds)
    if result.failed and raise_on_error:
        raise SurveyError(f"{len(result.failed)} CCD(s) failed: " + "; ".join(
            f"{c}: {m}" for c, m in result.failed.items()), result)
    return result


def _parts_folder(out):
    parts = parts_dir(out)
    if parts.is_symlink():
        raise CloudCovError(f"{parts}: the part folder is a symbolic link; cloudcov never "
                            f"follows it (it would write and delete files in its target). "
                            f"Remove the link or write to another output folder")
    if parts.exists() and not parts.is_dir():
        raise CloudCovError(f"{parts}: exists and is not a folder; remove it")
    return parts


def _clean_part_folder(parts):
    """Remove stale temporaries in the part folder (under the lock); returns their names."""
    removed = []
    if parts.is_dir():
        for tmp in parts.glob("*.tmp"):
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink(missing_ok=True)
                removed.append(tmp.name)
    return removed


def _run_exposure_locked(base, date, filt, vers, cp, cs, out, p0, *, fmt, ccdlist, resume, seed,
                         threads, max_memory, progress, compression, filter, static_psf_dir,
                         badpix):
    """The body of :func:`run_exposure`, run while holding the output's lock."""
    parts = _parts_folder(out)
    base_seed = date_seed(date) if seed is None else int(seed)
    log.info("starting %s -> %s", cs["cat"], out)
    ccds = crowdsource_ccds(cs["cat"])
    result = ExposureResult(output=None)
    if ccdlist:
        result.absent = [c for c in ccdlist if c not in ccds]
        for c in result.absent:
            log.warning("%s: no %s_CAT in %s (crowdsource has no catalogue for it); skipped",
                        c, c, cs["cat"])
        ccds = [c for c in ccds if c in set(ccdlist)]
    prim = read_primary_header(cs["cat"], "crowdsource catalogue")
    exposure = {"CERDATE": str(date), "CERFILT": str(filt), "CERVERS": str(vers),
                "CERSEED": base_seed}

    def params_of(ccd):
        return ccd_params(p0, base_seed, ccd)

    # temporaries of a killed run (we hold the lock: no live writer owns them)
    for tmp in remove_stale_temporaries(out):
        log.warning("removed a stale temporary file %s (from an interrupted run)", tmp.name)
    for name in _clean_part_folder(parts):
        log.warning("removed a stale temporary file %s in %s", name, parts)

    existing = [c for c in output_ccds(out) if verify_ccd(out, c) is None]  # intact CCDs
    done = {}                       # ccd -> file holding it
    if not resume:
        for ccd in existing:
            if ccd not in ccds:     # overwrite replaces the requested CCDs, keeps the others
                done[ccd] = out
                log.info("%s: kept from %s (not requested)", ccd, out.name)
    if resume:
        for ccd in output_ccds(out):        # CCDs of the earlier output
            why = []
            status = ccd_status(out, ccd, params_of(ccd), reason=why)
            if status == "done":
                done[ccd] = out
            elif ccd not in ccds and status == "mismatch":
                done[ccd] = out             # not requested now: kept with its own parameters
                log.info("%s: kept from %s (not requested; its recorded parameters differ)",
                         ccd, out)
            elif status == "corrupt":
                result.recomputed[ccd] = why[0]
                if ccd in ccds:
                    log.warning("%s: in %s but fails verification (%s); recomputing", ccd,
                                out.name, why[0])
                else:
                    log.warning("%s: in %s but fails verification (%s) and is not requested; "
                                "dropped", ccd, out.name, why[0])
            elif ccd in ccds:
                log.warning("%s: in %s with other parameters; recomputing", ccd, out.name)
        for ccd in ccds:
            if ccd in done:
                continue
            why = []
            status = ccd_status(part_path(out, ccd, fmt), ccd, params_of(ccd), reason=why)
            if status == "done":
                done[ccd] = part_path(out, ccd, fmt)
            elif status == "mismatch":
                log.warning("%s: earlier part file has different parameters; recomputing", ccd)
            elif status == "corrupt":
                result.recomputed[ccd] = why[0]
                log.warning("%s: earlier part file fails verification (%s); recomputing", ccd,
                            why[0])
        result.skipped = [c for c in ccds if c in done]
        if result.skipped:
            log.info("skipping CCDs already completed: %s", " ".join(result.skipped))
    elif parts.is_dir():
        shutil.rmtree(parts)
    todo = [c for c in ccds if c not in done]
    files = dict(cp, **cs)
    for ccd in _progress(todo, len(todo), progress):
        f = files if not ccd.endswith("I") else dict(decam_filenames(base, date, filt, vers, ccd), **cs)
        p = params_of(ccd)
        try:
            table, info = _compute_ccd(ccd, f, p, p["seed"], threads=threads,
                                       max_memory=max_memory, filter=filter,
                                       static_psf_dir=static_psf_dir, badpix=badpix)
            info["exposure"] = dict(date=date, filt=filt, vers=vers)
            write_ccd_output(part_path(out, ccd, fmt), table, ccd, params=p, info=info,
                             fmt=fmt, primary_header=prim, exposure=exposure,
                             compression=compression)
        except CCD_ERRORS as exc:
            result.failed[ccd] = f"{type(exc).__name__}: {exc}"
            log.error("%s: failed: %s", ccd, result.failed[ccd])
            log.debug("%s: traceback", ccd, exc_info=True)
            continue
        finally:
            table = None                    # free the CCD (also after a MemoryError)
        done[ccd] = part_path(out, ccd, fmt)
        result.processed.append(ccd)
        result.nstars[ccd] = info["nstars"]
    # output order: the crowdsource file's CCD order, then CCDs kept from an earlier output
    all_ccds = crowdsource_ccds(cs["cat"])
    order = [c for c in all_ccds if c in done] + [c for c in done if c not in all_ccds]
    lost = [c for c in existing if c not in done]
    if lost:
        # never replace an output with a less complete one: keep it, keep the parts
        result.kept = out
        log.error("%s not replaced: it holds %s, which this run did not produce; this run's "
                  "CCDs are kept in %s (fix the failures and rerun with --resume)", out.name,
                  " ".join(lost), parts)
        result.failed.setdefault("output", f"{out} kept unchanged: the new file would lack "
                                 f"{' '.join(lost)}; computed CCDs are in {parts}")
        return result
    if order or not result.failed:
        try:
            assemble_output(out, [(c, done[c]) for c in order], fmt=fmt, primary_header=prim,
                            exposure=exposure)
        except OSError as exc:
            result.failed["output"] = (f"cannot write {out} ({type(exc).__name__}: {exc}); "
                                       f"computed CCDs are in {parts}; rerun with --resume")
            log.error("%s", result.failed["output"])
            return result
        result.output = out
        for c in order:                     # parts now in the output (also stale ones)
            part_path(out, c, fmt).unlink(missing_ok=True)
        if parts.is_dir() and not any(parts.iterdir()):
            parts.rmdir()
    return result


def __getattr__(name):
    # the survey driver lives in cloudcov.campaign (it imports this module)
    if name in ("run_survey", "SurveyResult", "read_manifest"):
        from . import campaign

        return getattr(campaign, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
