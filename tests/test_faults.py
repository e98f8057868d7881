"""process_ccd and kernel faults found by trying the pipeline as a hostile user would (issue 8).

Each test failed before its fix: far-off or NaN catalogue rows used to pad the image out to
them (x = 3e5 on a 120 x 100 image: 6.3 GB, 35 s) or raise for the whole CCD; huge thread
counts allocated per-thread workspaces; errors did not name their cause; the strip kernel's
bounds checks overflowed int64 (found with -fsanitize=signed-integer-overflow).
"""
import os
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

import cloudcov as cc
from cloudcov import _core
from cloudcov.flags import decode_dnt

from conftest import correlated_field

NOT_MEASURED = 128


def small_ccd(seed=3, shape=(120, 100), n=6):
    rng = np.random.default_rng(seed)
    h = 6
    d = np.arange(-h, h + 1)
    psf = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * 1.5 ** 2))
    psf /= psf.sum()
    sky = np.full(shape, 300.0)
    rows = rng.uniform(15, shape[0] - 15, n)
    cols = rng.uniform(15, shape[1] - 15, n)
    flux = rng.uniform(2e3, 2e4, n)
    model = sky.copy()
    for r, c, f in zip(rows, cols, flux):
        R, C = int(np.rint(r)), int(np.rint(c))
        model[R - h:R + h + 1, C - h:C + h + 1] += f * psf
    image = model - correlated_field(rng, shape, amp=5.0, noise=2.0)
    return image, model, sky, Table({"x": rows, "y": cols, "flux": flux}, meta={"cloudcov_convention": "crowdsource"}), psf, 2.0


KW = dict(Np=9, widx=21, threads=1, seed=0)


def _run(image, model, sky, cat, psf, gain, **kw):
    return cc.process_ccd(image, model, sky, cat, psf, gain, **{**KW, **kw})


@pytest.fixture(scope="module")
def ccd():
    return small_ccd()


@pytest.fixture(scope="module")
def clean(ccd):
    return _run(*ccd)


def _with_rows(cat, rows, cols, flux=1e4):
    extra = Table({"x": np.asarray(rows, float), "y": np.asarray(cols, float),
                   "flux": np.full(len(rows), flux)}, meta={"cloudcov_convention": "crowdsource"})
    from astropy.table import vstack
    return vstack([cat, extra])


@pytest.mark.parametrize("far", [3e5, 1e6, -1e12, 1e300])
def test_far_off_catalogue_rows_do_not_pad_the_image(ccd, clean, far):
    image, model, sky, cat, psf, gain = ccd
    cat2 = _with_rows(cat, [far, 50.0], [40.0, far])
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.warns(cc.CloudCovWarning, match=r"2 of 8 stars not measured: 2 whose 9x9 stamp "
                      r"does not overlap the 120x100 image \(rows 6, 7\)"):
        out = _run(image, model, sky, cat2, psf, gain)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 60e6 and seconds < 20        # was 6.3 GB and 35 s at 3e5; MemoryError at 1e6
    # the far rows: NaN floats, zero counts, dnt bit 128 (the int8 sign bit)
    for name in ("cflux", "dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2"):
        assert np.all(np.isnan(out[name][6:])), name
    for name in ("kcond0", "kcond", "kpred"):
        assert np.all(out[name][6:] == 0), name
    assert np.all(out["dnt"][6:] == np.int8(-128)) and np.all(out["dnt"][6:] < 0)
    assert decode_dnt(out["dnt"])["not_measured"].tolist() == [False] * 6 + [True] * 2
    # and the other stars are unchanged, bit for bit
    for name in cc.OUTPUT_COLUMNS:
        np.testing.assert_array_equal(out[name][:6], clean[name], err_msg=name)
    assert out.meta["cloudcov"]["n_not_measured"] == 2


def test_stamp_overlap_boundary(ccd):
    """A stamp with one pixel on the image is measured; one pixel further out it is not."""
    image, model, sky, cat, psf, gain = ccd
    h = 4                                    # Np = 9
    rows = [-h, -h - 1, 119 + h, 120 + h, 50, 50, 50.0, 50.0]
    cols = [50, 50, 50, 50, -h, -h - 0.6, 99 + h + 0.4, 99 + h + 0.6]   # rint: -4, -5, 103, 104
    cat2 = _with_rows(cat[:0], rows, cols)
    with pytest.warns(cc.CloudCovWarning, match=r"4 of 8 stars not measured.*rows 1, 3, 5, 7\)"):
        out = _run(image, model, sky, cat2, psf, gain)
    measured = np.asarray(out["dnt"]) >= 0
    assert measured.tolist() == [True, False, True, False, True, False, True, False]
    assert np.all(out["kcond"][measured] > 0)


