"""crowdsource output readers, read_ccd, and catalogues from FITS/HDF5 with a convention."""
import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from _survey_files import copy_exposure, survey_exposure  # noqa: F401  (session fixture)
from cloudcov import CloudCovWarning, process_ccd
from cloudcov.flags import decode_flags
from cloudcov.io import (InputFileError, crowdsource_ccds, crowdsource_filenames,
                         crowdsource_gain, read_catalog, read_ccd, read_crowdsource_catalog,
                         read_crowdsource_model, read_crowdsource_psf)
from cloudcov.psf import CrowdsourcePSF


def test_filenames():
    f = crowdsource_filenames("/d/", "170420_040428", "g", "v1")
    assert f["cat"].as_posix() == "/d/cat/c4d_170420_040428_ooi_g_v1.cat.fits"
    assert f["mod"].as_posix() == "/d/mod/c4d_170420_040428_ooi_g_v1.mod.fits"


def test_catalogue_file(survey_exposure):
    f = survey_exposure["files"]
    assert crowdsource_ccds(f["cat"]) == ["N6", "N2"]        # N10 absent: no crowdsource fit
    t = read_crowdsource_catalog(f["cat"], "N6")
    assert len(t) == survey_exposure["nstars"]["N6"] > 20
    assert t.colnames[:3] == ["x", "y", "flux"] and t.colnames[-4:] == ["ra", "dec", "decapsid", "gain"]
    assert t["x"].dtype == np.float64 and t["flags"].dtype == np.int32
    assert all(t[c].dtype.isnative for c in t.colnames)
    # x = row (< 375), y = column (< 280)
    assert t["x"].max() < 375 and t["y"].max() < 280 and t["x"].max() > 280
    d = decode_flags(t["flags"])
    assert d["dq_good"].mean() > 0.9 and not d["off_image"].any()
    assert np.all((t["decapsid"] >> 32) == (695765 << 7) + 37)   # expnum*2**39 + CCDNUM*2**32
    model, sky = read_crowdsource_model(f["mod"], "N6")
    assert model.shape == sky.shape == (375, 280) and model.dtype == np.float32
    psf = read_crowdsource_psf(f["cat"], "N6", center=(187, 140))
    assert isinstance(psf, CrowdsourcePSF)
    stamp = psf(100.3, 50.7, 9)
    assert stamp.shape == (9, 9) and np.unravel_index(stamp.argmax(), stamp.shape) == (4, 4)


def test_read_ccd_runs(survey_exposure):
    f = survey_exposure["files"]
    inp = read_ccd("N2", ooi=f["ooi"], ood=f["ood"], cat=f["cat"], mod=f["mod"])
    assert inp.image.shape == inp.model.shape == inp.sky.shape == inp.dq.shape == (251, 245)
    assert inp.gain == pytest.approx(fits.getheader(f["cat"], "N2_HDR")["GAINCRWD"])
    assert set(inp.files) == {"ooi", "ood", "cat", "mod"}
    out = process_ccd(*inp.process_args(), Np=9, widx=21, threads=1, seed=1)
    assert len(out) == survey_exposure["nstars"]["N2"]
    assert np.isfinite(out["dcflux"]).all()


def test_gain_card():
    with pytest.warns(CloudCovWarning, match="negative"):
        assert crowdsource_gain(fits.Header({"GAINCRWD": -3.5}), "c.fits", "S6") == 3.5
    for hdr in ({}, {"GAINCRWD": 0.0}, {"GAINCRWD": "x"}):
        with pytest.raises(InputFileError, match=r"c.fits\[S6_HDR\]"):
            crowdsource_gain(fits.Header(hdr), "c.fits", "S6")


def _edit(path, ext, fn):
    with fits.open(path) as h:
        hdus = [hdu.copy() for hdu in h]
    for i, hdu in enumerate(hdus):
        if hdu.name == ext:
            hdus[i] = fn(hdu)
    fits.HDUList([h for h in hdus if h is not None]).writeto(path, overwrite=True)


