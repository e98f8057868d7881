"""Provenance of committed results: cloudcov version, git commit of the source tree, platform."""
from __future__ import annotations

import os
import pathlib
import platform
import subprocess
import time

import numpy as np

__all__ = ["provenance"]


def provenance(repo=None):
    """Dictionary recording what produced a result.

    Parameters
    ----------
    repo : path-like, optional
        Source checkout whose ``git rev-parse HEAD`` and dirty state are recorded (default:
        the checkout holding this file, if any; empty strings when git or the checkout is
        unavailable).

    Returns
    -------
    dict
        ``cloudcov`` (version), ``git_commit``, ``git_dirty`` (tracked files modified),
        ``python``, ``numpy``, ``machine``, ``ncpu`` (usable cores), ``date_utc``.
    """
    from . import __version__

    repo = pathlib.Path(repo) if repo is not None else pathlib.Path(__file__).resolve().parents[2]

    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=repo, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return dict(cloudcov=__version__, git_commit=git("rev-parse", "HEAD"),
                git_dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
                python=platform.python_version(), numpy=np.__version__,
                machine=platform.machine(),
                ncpu=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                date_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
