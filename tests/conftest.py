"""Shared fixtures: seeded random images and the real data beside the repository."""
from __future__ import annotations

import contextlib
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"


@pytest.fixture
def rng():
    return np.random.default_rng(20221121)


@pytest.fixture(scope="session")
def real_dir():
    if not REAL.is_dir():
        pytest.skip(f"real data directory {REAL} not found")
    return REAL


def correlated_field(rng, shape, scale=3.0, amp=1.0, noise=0.3, dtype=np.float64):
    """A smooth Gaussian random field plus white noise (structured-background stand-in)."""
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal(shape), scale, mode="wrap")
    f *= amp / f.std()
    return (f + noise * rng.standard_normal(shape)).astype(dtype)


@contextlib.contextmanager
def core_switch(name, on):
    """Inside the block, the benchmark/test switch ``_core.set_<name>`` (``gather_prefetch``,
    ``gather_compact``, ``stack_write_read_only``, ``stack_write_windows``, ``stack_scalar_tail``,
    ``stack_stage_prefetch``, ``stack_aligned_loads``, ``stack_wide_streams``,
    ``guard_triangular_estimate``, ``guard_pocon_estimate``) is ``on``; it must hold ``not on``
    (its default) on entry, and is restored on exit, also when the block raises."""
    from cloudcov import _core
    setter = getattr(_core, "set_" + name)
    assert setter(on) is (not on), f"_core.set_{name}: expected its default {not on} on entry"
    try:
        yield
    finally:
        assert setter(not on) is on
