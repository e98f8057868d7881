import cloudcov
from cloudcov import _core


def test_version_matches_extension():
    """Catches a stale build: pyproject version == compiled extension version."""
    assert cloudcov.__version__ == _core.__version__


def test_simd_level_reported():
    assert _core.simd_level() in ("avx512", "avx2", "baseline")
