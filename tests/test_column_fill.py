"""The per-star gather by whole stamp rows (C++ column_fill.hpp, AVX-512) against the portable
run-by-run gather (StackCov::fill / fill_transposed): the bordered matrix, and so every star
output, must be bitwise the same. ``_core.set_column_fill_simd(False)`` selects the portable
loop in the same process."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import cloudcov as cc
from cloudcov import _core
from conftest import core_switch, correlated_field
from test_perstar import gaussian_psf

OUT = ("dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2", "kcond0", "kcond", "kpred", "dnt")

active = pytest.mark.skipif(not _core.column_fill_simd_active(33),
                            reason="no AVX-512 on this CPU (or CLOUDCOV_SIMD caps it): the "
                                   "portable gather is the only one")


def stars_scene(rng, Np, w, n, nstar):
    """A float32 correlated field with 3% bad pixels and stars whose hidden sets range from a
    few pixels to most of the stamp (PSF widths and fluxes vary), some on the stamp's edge
    rows and columns."""
    x = correlated_field(rng, (n, n), scale=2, amp=4, noise=1, dtype=np.float32)
    stars = (np.abs(rng.standard_normal((n, n))) * 0.5).astype(np.float32)
    bad = (rng.random((n, n)) < 0.03).astype(np.uint8)
    m = (Np - 1) // 2 + (w - 1) // 2
    rows = np.sort(rng.integers(m, n - m, nstar)).astype(np.int64)
    cols = rng.integers(m, n - m, nstar).astype(np.int64)
    psf = np.stack([gaussian_psf(Np, 0.8 + 0.25 * Np * (k % 5) / 5) for k in range(nstar)])
    psf = psf.astype(np.float32)
    flux = np.geomspace(3e2, 3e6, nstar)
    circ = cc.circle_mask(Np, ((Np - 1) / 2) ** 2).astype(np.uint8)
    return x, stars, bad, rows, cols, psf, flux, circ


def run_stars(scene, Np, w, guard=True, threads=1):
    x, stars, bad, rows, cols, psf, flux, circ = scene
    b, s = cc.shift_stack(x, Np, w, w)
    with threadpool_limits(1):
        return _core.lpi_stars(s, b, Np, w, w, 0, 0, x, stars, bad, rows, cols, psf, flux, circ,
                               20.0, False, True, guard, threads)


def assert_bitwise(a, b):
    for c in a:
        np.testing.assert_array_equal(np.asarray(a[c]), np.asarray(b[c]), err_msg=c)


@active
@pytest.mark.parametrize("Np,w,n,nstar", [(5, 7, 40, 15), (11, 9, 60, 20), (33, 17, 110, 12),
                                          (63, 3, 70, 6)])
def test_column_fill_gives_the_portable_gather_bitwise(Np, w, n, nstar):
    """Stamps of 5 to 63 pixels (63: the last stamp column is bit 62 of the row masks), with
    and without the guard (its C_kk column sums come from the kernel too)."""
    rng = np.random.default_rng(100 + Np)
    scene = stars_scene(rng, Np, w, n, nstar)
    for guard in (True, False):
        fast = run_stars(scene, Np, w, guard)
        with core_switch("column_fill_simd", False):
            slow = run_stars(scene, Np, w, guard)
        assert_bitwise(fast, slow)
        assert np.isfinite(fast["dcflux"]).sum() >= nstar - 1
    assert (fast["kpred"] > 0).all() and fast["kpred"].max() > Np * Np // 4


@active
def test_column_fill_guard_decisions_bitwise():
    """Without star counts on the diagonal most stamps of a smooth field fail the float32
    condition guard (dnt bit 4; the C_kk estimate uses the kernel's column sums): the same
    stars are re-solved, with bitwise the same outputs."""
    Np, w = 11, 9
    rng = np.random.default_rng(3)
    x, stars, bad, rows, cols, psf, flux, circ = stars_scene(rng, Np, w, 60, 20)
    x = correlated_field(np.random.default_rng(4), x.shape, scale=3, amp=4, noise=1.0,
                         dtype=np.float32)
    scene = (x, np.zeros_like(stars), bad, rows, cols, psf, flux, circ)
    fast = run_stars(scene, Np, w)
    with core_switch("column_fill_simd", False):
        slow = run_stars(scene, Np, w)
    assert_bitwise(fast, slow)
    guarded = (fast["dnt"] & 4) != 0
    assert 0 < guarded.sum() < len(rows)


@active
def test_column_fill_impute_prediction_bitwise():
    """Imputation (given hidden sets, no PSF; float32 stack, the kernel's precision): a trail,
    a block near the image's top edge and scattered pixels; the filled image, its std and the
    draws are bitwise the same."""
    rng = np.random.default_rng(7)
    img = correlated_field(rng, (90, 96), scale=2.5, amp=5, noise=0.5, dtype=np.float32) + 100
    mask = np.zeros(img.shape, bool)
    mask[40, 10:80] = True                       # a trail
    mask[3:6, 20:26] = True                      # near the top edge
    mask[rng.random(img.shape) < 0.01] = True    # scattered bad pixels
    kw = dict(method="lpi", Np=11, widx=13, n_draw=2, rng=5, dtype=np.float32)
    fast = cc.impute(img, mask, **kw)
    with core_switch("column_fill_simd", False):
        slow = cc.impute(img, mask, **kw)
    np.testing.assert_array_equal(fast.image, slow.image)
    np.testing.assert_array_equal(fast.std, slow.std)
    np.testing.assert_array_equal(fast.draws, slow.draws)
    assert np.isfinite(fast.image).all()


def test_column_fill_availability():
    """The kernel runs only for stamps of at most 64 pixels, on an AVX-512 CPU, with the switch
    on; the switch returns its previous setting."""
    simd = _core.simd_level() == "avx512"
    assert _core.column_fill_simd_active(33) is simd
    assert _core.column_fill_simd_active(63) is simd
    assert _core.column_fill_simd_active(65) is False
    with core_switch("column_fill_simd", False):
        assert _core.column_fill_simd_active(33) is False
    assert _core.column_fill_simd_active(33) is simd


def test_column_fill_not_used_below_avx512():
    """CLOUDCOV_SIMD=avx2 or baseline (a fresh process) leaves the portable gather."""
    import os
    import subprocess
    import sys

    for level in ("avx2", "baseline"):
        env = dict(os.environ, CLOUDCOV_SIMD=level)
        r = subprocess.run([sys.executable, "-c", "from cloudcov import _core; "
                            "print(_core.simd_level(), _core.column_fill_simd_active(33))"],
                           env=env, capture_output=True, text=True, timeout=120, check=True)
        lvl, on = r.stdout.split()
        assert lvl != "avx512" and on == "False", r.stdout


def stamp_classes(rng, Np, frac_bad=0.05):
    """Random good/hidden classes of an Np x Np stamp: a hidden disc of random radius around a
    random centre, 5% bad pixels, the circular stamp mask; flat (Np * Np,) uint8 arrays."""
    yy, xx = np.mgrid[:Np, :Np]
    cy, cx = rng.integers(0, Np, 2)
    hidden = (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(0.5, Np / 2) ** 2
    circ = cc.circle_mask(Np, ((Np - 1) / 2) ** 2)
    not_good = hidden | (rng.random((Np, Np)) < frac_bad) | ~circ
    return not_good.astype(np.uint8).ravel(), hidden.astype(np.uint8).ravel()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bordered_matrix_is_the_explicit_covariance(dtype):
    """_core.bordered_matrix (the per-star gather, whichever path runs) equals build_cov's
    explicit covariance of the good then hidden pixels, entry for entry (float32: bit for bit),
    with the star counts on the diagonal; the column sums are C_kk's absolute column sums."""
    rng = np.random.default_rng(21)
    Np, w = 13, 7
    x = correlated_field(rng, (70, 74), scale=2, amp=3, noise=1, dtype=dtype)
    b, s = cc.shift_stack(x, Np, w, w)
    for _ in range(6):
        r0, c0 = rng.integers(0, b.shape[0] - Np), rng.integers(0, b.shape[1] - Np)
        ng, hd = stamp_classes(rng, Np)
        stars = np.abs(rng.standard_normal(Np * Np)) * 0.3
        M, colsum, anorm = _core.bordered_matrix(b, s, Np, w, w, r0, c0, ng, hd, stars)
        h = (Np - 1) // 2   # build_cov takes the stamp centre
        cov, _ = cc.build_cov(b, s, r0 + h, c0 + h, Np, w, w)
        order = np.r_[np.flatnonzero(ng == 0), np.flatnonzero(hd)]
        want = np.tril(cov[np.ix_(order, order)], -1)
        if dtype == np.float32:   # both round the same double value
            np.testing.assert_array_equal(np.tril(M, -1), want)
        else:                     # build_cov computes (S / N - mean product) N / (N - 1)
            np.testing.assert_allclose(np.tril(M, -1), want, rtol=1e-12,
                                       atol=1e-13 * np.abs(cov).max())
        d = np.diag(cov)[order].astype(np.float64) + stars[order]
        np.testing.assert_allclose(np.diag(M), d, rtol=2e-7 if dtype == np.float32 else 1e-15)
        assert (np.triu(M, 1) == 0).all()
        kc = int((ng == 0).sum())
        full = np.tril(M) + np.tril(M, -1).T
        np.testing.assert_allclose(colsum, np.abs(full[:kc, :kc].astype(np.float64)).sum(axis=0),
                                   rtol=1e-12)
        assert anorm == colsum.max()


@active
@pytest.mark.parametrize("Np", [5, 11, 33, 63])
def test_bordered_matrix_kernel_bitwise(Np):
    """The AVX-512 gather gives the portable gather's matrix, column sums and ||C_kk||_1 bit
    for bit, on random stamp classes (hidden discs anywhere, the stamp's first and last
    rows and columns included)."""
    rng = np.random.default_rng(Np)
    w = 5
    n = Np + w + 12
    x = correlated_field(rng, (n, n + 3), scale=2, amp=3, noise=1, dtype=np.float32)
    b, s = cc.shift_stack(x, Np, w, w)
    for _ in range(8 if Np < 60 else 3):
        r0, c0 = rng.integers(0, b.shape[0] - Np + 1), rng.integers(0, b.shape[1] - Np + 1)
        ng, hd = stamp_classes(rng, Np)
        if hd.sum() == 0 or (ng == 0).sum() == 0:
            continue
        stars = np.abs(rng.standard_normal(Np * Np)) * 0.3
        fast = _core.bordered_matrix(b, s, Np, w, w, r0, c0, ng, hd, stars)
        with core_switch("column_fill_simd", False):
            slow = _core.bordered_matrix(b, s, Np, w, w, r0, c0, ng, hd, stars)
        np.testing.assert_array_equal(fast[0], slow[0])
        np.testing.assert_array_equal(fast[1], slow[1])
        assert fast[2] == slow[2]
