"""Catalogue columns by name (photutils names imply the convention), ``columns=``, the
ambiguous-axes warning, and masked / non-finite / negative fluxes."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.table import MaskedColumn, QTable, Table

import cloudcov as cc
from cloudcov.io.tables import catalog_columns

from test_lpi import synthetic_ccd


@pytest.mark.parametrize("names, conv", [
    (("x_fit", "y_fit", "flux_fit"), "photutils"),
    (("x_0", "y_0", "flux_0"), "photutils"),
    (("xcentroid", "ycentroid", "flux"), "photutils"),
])
def test_photutils_names_imply_convention(names, conv):
    x, y, f, c, implied = catalog_columns(["id", *names, "flags"])
    assert (x, y, f, c, implied) == (*names, conv, True)


def test_ambiguous_and_crowdsource_names():
    assert catalog_columns(["x", "y", "flux"]) == ("x", "y", "flux", "crowdsource", False)
    # crowdsource-only columns say whose x/y these are
    assert catalog_columns(["x", "y", "flux", "passno"])[3:] == ("crowdsource", True)
    assert catalog_columns(["x", "y", "flux"], meta={"cloudcov_convention": "photutils"})[3:] \
        == ("photutils", True)
    assert catalog_columns(["x", "y", "flux"], "photutils")[3:] == ("photutils", True)
    # explicit names of the position do not say the convention
    got = catalog_columns(["X_IMAGE", "Y_IMAGE", "FLUX_PSF"],
                          columns={"x": "X_IMAGE", "y": "Y_IMAGE", "flux": "FLUX_PSF"})
    assert got == ("X_IMAGE", "Y_IMAGE", "FLUX_PSF", "crowdsource", False)
    # only the flux renamed: photutils positions still found
    assert catalog_columns(["x_fit", "y_fit", "f"], columns={"flux": "f"}) == \
        ("x_fit", "y_fit", "f", "photutils", True)
    with pytest.raises(ValueError, match="no position/flux columns"):
        catalog_columns(["ra", "dec"])
    with pytest.raises(ValueError, match="columns"):
        catalog_columns(["x", "y", "flux"], columns={"row": "x"})
    with pytest.raises(ValueError, match="'nope'"):
        catalog_columns(["x", "y", "flux"], columns={"flux": "nope"})


def _base(rng):
    image, model, sky, cat, psf, gain = synthetic_ccd(rng, n=8)
    ref = cc.process_ccd(image, model, sky, cat, psf, gain, threads=1, seed=3)
    return image, model, sky, cat, psf, gain, ref


def test_process_ccd_columns_and_warning(rng):
    image, model, sky, cat, psf, gain, ref = _base(rng)
    pu = Table({"x_fit": cat["y"], "y_fit": cat["x"], "flux_fit": cat["flux"], "id": np.arange(8)})
    a = cc.process_ccd(image, model, sky, pu, psf, gain, threads=1, seed=3)
    np.testing.assert_array_equal(a["cflux"], ref["cflux"])
    assert a.meta["cloudcov"]["convention"] == "photutils" and "x_fit" in a.colnames
    sx = Table({"XW": cat["y"], "YW": cat["x"], "F": cat["flux"]})
    b = cc.process_ccd(image, model, sky, sx, psf, gain, threads=1, seed=3,
                       columns={"x": "XW", "y": "YW", "flux": "F"}, convention="photutils")
    np.testing.assert_array_equal(b["dcflux"], ref["dcflux"])
    plain = Table({"x": cat["x"], "y": cat["y"], "flux": cat["flux"]})
    with pytest.warns(cc.CloudCovWarning, match="convention='crowdsource'"):
        c = cc.process_ccd(image, model, sky, plain, psf, gain, threads=1, seed=3)
    np.testing.assert_array_equal(c["cflux"], ref["cflux"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cc.process_ccd(image, model, sky, plain, psf, gain, threads=1, convention="crowdsource")


def test_masked_nonfinite_negative_fluxes(rng):
    image, model, sky, cat, psf, gain, ref = _base(rng)
    t = QTable({"x_fit": np.asarray(cat["y"]), "y_fit": np.asarray(cat["x"]),
                "flux_fit": MaskedColumn(np.asarray(cat["flux"]), mask=[0, 0, 1, 0, 0, 0, 0, 0])})
    t["flux_fit"][5] = np.nan
    with pytest.warns(cc.CloudCovWarning, match="2 of 8 stars not measured"):
        out = cc.process_ccd(image, model, sky, t, psf, gain, threads=1, seed=3)
    bad = np.zeros(8, bool)
    bad[[2, 5]] = True
    dnt = np.asarray(out["dnt"]).astype(np.int64) & 0xFF
    assert len(out) == 8 and np.all(dnt[bad] & 128) and np.all(out["kcond"][bad] == 0)
    assert np.all(np.isnan(out["cflux"][bad])) and np.all(np.isnan(out["dcflux"][bad]))
    assert out.meta["cloudcov"]["n_not_measured"] == 2
    # the other rows are those of a run on them alone
    sub = cat[~bad]
    alone = cc.process_ccd(image, model, sky, sub, psf, gain, threads=1, seed=3)
    np.testing.assert_array_equal(out["cflux"][~bad], alone["cflux"])
    np.testing.assert_array_equal(out["dnt"][~bad], alone["dnt"])
    # negative fluxes are processed: finite outputs, hidden pixels of a flux_floor star
    neg = cat.copy()
    neg["flux"][0] = -500.0
    o = cc.process_ccd(image, model, sky, neg, psf, gain, threads=1, seed=3)
    assert np.isfinite(o["dcflux"][0]) and o["cflux"][0] == pytest.approx(
        -500.0 + o["fdb_pred"][0] - o["fdb_res"][0], abs=1e-2)
    floor = cat.copy()
    floor["flux"][0] = 1.0
    o1 = cc.process_ccd(image, model, sky, floor, psf, gain, threads=1, seed=3)
    assert o["kpred"][0] == o1["kpred"][0]
