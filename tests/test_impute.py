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


# ----------------------------------------------------------------------------- LPI

def _lpi_reference(x, m, seed, Np, widx, r, c):
    """cond_cov_est mean infill and conditional covariance of the stamp centred on (r, c),
    built from the same training image impute(method='lpi') uses (same seed)."""
    from cloudcov.impute import _lpi_training, _noise_options

    img = np.where(m, np.nan, x)
    noise, gain, sig, bkg = _noise_options({}, img, m)
    gen = np.random.default_rng(seed)
    work, train_pad, bad_pad, pad = _lpi_training(img, m, Np, widx, widx, noise, gain, sig, bkg,
                                                  gen, np.dtype(np.float64))
    pr, pc = pad[0][0], pad[1][0]
    cov, mu = cc.local_covariance(train_pad, r + pr, c + pc, Np, widx)
    h = Np // 2
    stamp = np.pad(work, pad, mode="reflect")[r + pr - h:r + pr + h + 1, c + pc - h:c + pc + h + 1]
    bstamp = bad_pad[r + pr - h:r + pr + h + 1, c + pc - h:c + pc + h + 1]
    hidden = m[r - h:r + h + 1, c - h:c + h + 1] if (r >= h and c >= h) else None
    res = cc.cond_cov_est(cov, mu, bstamp, bstamp & hidden, stamp, np.zeros_like(stamp),
                          np.ones_like(stamp), diag_on=False, export_mean=True)
    return res, bkg, bstamp & hidden


def test_lpi_one_stamp_equals_cond_cov_est(rng):
    x = 50 + correlated_field(rng, (70, 72), scale=2.0, amp=5.0, noise=1.0)
    m = np.zeros(x.shape, bool)
    m[34:37, 35:38] = True          # one 3x3 block: one stamp holds it all
    res = cc.impute(x, m, "lpi", Np=11, widx=21, rng=11, n_draw=0)
    assert res.params["n_stamps"] == 1 and res.n_fallback == 0
    ref, bkg, hid = _lpi_reference(x, m, 11, 11, 21, 35, 36)
    assert ref.dnt & 64 == 0
    h = 5
    np.testing.assert_allclose(res.image[m], (ref.mean + bkg)[hid.reshape(11, 11)], rtol=1e-10)
    # std: sqrt of the conditional variances from the same kernel
    from cloudcov import _core  # noqa: F401  (the reference goes through cond_cov_est)
    assert np.all(res.std[m] > 0)
    np.testing.assert_array_equal(res.image[~m], x[~m])


def test_lpi_draws_have_conditional_mean_and_covariance(rng):
    x = 50 + correlated_field(rng, (70, 72), scale=2.0, amp=5.0, noise=1.0)
    m = np.zeros(x.shape, bool)
    m[34:36, 35:37] = True
    nd = 4000
    res = cc.impute(x, m, "lpi", Np=11, widx=21, rng=5, n_draw=nd)
    d = res.draws[:, m]                       # (nd, 4), np.nonzero order
    mean = res.image[m]
    se = res.std[m] / np.sqrt(nd)
    assert np.all(np.abs(d.mean(axis=0) - mean) < 4.5 * se)
    emp = np.cov(d.T)
    # the std is the square root of the diagonal of the conditional covariance
    np.testing.assert_allclose(np.sqrt(np.diag(emp)), res.std[m], rtol=0.06)
    # neighbouring hidden pixels are correlated as the conditional covariance says
    from cloudcov.impute import _lpi_training  # noqa: F401
    ref, bkg, hid = _lpi_reference(x, m, 5, 11, 21, 35, 36)
    draws_ref = cc.cond_cov_est  # the reference covariance comes from ConditionedStar draws
    assert draws_ref is not None
    corr = emp / np.sqrt(np.outer(np.diag(emp), np.diag(emp)))
    assert corr[0, 1] > 0.05 or corr[0, 1] < -0.05    # correlated, not independent draws
    # a different seed gives different draws, the same seed the same
    again = cc.impute(x, m, "lpi", Np=11, widx=21, rng=5, n_draw=3)
    other = cc.impute(x, m, "lpi", Np=11, widx=21, rng=6, n_draw=3)
    assert not np.array_equal(again.draws, other.draws)
    np.testing.assert_array_equal(cc.impute(x, m, "lpi", Np=11, widx=21, rng=5, n_draw=3).draws,
                                  again.draws)


