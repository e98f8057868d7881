"""cloudcov.maps and ``cloudcov maps``: HEALPix maps of error-bar calibration (paper sec. 5.4)."""
from __future__ import annotations

import numpy as np
import pytest

hp = pytest.importorskip("healpy")

from astropy.table import Table  # noqa: E402

from cloudcov import maps as cm  # noqa: E402
from cloudcov.cli import main  # noqa: E402


def _brute(lon, lat, values, nside, fn, nest=False, min_count=0):
    ip = hp.ang2pix(nside, lon, lat, lonlat=True, nest=nest)
    out = np.full(hp.nside2npix(nside), np.nan)
    cnt = np.zeros(hp.nside2npix(nside), int)
    for p in np.unique(ip):
        v = values[ip == p]
        v = v[np.isfinite(v)]
        cnt[p] = v.size
        if v.size >= max(min_count, 1):
            out[p] = fn(v)
    return out, cnt


def _sample(rng, n=6000):
    lon = rng.uniform(-60, 10, n)
    lat = rng.uniform(-8, 8, n)
    v = rng.standard_normal(n) * (1 + np.abs(lat) / 4)
    v[rng.uniform(size=n) < 0.02] = np.nan
    return lon, lat, v


def _iqr(v):
    q25, q75 = np.percentile(v, [25, 75])
    return (q75 - q25) / 1.34896 if v.size >= 2 else np.nan


@pytest.mark.parametrize("nest", [False, True])
@pytest.mark.parametrize("statistic,fn", [
    ("iqr", _iqr), ("median", np.median), ("mean", np.mean), ("count", len),
    (lambda v: float(np.max(v) - np.min(v)), lambda v: np.max(v) - np.min(v))])
def test_healpix_map_matches_bruteforce(rng, statistic, fn, nest):
    lon, lat, v = _sample(rng)
    got, cnt = cm.healpix_map(lon, lat, v, 16, statistic, nest=nest, min_count=5)
    want, wcnt = _brute(lon, lat, v, 16, fn, nest=nest, min_count=5)
    np.testing.assert_array_equal(cnt, wcnt)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-3)
    # exact to round-off against numpy's percentile (1.34896 vs IQR_NORMAL aside)
    if statistic in ("median", "mean"):
        np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-12)


def test_healpix_map_min_count_and_icrs_input(rng):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    lon, lat, v = _sample(rng, 3000)
    m0, c0 = cm.healpix_map(lon, lat, v, 8, "median", min_count=0)
    m40, c40 = cm.healpix_map(lon, lat, v, 8, "median", min_count=40)
    np.testing.assert_array_equal(c0, c40)
    assert np.all(np.isnan(m40[c40 < 40]))
    np.testing.assert_array_equal(m40[c40 >= 40], m0[c40 >= 40])
    assert ((c0 > 0) & (c0 < 40)).any() and (c0 >= 40).any()
    # the same stars given in ICRS give the same Galactic map
    c = SkyCoord(l=lon * u.deg, b=lat * u.deg, frame="galactic").icrs
    m1, c1 = cm.healpix_map(c.ra.deg, c.dec.deg, v, 8, "median", min_count=40,
                            input_frame="icrs")
    np.testing.assert_array_equal(c1, c40)
    np.testing.assert_allclose(m1, m40, equal_nan=True)


def test_healpix_map_bad_input():
    with pytest.raises(ValueError, match="nside"):
        cm.healpix_map([0], [0], [1.0], nside=30)
    with pytest.raises(ValueError, match="statistic"):
        cm.healpix_map([0], [0], [1.0], 8, "mode")
    with pytest.raises(ValueError, match="lat"):
        cm.healpix_map([0], [95], [1.0], 8)
    with pytest.raises(ValueError, match="values"):
        cm.healpix_map([0, 1], [0, 1], [1.0], 8)
    with pytest.raises(ValueError, match="min_count"):
        cm.healpix_map([0], [0], [1.0], 8, min_count=-1)
    with pytest.raises(TypeError, match="values"):
        cm.healpix_map([0], [0], None, 8, "iqr")


