"""cloudcov.impute: common API, baselines (median, gaussian), LPI and GPR."""
import numpy as np
import pytest
from astropy.convolution import Gaussian2DKernel, interpolate_replace_nans

import cloudcov as cc
from cloudcov.impute import ImputeResult
from conftest import correlated_field


# ----------------------------------------------------------------------------- common API

@pytest.mark.parametrize("method", ["median", "gaussian"])
def test_zero_pixel_mask_returns_image_unchanged(rng, method):
    x = correlated_field(rng, (40, 37), dtype=np.float32)
    res = cc.impute(x, np.zeros(x.shape, bool), method, n_draw=2, rng=1)
    assert isinstance(res, ImputeResult)
    assert res.image.dtype == np.float32
    np.testing.assert_array_equal(res.image, x)
    assert not res.std.any() and res.n_imputed == 0 and res.n_fallback == 0
    assert res.draws.shape == (2,) + x.shape
    np.testing.assert_array_equal(res.draws[1], x)
    assert res.image is not x  # never the caller's array


@pytest.mark.parametrize("method", ["median", "gaussian"])
def test_good_pixels_kept_masked_filled_dq_and_nan(rng, method):
    x = correlated_field(rng, (50, 60))
    dq = np.zeros(x.shape, np.int32)
    dq[rng.random(x.shape) < 0.05] = 4          # dq-style integer mask
    x_in = x.copy()
    x_in[dq != 0] = 1e30                         # values under the mask are never read
    x_in[3, 4] = np.nan                          # NaN counts as bad by default
    res = cc.impute(x_in, dq, method)
    expect = (dq != 0)
    expect[3, 4] = True
    np.testing.assert_array_equal(res.mask, expect)
    np.testing.assert_array_equal(res.image[~expect], x[~expect])
    assert np.all(np.isfinite(res.image)) and np.all(res.std[expect] > 0)
    assert np.all(res.std[~expect] == 0)
    assert np.abs(res.image[expect]).max() < 10 * np.abs(x).max()
    with pytest.raises(ValueError, match="NaN or infinite values outside the mask"):
        cc.impute(x_in, dq, method, nan_as_bad=False)
    # mask=None: only the non-finite pixels
    res = cc.impute(x_in, None, method)
    assert res.n_imputed == 1 and res.mask[3, 4]


def test_integer_image_gives_float64(rng):
    x = rng.integers(0, 1000, (30, 30)).astype(np.uint16)
    m = np.zeros(x.shape, bool)
    m[10, 10] = True
    res = cc.impute(x, m, "median")
    assert res.image.dtype == np.float64
    np.testing.assert_array_equal(res.image[~m], x[~m])


def test_bad_input(rng):
    x = rng.standard_normal((20, 20))
    m = np.zeros(x.shape, bool)
    m[5, 5] = True
    with pytest.raises(ValueError, match="method"):
        cc.impute(x, m, "bilinear")
    with pytest.raises(ValueError, match="2-D"):
        cc.impute(x[0], m[0], "median")
    with pytest.raises(ValueError, match="mask: shape"):
        cc.impute(x, m[:5], "median")
    with pytest.raises(TypeError, match="mask"):
        cc.impute(x, m.astype(float), "median")
    with pytest.raises(TypeError, match="image"):
        cc.impute(np.array([["a"]]), m, "median")
    with pytest.raises(ValueError, match="every pixel is masked"):
        cc.impute(x, np.ones(x.shape, bool), "median")
    with pytest.raises(TypeError, match="unexpected keyword.*sigma"):
        cc.impute(x, m, "median", sigma=2)
    with pytest.raises(ValueError, match="size: must be odd"):
        cc.impute(x, m, "median", size=4)
    with pytest.raises(ValueError, match="sigma: must be > 0"):
        cc.impute(x, m, "gaussian", sigma=0)
    with pytest.raises(ValueError, match="n_draw"):
        cc.impute(x, m, "median", n_draw=-1)
    with pytest.raises(TypeError, match="rng"):
        cc.impute(x, m, "median", rng="seed")
    with pytest.raises(TypeError, match="progress"):
        cc.impute(x, m, "median", progress=None)
    with pytest.raises(ValueError, match="empty"):
        cc.impute(np.zeros((0, 3)), np.zeros((0, 3), bool), "median")


# ----------------------------------------------------------------------------- baselines

