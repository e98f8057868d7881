"""PSF adapters: stamps, callables, crowdsource objects and crowdsource PSF records."""
import sys
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import cloudcov as cc
from cloudcov.errors import CloudCovWarning
from cloudcov.example import example_path, load_example
from cloudcov.psf import (CallablePSF, CrowdsourcePSF, StampPSF, as_psf_model, crop_or_pad,
                          is_crowdsource_record, psf_from_crowdsource_record)


def gauss(n, r0=0.0, c0=0.0, sr=1.5, sc=1.5):
    """(n, n) Gaussian centred at (r0, c0) pixels from the middle, unit sum."""
    h = n // 2
    r, c = np.mgrid[-h:h + 1, -h:h + 1]
    g = np.exp(-0.5 * (((r - r0) / sr) ** 2 + ((c - c0) / sc) ** 2))
    return g / g.sum()


def moments(stamp):
    """Centroid (row, col) and variances about the middle pixel."""
    h = stamp.shape[0] // 2
    r, c = np.mgrid[-h:h + 1, -h:h + 1]
    s = stamp.sum()
    mr, mc = (r * stamp).sum() / s, (c * stamp).sum() / s
    return mr, mc, ((r - mr) ** 2 * stamp).sum() / s, ((c - mc) ** 2 * stamp).sum() / s


def record(stamp_coef, convparam=None, resparam=None):
    """A crowdsource-style serialize() record (numpy structured scalar)."""
    dt = [("offset", "f4", (2,)), ("stamp", "f4", stamp_coef.shape)]
    if convparam is not None:
        dt += [("convparam", "f4", convparam.shape), ("resparam", "f4", resparam.shape)]
    rec = np.zeros(1, dtype=dt)
    rec["stamp"][0] = stamp_coef
    if convparam is not None:
        rec["convparam"][0] = convparam
        rec["resparam"][0] = resparam
    return rec[0]


# ---------------------------------------------------------------- no crowdsource needed

def test_crop_or_pad():
    s = np.arange(25.0).reshape(5, 5)
    np.testing.assert_array_equal(crop_or_pad(s, 3), s[1:4, 1:4])
    p = crop_or_pad(s, 9)
    assert p.shape == (9, 9) and p.dtype == np.float64
    np.testing.assert_array_equal(p[2:7, 2:7], s)
    assert p.sum() == s.sum()
    np.testing.assert_array_equal(crop_or_pad(s, 5), s)


def test_stamp_psf():
    g = gauss(11, 1.0, -0.5).astype("f4")
    psf = StampPSF(g)
    out = psf(10.3, 20.7, 7)
    assert out.dtype == np.float64 and out.shape == (7, 7)
    np.testing.assert_array_equal(out, g[2:9, 2:9])
    for bad in (np.ones((4, 4)), np.ones((5, 7)), np.full((5, 5), np.nan)):
        with pytest.raises(ValueError, match="psf"):
            StampPSF(bad)


def test_callable_psf_checks():
    psf = CallablePSF(lambda r, c, n: np.ones((n, n), "f4"))
    assert psf(1, 2, 5).dtype == np.float64
    with pytest.raises(ValueError, match="shape"):
        CallablePSF(lambda r, c, n: np.ones((n, n + 2)))(0, 0, 5)
    with pytest.raises(ValueError, match="NaN"):
        CallablePSF(lambda r, c, n: np.full((n, n), np.nan))(0, 0, 5)
    with pytest.raises(TypeError, match="psf"):
        CallablePSF(3.0)


def test_as_psf_model_dispatch():
    g = gauss(9)
    assert isinstance(as_psf_model(g), StampPSF)
    assert isinstance(as_psf_model(lambda r, c, n: crop_or_pad(g, n)), CallablePSF)
    s = StampPSF(g)
    assert as_psf_model(s) is s
    with pytest.raises(TypeError):
        as_psf_model("psf.fits")


def test_record_detection():
    rec = record(np.zeros((2, 2, 5, 5)))
    assert is_crowdsource_record(rec)
    assert is_crowdsource_record(np.array([rec]))
    assert is_crowdsource_record({"offset": [0, 0], "stamp": np.zeros((2, 2, 5, 5))})
    assert is_crowdsource_record(Table(np.array([rec]))[0])
    assert not is_crowdsource_record(np.zeros((5, 5)))
    assert not is_crowdsource_record({"stamp": 1})


def test_missing_crowdsource_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "crowdsource", None)
    monkeypatch.setitem(sys.modules, "crowdsource.psf", None)
    with pytest.raises(ImportError, match="pip install --no-deps crowdsourcephoto"):
        as_psf_model(record(np.zeros((2, 2, 5, 5))))


# ---------------------------------------------------------------- crowdsource

