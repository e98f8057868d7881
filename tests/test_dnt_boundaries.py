"""dnt bits pinned at their boundaries, table-driven (DESIGN.md sec. 4; CloudCovErr.jl
``gen_pix_mask`` for bits 1, 2, 8, 16, 32; cloudcov's guard for 4 and 64).

Each row sits on or next to a threshold, so moving a threshold (``-1e-3`` -> ``-1e-2``), making
a strict comparison loose (``kcond0 < 4 Np`` -> ``<=``) or setting bit 4 for a solve the guard
did not redo fails a row.
"""
import numpy as np
import pytest

import cloudcov as cc

NP = 5            # 4 Np = 20 of the 25 stamp pixels must be good
RING = np.ones((NP, NP), bool)
RING[1:-1, 1:-1] = False


def _psf_with_ratio(ratio):
    """Peak 1 at the centre, 0.5 elsewhere, one corner pixel at ``ratio`` (min/max = ratio)."""
    psf = np.full((NP, NP), 0.5)
    psf[2, 2] = 1.0
    psf[0, 0] = ratio
    return psf


@pytest.mark.parametrize("ratio, bits", [
    (0.0, 0),                 # min/max = 0: not negative
    (-5e-4, 8),               # negative, above -1e-3
    (-1e-3, 8),               # exactly -1e-3: the comparison is strict
    (-5e-3, 8 | 16),          # below -1e-3, above -1e-2: catches a -1e-2 threshold
    (-0.05, 8 | 16),
    (-0.1, 8 | 16),           # exactly -1e-1: strict
    (-0.2, 8 | 16 | 32),
])
def test_psf_ratio_bits(ratio, bits):
    pc = cc.pixel_classes(np.zeros((NP, NP), bool), _psf_with_ratio(ratio), 1.0, thr=1e5)  # none hidden
    assert pc.dnt == bits
    assert pc.psf.min() >= 0 if bits else pc.psf.min() == 0.0      # |PSF| used when negative
    assert pc.kpred == 0 and pc.kcond == NP * NP


def _first(n, where):
    """Boolean stamp with the first ``n`` pixels of ``where`` (row-major) set."""
    idx = np.flatnonzero(where.ravel())[:n]
    m = np.zeros(NP * NP, bool)
    m[idx] = True
    return m.reshape(NP, NP)


@pytest.mark.parametrize("n_masked, n_circle, dnt, kcond0, kcond", [
    (0, 5, 0, 20, 20),        # kcond0 = 4 Np: enough, no fallback
    (0, 6, 1, 19, 25),        # kcond0 = 4 Np - 1: radius cut dropped, then enough (no bit 2)
    (5, 1, 1, 19, 20),        # cut dropped leaves exactly 4 Np: no bit 2
    (6, 0, 1 | 2, 19, 25),    # still 4 Np - 1 without the cut: outer ring forced good
    (25, 0, 1 | 2, 0, 16),    # every pixel masked: only the 16 ring pixels are good
])
def test_good_pixel_fallback_bits(n_masked, n_circle, dnt, kcond0, kcond):
    km = _first(n_masked, RING)                       # masked pixels on the outer ring first
    if n_masked > RING.sum():
        km = np.ones((NP, NP), bool)
    circ = _first(n_circle, RING & ~km)
    psf = np.full((NP, NP), 1e-3)                     # nothing hidden (psf < thr / flux_floor)
    pc = cc.pixel_classes(km, psf, 1.0, thr=20, circmask=circ)
    assert (pc.dnt, pc.kcond0, pc.kcond) == (dnt, kcond0, kcond)
    assert pc.good.sum() == pc.kcond
    if dnt & 2:
        assert pc.good[RING].all()                    # the ring is forced good


def test_outer_ring_fallback_unhides_the_ring():
    """A star bright enough to hide the whole stamp: bits 1 and 2, the ring good and not
    hidden, the interior hidden (CloudCovErr.jl gen_pix_mask)."""
    pc = cc.pixel_classes(np.zeros((NP, NP), bool), np.ones((NP, NP)), 1e6, thr=20)
    assert pc.dnt == 1 | 2 and pc.kcond0 == 0
    np.testing.assert_array_equal(pc.good, RING)
    np.testing.assert_array_equal(pc.hidden, ~RING)
    assert (pc.kcond, pc.kpred) == (16, 9)


# ---- bit 4 (guard changed the computation) and bit 64 -----------------------------------------

N = NP * NP
HID = np.zeros(N, bool)
HID[[6, 12, 18]] = True


def _cce(cov, not_good=HID, hidden=HID, guard=True):
    rng = np.random.default_rng(4)
    return cc.cond_cov_est(cov, np.zeros(N, cov.dtype), not_good, hidden, rng.standard_normal(N),
                           np.zeros(N), np.full(N, 0.2), guard=guard)


