"""One line naming the cloudcov version and git commit that produced a benchmark output."""
from __future__ import annotations

import pathlib
import subprocess

import cloudcov


def provenance():
    """``cloudcov <version>, commit <sha>[+dirty]`` (``unknown`` outside a git checkout)."""
    root = pathlib.Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":!benchmarks/results"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        sha += "+dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        sha = "unknown"
    return f"cloudcov {cloudcov.__version__}, commit {sha}"


def load_note():
    """The 1-minute load average and core count (the machine is shared)."""
    import os
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
