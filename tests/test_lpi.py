"""process_ccd: the afterburner on the embedded real example and on synthetic CCDs."""
import numpy as np
import pytest
from astropy.table import Table

import cloudcov as cc
from cloudcov.example import load_example
from cloudcov.lpi import prepare_ccd, star_details
from conftest import core_switch

FLOATS = ("cflux", "dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2")


@pytest.fixture(scope="module")
def example():
    return load_example()


@pytest.fixture(scope="module")
def example_out(example):
    ex = example
    return cc.process_ccd(ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"],
                          ex["gain"], ex["dq"], thr=1000, threads=2)


def test_example_outputs_sane(example, example_out):
    out = example_out
    assert len(out) == len(example["catalog"]) == 49
    for name, dt in cc.OUTPUT_COLUMNS.items():
        assert out[name].dtype == dt, name
    for name in example["catalog"].colnames:       # input columns kept
        np.testing.assert_array_equal(out[name], example["catalog"][name])
    ok = (np.asarray(out["dnt"]).astype(int) & 64) == 0
    assert ok.sum() >= 45
    for f in FLOATS:
        assert np.all(np.isfinite(out[f][ok])), f
    assert np.all(out["kcond"] + out["kpred"] <= 33 * 33)
    assert np.all(out["kcond"] >= 4 * 33)
    # correlated plate grain: the full-covariance error exceeds the diagonal one
    assert np.mean(out["dcflux"][ok] >= out["dcflux_diag"][ok]) > 0.9
    np.testing.assert_allclose(out["cflux"], out["flux"] + out["fdb_pred"] - out["fdb_res"], rtol=1e-5)
    assert out.meta["cloudcov"]["version"] == cc.__version__


def test_example_counts_match_masks(example, example_out):
    ex, out = example, example_out
    prep = prepare_ccd(ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"],
                       ex["dq"], thr=1000)
    for k in (0, 7, 30):
        d = star_details(prep, out["x"][k], out["y"][k], out["flux"][k], ex["psf"], thr=1000,
                         n_draw=1)
        pc = d["classes"]
        assert (pc.kcond0, pc.kcond, pc.kpred) == (out["kcond0"][k], out["kcond"][k], out["kpred"][k])
        assert pc.good.sum() == out["kcond"][k] and pc.hidden.sum() == out["kpred"][k]
        # the single-star path reproduces the tiled batch result
        assert d["result"].dcflux == pytest.approx(float(out["dcflux"][k]), rel=2e-3)


def test_seeded_runs_reproduce_and_threads_do_not_matter(example):
    ex = example
    args = (ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"], ex["dq"])
    a = cc.process_ccd(*args, thr=1000, seed=3, threads=1)
    b = cc.process_ccd(*args, thr=1000, seed=3, threads=2)
    c = cc.process_ccd(*args, thr=1000, seed=4, threads=2)
    for name in cc.OUTPUT_COLUMNS:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["dcflux"], c["dcflux"])


