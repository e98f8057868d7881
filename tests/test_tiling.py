"""Strip planning: coverage, memory budget, fewest strips."""
import numpy as np
import pytest

import cloudcov as cc
from cloudcov.tiling import plan_strips, stack_bytes


@pytest.mark.parametrize("budget", [64 << 20, 300 << 20, 768 << 20, 4 << 30])
def test_strips_cover_columns_once_and_fit_budget(budget):
    rows, cols = (100, 4200), (80, 2130)
    strips = plan_strips(rows, cols, 33, 129, max_memory=budget)
    covered = np.zeros(cols[1] - cols[0], int)
    for s in strips:
        covered[s.col0 - cols[0]:s.col1 - cols[0]] += 1
        out_cols = s.col1 - s.col0 + 32
        assert stack_bytes(s.ring_rows, out_cols, 33) <= budget
        assert s.ring_rows >= 33
        assert s.ring_rows <= min(rows[1] - rows[0] + 32, 33 + 16)
    assert np.all(covered == 1)
    # fewest strips: one fewer would not leave Np + 16 ring rows
    if len(strips) > 1:
        wider = int(np.ceil((cols[1] - cols[0]) / (len(strips) - 1))) + 32
        assert budget // (wider * cc._core.n_slots(33) * 4) < 33 + 16


def test_small_image_is_one_strip_with_ring_sized_by_need():
    # a large budget is a ceiling, not an allocation: the ring holds Np + 16 rows at most
    (s,) = plan_strips((0, 50), (0, 60), 9, 21, max_memory=1 << 30)
    assert (s.col0, s.col1) == (0, 60) and s.ring_rows == 9 + 16
    (s,) = plan_strips((0, 10), (0, 60), 9, 21, max_memory=1 << 30)
    assert s.ring_rows == 10 + 8          # every output row of the strip
    # a DECam-size CCD at the default budget: the ring is far below the budget
    strips = plan_strips((0, 4094), (0, 2046))
    assert all(st.ring_rows == 33 + 16 for st in strips)
    assert max(stack_bytes(st.ring_rows, st.col1 - st.col0 + 32, 33) for st in strips) <= 256 << 20
    assert len(strips) == 4


def test_budget_too_small():
    with pytest.raises(ValueError, match="max_memory"):
        plan_strips((0, 500), (0, 500), 33, 129, max_memory=1000)
    with pytest.raises(ValueError, match="empty star region"):
        plan_strips((5, 5), (0, 10))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_memory", [40 << 20, 256 << 20])
def test_sweep_plan_ring_starts_on_a_cache_line(dtype, max_memory):
    """The ring buffer of every sweep plan starts on a 64-byte boundary: the sweep writes whole
    cache lines of it, so that which lines (and stack_values_written) follow from the inputs,
    not from where the allocator put the buffer (np.empty gives 16-byte alignment)."""
    from cloudcov.tiling import sweep_plan
    rng = np.random.default_rng(3)
    for n, side in ((5, 300), (40, 900), (300, 2100)):
        R = rng.integers(80, side - 80, n).astype(np.int64)
        C = rng.integers(80, side - 80, n).astype(np.int64)
        _, ring, bim = sweep_plan(R, C, 33, 129, 129, max_memory, dtype)
        assert ring.ctypes.data % 64 == 0
        assert ring.dtype == dtype and ring.ndim == 1 and ring.flags.c_contiguous and ring.flags.writeable
        ring[-1] = 1.0   # the whole length is usable


def test_aligned_empty():
    from cloudcov.tiling import _aligned_empty
    for align in (16, 64, 4096):
        assert _aligned_empty(0, np.float32, align).shape == (0,)
        for n in (1, 7, 1000, 123457):
            a = _aligned_empty(n, np.float32, align)
            assert a.shape == (n,) and a.dtype == np.float32 and a.ctypes.data % align == 0
            a[:] = 2.0
            assert (a == 2.0).all()
    with pytest.raises(ValueError, match="align"):
        _aligned_empty(10, np.float64, 4)
    with pytest.raises(ValueError, match="align"):
        _aligned_empty(10, np.float32, 48)