def test_nan_inf_and_masked_catalogue_entries(ccd, clean):
    image, model, sky, cat, psf, gain = ccd
    cat2 = _with_rows(cat, [np.nan, 40.0, 40.0, 60.0], [40.0, np.inf, 50.0, 50.0])
    cat2["flux"][8] = -np.inf
    cat2["y"] = MaskedColumn(cat2["y"], mask=[False] * 9 + [True])
    with pytest.warns(cc.CloudCovWarning, match=r"4 of 10 stars not measured: 4 with NaN, "
                      r"infinite or masked x, y or flux \(rows 6, 7, 8, 9\)"):
        out = _run(image, model, sky, cat2, psf, gain)
    assert np.all(out["dnt"][6:] == np.int8(-128))
    assert np.all(np.isnan(out["dcflux"][6:]))
    for name in cc.OUTPUT_COLUMNS:
        np.testing.assert_array_equal(out[name][:6], clean[name], err_msg=name)


def test_no_star_on_the_image(ccd):
    image, model, sky, cat, psf, gain = ccd
    with pytest.warns(cc.CloudCovWarning, match="2 of 2 stars not measured"):
        out = _run(image, model, sky, _with_rows(cat[:0], [1e9, np.nan], [0.0, 0.0]), psf, gain)
    assert np.all(out["dnt"] == np.int8(-128)) and np.all(np.isnan(out["cflux"]))
    for name, dt in cc.OUTPUT_COLUMNS.items():
        assert out[name].dtype == dt


def test_bright_star_off_the_image_still_masks_its_wings(ccd):
    """Not measured, but a bright star just beyond the edge still masks the image pixels its
    static-PSF core covers (CloudCovErr.jl gen_mask_staticPSF2! clips, it does not skip)."""
    image, model, sky, cat, psf, gain = ccd
    big = np.zeros((41, 41))
    big[20 - 6:20 + 7, 20 - 6:20 + 7] = psf
    big += 1e-4 * np.exp(-((np.arange(41) - 20)[:, None] ** 2 + (np.arange(41) - 20)[None, :] ** 2) / 50.0)
    cat2 = _with_rows(cat[:0], [-8.0], [50.0], flux=1e7)
    with pytest.warns(cc.CloudCovWarning, match="1 of 1 stars not measured"):
        prep = cc.prepare_ccd(image, model, sky, cat2, big, gain, Np=9, widx=21)
    assert prep.mask[0:5, 45:56].all() and not prep.measured[0]


def test_threads_capped_at_available_cores(ccd, clean):
    image, model, sky, cat, psf, gain = ccd
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tracemalloc.start()
    with pytest.warns(cc.CloudCovWarning, match=rf"threads: 100000 requested but only {cores} cores"):
        out = _run(image, model, sky, cat, psf, gain, threads=10**5)
    tracemalloc.stop()
    assert out.meta["cloudcov"]["threads"] == cores
    for name in cc.OUTPUT_COLUMNS:
        np.testing.assert_array_equal(out[name], clean[name])
    with pytest.warns(cc.CloudCovWarning, match="threads: 100000 requested"):
        cc.shift_stack(np.ones((20, 20)), 3, 5, threads=10**5)


def test_kernel_thread_count_does_not_size_workspaces():
    """The kernel itself never makes more per-thread workspaces than cores or stars: with
    Np = 33 and threads = 10**5 it used to allocate 3.1 GB (run in a child process to read its
    peak memory)."""
    code = """
import sys, numpy as np
from cloudcov import _core
from cloudcov.flags import decode_dnt
Np, w, n = 33, 3, 40
img = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
orow = n - w + 1
r = _core.lpi_strip(img, 0, n, 0, n, orow, np.empty(Np * orow * orow * (2 * Np - 1), np.float32),
                    np.empty(orow * orow, np.float32), Np, w, w, img, np.abs(img),
                    np.zeros((n, n), np.uint8), np.array([20], np.int64), np.array([20], np.int64),
                    np.ones((1, Np, Np), np.float32), np.array([1e5]), np.zeros((Np, Np), np.uint8),
                    20.0, False, True, True, 10**5, 1e4)
# VmHWM, not ru_maxrss: a forked child's ru_maxrss starts at its parent's (pytest's) peak
print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
"""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    peak_mib = int(res.stdout.split()[-1]) / 1024
    assert peak_mib < 400, peak_mib


def test_all_masked_image_names_the_masks(ccd):
    image, model, sky, cat, psf, gain = ccd
    nan = np.full(image.shape, np.nan)
    with pytest.raises(ValueError, match=r"every one of the 12000 pixels is masked.*dq flags 12000"):
        _run(nan, model, sky, cat, psf, gain, dq=np.ones(image.shape, np.int16))
    with pytest.raises(ValueError, match=r"dq flags 0.*\|model - image\| > outthr \(= 1e-300\) "
                       r"or non-finite: 12000"):
        _run(image, model, sky, cat, psf, gain, outthr=1e-300)


