"""CloudCovErr.jl v0.9.2 test-suite values (../shared/spec/PARITY.md) in cloudcov conventions.

Julia arrays are the transpose of ours: Julia A[i, j] is cloudcov a[j-1, i-1], a Julia
literal [a b; c d] is np.array([[a, b], [c, d]]).T, flat indices are identical.
"""
import numpy as np
import pytest

import cloudcov as cc
from cloudcov import _core

TEST_PSF_ROWS = [
    [0.02, 0.02, 0.03, 0.03, 0.04, 0.04, 0.04, 0.03, 0.03, 0.02, 0.02],
    [0.02, 0.03, 0.04, 0.05, 0.06, 0.06, 0.06, 0.05, 0.04, 0.03, 0.02],
    [0.03, 0.04, 0.05, 0.07, 0.09, 0.1, 0.09, 0.07, 0.05, 0.04, 0.03],
    [0.03, 0.05, 0.07, 0.11, 0.17, 0.2, 0.17, 0.11, 0.07, 0.05, 0.03],
    [0.04, 0.06, 0.09, 0.17, 0.33, 0.5, 0.33, 0.17, 0.09, 0.06, 0.04],
    [0.04, 0.06, 0.1, 0.2, 0.5, 1.0, 0.5, 0.2, 0.1, 0.06, 0.04],
]


def parity_psf():
    """The 11x11 symmetric PSF of tst_perstar.jl (rows 6-10 mirror rows 4-0)."""
    rows = TEST_PSF_ROWS + TEST_PSF_ROWS[4::-1]
    return np.array(rows)


# ---- cov.jl ----------------------------------------------------------------------------------

def test_boxsmooth_reference():
    arr = np.arange(1, 122, dtype=np.float64).reshape(11, 11)
    out = cc.boxcar(arr, 3, 3)
    expected = np.array([[117 + 99 * k + 9 * j for j in range(9)] for k in range(9)], float)
    assert out.shape == (9, 9)
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0] == 117 and out[1, 0] == 216 and out[8, 8] == 981


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_cov_avg_reference(dtype, threads):
    # Julia: Np=5, widx=widy=3, tile 19x19 holding 1:361 column-major.
    x = np.arange(1, 362, dtype=dtype).reshape(19, 19)
    bimage, stack = cc.shift_stack(x, 5, 3, 3, threads=threads)
    assert bimage.shape == (17, 17) and stack.shape == (5, 17, 17, 9)
    assert bimage[-1, -1] == 3069
    # Julia bism[end,1,1,2]: shift (drow=+1, dcol=-4) at boxcar-output (row 0, col 16)
    assert stack[1, 0, 16, -4 + 4] == 19488
    assert cc.stack_value(stack, 0, 16, 1, -4) == 19488
    # The half Julia never writes (drow == 0, dcol < 0) mirrors (0, +dcol) one pixel over:
    # the same products, so the same exact integers.
    for d in range(1, 5):
        np.testing.assert_array_equal(stack[0, :, d:, 4 - d], stack[0, :, :17 - d, 4 + d])


def test_build_cov_reference_julia_compat():
    x = np.arange(1, 362, dtype=np.float32).reshape(19, 19)
    bimage, stack = cc.shift_stack(x, 5, 3, 3)
    cov, mu = cc.build_cov(bimage, stack, 5, 5, 5, 3, 3, julia_compat=True)
    assert cov.dtype == np.float32
    # Julia asserts these to 1e-7; julia_compat reproduces the float32 values exactly.
    assert cov[0, 0] == np.float32(271.50018310546875)
    assert cov[0, -1] == np.float32(271.4996337890625)
    assert cov[-1, -1] == np.float32(271.500732421875)
    assert abs(cov[0, 0] - 271.500183105) < 1e-7
    assert abs(cov[0, -1] - 271.499633789) < 1e-7
    np.testing.assert_array_equal(cov, cov.T)
    assert np.all(np.isfinite(cov))


def test_build_cov_reference_default():
    """Default float64 arithmetic gives the exact value 271.5 (Julia's ulps are float32
    rounding in its order of operations)."""
    x = np.arange(1, 362, dtype=np.float32).reshape(19, 19)
    bimage, stack = cc.shift_stack(x, 5, 3, 3)
    cov, mu = cc.build_cov(bimage, stack, 5, 5, 5, 3, 3)
    for v in (cov[0, 0], cov[0, -1], cov[-1, -1]):
        assert abs(v - 271.5) < 1e-3
    np.testing.assert_allclose(cov, 271.5, rtol=0, atol=1e-3)
    # signed mean = boxcar mean; julia_compat returns |mean| (equal here: all positive)
    _, mu_j = cc.build_cov(bimage, stack, 5, 5, 5, 3, 3, julia_compat=True)
    np.testing.assert_allclose(mu, mu_j, rtol=1e-6)
    np.testing.assert_allclose(mu, bimage[3:8, 3:8].ravel() / 9, rtol=1e-6)


