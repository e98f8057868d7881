"""Pixel classes and conditioning against direct numpy evaluation of eqs. 4, 5, 9, 10."""
import numpy as np
import pytest

import cloudcov as cc
from conftest import correlated_field


def gaussian_psf(Np, sigma=1.8):
    h = (Np - 1) // 2
    y, x = np.mgrid[-h:h + 1, -h:h + 1]
    p = np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
    return p / p.sum()


def star_case(rng, Np=15, flux=1e4, thr=20.0):
    x = correlated_field(rng, (80, 80), scale=2.5, amp=2.0, noise=0.5)
    cov, mu = cc.local_covariance(x, 40, 40, Np, 25)
    h = (Np - 1) // 2
    data = x[40 - h:40 + h + 1, 40 - h:40 + h + 1].copy()
    psf = gaussian_psf(Np)
    km = np.zeros((Np, Np), bool)
    km[0, 2] = km[3, 7] = True
    pc = cc.pixel_classes(km, psf, flux, thr=thr, rlim=(h + 0.5) ** 2)
    stars = 0.1 * flux * psf
    return cov, mu, pc, data, stars


def direct(cov, mu, good, hidden, data, stars, psf, diag_on=True):
    C = cov.astype(np.float64).copy()
    if diag_on:
        C[np.diag_indices_from(C)] += stars.ravel()
    k, ks = good.ravel(), hidden.ravel()
    x = data.ravel()
    Ckk, Cks, Css = C[np.ix_(k, k)], C[np.ix_(k, ks)], C[np.ix_(ks, ks)]
    A = np.linalg.solve(Ckk, Cks)
    xbar = A.T @ (x[k] - mu[k]) + mu[ks]
    P = Css - Cks.T @ A
    p = psf.ravel()[ks]
    Pip = np.linalg.solve(P, p)
    var = p @ Pip
    res = x[ks] @ Pip / var
    pred = xbar @ Pip / var
    chi2 = (x[k] - mu[k]) @ np.linalg.solve(Ckk, x[k] - mu[k])
    return dict(dcflux=var ** -0.5, dcflux_diag=np.sum(p ** 2 / np.diag(P)) ** -0.5,
                fdb_res=res, fdb_pred=pred, fdb_tot=pred - res, cchi2=chi2, xbar=xbar, P=P)


