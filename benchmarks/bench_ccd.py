"""End-to-end benchmark: process_ccd on a DECam-size synthetic CCD with a real mask and PSF.

The CCD is 4094 x 2046 px with ~10,000 stars (power-law fluxes) drawn with the real DECam
r-band PSF (../shared/data/real/psf_r.fits.gz), a flat sky of 1000 ADU with Poisson noise
(gain 4 e-/ADU), and the real data-quality mask of DECaPS exposure c4d_170119_085651 CCD S6
(../shared/data/real/c4d_170119_085651_ood_r_v1.fits.fz). Prints core-seconds per CCD,
core-ms per star, peak memory, and the ratio against the plain numpy/scipy implementation
(benchmarks/numpy_reference.py) timed on a subset in the same process and scaled.
Writes benchmarks/results/bench_ccd.txt.

Run: python benchmarks/bench_ccd.py [--nstar N] [--threads T] [--repeat R]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import tempfile
import platform
import resource
import sys
import threading
import time

import numpy as np
from astropy.io import fits
from astropy.table import Table
from scipy.signal import fftconvolve
from threadpoolctl import threadpool_limits

import cloudcov as cc
from cloudcov import _core

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import numpy_reference as ref  # noqa: E402
from _perstar import spd_matrix, spotrf_times  # noqa: E402
from _provenance import Report, load_note, provenance  # noqa: E402

REAL = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_ccd(nstar, seed, shape=None):
    rng = np.random.default_rng(seed)
    dq = fits.getdata(REAL / "c4d_170119_085651_ood_r_v1.fits.fz", extname="S6").astype(np.int16)
    if shape is not None:   # a corner of the CCD (cost-model sweeps)
        dq = np.ascontiguousarray(dq[:shape[0], :shape[1]])
    psf = fits.getdata(REAL / "psf_r.fits.gz").astype(np.float64)
    psf /= psf.sum()
    shape = dq.shape
    rows = rng.integers(0, shape[0], nstar)
    cols = rng.integers(0, shape[1], nstar)
    flux = 10 ** rng.uniform(3.0, 5.5, nstar)           # 1e3 .. 3e5 ADU
    delta = np.zeros(shape)
    np.add.at(delta, (rows, cols), flux)
    sky = np.full(shape, 1000.0)
    model = sky + fftconvolve(delta, psf, mode="same")
    gain = 4.0
    image = (rng.poisson(np.clip(model, 0, None) * gain) / gain).astype(np.float32)
    cat = Table({"x": rows.astype(np.float64), "y": cols.astype(np.float64), "flux": flux})
    return image, model.astype(np.float32), sky.astype(np.float32), cat, psf, gain, dq


def make_flat(shape=(768, 768), nstar=300, seed=20221121):
    """The synthetic flat field of tests/test_lpi.py (flat 800 ADU sky, Poisson noise, Gaussian PSF)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    from test_lpi import synthetic_ccd
    image, model, sky, cat, psf, gain = synthetic_ccd(np.random.default_rng(seed), shape=shape, n=nstar)
    return (image.astype(np.float32), model.astype(np.float32), sky.astype(np.float32), cat, psf,
            gain, np.zeros(shape, np.int16))


def make_cutout(ccd="N6"):
    """A real DECam CP cutout with its real crowdsource fit (tests/_survey_files.py)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    from _survey_files import CUTOUTS, _fit, _read
    pattern = CUTOUTS[ccd][0]
    im, ivar, dq = (_read(REAL / pattern.format(kind=k), ccd)[0] for k in ("ooi", "oow", "ood"))
    im = im.astype("f4")
    cat, model, sky, psf, wt = _fit(im, ivar.astype("f4"), dq)
    gain = float(np.nanmedian((im * wt**2)[wt > 0]))
    stamp = psf(im.shape[0] // 2, im.shape[1] // 2, stampsz=63).astype(np.float64)
    tab = Table({"x": np.asarray(cat["x"], float), "y": np.asarray(cat["y"], float),
                 "flux": np.asarray(cat["flux"], float)})
    return im, model, sky, tab, stamp, gain, dq.astype(np.int16)


def peak_rss_gib():
    """Peak resident memory of this process (GiB): VmHWM of /proc/self/status on Linux.

    Not ru_maxrss: Linux carries the parent's high-water mark at fork across exec into
    ru_maxrss, so a fresh child would report at least the parent's memory.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def child(tmp, threads):
    """Run one CCD from tmp/ccd.npz; print JSON (cpu, wall, rss, meta); write tmp/out.fits."""
    d = np.load(pathlib.Path(tmp) / "ccd.npz")
    cat = Table({"x": d["x"], "y": d["y"], "flux": d["flux"]})
    args = (d["image"], d["model"], d["sky"], cat, d["psf"], float(d["gain"]), d["dq"])
    rss0 = peak_rss_gib()
    c0, w0 = cpu_seconds(), time.perf_counter()
    kw = {} if int(d["max_memory"]) < 0 else dict(max_memory=int(d["max_memory"]))
    if int(d["ring_extra"]) >= 0:
        cc.tiling.RING_EXTRA_ROWS = int(d["ring_extra"])
    out = cc.process_ccd(*args, threads=threads, seed=1, **kw)
    c1, w1 = cpu_seconds(), time.perf_counter()
    rss = peak_rss_gib()
    meta = out.meta.pop("cloudcov")
    cc.io.write_fits_table(out, pathlib.Path(tmp) / "out.fits")
    print(json.dumps(dict(cpu=c1 - c0, wall=w1 - w0, rss=rss, rss_inputs=rss0, meta=meta)))


