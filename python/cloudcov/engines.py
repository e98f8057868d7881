"""Engines of ``cloudcov survey``: thin adapters over existing schedulers, never a scheduler.

Each adapter starts (or connects to) one engine and offers ``submit(fn, *args)``, which
returns a ``concurrent.futures.Future`` (and the engine generation it belongs to):

``local``
    ``concurrent.futures.ProcessPoolExecutor`` (forkserver start method on Linux, spawn
    elsewhere). ``concurrent.futures`` cannot tell which task a killed worker ran: the pool
    breaks (``BrokenProcessPool``) and every task in flight fails; the adapter starts a new
    pool and the driver retries those tasks. The driver keeps only ``workers`` tasks in
    flight, so the tasks charged with an attempt are the ones that were running (the pool
    terminates them all). Workers exit when their driver dies (a watchdog thread), so a
    ``kill -9`` of the driver leaves no orphan computing.
``dask``
    ``dask.distributed``: a ``LocalCluster`` of ``workers`` single-threaded worker processes
    on 127.0.0.1 with ``distributed.scheduler.allowed-failures = 0`` (a task whose worker
    dies fails at once with ``KilledWorker`` and the driver's ``--retries`` decide), or a
    ``Client`` of an existing scheduler (``--scheduler``: a ``dask-jobqueue`` cluster, a
    Dask Gateway...; its own ``allowed-failures`` then applies as well).
``parsl``
    Parsl: a ``HighThroughputExecutor`` with a ``LocalProvider`` (one block of ``workers``
    workers on 127.0.0.1, ``Config(retries=0)``), or the ``config`` of a user's Python file
    (``--parsl-config``; :func:`parsl_config_template` ``("slurm")`` writes a ``SlurmProvider``
    one). A killed worker fails its task with ``WorkerLost``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import runpy
import threading
import time
import warnings

from .errors import CloudCovWarning

__all__ = ["usable_cores", "plan_workers", "make_engine", "LocalEngine", "DaskEngine",
           "ParslEngine", "local_parsl_config", "load_parsl_config", "parsl_config_template",
           "PARSL_TEMPLATES"]

log = logging.getLogger("cloudcov")
_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def usable_cores():
    """Cores this process may run on (``os.sched_getaffinity`` where available).

    Returns
    -------
    int
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def plan_workers(workers=None, threads=None, *, remote=False, cores=None):
    """Workers and threads per worker such that workers x threads <= cores.

    Parameters
    ----------
    workers, threads : int, optional
        Requests (None: choose).
    remote : bool, optional
        The workers are not on this machine (an existing Dask scheduler or a user Parsl
        config): ``workers`` is unused and ``threads`` defaults to 1.
    cores : int, optional
        Usable cores (default :func:`usable_cores`).

    Returns
    -------
    (int or None, int)
        ``workers`` (default ``cores // threads``) and ``threads`` (default
        ``cores // workers``), each >= 1.

    Raises
    ------
    ValueError
        A request below 1.

    Warns
    -----
    CloudCovWarning
        ``threads`` reduced so that workers x threads <= cores; more workers than cores.
    """
    for name, v in (("workers", workers), ("threads_per_worker", threads)):
        if v is not None and (int(v) != v or int(v) < 1):
            raise ValueError(f"{name}: must be an integer >= 1, got {v!r}")
    if remote:
        return (None if workers is None else int(workers)), int(threads or 1)
    cores = usable_cores() if cores is None else int(cores)
    if workers is None:
        workers = max(1, cores // int(threads or 1))
    workers = int(workers)
    if threads is None:
        threads = max(1, cores // workers)
    threads = int(threads)
    if workers * threads > cores:
        fit = max(1, cores // workers)
        if fit < threads:
            warnings.warn(f"threads_per_worker reduced from {threads} to {fit}: {workers} "
                          f"workers x {threads} threads would exceed the {cores} usable cores",
                          CloudCovWarning, stacklevel=3)
            threads = fit
        if workers > cores:
            warnings.warn(f"{workers} workers on {cores} usable cores: the workers will "
                          f"share cores", CloudCovWarning, stacklevel=3)
    return workers, threads


def _quiet(*names):
    """Keep an engine's INFO chatter out of the driver's stderr unless cloudcov logs INFO."""
    if not log.isEnabledFor(logging.INFO):
        for name in names:
            logging.getLogger(name).setLevel(logging.WARNING)


def _pin_threads(threads):
    for var in _BLAS_ENV:
        os.environ[var] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def _driver_watchdog(driver_pid, parent_pid, period=0.5):
    while True:
        time.sleep(period)
        try:
            os.kill(driver_pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:  # pragma: no cover
            alive = True
        if not alive or os.getppid() != parent_pid:
            os._exit(70)                    # the driver is gone: stop computing for nobody


def _init_local_worker(threads, driver_pid):
    _pin_threads(threads)
    threading.Thread(target=_driver_watchdog, args=(driver_pid, os.getppid()),
                     name="cloudcov-driver-watchdog", daemon=True).start()


class LocalEngine:
    """``concurrent.futures.ProcessPoolExecutor`` with ``workers`` processes.

    Parameters
    ----------
    workers : int
    threads : int
        BLAS/OpenMP threads pinned in each worker (threadpoolctl and the environment).
    """

    name = "local"

    def __init__(self, workers, threads):
        import multiprocessing as mp

        self.workers, self.threads = int(workers), int(threads)
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        self._ctx = mp.get_context(method)
        if method == "forkserver":
            self._ctx.set_forkserver_preload(["cloudcov.campaign", "cloudcov.survey"])
        self.generation = 0
        self.pool = None
        self._start()

    @property
    def capacity(self):
        """Tasks kept in flight (= workers)."""
        return self.workers

    def _start(self):
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._ctx,
                                        initializer=_init_local_worker,
                                        initargs=(self.threads, os.getpid()))
        self.generation += 1

    def _restart(self):
        log.warning("local engine: a worker process died; starting a new pool")
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._start()

    def submit(self, fn, *args):
        """Submit ``fn(*args)``; returns ``(future, generation)``."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self.pool.submit(fn, *args), self.generation
        except BrokenProcessPool:
            self._restart()
            return self.pool.submit(fn, *args), self.generation

    def recover(self, exc, generation):
        """After a task's future raised ``exc``: restart a broken pool (once per generation)."""
        from concurrent.futures.process import BrokenProcessPool

        if isinstance(exc, BrokenProcessPool) and generation == self.generation:
            self._restart()

    def close(self, abort=False):
        """Shut the pool down; ``abort``: do not wait, terminate the running tasks."""
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=not abort, cancel_futures=True)
        if abort:
            for p in procs:
                with contextlib.suppress(Exception):
                    p.terminate()


class DaskEngine:
    """``dask.distributed``: a ``LocalCluster`` on 127.0.0.1 or an existing scheduler.

    Parameters
    ----------
    workers : int or None
        Worker processes of the ``LocalCluster`` (one thread each: one task at a time).
    threads : int
        Threads of each task (pinned by the task).
    scheduler : str, optional
        Address of a running scheduler (then nothing is started).
    """

    name = "dask"
    capacity = None

    def __init__(self, workers, threads, scheduler=None):
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ImportError("executor 'dask' needs dask.distributed: pip install "
                              "'cloudcov[dask]'") from exc
        _quiet("distributed", "tornado")
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            env = {v: str(threads) for v in _BLAS_ENV}
            with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                                  "distributed.nanny.pre-spawn-environ": env}):
                self.cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1,
                                            processes=True, host="127.0.0.1",
                                            dashboard_address=None,
                                            silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        self.executor = self.client.get_executor(pure=False)
        log.info("dask engine: scheduler %s, %d worker thread(s)", self.client.scheduler.address,
                 sum(self.client.nthreads().values()))

    def submit(self, fn, *args):
        """Submit ``fn(*args)``; returns ``(future, 0)``."""
        return self.executor.submit(fn, *args), 0

    def recover(self, exc, generation):
        """Nothing to do: the nanny restarts a dead worker."""

    def close(self, abort=False):
        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()


