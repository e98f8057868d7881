"""Property-based fuzzing of every public wrapper and of the private ``_core`` kernels.

Random shapes (0-size and 1-pixel sides included), dtypes (float16/32/64, ints, bool,
complex, object), values (NaN, inf, huge), non-contiguous views and random integers
(negative and huge) for Np, widths and positions. Every call must either return the
documented shape and dtype or raise ValueError/TypeError (cloudcov.CloudCovError where
documented); any other exception, a numpy warning (pytest runs with filterwarnings=error)
or a crash fails. Arrays stay <= 64 x 64 and Np <= 7 so the file runs in a few seconds.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cloudcov as cc
from cloudcov import _core

OK_ERRORS = (ValueError, TypeError)
# CLOUDCOV_FUZZ_SCALE=20 pytest tests/test_fuzz.py  runs 20x more examples (bug hunting).
SCALE = float(os.environ.get("CLOUDCOV_FUZZ_SCALE", "1"))
FUZZ = settings(deadline=None, database=None, max_examples=int(60 * SCALE),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
FAST = settings(FUZZ, max_examples=int(120 * SCALE))


def rejected(exc):
    """Record an accepted rejection (see --hypothesis-show-statistics); return None."""
    event(f"rejected: {type(exc).__name__}: " + re.sub(r"-?\d+(\.\d*)?(e[-+]?\d+)?", "#", str(exc))[:60])


def accepted():
    event("returned")


def mostly(valid, invalid, k=3):
    """``valid`` about k times as often as ``invalid``."""
    return st.sampled_from([True] * k + [False]).flatmap(lambda ok: valid if ok else invalid)


DTYPES = [np.float64, np.float32, np.float16, np.int16, np.int64, np.uint8, np.bool_,
          np.complex128, object]
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
HUGE_INTS = [2**31 - 1, 2**31, 2**32 + 1, 2**62 + 1, 2**63 - 1, 2**63, 2**64 + 1, 2**100 + 1,
             -2**31, -2**63, -2**63 - 1, -2**100]
HUGE_INT64 = [v for v in HUGE_INTS if -2**63 <= v < 2**63]

# small odd/even integers around the interesting range plus huge ones of both signs
small_int = st.integers(-3, 12)
huge_int = st.one_of(st.sampled_from(HUGE_INTS), st.integers(-2**70, 2**70))
any_int = mostly(small_int, huge_int)
np_int = mostly(st.sampled_from([3, 3, 5, 7]), st.one_of(st.integers(-2, 8), huge_int), k=2)
width = mostly(st.sampled_from([1, 3, 3, 5]), st.one_of(st.integers(-2, 9), huge_int), k=2)
bad_real = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0.0, -0.0, -1.0, 5e-324, 1e308, 10**400, "1", None]))
real = mostly(st.floats(1e-3, 1e3), bad_real, k=2)  # mostly valid positive numbers


@st.composite
def arrays(draw, ndim=None, dtypes=DTYPES, max_side=12, special=True):
    """A random array: shape, dtype, scale, NaN/inf sprinkles, optionally non-contiguous."""
    nd = draw(st.sampled_from([2, 2, 2, 0, 1, 3])) if ndim is None else ndim
    big = draw(st.integers(0, 9)) == 0  # now and then up to 64 px per side
    side = mostly(st.integers(1, 64 if big else max_side), st.sampled_from([0, 1]))
    shape = tuple(draw(side) for _ in range(nd))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1.0, 1.0, 1.0, 100.0, 1e30, 1e300]))
    a = rng.standard_normal(shape) * scale
    if special and a.size and draw(st.integers(0, 5)) == 0:
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with np.errstate(all="ignore"):
        if dtype.kind in "iub":
            a = np.nan_to_num(a, posinf=0, neginf=0).clip(-1e6, 1e6)
        a = np.array(a, dtype=dtype)
    if a.ndim >= 1 and a.shape[-1] > 1 and draw(st.integers(0, 7)) == 0:
        a = a[..., ::2]  # non-contiguous view
    return a


@st.composite
def good_images(draw, max_side=24, min_side=1):
    """Valid images: C-contiguous, finite float32/float64, min_side..max_side pixels per side."""
    shape = (draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side)))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return (rng.standard_normal(shape) * draw(st.sampled_from([1.0, 1e-20, 1e20]))).astype(dtype)


def images(max_side=24, min_side=1, **kw):
    """Valid images 3 times in 4, else any random array."""
    return mostly(good_images(max_side, min_side), arrays(max_side=min(max_side, 12), **kw))


def masks(shape):
    """Valid bool/int masks of ``shape`` 3 times in 4, else anything."""
    good = st.builds(lambda s, p, dt: (np.random.default_rng(s).random(shape) < p).astype(dt),
                     st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.05, 0.3, 0.9, 1.0]),
                     st.sampled_from([np.bool_, np.bool_, np.uint8, np.int64]))
    bad = st.one_of(arrays(ndim=2, dtypes=[np.bool_, np.uint8, np.int64, np.float64]),
                    st.sampled_from([None, [[True]], 1]))
    return mostly(good, bad)


def is_image(a):
    return (isinstance(a, np.ndarray) and a.ndim == 2 and a.dtype in FLOAT_DTYPES
            and a.flags.c_contiguous and a.size > 0 and bool(np.all(np.isfinite(a))))


def odd_fit(w, n):
    return isinstance(w, int) and 1 <= w <= n and w % 2 == 1


def valid_np(Np):
    return isinstance(Np, int) and 3 <= Np <= 1023 and Np % 2 == 1


def odd_upto(n):
    """Odd integers in [1, n] (n >= 1)."""
    return st.integers(0, max(n - 1, 0) // 2).map(lambda k: 2 * k + 1)


def width_for(n):
    """A boxcar width: mostly odd and fitting a side of n pixels, else anything."""
    return mostly(odd_upto(n), width) if n >= 1 else width


def pos_in(lo, hi):
    """A position: mostly in [lo, hi] (when not empty), else any integer."""
    return mostly(st.integers(lo, hi), any_int) if lo <= hi else any_int


def side(a, axis):
    return a.shape[axis] if isinstance(a, np.ndarray) and a.ndim > axis else 1


# ---- covariance -----------------------------------------------------------------------------
@FAST
@given(images(), st.data(), st.booleans())
def test_fuzz_boxcar(image, data, mean):
    widx = data.draw(width_for(side(image, 0)))
    widy = data.draw(st.one_of(st.none(), width_for(side(image, 1))))
    wy = widx if widy is None else widy
    try:
        out = cc.boxcar(image, widx, widy, mean=mean)
    except OK_ERRORS as exc:
        rejected(exc)
        assert not (is_image(image) and odd_fit(widx, image.shape[0]) and odd_fit(wy, image.shape[1]))
        return
    accepted()
    assert out.shape == (image.shape[0] - widx + 1, image.shape[1] - wy + 1)
    assert out.dtype == image.dtype


@FAST
@given(np_int, real)
def test_fuzz_shifts_and_circle_mask(Np, rlim):
    if not valid_np(Np):
        with pytest.raises(OK_ERRORS):
            cc.circle_mask(Np)
        rejected(ValueError("Np"))
        return
    accepted()
    try:
        m = cc.circle_mask(Np, rlim)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    assert m.shape == (Np, Np) and m.dtype == bool


@FAST
@given(st.integers(3, 9).filter(lambda n: n % 2 == 1), st.data())
def test_fuzz_stack_value(Np, data):
    k = Np - 1
    stack = np.arange(Np * 4 * 5 * (2 * Np - 1), dtype=np.float64).reshape(Np, 4, 5, 2 * Np - 1)
    drow, dcol = data.draw(pos_in(-k - 2, k + 2)), data.draw(pos_in(-k - 2, k + 2))
    r, c = data.draw(pos_in(-2, 6)), data.draw(pos_in(-2, 6))
    try:
        v = cc.stack_value(stack, r, c, drow, dcol)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    if drow < 0:
        r, c, drow, dcol = r + drow, c + dcol, -drow, -dcol
    assert v == stack[drow, r, c, dcol + Np - 1]


@FUZZ
@given(images(max_side=20), np_int, st.data(),
       mostly(st.sampled_from([None, 0, 1, 2]), st.sampled_from([-1, 2**40, 1.0, "2"])),
       st.integers(0, 5))
def test_fuzz_shift_stack(image, Np, data, threads, out_mode):
    widx = data.draw(width_for(side(image, 0)))
    widy = data.draw(st.one_of(st.none(), width_for(side(image, 1))))
    wy = widx if widy is None else widy
    out = None
    if out_mode and is_image(image) and valid_np(Np) and odd_fit(widx, image.shape[0]) \
            and odd_fit(wy, image.shape[1]):
        shp = (image.shape[0] - widx + 1, image.shape[1] - wy + 1)
        good = (np.zeros(shp, image.dtype), np.zeros((Np,) + shp + (2 * Np - 1,), image.dtype))
        out = [good, good, good, (good[0], good[1][..., 1:].copy()),
               (good[0].astype(np.float16), good[1])][out_mode - 1]
    try:
        b, s = cc.shift_stack(image, Np, widx, widy, threads=threads, out=out)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert b.shape == (image.shape[0] - widx + 1, image.shape[1] - wy + 1)
    assert s.shape == (Np,) + b.shape + (2 * Np - 1,)
    assert b.dtype == s.dtype == image.dtype
    if out is not None:
        assert b is out[0] and s is out[1]


@st.composite
def stacks(draw):
    """A real (bimage, stack, Np, w) set, now and then perturbed into a bad one."""
    Np = draw(st.sampled_from([3, 5, 7]))
    w = draw(st.sampled_from([1, 3, 5]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = (draw(st.integers(w, 20)), draw(st.integers(w, 20)))
    image = np.random.default_rng(draw(st.integers(0, 99))).standard_normal(shape).astype(dtype)
    b, s = cc.shift_stack(image, Np, w)
    kind = draw(st.sampled_from([0] * 6 + [1, 2, 3, 4]))
    if kind == 1:
        b = draw(arrays(ndim=2))
    elif kind == 2:
        s = draw(arrays(ndim=3))
    elif kind == 3:
        s = s.astype(np.float64 if dtype == np.float32 else np.float32)
    elif kind == 4 and s.size:
        s = s.copy()
        s.flat[0] = np.nan  # non-finite stack values are allowed
    return b, s, Np, w


@FUZZ
@given(stacks(), st.data(), st.booleans())
def test_fuzz_build_cov(bs, data, julia_compat):
    b, s, Np, w = bs
    Np = data.draw(mostly(st.just(Np), np_int))
    widx = data.draw(mostly(st.just(w), width))
    widy = data.draw(mostly(st.none(), width))
    h = (Np - 1) // 2 if valid_np(Np) else 0
    row = data.draw(pos_in(h, side(b, 0) - 1 - h))
    col = data.draw(pos_in(h, side(b, 1) - 1 - h))
    try:
        cov, mu = cc.build_cov(b, s, row, col, Np, widx, widy, julia_compat=julia_compat)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert cov.shape == (Np * Np, Np * Np) and mu.shape == (Np * Np,)
    assert cov.dtype == mu.dtype == s.dtype


@FUZZ
@given(images(max_side=40, min_side=7), np_int, st.data(), st.booleans())
def test_fuzz_local_covariance(image, Np, data, julia_compat):
    widx = data.draw(mostly(st.sampled_from([3, 5]), width))
    widy = data.draw(mostly(st.none(), width))
    wy = widx if widy is None else widy
    ok = valid_np(Np) and odd_fit(widx, 99) and odd_fit(wy, 99)
    ax = (Np - 1) // 2 + (widx - 1) // 2 if ok else 0
    ay = (Np - 1) // 2 + (wy - 1) // 2 if ok else 0
    row = data.draw(pos_in(ax, side(image, 0) - 1 - ax))
    col = data.draw(pos_in(ay, side(image, 1) - 1 - ay))
    try:
        cov, mu = cc.local_covariance(image, row, col, Np, widx, widy, julia_compat=julia_compat)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert cov.shape == (Np * Np, Np * Np) and mu.shape == (Np * Np,)
    assert cov.dtype == mu.dtype == image.dtype


# ---- infill ----------------------------------------------------------------------------------
@st.composite
def infill_args(draw):
    image = draw(images(max_side=32))
    shape = image.shape if image.ndim == 2 else (3, 3)
    mask = draw(masks(shape))
    if isinstance(image, np.ndarray) and image.dtype.kind == "f" and isinstance(mask, np.ndarray) \
            and mask.shape == image.shape and mask.dtype == bool and image.size and draw(st.booleans()):
        image = image.copy()
        image[mask] = np.nan  # values under the mask are ignored
    kw = {"julia_compat": draw(st.booleans())}
    par = {"widx": mostly(st.sampled_from([1, 3, 5, 19]), width),
           "widy": mostly(st.sampled_from([1, 3, 7]), width),
           "widmult": mostly(st.sampled_from([0.5, 1.0, 1.4, 2.0]), st.one_of(bad_real, st.just(1e10))),
           "max_rounds": mostly(st.integers(0, 12), st.sampled_from([-1, 40, 1000, 1001, 2**40, 2.0])),
           "min_good": mostly(st.integers(0, 400), st.one_of(st.integers(-2, -1), huge_int))}
    for name, strat in par.items():
        if draw(st.booleans()):
            kw[name] = draw(strat)
    return image, mask, kw


@FUZZ
@given(infill_args())
def test_fuzz_prelim_infill(args):
    image, mask, kw = args
    try:
        res = cc.prelim_infill(image, mask, **kw)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert isinstance(res, cc.InfillResult)
    assert res.image.shape == image.shape and res.image.dtype == image.dtype
    assert np.all(np.isfinite(res.image))
    assert 0 <= res.n_fallback <= np.count_nonzero(mask)


@FUZZ
@given(images(), st.data(), real, st.sampled_from([None, 0, 1, np.random.default_rng(3), "x"]))
def test_fuzz_add_sky_noise(image, data, gain, rng):
    shape = image.shape if image.ndim == 2 else (3, 3)
    mask = data.draw(masks(shape))
    sky = data.draw(mostly(st.sampled_from([np.full(shape, 100.0), np.full(shape, 3, int),
                                            np.full(shape, 1e300)]), arrays(ndim=2)))
    try:
        out = cc.add_sky_noise(image, mask, sky, gain, rng)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert out.shape == image.shape and out.dtype == image.dtype
    assert np.all(np.isfinite(out))
    keep = np.asarray(mask) == 0
    np.testing.assert_array_equal(out[keep], image[keep])


# ---- masks ---------------------------------------------------------------------------------------
@FAST
@given(mostly(images(), st.sampled_from([[[1, 2], [3, 4]], [[1.0], [1.0, 2.0]], None, "psf"]), k=5),
       real)
def test_fuzz_findmaxpsf(psf, thr):
    try:
        flim = cc.findmaxpsf(psf, thr)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert isinstance(flim, float) and not np.isnan(flim)


@st.composite
def psf_stamps(draw, max_half):
    n = 2 * draw(st.integers(0, max_half)) + 1
    k = np.hypot(*np.mgrid[:n, :n] - (n - 1) / 2)
    return mostly(st.just(np.exp(-0.5 * k**2) * 1e-2), arrays(ndim=2, max_side=2 * max_half + 1))


@FUZZ
@given(mostly(st.builds(np.zeros, st.tuples(st.integers(0, 24), st.integers(0, 24)), st.just(bool)),
              arrays(ndim=2, dtypes=[np.bool_, np.uint8], special=False)),
       st.data(), st.integers(0, 5), real)
def test_fuzz_gen_mask_static_psf(mask, data, nstar, thr):
    psf_big = data.draw(data.draw(psf_stamps(4)))
    psf_small = data.draw(data.draw(psf_stamps(2)))
    coord = mostly(st.floats(-5, 30), st.one_of(st.floats(), st.sampled_from([2**63, -2**64, 1e300])))
    flux = mostly(st.floats(-1e6, 1e6), st.one_of(st.floats(), st.just(5e-324)))
    rows = data.draw(st.lists(coord, min_size=nstar, max_size=nstar))
    cols = data.draw(st.lists(coord, min_size=nstar, max_size=nstar))
    fl = data.draw(st.lists(flux, min_size=nstar, max_size=nstar + data.draw(st.sampled_from([0] * 5 + [1]))))
    before = mask.copy()
    try:
        out = cc.gen_mask_static_psf(mask, psf_big, psf_small, rows, cols, fl, thr)
    except OK_ERRORS as exc:
        rejected(exc)
        np.testing.assert_array_equal(mask, before)  # nothing written before a failure
        return
    accepted()
    assert out is mask and out.dtype == bool
    assert np.all(out[before])  # only ever sets pixels


@FAST
@given(st.one_of(st.lists(st.one_of(st.integers(-2**70, 2**70), small_int), max_size=5),
                 arrays(ndim=1), st.just([1.5]), st.just(["a"])),
       mostly(st.integers(1, 20), st.one_of(any_int, st.just(1.0), st.just("10"))))
def test_fuzz_outest_bounds(centres, size):
    try:
        pad = cc.outest_bounds(centres, size)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert isinstance(pad, int) and pad >= 0
    c = [int(x) for x in np.asarray(centres).reshape(-1)]
    assert all(-pad <= x <= size - 1 + pad for x in c)


# ---- per-star ----------------------------------------------------------------------------------
@FAST
@given(st.data(), st.sampled_from([3, 5, 7, 3, 5, 7, 1, 4, 0]), real, real,
       st.one_of(real, st.just(256), st.just(4)))
def test_fuzz_pixel_classes(data, n, flux, thr, rlim):
    gauss = np.exp(-np.hypot(*np.mgrid[:n, :n] - (n - 1) / 2))
    psf = data.draw(mostly(
        st.builds(lambda sign: gauss * sign, st.sampled_from([1.0, 1.0, -0.01, -1.0])),
        arrays(ndim=2, max_side=7)))
    kmasked = data.draw(mostly(st.just(np.zeros(np.shape(psf), bool)), masks((n, n))))
    circmask = data.draw(st.one_of(st.none(), masks((n, n))))
    flux = data.draw(mostly(st.floats(0, 1e7), st.just(flux)))
    try:
        pc = cc.pixel_classes(kmasked, psf, flux, thr=thr, circmask=circmask, rlim=rlim)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    Np = psf.shape[0]
    for a in (pc.good, pc.hidden, pc.ignored):
        assert a.shape == (Np, Np) and a.dtype == bool
    assert pc.psf.shape == (Np, Np) and pc.psf.dtype == np.float64
    assert not np.any(pc.good & pc.hidden) and np.all(pc.good | pc.hidden | pc.ignored)
    assert pc.kcond == pc.good.sum() and pc.kpred == pc.hidden.sum()
    assert 0 <= pc.dnt < 64


@st.composite
def cce_args(draw):
    Np = draw(st.sampled_from([1, 2, 3, 3, 3, 5, 5, 7]))
    n = Np * Np
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.integers(0, 7))
    scale = draw(st.sampled_from([1.0, 1.0, 1e-30, 1e30, 1e150, 0.0]))
    a = rng.standard_normal((n, n + 2)) * np.sqrt(scale)
    with np.errstate(all="ignore"):
        cov = a @ a.T if kind else a[:, :n]  # usually symmetric PSD; kind 0 arbitrary
        cov = np.ascontiguousarray(cov, dtype=draw(st.sampled_from([np.float64, np.float32])))
    if kind == 7:
        cov = draw(arrays(ndim=2))

    def vec():
        return draw(mostly(st.sampled_from([rng.standard_normal(n), rng.standard_normal((Np, Np)),
                                            np.full(n, 1e30)]),
                           arrays(ndim=draw(st.sampled_from([1, 2])), max_side=8)))

    frac = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    hidden = rng.random(n) < frac
    not_good = hidden | (rng.random(n) < draw(st.sampled_from([0.0, 0.2, 1.0])))
    return dict(cov=cov, mu=vec(), not_good=draw(mostly(st.just(not_good), masks((Np, Np)))),
                hidden=hidden, data=vec(), stars=np.abs(rng.standard_normal(n)), psf=vec(),
                diag_on=draw(st.booleans()), export_mean=draw(st.booleans()),
                n_draw=draw(st.sampled_from([0, 0, 1, 3, -1])), rng=draw(st.sampled_from([None, 1])),
                guard=draw(st.booleans()))


@FUZZ
@given(cce_args())
def test_fuzz_cond_cov_est(kw):
    try:
        r = cc.cond_cov_est(kw.pop("cov"), kw.pop("mu"), kw.pop("not_good"), kw.pop("hidden"),
                            kw.pop("data"), kw.pop("stars"), kw.pop("psf"), **kw)
    except (*OK_ERRORS, cc.CloudCovError) as exc:
        rejected(exc)
        return
    accepted()
    assert isinstance(r, cc.ConditionedStar)
    assert r.precision in (0, 32, 64) and 0 <= r.dnt < 128
    if r.mean is not None:
        assert r.mean.ndim == 2 and r.mean.shape[0] == r.mean.shape[1]
    if kw["n_draw"]:
        assert r.draws.shape[0] == kw["n_draw"]


# ---- private kernels -------------------------------------------------------------------------------
@FAST
@given(mostly(good_images(), arrays(dtypes=DTYPES), k=2), st.data())
def test_fuzz_core_boxcar(image, data):
    wrow, wcol = data.draw(width_for(side(image, 0))), data.draw(width_for(side(image, 1)))
    try:
        out = _core.boxcar(image, wrow, wcol)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert out.shape == (image.shape[0] - wrow + 1, image.shape[1] - wcol + 1)
    assert out.dtype == image.dtype


@FUZZ
@given(images(), np_int, st.data(), st.integers(-2, 4))
def test_fuzz_core_shift_stack(image, Np, data, nthreads):
    wrow, wcol = data.draw(width_for(side(image, 0))), data.draw(width_for(side(image, 1)))
    shp, nshift = (1, 1), 1
    if isinstance(image, np.ndarray) and image.ndim == 2 and abs(wrow) < 100 and abs(wcol) < 100:
        shp = (max(image.shape[0] - wrow + 1, 0), max(image.shape[1] - wcol + 1, 0))
    if valid_np(Np) and Np <= 7:
        nshift = Np * (2 * Np - 1) - (Np - 1)
    dt = image.dtype if image.dtype in FLOAT_DTYPES else np.float64
    b = data.draw(mostly(st.just(np.zeros(shp, dt)), arrays(ndim=2)))
    s = data.draw(mostly(st.just(np.zeros(shp + (nshift,), dt)), arrays(ndim=3)))
    try:
        _core.shift_stack(image, Np, wrow, wcol, b, s, nthreads)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert b.shape == shp and s.shape == shp + (nshift,)


@FUZZ
@given(stacks(), st.data(), st.booleans())
def test_fuzz_core_build_cov(bs, data, julia_compat):
    b, s, Np, w = bs
    Np = data.draw(mostly(st.just(Np), np_int))
    wrow, wcol = data.draw(mostly(st.just(w), any_int)), data.draw(mostly(st.just(w), any_int))
    r0 = data.draw(pos_in(0, side(b, 0) - Np))
    c0 = data.draw(pos_in(0, side(b, 1) - Np))
    try:
        cov, mu = _core.build_cov(b, s, Np, wrow, wcol, r0, c0, julia_compat)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert cov.shape == (Np * Np, Np * Np) and mu.shape == (Np * Np,)
    assert 0 <= r0 <= b.shape[0] - Np and 0 <= c0 <= b.shape[1] - Np


@FAST
@given(st.sampled_from([0, 1, 3, 5, 3, 5]), st.data(), real, real)
def test_fuzz_core_pixel_classes(n, data, flux, thr):
    u8 = mostly(st.sampled_from([np.zeros((n, n), np.uint8), np.ones((n, n), np.uint8)]),
                arrays(ndim=2, dtypes=[np.uint8, np.bool_]))
    psf = data.draw(mostly(st.just(np.ones((n, n))), arrays(ndim=2)))
    try:
        ng, hd, p, k0, k1, kp, dnt = _core.pixel_classes(data.draw(u8), psf, data.draw(u8), flux, thr)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert ng.shape == hd.shape == p.shape == psf.shape
    assert k1 == np.count_nonzero(ng == 0) and kp == np.count_nonzero(hd)


@FUZZ
@given(cce_args(), st.booleans(), st.booleans(), st.booleans())
def test_fuzz_core_cond_cov_est(kw, diag_on, guard, keep):
    cov = kw["cov"]
    n = cov.shape[0] if cov.ndim >= 1 else 0

    def flat(a, dt):
        a = np.asarray(a)
        return np.ascontiguousarray(a.reshape(-1), dt) if a.dtype.kind in "fiub" and a.size < 100 else a

    with np.errstate(all="ignore"):
        args = [cov, flat(kw["mu"], cov.dtype if cov.dtype in FLOAT_DTYPES else np.float64),
                flat(kw["not_good"], np.uint8), flat(kw["hidden"], np.uint8),
                flat(kw["data"], np.float64), flat(kw["stars"], np.float64), flat(kw["psf"], np.float64)]
    try:
        r = _core.cond_cov_est(*args, diag_on, guard, keep)
    except (*OK_ERRORS, cc.CloudCovError) as exc:
        rejected(exc)
        return
    accepted()
    assert set(r) >= {"dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2", "dnt", "precision", "reg"}
    if keep:
        assert r["xbar"].ndim == 1 and r["xbar"].size <= n


@st.composite
def lpi_args(draw):
    Np = draw(st.sampled_from([3, 5]))
    w = draw(st.sampled_from([1, 3]))
    dt = draw(st.sampled_from([np.float32, np.float64]))
    H, W = draw(st.integers(Np + w - 1, 16)), draw(st.integers(Np + w - 1, 16))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    tile = rng.standard_normal((H, W)).astype(dt)
    b, s = cc.shift_stack(tile, Np, w)
    nst = draw(st.integers(0, 4))
    h, d = (Np - 1) // 2, (w - 1) // 2
    big = st.sampled_from(HUGE_INT64)
    rows = np.array([draw(mostly(st.integers(h + d, H - 1 - h - d), big)) for _ in range(nst)], np.int64)
    cols = np.array([draw(mostly(st.integers(h + d, W - 1 - h - d), big)) for _ in range(nst)], np.int64)
    psf = np.abs(rng.standard_normal((nst, Np, Np))).astype(dt)
    flux = np.array([draw(mostly(st.floats(0, 1e7), st.floats())) for _ in range(nst)])
    bad = (rng.random((H, W)) < draw(st.sampled_from([0.0, 0.3, 1.0]))).astype(np.uint8)
    toff = mostly(st.just(0), st.one_of(st.integers(-2, 2), big))
    return [s, b, Np, draw(mostly(st.just(w), width)), w, draw(toff), draw(toff), tile,
            np.abs(tile), bad, rows, cols, psf, flux, np.zeros((Np, Np), np.uint8), 20.0,
            draw(st.booleans()), draw(st.booleans()), draw(st.booleans()), draw(st.integers(0, 2))]


@FUZZ
@given(lpi_args())
def test_fuzz_core_lpi_stars(args):
    try:
        r = _core.lpi_stars(*args)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    n = args[10].size
    assert all(v.shape == (n,) for v in r.values())


@FAST
@given(images(max_side=24), st.data(), mostly(st.sampled_from([0.5, 1.4, 3.0]), bad_real),
       mostly(st.integers(0, 12), st.sampled_from([-1, 1001, 2**31 - 1])), st.integers(-2, 300))
def test_fuzz_core_prelim_infill(image, data, widmult, max_rounds, min_good):
    shape = image.shape if image.ndim == 2 else (3, 3)
    wrow, wcol = data.draw(width_for(19)), data.draw(width_for(19))
    mask = data.draw(mostly(st.builds(lambda p: (np.random.default_rng(0).random(shape) < p).astype(np.uint8),
                                      st.sampled_from([0.0, 0.2, 1.0])),
                            arrays(ndim=2, dtypes=[np.uint8, np.bool_])))
    try:
        out, still, rounds, lr, lc, unfilled = _core.prelim_infill(image, mask, wrow, wcol, widmult,
                                                                   max_rounds, min_good)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert out.shape == still.shape == image.shape and out.dtype == image.dtype
    assert 0 <= rounds <= max(max_rounds, 0) and unfilled == np.count_nonzero(still)


@FAST
@given(mostly(st.sampled_from([1, 3, 19]), width), mostly(st.sampled_from([0.5, 1.4, 3.0]), bad_real),
       st.integers(-3, 1500))
def test_fuzz_core_infill_widths(w0, widmult, rounds):
    try:
        w = _core.infill_widths(w0, widmult, rounds)
    except OK_ERRORS as exc:
        rejected(exc)
        return
    accepted()
    assert len(w) == rounds and all(x >= 1 for x in w)
    if w0 % 2:
        assert all(x % 2 == 1 for x in w)
