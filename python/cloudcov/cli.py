"""Command-line front end: ``cloudcov demo``, ``cloudcov exposure``, ``cloudcov ccd``,
``cloudcov impute``, ``cloudcov clean``, ``cloudcov survey``, ``cloudcov maps`` (also
``python -m cloudcov ...``)."""
from __future__ import annotations

import argparse
import logging
import pathlib
import sys
import time

import numpy as np

__all__ = ["main"]


def _saturated_core(ex, out, radius=3):
    """True for stars with a dq-flagged pixel within ``radius`` of their centre."""
    dq = np.asarray(ex["dq"]) != 0
    res = np.zeros(len(out), bool)
    for k, (r, c) in enumerate(zip(np.rint(out["x"]).astype(int), np.rint(out["y"]).astype(int))):
        r0, c0 = max(r - radius, 0), max(c - radius, 0)
        res[k] = dq[r0:r + radius + 1, c0:c + radius + 1].any()
    return res


def _demo_figure(ex, out, prep, kw, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .lpi import star_details

    # three stars: the largest |fdb_tot| / dcflux among stars with a regular solve (no radius
    # fallback, no failure; PSF-sign bits 8/16 allowed: crowdsource PSFs have tiny negatives)
    ok = np.asarray(out["dnt"]).astype(int) & (1 | 2 | 64) == 0
    ok &= ~_saturated_core(ex, out)
    ok = np.flatnonzero(ok)
    z = np.abs(np.asarray(out["cflux"] - out["flux"])) / np.asarray(out["dcflux"])
    pick = ok[np.argsort(-z[ok])[:3]] if ok.size else np.arange(min(3, len(out)))
    fig = plt.figure(figsize=(13, 3.0 * len(pick) + 3.2))
    gs = fig.add_gridspec(len(pick) + 1, 5, height_ratios=[1] * len(pick) + [1.1])
    titles = ["residual (model - image)", "good / hidden / ignored", "mean infill", "draw 1", "draw 2"]
    for i, k in enumerate(pick):
        d = star_details(prep, out["x"][k], out["y"][k], out["flux"][k], ex["psf"], n_draw=2,
                         rng=k, **kw)
        res, pc = d["result"], d["classes"]
        lim = np.percentile(np.abs(d["data"][pc.good]), 99) if pc.good.any() else 1.0
        panels = [d["data"], None, res.mean, res.draws[0], res.draws[1]]
        for j, img in enumerate(panels):
            ax = fig.add_subplot(gs[i, j])
            if img is None:
                cls = np.where(pc.good, 0, np.where(pc.hidden, 1, 2))
                ax.imshow(cls, cmap=matplotlib.colors.ListedColormap(["#4c9f70", "#e0a030", "#555555"]),
                          vmin=0, vmax=2, origin="lower")
            else:
                ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=10)
            if j == 0:
                ax.set_ylabel(f"star {k}\nflux {out['flux'][k]:.0f}\ncflux {out['cflux'][k]:.0f}"
                              f" +- {out['dcflux'][k]:.0f}", fontsize=9)
    sel = np.asarray(out["dnt"]) & 64 == 0
    ax = fig.add_subplot(gs[-1, 0:2])
    ratio = np.asarray(out["dcflux"] / out["dcflux_diag"])[sel]
    ax.hist(ratio, bins=20, color="#4477aa")
    ax.set_xlabel("dcflux / dcflux_diag")
    ax.set_ylabel("stars")
    ax = fig.add_subplot(gs[-1, 3:5])
    sel &= ~_saturated_core(ex, out)
    ax.hist(np.asarray(out["cflux"] - out["flux"])[sel], bins=20, color="#aa4466")
    ax.set_xlabel("cflux - flux (ADU), stars without saturated (dq) cores")
    fig.suptitle("cloudcov demo: LPI on the DSS Horsehead cutout (crowdsource catalogue)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def demo(args):
    """Run the afterburner on the embedded example, write the catalogue and a figure."""
    from . import process_ccd
    from .example import load_example
    from .io import write_fits_table
    from .lpi import prepare_ccd

    t0 = time.perf_counter()
    ex = load_example()
    kw = dict(Np=args.Np, widx=args.widx, thr=args.thr)
    out = process_ccd(ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"], ex["gain"],
                      ex["dq"], seed=args.seed, threads=args.threads,
                      progress=None, **kw)
    t_run = time.perf_counter() - t0
    outdir = pathlib.Path(args.out)
    cat_path = outdir / "horsehead_lpi.fits"
    write_fits_table(out, cat_path)
    fig_path = outdir / "horsehead_lpi.png"
    if not args.no_figure:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("cloudcov demo: no figure (matplotlib is not installed: pip install "
                  "\"cloudcov[plot]\")", file=sys.stderr)
            args.no_figure = True
    if not args.no_figure:
        prep = prepare_ccd(ex["image"], ex["model"], ex["sky"], ex["catalog"], ex["psf"],
                           ex["gain"], ex["dq"], seed=args.seed, **kw)
        _demo_figure(ex, out, prep, kw, fig_path)
    dnt = np.asarray(out["dnt"]).astype(np.int64)
    bits = {b: int(np.sum(dnt & b != 0)) for b in (1, 2, 4, 8, 16, 32, 64)}
    good = dnt & (1 | 2 | 64) == 0
    m = out.meta["cloudcov"]
    print(f"cloudcov demo: {len(out)} stars processed in {t_run:.1f} s "
          f"(stack + stars {m['seconds_lpi']:.1f} s, {m['nstrips']} strip(s), "
          f"{m['threads']} thread(s))")
    print(f"  dnt == 0: {int(np.sum(dnt == 0))}; stars with bit set: " +
          ", ".join(f"{b}: {n}" for b, n in bits.items()))
    if good.any():
        r = np.asarray(out["dcflux"] / out["dcflux_diag"])[good]
        dz = np.asarray((out["cflux"] - out["flux"]) / out["dcflux"])[good]
        print(f"  regular solves ({int(good.sum())}): median dcflux/dcflux_diag = {np.median(r):.2f}; "
              f"median |cflux - flux|/dcflux = "
              f"{np.median(np.abs(dz)):.2f}; masked pixels {m['n_masked']}")
    print(f"  catalogue: {cat_path}")
    if not args.no_figure:
        print(f"  figure:    {fig_path}")
    return 0


# ---------------------------------------------------------------------------------------
# survey files: cloudcov exposure / cloudcov ccd (decaps2.jl flags)
# ---------------------------------------------------------------------------------------

def _add_lpi_args(p):
    """The method and run flags shared by ``exposure`` and ``ccd`` (decaps2.jl names)."""
    g = p.add_argument_group("LPI parameters (decaps2.jl flags)")
    g.add_argument("--thr", "-t", type=_number_or_auto, default=20.0,
                   help="PSF-based masking threshold in ADU (default 20, DECam); 'auto' = twice "
                        "the residual noise (generic inputs)")
    g.add_argument("--outthr", type=_number_or_auto, default=20000.0,
                   help="residual-based masking threshold in ADU (default 20000); 'auto' = "
                        "1000 thr (generic inputs)")
    g.add_argument("--Np", "-p", type=int, default=33, help="stamp side, odd (default 33)")
    g.add_argument("--wx", "-w", type=int, default=129,
                   help="boxcar width along Julia x = numpy COLUMNS (cloudcov widy; default 129)")
    g.add_argument("--wy", type=int, default=-1,
                   help="boxcar width along Julia y = numpy ROWS (cloudcov widx; default = --wx)")
    g.add_argument("--tilex", type=int, default=None,
                   help="accepted for decaps2.jl compatibility and ignored: the image is swept "
                        "in strips sized by --max-memory")
    g.add_argument("--tiley", type=int, default=None, help="ignored, as --tilex")
    g.add_argument("--max-memory", default="256M",
                   help="bytes for the shifted-product stack's ring buffer, e.g. 512M, 2G "
                        "(default 256M)")
    g.add_argument("--cS7", action="store_true",
                   help="correct the S7 amplifier offset (crowdsource correct_sky_offset; needs "
                        "the oow file; uses $DECAM_DIR/data/badpixmasksefs_comp.fits if present)")
    g.add_argument("--ftype", "-f", type=int, choices=(32, 64), default=32,
                   help="float precision, 32 or 64 (default 32)")
    g.add_argument("--psf-decoder", choices=("stamp", "params", "both"), default="stamp",
                   help="crowdsource PSF record decoder (default stamp; params = CloudCovErr.jl)")
    g = p.add_argument_group("run")
    g.add_argument("--resume", "-r", action="store_true",
                   help="keep CCDs already done with the same parameters (verified by their "
                        "checksums; corrupt ones are recomputed)")
    g.add_argument("--overwrite", action="store_true",
                   help="recompute and replace an existing output (never with a less "
                        "complete one); without --resume or --overwrite an existing output "
                        "is an error")
    g.add_argument("--format", choices=("fits", "hdf5"), default=None,
                   help="output format (default: from the --out suffix of `ccd`, .h5/.hdf5 "
                        "= hdf5; else fits); a format that contradicts the suffix is refused")
    g.add_argument("--compression", choices=("gzip", "lzf"), default="gzip",
                   help="HDF5 compression (default gzip)")
    g.add_argument("--threads", type=int, default=0, help="threads (default 0 = all cores)")
    g.add_argument("--seed", type=int, default=None,
                   help="exposure seed (default YYMMDD*10**6 + HHMMSS from the date)")


def _number_or_auto(text):
    """argparse type: a float or the word ``auto``."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _add_generic_args(p):
    """``cloudcov ccd --image ...``: any pipeline's FITS products."""
    g = p.add_argument_group("any pipeline's FITS products (instead of --ooi/--ood/--mod)")
    g.add_argument("--image", default=None, help="image IMG.fits[EXT] (ADU)")
    g.add_argument("--model", default=None, help="model image (sky + stars) MOD.fits[EXT]")
    g.add_argument("--sky", default=None,
                   help="sky/background SKY.fits[EXT] or a constant (default 0)")
    g.add_argument("--dq", default=None, help="data-quality image DQ.fits[EXT] (nonzero = bad)")
    g.add_argument("--psf", default=None,
                   help="PSF stamp PSF.fits[EXT]: odd, square, centred, any size")
    g.add_argument("--gain", default=None, help="gain e-/ADU, or an image header keyword")
    g.add_argument("--convention", choices=("crowdsource", "photutils"), default=None,
                   help="catalogue x/y: crowdsource x = row, photutils x = column (default: "
                        "from the column names; plain x/y warn and mean crowdsource)")
    g.add_argument("--x-col", default=None, help="catalogue x column (default: by name)")
    g.add_argument("--y-col", default=None, help="catalogue y column (default: by name)")
    g.add_argument("--flux-col", default=None, help="catalogue flux column (default: by name)")
    g.add_argument("--origin", type=int, choices=(0, 1), default=0,
                   help="catalogue position of the first pixel's centre (1: FITS/SExtractor)")
    g.add_argument("--flux-floor", type=_number_or_auto, default=1e4,
                   help="faint-star mask floor in ADU (default 1e4); 'auto' = 500 thr")


def _lpi_kwargs(args):
    from .survey import parse_bytes

    if "auto" in (args.thr, args.outthr) and getattr(args, "image", None) is None:
        raise ValueError("--thr/--outthr auto: only for generic inputs (--image ...); the "
                         "DECam defaults fit DECam CP files")
    if args.tilex is not None or args.tiley is not None:
        logging.getLogger("cloudcov").info(
            "--tilex/--tiley ignored: cloudcov chooses tiles from --max-memory")
    wx = args.wx
    wy = wx if args.wy == -1 else args.wy
    return dict(thr=args.thr, outthr=args.outthr, Np=args.Np, widx=wy, widy=wx,
                dtype="float32" if args.ftype == 32 else "float64", corrects7=args.cS7,
                psf_decoder=args.psf_decoder, threads=args.threads or None,
                max_memory=parse_bytes(args.max_memory), fmt=args.format or "fits",
                compression=args.compression, resume=args.resume, overwrite=args.overwrite)


def exposure(args):
    """``cloudcov exposure``: every CCD of one DECam exposure (decaps2.jl / proc_all)."""
    from .survey import SurveyError, run_exposure

    kw = _lpi_kwargs(args)
    try:
        res = run_exposure(args.base, args.date, args.filt, args.vers, args.basecat,
                           out_dir=args.out, ccdlist=args.ccdlist or None, seed=args.seed,
                           progress=None, **kw)
        code = 0
    except SurveyError as exc:
        res, code = exc.result, 1
    stars = ", ".join(f"{c} {n}" for c, n in res.nstars.items())
    nfailed = len([c for c in res.failed if c != "output"])
    print(f"cloudcov exposure {args.date}: {len(res.processed)} CCD(s) computed"
          + (f" ({stars} stars)" if stars else "")
          + f", {len(res.skipped)} already done, {len(res.absent)} absent, "
          f"{nfailed} failed, {res.seconds:.1f} s")
    for ccd, why in res.recomputed.items():
        print(f"  recomputed {ccd}: the earlier copy failed verification ({why})")
    for ccd, msg in res.failed.items():
        if ccd == "output":
            print(f"  OUTPUT NOT WRITTEN: {msg}", file=sys.stderr)
        else:
            print(f"  FAILED {ccd}: {msg}", file=sys.stderr)
    if res.output is not None:
        print(f"  output: {res.output}")
    return code


def _ccd_generic(args):
    """``cloudcov ccd --image ... --model ... --cat ... --psf ... --gain ...``: any pipeline."""
    from . import process_ccd
    from .io.generic import read_generic_inputs, split_ext
    from .io.locking import exclusive_lock
    from .io.output import format_of, write_ccd_output
    from .survey import _refuse_existing, parse_bytes

    missing = [f"--{n}" for n in ("model", "cat", "psf", "gain") if getattr(args, n) is None]
    if missing:
        raise ValueError(f"--image needs {', '.join(missing)}")
    fmt = format_of(args.out, args.format)
    # same rules as the DECam path: no silent overwrite, one writer at a time
    _refuse_existing(args.out, args.resume, args.overwrite)
    with exclusive_lock(args.out):
        return _ccd_generic_locked(args, fmt)


def _ccd_generic_locked(args, fmt):
    from . import process_ccd
    from .io.generic import read_generic_inputs, split_ext
    from .io.output import write_ccd_output
    from .survey import parse_bytes

    inputs = read_generic_inputs(args.image, args.model, args.cat, args.psf, args.gain,
                                 sky=args.sky, dq=args.dq, convention=args.convention,
                                 x=args.x_col, y=args.y_col, flux=args.flux_col,
                                 origin=args.origin)
    files = inputs.pop("files")
    wx = args.wx
    wy = wx if args.wy == -1 else args.wy
    t0 = time.perf_counter()
    out = process_ccd(**inputs, thr=args.thr, outthr=args.outthr,
                      flux_floor=args.flux_floor, Np=args.Np, widx=wy, widy=wx,
                      dtype="float32" if args.ftype == 32 else "float64",
                      seed=0 if args.seed is None else args.seed, threads=args.threads or None,
                      max_memory=parse_bytes(args.max_memory), progress=None)
    name = args.ccd or str(split_ext(args.image)[1] or "IMAGE")
    m = out.meta["cloudcov"]
    params = {k: m[k] for k in ("thr", "outthr", "flux_floor", "Np", "widx", "widy", "dtype",
                                "sky_noise", "julia_compat", "rlim", "guard", "convention",
                                "seed")}
    write_ccd_output(args.out, out, name, params=params, fmt=fmt, compression=args.compression,
                     info=dict(version=m["version"], lapack=m["lapack"], files=files, noise=m["noise"],
                               seconds=m["seconds_total"]))
    _ccd_summary(name, out, time.perf_counter() - t0, args.out,
                 f"; residual noise {m['noise']:.3g}, thr {m['thr']:.3g}")
    return 0


def _ccd_summary(name, out, seconds, path, extra=""):
    """The one-line result of ``cloudcov ccd`` and the output path."""
    dnt = np.asarray(out["dnt"]).astype(np.int64)
    print(f"cloudcov ccd {name}: {len(out)} stars in {seconds:.1f} s, "
          f"dnt == 0: {int(np.sum(dnt == 0))}, guard {int(np.sum(dnt & 4 != 0))}, "
          f"unstable {int(np.sum(dnt & 64 != 0))}{extra}")
    print(f"  output: {path}")


def ccd(args):
    """``cloudcov ccd``: one CCD from explicit file names (proc_ccd), or any pipeline's FITS
    products (``--image``)."""
    import re

    if args.image is not None:
        return _ccd_generic(args)
    missing = [f"--{n}" for n in ("ooi", "ood", "cat", "mod") if getattr(args, n) is None]
    if missing or args.ccd is None:
        raise ValueError("DECam/crowdsource inputs need the CCD name and --ooi --ood --cat --mod "
                         f"(missing {', '.join(missing + ([] if args.ccd else ['CCD']))}); "
                         "for other pipelines give --image --model --cat --psf --gain")
    from .io.output import format_of
    from .survey import date_seed, run_ccd

    kw = _lpi_kwargs(args)
    kw["fmt"] = format_of(args.out, args.format)
    seed = args.seed
    if seed is None:
        date = args.date
        if date is None:
            m = re.search(r"c4d_(\d{6}_\d{6})_", pathlib.Path(args.ooi).name)
            date = m.group(1) if m else None
        if date is None:
            logging.getLogger("cloudcov").warning(
                "no --date/--seed and no c4d_YYMMDD_HHMMSS in the ooi name: seed 0")
        seed = 0 if date is None else date_seed(date)
    t0 = time.perf_counter()
    out = run_ccd(args.ccd, ooi=args.ooi, ood=args.ood, cat=args.cat, mod=args.mod, oow=args.oow,
                  out=args.out, seed=seed, **kw)
    _ccd_summary(args.ccd, out, time.perf_counter() - t0, args.out)
    return 0


def impute_cmd(args):
    """``cloudcov impute``: impute the masked pixels of one FITS image."""
    import json

    from . import __version__
    from .impute import impute
    from .io.imputed import read_image_spec, write_impute_fits
    from .survey import parse_bytes

    t0 = time.perf_counter()
    image, header = read_image_spec(args.image, "image")
    if args.nan:
        mask = None
    else:
        mask, _ = read_image_spec(args.mask or args.dq, "mask" if args.mask else "dq")
        if mask.dtype.kind not in "biu":
            mask = np.asarray(mask) != 0   # float masks: non-zero = bad
        if mask.shape != image.shape:
            raise ValueError(f"mask shape {mask.shape} != image shape {image.shape}")
    opts = {}
    for item in args.set or ():
        key, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        try:
            opts[key] = json.loads(val)
        except json.JSONDecodeError:
            opts[key] = val
    if args.gain is not None:
        opts["gain"] = args.gain
    res = impute(image, mask, args.method, n_draw=args.n_draw, rng=args.seed,
                 threads=args.threads or None, max_memory=parse_bytes(args.max_memory),
                 progress=sys.stderr.isatty(), **opts)
    out = args.out or str(pathlib.Path(args.image.split("[")[0]).with_suffix("")) + "_imputed.fits"
    prov = dict(cloudcov=__version__, image=args.image, mask=args.mask, dq=args.dq, nan=args.nan,
                method=args.method, n_draw=args.n_draw, seed=args.seed, options=opts,
                fallback_reasons=res.fallback_reasons,
                seconds=round(time.perf_counter() - t0, 3))
    write_impute_fits(out, res, header, prov)
    print(f"cloudcov impute: {res.n_imputed} pixels imputed by {args.method} "
          f"({res.n_fallback} by fallback) in {time.perf_counter() - t0:.1f} s")
    print(f"  output: {out}")
    return 0


def _add_survey_parser(sub):
    """``cloudcov survey``: the exposure flags plus the engine flags."""
    s = sub.add_parser("survey", help="every exposure of a manifest on a local, Dask or Parsl engine",
                       description="LPI on every exposure of MANIFEST (CSV/ECSV: base, date, filt, "
                       "vers, basecat[, ccdlist]), one task per exposure, each written as "
                       "`cloudcov exposure` writes it; OUT/survey_log.ecsv logs every attempt. "
                       "Exit status 1 if an exposure failed after its retries.")
    s.add_argument("manifest", nargs="?", help="manifest table (.csv or .ecsv)")
    s.add_argument("--out", default=None, help="output folder (required)")
    g = s.add_argument_group("engine")
    g.add_argument("--executor", choices=("local", "dask", "parsl"), default="local",
                   help="local = concurrent.futures processes (default); dask = dask.distributed "
                        "(LocalCluster, or --scheduler); parsl = HighThroughputExecutor "
                        "(LocalProvider, or --parsl-config)")
    g.add_argument("--workers", type=int, default=None,
                   help="worker processes (local engines; default cores // threads-per-worker)")
    g.add_argument("--threads-per-worker", type=int, default=None,
                   help="threads of each task (C++ kernels and BLAS; default cores // workers, "
                        "1 on an existing scheduler; --threads is a synonym)")
    g.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    g.add_argument("--parsl-config", default=None,
                   help="Python file defining a parsl `config` (e.g. a SlurmProvider one)")
    g.add_argument("--print-parsl-config", choices=("slurm", "local"), default=None,
                   help="print a Parsl configuration template and exit")
    g.add_argument("--retries", type=int, default=2,
                   help="extra attempts of a failed exposure (default 2)")
    _add_lpi_args(s)


def survey(args):
    """``cloudcov survey``: every exposure of a manifest (CloudCovErr.jl: GNU Parallel)."""
    from .campaign import run_survey

    if args.print_parsl_config:
        from .engines import parsl_config_template

        print(parsl_config_template(args.print_parsl_config), end="")
        return 0
    if not args.manifest or not args.out:
        print("cloudcov survey: error: MANIFEST and --out are required", file=sys.stderr)
        return 2
    kw = _lpi_kwargs(args)
    threads = args.threads_per_worker or kw.pop("threads", None)
    kw.pop("threads", None)
    try:
        res = run_survey(args.manifest, args.out, executor=args.executor, workers=args.workers,
                         threads_per_worker=threads, scheduler=args.scheduler,
                         parsl_config=args.parsl_config, retries=args.retries, seed=args.seed,
                         progress=None, **kw)
    except ImportError as exc:
        print(f"cloudcov survey: error: {exc}", file=sys.stderr)
        return 1
    for name, msg in res.failed.items():
        print(f"  FAILED {name}: {msg}", file=sys.stderr)
    print(res.summary())
    return 1 if res.failed else 0


def main(argv=None):
    """Entry point of the ``cloudcov`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status (0 on success).
    """
    from . import __version__

    ap = argparse.ArgumentParser(prog="cloudcov", description="LPI photometry afterburner: "
                                 "corrected fluxes and honest uncertainties on structured "
                                 "backgrounds (Saydjari & Finkbeiner 2022)")
    ap.add_argument("--version", action="version", version=f"cloudcov {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="log progress")
    # -v also after the subcommand (SUPPRESS: an absent sub-option keeps the main one)
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="log progress")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser("demo", parents=[verbose],
                       help="run on the embedded real example (DSS Horsehead + crowdsource)",
                       description="Run the afterburner on the embedded example (a DSS plate "
                       "of the Horsehead nebula run through crowdsource); write the catalogue "
                       "with the LPI columns and a figure, and print a summary.")
    d.add_argument("--out", default="cloudcov_demo", help="output directory (default ./cloudcov_demo)")
    d.add_argument("--seed", type=int, default=0, help="seed of the infill noise (default 0)")
    d.add_argument("--threads", type=int, default=0, help="threads (default 0 = all cores)")
    d.add_argument("--Np", type=int, default=33, help="stamp size (default 33)")
    d.add_argument("--widx", type=int, default=129, help="boxcar width (default 129)")
    d.add_argument("--thr", type=float, default=1000.0,
                   help="PSF masking threshold in image units (default 1000, about 2 sigma of the "
                        "plate grain; DECam uses 20 ADU)")
    d.add_argument("--no-figure", action="store_true", help="skip the figure")
    e = sub.add_parser("exposure", parents=[verbose],
                       help="all CCDs of a DECam exposure (decaps2.jl)",
                       description="LPI on every CCD of one DECam exposure: CP files "
                       "BASE<DATE>_{ooi,oow,ood}_<FILT>_<VERS>.fits.fz, crowdsource files "
                       "BASECAT/cat/c4d_<DATE>_ooi_<FILT>_<VERS>.cat.fits and BASECAT/mod/"
                       "....mod.fits; output <OUT>/c4d_<DATE>_ooi_<FILT>_<VERS>.cat.cer.fits|.h5")
    e.add_argument("base", help="CP file prefix, e.g. /data/decaps/c4d_ (or a directory)")
    e.add_argument("date", help="exposure date-time YYMMDD_HHMMSS")
    e.add_argument("filt", help="filter, e.g. r")
    e.add_argument("vers", help="CP version tag, e.g. v1")
    e.add_argument("basecat", help="folder holding cat/ and mod/ (crowdsource outputs)")
    e.add_argument("--ccdlist", "-c", nargs="+", default=None, help="only these CCDs")
    e.add_argument("--out", default=None, help="output folder (default BASECAT/cer)")
    _add_lpi_args(e)
    c = sub.add_parser("ccd", parents=[verbose],
                       help="one CCD from explicit files: DECam CP + crowdsource, or any pipeline",
                       description="LPI on one CCD. DECam CP + crowdsource files: CCD --ooi "
                       "--ood --cat --mod (proc_ccd). Any pipeline's FITS products: --image "
                       "IMG.fits[EXT] --model MOD.fits[EXT] [--sky SKY.fits[EXT] | --sky VALUE] "
                       "--cat CAT.fits[EXT] --psf PSF.fits[EXT] --gain G|KEYWORD [--dq "
                       "DQ.fits[EXT]]; EXT is an extension name or index.")
    c.add_argument("ccd", nargs="?", default=None,
                   help="CCD name, e.g. S6 (DECam inputs; for --image: the output table name, "
                        "default the image extension)")
    c.add_argument("--ooi", default=None, help="CP image file")
    c.add_argument("--ood", default=None, help="CP data-quality file")
    c.add_argument("--oow", default=None, help="CP inverse-variance file (for --cS7)")
    c.add_argument("--cat", default=None,
                   help="catalogue: crowdsource .cat.fits, or with --image any FITS table "
                        "CAT.fits[EXT] (or HDF5 file[GROUP])")
    c.add_argument("--mod", default=None, help="crowdsource model file (.mod.fits)")
    _add_generic_args(c)
    c.add_argument("--out", required=True, help="output file (.fits, or .h5/.hdf5 for HDF5; sets --format)")
    c.add_argument("--date", default=None,
                   help="exposure YYMMDD_HHMMSS for the seed (default: from the ooi file name)")
    _add_lpi_args(c)
    im = sub.add_parser("impute", help="impute masked pixels of a FITS image (lpi, gpr, median, gaussian)",
                        description="Impute the bad pixels of IN.fits[EXT]; output FITS: imputed "
                        "image (input header kept, parameters in CCPARAMS/CCPROV), STD, MASK "
                        "(1 imputed, 2 fallback), DRAWS; written atomically.")
    im.add_argument("image", help="input image, FILE.fits or FILE.fits[EXT]")
    src = im.add_mutually_exclusive_group(required=True)
    src.add_argument("--mask", help="mask image FILE[EXT], non-zero = bad")
    src.add_argument("--dq", help="data-quality image FILE[EXT] (e.g. a DECam ood), non-zero = bad")
    src.add_argument("--nan", action="store_true", help="impute the NaN pixels of the image")
    im.add_argument("--method", choices=("lpi", "gpr", "median", "gaussian"), default="lpi",
                    help="imputation method (default lpi)")
    im.add_argument("--n-draw", type=int, default=0, help="random draws to write (DRAWS)")
    im.add_argument("--gain", type=float, default=None,
                    help="gain in e-/ADU (Poisson noise model for lpi/gpr)")
    im.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    im.add_argument("--threads", type=int, default=0, help="threads (default 0 = all cores)")
    im.add_argument("--max-memory", default="768M", help="stack memory budget (default 768M)")
    im.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="method option, e.g. --set Np=15 --set kernel=ou (JSON values)")
    im.add_argument("--out", default=None, help="output FITS (default IN_imputed.fits)")
    from .clean import add_cli_parser as _add_clean

    _add_clean(sub)
    _add_survey_parser(sub)
    _add_maps_parser(sub)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "demo":
        return demo(args)
    if args.command == "impute":
        try:
            return impute_cmd(args)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            print(f"cloudcov impute: error: {exc}", file=sys.stderr)
            return 1
    if args.command == "clean":
        return args.func(args)
    if args.command in ("exposure", "ccd", "survey"):
        logging.captureWarnings(True)
        try:
            return {"exposure": exposure, "ccd": ccd, "survey": survey}[args.command](args)
        except (OSError, ValueError, KeyError) as exc:
            print(f"cloudcov {args.command}: error: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:
            from .errors import CloudCovError

            if isinstance(exc, CloudCovError):
                print(f"cloudcov {args.command}: error: {exc}", file=sys.stderr)
            else:       # not anticipated: name it, no traceback (it goes to the -v log)
                if args.verbose:
                    import traceback

                    traceback.print_exc()
                print(f"cloudcov {args.command}: error: {type(exc).__name__}: {exc}"
                      + ("" if args.verbose else " (run with -v for the traceback)"),
                      file=sys.stderr)
            return 1
        finally:
            logging.captureWarnings(False)
    if args.command == "maps":
        return maps(args)
    return 2  # pragma: no cover


# ---------------------------------------------------------------------------------------
# cloudcov maps: HEALPix maps of error-bar calibration (LPI paper sec. 5.4)
# ---------------------------------------------------------------------------------------

def _add_maps_parser(sub):
    m = sub.add_parser(
        "maps", help="HEALPix maps of error-bar calibration from cloudcov outputs (paper sec. 5.4)",
        description="Read cloudcov FITS/HDF5 outputs, match an injected-truth table (columns ra, "
        "dec [deg, ICRS], flux; optional ccd, date to match within one CCD/exposure, id, use), "
        "and map per HEALPix pixel the IQR/1.34896 of the conventional (flux-true)/dflux and LPI "
        "(cflux-true)/dcflux Z-scores, and the clipped mean of dcflux/dflux. Positions come "
        "from the catalogues' ra/dec columns.")
    m.add_argument("outputs", nargs="+", help="cloudcov output files (.fits or .h5)")
    m.add_argument("--truth", default=None, help="injected-truth table (FITS, ECSV, CSV)")
    m.add_argument("--nside", type=int, default=32, help="NSIDE of the maps (default 32)")
    m.add_argument("--ratio-nside", type=int, default=None,
                   help="NSIDE of the dcflux/dflux map when it differs from --nside (written "
                        "to --ratio-out)")
    m.add_argument("--ratio-out", default=None,
                   help="FITS for the --ratio-nside map (default <out>.ratio.fits)")
    m.add_argument("--statistic", choices=("iqr", "median", "mean", "count"), default="iqr",
                   help="statistic of the Z-scores per pixel (default iqr = IQR/1.34896)")
    m.add_argument("--cuts", choices=("paper", "dnt", "none"), default="paper",
                   help="quality cuts: paper = footnote 15 (dnt == 0, cchi2/kcond > 0.7, no bad "
                        "flags, rchi2 < 100, fracflux > 0.5); dnt = dnt == 0 only; none")
    m.add_argument("--dnt-ignore", type=int, default=0,
                   help="dnt bits that do not reject a star (e.g. 28 = 4|8|16; default 0)")
    m.add_argument("--min-count", type=int, default=31,
                   help="fewest stars for a pixel to be mapped (default 31: the paper's > 30)")
    m.add_argument("--match-radius", type=float, default=1.0,
                   help="truth match radius in arcsec (default 1)")
    m.add_argument("--match-id", default=None,
                   help="match truth 'id' to this catalogue column instead of by position")
    m.add_argument("--frame", choices=("galactic", "icrs"), default="galactic",
                   help="map coordinates (default galactic)")
    m.add_argument("--nest", action="store_true", help="NESTED ordering (default RING)")
    m.add_argument("--out", required=True, help="HEALPix FITS file of the maps")
    m.add_argument("--png", default=None, help="figure of the maps")
    m.add_argument("--stars", default=None,
                   help="per-injected-star table (ECSV/FITS) with the Z-scores")
    m.add_argument("--lonra", type=float, nargs=2, default=(-125.0, 10.0),
                   help="figure longitude range, degrees (default -125 10)")
    m.add_argument("--latra", type=float, nargs=2, default=(-12.0, 12.0),
                   help="figure latitude range, degrees (default -12 12)")


def maps(args):
    """``cloudcov maps``: HEALPix maps of Z-score widths and dcflux/dflux."""
    from . import maps as cm

    try:
        cat = cm.load_outputs(args.outputs)
        truth = cm.read_truth(args.truth) if args.truth else None
        res = cm.error_maps(cat, truth, nside=args.nside, statistic=args.statistic,
                            cuts=args.cuts, frame=args.frame, nest=args.nest,
                            min_count=args.min_count, match_radius=args.match_radius,
                            by_id=args.match_id, ratio_nside=args.ratio_nside,
                            cut_overrides=dict(dnt_ignore=args.dnt_ignore) if args.cuts != "none" else None)
    except (OSError, ValueError, KeyError) as exc:
        print(f"cloudcov maps: error: {exc}", file=sys.stderr)
        return 1
    mp = res["maps"]
    meta = dict(NSIDE0=args.nside, STATISTC=args.statistic, CUTS=args.cuts,
                MINCOUNT=args.min_count, NFILES=len(args.outputs), NDETECT=res["n_detections"])
    main_maps = {k: v for k, v in mp.items() if np.size(v) == np.size(mp["count_all"])}
    cm.write_maps(args.out, main_maps, nest=args.nest, frame=args.frame, meta=meta)
    written = [args.out]
    if np.size(mp["ratio"]) != np.size(mp["count_all"]):
        rout = args.ratio_out or str(pathlib.Path(args.out).with_suffix("")) + ".ratio.fits"
        cm.write_maps(rout, {"ratio": mp["ratio"], "count_ratio": mp["count_ratio"]},
                      nest=args.nest, frame=args.frame, meta=meta)
        written.append(rout)
    if args.stars and res["stars"] is not None:
        from .io._files import atomic_path

        fmt = "fits" if str(args.stars).endswith((".fits", ".fit")) else "ascii.ecsv"
        with atomic_path(args.stars) as tmp:
            res["stars"].write(tmp, format=fmt, overwrite=True)
        written.append(args.stars)
    if args.png:
        label = {"iqr": "IQR/1.349 of Z", "median": "median Z", "mean": "mean Z",
                 "count": "stars"}[args.statistic]
        panels = []
        if truth is not None:
            panels += [(f"conventional: {label}", mp["z_conventional"]),
                       (f"LPI: {label}", mp["z_lpi"])]
        panels.append(("dcflux / dflux (LPI / conventional uncertainty)", mp["ratio"]))
        lo, hi = (0.0, 2.0) if args.statistic in ("iqr", "count") else (-1.0, 1.0)
        cm.plot_maps(panels, args.png, lonra=args.lonra, latra=args.latra, vmin=lo, vmax=hi,
                     nest=args.nest)
        written.append(args.png)
    ok = np.isfinite(mp["z_lpi"]) if truth is not None else np.isfinite(mp["ratio"])
    print(f"cloudcov maps: {res['n_detections']} detections from {len(args.outputs)} file(s), "
          f"{res['n_passed']} pass the {args.cuts} cuts; NSIDE {args.nside}, "
          f"{int(ok.sum())} pixel(s) with >= {args.min_count} stars")
    if truth is not None:
        print(f"  injected {len(truth)}, matched {res['n_matched']}, scored {res['n_scored']}; "
              f"median over pixels of {args.statistic}: conventional "
              f"{np.nanmedian(mp['z_conventional'][ok]) if ok.any() else np.nan:.3f}, "
              f"LPI {np.nanmedian(mp['z_lpi'][ok]) if ok.any() else np.nan:.3f}")
    for w in written:
        print(f"  wrote {w}")
    return 0
