"""Command-line front end: ``cloudcov demo`` (also ``python -m cloudcov demo``)."""
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
                      progress=sys.stderr.isatty(), **kw)
    t_run = time.perf_counter() - t0
    outdir = pathlib.Path(args.out)
    cat_path = outdir / "horsehead_lpi.fits"
    write_fits_table(out, cat_path)
    fig_path = outdir / "horsehead_lpi.png"
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
    ap = argparse.ArgumentParser(prog="cloudcov", description="LPI photometry afterburner")
    ap.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run on the embedded real example (DSS Horsehead + crowdsource)")
    d.add_argument("--out", default="cloudcov_demo", help="output directory (default ./cloudcov_demo)")
    d.add_argument("--seed", type=int, default=0, help="seed of the infill noise (default 0)")
    d.add_argument("--threads", type=int, default=0, help="threads (default 0 = all cores)")
    d.add_argument("--Np", type=int, default=33, help="stamp size (default 33)")
    d.add_argument("--widx", type=int, default=129, help="boxcar width (default 129)")
    d.add_argument("--thr", type=float, default=1000.0,
                   help="PSF masking threshold in image units (default 1000, about 2 sigma of the "
                        "plate grain; DECam uses 20 ADU)")
    d.add_argument("--no-figure", action="store_true", help="skip the figure")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "demo":
        return demo(args)
    return 2  # pragma: no cover
