"""Bad input raises ValueError/TypeError whose message names the argument and the problem.

One block per public function, then the private ``cloudcov._core`` kernels called directly:
those must raise ValueError (std::invalid_argument) or TypeError (pybind11 argument
conversion), never crash or read out of bounds.
"""
from __future__ import annotations

import numpy as np
import pytest

import cloudcov as cc
from cloudcov import _core

RNG = np.random.default_rng(7)
IMG = RNG.standard_normal((24, 24))
NP, W = 3, 5  # small stamp and boxcar used throughout


def noncontig(a):
    out = np.repeat(a, 2, axis=-1)[..., ::2]
    assert not out.flags.c_contiguous and out.shape == a.shape
    return out


def with_nan(a, value=np.nan):
    a = a.copy()
    a.flat[a.size // 2] = value
    return a


def spd(n, seed=0):
    a = np.random.default_rng(seed).standard_normal((n, 2 * n))
    return a @ a.T / (2 * n) + np.eye(n)


# ---- array checks shared by every image-taking function ---------------------------------
BAD_IMAGES = [
    (IMG[0], ValueError, r"image: expected a 2-D array"),
    (IMG[None], ValueError, r"image: expected a 2-D array"),
    (IMG.astype(np.int16), TypeError, r"image: expected float32 or float64, got dtype int16"),
    (IMG.astype(complex), TypeError, r"image: expected float32 or float64, got dtype complex128"),
    (IMG.astype(object), TypeError, r"image: expected float32 or float64, got dtype object"),
    (IMG.astype(np.float16), TypeError, r"image: expected float32 or float64, got dtype float16"),
    (noncontig(IMG), ValueError, r"image: expected a C-contiguous array"),
    (IMG[:, :0], ValueError, r"image: empty array"),
    (with_nan(IMG), ValueError, r"image: contains 1 NaN or infinite"),
    (with_nan(IMG, np.inf), ValueError, r"image: contains 1 NaN or infinite"),
    (IMG.tolist(), TypeError, r"image: expected a numpy.ndarray, got list"),
]
BAD_IDS = ["1d", "3d", "int16", "complex", "object", "float16", "noncontig", "empty", "nan", "inf",
           "list"]


@pytest.mark.parametrize("bad, exc, msg", BAD_IMAGES, ids=BAD_IDS)
def test_boxcar_bad_image(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.boxcar(bad, 3)


@pytest.mark.parametrize("bad, exc, msg", BAD_IMAGES, ids=BAD_IDS)
def test_shift_stack_bad_image(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.shift_stack(bad, NP, W)


@pytest.mark.parametrize("bad, exc, msg", BAD_IMAGES, ids=BAD_IDS)
def test_local_covariance_bad_image(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.local_covariance(bad, 12, 12, NP, W)


@pytest.mark.parametrize("bad, exc, msg", [b for b in BAD_IMAGES if "NaN" not in b[2]],
                         ids=[i for i, b in zip(BAD_IDS, BAD_IMAGES) if "NaN" not in b[2]])
def test_prelim_infill_bad_image(bad, exc, msg):
    mask = np.zeros(np.shape(bad)[:2] if np.ndim(bad) >= 2 else (24, 24), bool)
    with pytest.raises(exc, match=msg):
        cc.prelim_infill(bad, mask)


@pytest.mark.parametrize("bad, exc, msg", BAD_IMAGES, ids=BAD_IDS)
def test_add_sky_noise_bad_image(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.add_sky_noise(bad, np.zeros((24, 24), bool), np.ones((24, 24)), 4.0)


# ---- boxcar / widths ----------------------------------------------------------------------
@pytest.mark.parametrize("widx, widy, exc, msg", [
    (4, None, ValueError, r"widx: must be odd, got 4"),
    (3, 2, ValueError, r"widy: must be odd, got 2"),
    (0, None, ValueError, r"widx: must be >= 1, got 0"),
    (-3, None, ValueError, r"widx: must be >= 1, got -3"),
    (25, None, ValueError, r"widx: window 25 larger than the image \(24 rows\)"),
    (3, 27, ValueError, r"widy: window 27 larger than the image \(24 columns\)"),
    (2**70 + 1, None, ValueError, r"widx: must be <= 2147483647"),
    (3.0, None, TypeError, r"widx: expected an integer, got 3.0"),
    (True, None, TypeError, r"widx: expected an integer, got True"),
    ("3", None, TypeError, r"widx: expected an integer"),
])
def test_boxcar_bad_widths(widx, widy, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.boxcar(IMG, widx, widy)


# ---- stack_value / circle_mask: Np ------------------------------------------------
BAD_NP = [
    (4, ValueError, r"Np must be odd and >= 3, got 4"),
    (1, ValueError, r"Np must be odd and >= 3, got 1"),
    (-3, ValueError, r"Np must be odd and >= 3, got -3"),
    (0, ValueError, r"Np must be odd and >= 3, got 0"),
    (2**61 + 1, ValueError, r"Np must be <= 1023"),
    (3.0, TypeError, r"Np: expected an integer, got 3.0"),
    (None, TypeError, r"Np: expected an integer, got None"),
    (True, TypeError, r"Np: expected an integer, got True"),
]


@pytest.mark.parametrize("Np, exc, msg", BAD_NP)
def test_circle_mask_bad_Np(Np, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.circle_mask(Np)


@pytest.mark.parametrize("Np, exc, msg", BAD_NP)
def test_shift_stack_bad_Np(Np, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.shift_stack(IMG, Np, W)


@pytest.mark.parametrize("rlim, exc, msg", [
    (np.nan, ValueError, r"rlim: must be finite, got nan"),
    (np.inf, ValueError, r"rlim: must be finite, got inf"),
    (10**400, ValueError, r"rlim: must be finite"),
    ("4", TypeError, r"rlim: expected a real number"),
    (1j, TypeError, r"rlim: expected a real number"),
])
def test_circle_mask_bad_rlim(rlim, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.circle_mask(5, rlim)


STACK3 = np.zeros((3, 4, 4, 5))


@pytest.mark.parametrize("drow, dcol, msg", [
    (3, 0, r"drow: must be <= 2, got 3"),
    (-3, 0, r"drow: must be >= -2, got -3"),
    (0, 3, r"dcol: must be <= 2, got 3"),
    (0, -2**70, r"dcol: must be >= -2"),
])
def test_stack_value_out_of_range(drow, dcol, msg):
    with pytest.raises(ValueError, match=msg):
        cc.stack_value(STACK3, 1, 1, drow, dcol)


def test_stack_value_bad_types_and_positions():
    with pytest.raises(TypeError, match=r"drow: expected an integer, got 1.0"):
        cc.stack_value(STACK3, 1, 1, 1.0, 0)
    with pytest.raises(TypeError, match=r"dcol: expected an integer, got None"):
        cc.stack_value(STACK3, 1, 1, 0, None)
    with pytest.raises(ValueError, match=r"position outside"):
        cc.stack_value(STACK3, 0, 0, -1, 0)
    with pytest.raises(ValueError, match=r"stack: expected shape"):
        cc.stack_value(np.zeros((3, 4, 4, 4)), 1, 1, 0, 0)
    with pytest.raises(ValueError, match=r"stack: expected a 4-D array"):
        cc.stack_value(np.zeros((4, 4, 5)), 1, 1, 0, 0)


# ---- shift_stack: threads and out= ---------------------------------------------------------
@pytest.mark.parametrize("threads, exc, msg", [
    (-1, ValueError, r"threads: must be >= 0, got -1"),
    (2**40, ValueError, r"threads: must be <= 2147483647"),
    (1.5, TypeError, r"threads: expected an integer, got 1.5"),
])
def test_shift_stack_bad_threads(threads, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.shift_stack(IMG, NP, W, threads=threads)


def _good_out(dtype=np.float64):
    shp = (24 - W + 1, 24 - W + 1)
    return np.zeros(shp, dtype), np.zeros((NP,) + shp + (2 * NP - 1,), dtype)


def test_shift_stack_out_ok():
    b, s = _good_out()
    rb, rs = cc.shift_stack(IMG, NP, W, out=(b, s))
    assert rb is b and rs is s
    eb, es = cc.shift_stack(IMG, NP, W)
    np.testing.assert_array_equal(b, eb)
    np.testing.assert_array_equal(s, es)


def _ro(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("make_out, exc, msg", [
    (lambda b, s: (b[:-1], s), ValueError, r"out\[0\]: expected a writeable C-contiguous float64 array of shape \(20, 20\)"),
    (lambda b, s: (b, s[..., :-1]), ValueError, r"out\[1\]: expected a writeable C-contiguous float64 array of shape \(3, 20, 20, 5\)"),
    (lambda b, s: (b.astype(np.float32), s), ValueError, r"out\[0\]: expected a writeable C-contiguous float64"),
    (lambda b, s: (b, s.astype(np.float32)), ValueError, r"out\[1\]: expected a writeable C-contiguous float64"),
    (lambda b, s: (np.asfortranarray(b), s), ValueError, r"out\[0\]: expected a writeable C-contiguous"),
    (lambda b, s: (b, np.empty((20, 20, 26))[..., ::2]), ValueError, r"out\[1\]: expected a writeable C-contiguous"),
    (lambda b, s: (_ro(b), s), ValueError, r"out\[0\]: expected a writeable"),
    (lambda b, s: (b.tolist(), s), ValueError, r"out\[0\]: expected a writeable C-contiguous"),
    (lambda b, s: (b, s, b), TypeError, r"out: expected a tuple \(bimage, stack\)"),
    (lambda b, s: b, TypeError, r"out: expected a tuple \(bimage, stack\)"),
    (lambda b, s: 3, TypeError, r"out: expected a tuple \(bimage, stack\)"),
])
def test_shift_stack_bad_out(make_out, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.shift_stack(IMG, NP, W, out=make_out(*_good_out()))


# ---- build_cov -------------------------------------------------------------------------------
BIM, STK = cc.shift_stack(IMG, NP, W)  # (20, 20) and (3, 20, 20, 5)


@pytest.mark.parametrize("args, exc, msg", [
    ((BIM[0], STK), ValueError, r"bimage: expected a 2-D array"),
    ((BIM, STK[0]), ValueError, r"stack: expected a 4-D array"),
    ((BIM.astype(np.int16), STK), TypeError, r"bimage: expected float32 or float64, got dtype int16"),
    ((BIM, STK.astype(complex)), TypeError, r"stack: expected float32 or float64, got dtype complex128"),
    ((BIM, STK.astype(np.float32)), TypeError, r"stack: dtype float32 != bimage dtype float64"),
    ((noncontig(BIM), STK), ValueError, r"bimage: expected a C-contiguous array"),
    ((BIM, np.ascontiguousarray(STK[:, :, ::-1])[:, ::2]), ValueError, r"stack: expected a C-contiguous array"),
    ((BIM, STK[:, :, :19].copy()), ValueError, r"stack: shape \(3, 20, 19, 5\) does not match bimage \(20, 20\) and Np=3"),
    ((BIM, STK[..., :4].copy()), ValueError, r"stack: shape \(3, 20, 20, 4\) does not match"),
])
def test_build_cov_bad_arrays(args, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.build_cov(*args, 5, 5, NP, W)


@pytest.mark.parametrize("row, col", [(0, 5), (5, 0), (19, 5), (5, 19), (-1, 5), (2**63, 5),
                                      (5, -2**70)])
def test_build_cov_stamp_leaves(row, col):
    with pytest.raises(ValueError, match=r"\(row, col\) = .*the 3x3 stamp leaves the boxcar image"):
        cc.build_cov(BIM, STK, row, col, NP, W)


def test_build_cov_bad_scalars():
    with pytest.raises(ValueError, match=r"Np must be odd and >= 3, got 4"):
        cc.build_cov(BIM, STK, 5, 5, 4, W)
    with pytest.raises(ValueError, match=r"stack: shape .* does not match bimage .* and Np=5"):
        cc.build_cov(BIM, STK, 5, 5, 5, W)
    with pytest.raises(ValueError, match=r"widx: must be odd, got 4"):
        cc.build_cov(BIM, STK, 5, 5, NP, 4)
    with pytest.raises(ValueError, match=r"widy: must be >= 1, got -1"):
        cc.build_cov(BIM, STK, 5, 5, NP, 5, -1)
    with pytest.raises(ValueError, match=r"widx: must be <= 2147483647"):
        cc.build_cov(BIM, STK, 5, 5, NP, 2**64 + 1)
    with pytest.raises(ValueError, match=r"widx, widy: .* N = widx \* widy >= 2"):
        cc.build_cov(BIM, STK, 5, 5, NP, 1, 1)
    with pytest.raises(TypeError, match=r"row: expected an integer, got 5.0"):
        cc.build_cov(BIM, STK, 5.0, 5, NP, W)
    with pytest.raises(TypeError, match=r"col: expected an integer, got None"):
        cc.build_cov(BIM, STK, 5, None, NP, W)


def test_build_cov_nonfinite_stack_allowed():
    stk = STK.copy()
    stk[0, 0] = np.nan  # far from the stamp: allowed, and not read
    cov, mu = cc.build_cov(BIM, stk, 5, 5, NP, W)
    assert np.all(np.isfinite(cov)) and np.all(np.isfinite(mu))


# ---- local_covariance ------------------------------------------------------------------------
@pytest.mark.parametrize("row, col", [(2, 12), (12, 2), (21, 12), (12, 21), (-12, 12), (2**80, 12)])
def test_local_covariance_stamp_leaves(row, col):
    # half-sizes: (Np-1)//2 + (W-1)//2 = 3 -> valid rows/cols are 3..20 in a 24x24 image
    with pytest.raises(ValueError, match=r"\(row, col\) = .*stamp plus boxcar windows \(half-sizes 3, 3\) leave the image"):
        cc.local_covariance(IMG, row, col, NP, W)


def test_local_covariance_bad_scalars():
    with pytest.raises(ValueError, match=r"Np must be odd and >= 3, got 2"):
        cc.local_covariance(IMG, 12, 12, 2, W)
    with pytest.raises(ValueError, match=r"widx: must be odd, got 6"):
        cc.local_covariance(IMG, 12, 12, NP, 6)
    with pytest.raises(ValueError, match=r"stamp plus boxcar windows .* leave the image"):
        cc.local_covariance(IMG, 12, 12, NP, 31)
    with pytest.raises(ValueError, match=r"widx, widy: .* >= 2"):
        cc.local_covariance(IMG, 12, 12, NP, 1)
    with pytest.raises(TypeError, match=r"row: expected an integer, got 12.5"):
        cc.local_covariance(IMG, 12.5, 12, NP, W)
    # the corners of the valid range work
    for r, c in [(3, 3), (20, 20)]:
        cov, mu = cc.local_covariance(IMG, r, c, NP, W)
        assert cov.shape == (9, 9) and mu.shape == (9,)


# ---- prelim_infill -------------------------------------------------------------------------------
MASK = np.zeros((24, 24), bool)
MASK[10:13, 10:13] = True


def test_prelim_infill_mask_checks():
    with pytest.raises(ValueError, match=r"mask: shape \(24, 23\) != expected \(24, 24\)"):
        cc.prelim_infill(IMG, MASK[:, 1:])
    with pytest.raises(ValueError, match=r"mask: shape \(24,\) != expected \(24, 24\)"):
        cc.prelim_infill(IMG, MASK[0])
    with pytest.raises(TypeError, match=r"mask: expected a boolean or integer mask, got dtype float64"):
        cc.prelim_infill(IMG, MASK.astype(float))
    with pytest.raises(TypeError, match=r"mask: expected a boolean or integer mask, got dtype complex128"):
        cc.prelim_infill(IMG, MASK.astype(complex))
    with pytest.raises(TypeError, match=r"mask: expected a numpy.ndarray, got list"):
        cc.prelim_infill(IMG, MASK.tolist())
    with pytest.raises(ValueError, match=r"mask: every pixel is masked; nothing to infill from"):
        cc.prelim_infill(IMG, np.ones((24, 24), np.uint8))
    # NaN under the mask is fine; outside it is not
    im = IMG.copy()
    im[MASK] = np.nan
    assert np.all(np.isfinite(cc.prelim_infill(im, MASK).image))
    im[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"image: contains NaN or infinite values outside the mask"):
        cc.prelim_infill(im, MASK)
    # non-contiguous masks are fine (copied)
    cc.prelim_infill(IMG, noncontig(MASK))


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(widx=4), ValueError, r"widx: must be odd, got 4"),
    (dict(widx=0), ValueError, r"widx: must be >= 1, got 0"),
    (dict(widy=-5), ValueError, r"widy: must be >= 1, got -5"),
    (dict(widx=2**30 + 1, max_rounds=1), ValueError, r"widx/widy, widmult, max_rounds: the infill windows would grow"),
    (dict(widx=2**70 + 1), ValueError, r"widx: must be <= 2147483647"),
    (dict(widmult=0.0), ValueError, r"widmult: must be > 0, got 0.0"),
    (dict(widmult=-1.4), ValueError, r"widmult: must be > 0"),
    (dict(widmult=np.nan), ValueError, r"widmult: must be finite, got nan"),
    (dict(widmult=1e300), ValueError, r"widx/widy, widmult, max_rounds: the infill window would grow beyond"),
    (dict(widmult=3.0, max_rounds=40), ValueError, r"widx/widy, widmult, max_rounds:"),
    (dict(max_rounds=-1), ValueError, r"max_rounds: must be >= 0, got -1"),
    (dict(max_rounds=1001), ValueError, r"max_rounds: must be <= 1000, got 1001"),
    (dict(max_rounds=2.0), TypeError, r"max_rounds: expected an integer"),
    (dict(min_good=-1), ValueError, r"min_good: must be >= 0, got -1"),
    (dict(min_good=2**40), ValueError, r"min_good: must be <= 2147483647"),
    (dict(widmult="x"), TypeError, r"widmult: expected a real number"),
])
def test_prelim_infill_bad_params(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        cc.prelim_infill(IMG, MASK, **kw)


def test_prelim_infill_defaults_on_small_image():
    # the default schedule (19 -> 383 px in 10 rounds) must stay allowed on tiny images
    m = np.zeros((5, 5), bool)
    m[2, 2] = True
    res = cc.prelim_infill(RNG.standard_normal((5, 5)), m, min_good=10**6)
    assert res.rounds == 10 and res.widths == (383, 383) and res.n_fallback == 1


# ---- add_sky_noise -------------------------------------------------------------------------
def test_add_sky_noise_bad_args():
    sky = np.ones((24, 24))
    with pytest.raises(ValueError, match=r"mask: shape \(24, 20\) != expected \(24, 24\)"):
        cc.add_sky_noise(IMG, MASK[:, :20], sky, 4.0)
    with pytest.raises(TypeError, match=r"mask: expected a boolean or integer mask, got dtype float64"):
        cc.add_sky_noise(IMG, MASK * 1.0, sky, 4.0)
    with pytest.raises(ValueError, match=r"sky.shape \(24, 20\) != image.shape \(24, 24\)"):
        cc.add_sky_noise(IMG, MASK, sky[:, :20], 4.0)
    with pytest.raises(ValueError, match=r"sky: expected a 2-D array"):
        cc.add_sky_noise(IMG, MASK, sky[0], 4.0)
    with pytest.raises(ValueError, match=r"sky: contains 1 NaN or infinite"):
        cc.add_sky_noise(IMG, MASK, with_nan(sky), 4.0)
    with pytest.raises(TypeError, match=r"sky: expected float32 or float64, got dtype complex128"):
        cc.add_sky_noise(IMG, MASK, sky.astype(complex), 4.0)
    with pytest.raises(TypeError, match=r"sky: cannot be converted to an array"):
        cc.add_sky_noise(IMG, MASK, [[1.0], [1.0, 2.0]], 4.0)
    for gain, msg in [(0, r"gain: must be > 0, got 0.0"), (-2.0, r"gain: must be > 0, got -2.0"),
                      (np.inf, r"gain: must be finite, got inf"), (np.nan, r"gain: must be finite")]:
        with pytest.raises(ValueError, match=msg):
            cc.add_sky_noise(IMG, MASK, sky, gain)
    with pytest.raises(TypeError, match=r"gain: expected a real number, got None"):
        cc.add_sky_noise(IMG, MASK, sky, None)
    with pytest.raises(ValueError, match=r"gain, sky, image: the Poisson mean .* reaches"):
        cc.add_sky_noise(IMG, MASK, sky * 1e30, 1.0)
    with pytest.raises(TypeError, match=r"rng: expected a numpy Generator, a seed or None"):
        cc.add_sky_noise(IMG, MASK, sky, 4.0, rng="seed")
    # int sky is converted on purpose; unmasked pixels untouched
    out = cc.add_sky_noise(IMG, MASK, np.ones((24, 24), int), 4.0, rng=1)
    np.testing.assert_array_equal(out[~MASK], IMG[~MASK])


# ---- masks ------------------------------------------------------------------------------------
def test_findmaxpsf_bad_args():
    with pytest.raises(ValueError, match=r"psf: expected a 2-D array"):
        cc.findmaxpsf(np.ones(5))
    with pytest.raises(ValueError, match=r"psf: contains 1 NaN"):
        cc.findmaxpsf(with_nan(np.ones((5, 5))))
    with pytest.raises(ValueError, match=r"psf: empty array"):
        cc.findmaxpsf(np.ones((0, 5)))
    with pytest.raises(TypeError, match=r"psf: expected float32 or float64, got dtype complex128"):
        cc.findmaxpsf(np.ones((5, 5), complex))
    with pytest.raises(TypeError, match=r"psf: cannot be converted to an array"):
        cc.findmaxpsf([[1.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match=r"thr: must be > 0"):
        cc.findmaxpsf(np.ones((5, 5)), 0)
    assert cc.findmaxpsf(np.zeros((5, 5))) == np.inf


def test_gen_mask_static_psf_bad_args():
    big, small = np.ones((7, 7)), np.ones((3, 3))
    m = np.zeros((16, 16), bool)
    with pytest.raises(TypeError, match=r"mask: expected a 2-D numpy bool array"):
        cc.gen_mask_static_psf(m.astype(np.uint8), big, small, [5], [5], [1e5])
    with pytest.raises(TypeError, match=r"mask: expected a 2-D numpy bool array"):
        cc.gen_mask_static_psf(m[0], big, small, [5], [5], [1e5])
    with pytest.raises(ValueError, match=r"mask: array is read-only"):
        cc.gen_mask_static_psf(_ro(m.copy()), big, small, [5], [5], [1e5])
    with pytest.raises(ValueError, match=r"psf_big: stamp sides must be odd, got shape \(6, 7\)"):
        cc.gen_mask_static_psf(m, big[1:], small, [5], [5], [1e5])
    with pytest.raises(ValueError, match=r"psf_small: stamp sides must be odd"):
        cc.gen_mask_static_psf(m, big, np.ones((3, 4)), [5], [5], [1e5])
    with pytest.raises(ValueError, match=r"psf_small: contains 1 NaN"):
        cc.gen_mask_static_psf(m, big, with_nan(small), [5], [5], [1e5])
    with pytest.raises(ValueError, match=r"rows, cols, flux: lengths differ \(2, 1, 1\)"):
        cc.gen_mask_static_psf(m, big, small, [5, 6], [5], [1e5])
    with pytest.raises(ValueError, match=r"cols: contains NaN or infinite values"):
        cc.gen_mask_static_psf(m, big, small, [5], [np.nan], [1e5])
    with pytest.raises(ValueError, match=r"flux: contains NaN or infinite values"):
        cc.gen_mask_static_psf(m, big, small, [5], [5], [np.inf])
    with pytest.raises(TypeError, match=r"rows: expected a real numeric array, got dtype complex128"):
        cc.gen_mask_static_psf(m, big, small, [5 + 1j], [5], [1e5])
    with pytest.raises(TypeError, match=r"flux: expected a real numeric array, got dtype <U"):
        cc.gen_mask_static_psf(m, big, small, [5], [5], ["a"])
    with pytest.raises(TypeError, match=r"rows: cannot be converted"):
        cc.gen_mask_static_psf(m, big, small, [[5], [5, 6]], [5], [1e5])
    with pytest.raises(ValueError, match=r"thr: must be > 0"):
        cc.gen_mask_static_psf(m, big, small, [5], [5], [1e5], thr=-1)
    # far-off and huge positions, tiny fluxes: allowed, no warnings
    cc.gen_mask_static_psf(m, big, small, [1e300, -1e300, 5], [5, 5, 2**63], [1e5, 1e5, 5e-324])
    assert not m.any()


def test_outest_bounds_bad_args():
    with pytest.raises(TypeError, match=r"size: expected an integer, got '10'"):
        cc.outest_bounds([1, 2], "10")
    with pytest.raises(ValueError, match=r"size: must be >= 1, got 0"):
        cc.outest_bounds([1, 2], 0)
    with pytest.raises(ValueError, match=r"centres: expected integer values"):
        cc.outest_bounds([1.5, 2], 10)
    with pytest.raises(ValueError, match=r"centres: expected integer values"):
        cc.outest_bounds([np.nan], 10)
    with pytest.raises(TypeError, match=r"centres: expected a real numeric array, got dtype complex"):
        cc.outest_bounds([1j], 10)
    with pytest.raises(TypeError, match=r"centres: expected a real numeric array, got dtype object"):
        cc.outest_bounds([None], 10)
    # extreme values do not overflow
    big = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max])
    assert cc.outest_bounds(big, 10) == 2**63
    assert cc.outest_bounds([-3, 4.0, 12], 10) == 3


# ---- pixel_classes ------------------------------------------------------------------------------
PSF = np.exp(-0.5 * ((np.arange(5) - 2)[:, None] ** 2 + (np.arange(5) - 2)[None, :] ** 2))
KM = np.zeros((5, 5), bool)


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(psf=PSF[0]), ValueError, r"psf: expected a 2-D array"),
    (dict(psf=PSF[:, :4]), ValueError, r"psf: expected a square \(Np, Np\) stamp, got shape \(5, 4\)"),
    (dict(psf=PSF[:4, :4]), ValueError, r"Np must be odd and >= 3, got 4"),
    (dict(psf=PSF[:1, :1], kmasked=KM[:1, :1]), ValueError, r"Np must be odd and >= 3, got 1"),
    (dict(psf=with_nan(PSF)), ValueError, r"psf: contains 1 NaN"),
    (dict(psf=PSF.astype(complex)), TypeError, r"psf: expected a numeric array, got dtype complex128"),
    (dict(psf=PSF.astype(object)), TypeError, r"psf: expected a numeric array, got dtype object"),
    (dict(kmasked=KM[:4]), ValueError, r"kmasked: shape \(4, 5\) != expected \(5, 5\)"),
    (dict(kmasked=KM.astype(float)), TypeError, r"kmasked: expected a boolean or integer mask"),
    (dict(kmasked=KM.tolist()), TypeError, r"kmasked: expected a numpy.ndarray"),
    (dict(circmask=KM[:3, :3]), ValueError, r"circmask: shape \(3, 3\) != expected \(5, 5\)"),
    (dict(flux=np.nan), ValueError, r"flux: must be finite, got nan"),
    (dict(flux=None), TypeError, r"flux: expected a real number"),
    (dict(thr=0.0), ValueError, r"thr: must be > 0, got 0.0"),
    (dict(rlim=np.inf), ValueError, r"rlim: must be finite, got inf"),
])
def test_pixel_classes_bad_args(kw, exc, msg):
    args = dict(kmasked=KM, psf=PSF, flux=1e5)
    args.update(kw)
    with pytest.raises(exc, match=msg):
        cc.pixel_classes(args.pop("kmasked"), args.pop("psf"), args.pop("flux"), **args)


def test_pixel_classes_accepts_conversions():
    pc = cc.pixel_classes(KM.astype(np.uint8), noncontig(PSF).astype(np.float32), 1e5)
    assert pc.good.shape == (5, 5) and pc.psf.dtype == np.float64


# ---- cond_cov_est --------------------------------------------------------------------------------
N9 = 9
COV = spd(N9)
HID = np.zeros((3, 3), bool)
HID[1, 1] = True
CCE = dict(cov=COV, mu=np.zeros(N9), not_good=HID, hidden=HID, data=RNG.standard_normal((3, 3)),
           stars=np.ones((3, 3)), psf=np.ones((3, 3)))


def _cce(**kw):
    args = dict(CCE)
    args.update(kw)
    pos = [args.pop(k) for k in ("cov", "mu", "not_good", "hidden", "data", "stars", "psf")]
    return cc.cond_cov_est(*pos, **args)


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(cov=COV[0]), ValueError, r"cov: expected a 2-D array"),
    (dict(cov=COV[:, :8].copy()), ValueError, r"cov: expected a square matrix, got shape \(9, 8\)"),
    (dict(cov=spd(8)), ValueError, r"cov: size 8 is not Np\*\*2"),
    (dict(cov=COV.astype(np.int16)), TypeError, r"cov: expected float32 or float64, got dtype int16"),
    (dict(cov=COV.astype(complex)), TypeError, r"cov: expected float32 or float64, got dtype complex128"),
    (dict(cov=noncontig(COV)), ValueError, r"cov: expected a C-contiguous array"),
    (dict(cov=with_nan(COV)), ValueError, r"cov: contains 1 NaN or infinite"),
    (dict(mu=np.zeros(8)), ValueError, r"mu: expected 9 pixels \(an \(Np, Np\) stamp or flat\), got shape \(8,\)"),
    (dict(mu=with_nan(np.zeros(9))), ValueError, r"mu: contains NaN or infinite values"),
    (dict(mu=np.zeros(9, complex)), TypeError, r"mu: expected a real numeric array, got dtype complex128"),
    (dict(mu=[None] * 9), TypeError, r"mu: expected a real numeric array, got dtype object"),
    (dict(cov=COV.astype(np.float32), mu=np.full(9, 1e300)), ValueError, r"mu: values overflow float32"),
    (dict(not_good=np.zeros((2, 2), bool)), ValueError, r"not_good: expected 9 pixels"),
    (dict(not_good=np.zeros(9)), TypeError, r"not_good: expected a boolean or integer mask, got dtype float64"),
    (dict(hidden=np.zeros(10, bool)), ValueError, r"hidden: expected 9 pixels"),
    (dict(hidden=np.zeros(9, complex)), TypeError, r"hidden: expected a real numeric array"),
    (dict(data=np.zeros(4)), ValueError, r"data: expected 9 pixels"),
    (dict(data=with_nan(np.zeros(9), np.inf)), ValueError, r"data: contains NaN or infinite values"),
    (dict(data=np.zeros(9, complex)), TypeError, r"data: expected a real numeric array, got dtype complex128"),
    (dict(stars=[[1.0], [1.0, 2.0]]), TypeError, r"stars: cannot be converted to a numeric array"),
    (dict(stars=np.array(["a"] * 9)), TypeError, r"stars: expected a real numeric array, got dtype <U1"),
    (dict(psf=with_nan(np.ones(9))), ValueError, r"psf: contains NaN or infinite values"),
    (dict(n_draw=-1), ValueError, r"n_draw: must be >= 0, got -1"),
    (dict(n_draw=1.0), TypeError, r"n_draw: expected an integer, got 1.0"),
    (dict(n_draw=2, rng="x"), TypeError, r"rng: expected a numpy Generator, a seed or None"),
])
def test_cond_cov_est_bad_args(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        _cce(**kw)


def test_cond_cov_est_flat_and_converted_inputs():
    r = _cce(not_good=HID.ravel().astype(np.int8), data=CCE["data"].ravel().tolist(),
             stars=np.ones(9, int), psf=np.ones((3, 3), np.float32), export_mean=True, n_draw=3, rng=0)
    assert r.mean.shape == (3, 3) and r.draws.shape == (3, 3, 3)
    assert np.isfinite(r.dcflux) and r.dnt & 64 == 0


# ---- private _core kernels ------------------------------------------------------------------------
F = np.ascontiguousarray(IMG)
U8 = np.zeros((5, 5), np.uint8)


@pytest.mark.parametrize("bad", [F.astype(np.float16), F.astype(np.int16), F.astype(complex),
                                 F.astype(object), F[0], F[None], noncontig(F)],
                         ids=["float16", "int16", "complex", "object", "1d", "3d", "noncontig"])
def test_core_boxcar_bad(bad):
    with pytest.raises(ValueError, match=r"image: "):
        _core.boxcar(bad, 3, 3)


@pytest.mark.parametrize("w", [(0, 3), (3, -1), (25, 3), (3, 25), (2**62, 3)])
def test_core_boxcar_bad_widths(w):
    with pytest.raises(ValueError, match=r"boxcar widths must be >= 1 and fit in the image"):
        _core.boxcar(F, *w)


def test_core_boxcar_non_array_and_int_overflow():
    with pytest.raises(TypeError):
        _core.boxcar(F.tolist(), 3, 3)
    with pytest.raises(TypeError):
        _core.boxcar(F, 2**64, 3)


def _ss_args(**kw):
    b, s = _good_out()
    args = dict(image=F, Np=NP, wrow=W, wcol=W, bimage=b, stack=s, nthreads=1)
    args.update(kw)
    return args


@pytest.mark.parametrize("kw, msg", [
    (dict(image=F.astype(np.float16)), r"image: expected float32 or float64"),
    (dict(image=F.astype(complex)), r"image: expected float32 or float64"),
    (dict(image=noncontig(F)), r"image: expected a C-contiguous array"),
    (dict(image=F[0]), r"image: expected 2-D array, got 1-D"),
    (dict(bimage=_good_out()[0].astype(np.float32)), r"bimage: wrong dtype float32"),
    (dict(stack=_good_out()[1].astype(np.float32)), r"stack: wrong dtype float32"),
    (dict(stack=_good_out()[1][..., ::2]), r"stack: expected a C-contiguous array"),
    (dict(stack=_good_out()[1][0]), r"stack: expected 4-D array, got 3-D"),
    (dict(bimage=_ro(_good_out()[0])), r"bimage: array is read-only"),
    (dict(bimage=_good_out()[0][:-1]), r"bimage must be the boxcar valid region"),
    (dict(stack=_good_out()[1][..., :-1].copy()), r"stack: expected shape \(Np, rows, cols, 2 Np - 1\)"),
    (dict(stack=_good_out()[1][:, :-1].copy()), r"stack has the wrong shape"),
    (dict(Np=4), r"Np must be odd and in \[3, 1023\]"),
    (dict(Np=2**62 + 1), r"Np must be odd and in \[3, 1023\]"),
    (dict(wrow=0), r"boxcar widths must be >= 1"),
    (dict(wcol=25), r"boxcar window larger than the tile"),
])
def test_core_shift_stack_bad(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _core.shift_stack(*_ss_args(**kw).values())


def test_core_shift_stack_noconvert_outputs():
    b, s = _good_out()
    with pytest.raises(TypeError):  # out arrays are never converted (they are written)
        _core.shift_stack(F, NP, W, W, b.tolist(), s, 1)


@pytest.mark.parametrize("kw, msg", [
    (dict(bimage=BIM.astype(np.int16)), r"bimage: expected float32 or float64"),
    (dict(bimage=noncontig(BIM)), r"bimage: expected a C-contiguous array"),
    (dict(stack=STK.astype(np.float32)), r"stack: wrong dtype float32"),
    (dict(stack=STK[0]), r"stack: expected 4-D array"),
    (dict(stack=STK[:, :-1].copy()), r"stack and bimage shapes differ"),
    (dict(Np=5), r"stack: expected shape \(Np, rows, cols, 2 Np - 1\) for Np = 5"),
    (dict(Np=-1), r"Np must be odd"),
    (dict(Np=2**62 + 1), r"Np must be odd and in \[3, 1023\]"),
    (dict(r0=-1), r"stamp leaves the boxcar image"),
    (dict(c0=18), r"stamp leaves the boxcar image"),
    # r0 + Np used to wrap around to a negative number and pass: out-of-bounds read
    (dict(r0=2**63 - 2), r"stamp leaves the boxcar image"),
    (dict(r0=2**63 - 3, c0=2**63 - 3), r"stamp leaves the boxcar image"),
    (dict(c0=-2**63), r"stamp leaves the boxcar image"),
    (dict(wrow=0), r"boxcar widths wrow, wcol must be >= 1"),
])
def test_core_build_cov_bad(kw, msg):
    args = dict(bimage=BIM, stack=STK, Np=NP, wrow=W, wcol=W, r0=0, c0=0, julia_compat=False)
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        _core.build_cov(*args.values())


@pytest.mark.parametrize("kw, msg", [
    (dict(kmasked=U8.astype(bool)), r"kmasked: wrong dtype bool"),
    (dict(kmasked=U8[:4]), r"kmasked, psf and circmask must all be \(Np, Np\)"),
    (dict(circmask=U8[0]), r"circmask: expected 2-D array"),
    (dict(psf=PSF.astype(np.float32)), r"psf: wrong dtype float32"),
    (dict(psf=noncontig(PSF)), r"psf: expected a C-contiguous array"),
    (dict(kmasked=U8[:0, :0], psf=PSF[:0, :0], circmask=U8[:0, :0]), r"must not be empty"),
])
def test_core_pixel_classes_bad(kw, msg):
    args = dict(kmasked=U8, psf=PSF, circmask=U8, flux=1e5, thr=20.0)
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        _core.pixel_classes(*args.values())


def _core_cce_args(**kw):
    u = np.zeros(9, np.uint8)
    h = u.copy()
    h[4] = 1
    args = dict(cov=COV, mu=np.zeros(9), not_good=h, hidden=h, data=np.zeros(9), stars=np.ones(9),
                psf=np.ones(9), diag_on=True, guard=True, keep_prediction=True)
    args.update(kw)
    return list(args.values())


@pytest.mark.parametrize("kw, msg", [
    (dict(cov=COV.astype(np.int16)), r"cov: expected float32 or float64"),
    (dict(cov=COV[:, :8].copy()), r"cov must be square"),
    (dict(cov=noncontig(COV)), r"cov: expected a C-contiguous array"),
    (dict(mu=np.zeros(9, np.float32)), r"mu: wrong dtype float32"),
    (dict(mu=np.zeros(8)), r"per-pixel vectors must have cov.shape\[0\] entries"),
    (dict(not_good=np.zeros(9, bool)), r"not_good: wrong dtype bool"),
    (dict(hidden=np.zeros((3, 3), np.uint8)), r"hidden: expected 1-D array"),
    (dict(data=np.zeros(18)[::2]), r"data: expected a C-contiguous array"),
    (dict(stars=np.ones(10)), r"per-pixel vectors"),
    (dict(psf=np.ones(9, complex)), r"psf: wrong dtype complex128"),
])
def test_core_cond_cov_est_bad(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _core.cond_cov_est(*_core_cce_args(**kw))


def _lpi_args(**kw):
    tile = RNG.standard_normal((12, 12))
    b, s = cc.shift_stack(tile, NP, 3)
    args = dict(stack=s, bimage=b, Np=NP, wrow=3, wcol=3, tile_r0=0, tile_c0=0, resid=tile,
                stars=np.abs(tile), bad=np.zeros((12, 12), np.uint8),
                rows=np.array([5], np.int64), cols=np.array([6], np.int64),
                psf=np.ones((1, NP, NP)), flux=np.array([1e5]), circmask=np.zeros((NP, NP), np.uint8),
                thr=20.0, julia_compat=False, diag_on=True, guard=True, nthreads=1)
    args.update(kw)
    return list(args.values())


def test_core_lpi_stars_ok():
    r = _core.lpi_stars(*_lpi_args())
    assert r["dcflux"].shape == (1,)


@pytest.mark.parametrize("R, C, tr, tc", [
    (0, 6, 0, 0),              # stamp leaves the padded image (top)
    (11, 6, 0, 0),             # ... (bottom)
    (5, -1, 0, 0),
    (1, 6, 0, 0),              # inside the image but its window leaves the tile
    (5, 6, 5, 0),              # tile offset pushes it out
    (5, 6, 0, -9),
    (2**63 - 1, 6, 0, 0),      # R + h used to overflow and pass
    (-2**63, 6, 0, 0),
    (5, 6, -2**63, 0),         # r0 = R - h - tile_r0 - drow overflows
    (5, 6, 2**63 - 1, 0),
])
def test_core_lpi_stars_stamp_leaves_tile(R, C, tr, tc):
    with pytest.raises(ValueError, match=r"star 0 at padded \(row, col\) = .*its stamp leaves the padded image or the tile"):
        _core.lpi_stars(*_lpi_args(rows=np.array([R], np.int64), cols=np.array([C], np.int64),
                                   tile_r0=tr, tile_c0=tc))


@pytest.mark.parametrize("kw, msg", [
    (dict(stack=np.zeros((10, 10, 13), np.int16)), r"stack: expected float32 or float64"),
    (dict(Np=5), r"stack: expected shape \(Np, rows, cols, 2 Np - 1\) for Np = 5"),
    (dict(Np=2**62 + 1), r"Np must be odd and in \[3, 1023\]"),
    (dict(wrow=0), r"boxcar widths wrow, wcol must be >= 1"),
    (dict(rows=np.array([5], np.int32)), r"rows: wrong dtype int32"),
    (dict(cols=np.array([5, 6], np.int64)), r"rows, cols and flux lengths differ"),
    (dict(psf=np.ones((1, 5, 5))), r"psf must be \(nstar, Np, Np\)"),
    (dict(psf=np.ones((1, 3, 3), np.float32)), r"psf: wrong dtype float32"),
    (dict(bad=np.zeros((12, 11), np.uint8)), r"resid, stars and bad must have the same shape"),
    (dict(resid=np.zeros((12, 24))[:, ::2]), r"resid: expected a C-contiguous array"),
    (dict(circmask=np.zeros((5, 5), np.uint8)), r"circmask must be \(Np, Np\)"),
    (dict(bimage=np.zeros((9, 10))), r"stack and bimage shapes differ"),
])
def test_core_lpi_stars_bad(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _core.lpi_stars(*_lpi_args(**kw))


def test_core_prelim_infill_bad():
    m = MASK.astype(np.uint8)
    with pytest.raises(ValueError, match=r"image: expected float32 or float64"):
        _core.prelim_infill(F.astype(np.float16), m, 3, 3, 1.4, 3, 0)
    with pytest.raises(ValueError, match=r"mask: wrong dtype bool"):
        _core.prelim_infill(F, MASK, 3, 3, 1.4, 3, 0)
    with pytest.raises(ValueError, match=r"mask and image shapes differ"):
        _core.prelim_infill(F, m[:, 1:].copy(), 3, 3, 1.4, 3, 0)
    with pytest.raises(ValueError, match=r"infill widths must be odd and >= 1"):
        _core.prelim_infill(F, m, 4, 3, 1.4, 3, 0)
    for widmult in (np.nan, np.inf, 0.0, -1.0):  # NaN / inf used to segfault
        with pytest.raises(ValueError, match=r"widmult must be finite and > 0"):
            _core.prelim_infill(F, m, 3, 3, widmult, 3, 0)
    for widmult, rounds in ((7e107, 4), (3.0, 40)):  # used to segfault (width cast overflow)
        with pytest.raises(ValueError, match=r"widx/widy, widmult, max_rounds"):
            _core.prelim_infill(F, m, 3, 3, widmult, rounds, 0)
    with pytest.raises(ValueError, match=r"max_rounds must be"):
        _core.prelim_infill(F, m, 3, 3, 1.0, 2**31 - 1, 0)
    with pytest.raises(ValueError, match=r"the infill windows would grow to"):
        _core.prelim_infill(F, m, 2**20 + 1, 3, 1.0, 1, 0)


def test_core_infill_widths_bad():
    assert _core.infill_widths(19, 1.4, 3) == [19, 27, 37]
    with pytest.raises(ValueError, match=r"widmult must be finite and > 0"):
        _core.infill_widths(3, float("inf"), 5)
    with pytest.raises(ValueError, match=r"max_rounds must be in \[0, 1000\]"):
        _core.infill_widths(3, 1.4, -5)
    with pytest.raises(ValueError, match=r"infill width must be >= 1"):
        _core.infill_widths(-3, 1.4, 5)
    with pytest.raises(ValueError, match=r"would grow beyond"):
        _core.infill_widths(3, 1e10, 5)
