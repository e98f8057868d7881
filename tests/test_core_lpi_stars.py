"""The per-star batch kernel (_core.lpi_stars) against the public per-star functions."""
import contextlib

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import cloudcov as cc
from cloudcov import _core
from conftest import correlated_field
from test_perstar import gaussian_psf

FIELDS = ("dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2")


def scene(rng, dtype, n=120, nstar=12, Np=11, w=21):
    x = correlated_field(rng, (n, n), scale=3, amp=3, noise=1, dtype=dtype)
    stars = (np.abs(rng.standard_normal((n, n))) * 0.5).astype(dtype)
    bad = (rng.random((n, n)) < 0.02).astype(np.uint8)
    m = (Np - 1) // 2 + (w - 1) // 2
    rows = rng.integers(m, n - m, nstar).astype(np.int64)
    cols = rng.integers(m, n - m, nstar).astype(np.int64)
    psf = np.stack([gaussian_psf(Np, 1.3 + 0.1 * k) for k in range(nstar)]).astype(dtype)
    psf[3, 0, 0] = -0.01   # a negative PSF pixel: dnt 8 (and 16)
    flux = rng.uniform(5e3, 1e5, nstar)
    circ = cc.circle_mask(Np, ((Np - 1) / 2) ** 2).astype(np.uint8)
    return x, stars, bad, rows, cols, psf, flux, circ


