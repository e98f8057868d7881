"""Residual noise, noise-scaled thresholds (thr/outthr/flux_floor = "auto") and the warning
when DECam defaults do not fit the image (the embedded plate)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import cloudcov as cc
from cloudcov.noise import check_thresholds, residual_noise, suggest_thresholds

from test_lpi import example, synthetic_ccd  # noqa: F401 (fixture)


def test_residual_noise_white_and_structured(rng):
    n = rng.normal(0, 7.0, (300, 256))
    smooth = 300 * np.sin(np.arange(256) / 300.0)[None, :]   # structure 40 x the noise
    assert residual_noise(n + smooth, np.zeros_like(n)) == pytest.approx(7.0, rel=0.03)
    bad = np.zeros(n.shape, bool)
    n2 = n.copy()
    n2[:, :100] *= 50           # flagged pixels do not count
    bad[:, :101] = True
    assert residual_noise(n2, np.zeros_like(n), bad) == pytest.approx(7.0, rel=0.04)
    # sampled rows on a large image
    big = rng.normal(0, 3.0, (4096, 512))
    assert residual_noise(big, np.zeros_like(big), max_pixels=100_000) == pytest.approx(3.0, rel=0.03)
    assert np.isnan(residual_noise(np.zeros((2, 2)), np.zeros((2, 2))))


def test_suggest_and_check():
    assert suggest_thresholds(10.0) == dict(thr=20.0, outthr=20000.0, flux_floor=1e4)
    with pytest.raises(ValueError, match="noise"):
        suggest_thresholds(0.0)
    assert not check_thresholds(20.0, 10.0) and not check_thresholds(90.0, 10.0)
    with pytest.warns(cc.CloudCovWarning, match="0.0333 x the 600"):
        assert check_thresholds(20.0, 300.0)
    with pytest.warns(cc.CloudCovWarning, match="too few"):
        check_thresholds(20.0, 0.01)
    assert not check_thresholds(20.0, float("nan"))


def test_auto_thresholds_scale_with_units(rng):
    """thr/outthr/flux_floor = "auto" follow the image units: scaling the image by s leaves the
    pixel classes unchanged and scales the errors by s."""
    image, model, sky, cat, psf, gain = synthetic_ccd(rng, n=6)
    kw = dict(threads=1, sky_noise=False, dtype="float64", thr="auto", outthr="auto",
              flux_floor="auto")
    a = cc.process_ccd(image, model, sky, cat, psf, gain, **kw)
    s = 300.0
    cat2 = cat.copy()
    cat2["flux"] = cat["flux"] * s
    b = cc.process_ccd(image * s, model * s, sky * s, cat2, psf, gain / s, **kw)
    ma, mb = a.meta["cloudcov"], b.meta["cloudcov"]
    assert mb["noise"] == pytest.approx(s * ma["noise"], rel=1e-9)
    assert ma["thr"] == pytest.approx(2 * ma["noise"]) and ma["outthr"] == pytest.approx(1000 * ma["thr"])
    assert ma["flux_floor"] == pytest.approx(500 * ma["thr"])
    np.testing.assert_array_equal(a["kpred"], b["kpred"])
    np.testing.assert_allclose(b["dcflux"], s * a["dcflux"], rtol=1e-5)
    # with the DECam defaults the scaled image warns (noise ~ s x 0.5 ADU)
    with pytest.warns(cc.CloudCovWarning, match="thr='auto'"):
        cc.process_ccd(image * s, model * s, sky * s, cat2, psf, gain / s, threads=1)
    with pytest.raises(ValueError, match="thr: expected a positive number or 'auto'"):
        cc.process_ccd(image, model, sky, cat, psf, gain, thr="automatic")


def test_embedded_plate_defaults_warn(example):
    """On the DSS plate thr=20 hides a median 223 pixels per star (issue 13); cloudcov warns
    with the measured noise, and thr="auto" hides tens."""
    ex = example
    args = (ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"])
    with pytest.warns(cc.CloudCovWarning, match=r"residual noise 29\d per pixel"):
        prep20 = cc.prepare_ccd(*args, dq=ex["dq"], thr=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prep = cc.prepare_ccd(*args, dq=ex["dq"], thr="auto")
    assert prep20.mask.sum() > 3 * prep.mask.sum()