@pytest.mark.parametrize("kw, msg", [
    (dict(widx=129), r"widx: 129 pixels is larger than the image \(120 rows"),
    (dict(widx=21, widy=101), r"widy: 101 pixels is larger than the image \(100 columns"),
    (dict(Np=121, widx=21), r"Np: 121 pixels is larger than the image \(120 rows"),
    (dict(widx=1, widy=1), r"widx, widy: the N/\(N-1\) covariance normalisation needs N = widx \* widy >= 2"),
])
def test_geometry_refused(ccd, kw, msg):
    image, model, sky, cat, psf, gain = ccd
    with pytest.raises(ValueError, match=msg):
        cc.process_ccd(image, model, sky, cat, psf, gain, threads=1, **kw)


def test_five_by_five_image_is_refused_with_the_reason():
    img = np.ones((5, 5))
    cat = Table({"x": [2.0], "y": [2.0], "flux": [1e4]}, meta={"cloudcov_convention": "crowdsource"})
    with pytest.raises(ValueError, match=r"Np: 33 pixels is larger than the image \(5 rows"):
        cc.process_ccd(img, img, img, cat, np.ones((3, 3)), 1.0)
    with pytest.raises(ValueError, match=r"widx: 129 pixels is larger than the image \(5 rows"):
        cc.process_ccd(img, img, img, cat, np.ones((3, 3)), 1.0, Np=3)


def test_widths_one_by_three_are_fine(ccd):
    """N = 3 samples is legal (tiny but defined); only N = 1 is refused."""
    image, model, sky, cat, psf, gain = ccd
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = cc.process_ccd(image, model, sky, cat, psf, gain, Np=3, widx=1, widy=3, threads=1)
    assert len(out) == 6


# ---- the strip kernel's bounds checks with int64-extreme values ------------------------------

NP = 5
BIG, SMALL = 2**63 - 1, -2**63


def _strip_args():
    rng = np.random.default_rng(1)
    img = rng.standard_normal((30, 30))
    orow = 30 - 3 + 1
    return dict(image=img, in_r0=0, in_r1=30, in_c0=0, in_c1=30, ring_rows=orow,
                ring=np.empty(NP * orow * orow * (2 * NP - 1)), bimage_buf=np.empty(orow * orow),
                Np=NP, wrow=3, wcol=3, resid=img, stars=np.abs(img), bad=np.zeros((30, 30), np.uint8),
                rows=np.array([15], np.int64), cols=np.array([14], np.int64), psf=np.ones((1, NP, NP)),
                flux=np.array([1e5]), circmask=np.zeros((NP, NP), np.uint8), thr=20.0,
                julia_compat=False, diag_on=True, guard=True, nthreads=1, flux_floor=1e4)


def _strip_list(args, **kw):
    return list({**args, **kw}.values())


def test_strip_kernel_valid_call():
    r = _core.lpi_strip(*_strip_list(_strip_args()))
    assert np.isfinite(r["dcflux"][0])


@pytest.mark.parametrize("kw, msg", [
    (dict(wrow=BIG), r"strip smaller than one stamp plus its boxcar window"),   # wrow + Np - 1 wrapped
    (dict(wcol=BIG), r"strip smaller than one stamp plus its boxcar window"),
    (dict(wrow=BIG - 2, wcol=BIG), r"strip smaller than one stamp plus its boxcar window"),
    (dict(in_r1=BIG), r"strip rows/cols must lie inside the image"),
    (dict(in_r0=SMALL), r"strip rows/cols must lie inside the image"),
    (dict(ring_rows=BIG), r"ring_rows must be in \[Np, strip output rows\]"),
    (dict(rows=np.array([BIG], np.int64)), r"star 0 at padded row 9223372036854775807 is outside the padded image"),
    (dict(rows=np.array([SMALL], np.int64)), r"star 0 at padded row -9223372036854775808 is outside"),
    (dict(rows=np.array([15, BIG], np.int64), cols=np.array([14, 14], np.int64),
          psf=np.ones((2, NP, NP)), flux=np.array([1e5, 1e5])), r"star 1 at padded row 9223372036854775807"),
    (dict(cols=np.array([BIG], np.int64)), r"its stamp leaves the padded image or the tile"),
    (dict(cols=np.array([SMALL], np.int64)), r"its stamp leaves the padded image or the tile"),
])
def test_strip_kernel_extreme_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _core.lpi_strip(*_strip_list(_strip_args(), **kw))


def test_build_cov_refuses_other_widths_than_the_stack():
    x = np.random.default_rng(5).standard_normal((30, 30))
    b, s = cc.shift_stack(x, 5, 7, 9)
    assert s.widths == (7, 9) and s[:, 2:].widths == (7, 9)
    cov, mu = cc.build_cov(b, s, 6, 6, 5, 7, 9)
    ref, _ = cc.local_covariance(x, 6 + 3 + 2 - 2, 6 + 4 + 2 - 2, 5, 7, 9)
    np.testing.assert_allclose(cov, ref, rtol=1e-12)
    for widx, widy in ((9, 7), (7, None), (7, 7), (5, 9)):
        with pytest.raises(ValueError, match=r"differ from the boxcar widths \(7, 9\) the stack"):
            cc.build_cov(b, s, 6, 6, 5, widx, widy)
