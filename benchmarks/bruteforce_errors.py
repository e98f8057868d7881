"""Brute-force error figures of the C++ kernels (issue 2): how far cloudcov is from direct
numpy evaluations of paper eqs. 4-6, 9-10 on random correlated images, in float64 and float32.

Run: python benchmarks/bruteforce_errors.py  (writes benchmarks/results/bruteforce_errors.txt)
The reference implementations are the ones the tests use (tests/test_covariance.py,
tests/test_perstar.py).
"""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

import cloudcov as cc
from cloudcov._provenance import provenance

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from conftest import correlated_field  # noqa: E402
from test_covariance import brute_boxcar, brute_stack, sample_covariance  # noqa: E402
from test_perstar import direct, gaussian_psf  # noqa: E402

sys.path.insert(0, str(HERE))
from _provenance import Report  # noqa: E402


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def main():
    rng = np.random.default_rng(2022)
    say = Report()
    say(f"cloudcov {cc.__version__}: max |cloudcov - numpy| / max |numpy| over random inputs")
    say(f"provenance: {json.dumps(provenance(), sort_keys=True)}")
    x = correlated_field(rng, (40, 44), scale=2.5, amp=2.0, noise=0.5)
    for dt in (np.float64, np.float32):
        xs = x.astype(dt)
        b, s = cc.shift_stack(xs, 7, 9, 11)
        say(f"shift stack (Np=7, 9x11 boxcar) {np.dtype(dt).name}: "
            f"{rel(s, brute_stack(xs.astype(np.float64), 7, 9, 11)):.1e}; boxcar "
            f"{rel(b, brute_boxcar(xs.astype(np.float64), 9, 11)):.1e}")
    errs = []
    for _ in range(5):
        img = correlated_field(rng, (70, 70), scale=3, amp=3, noise=1)
        R, C = rng.integers(20, 50, 2)
        cov, mu = cc.local_covariance(img, R, C, 9, 21)
        ref, m = sample_covariance(img, R, C, 9, 21, 21)
        errs.append(rel(cov, ref))
    say(f"build_cov vs explicit sample covariance V^T V/(N-1) - mean terms (eq. 6), Np=9, "
        f"21x21, 5 stars: max {max(errs):.1e}")
    res = {k: [] for k in ("dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2", "xbar")}
    res32 = {k: [] for k in res}
    for _ in range(10):
        img = correlated_field(rng, (90, 90), scale=2.5, amp=2.0, noise=0.5)
        cov, mu = cc.local_covariance(img, 45, 45, 15, 25)
        data = img[38:53, 38:53]
        psf = gaussian_psf(15)
        km = rng.random((15, 15)) < 0.05
        pc = cc.pixel_classes(km, psf, rng.uniform(1e4, 1e5), rlim=7.5 ** 2)
        stars = 0.01 * rng.uniform(1e3, 1e4) * psf
        ref = direct(cov, mu, pc.good, pc.hidden, data, stars, pc.psf)
        for out, c, m_ in ((res, cov, mu), (res32, cov.astype(np.float32), mu.astype(np.float32))):
            r = cc.cond_cov_est(c, m_, ~pc.good, pc.hidden, data, stars, pc.psf, export_mean=True)
            for k in out:
                got = r.mean[pc.hidden] if k == "xbar" else getattr(r, k)
                out[k].append(rel(got, ref[k]))
    for name, d in (("float64", res), ("float32 (guarded)", res32)):
        say(f"cond_cov_est vs numpy eqs. 4, 5, 9, 10 ({name}, 10 stars, Np=15): " +
            ", ".join(f"{k} {max(v):.1e}" for k, v in d.items()))
    path = HERE / "results" / "bruteforce_errors.txt"
    say.write(path)


if __name__ == "__main__":
    main()
