"""DECam CP readers on real cutouts and the full fpack-compressed S6/S7 masks."""
import warnings

import numpy as np
import pytest
from astropy.io import fits

from cloudcov import CloudCovWarning
from cloudcov.io import (InputFileError, correct_s7, decam_filenames, inject_rename, read_decam,
                         read_decam_dq, read_decam_image, read_decam_ivar)
from cloudcov.io.decam import s7_weight

CUTOUTS = [  # (pattern, ccd, shape)
    ("c4d_150411_035242_{}_z_v1-N10.fits", "N10", (150, 150)),
    ("c4d_170316_062107_{}_z_ls9.N2.fits", "N2", (251, 245)),
    ("c4d_171113_060340_{}_r_ls9.N6.fits", "N6", (375, 280)),
]


@pytest.mark.parametrize("pattern, ccd, shape", CUTOUTS)
def test_read_real_cutouts(real_dir, pattern, ccd, shape):
    f = {k: real_dir / pattern.format(k) for k in ("ooi", "oow", "ood")}
    dec = read_decam(f["ooi"], f["ood"], ccd, oow=f["oow"])
    assert dec.ccd == ccd
    assert dec.image.shape == dec.dq.shape == dec.ivar.shape == shape
    assert dec.image.dtype == np.float32 and dec.image.dtype.isnative
    assert dec.dq.dtype == np.int32 and dec.ivar.dtype == np.float32
    assert dec.image.flags.c_contiguous
    assert np.all(np.isfinite(dec.image)) and np.all(dec.ivar >= 0)
    assert dec.header["EXTNAME"] == ccd and dec.header["CCDNUM"] > 0
    assert dec.plver.startswith("V") and dec.expnum > 400000
    # the same values astropy reads ([row, col] = [NAXIS2, NAXIS1])
    raw = fits.getdata(f["ooi"], extname=ccd)
    assert np.array_equal(dec.image, raw.astype(np.float32))
    assert dec.image.shape == (fits.getheader(f["ooi"], extname=ccd)["NAXIS2"],
                               fits.getheader(f["ooi"], extname=ccd)["NAXIS1"])
    assert set(np.unique(dec.dq)) <= set(range(9))


def test_real_dq_codes(real_dir):
    dq, _ = read_decam_dq(real_dir / "c4d_170316_062107_ood_z_ls9.N2.fits", "N2")
    assert set(np.unique(dq)) == {0, 5}          # cosmic rays (CP code 5)


def test_full_fpack_ood_s6_s7(real_dir):
    """Full 4094 x 2046 CCDs from a DECaPS fpack file; parity with CloudCovErr.jl tst_decam."""
    fn = real_dir / "c4d_170119_085651_ood_r_v1.fits.fz"
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # nonstandard-keyword warnings are silenced
        s6, h6 = read_decam_dq(fn, "S6")
        s7, _ = read_decam_dq(fn, "S7")
    assert s6.shape == s7.shape == (4094, 2046)
    assert s6.dtype == np.int32
    assert s6[0, 0] == 1                              # Julia d_im[1, 1] == 1
    assert h6["CCDNUM"] == 30
    assert 0 < np.count_nonzero(s6) < s6.size // 2
    # astropy itself warns about this file's headers
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fits.getheader(fn, extname="S6")
    assert any("following header keyword" in str(w.message) for w in rec)


def test_missing_file_and_extension(real_dir, tmp_path):
    fn = real_dir / "c4d_170119_085651_ood_r_v1.fits.fz"
    with pytest.raises(InputFileError) as exc:
        read_decam_dq(fn, "N4")
    assert str(fn) in str(exc.value) and "[N4]" in str(exc.value) and "S6" in str(exc.value)
    with pytest.raises(FileNotFoundError, match="nope_ooi"):
        read_decam_image(tmp_path / "nope_ooi.fits.fz", "S6")
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not a fits file" * 100)
    with pytest.raises(InputFileError, match="bad.fits"):
        read_decam_image(bad, "S6")


def _write(path, name, data, compressed=False):
    hdu = (fits.CompImageHDU(data, name=name, compression_type="GZIP_2", quantize_level=0)
           if compressed else fits.ImageHDU(data, name=name))
    prim = fits.PrimaryHDU()
    prim.header["PLVER"] = "V4.8.2"
    prim.header["EXPNUM"] = "123456"                 # EXPNUM as a string (CP quirk)
    fits.HDUList([prim, hdu]).writeto(path)
    return path