def test_iqr_sigma_and_zscores(rng):
    z = rng.standard_normal(200000)
    assert abs(cm.iqr_sigma(z) - 1) < 0.01
    assert abs(cm.iqr_sigma(3 * z) - 3) < 0.03
    assert np.isnan(cm.iqr_sigma([1.0]))
    a = np.stack([z[:1000], 2 * z[1000:2000]])
    np.testing.assert_allclose(cm.iqr_sigma(a, axis=1), [cm.iqr_sigma(a[0]), cm.iqr_sigma(a[1])])
    zz = cm.zscores([10.0, 12, 5, np.nan], [2.0, 0, 1, 1], [8.0, 8, 6, 6])
    np.testing.assert_array_equal(zz[[0, 2]], [1.0, -1.0])
    assert np.isnan(zz[1]) and np.isnan(zz[3])
    with pytest.raises(ValueError, match="shape"):
        cm.zscores([1.0], [1.0, 2.0], [1.0])


def _cut_table():
    # row 0 passes everything; each later row fails exactly one cut
    return Table(dict(dnt=np.array([0, 8, 0, 0, 0, 0], "i1"),
                      cchi2=np.array([800., 800, 100, 800, 800, 800], "f4"),
                      kcond=np.array([1000, 1000, 1000, 1000, 1000, 1000], "i4"),
                      flags=np.array([1, 1, 1, 1 | 8, 1, 1], "i4"),
                      rchi2=np.array([1., 1, 1, 1, 200, 1], "f4"),
                      fracflux=np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.2], "f4")))


def test_quality_cuts_each_optional():
    t = _cut_table()
    assert cm.quality_cuts(t, "paper").tolist() == [True] + [False] * 5
    assert cm.quality_cuts(t, "none").all()
    assert cm.quality_cuts(t, "dnt").tolist() == [True, False, True, True, True, True]
    assert cm.quality_cuts(t, "paper", dnt_ignore=8).tolist()[:2] == [True, True]
    skips = dict(min_cchi2_per_kcond=2, bad_flags=3, max_rchi2=4, min_fracflux=5)
    for key, row in skips.items():
        ok = cm.quality_cuts(t, "paper", **{key: None})
        assert ok[row] and ok.sum() == 2, key
    # a skipped cut does not need its column
    t2 = Table({k: t[k] for k in t.colnames if k != "rchi2"})
    with pytest.raises(KeyError, match="rchi2"):
        cm.quality_cuts(t2, "paper")
    assert cm.quality_cuts(t2, "paper", max_rchi2=None).tolist() == [True] + [False] * 3 + [True, False]
    with pytest.raises(ValueError, match="cuts"):
        cm.quality_cuts(t, "strict")


def test_positions_from_wcs_row_col_convention():
    from astropy.io import fits
    from astropy.wcs import WCS

    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = 150.0, 2.0
    h["CRPIX1"], h["CRPIX2"] = 1.0, 1.0
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -1e-4, 0.0, 0.0, 2e-4
    ra, dec = cm.positions_from_wcs(h, row=np.array([0.0, 100.0]), col=np.array([50.0, 0.0]))
    want = WCS(h).pixel_to_world_values([50.0, 0.0], [0.0, 100.0])
    np.testing.assert_allclose(ra, want[0])
    np.testing.assert_allclose(dec, want[1])
    assert dec[1] > dec[0] and ra[0] < 150.0        # row moves in dec, col in ra here
    t = Table(dict(x=[0.0, 100.0], y=[50.0, 0.0]))     # crowdsource: x = row
    np.testing.assert_allclose(cm.sky_positions(t, WCS(h)), (ra, dec))
    tp = Table(dict(x=[50.0, 0.0], y=[0.0, 100.0]))    # photutils: x = column
    np.testing.assert_allclose(cm.sky_positions(tp, WCS(h), convention="photutils"), (ra, dec))
    with pytest.raises(KeyError, match="wcs"):
        cm.sky_positions(t)


