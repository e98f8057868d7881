"""FITS catalogue round trip (astropy cannot store int8: dnt goes through uint8)."""
import os

import numpy as np
import pytest
from astropy.table import Table

import cloudcov as cc


def test_round_trip_keeps_dnt_bits_and_dtypes(tmp_path):
    t = Table({"x": np.arange(5.0), "flux": np.ones(5, np.float32),
               "dnt": np.array([0, 1, 3, 64, 127], np.int8),
               "kcond": np.arange(5, dtype=np.int32)})
    t.meta["cloudcov"] = {"Np": 33, "thr": 20.0, "version": cc.__version__, "nested": {"a": 1}}
    p = cc.io.write_fits_table(t, tmp_path / "sub" / "cat.fits")
    back = cc.io.read_fits_table(p)
    assert back["dnt"].dtype == np.int8 and back["kcond"].dtype == np.int32
    np.testing.assert_array_equal(back["dnt"], t["dnt"])
    np.testing.assert_array_equal(back["x"], t["x"])
    assert back.meta["cloudcov"]["Np"] == 33 and back.meta["cloudcov"]["version"] == cc.__version__
    assert back.meta["cloudcov"]["nested"] == {"a": 1}
    assert oct(p.stat().st_mode & 0o777) != oct(0o600)   # a normal file mode, not mkstemp's
    assert not [f for f in os.listdir(p.parent) if f.endswith(".tmp")]


def test_no_overwrite_and_failed_write_leaves_nothing(tmp_path):
    t = Table({"a": [1, 2]})
    p = cc.io.write_fits_table(t, tmp_path / "c.fits")
    with pytest.raises(FileExistsError):
        cc.io.write_fits_table(t, p, overwrite=False)
    bad = Table({"a": [object(), object()]})      # not representable in FITS
    with pytest.raises(Exception):
        cc.io.write_fits_table(bad, p)
    assert sorted(os.listdir(tmp_path)) == ["c.fits"]
    np.testing.assert_array_equal(cc.io.read_fits_table(p)["a"], [1, 2])


def test_flux_columns_in_adu_and_qtable_units_kept(tmp_path):
    """Flux columns carry ``adu`` (FITS TUNIT, HDF5 metadata); a QTable catalogue with units
    comes back a QTable with its units, and the numbers do not depend on them."""
    import astropy.units as u
    from astropy.io import fits
    from astropy.table import QTable

    from cloudcov._columns import FLUX_COLUMNS
    from cloudcov.example import load_example

    ex = load_example()
    args = (ex["image"], ex["model"], ex["sky"])
    kw = dict(dq=ex["dq"], thr=1000, seed=0, threads=1, Np=17, widx=41)
    plain = cc.process_ccd(*args, ex["catalog"], ex["psf"], ex["gain"], **kw)
    for name in FLUX_COLUMNS:
        assert plain[name].unit == u.adu
    assert plain["kcond"].unit is None and plain["dnt"].unit is None
    cat = QTable(ex["catalog"])
    cat["x"], cat["y"] = np.asarray(cat["x"]) * u.pix, np.asarray(cat["y"]) * u.pix
    cat["flux"] = np.asarray(cat["flux"]) * u.adu
    q = cc.process_ccd(*args, cat, ex["psf"], ex["gain"], **kw)
    assert isinstance(q, QTable) and q["x"].unit == u.pix and q["cflux"].unit == u.adu
    np.testing.assert_array_equal(q["cflux"].value, plain["cflux"])
    p = cc.io.write_fits_table(q, tmp_path / "q.fits")
    with fits.open(p) as h:
        cols = h["CAT"].columns
        assert cols["cflux"].unit == "adu" and cols["x"].unit == "pix" and not cols["dnt"].unit
    back = cc.io.read_fits_table(p)
    assert back["dcflux"].unit == u.adu and back["dnt"].dtype == np.int8
    params = {"thr": 1000.0}
    for fmt, name in (("fits", "o.fits"), ("hdf5", "o.h5")):
        path = cc.io.write_ccd_output(tmp_path / name, q, "S6", params=params, fmt=fmt)
        t = cc.io.read_output(path, "S6")
        assert type(t) is Table and t["cflux"].unit == u.adu and t["x"].unit == u.pix
        np.testing.assert_array_equal(t["cflux"], plain["cflux"])
        assert t.meta["params"] == params
    t = Table.read(tmp_path / "o.h5", path="S6")     # plain astropy, units and meta
    assert t["fdb_pred"].unit == u.adu and t.meta["params"] == params


def test_refuses_to_replace_a_non_regular_file(tmp_path):
    """An existing destination that is not a regular file (a FIFO here, /dev/null or a
    directory in use) is refused before anything is written: renaming the temporary file over
    it would replace it (as root, /dev/null itself)."""
    import stat
    fifo = tmp_path / "pipe.fits"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="pipe.fits.*not a regular file"):
        cc.io.write_fits_table(Table({"a": [1]}), fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    (tmp_path / "d.fits").mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        cc.io.write_fits_table(Table({"a": [1]}), tmp_path / "d.fits")
    assert sorted(os.listdir(tmp_path)) == ["d.fits", "pipe.fits"]
