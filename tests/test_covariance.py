"""Boxcar, shifted-product stack and covariance lookup against brute-force numpy (eq. 6)."""
import platform
import shutil
import subprocess

import numpy as np
import pytest

import cloudcov as cc
from cloudcov import _core
from conftest import core_switch, correlated_field


def brute_boxcar(x, wr, wc):
    out = np.empty((x.shape[0] - wr + 1, x.shape[1] - wc + 1))
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[r, c] = x[r:r + wr, c:c + wc].sum()
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,wr,wc", [((17, 23), 5, 3), ((9, 9), 9, 1), ((30, 12), 1, 11)])
def test_boxcar_bruteforce(rng, dtype, shape, wr, wc):
    x = rng.standard_normal(shape).astype(dtype)
    out = cc.boxcar(x, wr, wc)
    assert out.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, brute_boxcar(x.astype(np.float64), wr, wc), rtol=tol, atol=tol)
    np.testing.assert_allclose(cc.boxcar(x, wr, wc, mean=True), out / (wr * wc), rtol=1e-6)


def cumsum_boxcar(x, wr, wc):
    """Valid-region boxcar sums by 2-D cumulative sums (float64; fast, for large stacks)."""
    c = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    c[1:, 1:] = x.cumsum(0).cumsum(1)
    return c[wr:, wc:] - c[:-wr, wc:] - c[wr:, :-wc] + c[:-wr, :-wc]


def brute_stack(x, Np, wr, wc, boxcar=brute_boxcar):
    """Boxcar sums of x * shift(x, d) with zero padding, for every drow >= 0, |dcol| < Np."""
    nr, nc = x.shape
    pad = np.zeros((nr + Np, nc + 2 * Np))
    pad[:nr, Np:Np + nc] = x
    out = np.empty((Np, nr - wr + 1, nc - wc + 1, 2 * Np - 1))
    for dr in range(Np):
        for dc in range(1 - Np, Np):
            prod = x * pad[dr:dr + nr, Np + dc:Np + dc + nc]
            out[dr, :, :, dc + Np - 1] = boxcar(prod, wr, wc)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("Np,wr,wc", [(5, 5, 3), (3, 1, 1), (7, 3, 9)])