PARSL_TEMPLATES = {
    "local": '''\
"""Parsl configuration for `cloudcov survey --executor parsl --parsl-config THIS_FILE`:
one block of WORKERS workers on this machine (what cloudcov uses without --parsl-config)."""
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

WORKERS = 2                 # worker processes
THREADS_PER_WORKER = 1      # = cloudcov survey --threads-per-worker (WORKERS x THREADS <= cores)

config = Config(
    executors=[HighThroughputExecutor(
        label="cloudcov",
        address="127.0.0.1",                 # loopback only
        max_workers_per_node=WORKERS,
        cores_per_worker=THREADS_PER_WORKER,
        encrypted=False,                     # loopback only: no certificates to make
        provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
    )],
    retries=0,          # cloudcov survey retries failed exposures itself (--retries)
    strategy="none",    # one fixed block
    run_dir="parsl_runinfo",
)
''',
    "slurm": '''\
"""Parsl configuration for `cloudcov survey --executor parsl --parsl-config THIS_FILE` on a
Slurm cluster. Edit the CAPITALISED values, then run from a login node (the driver only
submits Slurm jobs and collects results; keep it alive, e.g. in tmux or a small job):

    cloudcov survey manifest.ecsv --out /scratch/cer --executor parsl \\
        --parsl-config slurm_config.py --threads-per-worker 4 --resume

Every node runs CORES_PER_NODE // THREADS_PER_WORKER workers; each task (one exposure) uses
THREADS_PER_WORKER threads. A DECam CCD needs ~1.3 GB with --max-memory 768M.
"""
from parsl.addresses import address_by_hostname
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SrunLauncher
from parsl.providers import SlurmProvider

CORES_PER_NODE = 64
THREADS_PER_WORKER = 4          # = cloudcov survey --threads-per-worker
MEM_PER_WORKER_GB = 3           # >= 1.5 GB per CCD task

config = Config(
    executors=[HighThroughputExecutor(
        label="cloudcov",
        address=address_by_hostname(),      # or parsl.addresses.address_by_interface("ib0")
        cores_per_worker=THREADS_PER_WORKER,
        max_workers_per_node=CORES_PER_NODE // THREADS_PER_WORKER,
        mem_per_worker=MEM_PER_WORKER_GB,
        provider=SlurmProvider(
            partition="YOUR_PARTITION",
            account="YOUR_ACCOUNT",
            nodes_per_block=1,
            cores_per_node=CORES_PER_NODE,
            init_blocks=1,
            min_blocks=0,
            max_blocks=50,                  # at most 50 nodes at a time
            walltime="12:00:00",
            exclusive=True,
            launcher=SrunLauncher(),
            # the same environment as the driver, BLAS pinned to the task's threads
            worker_init=("source /PATH/TO/VENV/bin/activate; "
                         f"export OMP_NUM_THREADS={THREADS_PER_WORKER} "
                         f"OPENBLAS_NUM_THREADS={THREADS_PER_WORKER}"),
        ),
    )],
    retries=0,          # cloudcov survey retries failed exposures itself (--retries)
    run_dir="parsl_runinfo",
)
''',
}


