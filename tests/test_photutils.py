"""photutils inputs: PSF models as ``psf``, ``from_photutils`` (object and table), and the
README's end-to-end example on the real Horsehead plate."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from astropy.table import Table

import cloudcov as cc
from cloudcov.psf import ModelPSF, as_psf_model

from conftest import REPO

photutils = pytest.importorskip("photutils")
from photutils.psf import CircularGaussianPRF, ImagePSF  # noqa: E402


def test_model_psf_positions_and_normalisation():
    m = CircularGaussianPRF(fwhm=3.0)
    p = as_psf_model(m)
    assert isinstance(p, ModelPSF)
    row, col = 10.3, 20.6
    s = p(row, col, 33)
    # photutils' own evaluation at x = column, y = row on the stamp grid
    yy, xx = np.mgrid[10 - 16:10 + 17, 21 - 16:21 + 17]
    ref = CircularGaussianPRF(fwhm=3.0, x_0=col, y_0=row, flux=1.0)(xx, yy)
    np.testing.assert_allclose(s, ref, rtol=1e-12, atol=1e-15)
    assert s.sum() == pytest.approx(1.0, abs=1e-6)
    assert m.x_0.value == 0 and m.flux.value == 1   # the user's model is untouched
    # any stamp size; a 511 stamp holds the whole PSF
    assert p(0, 0, 511).shape == (511, 511) and p(0, 0, 511).sum() == pytest.approx(1.0)
    # ImagePSF (an ePSF-like grid, oversampled 2x) centred where asked
    g = CircularGaussianPRF(fwhm=6.0, x_0=25, y_0=25)
    yy, xx = np.mgrid[:51, :51]
    ip = as_psf_model(ImagePSF(g(xx, yy) / g(xx, yy).sum() * 4, oversampling=2))
    st = ip(40.0, 7.0, 21)
    assert np.unravel_index(np.argmax(st), st.shape) == (10, 10)
    assert st.sum() == pytest.approx(1.0, rel=1e-3)


def test_astropy_models_normalised_by_sum():
    from astropy.modeling.models import Gaussian2D, Moffat2D

    g = as_psf_model(Gaussian2D(amplitude=7.0, x_stddev=1.5, y_stddev=2.5, theta=0.3))
    st = g(5.0, 9.0, 41)
    assert st.sum() == pytest.approx(1.0, rel=1e-6)
    # y_stddev is along rows: the stamp is elongated along axis 0 (theta small)
    assert st[:, 20].sum() > st[20, :].sum()
    assert as_psf_model(Moffat2D(gamma=2.0, alpha=3.0))(0, 0, 511).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="x_name"):
        ModelPSF(Gaussian2D(), x_name="x_0", y_name="y_mean")
    from astropy.modeling.models import Polynomial1D
    with pytest.raises(TypeError, match="2-input"):
        ModelPSF(Polynomial1D(1))


def _field(rng, shape=(180, 160), n=12, fwhm=3.0, sky=300.0, gain=4.0):
    """Stars rendered by photutils on a flat sky with Poisson noise; truth table x = column."""
    from photutils.datasets import make_model_image

    x = rng.uniform(15, shape[1] - 15, n)
    y = rng.uniform(15, shape[0] - 15, n)
    flux = rng.uniform(3e3, 3e4, n)
    truth = Table({"x_fit": x, "y_fit": y, "flux_fit": flux})
    psf = CircularGaussianPRF(fwhm=fwhm)
    stars = make_model_image(shape, psf, truth, params_map={"x_0": "x_fit", "y_0": "y_fit",
                                                             "flux": "flux_fit"},
                             model_shape=25)
    image = rng.poisson((stars + sky) * gain) / gain
    return image, truth, psf, sky, gain


def test_from_photutils_object_and_table_agree_with_explicit_inputs(rng):
    from photutils.psf import PSFPhotometry

    image, truth, psf, sky, gain = _field(rng)
    phot = PSFPhotometry(psf, (7, 7), aperture_radius=4)
    init = Table({"x": truth["x_fit"], "y": truth["y_fit"], "flux": truth["flux_fit"]})
    res = phot(image - sky, init_params=init)
    a = cc.from_photutils(image, phot, sky=sky, gain=gain, model_shape=25)
    b = cc.from_photutils(image, res, psf, sky=np.full(image.shape, sky), gain=gain,
                          model_shape=25)
    np.testing.assert_allclose(a["model"], b["model"], rtol=1e-10, atol=1e-8)
    # the model is sky + photutils' model image (= image - residual image of photutils)
    np.testing.assert_allclose(a["model"] - sky, image - sky - phot.make_residual_image(
        image - sky, psf_shape=(25, 25)), rtol=1e-9, atol=1e-6)
    oa = cc.process_ccd(**a, seed=1, threads=1)
    ob = cc.process_ccd(**b, seed=1, threads=1)
    np.testing.assert_array_equal(oa["cflux"], ob["cflux"])
    assert oa.meta["cloudcov"]["convention"] == "photutils"
    # the same run with crowdsource's convention (x = row) and an explicit stamp PSF
    cat = Table({"x": res["y_fit"], "y": res["x_fit"], "flux": res["flux_fit"]})
    oc = cc.process_ccd(a["image"], a["model"], a["sky"], cat, a["psf"], gain, seed=1,
                        threads=1, convention="crowdsource")
    np.testing.assert_array_equal(oa["dcflux"], oc["dcflux"])
    np.testing.assert_array_equal(oa["kpred"], oc["kpred"])
    assert np.all(oa["dnt"] & (1 | 2 | 64) == 0)
    # flat sky: LPI changes the fitted fluxes little compared with their error bars
    assert np.median(np.abs(oa["cflux"] - oa["flux_fit"]) / oa["dcflux"]) < 1.5


def test_from_photutils_errors(rng):
    from photutils.psf import PSFPhotometry

    image, truth, psf, sky, gain = _field(rng, n=3)
    with pytest.raises(ValueError, match="no results"):
        cc.from_photutils(image, PSFPhotometry(psf, (7, 7)), sky=sky, gain=gain)
    with pytest.raises(ValueError, match="psf_model"):
        cc.from_photutils(image, truth, sky=sky, gain=gain)
    with pytest.raises(TypeError, match="result"):
        cc.from_photutils(image, np.zeros(3), psf, sky=sky, gain=gain)
    with pytest.raises(ValueError, match="sky.shape"):
        cc.from_photutils(image, truth, psf, sky=np.zeros((3, 3)), gain=gain)


def _readme_example():
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- photutils-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README photutils example block not found"
    return m.group(1)


def test_readme_photutils_example_on_real_plate(real_dir, capsys):
    """The README's photutils example, run as written on the real Horsehead plate."""
    code = _readme_example().replace('"HorseHead.fits"', repr(str(real_dir / "HorseHead.fits")))
    ns = {}
    with warnings.catch_warnings():
        # photutils' own note that some of its fits may not have converged (its flags column)
        warnings.filterwarnings("ignore", message="One or more fit", module="photutils")
        exec(compile(code, "README.md", "exec"), ns)
    out, m = ns["out"], ns["out"].meta["cloudcov"]
    text = capsys.readouterr().out
    assert f"{len(out)} stars" in text
    # the output shown in the README is this run's
    shown = re.search(r"<!-- /photutils-example -->\s*```\n(.*?)\n", (REPO / "README.md").read_text())
    assert shown and shown.group(1) == text.splitlines()[0]
    assert len(out) >= 30 and m["convention"] == "photutils"
    assert m["thr"] == pytest.approx(2 * m["noise"]) and 200 < m["noise"] < 400
    ok = out["dnt"] & (1 | 2 | 64) == 0
    assert ok.sum() >= 0.8 * len(out)
    assert np.all(np.isfinite(out["dcflux"][ok])) and np.all(out["dcflux"][ok] > 0)
    # correlated plate grain: the full-covariance error exceeds the diagonal-only one
    assert np.median(out["dcflux"][ok] / out["dcflux_diag"][ok]) > 1.2
    assert np.median(out["kpred"]) < 80       # "auto" hides tens of pixels, not hundreds
