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
