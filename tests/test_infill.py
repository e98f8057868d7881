"""Preliminary infill and sky noise: properties beyond the parity values."""
import numpy as np
import pytest

import cloudcov as cc
from conftest import correlated_field


def test_infill_fills_every_masked_pixel_and_keeps_the_rest(rng):
    x = correlated_field(rng, (120, 90), dtype=np.float32)
    mask = rng.random(x.shape) < 0.3
    mask[40:70, 20:60] = True       # a large hole needs several rounds
    res = cc.prelim_infill(x, mask)
    assert res.image.dtype == np.float32
    np.testing.assert_array_equal(res.image[~mask], x[~mask])
    assert np.all(np.isfinite(res.image))
    assert res.rounds >= 2 and res.n_fallback == 0
    # infilled values are local means of good pixels: within the good-pixel range
    assert res.image[mask].min() >= x[~mask].min() and res.image[mask].max() <= x[~mask].max()


def test_infill_matches_bruteforce_first_round(rng):
    x = rng.standard_normal((30, 31))
    mask = rng.random(x.shape) < 0.2
    res = cc.prelim_infill(x, mask, widx=5, widy=7, max_rounds=1, min_good=0)
    xp = np.pad(np.where(mask, 0, x), ((2, 2), (3, 3)), mode="reflect")
    gp = np.pad((~mask).astype(float), ((2, 2), (3, 3)), mode="reflect")
    for r, c in zip(*np.nonzero(mask)):
        n = gp[r:r + 5, c:c + 7].sum()
        if n > 0:
            assert res.image[r, c] == pytest.approx(xp[r:r + 5, c:c + 7].sum() / n, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_infill_matches_reference_over_every_round(rng, dtype):
    """All rounds against the numpy reference (tests/lpi_reference.py): isolated pixels filled
    in round 1, a hole that needs several rounds, masked runs ending in the last column and in
    the last row, rows with no masked pixel between them (the kernel runs its sums along a row
    only where that row still holds a masked pixel, and only as far as the last of them)."""
    from lpi_reference import prelim_infill as reference
    x = rng.standard_normal((97, 83)) + 3.0
    mask = rng.random(x.shape) < 0.05
    mask[30:62, 10:45] = True          # rounds 1-4
    mask[70:73, 60:] = True            # up to the last column
    mask[-1, 5:9] = True               # the last row
    mask[80:90, :] = False             # rows without any masked pixel
    mask[85, 0] = True                 # ... but one in the first column
    x = x.astype(dtype)
    res = cc.prelim_infill(x, mask, widx=7, max_rounds=6, min_good=12)
    assert res.rounds >= 3
    ref = reference(x.astype(np.float64), mask, w0=7, max_rounds=6, min_good=12)
    if dtype == np.float64:
        np.testing.assert_allclose(res.image, ref, rtol=1e-12, atol=1e-12)
    else:   # float32(mean in double): equal but for a last-bit tie
        np.testing.assert_allclose(res.image, ref.astype(np.float32), rtol=1.2e-7, atol=0)


def test_infill_median_fallback_and_julia_quirk(rng):
    x = rng.uniform(1, 2, (21, 21))
    mask = np.zeros(x.shape, bool)
    mask[5:16, 5:16] = True   # 121 masked pixels
    res = cc.prelim_infill(x, mask, widx=1, max_rounds=3)
    assert res.n_fallback == mask.sum()
    assert np.all(res.image[mask] == np.median(x[~mask]))
    jl = cc.prelim_infill(x, mask, widx=1, max_rounds=3, julia_compat=True)
    assert np.all(jl.image[mask] == np.median(np.where(mask, 0, x)))


def test_infill_ignores_nan_under_mask(rng):
    x = rng.standard_normal((20, 20))
    mask = np.zeros(x.shape, bool)
    mask[3, 4] = True
    x[3, 4] = np.nan
    res = cc.prelim_infill(x, mask)
    assert np.isfinite(res.image[3, 4])
    x[5, 5] = np.inf
    with pytest.raises(ValueError, match="image"):
        cc.prelim_infill(x, mask)