def test_tiling_invariance(example):
    ex = example
    args = (ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"], ex["dq"])
    one = cc.process_ccd(*args, thr=1000, max_memory=4 << 30, threads=2)
    many = cc.process_ccd(*args, thr=1000, max_memory=60 << 20, threads=2)
    m1, m2 = one.meta["cloudcov"], many.meta["cloudcov"]
    assert m1["nstrips"] == 1 and m2["nstrips"] >= 2
    # stack values written: one strip sweeps the boxcar-output box of every stamp centre,
    # (row span + Np) x (column span + Np) pixels; more strips sweep their overlaps again
    R, C = (np.rint(np.asarray(ex["catalog"][k], float)).astype(int) for k in ("x", "y"))
    Np = m1["Np"]
    assert m1["stack_values"] == (np.ptp(R) + Np) * (np.ptp(C) + Np) * Np * (2 * Np - 1)
    assert m2["stack_values"] > m1["stack_values"]
    for name in FLOATS:
        np.testing.assert_allclose(many[name], one[name], rtol=1e-6, atol=1e-6 * np.abs(one[name]).max())
    for name in ("kcond0", "kcond", "kpred", "dnt"):
        np.testing.assert_array_equal(many[name], one[name])


def synthetic_ccd(rng, shape=(260, 200), n=25, sky_level=800.0, gain=4.0, offimage=False):
    h = 16
    y, x = np.mgrid[-h:h + 1, -h:h + 1]
    psf = np.exp(-(x ** 2 + y ** 2) / (2 * 1.7 ** 2))
    psf /= psf.sum()
    rows = rng.uniform(10, shape[0] - 10, n)
    cols = rng.uniform(10, shape[1] - 10, n)
    if offimage:
        rows[0], cols[0] = -2.0, 50.0
    flux = rng.uniform(3e3, 3e4, n)
    sky = np.full(shape, sky_level)
    model = sky.copy()
    for r, c, f in zip(rows, cols, flux):
        R, C = int(np.rint(r)), int(np.rint(c))
        r0, r1, c0, c1 = max(0, R - h), min(shape[0], R + h + 1), max(0, C - h), min(shape[1], C + h + 1)
        if r0 < r1 and c0 < c1:
            model[r0:r1, c0:c1] += f * psf[r0 - R + h:r1 - R + h, c0 - C + h:c1 - C + h]
    image = rng.poisson(model * gain) / gain
    # x = row (crowdsource), recorded as cloudcov's readers do
    return (image, model, sky, Table({"x": rows, "y": cols, "flux": flux},
                                     meta={"cloudcov_convention": "crowdsource"}), psf, gain)


def test_flat_background_changes_little(rng):
    image, model, sky, cat, psf, gain = synthetic_ccd(rng)
    out = cc.process_ccd(image, model, sky, cat, psf, gain, threads=2)
    ok = out["dnt"] == 0
    assert ok.sum() >= 20
    ratio = out["dcflux"][ok] / out["dcflux_diag"][ok]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)
    # the correction is small compared with the error bar
    assert np.median(np.abs(out["cflux"][ok] - out["flux"][ok]) / out["dcflux"][ok]) < 1.0
    assert np.median(np.abs(out["cflux"][ok] / out["flux"][ok] - 1)) < 0.05


def test_conventions_and_offimage_stars(rng):
    image, model, sky, cat, psf, gain = synthetic_ccd(rng, offimage=True)
    a = cc.process_ccd(image, model, sky, cat, psf, gain, threads=2)
    # the star centred 2 rows above the image is measured: its stamp overlaps the image, the
    # off-image part is masked padding, and the solve is regular
    assert np.isfinite(a["dcflux"][0]) and a["dnt"][0] & 64 == 0 and a["dnt"][0] >= 0
    assert 4 * 33 <= a["kcond"][0] < np.median(a["kcond"])
    swapped = Table({"x": cat["y"], "y": cat["x"], "flux": cat["flux"]})
    b = cc.process_ccd(image, model, sky, swapped, psf, gain, threads=2, convention="photutils")
    for name in cc.OUTPUT_COLUMNS:
        np.testing.assert_array_equal(a[name], b[name])
    # a dict and a structured array give the same result
    c = cc.process_ccd(image, model, sky, {k: np.asarray(cat[k]) for k in cat.colnames}, psf, gain,
                       threads=2, convention="crowdsource")
    np.testing.assert_array_equal(a["cflux"], c["cflux"])


def test_empty_catalogue(rng):
    image, model, sky, cat, psf, gain = synthetic_ccd(rng, n=3)
    out = cc.process_ccd(image, model, sky, cat[:0], psf, gain)
    assert len(out) == 0 and set(cc.OUTPUT_COLUMNS) <= set(out.colnames)
    for name, dt in cc.OUTPUT_COLUMNS.items():
        assert out[name].dtype == dt


def test_callable_psf_matches_stamp(rng):
    image, model, sky, cat, psf, gain = synthetic_ccd(rng, n=6)
    from cloudcov.psf import crop_or_pad
    a = cc.process_ccd(image, model, sky, cat, psf, gain, threads=1)
    b = cc.process_ccd(image, model, sky, cat, lambda r, c, n: crop_or_pad(psf, n), gain, threads=1)
    np.testing.assert_array_equal(a["cflux"], b["cflux"])