def run_batch(x, stars, bad, rows, cols, psf, flux, circ, Np, w, tile=None, threads=1, **kw):
    if tile is None:
        tile = (0, 0, x.shape[0], x.shape[1])
    r0, c0, r1, c1 = tile
    sub = np.ascontiguousarray(x[r0:r1, c0:c1])
    b, s = cc.shift_stack(sub, Np, w, w)
    with threadpool_limits(1):
        return _core.lpi_stars(s, b, Np, w, w, r0, c0, x, stars, bad, rows, cols, psf, flux,
                               circ, 20.0, kw.get("julia_compat", False), True, True, threads)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_equals_public_per_star(rng, dtype):
    Np, w = 11, 21
    x, stars, bad, rows, cols, psf, flux, circ = scene(rng, dtype, Np=Np, w=w)
    out = run_batch(x, stars, bad, rows, cols, psf, flux, circ, Np, w)
    b, s = cc.shift_stack(x, Np, w, w)
    h, a = (Np - 1) // 2, (w - 1) // 2
    for k in range(len(rows)):
        R, C = rows[k], cols[k]
        cov, mu = cc.build_cov(b, s, R - a, C - a, Np, w, w)
        sl = np.s_[R - h:R + h + 1, C - h:C + h + 1]
        pc = cc.pixel_classes(bad[sl], psf[k], flux[k], circmask=circ.astype(bool))
        r = cc.cond_cov_est(cov, mu, ~pc.good, pc.hidden, x[sl], stars[sl], pc.psf)
        assert (out["kcond0"][k], out["kcond"][k], out["kpred"][k]) == (pc.kcond0, pc.kcond, pc.kpred)
        assert out["dnt"][k] == (pc.dnt | r.dnt)
        rel = 1e-12 if dtype == np.float64 else 1e-3
        for f in FIELDS:
            assert out[f][k] == pytest.approx(getattr(r, f), rel=rel, abs=1e-9), (k, f)
    assert out["dnt"][3] & 8
    assert np.all(np.isfinite(out["dcflux"]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_thread_invariance(rng, dtype):
    Np, w = 11, 21
    args = scene(rng, dtype, nstar=30, Np=Np, w=w)
    o1 = run_batch(*args, Np, w, threads=1)
    o2 = run_batch(*args, Np, w, threads=2)
    for key in o1:
        np.testing.assert_array_equal(o1[key], o2[key])


def test_batch_tiling_invariance(rng):
    """The same stars computed from two different tiles agree to < 1e-6 relative."""
    Np, w = 11, 21
    x, stars, bad, rows, cols, psf, flux, circ = scene(rng, np.float64, n=150, Np=Np, w=w)
    m = (Np - 1) // 2 + (w - 1) // 2
    sel = (rows >= 40 + m) & (rows < 110 - m) & (cols >= 30 + m) & (cols < 120 - m)
    assert sel.sum() >= 1
    args = (x, stars, bad, rows[sel], cols[sel], np.ascontiguousarray(psf[sel]), flux[sel], circ)
    full = run_batch(*args, Np, w)
    tile = run_batch(*args, Np, w, tile=(40, 30, 110, 120))
    for f in FIELDS:
        np.testing.assert_allclose(tile[f], full[f], rtol=1e-9)
    for f in ("kcond0", "kcond", "kpred", "dnt"):
        np.testing.assert_array_equal(tile[f], full[f])


def test_batch_rejects_stamp_outside_tile(rng):
    Np, w = 11, 21
    x, stars, bad, rows, cols, psf, flux, circ = scene(rng, np.float64, Np=Np, w=w)
    rows = rows.copy()
    rows[0] = 2
    with pytest.raises(ValueError, match="star 0"):
        run_batch(x, stars, bad, rows, cols, psf, flux, circ, Np, w)


@contextlib.contextmanager
def star_group(g):
    """Inside the block the per-star stage conditions ``g`` stars at a time
    (``_core.set_star_group``); the default (2) is checked on entry and restored on exit."""
    assert _core.set_star_group(g) == 2, "_core.set_star_group: expected its default 2 on entry"
    try:
        yield
    finally:
        assert _core.set_star_group(2) == g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_star_group_invariance(rng, dtype, threads):
    """Stars conditioned in groups (their bordered matrices gathered, then factorised back to
    back: condition_group) give bitwise the results of one star after the other, for every
    group size, a last group left partial (13 stars), a star with nothing to predict among the
    others (dnt 64: no factorisation) and either thread count."""
    Np, w = 11, 21
    args = list(scene(rng, dtype, nstar=13, Np=Np, w=w))
    args[5] = args[5].copy()
    args[5][4] *= 1e-4   # star 4: PSF x flux below thr everywhere, no hidden pixel
    with star_group(1):
        ref = run_batch(*args, Np, w, threads=threads)
    assert ref["kpred"][4] == 0 and ref["dnt"][4] & 64 and np.all(ref["kpred"][5:] > 0)
    for g in (2, 3, 5, 8):
        with star_group(g):
            got = run_batch(*args, Np, w, threads=threads)
        for key in ref:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=f"g={g} {key}")


def test_star_group_with_guard_retries_and_unstable_stars():
    """The group schedule with stars the guard redoes in float64 (dnt bit 4: the triangular C_kk
    estimate re-solves 18 of the example's 49 stars at thr=1000) gives bitwise the results of
    one star after the other."""
    from conftest import core_switch
    from cloudcov.example import load_example
    ex = load_example()
    args = (ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"], ex["dq"])
    cols = ("cflux", "dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2", "kcond", "kpred", "dnt")
    with core_switch("guard_triangular_estimate", True):
        with star_group(1):
            ref = cc.process_ccd(*args, thr=1000, threads=2)
        assert np.sum(np.asarray(ref["dnt"]).astype(int) & 4 != 0) >= 5
        for g in (2, 3, 4):
            with star_group(g):
                got = cc.process_ccd(*args, thr=1000, threads=2)
            for c in cols:
                np.testing.assert_array_equal(np.asarray(got[c]), np.asarray(ref[c]), err_msg=f"g={g} {c}")


@pytest.mark.parametrize("threads", [1, 2])
def test_factor_timing_counts_each_place_in_the_group(rng, threads):
    """_core.set_factor_timing (benchmarks/bench_star_group.py): each first-attempt
    factorisation is timed at its place among its group's factorisations. 13 stars in groups
    of 3, star 4 with nothing to predict (no factorisation): the first places count 5 (stars 0,
    3, 6, 9, 12), the second 4 (1, 5, 7, 10), the third 3 (2, 8, 11), each with a positive
    time; nothing is counted with the timing off, and the results are bitwise the same."""
    Np, w = 11, 21
    args = list(scene(rng, np.float32, nstar=13, Np=Np, w=w))
    args[5] = args[5].copy()
    args[5][4] *= 1e-4   # star 4: no hidden pixel
    _core.factor_times()   # reset
    with star_group(3):
        ref = run_batch(*args, Np, w, threads=threads)
        assert [n for _, n in _core.factor_times()] == [0] * 8   # off by default
        assert _core.set_factor_timing(True) is False
        try:
            got = run_batch(*args, Np, w, threads=threads)
        finally:
            assert _core.set_factor_timing(False) is True
        times = _core.factor_times()
    assert ref["kpred"][4] == 0 and np.all(ref["dnt"] & 4 == 0)   # no guard retry
    assert [n for _, n in times] == [5, 4, 3, 0, 0, 0, 0, 0]
    assert all(t > 0 for t, n in times if n) and all(t == 0 for t, n in times if not n)
    assert [n for _, n in _core.factor_times()] == [0] * 8   # reset by the read
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


@pytest.mark.parametrize("g", [0, -1, 9])
def test_set_star_group_rejects_out_of_range(g):
    with pytest.raises(ValueError, match=r"g: stars conditioned at a time must be in \[1, 8\]"):
        _core.set_star_group(g)
    assert _core.set_star_group(2) == 2   # unchanged


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gather_probe_traversals_visit_the_gathers_entries(rng, dtype):
    """_core.gather_probe (benchmarks/bench_gather_floor.py) times each star's gather or a part
    of it; its checksums show that every part walks the gather's own entries: the gather with
    and without C_kk's column sums writes the same matrix, the L1 variant computes its values,
    the writes cover the strict lower triangle (n (n - 1) / 2 entries), the reads sum the raw
    stack entry of every pair of distinct good or hidden pixels (S = (N - 1) C + N mu_i mu_j
    from build_cov), and one read per line reads at least one per 64 bytes of them."""
    Np, w = 11, 21
    x, stars, bad, rows, cols, psf, flux, circ = scene(rng, dtype, Np=Np, w=w)
    b, s = cc.shift_stack(x, Np, w, w)
    args = (s, b, Np, w, w, 0, 0, x, stars, bad, rows, cols, psf, flux, circ, 20.0)
    out = _core.lpi_stars(*args, False, True, True, 1)
    n = (out["kcond"] + out["kpred"]).astype(np.int64)
    run = (out["kcond"] > 0) & (out["kpred"] > 0)
    assert run.sum() >= 10
    sec, chk = {}, {}
    for m in range(6):
        sec[m], chk[m] = _core.gather_probe(*args, m, True)
        assert sec[m].shape == (len(rows),) and np.isfinite(sec[m]).all() and (sec[m] >= 0).all()
        assert (chk[m][~run] == 0).all()
    np.testing.assert_array_equal(chk[0], chk[1])
    np.testing.assert_allclose(chk[5], chk[1], rtol=1e-9 if dtype == np.float64 else 1e-5)
    np.testing.assert_array_equal(chk[4][run], (n * (n - 1) // 2)[run])
    N = w * w
    h = (Np - 1) // 2
    for k in np.flatnonzero(run):
        R, C = int(rows[k]), int(cols[k])
        pc = cc.pixel_classes(bad[R - h:R + h + 1, C - h:C + h + 1] != 0, psf[k].astype(np.float64),
                              flux[k], thr=20.0, circmask=circ != 0)
        used = np.flatnonzero((pc.good | pc.hidden).ravel())
        assert len(used) == n[k]
        cov, mu = cc.build_cov(b, s, R - (w - 1) // 2, C - (w - 1) // 2, Np, w, w)
        S = (N - 1) * cov.astype(np.float64) + N * np.outer(mu, mu)
        Su = S[np.ix_(used, used)]
        want = (Su.sum() - np.trace(Su)) / 2
        assert abs(chk[2][k] - want) <= 1e-5 * np.abs(Su).sum(), k
        nread = n[k] * (n[k] - 1) // 2
        assert nread * np.dtype(dtype).itemsize / 64 <= chk[3][k] <= nread
    with pytest.raises(ValueError, match="mode"):
        _core.gather_probe(*args, 6)