def test_median_equals_bruteforce(rng):
    x = correlated_field(rng, (31, 29))
    m = rng.random(x.shape) < 0.2
    res = cc.impute(x, m, "median", size=5)
    for r, c in zip(*np.nonzero(m)):
        r0, c0 = max(r - 2, 0), max(c - 2, 0)
        win = x[r0:r + 3, c0:c + 3][~m[r0:r + 3, c0:c + 3]]
        if win.size >= 3:
            assert res.image[r, c] == pytest.approx(np.median(win), rel=1e-12)
            sig = 1.482602218505602 * np.median(np.abs(win - np.median(win)))
            assert res.std[r, c] == pytest.approx(sig * np.sqrt(1 + np.pi / (2 * win.size)), rel=1e-12)
        else:
            assert res.fallback[r, c]


def test_median_fallback_reported():
    x = np.arange(400, dtype=float).reshape(20, 20)
    m = np.zeros(x.shape, bool)
    m[2:18, 2:18] = True
    res = cc.impute(x, m, "median", size=3)
    # the centre of the 16x16 hole has no good pixel within 3x3 / 7x7: grown boxes
    assert res.fallback[10, 10] and not res.fallback[2, 2]
    assert res.fallback_reasons["median_box_grown"] == res.n_fallback
    assert np.all(np.isfinite(res.image))
    one = np.ones(x.shape, bool)
    one[0, 0] = False
    res = cc.impute(x, one, "median")
    assert res.fallback_reasons == {"global_median": 399}
    assert np.all(res.image[one] == x[0, 0])


def test_gaussian_equals_astropy(rng):
    x = correlated_field(rng, (40, 41))
    m = rng.random(x.shape) < 0.1
    res = cc.impute(x, m, "gaussian", sigma=1.3)
    ref = interpolate_replace_nans(np.where(m, np.nan, x), Gaussian2DKernel(1.3),
                                   boundary="fill", fill_value=np.nan)
    np.testing.assert_allclose(res.image[m], ref[m], rtol=1e-12)
    assert res.n_fallback == 0 and res.params["sigma"] == 1.3
    k = Gaussian2DKernel(1.3).array
    h = k.shape[0] // 2
    xp = np.pad(np.where(m, np.nan, x), h, constant_values=np.nan)
    for r, c in list(zip(*np.nonzero(m)))[::7]:
        win = xp[r:r + 2 * h + 1, c:c + 2 * h + 1]
        g = ~np.isnan(win)
        w = k[g]
        sig = 1.482602218505602 * np.median(np.abs(win[g] - np.median(win[g])))
        expect = sig * np.sqrt(1 + (w ** 2).sum() / w.sum() ** 2)
        assert res.std[r, c] == pytest.approx(expect, rel=1e-10)


def test_gaussian_hole_falls_back_to_median(rng):
    x = correlated_field(rng, (60, 60))
    m = np.zeros(x.shape, bool)
    m[10:40, 10:40] = True   # wider than the 9x9 kernel
    res = cc.impute(x, m, "gaussian")
    assert res.fallback[25, 25] and not res.fallback[10, 10]
    assert res.fallback_reasons["gaussian_kernel_short"] == res.n_fallback > 0
    assert np.all(np.isfinite(res.image)) and np.all(res.std[m] > 0)


@pytest.mark.parametrize("method", ["median", "gaussian"])
def test_baseline_std_calibrated_on_white_noise(method):
    # flat background with white noise: the documented std is the predictive scatter
    gen = np.random.default_rng(5)
    x = 100 + 3.0 * gen.standard_normal((300, 300))
    m = gen.random(x.shape) < 0.02
    res = cc.impute(x, m, method, n_draw=3, rng=7)
    z = (x[m] - res.image[m]) / res.std[m]
    q1, q3 = np.percentile(z, [25, 75])
    assert (q3 - q1) / 1.349 == pytest.approx(1.0, abs=0.06)   # IQR spread of the Z-scores
    # draws: independent Gaussians around the mean with that std, seeded
    dz = (res.draws[:, m] - res.image[m]) / res.std[m]
    assert np.std(dz) == pytest.approx(1.0, abs=0.05) and abs(np.mean(dz)) < 0.05
    again = cc.impute(x, m, method, n_draw=3, rng=7)
    np.testing.assert_array_equal(again.draws, res.draws)


def test_max_memory_invariance_baselines(rng):
    x = correlated_field(rng, (64, 64))
    m = rng.random(x.shape) < 0.1
    for method in ("median", "gaussian"):
        a = cc.impute(x, m, method)
        b = cc.impute(x, m, method, max_memory=1)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.std, b.std)
