"""Which LAPACK to run on this CPU: scipy's OpenBLAS against Intel MKL, same process, same matrices.

Times ``spotrf`` (lower, in place, one thread) through the function table the C++ kernels
call (``_core.lapack_potrf``; :func:`cloudcov.set_lapack` switches the table) on
well-conditioned float32 SPD matrices at the sizes of the per-star bordered matrices
(n = 200 ... 1000; the DECaPS2 median is ~716-784), alternating the two libraries in every
repeat so that both see the same machine load. Prints the median time of each and the ratio,
and what ``set_lapack("auto")`` picks on this CPU (MKL only on Intel CPUs: on other vendors'
CPUs MKL skips its fast code paths).

Run: python benchmarks/bench_lapack.py [--repeat R] [--out FILE]
(needs the ``mkl`` extra: pip install "cloudcov[mkl]"; writes benchmarks/results/bench_lapack.txt)
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
from threadpoolctl import threadpool_limits

import cloudcov as cc
from cloudcov import lapack

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _perstar import spd_matrix, spotrf_times  # noqa: E402
from _provenance import Report, load_note, provenance  # noqa: E402

SIZES = (200, 400, 600, 716, 784, 1000)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="alternations of the two libraries")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bench_lapack.txt"))
    args = ap.parse_args(argv)
    say = Report()

    say(f"{provenance()}; LAPACK benchmark (spotrf through the kernels' table, one thread); "
        f"{load_note()}")
    before = cc.lapack_info()["name"]
    try:
        mkl = cc.set_lapack("mkl")
    except RuntimeError as exc:
        say(f"MKL not usable here: {exc}")
        return say.write(args.out)
    cc.set_lapack("scipy")
    say(f"cpu vendor {lapack._cpu_vendor()}; MKL {mkl['version']} ({mkl['library']})")
    rng = np.random.default_rng(0)
    say(f"{'n':>6} {'scipy ms':>9} {'mkl ms':>9} {'mkl / scipy':>12}")
    ratios = {}
    with threadpool_limits(1):
        for n in SIZES:
            a0 = spd_matrix(n, rng)
            inner = max(3, int(2e8 / n ** 3))
            t = {"scipy": [], "mkl": []}
            for _ in range(args.repeat):
                for name in ("scipy", "mkl"):
                    cc.set_lapack(name)
                    t[name].append(float(np.median(spotrf_times(a0, inner))))
            ts, tm = float(np.median(t["scipy"])), float(np.median(t["mkl"]))
            ratios[n] = tm / ts
            say(f"{n:6d} {ts * 1e3:9.3f} {tm * 1e3:9.3f} {tm / ts:12.2f}")
    cc.set_lapack(before)
    auto = cc.set_lapack("auto")["name"]
    cc.set_lapack(before)
    faster = "mkl" if np.median(list(ratios.values())) < 1 else "scipy"
    say(f"=> median mkl / scipy over the sizes {np.median(list(ratios.values())):.2f}: {faster} is "
        f"faster on this CPU; set_lapack('auto') picks {auto}")
    return say.write(args.out)



if __name__ == "__main__":
    sys.exit(main())
