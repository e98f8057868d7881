"""One line naming the cloudcov version and git commit that produced a benchmark output
(from :func:`cloudcov._provenance.provenance`, the one provenance helper of the project)."""
from __future__ import annotations

import json
import os
import pathlib

from cloudcov._provenance import provenance as _provenance

REPO = pathlib.Path(__file__).resolve().parents[1]


def provenance():
    """``cloudcov <version>, commit <sha>[+dirty]; provenance: {...}`` for a result header."""
    p = _provenance(REPO)
    sha = p["git_commit"] or "unknown"
    if p["git_dirty"]:
        sha += "+dirty"
    return f"cloudcov {p['cloudcov']}, commit {sha}; provenance: {json.dumps(p, sort_keys=True)}"


def load_note():
    """The 1-minute load average and core count (the machine is shared)."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
