import re
import subprocess

import pytest

import cloudcov
from cloudcov import _core
from cloudcov._provenance import _from_version, provenance, version


def test_version_matches_extension():
    """Catches a stale build: the Python version == the compiled extension's version."""
    assert cloudcov.__version__ == _core.__version__ == version()


def test_simd_level_reported():
    assert _core.simd_level() in ("avx512", "avx2", "baseline")


def _git(*args):
    try:
        r = subprocess.run(["git", *args], cwd=cloudcov.__path__[0], capture_output=True,
                           text=True, timeout=20)
    except OSError:
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def test_version_from_git():
    """Built from a git checkout, the version names the commit it was built from
    (setuptools-scm via scikit-build-core); without git it is the pyproject fallback."""
    v = cloudcov.__version__
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?((\.dev\d+)?\+g[0-9a-f]{7,40}(\.d\d{8})?)?", v), v
    commit, dirty = _from_version(v)
    head = _git("rev-parse", "HEAD")
    if commit is not None and head is not None:
        # an editable build records the commit it was configured at: an ancestor of HEAD
        assert _git("merge-base", "--is-ancestor", commit, head) is not None


def test_version_local_part_parsing():
    assert _from_version("0.1.1.dev41+g890c47e66.d20261201") == ("890c47e66", True)
    assert _from_version("0.1.1.dev41+g890c47e66") == ("890c47e66", False)
    assert _from_version("0.1.0") == (None, None)


def test_provenance_records_commit_and_environment():
    import numpy as np

    p = provenance()
    assert p["cloudcov"] == cloudcov.__version__ and p["numpy"] == np.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", p["date"])
    head = _git("rev-parse", "HEAD")
    if p["git_source"] == "work tree":          # imported from the source tree
        assert p["git_commit"] == head and isinstance(p["git_dirty"], bool)
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "python", "cpp")
        if dirty:                               # a changed source file is always dirty
            assert p["git_dirty"] is True
    elif p["git_source"] == "version":          # an installed build: commit from its version
        assert p["git_commit"] == _from_version(p["cloudcov"])[0]
    else:
        pytest.skip("no git metadata available (installed from a git-less source tree)")
