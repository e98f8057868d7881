"""cloudcov.lapack: the LAPACK the kernels call (scipy's OpenBLAS by default, or Intel MKL)."""
import ctypes
import warnings

import numpy as np
import pytest
import scipy.linalg.cython_blas
import scipy.linalg.cython_lapack

import cloudcov as cc
from cloudcov import _core, lapack
from cloudcov.example import load_example

HAVE_MKL = lapack._find_mkl() is not None
needs_mkl = pytest.mark.skipif(not HAVE_MKL, reason="Intel MKL (pip install mkl) not installed")
FLOATS = ("cflux", "dcflux", "dcflux_diag", "fdb_res", "fdb_pred", "cchi2")


@pytest.fixture
def restore_lapack():
    """Leave the process on the LAPACK it was on before the test (request it before
    monkeypatch, so that it is torn down after monkeypatch's undo)."""
    before = cc.lapack_info()["name"]
    yield
    cc.set_lapack(before)


@pytest.fixture(scope="module")
def example():
    return load_example()


def run_example(ex, threads=2, dtype="float32"):
    return cc.process_ccd(ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"],
                          ex["dq"], thr=1000, threads=threads, dtype=dtype)


def spd(n, dtype, seed=0):
    m = np.random.default_rng(seed).standard_normal((n, 2 * n))
    return np.asfortranarray((m @ m.T / n + np.eye(n)).astype(dtype))


def _capsule_pointer(cap):
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get(cap, name(cap))


def scipy_address(name):
    """Address of one of the scipy routines the default table holds."""
    capi = (scipy.linalg.cython_blas if name[1:] in ("trsv", "gemv") else scipy.linalg.cython_lapack).__pyx_capi__
    return _capsule_pointer(capi[name])


def test_default_is_scipy_and_info_reports_it(restore_lapack):
    info = cc.set_lapack("scipy")
    assert info == cc.lapack_info()
    assert info["name"] == "scipy" and info["version"] is None
    assert cc._provenance.provenance()["lapack"] == "scipy"


@pytest.mark.parametrize("bad", ["openblas", "MKL ", "", None, 3])
def test_bad_name_is_refused_and_nothing_changes(bad, restore_lapack):
    before = cc.lapack_info()
    with pytest.raises(ValueError, match="name"):
        cc.set_lapack(bad)
    assert cc.lapack_info() == before


def test_environment_variable(restore_lapack, monkeypatch):
    cc.set_lapack("scipy")
    monkeypatch.setenv(lapack.LAPACK_ENV, "blis")
    with pytest.raises(ValueError, match="CLOUDCOV_LAPACK"):
        lapack._from_environment()
    monkeypatch.setenv(lapack.LAPACK_ENV, "")
    lapack._from_environment()            # empty: leave the default
    assert cc.lapack_info()["name"] == "scipy"
    monkeypatch.setenv(lapack.LAPACK_ENV, " AUTO ")
    monkeypatch.setattr(lapack, "_cpu_vendor", lambda: "GenuineIntel")
    lapack._from_environment()
    assert cc.lapack_info()["name"] == ("mkl" if HAVE_MKL else "scipy")


@pytest.mark.parametrize("vendor", ["AuthenticAMD", "HygonGenuine", None])
def test_auto_keeps_scipy_on_cpus_other_than_intel(vendor, restore_lapack, monkeypatch):
    """MKL runs slower than scipy's OpenBLAS on AMD (benchmarks/bench_lapack.py), so "auto"
    only picks it on Intel CPUs; "mkl" still gets it anywhere."""
    cc.set_lapack("scipy")

    def must_not_load():
        raise AssertionError("set_lapack('auto') tried MKL on a CPU that is not Intel's")

    monkeypatch.setattr(lapack, "_cpu_vendor", lambda: vendor)
    monkeypatch.setattr(lapack, "_find_mkl", lambda: "/somewhere/libmkl_rt.so")
    monkeypatch.setattr(lapack, "_mkl", {})
    monkeypatch.setattr(lapack, "_load_mkl", must_not_load)
    with warnings.catch_warnings():
        warnings.simplefilter("error")    # a quiet choice, not a fallback
        assert cc.set_lapack("auto")["name"] == "scipy"
    if HAVE_MKL:
        monkeypatch.undo()
        assert cc.set_lapack("mkl")["name"] == "mkl"


