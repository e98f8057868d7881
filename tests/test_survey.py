"""Exposure runner and CLI: outputs, round trips, seeds, kill + resume, bad inputs."""
import logging
import os

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from _survey_files import (assert_same_outputs, copy_exposure, run_cli_killed,  # noqa: F401
                           survey_exposure)
from cloudcov import OUTPUT_COLUMNS, __version__, lapack_info
from cloudcov.cli import main
from cloudcov.io import ccd_status, read_output, write_ccd_output
from cloudcov.io.output import part_path
from cloudcov.survey import ccd_seed, date_seed, lpi_params, parse_bytes

FAST = ["--Np", "9", "--wx", "21", "--threads", "1"]
LPI = list(OUTPUT_COLUMNS)
OUT_NAME = "c4d_171113_060340_ooi_r_ls9.cat.cer"


def _args(exp, out, *extra):
    return ["exposure", exp["base"], exp["date"], exp["filt"], exp["vers"], exp["basecat"],
            "--out", str(out), *FAST, *extra]


@pytest.fixture(scope="module")
def reference(survey_exposure, tmp_path_factory):
    """An uninterrupted FITS run (the reference of the resume tests)."""
    out = tmp_path_factory.mktemp("ref")
    assert main(_args(survey_exposure, out)) == 0
    return out / f"{OUT_NAME}.fits"


def test_seeds_and_params():
    assert date_seed("170119_085651") == 170119085651
    with pytest.raises(ValueError, match="YYMMDD_HHMMSS"):
        date_seed("17011_085651")
    s = {ccd_seed(170119085651, c) for c in ("S6", "S7", "N6", "N7I")}
    assert len(s) == 4 and all(0 <= v < 2**63 for v in s)
    assert ccd_seed(170119085651, "S6") == ccd_seed(170119085651, "S6")
    assert ccd_seed(170119085651, "S6") != ccd_seed(170119085652, "S6")
    assert parse_bytes("2G") == 2 * 2**30 and parse_bytes("512MiB") == 512 * 2**20
    assert parse_bytes(1000) == 1000
    with pytest.raises(ValueError, match="memory size"):
        parse_bytes("lots")
    p = lpi_params(widx=21)
    assert p["widy"] == 21 and p["dtype"] == "float32" and p["corrects7"] is False


def test_exposure_fits_output(reference, survey_exposure, capsys):
    with fits.open(reference) as h:
        assert [x.name for x in h] == ["PRIMARY", "N6_CAT", "N2_CAT"]
        assert h[0].header["EXPNUM"] == 695765 and h[0].header["CLOUDVER"] == __version__
        assert h[0].header["CERSEED"] == 171113 * 10**6 + 60340
        cat = h["N6_CAT"]
        assert cat.columns["dnt"].format == "B" and cat.columns["kcond"].format == "J"
        assert cat.columns["cflux"].format == "E" and cat.columns["decapsid"].format == "K"
        assert cat.columns["cflux"].unit == "adu" and cat.columns["dcflux"].unit == "adu"
        assert cat.header["LPINP"] == 9 and cat.header["LPIWIDX"] == 21
        assert cat.verify_checksum() == 1 and cat.verify_datasum() == 1
    out = read_output(reference)
    src = fits.open(survey_exposure["files"]["cat"])
    for ccd in ("N6", "N2"):
        t = out[ccd]
        incols = list(src[f"{ccd}_CAT"].columns.names)
        assert t.colnames == incols + LPI                      # input columns, then LPI columns
        for c, dt in OUTPUT_COLUMNS.items():
            assert t[c].dtype == dt
        np.testing.assert_array_equal(t["x"], src[f"{ccd}_CAT"].data["x"])
        np.testing.assert_allclose(t["cflux"], t["flux"] + t["fdb_pred"] - t["fdb_res"], rtol=1e-5)
        assert np.isfinite(t["dcflux"]).all() and (t["kpred"] > 0).all()
        p = t.meta["params"]
        assert p["seed"] == ccd_seed(date_seed("171113_060340"), ccd) and p["widy"] == 21
        assert t.meta["info"]["files"]["ooi"] == survey_exposure["files"]["ooi"]
        assert t.meta["info"]["version"] == __version__
        assert t.meta["info"]["lapack"] == lapack_info()["name"]
    src.close()
    assert out["N6"].meta["params"]["seed"] != out["N2"].meta["params"]["seed"]
    assert not (reference.parent / f"{OUT_NAME}.fits.parts").exists()