@pytest.fixture(scope="module")
def cspsf():
    return pytest.importorskip("crowdsource.psf")


@pytest.fixture(scope="module")
def example():
    ex = load_example()
    with fits.open(example_path()) as hdul:
        ex["psf_xy"] = (hdul["PSF"].header["PSFX"], hdul["PSF"].header["PSFY"])
        ex["filter"] = "dssR"   # name used by validation/make_embedded_example.py
    return ex


@pytest.fixture
def delta_static(tmp_path):
    """The delta-function static PSF that the embedded example was fitted with."""
    d = tmp_path / "data" / "psfs"
    d.mkdir(parents=True)
    st = np.zeros((63, 63), "f4")
    st[31, 31] = 1.0
    fits.writeto(d / "psf_dssR_deconv_mod.fits.gz", st)
    return tmp_path


def test_example_record_stamp_decoder_reproduces_fitted_psf(cspsf, example):
    psf = as_psf_model(example["psf_rec"])
    assert isinstance(psf, CrowdsourcePSF) and psf.decoder == "stamp"
    assert psf.order == 0 and psf.wing_dropped is True     # ECOSYSTEM trap 1
    assert psf.decoders_disagree is None and np.isnan(psf.max_rel_diff)
    ref = example["psf"].astype("f8")                         # unit sum, 63x63
    out = psf(*example["psf_xy"], 63)
    assert out.dtype == np.float64
    # crowdsource normalises the central 59x59 to 1; PSF was stored with unit sum
    assert abs(out[2:-2, 2:-2].sum() - 1) < 1e-6
    assert np.max(np.abs(out / out.sum() - ref)) < 1e-6 * ref.max()
    # the same through every record container
    with fits.open(example_path()) as hdul:
        data = hdul["PSF_REC"].data
        for rec in (data, data[0], Table(data)[0]):
            np.testing.assert_allclose(as_psf_model(rec)(200, 200, 33), psf(200, 200, 33),
                                       rtol=0, atol=1e-12)


def test_example_record_params_decoder_disagrees(cspsf, example, delta_static):
    with pytest.warns(CloudCovWarning, match="differ by 4.8"):
        both = psf_from_crowdsource_record(example["psf_rec"], example["filter"], "both",
                                           delta_static, center=example["psf_xy"])
    assert both.decoders_disagree is True and both.max_rel_diff == pytest.approx(4.8, abs=0.01)
    assert both.use == "stamp" and both.model is both.stamp_model
    np.testing.assert_array_equal(both(200.2, 199.6, 33),
                                  as_psf_model(example["psf_rec"])(200.2, 199.6, 33))
    # "params" is crowdsource's linear_static_wing_from_record (CloudCovErr.jl's decoder);
    # the static PSF may also be given as the folder holding the file itself
    params = CrowdsourcePSF(example["psf_rec"], example["filter"], "params",
                            delta_static / "data" / "psfs")
    assert params.decoders_disagree is None
    p = params(*example["psf_xy"], 63)
    assert abs(p.max() / example["psf"].max() - 1) > 1     # the wing dropped out
    # the tolerance is relative: a huge rtol accepts the pair without warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loose = CrowdsourcePSF(example["psf_rec"], "dssR", "both", delta_static, rtol=10,
                               use="params", center=example["psf_xy"])
    assert loose.decoders_disagree is False and loose.model is loose.params_model
    np.testing.assert_array_equal(loose(10.0, 20.0, 33), params(10.0, 20.0, 33))


def test_order0_convparam_diagnosis(cspsf, example, delta_static):
    """With only the 4 filled convparam values, the params decode gives the stored stamp."""
    rec = {k: np.array(example["psf_rec"][k]) for k in example["psf_rec"].dtype.names}
    rec["convparam"] = rec["convparam"][:4]
    psf = CrowdsourcePSF(rec, "dssR", "both", delta_static, center=example["psf_xy"])
    assert psf.wing_dropped is False and psf.decoders_disagree is False
    assert psf.max_rel_diff < 1e-6