def parsl_config_template(kind="slurm"):
    """Text of a Parsl configuration file for ``--parsl-config``.

    Parameters
    ----------
    kind : {"slurm", "local"}, optional
        ``slurm``: a ``HighThroughputExecutor`` with a ``SlurmProvider`` (edit partition,
        account, walltime, cores, environment); ``local``: the configuration cloudcov uses
        without ``--parsl-config``.

    Returns
    -------
    str
        Python source defining ``config``.

    Raises
    ------
    ValueError
        Unknown ``kind``.
    """
    if kind not in PARSL_TEMPLATES:
        raise ValueError(f"parsl config template: expected one of {sorted(PARSL_TEMPLATES)}, "
                         f"got {kind!r}")
    return PARSL_TEMPLATES[kind]


def local_parsl_config(workers, threads, run_dir):
    """The Parsl ``Config`` used without ``--parsl-config`` (see the ``local`` template).

    Parameters
    ----------
    workers, threads : int
    run_dir : str or path-like
        Parsl's ``run_dir`` (logs).

    Returns
    -------
    parsl.config.Config
    """
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    return Config(
        executors=[HighThroughputExecutor(
            label="cloudcov", address="127.0.0.1", loopback_address="127.0.0.1",
            max_workers_per_node=int(workers), cores_per_worker=float(threads),
            encrypted=False, heartbeat_period=5, heartbeat_threshold=30,
            worker_logdir_root=os.fspath(run_dir),
            provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1,
                                   worker_init=" ".join(f"export {v}={threads};"
                                                        for v in _BLAS_ENV)))],
        retries=0, strategy="none", run_dir=os.fspath(run_dir))


