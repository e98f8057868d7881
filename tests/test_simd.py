"""The guard's fixed-order dot product (cpp/include/cloudcov/simd.hpp, dispatched per SIMD
level like the stack sweep): the same bits at every level, equal to its definition."""
import os
import subprocess
import sys

import numpy as np
import pytest

from cloudcov import _core

LENGTHS = (0, 1, 7, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 128, 129, 200, 700, 781)


def dot_reference(v, w, adjacent=False):
    """simd.hpp's definition transcribed in numpy (every product and sum rounded in the
    arrays' dtype): 64 partial sums, value i joining partial i mod 64 in increasing i, then
    p[t] += p[t + h] for h = 32, 16, ..., 1. adjacent: the tree pairing neighbours instead
    (p[2t] + p[2t + 1] first), another order for the tests to tell apart."""
    p = np.zeros(64, v.dtype)
    m, i = len(v), 0
    while i + 64 <= m:
        p += v[i:i + 64] * w[i:i + 64]
        i += 64
    p[:m - i] += v[i:] * w[i:]
    if adjacent:
        while len(p) > 1:
            p = p[0::2] + p[1::2]
        return float(p[0])
    h = 32
    while h >= 1:
        p[:h] += p[h:2 * h]
        h //= 2
    return float(p[0])


def cases():
    """(v, w) pairs of every length in LENGTHS and both dtypes, mixed signs over two decades
    (so that every order of the sums shows in the last bits), plus an infinite value."""
    rng = np.random.default_rng(20261207)
    out = []
    for dtype in (np.float32, np.float64):
        for m in LENGTHS:
            v = rng.standard_normal(m) * 10.0 ** rng.uniform(-1, 1, m)
            w = rng.standard_normal(m) * 10.0 ** rng.uniform(-1, 1, m)
            out.append((v.astype(dtype), w.astype(dtype)))
        v = np.ones(70, dtype)
        v[66] = np.inf   # in the tail: inf, not NaN (masked lanes must not make 0 * inf)
        out.append((v, np.ones(70, dtype)))
    return out


def test_dot_fixed_is_its_definition_bit_for_bit():
    for v, w in cases():
        assert _core.dot_fixed(v, w) == dot_reference(v, w), (v.dtype, len(v))


def test_the_order_is_visible_in_these_cases():
    """The cases tell orders apart (else the tests above could not fail): a sequential sum,
    and the same partial sums combined by another tree, differ from the definition in the
    last bits for many of them."""
    seq_differ = tree_differ = 0
    for v, w in cases():
        seq = v.dtype.type(0)
        for a, b in zip(v, w):
            seq = seq + a * b
        seq_differ += float(seq) != dot_reference(v, w)
        tree_differ += dot_reference(v, w, adjacent=True) != dot_reference(v, w)
    assert seq_differ >= 20 and tree_differ >= 15, (seq_differ, tree_differ)


_LEVEL_CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
from test_simd import cases
from cloudcov import _core
for v, w in cases():
    print(float(_core.dot_fixed(v, w)).hex())
print(_core.simd_level())
"""


@pytest.mark.parametrize("level", ["baseline", "avx2", None])
def test_dot_fixed_every_simd_path(level):
    """Each compiled SIMD level (capped by CLOUDCOV_SIMD, in a fresh process) gives the
    definition's bits."""
    env = dict(os.environ)
    env.pop("CLOUDCOV_SIMD", None)
    if level is not None:
        env["CLOUDCOV_SIMD"] = level
    tests = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, "-c", _LEVEL_CHECK, tests], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.split()
    best = _core.simd_level()
    order = ["baseline", "avx2", "avx512"]
    assert lines[-1] == (best if level is None else order[min(order.index(level), order.index(best))])
    want = [dot_reference(v, w).hex() for v, w in cases()]
    assert lines[:-1] == want


@pytest.mark.parametrize("v, w, match", [
    (np.ones(3, np.float32), np.ones(4, np.float32), "lengths differ"),
    (np.ones(3, np.float32), np.ones(3, np.float64), "both float32 or both float64"),
    (np.ones((2, 2)), np.ones((2, 2)), "v: expected a 1-d array"),
    (np.ones(6)[::2], np.ones(3), "v: expected a contiguous array"),
])
def test_dot_fixed_rejects_bad_input(v, w, match):
    with pytest.raises(ValueError, match=match):
        _core.dot_fixed(v, w)