def test_oow_larger_trimmed_nan_and_shapes(tmp_path, rng):
    im = rng.normal(100, 5, (10, 12)).astype(">f4")
    im[3, 4] = np.nan
    dq = np.zeros((10, 12), ">i2")
    iv = rng.uniform(0.5, 1, (12, 14)).astype(">f4")
    iv[0, 0] = np.nan
    iv[5, 6] = np.inf
    f = dict(ooi=_write(tmp_path / "ooi.fits.fz", "S6", im, compressed=True),
             ood=_write(tmp_path / "ood.fits", "S6", dq),
             oow=_write(tmp_path / "oow.fits", "S6", iv))
    with pytest.warns(CloudCovWarning, match=r"1 NaN/inf pixels with DQ 0"):
        dec = read_decam(f["ooi"], f["ood"], "S6", oow=f["oow"])
    assert dec.expnum == 123456
    assert dec.ivar.shape == (10, 12)
    want = np.nan_to_num(iv[1:-1, 1:-1], nan=0, posinf=0).astype("f4")
    assert np.array_equal(dec.ivar, want) and dec.ivar.dtype.isnative
    assert dec.ivar[4, 5] == 0                        # the inf, trimmed by one pixel
    assert dec.dq[3, 4] == 2 and np.count_nonzero(dec.dq) == 1
    # an oow of any other shape is an error naming the file and extension
    _write(tmp_path / "oow3.fits", "S6", iv[:11])
    with pytest.raises(InputFileError, match=r"oow3.fits\[S6\].*shape \(11, 14\)"):
        read_decam_ivar(tmp_path / "oow3.fits", "S6", (10, 12))
    _write(tmp_path / "ood2.fits", "S6", dq[:9])
    with pytest.raises(InputFileError, match=r"ood2.fits\[S6\].*\(9, 12\).*\(10, 12\)"):
        read_decam(f["ooi"], tmp_path / "ood2.fits", "S6")
    _write(tmp_path / "oodf.fits", "S6", dq.astype("f4"))
    with pytest.raises(InputFileError, match="expected integers"):
        read_decam_dq(tmp_path / "oodf.fits", "S6")


def test_filenames_and_injection(tmp_path):
    f = decam_filenames("/data/decaps/c4d_", "170420_040428", "g", "v1")
    assert str(f["ooi"]) == "/data/decaps/c4d_170420_040428_ooi_g_v1.fits.fz"
    assert str(f["oow"]) == "/data/decaps/c4d_170420_040428_oow_g_v1.fits.fz"
    assert str(f["ood"]) == "/data/decaps/c4d_170420_040428_ood_g_v1.fits.fz"
    f = decam_filenames(tmp_path, "170420_040428", "g", "v1")
    assert f["ooi"] == tmp_path / "c4d_170420_040428_ooi_g_v1.fits.fz"
    f = decam_filenames("/data/decaps/c4d_", "170420_040428", "g", "v1", ccd="N7I")
    assert str(f["ooi"]) == "/data/decapsi/c4d_170420_040428_ooi_g_v1.I.fits.fz"
    assert inject_rename("/a/b/x_v1.fits.fz").as_posix() == "/a/decapsi/x_v1.I.fits.fz"
    with pytest.raises(ValueError, match="fits.fz"):
        inject_rename("/a/b/x.fits")


def test_correct_s7_matches_crowdsource(rng, tmp_path, monkeypatch):
    monkeypatch.setenv("DECAM_DIR", str(tmp_path))     # decam_proc sets it on import otherwise
    dp = pytest.importorskip("crowdsource.decam_proc")
    nrow, ncol = 200, 64
    im = rng.normal(300, 4, (nrow, ncol)).astype(np.float32)
    rows = np.arange(nrow)[:, None] - np.median(np.arange(nrow))
    im[:, ncol // 2:] += (7.5 + 0.01 * rows).astype(np.float32)
    ivar = np.full((nrow, ncol), 1 / 16, np.float32)
    dq = np.zeros((nrow, ncol), np.int32)
    dq[10:20, 25:40] = 5
    w = s7_weight(ivar, dq)
    assert w[15, 30] == 0 and w[0, 0] == 0.25
    ours, par = correct_s7(im, w)
    theirs = dp.correct_sky_offset(im.copy(), weight=w.copy())
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    assert par[0] == pytest.approx(7.5, abs=0.5) and par[1] == pytest.approx(0.01, abs=0.005)
    assert abs(np.median(ours[:, ncol // 2:]) - np.median(ours[:, :ncol // 2])) < 1
    same, none = correct_s7(im, np.zeros_like(w))
    assert none is None and np.array_equal(same, im)


def test_read_decam_s7_correction(rng, tmp_path, monkeypatch):
    monkeypatch.setenv("DECAM_DIR", str(tmp_path / "empty"))
    im = rng.normal(300, 4, (60, 40)).astype(np.float32)
    im[:, 20:] += 10
    f = dict(ooi=_write(tmp_path / "ooi.fits", "S7", im),
             ood=_write(tmp_path / "ood.fits", "S7", np.zeros((60, 40), np.int32)),
             oow=_write(tmp_path / "oow.fits", "S7", np.full((60, 40), 1 / 16, np.float32)))
    with pytest.raises(ValueError, match="oow"):
        read_decam(f["ooi"], f["ood"], "S7", corrects7=True)
    with pytest.warns(CloudCovWarning, match="bad-pixel mask"):
        dec = read_decam(f["ooi"], f["ood"], "S7", oow=f["oow"], corrects7=True)
    assert dec.s7_correction[0] == pytest.approx(10, abs=1)
    assert abs(dec.image[:, 20:].mean() - dec.image[:, :20].mean()) < 1.5
    dec = read_decam(f["ooi"], f["ood"], "S7", oow=f["oow"], corrects7=True,
                     badpix=np.zeros((60, 40), bool))
    assert dec.s7_correction is not None
    # other CCDs are never corrected
    plain = read_decam(f["ooi"], f["ood"], "S7", oow=f["oow"])
    assert plain.s7_correction is None and np.array_equal(plain.image, im)