def test_outest_bounds():
    # Julia outest_bounds([-1,100],100) == 2 (1-based) -> 0-based [-2, 99]
    assert cc.outest_bounds(np.array([-1, 100]) - 1, 100) == 2
    assert cc.outest_bounds(np.array([-1, 105]) - 1, 100) == 5
    assert cc.outest_bounds([0, 99], 100) == 0


# ---- perstar.jl -------------------------------------------------------------------------------

def _kmasked():
    km = np.zeros((11, 11), bool)
    km[10, 5] = True  # Julia kmasked2d[6, end]
    km[5, 5] = True   # Julia kmasked2d[6, 6]
    return km


def test_gen_pix_mask_thr2000():
    pc = cc.pixel_classes(_kmasked(), parity_psf(), 100, thr=2000,
                          circmask=cc.circle_mask(11, rlim=25))
    assert not pc.good[10, 5]      # Julia reshape(kstar,11,11)[6,end]
    assert pc.good[0, 5]           # Julia [6,1]
    assert (pc.kcond0, pc.kcond, pc.kpred, pc.dnt) == (71, 71, 9, 0)


def test_gen_pix_mask_thr200_fallbacks():
    pc = cc.pixel_classes(_kmasked(), parity_psf(), 100, thr=200,
                          circmask=cc.circle_mask(11, rlim=25))
    assert pc.good[0, 0] and not pc.hidden[0, 0]
    assert pc.dnt & 3 == 3


def test_gen_pix_mask_negative_psf():
    psf = parity_psf()
    psf[0, 10] = -0.2   # Julia psftest[11, 1]
    pc = cc.pixel_classes(_kmasked(), psf, 1e5, thr=200, circmask=cc.circle_mask(11, rlim=25))
    assert pc.dnt & 32 and pc.dnt & 16 and pc.dnt & 8
    assert np.all(pc.psf >= 0) and pc.psf[0, 10] == pytest.approx(0.2)


def test_stamp_cutter_orientation():
    # Julia: 51x51, mask at [26,26], stamp_cutter(26,26,...) -> kmasked2d[17,17] (Np=33)
    mask = np.zeros((51, 51), bool)
    mask[25, 25] = True
    stamp = mask[25 - 16:25 + 17, 25 - 16:25 + 17]
    assert stamp[16, 16]


COV_ROWS = """47.2245 1.33946 0.628186 0.841306 0.288469 -0.437706 0.754434 -0.245601 -0.150857
0 47.2602 1.39354 0.570245 0.871201 0.243023 -0.457453 0.806491 -0.209147
0 0 47.166 1.40991 0.471935 0.767516 0.251835 -0.398556 0.772153
0 0 0 47.1832 1.44052 0.461676 0.757649 0.282371 -0.314066
0 0 0 0 47.2298 1.34296 0.471258 0.766785 0.218381
0 0 0 0 0 47.2845 1.36993 0.492573 0.715498
0 0 0 0 0 0 47.1459 1.3015 0.425096
0 0 0 0 0 0 0 47.1451 1.30432
0 0 0 0 0 0 0 0 47.2068"""


def cond_inputs():
    cov = np.array([[float(v) for v in line.split()] for line in COV_ROWS.splitlines()])
    mu = np.array([0.005037597380578518, 0.003629490500316024, 0.0026571564376354218,
                   0.0032599247060716152, 0.002772299339994788, 0.0034678715746849775,
                   0.0051109688356518745, 0.0037797277327626944, 0.003628455102443695])
    data = np.array([[0.516654, -0.0805772, -0.774471],
                     [0.128205, -0.920908, 0.165229],
                     [1.94308, 0.212453, -0.363535]])
    psf = np.array([[0.0274769, 0.0330318, 0.0301219],
                    [0.0360258, 0.0403823, 0.033388],
                    [0.032605, 0.0339776, 0.0255433]])
    hidden = np.zeros((3, 3), bool)
    hidden[1, 1] = hidden[2, 1] = True   # Julia kpsf2d[2,2], [2,3]: flat 4 and 7
    not_good = hidden.ravel().copy()
    not_good[0] = not_good[-1] = True
    return cov, mu, not_good, hidden, data, 2 * np.ones((3, 3)), psf


def test_cond_cov_est_reference():
    r = cc.cond_cov_est(*cond_inputs())
    assert abs(r.dcflux - 133.81487945671913) < 1e-11
    assert r.dnt == 0 and r.precision == 64
    for v in (r.dcflux_diag, r.fdb_tot, r.fdb_res, r.fdb_pred, r.cchi2):
        assert np.isfinite(v)
    assert r.fdb_tot == pytest.approx(r.fdb_pred - r.fdb_res)


def test_cond_cov_est_symmetrised_differs():
    """Julia reads only upper triangles of the good and hidden blocks; a symmetrised
    matrix gives 133.7514 (PARITY.md)."""
    cov, *rest = cond_inputs()
    sym = np.triu(cov) + np.triu(cov, 1).T
    assert cc.cond_cov_est(sym, *rest).dcflux == pytest.approx(133.7514, abs=1e-4)


