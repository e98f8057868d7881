"""Exclusive advisory locks on output files, so that two runs never write one output.

One lock implementation serves ``cloudcov exposure``, ``cloudcov survey`` and every other
writer (DESIGN.md sec. 6: one atomic/locked writer). The lock is a POSIX ``flock`` on a
sidecar file ``<output>.lock``: the kernel releases it when the holding process exits, so a
``kill -9`` never leaves a stale lock, and the sidecar file's text names the holder (host, pid,
command, start time) for the error message of the run that is refused.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import socket
import sys
import time

from ..errors import CloudCovError

__all__ = ["OutputLockedError", "exclusive_lock", "lock_path"]


class OutputLockedError(CloudCovError):
    """Another process holds the lock on an output.

    Attributes
    ----------
    path : str
        The output that is locked.
    holder : dict
        What the holder wrote into the lock file (``host``, ``pid``, ``argv``, ``since``);
        empty when it could not be read.
    """

    def __init__(self, path, holder):
        self.path = str(path)
        self.holder = dict(holder)
        if holder:
            who = (f"pid {holder.get('pid')} on {holder.get('host')} since "
                   f"{holder.get('since')} ({' '.join(map(str, holder.get('argv', [])))})")
        else:
            who = "another process (holder unknown)"
        super().__init__(f"{self.path}: output is locked by {who}; wait for it to finish "
                         f"or write to another output")


def lock_path(path):
    """The sidecar lock file of an output: ``<path>.lock``.

    Parameters
    ----------
    path : str or path-like
        The output file or folder.

    Returns
    -------
    pathlib.Path
    """
    path = pathlib.Path(path)
    return path.with_name(path.name + ".lock")


def _read_holder(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 65536).decode("utf-8", "replace")
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def exclusive_lock(path, *, blocking=False, timeout=None):
    """Hold an exclusive lock on an output for the duration of a ``with`` block.

    Parameters
    ----------
    path : str or path-like
        The output to protect (a file or a folder); the lock lives in ``<path>.lock`` beside
        it, whose directory is created. The lock file is left in place on exit (removing it
        would race with a waiting process); it is empty of meaning once no process holds it.
    blocking : bool, optional
        False (default): fail at once if another process holds the lock. True: wait for it.
    timeout : float, optional
        With ``blocking=True``, give up after this many seconds (None: wait forever).

    Yields
    ------
    pathlib.Path
        The lock file.

    Raises
    ------
    OutputLockedError
        The lock is held by another process (at once, or after ``timeout``); the message names
        the holder's host, pid and command line.
    OSError
        The lock file cannot be created (read-only folder, ...).

    Notes
    -----
    ``flock`` locks are per open file description: a second ``exclusive_lock`` on the same
    path within one process is refused too, which is what a driver that runs tasks in threads
    needs. On network file systems ``flock`` is only as reliable as the server's lock support
    (NFSv4 and Lustre with ``flock`` mounts support it).
    """
    lpath = lock_path(path)
    lpath.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lpath, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not blocking or (deadline is not None and time.monotonic() >= deadline):
                    raise OutputLockedError(path, _read_holder(fd)) from None
                time.sleep(0.05)
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "argv": sys.argv,
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield lpath
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