def test_params_decoder_errors(cspsf, example, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="filter"):
        CrowdsourcePSF(example["psf_rec"], decoder="params")
    with pytest.raises(FileNotFoundError, match="psf_g_deconv_mod"):
        CrowdsourcePSF(example["psf_rec"], "g", "both", tmp_path)
    monkeypatch.setenv("DECAM_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="DECAM_DIR"):
        CrowdsourcePSF(example["psf_rec"], "g", "params")
    with pytest.raises(ValueError, match="decoder"):
        CrowdsourcePSF(example["psf_rec"], decoder="julia")
    with pytest.raises(ValueError, match="needs fields"):
        CrowdsourcePSF(record(np.zeros((2, 2, 5, 5))), "g", "params")
    with pytest.raises(ValueError, match="one row"):
        CrowdsourcePSF(np.array([example["psf_rec"]] * 2))
    with pytest.raises(ValueError, match="stamp"):
        CrowdsourcePSF({"offset": [0, 0], "stamp": np.zeros((2, 2, 4, 4))})


def test_orientation_and_subpixel_shift(cspsf):
    """An asymmetric, off-centre PSF: x is the row, sub-pixel offsets move the centroid."""
    n = 31
    a = gauss(n, r0=1.0, c0=-0.5, sr=1.2, sc=2.4)          # wide along columns
    b = gauss(n, r0=-2.0, c0=1.5, sr=2.6, sc=1.1)          # wide along rows
    coef = np.zeros((2, 2, n, n))
    coef[0, 0] = a
    coef[1, 0] = b - a                                     # coefficient of x/1000 = row/1000
    psf = as_psf_model(record(coef))
    # at row 0 the PSF is `a`, at row 1000 it is `b`, whatever the column
    np.testing.assert_allclose(psf(0, 700, n), a, atol=1e-6 * a.max())
    np.testing.assert_allclose(psf(1000, 0, n), b, atol=1e-6 * b.max())
    np.testing.assert_allclose(psf(1000, 300, n), b, atol=1e-6 * b.max())
    # off-centre: stamp centred on rint(row), rint(col), shifted by the remainder
    row, col = 0.3, 700.8                                   # rint -> (0, 701): (+0.3, -0.2)
    mr, mc, vr, vc = moments(psf(row, col, n))
    assert mr == pytest.approx(1.0 + 0.3, abs=2e-3)
    assert mc == pytest.approx(-0.5 - 0.2, abs=2e-3)
    assert vc > 3 * vr                                      # still wide along columns
    mr, mc, vr, vc = moments(psf(999.6, 11.45, n))          # rint -> (1000, 11)
    assert mr == pytest.approx(-2.0 - 0.4, abs=3e-3)
    assert mc == pytest.approx(1.5 + 0.45, abs=3e-3)
    assert vr > 3 * vc
    # FITS/Julia axis order (n, n, 2, 2) is recognised and transposed
    jl = as_psf_model(record(np.ascontiguousarray(coef.transpose())))
    assert jl.fits_order and not psf.fits_order
    np.testing.assert_array_equal(jl(999.6, 11.45, 21), psf(999.6, 11.45, 21))


def test_matches_crowdsource_call_and_scipy2_fallback(cspsf, example, monkeypatch):
    rec = example["psf_rec"]
    psf = CrowdsourcePSF(rec)
    model = cspsf.VariablePixelizedPSF(np.array(rec["stamp"], "f8"), normalize=59)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        direct = model(123.4, 77.6, stampsz=33)
    np.testing.assert_array_equal(psf(123.4, 77.6, 33), direct)
    # crowdsource objects are accepted as they are
    np.testing.assert_array_equal(as_psf_model(model)(123.4, 77.6, 33), direct)

    # SciPy >= 2 drops scipy.ndimage.interpolation, which crowdsource's shift imports
    def broken_shift(*args, **kw):
        raise ModuleNotFoundError("No module named 'scipy.ndimage.interpolation'")

    monkeypatch.setattr(cspsf, "shift", broken_shift)
    np.testing.assert_allclose(psf(123.4, 77.6, 33), direct, rtol=0, atol=1e-12)
    np.testing.assert_allclose(as_psf_model(model)(123.4, 77.6, 33), direct, rtol=0, atol=1e-12)


def test_process_ccd_with_record(cspsf, example):
    ex = example
    args = (ex["image"], ex["model"], ex["sky"], ex["catalog"])
    a = cc.process_ccd(*args, ex["psf"], ex["gain"], ex["dq"], thr=1000, threads=2)
    b = cc.process_ccd(*args, ex["psf_rec"], ex["gain"], ex["dq"], thr=1000, threads=2)
    assert len(b) == 49
    ok = (np.asarray(b["dnt"]).astype(int) & 64) == 0
    assert ok.sum() >= 45
    assert np.all(np.isfinite(b["dcflux"][ok]))
    # the record PSF is the fitted stamp, sub-pixel shifted to each star (the stamp input is
    # not): similar error bars, corrected fluxes within a fraction of them (median 0.27 sigma)
    both = ok & ((np.asarray(a["dnt"]).astype(int) & 64) == 0)
    assert np.median(b["dcflux"][both] / a["dcflux"][both]) == pytest.approx(1, abs=0.05)
    dz = np.abs(a["cflux"][both] - b["cflux"][both]) / a["dcflux"][both]
    assert np.median(dz) < 0.5