def test_shift_stack_bruteforce(rng, dtype, Np, wr, wc):
    x = rng.standard_normal((21, 24)).astype(dtype)
    bimage, stack = cc.shift_stack(x, Np, wr, wc)
    ref = brute_stack(x.astype(np.float64), Np, wr, wc)
    tol = 1e-11 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(stack, ref, rtol=tol, atol=tol * np.abs(ref).max())
    np.testing.assert_allclose(bimage, brute_boxcar(x.astype(np.float64), wr, wc), rtol=tol, atol=tol)
    # stack_value reads any shift, mirroring negative drow
    r, c = bimage.shape[0] // 2, bimage.shape[1] // 2
    for dr in range(1 - Np, Np):
        for dc in range(1 - Np, Np):
            if dr < 0 and not (0 <= r + dr and 0 <= c + dc < bimage.shape[1]):
                continue
            expect = ref[dr, r, c, dc + Np - 1] if dr >= 0 else ref[-dr, r + dr, c + dc, -dc + Np - 1]
            assert cc.stack_value(stack, r, c, dr, dc) == pytest.approx(expect, rel=tol, abs=tol * np.abs(ref).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shift_stack_thread_invariance(rng, dtype):
    x = correlated_field(rng, (90, 101), dtype=dtype)
    b1, s1 = cc.shift_stack(x, 9, 31, 25, threads=1)
    b2, s2 = cc.shift_stack(x, 9, 31, 25, threads=2)
    b0, s0 = cc.shift_stack(x, 9, 31, 25, threads=0)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(s1, s0)
    np.testing.assert_array_equal(b1, b2)


def test_shift_stack_out_reuse(rng):
    x = rng.standard_normal((40, 40))
    b, s = cc.shift_stack(x, 5, 9, 9)
    s[...] = np.nan
    b2, s2 = cc.shift_stack(x, 5, 9, 9, out=(b, s))
    assert s2 is s and b2 is b
    np.testing.assert_array_equal(s, cc.shift_stack(x, 5, 9, 9)[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stack_sweep_compute_counts_every_value(rng, dtype):
    """The benchmarks' arithmetic-only sweep (rows computed, never stored) covers the whole
    stack of the tile, and refuses what shift_stack refuses."""
    from cloudcov import _core
    x = rng.standard_normal((60, 47)).astype(dtype)
    Np, wr, wc = 7, 15, 11
    assert _core.stack_sweep_compute(x, Np, wr, wc, 2) == (60 - wr + 1) * (47 - wc + 1) * Np * (2 * Np - 1)
    with pytest.raises(ValueError, match="Np"):
        _core.stack_sweep_compute(x, 6, wr, wc)
    with pytest.raises(ValueError, match="image"):
        _core.stack_sweep_compute(x[:10], Np, wr, wc)
    with pytest.raises(ValueError, match="image"):
        _core.stack_sweep_compute(x.astype(np.int32), Np, wr, wc)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or shutil.which("objdump") is None,
                    reason="checks x86-64 machine code with binutils' objdump")
def test_gather_prefetch_is_in_the_machine_code():
    """The per-star gather's L2 prefetch is compiled in. GCC deletes loops of
    __builtin_prefetch calls, which left the gather without any prefetch (1.6x a bare
    spotrf per star instead of 1.3x on a Zen 4 EPYC); cloudcov/prefetch.hpp uses asm."""
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", _core.__file__],
                         capture_output=True, text=True, check=True).stdout
    # Only the gather prefetches (StackCov::prefetch, inlined where the compiler likes: its
    # function may be a local clone without a symbol in the stripped extension).
    assert "prefetcht1" in asm, "no prefetch instruction in the extension"


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or shutil.which("objdump") is None,
                    reason="checks x86-64 machine code with binutils' objdump")
def test_stack_stage_prefetch_is_in_the_machine_code():
    """The AVX-512 stack rows' write prefetch of their staging lines (prefetch.hpp's
    prefetch_line_for_write, asm that the compiler cannot drop) is compiled into the AVX-512
    code path wherever that path is built (its zmm instructions are in the extension)."""
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", _core.__file__],
                         capture_output=True, text=True, check=True).stdout
    if "%zmm" not in asm:
        pytest.skip("the extension was built without its AVX-512 code path")
    assert "prefetchw" in asm, "no write prefetch in the AVX-512 stack rows"


def test_gather_prefetch_switch_changes_no_result():
    """_core.set_gather_prefetch (for benchmarks) returns the previous setting, and the star
    outputs are bitwise the same with the prefetch off."""
    from cloudcov.example import load_example
    ex = load_example()

    def run():
        out = cc.process_ccd(ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"],
                             ex["dq"], thr=1000, threads=2)
        return {c: np.asarray(out[c]) for c in ("cflux", "dcflux", "cchi2", "kcond", "dnt")}

    on = run()
    with core_switch("gather_prefetch", False):
        off = run()
    for c in on:
        np.testing.assert_array_equal(on[c], off[c])


@pytest.mark.parametrize("kw", [dict(thr=1000), dict(thr=1000, dtype="float64"), dict(thr=1000, julia_compat=True)],
                         ids=["float32", "float64", "julia_compat"])
def test_gather_compact_switch_changes_no_result(kw):
    """_core.set_gather_compact (bench_gather_layout.py: each star's gather reads a compact copy
    of its stack entries, StackCov::compact_window) changes no output bit of process_ccd,
    nor of the LPI imputation (its given hidden sets and predictions)."""
    from cloudcov.example import load_example
    ex = load_example()

    def run():
        out = cc.process_ccd(ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"],
                             ex["dq"], threads=2, **kw)
        res = {c: np.asarray(out[c]) for c in ("cflux", "dcflux", "dcflux_diag", "fdb_res", "fdb_pred",
                                                "cchi2", "kcond", "kpred", "dnt")}
        if not kw.get("julia_compat"):
            mask = np.zeros(ex["image"].shape, bool)
            mask[150:153, 100:140] = True
            mask[250, 250] = True
            imp = cc.impute(ex["image"] - ex["model"], mask, method="lpi", n_draw=1, rng=3,
                            widx=33, threads=2)
            res["impute"] = np.asarray(imp.image)
            res["std"] = np.asarray(imp.std)
            res["draws"] = np.asarray(imp.draws)
        return res

    ring = run()
    with core_switch("gather_compact", True):
        compact = run()
    for c in ring:
        np.testing.assert_array_equal(ring[c], compact[c], err_msg=c)