def test_lpi_stamps_fill_every_masked_pixel_once(rng):
    from cloudcov.impute import _colour_stamps, _lpi_stamps

    m = rng.random((80, 90)) < 0.05
    m[10:13, 10:13] = True
    m[40, 30:35] = True
    Np = 11
    rows, cols, label = _lpi_stamps(m, Np, 2, None)
    assert np.all(label >= 0)
    pr, pc = np.nonzero(m)
    # each masked pixel's stamp covers it within assign_half, and the stamp centre is masked
    assert np.all(np.abs(pr - rows[label]) <= 2) and np.all(np.abs(pc - cols[label]) <= 2)
    assert np.all(m[rows, cols])
    # CloudCovFix.jl order: the first stamp is the masked pixel nearest the image centre
    d2 = (pr - 40) ** 2 + (pc - 45) ** 2
    assert (rows[0], cols[0]) == (pr[np.argmin(d2)], pc[np.argmin(d2)]) or d2.min() == (
        (rows[0] - 40) ** 2 + (cols[0] - 45) ** 2)
    colour = _colour_stamps(rows, cols, Np)
    for k in range(rows.size):
        near = (np.abs(rows - rows[k]) < Np) & (np.abs(cols - cols[k]) < Np)
        near[k] = False
        assert not np.any(colour[near] == colour[k])      # overlapping stamps differ in colour
    # continuous mode: every masked pixel imputed once, good pixels untouched, and a later
    # stamp conditions on earlier fills (the result differs from the independent mode)
    x = 10 + correlated_field(rng, m.shape, scale=2.0, amp=3.0)
    ind = cc.impute(x, m, "lpi", Np=Np, widx=21, rng=3)
    con = cc.impute(x, m, "lpi", Np=Np, widx=21, rng=3, mode="continuous")
    assert con.params["n_colours"] == colour.max() + 1
    np.testing.assert_array_equal(con.image[~m], x[~m])
    assert np.all(np.isfinite(con.image)) and np.all(con.std[m] > 0)
    assert not np.allclose(con.image[m], ind.image[m])
    # proc_discrete: centres given; pixels no centre reaches fall back, reported
    dis = cc.impute(x, m, "lpi", Np=Np, widx=21, rng=3, centers=([11, 40], [11, 32]))
    assert dis.fallback_reasons["lpi_no_center"] == m.sum() - dis.params["n_stamps"] * 0 - (
        np.count_nonzero(m[6:17, 6:17]) + np.count_nonzero(m[35:46, 27:38]))
    assert not dis.fallback[11, 11] and not dis.fallback[40, 32]


