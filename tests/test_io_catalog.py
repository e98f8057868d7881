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
