#!/usr/bin/env python
"""Crowded synthetic field (LPI paper sec. 4.3, Fig. 8 left): PDFs of conventional vs LPI Z.

Stars of one flux (5e4 ADU, crowdsource's 59 x 59 stamp class like the paper's ~18th mag
stars) at random integer positions (a 20 px buffer at the edges) on a flat DECaPS-like sky,
with the paper's density of 25,000 stars per 2046 x 4094 DECam CCD (3.0e-3 per px^2, ten
times the isolated-footprint density); Poisson noise. crowdsource (``fit_im`` with the
injected PSF fixed, its default detection threshold 5 and deblending) gives the conventional
photometry; ``cloudcov.process_ccd`` (defaults: Np=33, 129 x 129, thr=20) the LPI one.

Stars with a true neighbour closer than 4/3 FWHM (6 px) are excluded from the statistics
(both members of such pairs stay in the image), as the paper does to remove merged
detections; the remaining true stars are matched to the nearest detection within 1.5 px.

Outputs in --out: ``results.json``, ``zscores.npz`` and ``fig8_crowded_field.png``.

Full run:  python validation/scripts/03_crowded_field.py             (~4 min, 2 cores)
Quick run: python validation/scripts/03_crowded_field.py --quick --out /tmp/f3
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _synth as S  # noqa: E402

NAME = "03_crowded_field"
DENSITY = 25000 / (2046 * 4094)
BUFFER = 20


def run(args):
    import cloudcov
    from scipy.spatial import cKDTree

    t_start = time.perf_counter()
    timer = S.Timer()
    shape = (512, 512) if args.quick else tuple(args.shape)
    rng = np.random.default_rng(args.seed)
    nstar = int(round(args.density * shape[0] * shape[1]))
    with timer("build"):
        rows = rng.integers(BUFFER, shape[0] - BUFFER, nstar)
        cols = rng.integers(BUFFER, shape[1] - BUFFER, nstar)
        stamp = S.moffat_stamp()
        expected = S.SKY + S.add_stars(shape, rows, cols, S.FLUX, stamp)
        image = S.poisson_image(expected, S.GAIN, rng)
    cat, model, sky, t_cs = S.run_crowdsource(image, expected, stamp, S.GAIN,
                                              threshold=args.threshold)
    timer.t["crowdsource"] = t_cs
    with timer("cloudcov"):
        out = cloudcov.process_ccd(image, model, sky, cat, stamp, S.GAIN, thr=20, Np=33,
                                   widx=129, widy=129, seed=args.seed, threads=args.threads)
    mindist = 4.0 / 3.0 * S.FWHM
    dnn, _ = cKDTree(np.c_[rows, cols]).query(np.c_[rows, cols], k=2)
    isolated = dnn[:, 1] >= mindist
    idx, dist, ok = S.match(rows, cols, cat)
    use = ok & isolated
    o = out[idx[use]]
    flux = np.asarray(o["flux"], float)
    zc = (flux - S.FLUX) / np.asarray(o["dflux"], float)
    zl = (np.asarray(o["cflux"], float) - S.FLUX) / np.asarray(o["dcflux"], float)
    dnt = np.asarray(o["dnt"]).astype(np.int16) & 0xFF
    clean = dnt == 0
    stats = dict(
        all=dict(conventional=S.zstats(zc), lpi=S.zstats(zl)),
        dnt0=dict(conventional=S.zstats(zc[clean]), lpi=S.zstats(zl[clean])),
    )
    med = stats["all"]["lpi"]["median"]
    result = dict(
        name=NAME, paper="Saydjari & Finkbeiner 2022, sec. 4.3, Fig. 8 left",
        command=" ".join(["python", "validation/scripts/03_crowded_field.py"] + sys.argv[1:]),
        config=dict(quick=args.quick, seed=args.seed, shape=shape, n_injected=nstar,
                    density_per_px2=args.density, flux_adu=S.FLUX, sky_adu=S.SKY, gain=S.GAIN,
                    psf=f"Moffat beta={S.BETA} FWHM={S.FWHM} px, {S.PSF_SIZE}^2 stamp",
                    min_separation_px=mindist, match_radius_px=1.5,
                    crowdsource=f"fit_im, fixed PSF, threshold {args.threshold}, default "
                                "deblending, weight = exact inverse sigma",
                    cloudcov=dict(thr=20, Np=33, widx=129, widy=129)),
        counts=dict(n_injected=nstar, n_isolated=int(isolated.sum()),
                    n_detected=len(cat), n_matched=int(ok.sum()), n_used=int(use.sum()),
                    n_isolated_unmatched=int((isolated & ~ok).sum()),
                    n_dnt0=int(clean.sum()),
                    dnt_counts={str(int(v)): int(np.sum(dnt == v)) for v in np.unique(dnt)}),
        stats=stats,
        bias=dict(median_flux_minus_true=np.median(flux - S.FLUX),
                  median_cflux_minus_true=np.nanmedian(np.asarray(o["cflux"], float) - S.FLUX),
                  median_fdb_res=np.nanmedian(np.asarray(o["fdb_res"], float)),
                  median_fdb_pred=np.nanmedian(np.asarray(o["fdb_pred"], float)),
                  median_sky_minus_true=float(np.median(sky) - S.SKY),
                  median_dflux=np.median(np.asarray(o["dflux"], float)),
                  median_dcflux=np.nanmedian(np.asarray(o["dcflux"], float)),
                  median_dcflux_diag=np.nanmedian(np.asarray(o["dcflux_diag"], float))),
        target=dict(lpi_median=med, lpi_median_se=stats["all"]["lpi"]["median_se"],
                    bound=0.1, pass_=bool(abs(med) <= 0.1)),
        cloudcov_meta=dict(out.meta["cloudcov"]),
        seconds=dict(timer.t, total=time.perf_counter() - t_start),
        environment=S.environment(),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    S.write_json(args.out / "results.json", result)
    r0 = shape[0] // 2 - 64
    c0 = shape[1] // 2 - 64
    np.savez_compressed(args.out / "zscores.npz", zc=zc.astype(np.float32),
                        zl=zl.astype(np.float32), dnt=dnt.astype(np.int8),
                        cut_image=(image - S.SKY)[r0:r0 + 128, c0:c0 + 128].astype(np.float32),
                        cut_resid=(image - model)[r0:r0 + 128, c0:c0 + 128].astype(np.float32))
    if not args.no_figures:
        plot(args.out)
    return result


def plot(outdir):
    """Draw fig8_crowded_field.png from results.json + zscores.npz."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    res = S.load_json(outdir / "results.json")
    d = np.load(outdir / "zscores.npz")
    zc, zl = d["zc"], d["zl"]
    zl = zl[np.isfinite(zl)]
    fig = plt.figure(figsize=(14.5, 5.8))
    gs = fig.add_gridspec(2, 3, width_ratios=[1.3, 1.3, 1.0])
    edges = np.linspace(-6, 6, 97)
    x = np.linspace(-6, 6, 400)
    gauss = np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)
    st = res["stats"]["all"]
    for j, logy in enumerate((False, True)):
        ax = fig.add_subplot(gs[:, j])
        ax.hist(zc, edges, density=True, histtype="step", lw=1.6, color="tab:blue",
                label=f"conventional: median {st['conventional']['median']:+.3f}, "
                      f"IQR/1.349 {st['conventional']['iqr_sigma']:.3f}, "
                      f"|Z|>3 {100 * st['conventional']['frac_abs_gt3']:.1f}%")
        ax.hist(zl, edges, density=True, histtype="step", lw=1.6, color="tab:green",
                label=f"LPI: median {st['lpi']['median']:+.3f}, "
                      f"IQR/1.349 {st['lpi']['iqr_sigma']:.3f}, "
                      f"|Z|>3 {100 * st['lpi']['frac_abs_gt3']:.1f}%")
        ax.plot(x, gauss, color="tab:red", lw=1.2, label="N(0, 1)")
        ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel("Z = (flux - true flux) / error")
        ax.set_ylabel("PDF")
        if logy:
            ax.set_yscale("log")
            ax.set_ylim(1e-4, 1)
        else:
            ax.set_ylim(0, 0.56)
            ax.legend(fontsize=8, loc="upper left")
            nout = int(np.sum(np.abs(zc) > 6)), int(np.sum(np.abs(zl) > 6))
            ax.text(0.99, 0.6, f"|Z| > 6 not shown:\nconv. {nout[0]}, LPI {nout[1]}",
                    transform=ax.transAxes, ha="right", fontsize=8)
            ax.set_title(f"{st['lpi']['n']} isolated stars (nearest neighbour >= 6 px) of "
                         f"{res['counts']['n_injected']} injected", fontsize=10)
    c = res["config"]
    ax = fig.add_subplot(gs[0, 2])
    ax.imshow(d["cut_image"], cmap="gray_r", vmin=-20, vmax=400, origin="lower")
    ax.set_title(f"image - sky, 128 px cutout ({c['shape'][0]}x{c['shape'][1]} image)",
                 fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax = fig.add_subplot(gs[1, 2])
    ax.imshow(d["cut_resid"], cmap="RdBu_r", vmin=-40, vmax=40, origin="lower")
    ax.set_title("image - crowdsource model (+-40 ADU)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(outdir / "fig8_crowded_field.png", dpi=90)
    plt.close(fig)


def main(argv=None):
    p = S.base_parser(NAME, __doc__)
    p.add_argument("--shape", type=int, nargs=2, default=(2048, 2048),
                   help="image rows, columns of the full run (default 2048 2048; the paper "
                        "used one 2046 x 4094 CCD)")
    p.add_argument("--density", type=float, default=DENSITY,
                   help="stars per px^2 (default the paper's 25,000 per DECam CCD)")
    p.add_argument("--threshold", type=float, default=5.0,
                   help="crowdsource detection threshold (default 5, crowdsource's default)")
    args = p.parse_args(argv)
    res = run(args)
    st = res["stats"]["all"]
    print(f"{NAME}: {res['counts']['n_used']} stars used of {res['counts']['n_injected']}; "
          f"median Z conventional {st['conventional']['median']:+.3f}, LPI "
          f"{st['lpi']['median']:+.3f} +- {st['lpi']['median_se']:.3f} (target |.| <= 0.1: "
          f"{'PASS' if res['target']['pass_'] else 'FAIL'}); {res['seconds']['total']:.0f} s; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
