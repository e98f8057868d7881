"""Imputation accuracy and calibration on real frames (issue 9 item 7).

On the three raw M13 CCD frames and the DSS Horsehead plate (``../shared/data/real``), good
pixels are hidden in three scenarios -- 1% random single pixels, 3x3 blocks and 1x5
horizontal lines (each about 1% of the pixels) -- and imputed with every
:func:`cloudcov.impute` method and, when a local clone is given, with astrofix
(Zhang & Brandt 2021; ``Fix_Image``) on the same frames and masks.

Figures of merit, per frame, scenario and method:

* ``mae``: mean ``|imputed - true| / noise`` over the hidden pixels (astrofix's figure of merit,
  its Fig. 8 normalises by the shot noise), and over the hidden pixels at least 3, 5 and 10
  noise sigma above the local background;
* ``z_iqr``: IQR/1.349 of ``Z = (true - mean) / std`` (cloudcov methods; astrofix has no std).

Noise model (documented, the same for every method): one white-noise sigma per frame, from
the adjacent-row differences of the good pixels, ``IQR/1.349/sqrt(2)`` (CloudCovFix.jl's
``sig_iqr`` of the differenced image without the sqrt(2) overestimate). The frames carry no
gain (M13 raw ADU, Horsehead photographic density), so no Poisson term is added. Local
background: 31 x 31 median filter of the frame.

Already-defective pixels (M13: zero-valued or > 10 sigma from their 5x5 median; none on the
plate) are part of every mask, never hidden and never scored.

Usage::

    python validation/scripts/05_imputation.py [--quick] [--out DIR] [--seed N]
        [--astrofix /work/ext/astrofix] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "real"
FRAMES = ["M13_blue_0001", "M13_blue_0002", "M13_blue_0003", "HorseHead"]
SCENARIOS = ["random", "block3x3", "line1x5"]
METHODS = ["median", "gaussian", "gpr", "lpi"]
LEVELS = (3, 5, 10)


def provenance():
    from cloudcov._provenance import provenance as prov

    return prov(REPO)


def load_frame(name, crop=None):
    from astropy.io import fits

    x = fits.getdata(REAL / f"{name}.fits").astype(np.float64)
    if crop is not None:
        x = x[crop]
    return np.ascontiguousarray(x)


def white_sigma(x, bad):
    both = ~bad[1:] & ~bad[:-1]
    d = (x[1:] - x[:-1])[both]
    q1, q3 = np.percentile(d, [25, 75])
    return float(q3 - q1) / 1.3489795003921634 / math.sqrt(2.0)


def existing_defects(name, x):
    from scipy.ndimage import median_filter

    if not name.startswith("M13"):
        return np.zeros(x.shape, bool)
    med = median_filter(x, size=5, mode="reflect")
    sig = white_sigma(x, np.zeros(x.shape, bool))
    return (x <= 0) | (np.abs(x - med) > 10 * sig)


def hide(scenario, bad, gen, frac=0.01):
    """Hidden-pixel mask: ~frac of the pixels, all good, never touching existing defects."""
    nrow, ncol = bad.shape
    hidden = np.zeros(bad.shape, bool)
    if scenario == "random":
        cand = np.flatnonzero(~bad.reshape(-1))
        pick = gen.choice(cand.size, int(frac * bad.size), replace=False)
        hidden.reshape(-1)[cand[pick]] = True
        return hidden
    hr, hc = (3, 3) if scenario == "block3x3" else (1, 5)
    n = int(frac * bad.size / (hr * hc))
    rows = gen.integers(0, nrow - hr + 1, 4 * n)
    cols = gen.integers(0, ncol - hc + 1, 4 * n)
    placed = 0
    for r, c in zip(rows, cols):
        if placed == n:
            break
        if bad[r:r + hr, c:c + hc].any() or hidden[max(r - 1, 0):r + hr + 1, max(c - 1, 0):c + hc + 1].any():
            continue
        hidden[r:r + hr, c:c + hc] = True
        placed += 1
    return hidden


def run_astrofix(path, x, mask):
    """astrofix.Fix_Image on the same frame and mask. Its default training set (pixels above
    10 MAD and below 1/5 of the maximum) is empty on the M13 raw frames (bias-dominated
    maximum); then it is retried with max_clip=1 and sig_clip=5, then 3."""
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import warnings

    from astrofix import Fix_Image

    tried = []
    for sig_clip, max_clip in ((10, 5), (10, 1), (5, 1), (3, 1)):
        try:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fixed, para, _ = Fix_Image(x.copy(), mask.copy(), sig_clip=sig_clip, max_clip=max_clip)
            return fixed, dict(a=float(para[0]), h=float(para[1]), sig_clip=sig_clip,
                               max_clip=max_clip, seconds=time.perf_counter() - t0,
                               failed_settings=tried)
        except ValueError as exc:
            tried.append(dict(sig_clip=sig_clip, max_clip=max_clip, error=str(exc)[:120]))
    raise RuntimeError(f"astrofix failed with every setting: {tried}")


def score(true, est, std, level, sigma):
    e = np.abs(est - true) / sigma
    out = dict(n=int(true.size), mae=float(e.mean()), median_ae=float(np.median(e)))
    for L in LEVELS:
        sel = level >= L
        out[f"n_ge{L}"] = int(sel.sum())
        out[f"mae_ge{L}"] = float(e[sel].mean()) if sel.any() else None
    if std is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (true - est) / std
        ok = np.isfinite(z)
        q1, q3 = np.percentile(z[ok], [25, 75])
        out["z_iqr"] = float(q3 - q1) / 1.3489795003921634
        out["z_nonfinite"] = int((~ok).sum())
        for L in LEVELS:
            sel = ok & (level >= L)
            if sel.sum() >= 20:
                q1, q3 = np.percentile(z[sel], [25, 75])
                out[f"z_iqr_ge{L}"] = float(q3 - q1) / 1.3489795003921634
            else:
                out[f"z_iqr_ge{L}"] = None
    return out


def main(argv=None):
    import cloudcov
    from scipy.ndimage import median_filter

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="200x200 crops of two frames (seconds)")
    p.add_argument("--out", default=str(REPO / "validation" / "results" / "imputation"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--astrofix", default=None,
                   help="path of a local astrofix clone (its astrofix/ package); omitted: skip")
    p.add_argument("--frames", nargs="+", default=None, help="subset of frames")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--compare-lpi-modes", action="store_true",
                   help="only compare lpi mode='independent' and 'continuous' on 400x400 crops "
                        "(writes lpi_modes.json)")
    args = p.parse_args(argv)
    if args.compare_lpi_modes:
        return compare_lpi_modes(args)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = args.frames or (["M13_blue_0001", "HorseHead"] if args.quick else FRAMES)
    crop = (slice(300, 500), slice(500, 700)) if args.quick else None
    results = dict(quick=args.quick, seed=args.seed, threads=args.threads,
                   provenance=provenance(), noise_model="white sigma per frame: IQR/1.349/sqrt(2) "
                   "of adjacent-row differences of good pixels; local background: 31x31 median",
                   frames={})
    methods = list(METHODS) + (["astrofix"] if args.astrofix else [])
    for fi, name in enumerate(frames):
        x = load_frame(name, crop)
        defects = existing_defects(name, x)
        sigma = white_sigma(x, defects)
        bkg = median_filter(x, size=31, mode="reflect")
        fr = dict(shape=list(x.shape), sigma=sigma, n_defects=int(defects.sum()), scenarios={})
        for si, scen in enumerate(SCENARIOS):
            gen = np.random.default_rng([args.seed, fi, si])
            hidden = hide(scen, defects, gen)
            mask = hidden | defects
            true = x[hidden]
            level = (true - bkg[hidden]) / sigma
            sc = dict(n_hidden=int(hidden.sum()), methods={})
            for mth in methods:
                t0 = time.perf_counter()
                if mth == "astrofix":
                    est_img, info = run_astrofix(args.astrofix, x, mask)
                    est, std = est_img[hidden], None
                    extra = dict(params=info)
                else:
                    r = cloudcov.impute(x, mask, mth, rng=args.seed, threads=args.threads)
                    est, std = r.image[hidden], r.std[hidden]
                    keep = {k: v for k, v in r.params.items() if k not in ("calibration",)}
                    extra = dict(params=keep, fallback=r.fallback_reasons)
                dt = time.perf_counter() - t0
                s = score(true, est, std, level, sigma)
                s.update(seconds=round(dt, 3), **extra)
                sc["methods"][mth] = s
                print(f"{name:14s} {scen:9s} {mth:9s} mae {s['mae']:.3f} ge5 "
                      f"{s['mae_ge5'] if s['mae_ge5'] is None else round(s['mae_ge5'], 3)} "
                      f"z_iqr {s.get('z_iqr', float('nan')):.3f}  {dt:.1f} s", flush=True)
            fr["scenarios"][scen] = sc
        results["frames"][name] = fr
    with open(out / "imputation.json", "w") as f:
        json.dump(results, f, indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
    table = markdown_table(results, methods)
    (out / "table.md").write_text(table)
    print(table)
    if not args.no_figures:
        figures(results, methods, out)
    return 0


def compare_lpi_modes(args):
    """LPI independent vs continuous stamps on 400 x 400 crops (the default comes from this)."""
    import cloudcov
    from scipy.ndimage import median_filter

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = dict(provenance=provenance(), crop="rows 300:700, cols 300:700", cases=[])
    for fi, name in enumerate(("M13_blue_0001", "HorseHead")):
        x = load_frame(name, (slice(300, 700), slice(300, 700)))
        defects = existing_defects(name, x)
        sigma = white_sigma(x, defects)
        bkg = median_filter(x, size=31, mode="reflect")
        for si, scen in enumerate(SCENARIOS):
            hidden = hide(scen, defects, np.random.default_rng([args.seed, fi, si]))
            level = (x[hidden] - bkg[hidden]) / sigma
            for mode in ("independent", "continuous"):
                t0 = time.perf_counter()
                r = cloudcov.impute(x, hidden | defects, "lpi", rng=args.seed, mode=mode,
                                    threads=args.threads)
                s = score(x[hidden], r.image[hidden], r.std[hidden], level, sigma)
                s.update(frame=name, scenario=scen, mode=mode,
                         seconds=round(time.perf_counter() - t0, 2),
                         n_colours=r.params.get("n_colours"))
                res["cases"].append(s)
                print(f"{name:14s} {scen:9s} {mode:11s} mae {s['mae']:.4f} ge5 {s['mae_ge5']} "
                      f"z_iqr {s['z_iqr']:.3f} {s['seconds']} s", flush=True)
    with open(out / "lpi_modes.json", "w") as f:
        json.dump(res, f, indent=1)
    return 0


def markdown_table(results, methods):
    def f(v, nd=3):
        return "-" if v is None else f"{v:.{nd}f}"
    lines = ["| frame | scenario | method | mean abs err / noise: all | >=3 sigma | >=5 sigma | "
             ">=10 sigma | Z IQR/1.349: all | >=5 sigma | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, fr in results["frames"].items():
        for scen, sc in fr["scenarios"].items():
            for m in methods:
                s = sc["methods"][m]
                lines.append(f"| {name} | {scen} | {m} | {f(s['mae'])} | {f(s['mae_ge3'])} "
                             f"({s['n_ge3']}) | {f(s['mae_ge5'])} ({s['n_ge5']}) | "
                             f"{f(s['mae_ge10'])} ({s['n_ge10']}) | {f(s.get('z_iqr'))} | "
                             f"{f(s.get('z_iqr_ge5'))} | {s['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def figures(results, methods, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = list(results["frames"])
    fig, axes = plt.subplots(2, len(frames), figsize=(4.2 * len(frames), 7), squeeze=False)
    colors = dict(median="#999999", gaussian="#66aadd", gpr="#dd7733", lpi="#338844",
                  astrofix="#aa3377")
    for j, name in enumerate(frames):
        for i, key in enumerate(("mae", "mae_ge5")):
            ax = axes[i, j]
            for k, m in enumerate(methods):
                vals = [results["frames"][name]["scenarios"][s]["methods"][m][key] for s in SCENARIOS]
                vals = [np.nan if v is None else v for v in vals]
                ax.bar(np.arange(3) + 0.8 * k / len(methods) - 0.4, vals, 0.8 / len(methods),
                       color=colors[m], label=m, align="edge")
            ax.set_xticks(range(3), SCENARIOS)
            ax.set_title(f"{name}: {'all hidden' if key == 'mae' else '>= 5 sigma'}", fontsize=9)
            ax.set_ylabel("mean |imputed - true| / noise")
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=100)
    plt.close(fig)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, m in zip(axes, METHODS):
        for name in frames:
            z = [results["frames"][name]["scenarios"][s]["methods"][m].get("z_iqr") for s in SCENARIOS]
            ax.plot(range(3), z, "o-", label=name)
        ax.axhspan(0.9, 1.1, color="#dddddd")
        ax.set_xticks(range(3), SCENARIOS)
        ax.set_ylim(0, 2)
        ax.set_title(f"{m}: Z IQR/1.349")
        if m == "median":
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