def test_match_truth_one_to_one_and_per_ccd():
    d = 1 / 3600
    cat = Table(dict(ra=[10.0, 10.0 + 10 * d, 10.0 + 20 * d], dec=[0.0, 0.0, 0.0],
                     ccd=["A", "A", "B"]))
    truth = Table(dict(ra=[10.0 + 0.3 * d, 10 + 10 * d, 10 + 10.4 * d, 10 + 20 * d, 10 + 40 * d],
                       dec=[0.0] * 5, flux=[1.0] * 5, ccd=["A", "A", "A", "A", "B"]))
    idx = cm.match_truth(cat, truth, radius=1.0)
    # row 1 and 2 claim detection 1 (a blend): both dropped; row 3 is on CCD A but the
    # detection at its position is on CCD B; row 4 has nothing within 1"
    assert idx.tolist() == [0, -1, -1, -1, -1]
    truth.remove_column("ccd")
    assert cm.match_truth(cat, truth, radius=1.0).tolist() == [0, -1, -1, 2, -1]
    cat["id"] = [7, 8, 9]
    truth["id"] = [9, 8, 1, 7, 7]
    assert cm.match_truth(cat, truth, by_id="id").tolist() == [2, 1, -1, 0, 0]


def test_write_read_maps_roundtrip(tmp_path, rng):
    m = rng.standard_normal(hp.nside2npix(4))
    m[:5] = np.nan
    c = rng.integers(0, 100, m.size)
    p = cm.write_maps(tmp_path / "m.fits", {"iqr": m, "count": c}, meta={"nside0": 4})
    got, hdr = cm.read_maps(p)
    np.testing.assert_array_equal(got["iqr"], m)
    np.testing.assert_array_equal(got["count"], c)
    assert hdr["NSIDE"] == 4 and hdr["COORDSYS"] == "G"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.fits"]     # no temp left
    with pytest.raises(ValueError, match="HEALPix"):
        cm.write_maps(tmp_path / "bad.fits", {"a": np.zeros(10)})


# ------------------------------------------------------------------ CLI on small outputs