def sample_covariance(x, R, C, Np, wr, wc):
    """Explicit eq. 6: samples are the stamp shifted over the boxcar window; unbiased."""
    h, ar, ac = (Np - 1) // 2, (wr - 1) // 2, (wc - 1) // 2
    V = []
    for u in range(-ar, ar + 1):
        for v in range(-ac, ac + 1):
            V.append(x[R - h + u:R + h + 1 + u, C - h + v:C + h + 1 + v].ravel())
    V = np.array(V)
    N = len(V)
    m = V.mean(axis=0)
    cov = (V.T @ V - N * np.outer(m, m)) / (N - 1)
    return cov, m


@pytest.mark.parametrize("Np,wr,wc", [(5, 9, 9), (7, 11, 5), (3, 3, 3)])
def test_build_cov_equals_sample_covariance(rng, Np, wr, wc):
    x = correlated_field(rng, (60, 64))
    bimage, stack = cc.shift_stack(x, Np, wr, wc)
    h = (Np - 1) // 2
    for R, C in [(30, 30), (h + (wr - 1) // 2, h + (wc - 1) // 2), (45, 50)]:
        cov, mu = cc.build_cov(bimage, stack, R - (wr - 1) // 2, C - (wc - 1) // 2, Np, wr, wc)
        ref, m = sample_covariance(x, R, C, Np, wr, wc)
        scale = np.abs(ref).max()
        err = np.abs(cov - ref).max() / scale
        assert err < 1e-11, err
        np.testing.assert_allclose(mu, m, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(cov, cov.T)
        # positive semi-definite up to round-off (it is a sample covariance)
        assert np.linalg.eigvalsh(cov).min() > -1e-9 * scale
        # local_covariance gives the same from the image directly
        cov2, mu2 = cc.local_covariance(x, R, C, Np, wr, wc)
        np.testing.assert_allclose(cov2, cov, rtol=1e-10, atol=1e-12 * scale)


def test_build_cov_float32_close_to_float64(rng):
    x = correlated_field(rng, (70, 70))
    c64, m64 = cc.local_covariance(x, 35, 35, 9, 21)
    c32, m32 = cc.local_covariance(x.astype(np.float32), 35, 35, 9, 21)
    assert c32.dtype == np.float32
    assert np.abs(c32 - c64).max() < 1e-5 * np.abs(c64).max()


def test_julia_compat_mean_is_absolute(rng):
    x = correlated_field(rng, (50, 50)) - 3.0   # negative local means
    _, mu = cc.local_covariance(x, 25, 25, 5, 9)
    _, mu_j = cc.local_covariance(x, 25, 25, 5, 9, julia_compat=True)
    assert np.all(mu < 0)
    np.testing.assert_allclose(mu_j, np.abs(mu), rtol=1e-12)


_SIMD_CHECK = r"""
import sys
import numpy as np
import cloudcov as cc
from cloudcov import _core
sys.path.insert(0, sys.argv[1])
from test_covariance import brute_stack, cumsum_boxcar
rng = np.random.default_rng(5)
for dtype, tol in ((np.float32, 2e-5), (np.float64, 1e-11)):
    # Np 5 and 7: vector row loop (NDP 16); Np 33: the DECaPS2 size (NDP 72); Np 37: the
    # generic lane count (NDP 0, scalar loop)
    for Np, wr, wc, shape in ((5, 5, 3, (21, 24)), (7, 3, 9, (21, 24)), (33, 5, 7, (40, 75)),
                              (37, 3, 3, (40, 75))):
        x = rng.standard_normal(shape).astype(dtype)
        stack = cc.shift_stack(x, Np, wr, wc, threads=2)[1]
        ref = brute_stack(x.astype(np.float64), Np, wr, wc, boxcar=cumsum_boxcar)
        err = float(np.max(np.abs(stack - ref)) / np.abs(ref).max())
        assert err < tol, (_core.simd_level(), dtype, Np, err)
        # the rows copied into the stack by 16-byte streaming stores: the same bytes
        assert _core.set_stack_wide_streams(False) is True
        try:
            narrow = cc.shift_stack(x, Np, wr, wc, threads=2)[1]
        finally:
            _core.set_stack_wide_streams(True)
        assert np.array_equal(stack, narrow), (_core.simd_level(), dtype, Np)
print(_core.simd_level())
"""


@pytest.mark.parametrize("level", ["baseline", "avx2", None])
def test_shift_stack_every_simd_path(level):
    """Each compiled SIMD level (capped by CLOUDCOV_SIMD, in a fresh process) matches the
    brute-force stack, on the vector row loop (Np 5, 7, 33) and the generic one (Np 37), and
    gives the same stack with the rows streamed into it 16 bytes at a time instead of by the
    level's widest streaming store (``stack_wide_streams``: 64 bytes at avx512, 32 at avx2)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("CLOUDCOV_SIMD", None)
    if level is not None:
        env["CLOUDCOV_SIMD"] = level
    tests = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, "-c", _SIMD_CHECK, tests], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    best = cc._core.simd_level()
    order = ["baseline", "avx2", "avx512"]
    want = best if level is None else order[min(order.index(level), order.index(best))]
    assert r.stdout.strip().splitlines()[-1] == want


@pytest.mark.parametrize("switch", ["stack_scalar_tail", "stack_stage_prefetch", "stack_aligned_loads",
                                    "stack_wide_streams"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stack_row_switches_change_no_value(switch, dtype):
    """The AVX-512 rows' benchmark switches give the stack bitwise equal either way (and at
    every level the brute-force stack, tested above): ``stack_scalar_tail``, the last of
    8k + 1 lanes (Np = 5: 9, Np = 33: 65) as a scalar or as one more vector of padding lanes;
    ``stack_stage_prefetch``, the staging row's lines asked for ahead of the stores or not;
    ``stack_aligned_loads``, the shifted rows read by aligned loads and a permute or by
    unaligned loads (Np = 3, 5, 33: 1, 1 and 8 vectors per column, the rows' starts at every
    offset within a cache line); ``stack_wide_streams``, the rows copied into the stack by the
    widest streaming stores of the level or by 16-byte ones."""
    rng = np.random.default_rng(11)
    for Np, wr, wc, shape in ((3, 3, 1, (17, 23)), (5, 5, 3, (30, 34)), (33, 9, 11, (80, 110))):
        x = (rng.standard_normal(shape) * 30 + 5).astype(dtype)
        on = cc.shift_stack(x, Np, wr, wc, threads=2)[1]
        with core_switch(switch, False):
            off = cc.shift_stack(x, Np, wr, wc, threads=2)[1]
        np.testing.assert_array_equal(on, off)


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
    """_core.bordered_matrix (the per-star gather of conditioning.hpp: run by run from the
    stack, the good-hidden entries before their good pixel through fill_transposed, C_kk's
    column sums on the way) equals build_cov's explicit covariance of the good then hidden
    pixels, entry for entry (float32: bit for bit), with the star counts on the diagonal;
    the column sums are C_kk's absolute column sums and their maximum its 1-norm."""
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
        # summed in the working precision (float32: a few ulp of the largest sums)
        np.testing.assert_allclose(colsum, np.abs(full[:kc, :kc].astype(np.float64)).sum(axis=0),
                                   rtol=2e-6 if dtype == np.float32 else 1e-12)
        assert anorm == colsum.max()