def load_parsl_config(path):
    """The ``config`` defined by a Python file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    parsl.config.Config

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file does not define ``config`` as a ``parsl.config.Config``.
    """
    from parsl.config import Config

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"parsl config: file not found: {path}")
    ns = runpy.run_path(path)
    cfg = ns.get("config")
    if not isinstance(cfg, Config):
        raise ValueError(f"parsl config {path}: must define `config = parsl.config.Config(...)` "
                         f"(got {type(cfg).__name__})")
    return cfg


class ParslEngine:
    """Parsl: a ``HighThroughputExecutor`` on this machine, or a user's configuration.

    Parameters
    ----------
    workers, threads : int
        For the default local configuration.
    parsl_config : str or path-like, optional
        Python file defining ``config``.
    run_dir : str or path-like
        ``run_dir`` of the default configuration.
    """

    name = "parsl"
    capacity = None

    def __init__(self, workers, threads, parsl_config=None, run_dir="parsl_runinfo"):
        try:
            import parsl
        except ImportError as exc:
            raise ImportError("executor 'parsl' needs parsl: pip install 'cloudcov[parsl]'") from exc
        from .campaign import survey_task

        cfg = (load_parsl_config(parsl_config) if parsl_config
               else local_parsl_config(workers, threads, run_dir))
        self._parsl = parsl
        self.dfk = parsl.load(cfg)
        if not log.isEnabledFor(logging.INFO):
            logging.getLogger("parsl").propagate = False       # parsl.log in run_dir has it
        self.app = parsl.python_app(survey_task, data_flow_kernel=self.dfk)

    def submit(self, fn, *args):
        """Submit ``survey_task(*args)`` (the only function this engine runs)."""
        from .campaign import survey_task

        if fn is not survey_task:
            raise ValueError("ParslEngine runs cloudcov.campaign.survey_task only")
        return self.app(*args), 0

    def recover(self, exc, generation):
        """Nothing to do: Parsl's manager replaces lost workers' blocks as configured."""

    def close(self, abort=False):
        with contextlib.suppress(Exception):
            self.dfk.cleanup()
        with contextlib.suppress(Exception):
            self._parsl.clear()


@contextlib.contextmanager
def make_engine(executor, *, workers, threads, scheduler=None, parsl_config=None,
                run_dir="parsl_runinfo"):
    """Start an engine for the duration of a ``with`` block.

    Parameters
    ----------
    executor : {"local", "dask", "parsl"}
    workers, threads : int
        From :func:`plan_workers`.
    scheduler : str, optional
        Dask scheduler address.
    parsl_config : str or path-like, optional
        Parsl configuration file.
    run_dir : str or path-like, optional
        Parsl ``run_dir`` of the default configuration.

    Yields
    ------
    LocalEngine, DaskEngine or ParslEngine
    """
    if executor == "local":
        eng = LocalEngine(workers, threads)
    elif executor == "dask":
        eng = DaskEngine(workers, threads, scheduler)
    elif executor == "parsl":
        eng = ParslEngine(workers, threads, parsl_config, run_dir)
    else:
        raise ValueError(f"executor: expected local, dask or parsl, got {executor!r}")
    try:
        yield eng
    except BaseException:           # Ctrl-C, a bug: stop the workers without waiting
        eng.close(abort=True)
        raise
    eng.close()