def _fake_outputs(tmp_path, rng, fmt):
    """Three CCD outputs (two files) with known conventional/LPI Z widths, and their truth."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from cloudcov.io import write_ccd_output

    centres = {"S1": (-30.0, 1.0), "S2": (-10.0, -2.0), "N4": (-50.0, 3.0)}   # (l, b)
    widths = {"S1": (2.0, 1.0), "S2": (3.0, 1.2), "N4": (1.5, 1.0)}          # (conv, LPI)
    files, truths = [], []
    for k, (ccd, (l0, b0)) in enumerate(centres.items()):
        n = 400
        c0 = SkyCoord(l=l0 * u.deg, b=b0 * u.deg, frame="galactic").icrs
        ra = c0.ra.deg + rng.uniform(-0.01, 0.01, n)
        dec = c0.dec.deg + rng.uniform(-0.01, 0.01, n)
        true = rng.uniform(1e3, 1e4, n)
        dflux = np.full(n, 50.0)
        dcflux = 50.0 * widths[ccd][0] / widths[ccd][1] * (1 + 0.05 * rng.standard_normal(n))
        dcflux[:20] *= 1.3                    # the dnt = 8 rows below: cut from the ratio map
        flux = true + dflux * widths[ccd][0] * rng.standard_normal(n)
        cflux = true + dcflux * widths[ccd][1] * rng.standard_normal(n)
        t = Table(dict(x=rng.uniform(0, 100, n).astype("f4"), y=rng.uniform(0, 100, n).astype("f4"),
                       flux=flux.astype("f4"), dflux=dflux.astype("f4"), ra=ra, dec=dec,
                       flags=np.ones(n, "i4"), rchi2=np.ones(n, "f4"),
                       fracflux=np.full(n, 0.9, "f4"), cflux=cflux.astype("f4"),
                       dcflux=dcflux.astype("f4"), dcflux_diag=dcflux.astype("f4"),
                       fdb_res=np.zeros(n, "f4"), fdb_pred=np.zeros(n, "f4"),
                       cchi2=np.full(n, 900.0, "f4"), kcond0=np.full(n, 1000, "i4"),
                       kcond=np.full(n, 1000, "i4"), kpred=np.full(n, 50, "i4"),
                       dnt=np.zeros(n, "i1")))
        t["dnt"][:20] = 8                     # rejected by the paper's dnt == 0
        out = tmp_path / (f"exp{min(k, 1)}.cat.cer." + ("fits" if fmt == "fits" else "h5"))
        if k == 2:   # append a second CCD to the second file: write a part and assemble
            from cloudcov.io import assemble_output

            part = tmp_path / f"{ccd}.part.{'fits' if fmt == 'fits' else 'h5'}"
            write_ccd_output(part, t, ccd, params={}, info={"exposure": {"date": "d1"}}, fmt=fmt)
            assemble_output(out, [("S2", out), (ccd, part)], fmt=fmt)
        else:
            write_ccd_output(out, t, ccd, params={},
                             info={"exposure": {"date": f"d{min(k, 1)}"}}, fmt=fmt)
            files.append(out)
        truths.append(Table(dict(ra=ra, dec=dec, flux=true, ccd=[ccd] * n)))
    from astropy.table import vstack

    truth = vstack(truths)
    tpath = tmp_path / "truth.ecsv"
    truth.write(tpath, format="ascii.ecsv")
    return files, tpath, centres, widths


@pytest.mark.parametrize("fmt", ["fits", "hdf5"])
def test_cli_maps_on_small_outputs(tmp_path, rng, fmt, capsys):
    files, tpath, centres, widths = _fake_outputs(tmp_path, rng, fmt)
    out = tmp_path / "maps.fits"
    png = tmp_path / "maps.png"
    code = main(["maps", *map(str, files), "--truth", str(tpath), "--nside", "32",
                 "--out", str(out), "--png", str(png), "--stars", str(tmp_path / "stars.ecsv")])
    assert code == 0
    text = capsys.readouterr().out
    assert "3 pixel(s)" in text and "matched 1200" in text
    got, hdr = cm.read_maps(out)
    assert hdr["NSIDE"] == 32 and png.stat().st_size > 10000
    stars = Table.read(tmp_path / "stars.ecsv")
    for ccd, (l0, b0) in centres.items():
        p = hp.ang2pix(32, l0, b0, lonlat=True)
        sel = stars["passed"] & (stars["ccd"] == ccd)
        assert got["count"][p] == sel.sum() == 380          # 20 dnt = 8 stars cut
        assert got["z_conventional"][p] == pytest.approx(cm.iqr_sigma(stars["z_conventional"][sel]))
        assert got["z_conventional"][p] == pytest.approx(widths[ccd][0], rel=0.15)
        assert got["z_lpi"][p] == pytest.approx(widths[ccd][1], rel=0.15)
        assert got["ratio"][p] == pytest.approx(widths[ccd][0] / widths[ccd][1], rel=0.02)
        t = cm.load_outputs(files)
        t = t[(t["ccd"] == ccd) & (t["dnt"] == 0)]
        assert got["ratio"][p] == pytest.approx(np.mean(t["dcflux"] / t["dflux"]), rel=1e-6)
    assert np.isnan(got["z_lpi"]).sum() == got["z_lpi"].size - 3
    # fewer stars than --min-count: nothing mapped; no truth: only ratio and counts
    assert main(["maps", *map(str, files), "--min-count", "500", "--out", str(tmp_path / "r.fits")]) == 0
    got2, _ = cm.read_maps(tmp_path / "r.fits")
    assert "z_lpi" not in got2 and np.isnan(got2["ratio"]).all()
    assert got2["count_all"].sum() == 1200


def test_cli_maps_errors(tmp_path, capsys):
    assert main(["maps", str(tmp_path / "missing.fits"), "--out", str(tmp_path / "m.fits")]) == 1
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "m.fits").exists()