def test_bad_inputs(rng):
    image, model, sky, cat, psf, gain = synthetic_ccd(rng, n=4)
    with pytest.raises(ValueError, match=r"model.shape"):
        cc.process_ccd(image, model[:-1], sky, cat, psf, gain)
    with pytest.raises(ValueError, match=r"sky.shape"):
        cc.process_ccd(image, model, sky[:, :-1], cat, psf, gain)
    with pytest.raises(ValueError, match=r"dq.shape"):
        cc.process_ccd(image, model, sky, cat, psf, gain, dq=np.zeros((3, 3), np.int16))
    with pytest.raises(ValueError, match="gain"):
        cc.process_ccd(image, model, sky, cat, psf, 0.0)
    bad_model = model.copy()
    bad_model[5, 5] = np.nan
    with pytest.raises(ValueError, match="model: contains"):
        cc.process_ccd(image, bad_model, sky, cat, psf, gain)
    nan_image = image.copy()
    nan_image[5, 5] = np.nan
    with pytest.raises(ValueError, match="image: contains 1 NaN"):
        cc.process_ccd(nan_image, model, sky, cat, psf, gain)
    dq = np.zeros(image.shape, np.int16)
    dq[5, 5] = 1     # a flagged NaN pixel is fine
    cc.process_ccd(nan_image, model, sky, cat, psf, gain, dq=dq)
    with pytest.raises(ValueError, match="no position/flux columns"):
        cc.process_ccd(image, model, sky, Table({"x": cat["x"], "y": cat["y"]}), psf, gain)
    with pytest.raises(ValueError, match="convention"):
        cc.process_ccd(image, model, sky, cat, psf, gain, convention="fits")
    with pytest.raises(ValueError, match="Np"):
        cc.process_ccd(image, model, sky, cat, psf, gain, Np=32)
    with pytest.raises(ValueError, match="psf"):
        cc.process_ccd(image, model, sky, cat, psf[:-1], gain)
    with pytest.warns(cc.CloudCovWarning, match="negative"):
        neg = cc.process_ccd(image, model, sky, cat, psf, -gain)
    pos = cc.process_ccd(image, model, sky, cat, psf, gain)
    np.testing.assert_array_equal(neg["cflux"], pos["cflux"])


def test_cli_demo(tmp_path, capsys):
    from astropy.table import Table as T

    from cloudcov.cli import main
    assert main(["demo", "--out", str(tmp_path), "--threads", "2"]) == 0
    text = capsys.readouterr().out
    assert "49 stars processed" in text
    cat = cc.io.read_fits_table(tmp_path / "horsehead_lpi.fits")
    assert len(cat) == 49 and "cflux" in cat.colnames
    raw = T.read(tmp_path / "horsehead_lpi.fits")
    np.testing.assert_array_equal(np.asarray(raw["dnt"]).astype(int), np.asarray(cat["dnt"]).astype(int))
    assert cat["dnt"].dtype == np.int8 and np.all(cat["dnt"] & 8)   # bits survive the file
    assert (tmp_path / "horsehead_lpi.png").stat().st_size > 10_000
    assert not list(tmp_path.glob("*.tmp"))


def test_float32_matches_float64_on_real_example(example, example_out):
    """The float32 solves the guard accepts (estimated kappa * eps <= 1e-2) agree with float64
    far below the error bars."""
    ex = example
    o64 = cc.process_ccd(ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"],
                         ex["dq"], thr=1000, threads=2, dtype="float64")
    o32 = example_out
    kept = (np.asarray(o32["dnt"]) & 4) == 0
    assert kept.sum() >= 40
    np.testing.assert_allclose(o32["dcflux"][kept], o64["dcflux"][kept], rtol=1e-5)
    assert np.max(np.abs(o32["cflux"] - o64["cflux"]) / o64["dcflux"]) < 1e-3


def test_guard_rare_and_float32_accurate_on_flat_field():
    """Flat sky + Poisson noise with PSF stars (a quarter of the 768 x 768 / 300-star field of
    benchmarks/bench_guard.py): the condition guard re-solves <= 5% of the stars in float64,
    and the float32 solves it accepts agree with float64 to 1e-3 sigma in cflux and 1e-5
    relative in dcflux."""
    image, model, sky, cat, psf, gain = synthetic_ccd(np.random.default_rng(7), shape=(384, 384), n=75)
    args = (image, model, sky, cat, psf, gain)
    o32 = cc.process_ccd(*args, threads=2)
    o64 = cc.process_ccd(*args, threads=2, dtype="float64")
    dnt = np.asarray(o32["dnt"]).astype(int)
    assert np.mean(dnt & 4 != 0) <= 0.05
    kept = (dnt & 68) == 0
    assert kept.sum() >= 60
    np.testing.assert_allclose(o32["dcflux"][kept], o64["dcflux"][kept], rtol=1e-5)
    assert np.max(np.abs(o32["cflux"][kept] - o64["cflux"][kept]) / o64["dcflux"][kept]) < 1e-3