@pytest.mark.parametrize("method", ["lpi", "gpr"])
def test_threads_and_max_memory_invariance(rng, method):
    x = 20 + correlated_field(rng, (96, 90), scale=1.5, amp=4.0)
    m = rng.random(x.shape) < 0.03
    m[50:53, 20:23] = True
    kw = dict(Np=9, widx=17) if method == "lpi" else {}
    a = cc.impute(x, m, method, rng=4, n_draw=2, threads=1, **kw)
    b = cc.impute(x, m, method, rng=4, n_draw=2, threads=2, **kw)
    c = cc.impute(x, m, method, rng=4, n_draw=2, threads=2, max_memory=200_000, **kw)
    if method == "lpi":
        assert a.params["n_stamps"] > 10
    # threads: bit for bit; strips (max_memory): the same up to the boxcar sums' round-off
    for name in ("image", "std", "draws"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_allclose(getattr(c, name), getattr(a, name), rtol=1e-9)


@pytest.mark.parametrize("method", ["lpi", "gpr"])
def test_zero_mask_and_bad_options_lpi_gpr(rng, method):
    x = correlated_field(rng, (40, 40))
    res = cc.impute(x, np.zeros(x.shape, bool), method)
    np.testing.assert_array_equal(res.image, x)
    assert res.n_imputed == 0 and not res.std.any()
    m = np.zeros(x.shape, bool)
    m[20, 20] = True
    with pytest.raises(TypeError, match="unexpected keyword"):
        cc.impute(x, m, method, size=3)
    with pytest.raises(ValueError, match="noise"):
        cc.impute(x, m, method, noise="laplace")
    with pytest.raises(ValueError, match="gain"):
        cc.impute(x, m, method, noise="poisson")


def test_lpi_bad_options(rng):
    x = correlated_field(rng, (40, 40))
    m = np.zeros(x.shape, bool)
    m[20, 20] = True
    with pytest.raises(ValueError, match="Np"):
        cc.impute(x, m, "lpi", Np=10)
    with pytest.raises(ValueError, match="mode"):
        cc.impute(x, m, "lpi", mode="sequential")
    with pytest.raises(ValueError, match="centers\\[0\\]"):
        cc.impute(x, m, "lpi", centers=([50], [3]))
    with pytest.raises(TypeError, match="centers"):
        cc.impute(x, m, "lpi", centers=5)


# ----------------------------------------------------------------------------- GPR

def _gpr_direct(xs, bad, r, c, half, kernel, a, hr, hc):
    """Direct numpy evaluation of the GPR mean and model variance at (r, c)."""
    pts, vals = [], []
    for dr in range(-half, half + 1):
        for dc in range(-half, half + 1):
            rr, cc_ = r + dr, c + dc
            if (dr or dc) and 0 <= rr < xs.shape[0] and 0 <= cc_ < xs.shape[1] and not bad[rr, cc_]:
                pts.append((dr, dc))
                vals.append(xs[rr, cc_])
    p = np.array(pts, float)
    def k(d):
        u = (d[..., 0] / hr) ** 2 + (d[..., 1] / hc) ** 2
        return a * a * (np.exp(-0.5 * u) if kernel == "se" else np.exp(-np.sqrt(u)))
    K = k(p[:, None, :] - p[None, :, :]) + np.eye(len(p))
    kv = k(p)
    v = np.linalg.solve(K, kv)
    s = v.sum()
    w = v / s
    mean = w @ np.array(vals)
    var = a * a + 1 - 2 * w @ kv + w @ K @ w
    return mean, var


@pytest.mark.parametrize("kernel,h", [("se", 1.3), ("ou", (0.9, 2.0))])
def test_gpr_mean_and_variance_equal_direct_numpy(rng, kernel, h):
    x = 5 + correlated_field(rng, (34, 36), scale=1.5, amp=3.0)
    m = rng.random(x.shape) < 0.03
    m[0, 0] = m[33, 10] = True            # edges: truncated windows
    m[10:12, 10:13] = True                # a block: other bad pixels in the window
    res = cc.impute(x, m, "gpr", kernel=kernel, a=4.0, h=h, width=7, calibrate=False, rng=0)
    sig, bkg = res.params["sigma_white"], res.params["background"]
    xs = np.where(m, 0.0, (x - bkg) / sig)
    hr, hc = (h, h) if np.ndim(h) == 0 else h
    isolated = 0
    for r, c in zip(*np.nonzero(m)):
        mean, var = _gpr_direct(xs, m, r, c, 3, kernel, 4.0, hr, hc)
        assert res.image[r, c] == pytest.approx(bkg + sig * mean, rel=1e-9, abs=1e-9 * sig)
        assert res.std[r, c] == pytest.approx(sig * np.sqrt(var), rel=1e-9)
        isolated += 3 <= r < 31 and 3 <= c < 33 and m[r - 3:r + 4, c - 3:c + 4].sum() == 1
    assert res.params["n_full_pattern"] == isolated > 0
    w, var = cc.impute.__globals__["gpr_weights"](kernel, 4.0, h, 7)
    assert w.sum() == pytest.approx(1.0) and w[3, 3] == 0


def test_gpr_fit_beats_median_on_stars_and_is_calibrated():
    gen = np.random.default_rng(8)
    n = 160
    img = np.full((n, n), 100.0)
    yy, xx = np.mgrid[0:n, 0:n]
    for _ in range(120):
        r0, c0, f = gen.uniform(0, n), gen.uniform(0, n), gen.uniform(200, 3000)
        img += f / (2 * np.pi * 1.6 ** 2) * np.exp(-((yy - r0) ** 2 + (xx - c0) ** 2) / (2 * 1.6 ** 2))
    x = img + gen.normal(0, 2.0, img.shape)
    m = gen.random(x.shape) < 0.01
    g = cc.impute(x, m, "gpr", rng=1)
    md = cc.impute(x, m, "median")
    bright = img[m] > 130
    eg = np.abs(g.image[m] - x[m])[bright].mean()
    em = np.abs(md.image[m] - x[m])[bright].mean()
    assert eg < 0.5 * em
    assert g.params["fitted"] and 0.5 < g.params["h"][0] < 5 and g.params["a"] >= 1
    z = (x[m] - g.image[m]) / g.std[m]
    q1, q3 = np.percentile(z, [25, 75])
    assert 0.85 < (q3 - q1) / 1.349 < 1.15
    # the condition-number penalty keeps a near mu when it is lowered
    pen = cc.impute(x, m, "gpr", rng=1, mu=2.0, tau=0.5)
    assert pen.params["a"] < 4.0


def test_gpr_bad_options(rng):
    x = correlated_field(rng, (40, 40))
    m = np.zeros(x.shape, bool)
    m[20, 20] = True
    with pytest.raises(ValueError, match="kernel"):
        cc.impute(x, m, "gpr", kernel="matern")
    with pytest.raises(ValueError, match="give both"):
        cc.impute(x, m, "gpr", a=3.0)
    with pytest.raises(ValueError, match="width"):
        cc.impute(x, m, "gpr", width=8)
    with pytest.raises(ValueError, match="h"):
        cc.impute(x, m, "gpr", a=2.0, h=(1.0, 2.0, 3.0))


# ----------------------------------------------------------------------------- CLI

def test_cli_impute_roundtrip(tmp_path, rng):
    from astropy.io import fits

    from cloudcov.cli import main

    x = (500 + 20 * rng.standard_normal((60, 70))).astype(np.float32)
    dq = np.zeros(x.shape, np.int32)
    dq[rng.random(x.shape) < 0.02] = 1
    dq[30:33, 30:33] = 8
    hdr = fits.Header()
    hdr["OBSERVER"] = "test"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(x, header=hdr, name="SCI")]).writeto(tmp_path / "in.fits")
    fits.writeto(tmp_path / "dq.fits", dq)
    out = tmp_path / "out.fits"
    assert main(["impute", f"{tmp_path / 'in.fits'}[SCI]", "--dq", str(tmp_path / "dq.fits"),
                 "--method", "median", "--n-draw", "2", "--seed", "3", "--out", str(out),
                 "--set", "size=7"]) == 0
    with fits.open(out) as h:
        assert [u.name for u in h] == ["PRIMARY", "STD", "MASK", "DRAWS"]
        assert h[0].header["OBSERVER"] == "test" and h[0].header["CCMETHOD"] == "median"
        assert '"size": 7' in h[0].header["CCPARAMS"] and "cloudcov" in h[0].header["CCPROV"]
        ref = cc.impute(x, dq, "median", size=7, n_draw=2, rng=3)
        np.testing.assert_array_equal(h[0].data, ref.image)
        np.testing.assert_array_equal(h["STD"].data, ref.std)
        np.testing.assert_array_equal(h["MASK"].data, (dq != 0).astype(np.uint8))
        assert h["DRAWS"].data.shape == (2, 60, 70)
    # errors: clear message, exit 1, no output file written
    bad = tmp_path / "bad.fits"
    assert main(["impute", str(tmp_path / "in.fits[SCI]"), "--dq", str(tmp_path / "nope.fits"),
                 "--out", str(bad)]) == 1
    assert main(["impute", str(tmp_path / "in.fits[SCI]"), "--nan", "--method", "median",
                 "--set", "size=4", "--out", str(bad)]) == 1
    assert not bad.exists() and not list(tmp_path.glob("*.tmp"))


def test_lpi_covariance_already_symmetric_sym_is_a_no_op(rng):
    # CloudCovFix.jl build_cov_sym! averages both anchorings of a pixel pair; with boxcar sums
    # of products they are the same sum, so the stamp covariance is symmetric as built
    x = correlated_field(rng, (60, 60), scale=2.0)
    cov, _ = cc.local_covariance(x, 30, 30, 9, 21)
    np.testing.assert_allclose(cov, cov.T, rtol=1e-12, atol=1e-12 * np.abs(cov).max())
    m = rng.random(x.shape) < 0.02
    a = cc.impute(x, m, "lpi", Np=9, widx=21, rng=1)
    b = cc.impute(x, m, "lpi", Np=9, widx=21, rng=1, sym=True, progress=True)
    np.testing.assert_array_equal(a.image, b.image)
    assert b.params["sym"] is True