@pytest.mark.parametrize("diag_on", [True, False])
def test_cond_cov_est_equals_direct_evaluation(rng, diag_on):
    cov, mu, pc, data, stars = star_case(rng)
    assert pc.kpred > 0 and pc.kcond > pc.kpred
    r = cc.cond_cov_est(cov, mu, ~pc.good, pc.hidden, data, stars, pc.psf, diag_on=diag_on,
                        export_mean=True)
    ref = direct(cov, mu, pc.good, pc.hidden, data, stars, pc.psf, diag_on)
    for name in ("dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "fdb_tot", "cchi2"):
        assert getattr(r, name) == pytest.approx(ref[name], rel=1e-9, abs=1e-12), name
    np.testing.assert_allclose(r.mean[pc.hidden], ref["xbar"], rtol=1e-9)
    assert r.dnt == 0 and r.precision == 64
    # full-covariance error is at least the diagonal-only one for a correlated background
    assert r.dcflux >= r.dcflux_diag * 0.999


def test_cond_cov_est_float32(rng):
    cov, mu, pc, data, stars = star_case(rng)
    r64 = cc.cond_cov_est(cov, mu, ~pc.good, pc.hidden, data, stars, pc.psf)
    r32 = cc.cond_cov_est(cov.astype(np.float32), mu.astype(np.float32), ~pc.good, pc.hidden,
                          data, stars, pc.psf)
    assert r32.precision in (32, 64)
    for name in ("dcflux", "dcflux_diag", "fdb_tot", "cchi2"):
        assert getattr(r32, name) == pytest.approx(getattr(r64, name), rel=2e-3), name


def test_draws_follow_conditional_distribution(rng):
    cov, mu, pc, data, stars = star_case(rng, Np=11)
    r = cc.cond_cov_est(cov, mu, ~pc.good, pc.hidden, data, stars, pc.psf, export_mean=True,
                        n_draw=20000, rng=5)
    ref = direct(cov, mu, pc.good, pc.hidden, data, stars, pc.psf)
    d = r.draws[:, pc.hidden]
    np.testing.assert_array_equal(r.draws[:, ~pc.hidden], np.broadcast_to(data[~pc.hidden], d.shape[:1] + data[~pc.hidden].shape))
    sd = np.sqrt(np.diag(ref["P"]))
    assert np.all(np.abs(d.mean(0) - ref["xbar"]) < 5 * sd / np.sqrt(len(d)))
    emp = np.cov(d.T)
    assert np.abs(emp - ref["P"]).max() < 0.05 * np.abs(ref["P"]).max()
    # seeded: the same seed reproduces the draws, another seed changes every hidden pixel
    again = cc.cond_cov_est(cov, mu, ~pc.good, pc.hidden, data, stars, pc.psf, n_draw=3, rng=5)
    np.testing.assert_array_equal(
        again.draws, cc.cond_cov_est(cov, mu, ~pc.good, pc.hidden, data, stars, pc.psf,
                                     n_draw=3, rng=5).draws)
    other = cc.cond_cov_est(cov, mu, ~pc.good, pc.hidden, data, stars, pc.psf, n_draw=3, rng=6)
    assert np.all(other.draws[:, pc.hidden] != again.draws[:, pc.hidden])
    np.testing.assert_array_equal(other.draws[:, ~pc.hidden], again.draws[:, ~pc.hidden])


def test_guard_float64_retry_on_ill_conditioned_float32(rng):
    """A float32 covariance with condition number ~1e7 is redone in float64 (dnt bit 4)."""
    n = 25
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    ev = np.logspace(0, 7, n)
    cov = (q * ev) @ q.T
    cov = (cov + cov.T) / 2
    hidden = np.zeros(n, bool)
    hidden[[6, 12, 18]] = True
    psf = np.full(n, 0.1)
    data = rng.standard_normal(n)
    stars = np.zeros(n)
    mu = np.zeros(n)
    r32 = cc.cond_cov_est(cov.astype(np.float32), mu.astype(np.float32), hidden, hidden, data,
                          stars, psf)
    assert r32.dnt & 4 and not r32.dnt & 64 and r32.precision == 64
    r64 = cc.cond_cov_est(cov.astype(np.float32).astype(np.float64), mu, hidden, hidden, data,
                          stars, psf)
    assert r64.dnt == 0
    assert r32.dcflux == r64.dcflux
    # without the guard the float32 answer is accepted as is (CloudCovErr.jl behaviour)
    rng_off = cc.cond_cov_est(cov.astype(np.float32), mu.astype(np.float32), hidden, hidden,
                              data, stars, psf, guard=False)
    assert rng_off.dnt == 0 and rng_off.precision == 32


def test_guard_regularises_singular_and_flags_indefinite(rng):
    n = 16
    v = rng.standard_normal((n, 3))
    cov = v @ v.T      # rank 3: singular
    hidden = np.zeros(n, bool)
    hidden[[5, 10]] = True
    args = (np.zeros(n), hidden, hidden, rng.standard_normal(n), np.zeros(n), np.full(n, 0.2))
    r = cc.cond_cov_est(cov, *args)
    assert r.dnt == 4 and r.reg > 0 and r.precision == 64     # regularised, values kept
    assert np.isfinite(r.dcflux) and np.isfinite(r.cchi2)
    off = cc.cond_cov_est(cov, *args, guard=False)
    assert off.dnt == 64 and np.isnan(off.dcflux)
    bad = cc.cond_cov_est(-np.eye(n), *args, export_mean=True, n_draw=2)
    assert bad.dnt == 4 | 64      # the guard retried (float64, regularised) and failed
    assert all(np.isnan(getattr(bad, f)) for f in
               ("dcflux", "dcflux_diag", "fdb_tot", "fdb_res", "fdb_pred", "cchi2"))
    assert np.all(np.isnan(bad.mean[hidden.reshape(4, 4)]))


def test_pixel_classes_properties(rng):
    Np = 11
    psf = gaussian_psf(Np, 1.5)
    for flux in (10.0, 1e4, 1e6):
        km = rng.random((Np, Np)) < 0.1
        pc = cc.pixel_classes(km, psf, flux)
        assert pc.kcond + pc.kpred <= Np * Np
        assert pc.kcond == pc.good.sum() and pc.kpred == pc.hidden.sum()
        assert not np.any(pc.good & pc.hidden)
        assert not np.any(pc.good & km) or pc.dnt & 2
        expect = psf > 20 / max(flux, 1e4)
        if pc.dnt & 2:   # outer ring forced good and not hidden
            expect[[0, -1], :] = False
            expect[:, [0, -1]] = False
        np.testing.assert_array_equal(pc.hidden, expect)
    # a fully masked stamp triggers both fallbacks
    pc = cc.pixel_classes(np.ones((Np, Np), bool), psf, 1e5)
    assert pc.dnt & 3 == 3 and pc.kcond == 4 * (Np - 1)


def test_flux_floor_sets_the_hidden_threshold():
    Np = 11
    psf = gaussian_psf(Np, 1.5)
    km = np.zeros((Np, Np), bool)
    for floor in (1e2, 1e3, 1e4):
        pc = cc.pixel_classes(km, psf, 50.0, thr=20, flux_floor=floor)
        assert pc.dnt & 2 == 0
        np.testing.assert_array_equal(pc.hidden, psf > 20 / max(50.0, floor))
    with pytest.raises(ValueError, match="flux_floor"):
        cc.pixel_classes(km, psf, 50.0, flux_floor=0)


def _spd_with_spectrum(rng, ev):
    """Q diag(ev) Q^T with a random orthogonal Q (float64)."""
    q, _ = np.linalg.qr(rng.standard_normal((len(ev), len(ev))))
    return (q * ev) @ q.T


def _ice_rayleigh(lf):
    """Brute force of the guard's estimate: incremental condition estimation (Bischof 1990)
    of the smallest singular value of the lower triangular lf, run on M = J lf^T J (J the
    reversal) one appended row at a time with the 2 x 2 eigenproblem solved by numpy, then
    the Rayleigh quotient u^T A^-1 u / u^T u of A = lf lf^T at its vector."""
    n = lf.shape[0]
    m = lf.T[::-1, ::-1]          # lower triangular, same singular values
    x, sest = np.ones(1), abs(m[0, 0])
    for j in range(1, n):
        alpha, gamma = m[j, :j] @ x, m[j, j]
        w, v = np.linalg.eigh(np.array([[sest ** 2 + alpha ** 2, alpha * gamma],
                                        [alpha * gamma, gamma ** 2]]))
        x = np.append(v[0, 0] * x, v[1, 0])
        sest = np.sqrt(max(w[0], 0.0))
    u = x[::-1]                   # back in lf's row order: ||lf^T u|| = sest
    y = np.linalg.solve(lf, u)
    return (y @ y) / (u @ u)


@pytest.mark.parametrize("n, cond", [(1, 1.0), (7, 1e2), (60, 1e4), (200, 1e7)])
def test_guard_estimate_equals_brute_force_incremental_estimate(n, cond):
    """_core.guard_estimates' rho (LAPACK ?laic1 over the factor's columns, last to first, and
    one ?trsv) equals the incremental estimate written out in numpy."""
    from cloudcov import _core
    rng = np.random.default_rng(n)
    a = _spd_with_spectrum(rng, np.logspace(0, -np.log10(cond), n))
    lf = np.linalg.cholesky(a)
    rho, _ = _core.guard_estimates(np.asfortranarray(lf))
    assert rho == pytest.approx(_ice_rayleigh(lf), rel=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("eps", [0.0, 1e-9, 1e-5])
def test_guard_estimate_survives_vanishing_rescale_factors(dtype, eps):
    """Factors whose every ICE step rescales u by a tiny factor (eps > 0: the scale kept
    apart from u falls below float range within a few steps and is renormalised) or by zero
    (eps = 0, a diagonal factor: u restarts at the new column): rho still equals the brute
    force, and the estimate the (nearly) diagonal factor allows, 1 / min(diag)^2."""
    from cloudcov import _core
    rng = np.random.default_rng(5)
    n = 120
    d = np.logspace(-2, 0, n)   # smallest first: each column ICE appends is the new smallest
    lf = np.diag(d) + eps * np.tril(rng.standard_normal((n, n)), -1)
    rho, _ = _core.guard_estimates(np.asfortranarray(lf, dtype=dtype))
    assert rho == pytest.approx(_ice_rayleigh(lf), rel=1e-9 if dtype == np.float64 else 1e-4)
    assert rho == pytest.approx(1 / d[0] ** 2, rel=1e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_guard_estimate_bounds_the_inverse_norm_from_below_and_closely(dtype):
    """rho is a Rayleigh quotient of A^-1, so rho <= ||A^-1||_2 = 1 / lambda_min; on matrices
    of random eigenvectors and spectra spread over 1e1-1e5 it is within a factor 2 of it."""
    from cloudcov import _core
    rng = np.random.default_rng(11)
    for n, cond, shape in [(40, 1e1, "log"), (150, 1e3, "log"), (300, 1e5, "log"),
                           (300, 1e4, "one small"), (681, 1e3, "log")]:
        ev = np.logspace(0, -np.log10(cond), n) if shape == "log" else np.r_[np.ones(n - 1), 1 / cond]
        a = _spd_with_spectrum(rng, ev)
        lf = np.asfortranarray(a, dtype=dtype)
        assert _core.lapack_potrf(lf) == 0
        rho, _ = _core.guard_estimates(np.asfortranarray(np.tril(lf)))
        exact = 1 / ev.min()
        assert rho <= exact * (1 + (1e-3 if dtype == np.float32 else 1e-9)), (n, cond, shape)
        assert rho >= 0.5 * exact, (n, cond, shape, rho / exact)


def test_guard_retries_a_hidden_ill_conditioned_direction(rng):
    """The guard finds ill-conditioning that is not on the diagonal: a good-pixel covariance of
    random eigenvectors and condition number 1e7 is redone in float64 (bit 4), one of
    condition number 1e2 is accepted in float32."""
    Np = 7
    n = Np * Np
    hidden = np.zeros(n, bool)
    hidden[[17, 24, 31]] = True
    g = np.flatnonzero(~hidden)
    for cond, dnt, precision in ((1e7, 4, 64), (1e2, 0, 32)):
        cov = np.eye(n)
        cov[np.ix_(g, g)] = _spd_with_spectrum(rng, np.logspace(0, -np.log10(cond), len(g)))
        r = cc.cond_cov_est(cov.astype(np.float32), np.zeros(n, np.float32), hidden, hidden,
                            rng.standard_normal(n), np.zeros(n), np.full(n, 0.2))
        assert (r.dnt, r.precision) == (dnt, precision), cond