def _ill(cond, dtype):
    """Good-good block with condition number ``cond``, hidden block well conditioned."""
    d = np.ones(N)
    d[np.flatnonzero(~HID)] = np.logspace(0, -np.log10(cond), N - HID.sum())
    return np.diag(d).astype(dtype)


@pytest.mark.parametrize("case, dtype, guard, dnt, precision", [
    ("well", np.float32, True, 0, 32),        # accepted at once: no bit 4
    ("well", np.float64, True, 0, 64),
    ("ill1e7", np.float32, True, 4, 64),      # float32 rcond 1e-7 < 1.2e-5: redone in float64
    ("ill1e7", np.float64, True, 0, 64),      # fine in float64: untouched
    ("ill1e7", np.float32, False, 0, 32),     # no guard: float32 answer kept
    ("singular", np.float64, True, 4, 64),    # Cholesky fails: regularised
    ("singular", np.float64, False, 64, 0),   # no guard: NaN, no bit 4
    ("no_hidden", np.float32, True, 64, 0),   # nothing to predict: no retry, so no bit 4
    ("no_good", np.float32, True, 64, 0),     # nothing to condition on: no bit 4
    ("indefinite", np.float64, True, 4 | 64, 0),   # the guard retried and failed
])
def test_guard_bits(case, dtype, guard, dnt, precision):
    not_good, hidden = HID, HID
    if case == "well":
        cov = _ill(10.0, dtype)
    elif case == "ill1e7":
        cov = _ill(1e7, dtype)
    elif case == "singular":
        cov = np.ones((N, N), dtype)
    elif case == "indefinite":
        cov = -np.eye(N, dtype=dtype)
    else:
        cov = _ill(10.0, dtype)
        if case == "no_hidden":
            hidden = np.zeros(N, bool)
        else:
            not_good = np.ones(N, bool)
    r = _cce(cov, not_good, hidden, guard)
    assert (r.dnt, r.precision) == (dnt, precision)
    assert np.isfinite(r.dcflux) == (not dnt & 64)
    assert (r.reg > 0) == (case == "singular" and guard)


def test_process_ccd_star_without_hidden_pixels_has_no_guard_bit():
    """Through the whole pipeline: a star too faint to hide any pixel gets bit 64 only."""
    rng = np.random.default_rng(2)
    shape = (60, 60)
    img = rng.standard_normal(shape) * 3.0
    sky = np.full(shape, 100.0)
    psf = np.full((7, 7), 1e-4)
    psf[3, 3] = 1e-3
    from astropy.table import Table
    cat = Table({"x": [30.0], "y": [30.0], "flux": [1.0]}, meta={"cloudcov_convention": "crowdsource"})
    out = cc.process_ccd(sky + img, sky, sky, cat, psf, 2.0, Np=7, widx=15, threads=1)
    assert out["kpred"][0] == 0 and out["dnt"][0] == 64


def _example_bit4(**kw):
    """dnt bit 4 (re-solved by the guard) of the embedded example's stars at thr=1000."""
    from cloudcov.example import load_example
    ex = load_example()
    out = cc.process_ccd(ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"],
                         ex["dq"], thr=1000, threads=2, **kw)
    return np.asarray(out["dnt"]).astype(int) & 4 != 0, out


def test_guard_triangular_estimate_switch_is_off_by_default_and_more_pessimistic():
    """_core.set_guard_triangular_estimate (benchmarks only) is off by default and returns the
    previous setting; switched on, the guard judges C_kk by the squared ?trcon estimate of its
    factor, which on the embedded example (thr=1000) re-solves more stars (dnt bit 4) than the
    incremental estimate the guard uses (benchmarks/bench_guard.py: 18 against 0 of 49)."""
    from conftest import core_switch
    default = _example_bit4()[0].sum()
    with core_switch("guard_triangular_estimate", True):   # asserts the default is off
        tri = _example_bit4()[0].sum()
    assert tri > default


def test_guard_pocon_estimate_switch_re_solves_accurate_float32_stars():
    """_core.set_guard_pocon_estimate (benchmarks only, the guard before 2026-12) is off by
    default; switched on, the guard judges C_kk by ?pocon's 1-norm estimate, 2-7x above the
    exact 2-norm condition number on the example, and re-solves in float64 stars (4 of 49 at
    thr=1000) whose float32 solves the default guard accepts and which agree with float64 to
    the item-2 accuracy (1e-5 relative in dcflux, 1e-3 sigma in cflux)."""
    from conftest import core_switch
    default, o32 = _example_bit4()
    with core_switch("guard_pocon_estimate", True):   # asserts the default is off
        pocon, _ = _example_bit4()
    assert default.sum() == 0 and pocon.sum() >= 1
    _, o64 = _example_bit4(dtype="float64")
    np.testing.assert_allclose(o32["dcflux"][pocon], o64["dcflux"][pocon], rtol=1e-5)
    assert np.max(np.abs(o32["cflux"][pocon] - o64["cflux"][pocon]) / o64["dcflux"][pocon]) < 1e-3
