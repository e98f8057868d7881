"""Quality bits: crowdsource flags, CP DQ codes, dnt, and the DECaPS2 OK cut."""
import numpy as np
import pytest
from astropy.table import Table

from cloudcov.flags import (CROWDSOURCE_FLAG_BITS, DECAPS_BAD_FLAGS, DNT_NAMES, cp_dq_codes,
                            decaps_ok, decode_dnt, decode_flags, dnt_names, flag_names,
                            flags_uint32, parse_plver)
from cloudcov.perstar import DNT_BITS


def test_flags_sign_bit_and_byte_order():
    vals = np.array([1, 8 | 2**21, -2**31 + 1, -2**31 + 2**30 + 2**22, 999], dtype=np.int32)
    big = vals.astype(">i4")
    for a in (vals, big):
        u = flags_uint32(a)
        assert u.dtype == np.int64
        assert u.tolist() == [1, 8 | 2**21, 2**31 + 1, 2**31 + 2**30 + 2**22, 999]
    # the pitfall: a uint32 *view* of big-endian data reinterprets the bytes natively
    assert big.view("u4")[0] != 1
    d = decode_flags(big)
    assert d["dq_good"].tolist() == [True, False, True, False, False]
    assert d["dq_saturated"].tolist() == [False, True, False, False, False]
    assert d["diffuse"].tolist() == [False, True, False, False, False]
    assert d["sharp"].tolist() == [False, False, True, True, False]
    assert d["nodeblend"].tolist() == [False, False, False, True, False]
    assert d["s7unstable"].tolist() == [False, False, False, True, False]
    assert d["off_image"].tolist() == [False, False, False, False, True]
    # 999 is a sentinel, not bits
    assert not any(d[name][4] for name in CROWDSOURCE_FLAG_BITS)
    assert not d["unknown"].any()
    assert decode_flags(np.int32(2**10))["unknown"]


def test_flag_names():
    assert flag_names(-2**31 + 1) == ["dq_good", "sharp"]
    assert flag_names(999) == ["off_image"]
    assert flag_names(2**5 | 2**12) == ["dq_cosmic_ray", "bit12"]
    with pytest.raises(TypeError, match="flags"):
        flags_uint32(np.array([1.5]))


def test_decode_dnt():
    assert set(DNT_NAMES.values()) == set(DNT_BITS)
    for dt in (np.int8, np.uint8, np.int32, np.float32):
        d = decode_dnt(np.array([0, 1 | 2, 4, 8 | 16, 64], dtype=dt))
        assert d["few_good"].tolist() == [False, True, False, False, False]
        assert d["ring_forced"].tolist() == [False, True, False, False, False]
        assert d["guard"].tolist() == [False, False, True, False, False]
        assert d["psf_negative"].tolist() == [False, False, False, True, False]
        assert d["psf_neg_1e-3"].tolist() == [False, False, False, True, False]
        assert d["unstable"].tolist() == [False, False, False, False, True]
    assert dnt_names(np.int8(-128 + 64)) == ["unstable", "not_measured"]
    with pytest.raises(ValueError, match="integral"):
        decode_dnt(np.array([np.nan]))


def _ok_table():
    n = 8
    t = Table(dict(dnt=np.zeros(n, np.int8), cchi2=np.full(n, 50.0, np.float32),
                   kcond=np.full(n, 50, np.int32), flags=np.ones(n, np.int32),
                   rchi2=np.ones(n, np.float32), fracflux=np.full(n, 0.9, np.float32)))
    t["dnt"][1] = 8                      # any dnt bit fails
    t["cchi2"][2] = 0.5 * 50             # cchi2/kcond = 0.5
    t["flags"][3] = 1 | 2**22            # s7unstable
    t["rchi2"][4] = 100                  # strict
    t["fracflux"][5] = 0.5               # strict
    t["flags"][6] = 999                  # off image
    t["kcond"][7] = 0                    # no good pixels
    return t


def test_decaps_ok():
    t = _ok_table()
    assert decaps_ok(t).tolist() == [True] + [False] * 7
    # allowed bits: clean DQ code, diffuse, nodeblend, sharp (negative int32)
    t["flags"][0] = np.int32(1 | 2**21 | 2**30) | np.int32(-2**31)
    assert decaps_ok(t)[0]
    t["cchi2"][0] = np.nan
    assert not decaps_ok(t)[0]
    t = _ok_table()
    assert decaps_ok(t, bad_flags=DECAPS_BAD_FLAGS & ~2**22)[3]
    with pytest.raises(KeyError, match="fracflux"):
        decaps_ok(Table({k: t[k] for k in t.colnames if k != "fracflux"}))


def test_cp_dq_codes_legacy():
    assert parse_plver("V3.6.2") == (3, 6, 2)
    assert parse_plver("V4.8.2a") == (4, 8, 2)
    assert parse_plver("V3.12") > parse_plver("V3.5")
    with pytest.raises(ValueError, match="PLVER"):
        parse_plver("V")
    dq = np.array([[0, 1, 2, 16], [64, 128, 1 | 128, 2 | 16]], np.int16)
    assert cp_dq_codes(dq, "V3.4").tolist() == [[0, 1, 3, 5], [4, 7, 1, 3]]
    assert cp_dq_codes(dq, "V3.5").tolist() == dq.tolist()
