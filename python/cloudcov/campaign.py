"""Survey driver: the LPI afterburner over many DECam exposures on an existing engine.

:func:`run_survey` (``cloudcov survey``) reads a manifest with one exposure per row and runs
each exposure as one task -- :func:`cloudcov.survey.run_exposure`, exactly what
``cloudcov exposure`` does -- on one of three engines (:mod:`cloudcov.engines`):
``concurrent.futures.ProcessPoolExecutor`` (``local``), ``dask.distributed`` (``dask``) or
Parsl's ``HighThroughputExecutor`` (``parsl``). CloudCovErr.jl leaves this scale-out to GNU
Parallel on Slurm; cloudcov adds what a campaign of 1.3 million CCDs needs:

* **The output files are the source of truth.** With ``resume=True`` an exposure is skipped
  when its output file holds every requested CCD, verified by
  :func:`cloudcov.io.output.ccd_status`, with the parameters of this run; an unfinished
  exposure resumes from its finished CCDs. No state is kept anywhere else.
* **Per-exposure locks.** A task holds :func:`cloudcov.io.locking.exclusive_lock` on
  ``<out>/survey_locks/<exposure>`` while it works. A task that finds the lock held (another
  driver on the same folder, or a worker orphaned by a killed driver) returns at once; its
  driver defers the exposure and tries again later, and then skips it if it is complete with
  the same parameters. Two drivers on one folder therefore never compute an exposure twice
  at the same time, and never mix outputs. (Two drivers started without ``resume`` each
  recompute what they are asked to: use ``resume=True`` to share a campaign.)
* **Retries.** A task that fails -- a CCD error, an exception, a worker killed under it --
  is retried up to ``retries`` times (resuming from its finished CCDs), then reported; it never
  stops the other exposures. The engines' own retries are switched off where cloudcov starts
  the engine, so that one layer counts attempts.
* **Run log.** ``<out>/survey_log.ecsv`` (astropy ECSV) gets one row per finished attempt
  (``exposure, status, ccds, stars, seconds, host, attempts, error, driver, finished``),
  appended under a lock by an atomic rewrite (:func:`cloudcov.io._files.atomic_path`), so
  two drivers can share it and a crash never leaves a torn file. Rows are flushed at most
  once a second and when the run ends; a killed driver may lose the rows of its last second
  (the outputs, not the log, decide what is done).

A task is one exposure, not one CCD: an exposure's CCDs share one crowdsource catalogue
and one output file, which is assembled when its last CCD is done, so CCD tasks would need a
second, dependent assembly task per exposure and would put 60 times more tasks and
lock/log traffic through the engine. Exposure tasks balance well enough: DECaPS2 has ~21,000
exposures, so a campaign on ``W`` workers has ``21000 / W`` tasks per worker, and the tail
(the last exposure running alone) is ``~1 / (21000 / W)`` of the run: 0.5% on 100 workers.
``benchmarks/bench_survey.py`` reports the measured balance (task-seconds over
workers x wall time).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import pathlib
import re
import socket
import time
from collections import deque
from dataclasses import dataclass, field

from .tiling import DEFAULT_MAX_MEMORY

__all__ = ["ExposureSpec", "SurveyResult", "read_manifest", "exposure_complete", "survey_task",
           "run_survey", "append_log", "LOG_NAME", "LOCK_DIR", "LOG_COLUMNS", "EXECUTORS"]

log = logging.getLogger("cloudcov")

#: Run log file name inside the output folder.
LOG_NAME = "survey_log.ecsv"
#: Folder of the per-exposure lock files inside the output folder.
LOCK_DIR = "survey_locks"
#: Columns of the run log and their types.
LOG_COLUMNS = (("exposure", str), ("status", str), ("ccds", int), ("stars", int),
               ("seconds", float), ("host", str), ("attempts", int), ("error", str),
               ("driver", str), ("finished", str))
#: Engines.
EXECUTORS = ("local", "dask", "parsl")
_MANIFEST_COLUMNS = ("base", "date", "filt", "vers", "basecat")
_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ExposureSpec:
    """One manifest row: the positional arguments of ``cloudcov exposure`` and a CCD list.

    Attributes
    ----------
    base : str
        CP file prefix (absolute; a directory keeps its trailing separator).
    date, filt, vers : str
        Exposure ``YYMMDD_HHMMSS``, filter, CP version tag.
    basecat : str
        Folder with the crowdsource ``cat/`` and ``mod/`` (absolute).
    ccdlist : tuple of str or None
        CCDs to run (None: every CCD with a crowdsource catalogue).
    row : int
        0-based row in the manifest (for messages).
    """

    base: str
    date: str
    filt: str
    vers: str
    basecat: str
    ccdlist: tuple | None = None
    row: int = 0

    @property
    def name(self):
        """Exposure name ``c4d_<date>_ooi_<filt>_<vers>`` (the output file's stem)."""
        return f"c4d_{self.date}_ooi_{self.filt}_{self.vers}"


@dataclass
class SurveyResult:
    """What :func:`run_survey` did.

    Attributes
    ----------
    done : list of str
        Exposures computed completely in this run.
    skipped : list of str
        Exposures already complete (resume, or completed by another driver meanwhile).
    failed : dict of str -> str
        Exposure -> error of its last attempt (after the retries).
    ccds, stars : int
        CCDs and stars computed in this run.
    seconds : float
        Wall time of the run.
    task_seconds : float
        Sum of the tasks' own wall times (``task_seconds / (workers * seconds)`` is the load
        balance).
    startup_seconds : float
        Time to start (or connect to) the engine, included in ``seconds``.
    task_cpu_seconds : float
        Sum of the tasks' CPU times (their worker processes, all threads).
    records : list of dict
        Every log row of this run, in the order the attempts finished.
    log_path : pathlib.Path
    executor : str
    workers : int or None
        Workers started (None for an existing Dask scheduler or a user Parsl config).
    threads_per_worker : int
    """

    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    ccds: int = 0
    stars: int = 0
    seconds: float = 0.0
    task_seconds: float = 0.0
    startup_seconds: float = 0.0
    task_cpu_seconds: float = 0.0
    records: list = field(default_factory=list)
    log_path: pathlib.Path | None = None
    executor: str = "local"
    workers: int | None = None
    threads_per_worker: int = 1

    def summary(self):
        """One line: counts, CCDs, stars, time, throughput, engine."""
        rate = self.ccds / self.seconds if self.seconds > 0 else 0.0
        eng = f"{self.executor}" + (f" x{self.workers} workers" if self.workers else "")
        return (f"cloudcov survey: {len(self.done) + len(self.skipped) + len(self.failed)} "
                f"exposures: {len(self.done)} computed, {len(self.skipped)} already done, "
                f"{len(self.failed)} failed; {self.ccds} CCDs, {self.stars} stars in "
                f"{self.seconds:.1f} s ({rate:.2f} CCDs/s; {eng}, {self.threads_per_worker} "
                f"thread(s) each); log {self.log_path}")


# ---------------------------------------------------------------------------------------
# manifest
# ---------------------------------------------------------------------------------------

def _abspath(p):
    s = os.fspath(p)
    out = os.path.abspath(os.path.expanduser(s))
    return out + os.sep if s.endswith(("/", os.sep)) and not out.endswith(os.sep) else out


def _ccdlist(value, where):
    if value is None:
        return None
    try:
        import numpy as np

        if np.ma.is_masked(value):
            return None
    except ImportError:  # pragma: no cover
        pass
    text = str(value).strip()
    if not text or text.lower() in ("none", "all", "--"):
        return None
    names = tuple(n for n in re.split(r"[\s,;]+", text) if n)
    for n in names:
        if not re.fullmatch(r"[A-Za-z0-9]+", n):
            raise ValueError(f"{where}: ccdlist: bad CCD name {n!r} (expected e.g. 'S6 N7')")
    return names


def read_manifest(path):
    """Read a survey manifest: one exposure per row.

    Parameters
    ----------
    path : str or path-like
        CSV (``.csv``) or ECSV (``.ecsv``) table read with astropy, with the columns
        ``base, date, filt, vers, basecat`` (the positional arguments of ``cloudcov exposure``)
        and optionally ``ccdlist`` (CCD names separated by spaces or commas; empty: all).
        Every value is read as text (a CSV ``date`` such as ``171113_060340`` stays a
        string). Relative paths are taken relative to the current directory and made
        absolute, so workers in other directories find the files.

    Returns
    -------
    list of ExposureSpec

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unreadable table, a missing column, an empty or malformed value (the message names
        the row and column), or two rows with the same output (same date, filter and version).
    """
    from astropy.io import ascii as asc
    from astropy.table import Table

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest: file not found: {path}")
    fmt = "ascii.ecsv" if path.suffix.lower() == ".ecsv" else "ascii.csv"
    try:
        if fmt == "ascii.csv":
            t = Table.read(path, format=fmt, converters={"*": [asc.convert_numpy(str)]})
        else:
            t = Table.read(path, format=fmt)
    except Exception as exc:
        raise ValueError(f"manifest {path}: cannot read as {fmt[6:].upper()} ({exc})") from exc
    missing = [c for c in _MANIFEST_COLUMNS if c not in t.colnames]
    if missing:
        raise ValueError(f"manifest {path}: missing column(s) {', '.join(missing)} (have "
                         f"{', '.join(t.colnames)}; need {', '.join(_MANIFEST_COLUMNS)} "
                         f"[, ccdlist])")
    from .survey import date_seed

    specs, seen = [], {}
    for i, row in enumerate(t):
        where = f"manifest {path} row {i + 1}"
        vals = {}
        for c in _MANIFEST_COLUMNS:
            v = row[c]
            text = "" if v is None or getattr(v, "mask", False) is True else str(v).strip()
            if not text:
                raise ValueError(f"{where}: column {c!r} is empty")
            vals[c] = text
        try:
            date_seed(vals["date"])
        except ValueError:
            raise ValueError(f"{where}: date: expected YYMMDD_HHMMSS as text, got "
                             f"{vals['date']!r}") from None
        spec = ExposureSpec(_abspath(vals["base"]), vals["date"], vals["filt"], vals["vers"],
                            _abspath(vals["basecat"]),
                            _ccdlist(row["ccdlist"], where) if "ccdlist" in t.colnames else None,
                            i)
        if spec.name in seen:
            raise ValueError(f"{where}: exposure {spec.name} is also row {seen[spec.name] + 1}: "
                             f"both would write the same output")
        seen[spec.name] = i
        specs.append(spec)
    return specs


# ---------------------------------------------------------------------------------------
# the task (runs on a worker)
# ---------------------------------------------------------------------------------------

def exposure_complete(spec, out_dir, *, fmt="fits", seed=None, **params):
    """Whether an exposure's output is complete with these parameters.

    Parameters
    ----------
    spec : ExposureSpec
    out_dir : str or path-like
        Output folder of the survey.
    fmt : {"fits", "hdf5"}, optional
    seed : int, optional
        Exposure seed (default from the date, as :func:`cloudcov.survey.run_exposure`).
    **params
        :func:`cloudcov.survey.lpi_params` keywords.

    Returns
    -------
    bool
        True when the output file exists, no unfinished part files are beside it, and every
        requested CCD that has a crowdsource catalogue is ``"done"`` by
        :func:`cloudcov.io.output.ccd_status` (which verifies the stored table) with
        :func:`cloudcov.survey.ccd_params` of this run.

    Raises
    ------
    FileNotFoundError, InputFileError
        The crowdsource catalogue is missing or unreadable.
    """
    from .io.crowdsource import crowdsource_ccds, crowdsource_filenames
    from .io.output import ccd_status, output_path, parts_dir
    from .survey import ccd_params, date_seed, lpi_params

    out = output_path(out_dir, spec.date, spec.filt, spec.vers, fmt)
    if not out.is_file() or parts_dir(out).exists():
        return False
    ccds = crowdsource_ccds(crowdsource_filenames(spec.basecat, spec.date, spec.filt,
                                                  spec.vers)["cat"])
    if spec.ccdlist:
        ccds = [c for c in ccds if c in set(spec.ccdlist)]
    p0 = lpi_params(**params)
    base_seed = date_seed(spec.date) if seed is None else int(seed)
    return all(ccd_status(out, c, ccd_params(p0, base_seed, c)) == "done" for c in ccds)


def _error_text(exc):
    text = f"{type(exc).__name__}: {exc}"
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text[:_ERROR_CHARS]


def survey_task(spec, opts):
    """Run one exposure on a worker (the unit of work of :func:`run_survey`).

    Parameters
    ----------
    spec : ExposureSpec
    opts : dict
        ``out_dir``, ``fmt``, ``seed``, ``threads``, ``max_memory``, ``compression``,
        ``params`` (:func:`cloudcov.survey.lpi_params` keywords), ``check_done`` (skip the
        exposure when :func:`exposure_complete`), ``resume`` (passed to ``run_exposure``).

    Returns
    -------
    dict
        ``exposure``, ``status`` (``"done"``, ``"skipped"``, ``"failed"`` or ``"locked"``),
        ``ccds``, ``stars``, ``seconds`` (wall), ``cpu_seconds`` (this process, all its
        threads), ``host``, ``pid``, ``error``, and ``retry=False`` when retrying cannot
        help (``run_exposure`` refused an existing output: a ``FileExistsError``). Never
        raises: every error becomes ``status="failed"`` with its message.
    """
    from threadpoolctl import threadpool_limits

    from .io.locking import OutputLockedError, exclusive_lock
    from .survey import run_exposure

    t0 = time.perf_counter()
    c0 = time.process_time()
    rec = dict(exposure=spec.name, status="failed", ccds=0, stars=0, seconds=0.0,
               cpu_seconds=0.0, host=socket.gethostname(), pid=os.getpid(), error="")
    threads = int(opts.get("threads") or 1)
    out_dir = pathlib.Path(opts["out_dir"])
    try:
        with exclusive_lock(out_dir / LOCK_DIR / spec.name), \
                threadpool_limits(limits=threads):
            if opts.get("check_done") and exposure_complete(
                    spec, out_dir, fmt=opts["fmt"], seed=opts.get("seed"), **opts["params"]):
                rec["status"] = "skipped"
            else:
                res = run_exposure(spec.base, spec.date, spec.filt, spec.vers, spec.basecat,
                                   out_dir=out_dir, fmt=opts["fmt"],
                                   ccdlist=list(spec.ccdlist) if spec.ccdlist else None,
                                   resume=bool(opts.get("resume")),
                                   overwrite=bool(opts.get("overwrite")), seed=opts.get("seed"),
                                   threads=threads,
                                   max_memory=opts.get("max_memory", DEFAULT_MAX_MEMORY),
                                   progress=False,
                                   compression=opts.get("compression", "gzip"),
                                   raise_on_error=False, **opts["params"])
                rec["ccds"] = len(res.processed)
                rec["stars"] = int(sum(res.nstars.values()))
                if res.failed:
                    rec["error"] = "; ".join(f"{c}: {m}" for c, m in res.failed.items())
                else:
                    rec["status"] = "done"
    except OutputLockedError as exc:
        rec["status"] = "locked"
        rec["error"] = _error_text(exc)
    except FileExistsError as exc:  # run_exposure refuses an existing output: no retry
        rec["error"] = _error_text(exc)
        rec["retry"] = False
    except Exception as exc:        # MemoryError included: one exposure never stops the rest
        rec["error"] = _error_text(exc)
    rec["error"] = rec["error"][:_ERROR_CHARS]
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    rec["cpu_seconds"] = round(time.process_time() - c0, 4)
    return rec


# ---------------------------------------------------------------------------------------
# run log
# ---------------------------------------------------------------------------------------

def _log_table(records):
    from astropy.table import Table

    cols = {}
    for name, typ in LOG_COLUMNS:
        cols[name] = [typ(r.get(name, typ())) for r in records]
    return Table(cols, names=[n for n, _ in LOG_COLUMNS],
                 dtype=[typ for _, typ in LOG_COLUMNS])


def _split_ecsv(text):
    lines = text.splitlines(keepends=True)
    k = 0
    while k < len(lines) and lines[k].startswith("#"):
        k += 1
    return "".join(lines[:k + 1]), "".join(lines[k + 1:])


def append_log(path, records):
    """Append rows to a run log (ECSV), atomically and under a lock.

    Parameters
    ----------
    path : str or path-like
        The log (created with its header when missing).
    records : list of dict
        Rows with the keys of :data:`LOG_COLUMNS` (missing keys: empty / zero).

    Notes
    -----
    The log is rewritten through :func:`cloudcov.io._files.atomic_path` while holding
    :func:`cloudcov.io.locking.exclusive_lock` on it (waiting for other writers), so readers
    see the old or the new file and concurrent drivers never lose each other's rows. The new
    rows are formatted by astropy's ECSV writer; when the existing file has the same header
    they are appended as text (no re-parsing of a long log), otherwise both are read and
    stacked.
    """
    import io

    from .io._files import atomic_path
    from .io.locking import exclusive_lock

    if not records:
        return
    path = pathlib.Path(path)
    buf = io.StringIO()
    _log_table(records).write(buf, format="ascii.ecsv")
    header, rows = _split_ecsv(buf.getvalue())
    with exclusive_lock(path, blocking=True, timeout=600):
        old = path.read_text() if path.is_file() else ""
        old_header, old_rows = _split_ecsv(old)
        if not old:
            text = header + rows
        elif old_header == header:
            text = old + ("" if old.endswith("\n") else "\n") + rows
        else:                                   # another layout: stack the tables
            from astropy.table import Table, vstack

            prev = Table.read(io.StringIO(old), format="ascii.ecsv")
            buf = io.StringIO()
            vstack([prev, _log_table(records)], join_type="outer").write(buf,
                                                                          format="ascii.ecsv")
            text = buf.getvalue()
        with atomic_path(path) as tmp:
            tmp.write_text(text)


class _LogWriter:
    """Buffers rows and flushes them with :func:`append_log` at most every ``interval``."""

    def __init__(self, path, interval=1.0):
        self.path, self.interval = path, float(interval)
        self.pending, self.last = [], time.monotonic()

    def add(self, rec):
        self.pending.append(rec)
        if time.monotonic() - self.last >= self.interval:
            self.flush()

    def flush(self):
        if self.pending:
            append_log(self.path, self.pending)
            self.pending = []
        self.last = time.monotonic()


# ---------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------

@dataclass
class _Task:
    spec: ExposureSpec
    attempts: int = 0           # attempts that ran and failed or succeeded
    waited: bool = False        # found the lock held at least once
    wait: float = 0.5           # next deferral
    not_before: float = 0.0
    generation: int = 0


def run_survey(manifest, out_dir, *, executor="local", workers=None, threads_per_worker=None,
               scheduler=None, parsl_config=None, retries=2, resume=False, fmt="fits",
               overwrite=False, seed=None, max_memory=DEFAULT_MAX_MEMORY, compression="gzip",
               progress=None, lock_wait=0.5, **params):
    """Run the afterburner on every exposure of a manifest (``cloudcov survey``).

    Parameters
    ----------
    manifest : str, path-like or list of ExposureSpec
        Manifest file (see :func:`read_manifest`) or its rows.
    out_dir : str or path-like
        Output folder: every exposure's ``c4d_<date>_ooi_<filt>_<vers>.cat.cer.fits|.h5``
        (as ``cloudcov exposure --out``), ``survey_log.ecsv`` and ``survey_locks/``.
    executor : {"local", "dask", "parsl"}, optional
        ``local``: ``concurrent.futures.ProcessPoolExecutor`` (default; no extra dependency).
        ``dask``: ``dask.distributed`` -- a ``LocalCluster`` on 127.0.0.1, or the existing
        scheduler at ``scheduler`` (e.g. a dask-jobqueue ``SLURMCluster``'s address).
        ``parsl``: a ``HighThroughputExecutor`` with a ``LocalProvider`` on 127.0.0.1, or the
        ``config`` defined in the Python file ``parsl_config`` (e.g. a ``SlurmProvider``:
        ``cloudcov survey --print-parsl-config slurm``).
    workers : int, optional
        Worker processes started by cloudcov (local engines only). Default: the usable cores
        divided by ``threads_per_worker``.
    threads_per_worker : int, optional
        Threads of each task: cloudcov's C++ kernels and BLAS (pinned with threadpoolctl).
        Default: cores // workers for the local engines (so that workers x threads <= cores),
        1 for an existing scheduler or a user Parsl config. A request above that for the
        local engines is reduced with a :class:`~cloudcov.errors.CloudCovWarning`.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); with ``executor="dask"``.
    parsl_config : str or path-like, optional
        Python file defining ``config`` (a ``parsl.config.Config``); with
        ``executor="parsl"``.
    retries : int, optional
        Extra attempts of a failed exposure (default 2). Failed exposures are reported and
        never stop the others.
    resume : bool, optional
        Skip exposures whose output is complete with these parameters
        (:func:`exposure_complete`), and resume unfinished ones from their finished CCDs.
    overwrite : bool, optional
        Passed to :func:`cloudcov.survey.run_exposure` where it has that parameter (replace an
        existing output; without ``resume`` or ``overwrite`` it refuses one).
    fmt, seed, max_memory, compression
        As :func:`cloudcov.survey.run_exposure` (``seed`` None: each exposure's date seed).
    progress : bool or None, optional
        Progress bar over exposures (None: only on a terminal).
    lock_wait : float, optional
        First delay (s) before an exposure whose lock is held is tried again; doubles up to
        30 s.
    **params
        :func:`cloudcov.survey.lpi_params` keywords (``thr``, ``outthr``, ``Np``, ``widx``,
        ``widy``, ``dtype``, ``corrects7``, ``psf_decoder``, ...).

    Returns
    -------
    SurveyResult
        Also written: the outputs, ``survey_log.ecsv``; :meth:`SurveyResult.summary` is the
        summary line.

    Raises
    ------
    ValueError
        Bad manifest, executor, counts, or parameters (before any work starts).
    ImportError
        ``dask``/``parsl`` requested but not installed (``pip install cloudcov[dask]`` /
        ``cloudcov[parsl]``).

    Notes
    -----
    Replaces CloudCovErr.jl's GNU Parallel scale-out (one ``decaps2.jl`` process per
    exposure). See the module docstring for the guarantees (verified resume, locks,
    retries, log) and why a task is one exposure.
    """
    from .engines import make_engine, plan_workers
    from .survey import lpi_params

    t0 = time.perf_counter()
    if executor not in EXECUTORS:
        raise ValueError(f"executor: expected one of {EXECUTORS}, got {executor!r}")
    if scheduler is not None and executor != "dask":
        raise ValueError("scheduler: only with executor='dask'")
    if parsl_config is not None and executor != "parsl":
        raise ValueError("parsl_config: only with executor='parsl'")
    retries = int(retries)
    if retries < 0:
        raise ValueError(f"retries: must be >= 0, got {retries}")
    if fmt not in ("fits", "hdf5"):
        raise ValueError(f"fmt: expected 'fits' or 'hdf5', got {fmt!r}")
    lpi_params(**params)                                   # fail now, not on every worker
    specs = list(manifest) if isinstance(manifest, (list, tuple)) else read_manifest(manifest)
    out_dir = pathlib.Path(_abspath(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    remote = scheduler is not None or parsl_config is not None
    workers, threads = plan_workers(workers, threads_per_worker, remote=remote)
    result = SurveyResult(log_path=out_dir / LOG_NAME, executor=executor,
                          workers=None if remote else workers, threads_per_worker=threads)
    driver = f"{socket.gethostname()}:{os.getpid()}"
    logw = _LogWriter(result.log_path)
    base_opts = dict(out_dir=os.fspath(out_dir), fmt=fmt, seed=seed, threads=threads,
                     overwrite=bool(overwrite),
                     max_memory=int(max_memory), compression=compression, params=dict(params))
    tasks = deque(_Task(s, wait=float(lock_wait)) for s in specs)
    deferred = []
    inflight = {}
    bar = _progress_bar(len(specs), progress)
    log.info("survey: %d exposures -> %s on %s (%s workers x %d threads)", len(specs), out_dir,
             executor, "existing" if remote else workers, threads)

    def finish(task, rec, status):
        rec = dict(rec, status=status, attempts=task.attempts, driver=driver,
                   finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        result.records.append(rec)
        logw.add(rec)
        result.task_seconds += float(rec.get("seconds", 0.0))
        result.task_cpu_seconds += float(rec.get("cpu_seconds", 0.0))
        if status == "retry":
            log.warning("%s: attempt %d failed, retrying: %s", task.spec.name, task.attempts,
                        rec.get("error", ""))
            return
        result.ccds += int(rec.get("ccds", 0))
        result.stars += int(rec.get("stars", 0))
        if status == "done":
            result.done.append(task.spec.name)
        elif status == "skipped":
            result.skipped.append(task.spec.name)
        else:
            result.failed[task.spec.name] = rec.get("error", "")
            log.error("%s: failed after %d attempt(s): %s", task.spec.name, task.attempts,
                      rec.get("error", ""))
        if bar is not None:
            bar.update(1)

    with make_engine(executor, workers=workers, threads=threads, scheduler=scheduler,
                     parsl_config=parsl_config, run_dir=out_dir / "parsl_runinfo") as engine:
        result.startup_seconds = time.perf_counter() - t0
        cap = engine.capacity
        try:
            while tasks or deferred or inflight:
                now = time.monotonic()
                if deferred:
                    due = [t for t in deferred if t.not_before <= now]
                    for t in due:
                        deferred.remove(t)
                        tasks.append(t)
                while tasks and (cap is None or len(inflight) < cap):
                    task = tasks.popleft()
                    opts = dict(base_opts, check_done=bool(resume or task.waited),
                                resume=bool(resume or task.attempts > 0))
                    fut, task.generation = engine.submit(survey_task, task.spec, opts)
                    inflight[fut] = task
                if not inflight:
                    time.sleep(max(0.01, min(t.not_before for t in deferred) - time.monotonic()))
                    continue
                timeout = 1.0 if not deferred else max(
                    0.01, min(1.0, min(t.not_before for t in deferred) - time.monotonic()))
                done, _ = cf.wait(list(inflight), timeout=timeout,
                                  return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    task = inflight.pop(fut)
                    try:
                        rec = fut.result()
                    except Exception as exc:       # the engine lost the task (worker died)
                        engine.recover(exc, task.generation)
                        rec = dict(exposure=task.spec.name, host="", seconds=0.0,
                                   error="worker lost: " + _error_text(exc))
                        rec["status"] = "failed"
                    if rec["status"] == "locked":
                        task.waited = True
                        task.not_before = time.monotonic() + task.wait
                        task.wait = min(30.0, task.wait * 2)
                        deferred.append(task)
                        log.info("%s: %s; deferred", task.spec.name, rec["error"])
                        continue
                    if rec["status"] == "skipped":
                        finish(task, rec, "skipped")
                        continue
                    task.attempts += 1
                    if rec["status"] == "done":
                        finish(task, rec, "done")
                    elif task.attempts <= retries and rec.get("retry", True):
                        finish(task, rec, "retry")
                        tasks.append(task)
                    else:
                        finish(task, rec, "failed")
        finally:
            with contextlib.suppress(Exception):
                logw.flush()
            if bar is not None:
                bar.close()
    result.seconds = time.perf_counter() - t0
    log.info("%s", result.summary())
    return result


def _progress_bar(total, enabled):
    if enabled is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc="cloudcov exposures", unit="exp",
                disable=None if enabled is None else False)