def test_read_ccd_errors_name_file_and_extension(survey_exposure, tmp_path):
    exp = copy_exposure(survey_exposure, tmp_path / "e")
    f = exp["files"]
    kw = dict(ooi=f["ooi"], ood=f["ood"], cat=f["cat"], mod=f["mod"])
    # catalogue without x
    _edit(f["cat"], "N6_CAT",
          lambda h: fits.BinTableHDU(Table(h.data).copy()[[c for c in h.columns.names if c != "x"]],
                                     header=h.header, name="N6_CAT"))
    with pytest.raises(InputFileError, match=r"\.cat\.fits\[N6_CAT\]: .*missing column 'x'"):
        read_ccd("N6", **kw)
    # model of another shape
    _edit(f["mod"], "N2_MOD",
          lambda h: fits.CompImageHDU(np.asarray(h.data)[:-3], header=h.header, name="N2_MOD"))
    with pytest.raises(InputFileError, match=r"\.mod\.fits\[N2_MOD\].*\(248, 245\).*ooi"):
        read_ccd("N2", **kw)
    # negative gain warns and is used as |gain|
    _edit(f["cat"], "N2_HDR", lambda h: (h.header.set("GAINCRWD", -h.header["GAINCRWD"]), h)[1])
    _edit(f["mod"], "N2_MOD", lambda h: None)
    with pytest.raises(InputFileError, match=r"\.mod\.fits\[N2_MOD\]: .*extension not found"):
        with pytest.warns(CloudCovWarning, match="negative"):
            read_ccd("N2", **kw)


def test_read_catalog_fits_hdf5_conventions(tmp_path):
    rows, cols = np.array([10.0, 20.0]), np.array([3.0, 4.0])
    t = Table(dict(x=rows, y=cols, flux=[1.0, 2.0], id=[7, 8]))
    t.write(tmp_path / "cs.fits")
    out = read_catalog(tmp_path / "cs.fits")
    assert out["x"].tolist() == rows.tolist() and out.meta["convention_in"] == "crowdsource"
    # photutils: x = column, 1-based here, named x_fit/y_fit/flux_fit
    p = Table(dict(x_fit=cols + 1, y_fit=rows + 1, flux_fit=[1.0, 2.0]))
    p.write(tmp_path / "pu.fits")
    out = read_catalog(tmp_path / "pu.fits", convention="photutils", x="x_fit", y="y_fit",
                       flux="flux_fit", origin=1)
    assert out["x"].tolist() == rows.tolist() and out["y"].tolist() == cols.tolist()
    assert out["flux"].tolist() == [1.0, 2.0] and "x_fit" in out.colnames
    # plain x/y in photutils convention: originals kept as x_in / y_in
    Table(dict(x=cols, y=rows, flux=[1.0, 2.0])).write(tmp_path / "pu2.fits")
    out = read_catalog(tmp_path / "pu2.fits", convention="photutils")
    assert out["x"].tolist() == rows.tolist() and out["x_in"].tolist() == cols.tolist()
    # HDF5 group, one dataset per column
    with h5py.File(tmp_path / "c.h5", "w") as h:
        g = h.create_group("S6")
        for name in ("x", "y", "flux"):
            g.create_dataset(name, data=np.asarray(t[name]).astype(">f8"))
    out = read_catalog(tmp_path / "c.h5", "S6", convention="photutils")
    assert out["x"].tolist() == cols.tolist() and out["x"].dtype.isnative
    with pytest.raises(InputFileError, match=r"c.h5\[N4\]"):
        read_catalog(tmp_path / "c.h5", "N4")
    with pytest.raises(InputFileError, match=r"cs.fits\[1\].*missing column 'x_fit'"):
        read_catalog(tmp_path / "cs.fits", 1, x="x_fit")
    with pytest.raises(ValueError, match="convention"):
        read_catalog(tmp_path / "cs.fits", convention="iraf")