def test_cpu_vendor_is_read_from_the_machine():
    vendor = lapack._cpu_vendor()
    assert vendor is None or (isinstance(vendor, str) and vendor.strip() == vendor and vendor)
    try:
        with open("/proc/cpuinfo") as f:
            ids = {line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")}
    except OSError:
        return
    if ids:
        assert ids == {vendor}


def test_missing_mkl_is_a_clear_error(restore_lapack, monkeypatch):
    cc.set_lapack("scipy")
    monkeypatch.setattr(lapack, "_find_mkl", lambda: None)
    monkeypatch.setattr(lapack, "_mkl", {})
    with pytest.raises(RuntimeError, match="MKL is not installed"):
        cc.set_lapack("mkl")
    assert cc.lapack_info()["name"] == "scipy"
    assert cc.set_lapack("auto")["name"] == "scipy"


def test_auto_falls_back_to_scipy_when_mkl_is_unusable(restore_lapack, monkeypatch):
    cc.set_lapack("scipy")

    def unusable():
        raise RuntimeError("MKL could not be set to the sequential threading layer")

    monkeypatch.setattr(lapack, "_find_mkl", lambda: "/nowhere/libmkl_rt.so")
    monkeypatch.setattr(lapack, "_mkl", {})
    monkeypatch.setattr(lapack, "_load_mkl", unusable)
    monkeypatch.setattr(lapack, "_cpu_vendor", lambda: "GenuineIntel")
    with pytest.warns(cc.CloudCovWarning, match="using scipy's LAPACK: MKL could not"):
        assert cc.set_lapack("auto")["name"] == "scipy"
    with pytest.raises(RuntimeError, match="sequential"):
        cc.set_lapack("mkl")
    assert cc.lapack_info()["name"] == "scipy"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lapack_potrf_factorises_through_the_table(dtype):
    a = spd(50, dtype)
    l = a.copy(order="F")
    assert _core.lapack_potrf(l) == 0
    np.testing.assert_allclose(np.tril(l), np.linalg.cholesky(a.astype(np.float64)),
                               rtol=0, atol=2e-5 if dtype == np.float32 else 1e-12)
    bad = -np.eye(4, dtype=dtype, order="F")
    assert _core.lapack_potrf(bad) == 1          # not positive definite: LAPACK's info
    with pytest.raises(ValueError, match="Fortran"):
        _core.lapack_potrf(np.ascontiguousarray(spd(5, dtype)))
    with pytest.raises(ValueError, match="at least as many rows"):
        _core.lapack_potrf(np.zeros((3, 4), dtype, order="F"))
    # the leading n x n block of a taller array (leading dimension lda > n), as the per-star
    # stage factorises its bordered matrix: the same factor, the rows below n untouched
    tall = np.full((56, 50), 7.0, dtype=dtype, order="F")
    tall[:50] = a
    assert _core.lapack_potrf(tall, 50) == 0
    np.testing.assert_array_equal(np.tril(tall[:50]), np.tril(l))
    assert (tall[50:] == 7.0).all()
    with pytest.raises(ValueError, match="n: larger"):
        _core.lapack_potrf(tall, 51)
    with pytest.raises(ValueError, match="float32 or float64"):
        _core.lapack_potrf(np.eye(3, dtype=np.int64, order="F"))


def test_set_lapack_refuses_incomplete_tables():
    addr = {name: scipy_address(name) for name in ("spotrf", "dpotrf", "spotrs", "dpotrs",
                                                   "slacn2", "dlacn2")}
    with pytest.raises(ValueError, match="strsv"):
        _core.set_lapack(addr)
    with pytest.raises(ValueError, match="null address for spotrf"):
        _core.set_lapack({**addr, "spotrf": 0, "strsv": 1, "dtrsv": 1, "sgemv": 1, "dgemv": 1})


def test_kernels_call_the_routines_in_the_table(example, restore_lapack):
    """With spotrf replaced by a counting wrapper around scipy's own spotrf, a run calls it
    once per star it factorises and gives the default's results bitwise."""
    cc.set_lapack("scipy")
    ref = run_example(example, threads=1)
    proto = ctypes.CFUNCTYPE(None, *(4 * [ctypes.c_void_p] + [ctypes.c_void_p]))
    real = proto(scipy_address("spotrf"))
    calls = []

    def counting(uplo, n, a, lda, info):
        calls.append(1)
        real(uplo, n, a, lda, info)

    wrapper = proto(counting)
    addr = {name: scipy_address(name) for name in lapack._ROUTINES}
    addr["spotrf"] = ctypes.cast(wrapper, ctypes.c_void_p).value
    _core.set_lapack(addr)
    try:
        out = run_example(example, threads=1)
    finally:
        cc.set_lapack("scipy")
    factorised = int(np.sum(np.asarray(out["kpred"]) > 0))
    assert factorised >= 40 and len(calls) >= factorised
    for name in FLOATS:
        np.testing.assert_array_equal(out[name], ref[name])


@needs_mkl
def test_mkl_matches_scipy_at_round_off_and_keeps_thread_invariance(example, restore_lapack):
    cc.set_lapack("scipy")
    ref = run_example(example)
    info = cc.set_lapack("mkl")
    assert info["name"] == "mkl" and "Math Kernel Library" in info["version"]
    assert cc._provenance.provenance()["lapack"].startswith("mkl (")
    a = run_example(example, threads=1)
    b = run_example(example, threads=2)
    assert a.meta["cloudcov"]["lapack"] == "mkl" and ref.meta["cloudcov"]["lapack"] == "scipy"
    for name in cc.OUTPUT_COLUMNS:
        np.testing.assert_array_equal(a[name], b[name])        # any thread count, bitwise
    np.testing.assert_array_equal(a["dnt"], ref["dnt"])
    # a different factorisation really ran: some output moved at round-off
    assert any(not np.array_equal(a[name], ref[name]) for name in FLOATS)
    ok = (np.asarray(ref["dnt"]) & 64) == 0
    np.testing.assert_allclose(a["dcflux"][ok], ref["dcflux"][ok], rtol=1e-5)
    assert np.max(np.abs(a["cflux"][ok] - ref["cflux"][ok]) / ref["dcflux"][ok]) < 1e-3
    # float64 through MKL against float64 through scipy: round-off of the double solve
    a64 = run_example(example, dtype="float64")
    cc.set_lapack("scipy")
    r64 = run_example(example, dtype="float64")
    np.testing.assert_allclose(a64["dcflux"][ok], r64["dcflux"][ok], rtol=1e-9)
    # back on scipy's: the default results, bitwise
    again = run_example(example)
    for name in FLOATS:
        np.testing.assert_array_equal(again[name], ref[name])


@needs_mkl
def test_mkl_gpr_impute_matches_scipy(restore_lapack, rng):
    image = rng.normal(100.0, 5.0, (64, 64))
    mask = np.zeros(image.shape, bool)
    mask[20:23, 30:33] = True
    mask[40, 10] = True
    cc.set_lapack("scipy")
    ref = cc.impute(image, mask, method="gpr")
    cc.set_lapack("mkl")
    out = cc.impute(image, mask, method="gpr")
    np.testing.assert_allclose(out.image[mask], ref.image[mask], rtol=1e-9)
    np.testing.assert_allclose(out.std[mask], ref.std[mask], rtol=1e-7)
