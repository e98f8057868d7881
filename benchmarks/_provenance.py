"""One line naming the cloudcov version and git commit that produced a benchmark output
(from :func:`cloudcov._provenance.provenance`, the one provenance helper of the project)."""
from __future__ import annotations

import json
import os
import pathlib
import platform

from cloudcov._provenance import provenance as _provenance

REPO = pathlib.Path(__file__).resolve().parents[1]


def provenance():
    """``cloudcov <version>, commit <sha>[+dirty]; provenance: {...}`` for a result header."""
    p = _provenance(REPO)
    sha = p["git_commit"] or "unknown"
    if p["git_dirty"]:
        sha += "+dirty"
    return (f"cloudcov {p['cloudcov']}, commit {sha}; provenance: {json.dumps(p, sort_keys=True)}; "
            f"cpu: {cpu_model()}")


def cpu_model():
    """The CPU that ran the benchmark: model name, logical cores and the stack kernel's SIMD
    path (benchmark machines differ from session to session; results are only comparable
    within one file)."""
    from cloudcov import _core

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical cores, simd={_core.simd_level()}"


def load_note():
    """The 1-minute load average and core count (the machine is shared)."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


class Report:
    """A benchmark's printed lines: ``say(text)`` prints a line (flushed) and keeps it;
    ``say.write(out)`` writes them all with :func:`write_result`."""

    def __init__(self):
        self.lines = []

    def __call__(self, s=""):
        print(s, flush=True)
        self.lines.append(s)

    def write(self, out):
        return write_result(self.lines, out)


def write_result(lines, out):
    """Write a benchmark's printed lines to ``out`` (parents created) atomically (a temporary
    file renamed over it, so a crash leaves the old result) and say where. An existing target
    that is not a regular file (``--out /dev/null``, as bench_cost_model.py and bench_strips.py
    pass to bench_ccd.py) is written directly: renaming over it would replace the device (as
    root, /dev/null became a regular file)."""
    path = pathlib.Path(out)
    if path.exists() and not path.is_file():
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    print(f"written to {path}")
    return 0
