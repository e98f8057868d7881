"""Provenance of committed results: cloudcov version, git commit, environment, date.

Every writer of committed results (``validation/scripts/*.py`` JSON, ``benchmarks/*.py``
outputs) records :func:`provenance` so that a number can be traced to the code that made it.
"""
from __future__ import annotations

import datetime
import functools
import pathlib
import platform
import re
import subprocess

__all__ = ["version", "provenance"]

#: Paths whose changes do not make a tree "dirty" for provenance: the committed results and
#: the prose that quotes them (a validation run rewrites these while later runs start).
_OUTPUT_PATHS = ("validation/results", "benchmarks/results", "**/*.md")


@functools.lru_cache(maxsize=1)
def version():
    """The installed cloudcov version.

    Returns
    -------
    str
        From the distribution metadata (``importlib.metadata``), else from the
        ``_version.py`` generated at build time, else ``"0+unknown"``. With a git checkout
        the build derives it from git (setuptools-scm: ``0.1.devN+g<commit>`` between tags,
        with ``.dYYYYMMDD`` when the tree was dirty); a source tree without git gets the
        ``fallback_version`` of ``pyproject.toml``.
    """
    try:
        from ._version import version as v
        return v
    except ImportError:
        pass
    try:
        from importlib import metadata
        return metadata.version("cloudcov")
    except Exception:  # pragma: no cover - not installed as a distribution
        return "0+unknown"


def _git(args, cwd):
    try:
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _source_tree():
    """The git work tree this cloudcov was imported from, if it is cloudcov's source tree."""
    pkg = pathlib.Path(__file__).resolve().parent
    top = _git(["rev-parse", "--show-toplevel"], pkg)
    if top is None:
        return None
    top = pathlib.Path(top)
    # an installed copy inside some other repository (e.g. a venv under a checkout) is not it
    return top if (top / "python" / "cloudcov").resolve() == pkg else None


def _from_version(v):
    """(commit, dirty) from a setuptools-scm version's local part, e.g. ``+g1a2b3c4.d20261201``."""
    m = re.search(r"\+g([0-9a-f]{7,40})(\.d\d{8})?", v)
    if not m:
        return None, None
    return m.group(1), m.group(2) is not None


def _lapack_name():
    """``scipy`` or ``mkl`` (with MKL's version): the LAPACK the C++ kernels call."""
    try:
        from .lapack import lapack_info
    except ImportError:  # pragma: no cover - broken install without the extension
        return None
    info = lapack_info()
    return info["name"] if info["version"] is None else f"{info['name']} ({info['version']})"


def provenance(repo=None):
    """What made a result: version, git commit and dirty flag, Python/numpy, UTC date.

    Parameters
    ----------
    repo : str or path-like, optional
        The cloudcov source tree to ask git about (a script run from a checkout against an
        installed build); default: the tree cloudcov was imported from, if it is one.

    Returns
    -------
    dict
        ``cloudcov`` (version), ``git_commit`` (40-hex commit, or the short one recorded in
        the version, or None), ``git_dirty`` (tracked source files differ from the commit;
        committed results under ``validation/results``, ``benchmarks/results`` and Markdown
        files are not counted; None when unknown), ``git_source`` (``"work tree"``: asked
        git in the source tree cloudcov was imported from; ``"version"``: read from the
        version string of an installed build; ``"unknown"``), ``python``, ``numpy``,
        ``platform``, ``lapack`` (the LAPACK the kernels call, see
        :func:`cloudcov.lapack_info`), ``date`` (ISO 8601, UTC).

    Notes
    -----
    Call it when a run starts, so that outputs the run writes do not count as changes.
    """
    import numpy as np

    v = version()
    commit = dirty = None
    source = "unknown"
    top = pathlib.Path(repo) if repo is not None else _source_tree()
    if top is not None:
        commit = _git(["rev-parse", "HEAD"], top)
        status = _git(["status", "--porcelain", "--untracked-files=no", "--", ".",
                       *[f":(exclude,glob){p}" if "*" in p else f":(exclude){p}"
                         for p in _OUTPUT_PATHS]], top)
        if commit is not None:
            source, dirty = "work tree", bool(status)
    if commit is None:
        commit, dirty = _from_version(v)
        if commit is not None:
            source = "version"
    return dict(cloudcov=v, git_commit=commit, git_dirty=dirty, git_source=source,
                python=platform.python_version(), numpy=np.__version__,
                platform=platform.platform(), lapack=_lapack_name(),
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