def test_hdf5_output_and_ccd_command(reference, survey_exposure, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cloudcov")
    args = _args(survey_exposure, tmp_path, "--format", "hdf5", "--ccdlist", "N2", "N10", "N6")
    assert main(args) == 0
    assert "N10: no N10_CAT" in caplog.text and "skipped" in caplog.text
    assert f"N6: {survey_exposure['nstars']['N6']} stars in" in caplog.text
    h5 = tmp_path / f"{OUT_NAME}.h5"
    assert_same_outputs(read_output(h5), read_output(reference))        # same numbers as FITS
    with h5py.File(h5, "r") as f:
        assert f.attrs["format"] == "cloudcov-cer" and f.attrs["cloudcov_version"] == __version__
        assert "EXPNUM" in f.attrs["primary_header"]
        g = f["N6"]                     # one compound dataset per CCD (h5py, pandas)
        assert isinstance(g, h5py.Dataset) and g.dtype.names[-len(LPI):] == tuple(LPI)
        assert g.dtype["dnt"] == np.int8 and g.dtype["cflux"] == np.float32
        assert g.compression == "gzip" and g.fletcher32 and g.shuffle
        assert g.attrs["Np"] == 9 and g.attrs["thr"] == 20.0 and g.attrs["complete"]
        assert g.attrs["input_cat"] == survey_exposure["files"]["cat"]
        assert len(g.attrs["sha256"]) == 64
    # plain astropy reads a CCD back with its units and metadata
    import astropy.units as u
    t = Table.read(h5, path="N6")
    ref6 = read_output(reference, "N6")
    assert t.colnames == ref6.colnames and t["cflux"].unit == u.adu
    assert t["dcflux"].unit == u.adu and t["kcond"].unit is None
    np.testing.assert_array_equal(t["cflux"], ref6["cflux"])
    assert t.meta["params"] == ref6.meta["params"] and t.meta["ccd"] == "N6"
    assert t.meta["info"]["files"]["cat"] == survey_exposure["files"]["cat"]
    # one CCD from explicit file names: same seed (date from the ooi name), same result
    f = survey_exposure["files"]
    one = tmp_path / "n6.fits"
    assert main(["ccd", "N6", "--ooi", f["ooi"], "--ood", f["ood"], "--cat", f["cat"],
                 "--mod", f["mod"], "--out", str(one), *FAST]) == 0
    assert_same_outputs({"N6": read_output(one, "N6")}, {"N6": read_output(reference, "N6")})


def test_roundtrip_empty_and_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    n = 5
    t = Table({"x": rng.uniform(0, 9, n), "y": rng.uniform(0, 9, n),
               "flux": rng.uniform(1, 2, n).astype(np.float32),
               "flags": np.array([1, -2**31 + 1, 999, 8, 1], np.int32),
               "decapsid": np.arange(n, dtype=np.int64) + 2**40})
    for c, dt in OUTPUT_COLUMNS.items():
        t[c] = (np.arange(n) * 3).astype(dt)
    t["dnt"] = np.array([0, 1, 64, 72, 127], np.int8)
    params = lpi_params(Np=9, widx=21)
    for fmt, name in (("fits", "a.fits"), ("hdf5", "a.h5")):
        for table in (t, t[:0]):
            path = write_ccd_output(tmp_path / name, table, "S6", params=params,
                                    info={"version": __version__, "files": {"ooi": "x.fz"}},
                                    fmt=fmt)
            back = read_output(path, "S6")
            assert back.colnames == t.colnames and len(back) == len(table)
            for c in t.colnames:
                assert back[c].dtype == t[c].dtype, (fmt, c)
                np.testing.assert_array_equal(back[c], table[c])
            assert back.meta["params"] == params
            assert ccd_status(path, "S6", params) == "done"
            assert ccd_status(path, "S6", dict(params, thr=25.0)) == "mismatch"
            assert ccd_status(path, "N4", params) == "missing"
    assert not list(tmp_path.glob("*.tmp"))


def test_kill_then_resume_equals_uninterrupted(reference, survey_exposure, tmp_path, caplog):
    proc = run_cli_killed(["-v", *_args(survey_exposure, tmp_path)], "*.parts/*", 2)
    assert proc.returncode == -9, proc.stderr            # SIGKILL while writing N2
    parts = tmp_path / f"{OUT_NAME}.fits.parts"
    assert (parts / "N6.fits").exists() and not (parts / "N2.fits").exists()
    assert list(parts.glob("N2.fits.*.tmp"))              # the interrupted write
    assert not (tmp_path / f"{OUT_NAME}.fits").exists()
    caplog.set_level(logging.INFO, logger="cloudcov")
    assert main(_args(survey_exposure, tmp_path, "--resume")) == 0
    assert "skipping CCDs already completed: N6" in caplog.text
    assert not parts.exists()
    assert_same_outputs(read_output(tmp_path / f"{OUT_NAME}.fits"), read_output(reference))
    # resuming a complete output computes nothing; other parameters recompute
    caplog.clear()
    assert main(_args(survey_exposure, tmp_path, "--resume")) == 0
    assert "0 CCDs computed, 2 already done" in caplog.text
    assert main(_args(survey_exposure, tmp_path, "--resume", "--thr", "25",
                      "--ccdlist", "N2")) == 0
    out = read_output(tmp_path / f"{OUT_NAME}.fits")
    assert out["N2"].meta["params"]["thr"] == 25.0 and out["N6"].meta["params"]["thr"] == 20.0


def _replace_ext(path, ext, fn):
    """Rewrite ``path`` with ``fn(hdu)`` instead of ``ext`` (dropped if None). The other HDUs
    are copied as stored (compressed tiles as binary tables), never re-quantised."""
    with fits.open(path) as h:
        new = fn(h[ext])
    with fits.open(path, disable_image_compression=True) as h:
        hdus = [new if x.name == ext else x for x in h]
        fits.HDUList([x for x in hdus if x is not None]).writeto(f"{path}.new")
    os.replace(f"{path}.new", path)


def _drop_ext(path, ext):
    _replace_ext(path, ext, lambda h: None)


BREAKERS = {
    "missing ooi extension": (lambda f: _drop_ext(f["ooi"], "N2"), "ooi", r"\[N2\]: ooi image: "
                              "extension not found"),
    "model shape": (lambda f: _replace_ext(f["mod"], "N2_MOD", lambda h: fits.CompImageHDU(
        np.asarray(h.data)[:, :-1], header=h.header, name="N2_MOD")), "mod",
        r"\[N2_MOD\]: crowdsource model shape \(251, 244\) does not match"),
    "catalogue without x": (lambda f: _replace_ext(f["cat"], "N2_CAT", lambda h: fits.BinTableHDU(
        Table(h.data)[[c for c in h.columns.names if c != "x"]], header=h.header, name="N2_CAT")),
        "cat", r"\[N2_CAT\]: crowdsource catalogue: missing column 'x'"),
}


@pytest.mark.parametrize("what", list(BREAKERS))
def test_bad_input_keeps_other_ccds(what, reference, survey_exposure, tmp_path, capsys):
    exp = copy_exposure(survey_exposure, tmp_path / "in")
    breaker, kind, pattern = BREAKERS[what]
    breaker(exp["files"])
    out = tmp_path / "out"
    assert main(_args(exp, out)) == 1
    err = capsys.readouterr().err
    assert "FAILED N2" in err and exp["files"][kind] in err
    import re
    assert re.search(pattern, err), err
    done = read_output(out / f"{OUT_NAME}.fits")
    assert list(done) == ["N6"]                              # N6 written, N2 missing
    ref = read_output(reference)
    np.testing.assert_array_equal(done["N6"]["cflux"], ref["N6"]["cflux"])
    if what == "missing ooi extension":                     # repaired input: resume finishes
        exp2 = copy_exposure(survey_exposure, tmp_path / "in")
        assert main(_args(exp2, out, "--resume")) == 0
        assert_same_outputs(read_output(out / f"{OUT_NAME}.fits"), ref)


def test_zero_star_ccd_and_missing_catalogue(survey_exposure, tmp_path, capsys):
    exp = copy_exposure(survey_exposure, tmp_path / "in")
    _replace_ext(exp["files"]["cat"], "N2_CAT",
                 lambda h: fits.BinTableHDU(Table(h.data)[:0], header=h.header, name="N2_CAT"))
    out = tmp_path / "out"
    assert main(_args(exp, out, "--format", "hdf5")) == 0
    t = read_output(out / f"{OUT_NAME}.h5", "N2")
    assert len(t) == 0 and t.colnames[-len(LPI):] == LPI and t["dnt"].dtype == np.int8
    assert ccd_status(out / f"{OUT_NAME}.h5", "N2", t.meta["params"]) == "done"
    assert not part_path(out / f"{OUT_NAME}.h5", "N2", "hdf5").exists()
    os.remove(exp["files"]["cat"])
    assert main(_args(exp, tmp_path / "out2")) == 1
    assert "crowdsource catalogue file not found" in capsys.readouterr().err