def main(argv=None):
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nstar", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--field", choices=("decam", "flat", "N6"), default="decam",
                    help="decam: 4094 x 2046 synthetic CCD with the real S6 mask and PSF (default); "
                         "flat: the 768 x 768 flat field (--nstar default 300); N6: the real 375 x 280 "
                         "DECam cutout with its crowdsource fit")
    ap.add_argument("--shape", type=int, nargs=2, default=None, help="rows cols of the decam field")
    ap.add_argument("--max-memory", type=int, default=None, help="stack budget (bytes)")
    ap.add_argument("--ring-extra", type=int, default=None,
                    help="stack ring rows beyond Np (cloudcov.tiling.RING_EXTRA_ROWS, default 16)")
    ap.add_argument("--no-reference", action="store_true", help="skip the numpy reference")
    ap.add_argument("--repeat", type=int, default=1,
                    help="CCD runs (fresh process each, floors timed after each); the output "
                         "gives every run, the medians, and the run of median CPU in detail")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bench_ccd.txt"))
    args = ap.parse_args(argv)
    say = Report()

    t0 = time.perf_counter()
    if args.field == "decam":
        image, model, sky, cat, psf, gain, dq = make_ccd(args.nstar or 10000, args.seed, args.shape)
        desc = (f"synthetic DECam CCD {image.shape[0]}x{image.shape[1]}, {len(cat)} stars, real S6 dq "
                f"mask ({np.mean(dq != 0) * 100:.1f}% flagged), real psf_r (511x511)")
    elif args.field == "flat":
        image, model, sky, cat, psf, gain, dq = make_flat(nstar=args.nstar or 300)
        desc = (f"synthetic flat field {image.shape[0]}x{image.shape[1]}, {len(cat)} stars (flat 800 ADU "
                f"sky + Poisson noise, Gaussian PSF)")
    else:
        image, model, sky, cat, psf, gain, dq = make_cutout("N6")
        desc = f"real DECam CP cutout N6 {image.shape[0]}x{image.shape[1]}, {len(cat)} crowdsource stars"
    say(f"{provenance()}; end-to-end CCD benchmark; simd={_core.simd_level()}; "
        f"{platform.machine()}; python {platform.python_version()}; {load_note()} (run nice'd)")
    say(f"{desc}; built in {time.perf_counter() - t0:.1f} s")
    # The CCD runs in a fresh process (inputs loaded from a file), so that its peak RSS is
    # what one process_ccd call needs, not the synthetic build's.
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(pathlib.Path(tmp) / "ccd.npz", image=image, model=model, sky=sky, psf=psf, dq=dq,
                 gain=gain, max_memory=-1 if args.max_memory is None else args.max_memory,
                 ring_extra=-1 if args.ring_extra is None else args.ring_extra,
                 x=np.asarray(cat["x"]), y=np.asarray(cat["y"]), flux=np.asarray(cat["flux"]))
        runs = []
        for k in range(args.repeat):
            res = subprocess.run([sys.executable, __file__, "--child", tmp, "--threads", str(args.threads)],
                                 check=True, capture_output=True, text=True)
            info = json.loads(res.stdout.strip().splitlines()[-1])
            out = cc.io.read_fits_table(pathlib.Path(tmp) / "out.fits")
            # floors measured right after each run, so that each ratio compares like with like
            fl, arith = floors(out, info["meta"], args.threads), stack_arithmetic(image, info["meta"])
            runs.append((info, out, fl, arith))
            if args.repeat > 1:
                m = info["meta"]
                st, sb = m["core_seconds_stack"], m["core_seconds_stars"]
                say(f"run {k + 1}/{args.repeat}: CPU {info['cpu']:.1f} core-s (stack sweep {st:.1f}, star "
                    f"batches {sb:.1f}, rest {info['cpu'] - st - sb:.1f}); floors: spotrf sum {fl['stars']:.1f} "
                    f"(star batches / floor {sb / fl['stars']:.2f}; on {fl['threads']} threads at once "
                    f"{fl['stars_shared']:.1f}, / {sb / fl['stars_shared']:.2f}), stack arithmetic {arith['seconds']:.1f} + "
                    f"writes {fl['stack']:.1f} (stack sweep / their sum {st / (arith['seconds'] + fl['stack']):.2f}; "
                    f"writes at the {fl['threads']} threads' shared bandwidth {fl['stack_shared']:.1f}, stack "
                    f"sweep / sum {st / (arith['seconds'] + fl['stack_shared']):.2f})")
    if args.repeat > 1:
        med = lambda f: float(np.median([f(*r) for r in runs]))   # noqa: E731
        say(f"medians over the {args.repeat} runs: CPU {med(lambda i, o, f, a: i['cpu']):.1f} core-s, stack sweep "
            f"{med(lambda i, o, f, a: i['meta']['core_seconds_stack']):.1f}, star batches "
            f"{med(lambda i, o, f, a: i['meta']['core_seconds_stars']):.1f}, star batches / floor "
            f"{med(lambda i, o, f, a: i['meta']['core_seconds_stars'] / f['stars']):.2f} (spotrf on "
            f"{args.threads} threads at once: "
            f"{med(lambda i, o, f, a: i['meta']['core_seconds_stars'] / f['stars_shared']):.2f}), stack sweep / "
            f"(arithmetic + writes) {med(lambda i, o, f, a: i['meta']['core_seconds_stack'] / (a['seconds'] + f['stack'])):.2f} "
            f"(writes shared: {med(lambda i, o, f, a: i['meta']['core_seconds_stack'] / (a['seconds'] + f['stack_shared'])):.2f}); "
            f"the run of median CPU in detail:")
    info, out, fl, arith = sorted(runs, key=lambda r: r[0]["cpu"])[len(runs) // 2]
    m = info["meta"]
    rss, rss0, core_s = info["rss"], info["rss_inputs"], info["cpu"]
    w0, w1 = 0.0, info["wall"]
    nst = len(out)
    dnt = np.asarray(out["dnt"]).astype(int)
    say(f"process_ccd, {args.threads} threads (fresh process): wall {w1 - w0:.1f} s, CPU {core_s:.1f} core-s "
        f"(prep {m['seconds_prep']:.1f} s wall, stack + stars {m['seconds_lpi']:.1f} s wall), "
        f"{m['nstrips']} strip(s) with a {m['ring_rows']}-row stack ring")
    say(f"  => {core_s:.1f} core-s per CCD, {core_s / nst * 1e3:.2f} core-ms per star (all stages)")
    say(f"  measured inside process_ccd: stack sweep {m['core_seconds_stack']:.1f} core-s (target <= 8), "
        f"star batches {m['core_seconds_stars']:.1f} core-s ({m['core_seconds_stars'] / nst * 1e3:.2f} "
        f"core-ms/star), {m['sweep_rounds']} sweep rounds; rest (prep, PSF stamps, output) "
        f"{core_s - m['core_seconds_stack'] - m['core_seconds_stars']:.1f} core-s")
    say(f"  dnt: {int(np.sum(dnt == 0))} zero; bit counts " +
        ", ".join(f"{b}:{int(np.sum(dnt & b != 0))}" for b in (1, 2, 4, 8, 16, 32, 64)))
    ok = (dnt & 64) == 0
    say(f"  median dcflux/dcflux_diag {np.median(out['dcflux'][ok] / out['dcflux_diag'][ok]):.3f}; "
        f"median |cflux-flux|/dcflux {np.median(np.abs(out['cflux'][ok] - out['flux'][ok]) / out['dcflux'][ok]):.2f}")
    say(f"  peak RSS of the CCD process {rss:.2f} GiB (after loading its inputs: {rss0:.2f} GiB); "
        f"stack budget {m['max_memory'] / 2**30:.2f} GiB, ring {m['ring_rows']} rows = "
        f"{m['ring_bytes'] / 2**30:.2f} GiB; target <= 1.0 GB per full CCD")
    say(f"  floors measured in this process after the run: star stage = sum over its {fl['nfact']} "
        f"factorised stars of a bare spotrf of each one's bordered matrix (n = kcond + kpred, "
        f"{fl['nmin']}..{fl['nmax']}, median {fl['nmed']}; spotrf timed at {len(fl['grid'])} sizes, "
        f"log-log interpolated) {fl['stars']:.1f} core-s -> star batches / floor "
        f"{m['core_seconds_stars'] / fl['stars']:.2f}")
    if fl["threads"] > 1:
        say(f"  the run factorises on {fl['threads']} threads at once: spotrf timed so (each thread its "
            f"own matrix, thread CPU time per call) sums to {fl['stars_shared']:.1f} core-s "
            f"({fl['stars_shared'] / fl['stars']:.2f}x the one-thread floor) -> star batches / floor "
            f"{m['core_seconds_stars'] / fl['stars_shared']:.2f}")
    say(f"  stack: {m['stack_values'] / 1e9:.2f} G values computed by the sweeps, of which "
        f"{fl['stack_bytes'] / item_of(m) / 1e9:.2f} G ({fl['stack_bytes'] / 1e9:.1f} GB) written to the ring "
        f"(the entries the stamps read); one core writes {fl['write_gbs']:.1f} GB/s (numpy fill of 1 GiB, best of 3 ways), so "
        f"writing the stack once takes {fl['stack']:.1f} core-s -> stack sweep / write floor "
        f"{m['core_seconds_stack'] / fl['stack']:.2f}")
    if fl["threads"] > 1:
        say(f"  but the run's {fl['threads']} threads sweep at the same time: together they write "
            f"{fl['write_gbs_all']:.1f} GB/s (numpy fills on {fl['threads']} threads at once), "
            f"{fl['write_gbs_all'] / fl['threads']:.1f} GB/s per core, so the stack's writes cost "
            f"{fl['stack_shared']:.1f} core-s when shared")
    both = arith["seconds"] + fl["stack"]
    say(f"  stack arithmetic: the same sweep with its rows computed but not stored "
        f"(_core.stack_sweep_compute, one thread, a {arith['shape'][0]}x{arith['shape'][1]} tile of "
        f"this CCD as wide as its strips, median of {arith['repeat']}) {arith['ns']:.3f} ns per value -> "
        f"{arith['seconds']:.1f} core-s for the CCD's values; arithmetic + one write of the stack "
        f"{both:.1f} core-s -> stack sweep / (arithmetic + write) {m['core_seconds_stack'] / both:.2f}")
    rest = core_s - m['core_seconds_stack'] - m['core_seconds_stars']
    lo = fl['stars'] + max(arith['seconds'], fl['stack']) + rest
    say(f"  => floor of this CCD with the algorithm as it is (float32 stack computed and written once, "
        f"one spotrf per star, the rest as measured): {lo:.1f} core-s with the stack's arithmetic "
        f"and writes fully overlapped, {fl['stars'] + both + rest:.1f} core-s with them one after the "
        f"other (target <= 30)")
    if fl["threads"] > 1:
        shared = arith["seconds"] + fl["stack_shared"]
        say(f"  with the writes at the shared bandwidth: stack arithmetic + writes {shared:.1f} core-s "
            f"-> stack sweep / their sum {m['core_seconds_stack'] / shared:.2f}; CCD floor "
            f"{fl['stars'] + max(arith['seconds'], fl['stack_shared']) + rest:.1f} (overlapped) to "
            f"{fl['stars'] + shared + rest:.1f} core-s (one after the other); with spotrf too on "
            f"{fl['threads']} threads at once "
            f"{fl['stars_shared'] + max(arith['seconds'], fl['stack_shared']) + rest:.1f} to "
            f"{fl['stars_shared'] + shared + rest:.1f} core-s")
    say(f"RESULT {json.dumps(dict(rows=int(image.shape[0]), cols=int(image.shape[1]), nstar=nst, core_s=core_s, stack=m['core_seconds_stack'], stars=m['core_seconds_stars'], rss_gib=rss, nstrips=m['nstrips'], floor_stars=round(fl['stars'], 3), floor_stars_shared=round(fl['stars_shared'], 3), floor_stack=round(fl['stack'], 3), floor_stack_arithmetic=round(arith['seconds'], 3), floor_stack_shared=round(fl['stack_shared'], 3)))}")
    if args.no_reference:
        return say.write(args.out)

    # numpy reference on a subset, scaled to the same CCD
    with threadpool_limits(1):   # core-seconds, single-threaded BLAS like cloudcov's
        Np, w = 33, 129
        side = 472
        x = (np.random.default_rng(0).standard_normal((side, side)) * 20).astype(np.float32)
        sub = ref.all_shifts(Np)[::53]
        t = time.process_time()
        b, s = ref.shift_stack_numpy(x, Np, w, w, sub)
        # numpy's cost per shift scales with the input area; give it the same strips as cloudcov
        # (one cumulative-sum pass per strip and shift, no tile overlaps)
        per_px = (time.process_time() - t) / len(sub) * _core.n_slots(Np) / (side * side)
        strips = cc.tiling.plan_strips((0, image.shape[0]), (0, image.shape[1]), Np, w, w)
        np_stack = per_px * sum((image.shape[0] + Np - 1 + w) * (st.col1 - st.col0 + Np - 1 + w)
                                for st in strips)
        g = ref.StarGather(Np)
        bfull, sfull = cc.shift_stack(x, Np, w, w)
        pc0 = psf.shape[0] // 2
        fmed = float(np.median(cat["flux"]))   # a star of the field's median flux
        pc = cc.pixel_classes(np.zeros((Np, Np), bool), psf[pc0 - 16:pc0 + 17, pc0 - 16:pc0 + 17], fmed)
        t = time.process_time()
        nref = 8
        for k in range(nref):
            cov, mu = g.cov(bfull, sfull, 100 + k, 120, w * w)
            ref.condition_numpy(cov, mu, pc.good.ravel(), pc.hidden.ravel(), np.zeros(Np * Np),
                                np.zeros(Np * Np), pc.psf.ravel())
        np_star = (time.process_time() - t) / nref
    np_total = np_stack + np_star * nst
    say(f"numpy/scipy reference (same process; stack from {len(sub)} shifts on one tile scaled to "
        f"the same strips, "
        f"{nref} stars of the median flux {fmed:.0f} ADU; process CPU time): {np_stack:.0f} s stack + {np_star * 1e3:.1f} ms/star -> {np_total:.0f} core-s "
        f"per CCD; cloudcov end-to-end speed ratio x{np_total / core_s:.1f} (target >= 20)")
    return say.write(args.out)


def write_bandwidth(nthreads, nbytes=2**30, repeat=3):
    """Best aggregate bandwidth (bytes/s) of ``nthreads`` threads each filling its own share
    of ``nbytes`` with numpy at the same time (``ndarray.fill`` releases the GIL), three fill
    values, ``repeat`` times each."""
    bufs = [np.empty(nbytes // 4 // nthreads, np.float32) for _ in range(nthreads)]
    for b in bufs:
        b.fill(0)
    best = 0.0
    for _ in range(repeat):
        for val in (1.0, 0.0, 2.0):
            start = threading.Barrier(nthreads + 1)

            def work(b, val=val):
                start.wait()
                b.fill(val)
            th = [threading.Thread(target=work, args=(b,)) for b in bufs]
            for t in th:
                t.start()
            start.wait()
            t0 = time.perf_counter()
            for t in th:
                t.join()
            best = max(best, nthreads * bufs[0].nbytes / (time.perf_counter() - t0))
    return best


def item_of(m):
    """Bytes per stack value of a run (its meta dtype)."""
    return np.dtype(m.get("dtype", "float32")).itemsize


def spotrf_concurrent(nb, nthreads, repeat, rng):
    """Median CPU seconds of one spotrf of an nb x nb matrix while ``nthreads`` threads each
    factorise their own matrix at the same time (``time.thread_time`` around each call, so a
    thread's matrix copies are not counted), as the star batches of a run on that many threads
    do: on this 2-core EPYC two at once cost 7-18% more per call than one alone."""
    mats = [spd_matrix(nb, rng) for _ in range(nthreads)]
    times = [None] * nthreads
    start = threading.Barrier(nthreads)

    def work(k):
        start.wait()
        times[k] = spotrf_times(mats[k], repeat, clock=time.thread_time)
    with threadpool_limits(1):
        th = [threading.Thread(target=work, args=(k,)) for k in range(nthreads)]
        for t in th:
            t.start()
        for t in th:
            t.join()
    return float(np.median(np.concatenate(times)))


def floors(out, m, threads=1, repeat=7):
    """Lower bounds, timed in this process, for the two kernel stages of one process_ccd run.

    Star stage: a bare LAPACK Cholesky (spotrf through the table cloudcov's kernels call,
    :func:`cloudcov.lapack_info`; one thread) of each factorised star's bordered matrix,
    n = kcond + kpred;
    spotrf is timed (median of ``repeat``) at log-spaced sizes spanning the stars' n and
    interpolated in log-log; with ``threads`` > 1 also timed on that many threads at once
    (``stars_shared``, :func:`spotrf_concurrent`), the concurrency of the run's star batches.
    Stack: the bytes the sweeps wrote (meta ``stack_values_written``) at the
    best single-core write bandwidth of numpy filling 1 GiB (``stack``), and, as the run's
    ``threads`` threads sweep at once, at their share of the bandwidth they get together
    (``stack_shared``: core-seconds = bytes / (aggregate bandwidth / threads)).
    """
    kc = np.asarray(out["kcond"]).astype(int)
    kp = np.asarray(out["kpred"]).astype(int)
    n = (kc + kp)[(kc > 0) & (kp > 0)]
    grid = np.unique(np.geomspace(max(n.min(), 8), n.max(), 9).round().astype(int))
    rng = np.random.default_rng(0)
    tgrid = []
    with threadpool_limits(1):
        for nb in grid.tolist():   # Python ints: a numpy int64 divisor would promote to float64
            tgrid.append(float(np.median(spotrf_times(spd_matrix(nb, rng), repeat))))
    lg, lt = np.log(grid), np.log(np.maximum(tgrid, 1e-9))
    stars = float(np.exp(np.interp(np.log(n), lg, lt)).sum()) if len(grid) > 1 else tgrid[0] * n.size
    stars_shared = stars
    if threads > 1:   # the run factorises on `threads` threads at once: time spotrf so too
        tshared = [spotrf_concurrent(nb, threads, repeat, rng) for nb in grid.tolist()]
        lts = np.log(np.maximum(tshared, 1e-9))
        stars_shared = (float(np.exp(np.interp(np.log(n), lg, lts)).sum()) if len(grid) > 1
                        else tshared[0] * n.size)
    buf = np.empty(2**28, np.float32)
    buf.fill(0)
    best = 0.0
    for fill in (lambda: buf.fill(1.0), lambda: buf.fill(0), lambda: buf.__setitem__(Ellipsis, 2.0)):
        for _ in range(3):
            t = time.perf_counter()
            fill()
            best = max(best, buf.nbytes / (time.perf_counter() - t))
    del buf
    item = item_of(m)
    nbytes = int(m.get("stack_values_written", m["stack_values"])) * item   # what the ring got
    agg = write_bandwidth(threads) if threads > 1 else best
    return dict(stars=stars, stars_shared=stars_shared, nfact=int(n.size), nmin=int(n.min()), nmax=int(n.max()),
                nmed=int(np.median(n)), grid=grid, stack_bytes=nbytes, write_gbs=best / 1e9,
                stack=nbytes / best, threads=threads, write_gbs_all=agg / 1e9,
                stack_shared=nbytes * threads / agg)


def stack_arithmetic(image, m, repeat=3):
    """The stack sweep's arithmetic alone: ``_core.stack_sweep_compute`` (rows computed into
    the kernel's stage, never stored) on one thread over a tile of ``image`` as wide as the
    run's strips (input columns: ceil(cols / nstrips) plus the stamp and boxcar margins) and
    up to 1500 rows tall; the median core-seconds per value times the run's ``stack_values``.
    The tile's first output row (a full boxcar sum per shift, as at the top of every strip)
    is included, so this slightly overstates the arithmetic of the taller strips."""
    Np, wrow, wcol = int(m["Np"]), int(m["widx"]), int(m["widy"])
    cols = -(-image.shape[1] // int(m["nstrips"])) + (Np - 1) + (wcol - 1)
    rows = min(image.shape[0] + (Np - 1) + (wrow - 1), 1500)
    tile = np.zeros((rows, cols), np.dtype(m.get("dtype", "float32")))
    r, c = min(rows, image.shape[0]), min(cols, image.shape[1])
    tile[:r, :c] = image[:r, :c]
    ts = []
    for _ in range(repeat):
        t = time.process_time()
        nval = _core.stack_sweep_compute(tile, Np, wrow, wcol, 1)
        ts.append((time.process_time() - t) / nval)
    ns = float(np.median(ts))
    return dict(shape=tile.shape, ns=ns * 1e9, seconds=ns * int(m["stack_values"]), repeat=repeat)



if __name__ == "__main__":
    sys.exit(main())