def test_flux_floor_scales_with_units(rng):
    """Multiplying the image by s and thr, outthr, flux_floor by s leaves Z-like outputs
    unchanged (the DECaPS2 masks carry over to other units)."""
    image, model, sky, cat, psf, gain = synthetic_ccd(rng, n=6)
    a = cc.process_ccd(image, model, sky, cat, psf, gain, threads=1, sky_noise=False, dtype="float64")
    s = 7.0
    cat2 = cat.copy()
    cat2["flux"] = cat["flux"] * s
    b = cc.process_ccd(image * s, model * s, sky * s, cat2, psf, gain / s, threads=1,
                       sky_noise=False, dtype="float64", thr=20 * s, outthr=20000 * s,
                       flux_floor=1e4 * s)
    np.testing.assert_array_equal(a["kpred"], b["kpred"])
    np.testing.assert_allclose(b["dcflux"], s * a["dcflux"], rtol=1e-5)
    np.testing.assert_allclose(b["cflux"], s * a["cflux"], rtol=1e-5)


def _poison_ring(monkeypatch, module):
    """Make the strip sweeps of ``module`` start from a NaN-filled stack ring, so that a star
    reading an entry the sweep did not write gets NaN."""
    from cloudcov.tiling import sweep_plan

    def poisoned(*args, **kwargs):
        sweeps, ring, bim = sweep_plan(*args, **kwargs)
        ring[...] = np.nan
        return sweeps, ring, bim
    monkeypatch.setattr(module, "sweep_plan", poisoned)


@pytest.mark.parametrize("kw", [dict(thr=1000, max_memory=60 << 20), dict(thr=1000, dtype="float64"),
                                dict(thr="auto", dtype="float64")])
@pytest.mark.parametrize("switch", ["stack_write_read_only", "stack_write_windows"])
def test_stack_writes_only_what_stamps_read(example, monkeypatch, kw, switch):
    """The sweep writes only the ring entries the stars' stamps read (a pixel pair at its
    earlier pixel), and in each column they read only the cache lines holding the slots they
    read (overlapping stamps: the union of theirs): from a NaN-poisoned ring, every output is
    bitwise the same as with every entry written (stack_write_read_only off) or every slot of
    the read columns written (stack_write_windows off), and fewer values were written."""
    import cloudcov.lpi as lpi
    _poison_ring(monkeypatch, lpi)
    ex = example
    args = (ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"], ex["dq"])
    few = cc.process_ccd(*args, threads=2, **kw)
    with core_switch(switch, False):
        more = cc.process_ccd(*args, threads=2, **kw)
    mf, mm = few.meta["cloudcov"], more.meta["cloudcov"]
    assert mm["stack_values"] == mf["stack_values"]
    if switch == "stack_write_read_only":   # every entry computed and written
        assert mm["stack_values_written"] == mm["stack_values"]
        assert 0 < mf["stack_values_written"] < 0.25 * mf["stack_values"]
    else:                                    # every slot of the read columns
        assert 0 < mf["stack_values_written"] < 0.9 * mm["stack_values_written"]
    assert np.sum((np.asarray(few["dnt"]).astype(int) & 64) == 0) >= 45
    for name in FLOATS + ("kcond0", "kcond", "kpred", "dnt"):
        np.testing.assert_array_equal(np.asarray(few[name]), np.asarray(more[name]), err_msg=name)


def test_impute_stack_writes_only_what_stamps_read(example, monkeypatch):
    """LPI imputation's sweep (same ring, same reads) from a NaN-poisoned ring: bitwise the
    same image and std as with every entry written."""
    import cloudcov.tiling as tiling
    _poison_ring(monkeypatch, tiling)   # impute imports sweep_plan from tiling when called
    ex = example
    few = cc.impute(ex["image"], ex["dq"] != 0, method="lpi", rng=0)
    with core_switch("stack_write_read_only", False):
        full = cc.impute(ex["image"], ex["dq"] != 0, method="lpi", rng=0)
    with core_switch("stack_write_windows", False):   # every slot of the read columns
        cols = cc.impute(ex["image"], ex["dq"] != 0, method="lpi", rng=0)
    assert np.isfinite(few.image).all()
    for other in (full, cols):
        np.testing.assert_array_equal(few.image, other.image)
        np.testing.assert_array_equal(few.std, other.std)
