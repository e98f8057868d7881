"""cloudcov.clean and ``cloudcov clean``: end to end on synthetic frames with known defects,
CLI round trip, atomic output, bad input; quick run of validation/scripts/07_defects_clean.py."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import cloudcov
from cloudcov.cli import main
from cloudcov.defects import decode_defects

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_defects import GAIN, RN, SIG, SKY, place, star_field, star_zone  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frames():
    """Three dithered integer frames with a persistent hot pixel, transient hot/dead pixels
    and a cosmic-ray track in frame 0."""
    rng = np.random.default_rng(31)
    out, cents = [], []
    for k in range(3):
        img, c = star_field(rng, shape=(120, 150), nstars=25, fwhm=3.0, seed_pos=9,
                            shift=(2.0 * k, -2.5 * k))
        out.append(img + 100.0)            # pedestal 100 ADU
        cents.append(c)
    stars = np.zeros(out[0].shape, bool)
    for c in cents:
        stars |= star_zone(out[0].shape, c, 4)
    pos = place(np.random.default_rng(32), out[0].shape, 8, stars, margin=12)
    truth = dict(persistent=pos[0], hot=pos[1], dead=pos[2], cr=pos[3])
    for f in out:
        f[pos[0, 0], pos[0, 1]] += 30 * SIG
    f0 = out[0]
    f0[pos[1, 0], pos[1, 1]] += 40 * SIG
    f0[pos[2, 0], pos[2, 1]] = 100.0 + 5.0
    r, c = pos[3]
    f0[r, c:c + 4] += 80 * SIG
    return [np.rint(f).astype(np.uint16) for f in out], truth


def test_clean_finds_and_imputes_known_defects(frames):
    fr, truth = frames
    res = cloudcov.clean(fr[0], frames=fr[1:], gain=GAIN, readnoise=RN, bias=100.0, method="median",
                         n_draw=2, rng=1)
    dec = decode_defects(res.defects)
    p, h, d, (r, c) = truth["persistent"], truth["hot"], truth["dead"], truth["cr"]
    assert dec["persistent"][p[0], p[1]] and dec["hot"][p[0], p[1]]
    assert dec["hot"][h[0], h[1]]
    assert dec["dead"][d[0], d[1]]
    assert dec["cosmic_ray"][r, c:c + 4].sum() >= 3
    assert dec["cr_wing"][r - 1, c:c + 4].any()               # grown by one pixel
    # few other pixels flagged (stars are protected)
    known = np.zeros(res.defects.shape, bool)
    known[p[0], p[1]] = known[h[0], h[1]] = known[d[0], d[1]] = True
    known[r - 1:r + 2, c - 1:c + 5] = True
    assert not dec["cr_wing"][h[0] - 1:h[0] + 2, h[1] - 1:h[1] + 2].any()   # lone hot: no wings
    assert (dec["any"] & ~known).sum() <= 10
    # imputed values are back near the sky, other pixels untouched
    x0 = fr[0].astype(np.float64)
    bad = res.defects != 0
    assert np.array_equal(res.image[~bad], x0[~bad])
    for (rr, cc) in (p, h, d, (r, c + 1)):
        assert abs(res.image[rr, cc] - (SKY + 100.0)) < 6 * SIG
    assert np.all(res.std[bad] > 0) and np.all(res.std[~bad] == 0)
    assert res.draws.shape == (2,) + x0.shape
    assert res.counts["any"] == res.counts["imputed"] == int(bad.sum())
    assert res.params["n_frames"] == 3 and res.params["persistent_info"]["n_frames"] == 3


def test_clean_dq_and_nan(frames):
    fr, _ = frames
    x = fr[0].astype(np.float64)
    x[5, 5] = np.nan
    dq = np.zeros(x.shape, np.int32)
    dq[60:62, 70:75] = 4
    res = cloudcov.clean(x, dq=dq, gain=GAIN, readnoise=RN, bias=100.0)
    dec = decode_defects(res.defects)
    assert dec["nonfinite"][5, 5] and dec["nonfinite"].sum() == 1
    assert dec["dq"][60:62, 70:75].all() and dec["dq"].sum() == 10
    assert np.all(np.isfinite(res.image))
    assert res.counts["dq"] == 10 and res.counts["nonfinite"] == 1


def test_clean_gpr_gets_the_gain(frames):
    fr, truth = frames
    res = cloudcov.clean(fr[0], gain=GAIN, readnoise=RN, bias=100.0, method="gpr", rng=0)
    assert res.params["impute_params"].get("gain") == GAIN
    h = truth["hot"]
    assert abs(res.image[h[0], h[1]] - (SKY + 100.0)) < 6 * SIG


def test_clean_bad_input(frames):
    fr, _ = frames
    with pytest.raises(ValueError, match="gain: required"):
        cloudcov.clean(fr[0], readnoise=RN)
    with pytest.raises(ValueError, match="readnoise: required"):
        cloudcov.clean(fr[0], gain=GAIN)
    cloudcov.clean(fr[0], cosmic_rays=False)          # no gain needed without cosmic rays
    with pytest.raises(ValueError, match=r"frames\[1\]: shape \(120, 149\) != image shape"):
        cloudcov.clean(fr[0], frames=[fr[1], fr[2][:, :-1]], gain=GAIN, readnoise=RN)
    with pytest.raises(ValueError, match="dq: shape"):
        cloudcov.clean(fr[0], dq=np.zeros((3, 3)), gain=GAIN, readnoise=RN)
    with pytest.raises(ValueError, match="image: expected a 2-D"):
        cloudcov.clean(np.zeros(5), cosmic_rays=False)
    with pytest.raises(ValueError, match="method"):
        cloudcov.clean(fr[0], cosmic_rays=False, method="bilinear")


# ------------------------------------------------------------------------------ CLI

def _write(path, data, **cards):
    from astropy.io import fits
    h = fits.Header()
    for k, v in cards.items():
        h[k] = v
    fits.PrimaryHDU(data, header=h).writeto(path)


def test_cli_round_trip(frames, tmp_path, capsys):
    from astropy.io import fits
    fr, truth = frames
    paths = []
    for k, f in enumerate(fr):
        p = tmp_path / f"f{k}.fits"
        _write(p, f, GAIN=GAIN, RDNOISE=RN, PEDESTAL=-100, OBJECT="synthetic")
        paths.append(str(p))
    dq = np.zeros(fr[0].shape, np.int16)
    dq[10, 10:13] = 1
    dqp = tmp_path / "dq.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(dq, name="S6")]).writeto(dqp)
    out = tmp_path / "sub" / "clean.fits"
    rc = main(["clean", paths[0], "--frames", *paths[1:], "--dq", f"{dqp}[S6]", "--method",
               "median", "--n-draw", "2", "--seed", "3", "--out", str(out)])
    assert rc == 0
    msg = capsys.readouterr().out
    assert "cloudcov clean:" in msg and str(out) in msg
    ref = cloudcov.clean(fr[0], frames=fr[1:], dq=dq, gain=GAIN, readnoise=RN, bias=100.0,
                         n_draw=2, rng=3)
    with fits.open(out) as h:
        assert [x.name for x in h] == ["PRIMARY", "DEFECTS", "STD", "DRAWS"]
        hdr = h[0].header
        assert hdr["OBJECT"] == "synthetic" and hdr["CCMETHOD"] == "median"
        assert hdr["CCGAIN"] == GAIN and hdr["CCBIAS"] == 100.0 and hdr["CCNFRAME"] == 3
        np.testing.assert_array_equal(h[0].data, ref.image)
        np.testing.assert_array_equal(h["DEFECTS"].data, ref.defects)
        np.testing.assert_array_equal(h["STD"].data, ref.std)
        np.testing.assert_array_equal(h["DRAWS"].data, ref.draws)
        dec = decode_defects(h["DEFECTS"].data)
        assert h["DEFECTS"].header["BIT3"] == "cosmic_ray"
        for name, key in (("hot", "CCNHOT"), ("dead", "CCNDEAD"), ("cosmic_ray", "CCNCR"),
                          ("dq", "CCNDQ"), ("persistent", "CCNPERS"), ("any", "CCNBAD")):
            assert hdr[key] == int(dec[name].sum()), name
        assert hdr["CCNDQ"] == 3
        params = json.loads(hdr["CCPARAMS"])
        assert params["readnoise"] == RN and params["nsigma"] == 6.0
        assert hdr["CCINPUT1"] == paths[0]
    assert not list(out.parent.glob("*.tmp"))


def test_cli_errors(frames, tmp_path, capsys):
    fr, _ = frames
    p = tmp_path / "nogain.fits"
    _write(p, fr[0])
    out = tmp_path / "o.fits"
    assert main(["clean", str(p), "--out", str(out)]) == 1
    assert "gain: required" in capsys.readouterr().err
    q = tmp_path / "small.fits"
    _write(q, fr[1][:, :-1])
    assert main(["clean", str(p), "--frames", str(q), "--gain", "2", "--readnoise", "8",
                 "--out", str(out)]) == 1
    assert "frames[0]: shape" in capsys.readouterr().err
    assert main(["clean", str(tmp_path / "missing.fits"), "--out", str(out)]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["clean", f"{p}[NOPE]", "--out", str(out)]) == 1
    assert "NOPE" in capsys.readouterr().err
    assert not out.exists()


def test_write_is_atomic(frames, tmp_path, monkeypatch):
    from astropy.io import fits

    from cloudcov.clean import write_clean
    fr, _ = frames
    res = cloudcov.clean(fr[0], cosmic_rays=False)
    out = tmp_path / "c.fits"
    write_clean(out, res)
    before = out.read_bytes()

    def boom(self, fileobj, *a, **k):   # a crash half-way through the write
        pathlib.Path(fileobj).write_bytes(b"SIMPLE  = partial")
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", boom)
    with pytest.raises(OSError, match="disk full"):
        write_clean(out, res)
    assert out.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------------------------ validation

def test_validation_quick(real_dir, tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    script = REPO / "validation" / "scripts" / "07_defects_clean.py"
    proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path),
                           "--no-figures"], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((tmp_path / "defects_clean.json").read_text())
    assert data["provenance"]["cloudcov"] == cloudcov.__version__
    f1 = data["detection"]["frames"]["frame1"]
    dead = f1["finders"]["cloudcov dead (6 sigma, guard)"]
    assert f1["truth"]["n_neg"] >= 3 and dead["recall_neg"] >= 0.9 and dead["unsupported"] <= 3
    hh = data["detection"]["horsehead"]
    assert hh["cloudcov.clean all classes"]["fraction"] < 5e-4
    assert hh["astroscrappy defaults"]["fraction"] > 10 * hh["cloudcov.clean all classes"]["fraction"]
    rows = data["imputation"]
    assert {r["method"] for r in rows} >= {"median", "gaussian", "astroscrappy medmask"}
    for r in rows:
        assert np.isfinite(r["mae"])