def test_cond_cov_est_exports():
    args = cond_inputs()
    r = cc.cond_cov_est(*args, export_mean=True)
    assert r.mean.shape == (3, 3) and r.draws is None
    r = cc.cond_cov_est(*args, export_mean=True, n_draw=2, rng=0)
    assert r.mean.shape == (3, 3)
    assert r.draws.shape == (2, 3, 3)   # Julia: (9, 2) flat pixels x draws
    data = args[4]
    hidden = args[3]
    np.testing.assert_array_equal(r.mean[~hidden], data[~hidden])
    np.testing.assert_array_equal(r.draws[1][~hidden], data[~hidden])


# ---- preprocess.jl ----------------------------------------------------------------------------

def test_circle_mask():
    ref = np.array([[True, False, True], [False, False, False], [True, False, True]])
    np.testing.assert_array_equal(cc.circle_mask(3, rlim=1), ref)


def test_findmaxpsf():
    ref = np.array([[1.1, 1.2, 1.1], [3.2, 6.0, 1.9], [2.2, 2.5, 2.0]]).T
    assert cc.findmaxpsf(ref, thr=20) == 6.25


@pytest.mark.parametrize("dtype,w", [(np.float32, 19), (np.float32, 1), (np.float64, 19)])
def test_prelim_infill_ones(dtype, w):
    im = np.ones((33, 33), dtype)
    mask = np.zeros((33, 33), bool)
    mask[16, 16] = True
    res = cc.prelim_infill(im, mask, widx=w, widy=w)
    assert res.image[16, 16] == 1.0
    assert res.image.dtype == dtype
    if w == 19:
        assert res.rounds == 1 and res.n_fallback == 0
    else:   # width 1 never grows: 10 rounds, then the median fallback
        assert res.rounds == 10 and res.n_fallback == 1
        assert cc.prelim_infill(im, mask, widx=w, julia_compat=True).image[16, 16] == 1.0


def test_infill_widths_sequence():
    assert list(_core.infill_widths(19, 1.4, 10)) == [19, 27, 37, 51, 71, 99, 139, 195, 273, 383]
    assert list(_core.infill_widths(1, 1.4, 3)) == [1, 1, 1]


def test_gen_mask_static_psf_single():
    # Julia gen_mask_staticPSF!(51x51, psf 31x31 with 1 at centre, star (26,26), flux 200)
    psf = np.zeros((31, 31))
    psf[15, 15] = 1
    mask = np.zeros((51, 51), bool)
    cc.gen_mask_static_psf(mask, psf, psf, [25], [25], [200])
    assert mask[25, 25] and mask.sum() == 1


def test_gen_mask_static_psf2():
    # Julia arrays transposed: psfstamp[16,16]=100, [16,1]=2 -> ours [15,15], [0,15]
    big = np.zeros((33, 33))
    big[15, 15] = 100
    big[0, 15] = 2
    small = np.zeros((31, 31))
    small[15, 15] = 100
    small[7, 0] = 1    # Julia psfstamp1[1,8]
    mask = np.zeros((51, 51), bool)
    cc.gen_mask_static_psf(mask, big, small, [25], [25], [20])
    assert mask[25, 25]
    assert not mask[25 - 16, 25]     # Julia [26, 26-16]
    # bright star: big stamp, Julia psfstamp[17,17]=100, [17,1]=2 -> ours [16,16], [0,16]
    big = np.zeros((33, 33))
    big[16, 16] = 100
    big[0, 16] = 2
    mask = np.zeros((51, 51), bool)
    cc.gen_mask_static_psf(mask, big, small, [25], [25], [200])
    assert mask[25, 25]
    assert mask[25 - 16, 25]


def test_add_sky_noise_distribution():
    """Julia's assertions depend on its random stream; test the distribution instead."""
    n = 200_000
    gain = 4.0
    sky = np.full((1, n), 10.0)
    im = np.full((1, n), 1.0)
    mask = np.ones((1, n), bool)
    out = cc.add_sky_noise(im, mask, sky, gain, rng=2021)
    # r = sky - Poisson(g |sky - r|)/g: mean r, variance |sky - r| / g, lattice k/g
    assert out.mean() == pytest.approx(1.0, abs=4 * np.sqrt(9 / gain / n))
    assert out.var() == pytest.approx(9.0 / gain, rel=0.02)
    np.testing.assert_allclose((sky - out) * gain, np.rint((sky - out) * gain), atol=1e-9)
    # unmasked pixels untouched, seeded output reproducible
    mask[0, :10] = False
    out2 = cc.add_sky_noise(im, mask, sky, gain, rng=7)
    assert np.all(out2[0, :10] == 1.0)
    np.testing.assert_array_equal(out2, cc.add_sky_noise(im, mask, sky, gain, rng=7))
