#!/usr/bin/env python
"""Filament height vs SNR and sample aspect ratio (LPI paper sec. 4.2, Fig. 7).

One Gaussian filament (FWHM 6.7 px) runs along the rows of an image of white Gaussian noise
(sigma 1), so SNR = filament peak height / per-pixel noise sigma. ``--npos`` (34) positions
equally spaced along the spine are masked with a radius of 5 px ("hidden"); Np = 33, good
pixels within radius 16, the rest "ignored". For every position cloudcov's local covariance
(``local_covariance``, boxcar ``widx x widy``) and Gaussian conditioning (``cond_cov_est``,
``export_mean=True``, no star counts on the diagonal) predict the hidden pixels. The score is
the mean of the predicted 11 spine pixels (centre column, rows -5..5), pooled over the
positions, divided by the true height.

Two ways to build the covariance's training image (the paper does not say which it used):

* ``pipeline``: as the afterburner does: all positions masked at once, ``prelim_infill``
  (boxcar means of good pixels, width 19 growing x1.4), N(0, 1) noise added to the infilled
  pixels (the analogue of paper eq. 7);
* ``unmasked``: the noisy image itself (the hidden pixels enter the covariance samples).

Sample aspect ratio a = log2(samples along / across the filament) at a fixed number of
samples: 2^14: (65,255) (91,181) (129,129) (181,91) (255,65) for a = -2..2 (paper: (129,129)
at 0, (255,65) at 2); 2^16: (257,257) (363,181) (511,129) (725,91) (1023,65) for a = 0..4.
cloudcov's ``widx`` is along rows = along the filament here. The same noise realisation is
used for every SNR and window (common random numbers); the prediction is linear in the
image, so only the infill/covariance differ between SNRs.

Outputs in --out: ``results.json``, ``fig7_filament_height.png``, ``example_stamps.png``.

Full run:  python validation/scripts/02_filament_height.py              (~4 min)
Quick run: python validation/scripts/02_filament_height.py --quick --out /tmp/f2
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _synth as S  # noqa: E402

NAME = "02_filament_height"
NP = 33
H = NP // 2
WINDOWS = {
    14: {-2: (65, 255), -1: (91, 181), 0: (129, 129), 1: (181, 91), 2: (255, 65)},
    16: {0: (257, 257), 1: (363, 181), 2: (511, 129), 3: (725, 91), 4: (1023, 65)},
}
SNRS = [0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0, 5.0, 7.0, 10.0]


def geometry(windows, npos, spacing):
    wx = max(w[0] for w in windows)
    wy = max(w[1] for w in windows)
    mr = (wx - 1) // 2 + H + 2
    mc = (wy - 1) // 2 + H + 2
    nr = npos * spacing + 2 * mr
    nc = 2 * mc + 1
    rows = mr + spacing // 2 + spacing * np.arange(npos)
    return (nr, nc), rows, mc


def classes(radius):
    d = np.arange(-H, H + 1)
    r2 = d[:, None] ** 2 + d[None, :] ** 2
    hidden = r2 <= radius**2
    good = (r2 <= 256) & ~hidden
    return hidden, good


def reconstruct(train, data, rows, c0, widx, widy, hidden, good, radius, keep_stamp=False):
    """Mean prediction on the spine for every position; returns per-position values."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):   # small solves: BLAS threads only stall on a busy machine
        return _reconstruct(train, data, rows, c0, widx, widy, hidden, good, radius, keep_stamp)


def _reconstruct(train, data, rows, c0, widx, widy, hidden, good, radius, keep_stamp):
    import cloudcov
    out = []
    stamp = None
    psf = hidden.astype(float)
    zeros = np.zeros((NP, NP))
    for r in rows:
        cov, mu = cloudcov.local_covariance(train, int(r), c0, NP, widx, widy)
        st = data[r - H:r + H + 1, c0 - H:c0 + H + 1]
        res = cloudcov.cond_cov_est(cov.astype(np.float64), mu, ~good, hidden, st, zeros, psf,
                                    diag_on=False, export_mean=True)
        out.append(res.mean[H - radius:H + radius + 1, H].mean())
        if keep_stamp and stamp is None:
            stamp = res.mean
    return np.array(out), stamp


def run(args):
    import cloudcov
    t_start = time.perf_counter()
    timer = S.Timer()
    if args.quick:
        samples = [14]
        aspects = {14: [-2, 0, 2]}
        snrs = [0.3, 1.0, 1.4, 3.0, 10.0]
        npos, variants = 12, ["pipeline"]
    else:
        samples = args.samples
        aspects = {s: sorted(WINDOWS[s]) for s in samples}
        snrs = SNRS
        npos, variants = args.npos, ["pipeline", "unmasked"]
    windows = [WINDOWS[s][a] for s in samples for a in aspects[s]]
    shape, rows, c0 = geometry(windows, npos, args.spacing)
    rng = np.random.default_rng(args.seed)
    noise = rng.standard_normal(shape)
    col = np.arange(shape[1])
    profile = np.broadcast_to(S.gaussian_profile(col, c0), shape)
    hidden, good = classes(args.radius)
    mask = np.zeros(shape, bool)
    for r in rows:
        mask[r - H:r + H + 1, c0 - H:c0 + H + 1] |= hidden
    # prelim_infill is linear in the image for a fixed mask (boxcar means of good pixels; no
    # median fallback here): infill(s * profile + noise) = s * infill(profile) + infill(noise)
    with timer("infill"):
        inf_p = cloudcov.prelim_infill(np.ascontiguousarray(profile, dtype=np.float64), mask)
        inf_n = cloudcov.prelim_infill(noise, mask)
    if inf_p.n_fallback or inf_n.n_fallback:
        raise RuntimeError("infill fell back to the median: not linear")
    extra = np.zeros(shape)
    extra[mask] = rng.standard_normal(int(mask.sum()))
    results = {v: {} for v in variants}
    example = None
    for s in samples:
        for a in aspects[s]:
            widx, widy = WINDOWS[s][a]
            for v in variants:
                key = f"2^{s} a={a:+d}"
                entry = dict(samples=s, aspect=a, widx=widx, widy=widy, snr=[], fraction=[],
                             fraction_sem=[], fraction_min=[], fraction_max=[])
                for snr in snrs:
                    data = snr * profile + noise
                    if v == "pipeline":
                        train = snr * inf_p.image + inf_n.image + extra
                    else:
                        train = data
                    train = np.ascontiguousarray(train, dtype=np.float64)
                    with timer(f"lpi_{v}"):
                        vals, st = reconstruct(train, data, rows, c0, widx, widy, hidden, good,
                                               args.radius,
                                               keep_stamp=(s == 14 and a == 0 and snr == 1.4
                                                           and v == variants[0]))
                    if st is not None:
                        r0 = int(rows[0])
                        example = dict(truth=snr * profile[r0 - H:r0 + H + 1, c0 - H:c0 + H + 1],
                                       data=data[r0 - H:r0 + H + 1, c0 - H:c0 + H + 1],
                                       mean=st, snr=snr)
                    frac = vals / snr
                    entry["snr"].append(snr)
                    entry["fraction"].append(frac.mean())
                    entry["fraction_sem"].append(frac.std(ddof=1) / np.sqrt(frac.size))
                    entry["fraction_min"].append(frac.min())
                    entry["fraction_max"].append(frac.max())
                results[v][key] = entry
    ref = results[variants[0]].get("2^14 a=+0")
    i14 = ref["snr"].index(1.4) if ref and 1.4 in ref["snr"] else None
    summary = dict(
        fraction_at_snr1p4_aspect0_2p14={v: results[v]["2^14 a=+0"]["fraction"][i14]
                                          for v in variants} if i14 is not None else None,
        paper_fraction_at_snr1p4_aspect0_2p14="> 0.8",
        monotonic_in_snr={v: {k: bool(np.all(np.diff(e["fraction"]) > -2 * np.max(e["fraction_sem"])))
                              for k, e in results[v].items()} for v in variants},
    )
    result = dict(
        name=NAME, paper="Saydjari & Finkbeiner 2022, sec. 4.2, Fig. 7",
        command=" ".join(["python", "validation/scripts/02_filament_height.py"] + sys.argv[1:]),
        config=dict(quick=args.quick, seed=args.seed, image_shape=shape, npos=npos,
                    spacing=args.spacing, hidden_radius=args.radius, Np=NP, good_radius=16,
                    filament_fwhm=S.FIL_FWHM, noise_sigma=1.0, snrs=snrs, variants=variants,
                    windows={str(s): {str(a): WINDOWS[s][a] for a in aspects[s]} for s in samples},
                    snr_definition="filament peak height / per-pixel noise sigma",
                    score="mean of the 11 predicted spine pixels / true height, pooled over "
                          "positions"),
        results=results, summary=summary,
        seconds=dict(timer.t, total=time.perf_counter() - t_start),
        environment=S.environment(),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    S.write_json(args.out / "results.json", result)
    if example is not None:
        np.savez_compressed(args.out / "example.npz", **example,
                            hidden=hidden, good=good)
    if not args.no_figures:
        plot(args.out)
    return result


def plot(outdir):
    """Draw fig7_filament_height.png (and example_stamps.png) from the saved results."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    res = S.load_json(outdir / "results.json")
    variants = res["config"]["variants"]
    fig, axs = plt.subplots(2, len(variants), figsize=(6.2 * len(variants) + 0.5, 10.5),
                            squeeze=False)
    cmap = plt.get_cmap("tab10")
    for j, v in enumerate(variants):
        entries = res["results"][v]
        ax = axs[0, j]
        for key, e in entries.items():
            a = e["aspect"]
            col = cmap(a + 2)
            mk = "^" if e["samples"] == 14 else "o"
            ax.errorbar(e["snr"], e["fraction"], yerr=e["fraction_sem"], marker=mk,
                        mfc="none" if e["samples"] == 14 else col, color=col, ms=6, lw=1.2,
                        capsize=2, ls="-" if e["samples"] == 14 else "--",
                        label=f"$2^{{{e['samples']}}}$, a={a:+d} ({e['widx']}x{e['widy']})")
        ax.axhline(1, color="k", lw=0.6)
        ax.axhline(0.8, color="0.5", lw=0.6, ls=":")
        ax.axvline(1.4, color="0.5", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("SNR (filament height / pixel noise)")
        ax.set_ylabel("reconstructed fraction of filament height")
        ax.set_title(f"training image: {v}")
        ax.set_ylim(-0.1, 1.15)
        ax.legend(fontsize=7.5, loc="upper left", ncol=1)
        ax = axs[1, j]
        snrs = res["config"]["snrs"]
        cm2 = plt.get_cmap("viridis")
        for i, snr in enumerate(snrs):
            for s, mk, ls in ((14, "^", "-"), (16, "o", "--")):
                es = [e for e in entries.values() if e["samples"] == s]
                if not es:
                    continue
                x = [e["aspect"] for e in es]
                y = [e["fraction"][e["snr"].index(snr)] for e in es]
                o = np.argsort(x)
                col = cm2(i / max(1, len(snrs) - 1))
                ax.plot(np.array(x)[o], np.array(y)[o], marker=mk, ls=ls, color=col,
                        mfc="none" if s == 14 else col, ms=6,
                        label=f"SNR {snr:g}" if s == 14 else None)
        ax.axhline(1, color="k", lw=0.6)
        ax.axhline(0.8, color="0.5", lw=0.6, ls=":")
        ax.set_xlabel(r"sample aspect ratio $\log_2$(along / across filament)")
        ax.set_ylabel("reconstructed fraction of filament height")
        ax.set_ylim(-0.1, 1.15)
        ax.set_title("open triangles / solid: $2^{14}$ samples; filled circles / dashed: $2^{16}$",
                     fontsize=9)
        ax.legend(fontsize=8, ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    fig.tight_layout()
    fig.savefig(outdir / "fig7_filament_height.png", dpi=90)
    plt.close(fig)

    ex_path = outdir / "example.npz"
    if ex_path.exists():
        ex = np.load(ex_path)
        fig, axs = plt.subplots(1, 4, figsize=(13, 3.6))
        v = 1.2 * float(ex["snr"])
        cls = np.where(ex["hidden"], 2, np.where(ex["good"], 0, 1))
        panels = [("truth (filament)", ex["truth"]), ("data (+ noise)", ex["data"]),
                  ("pixel classes", cls), ("mean LPI infill", ex["mean"])]
        for ax, (t, arr) in zip(axs, panels):
            if t == "pixel classes":
                from matplotlib.colors import ListedColormap
                ax.imshow(arr, cmap=ListedColormap(["white", "0.25", "tab:orange"]),
                          vmin=-0.5, vmax=2.5, origin="lower")
            else:
                imh = ax.imshow(arr, cmap="RdBu_r", vmin=-v, vmax=v, origin="lower")
            ax.set_title(t)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(imh, ax=axs, fraction=0.02, pad=0.01, label="units of noise sigma")
        fig.suptitle(f"first position, SNR {float(ex['snr']):g}, 129 x 129 window, pipeline "
                     "training image", fontsize=10)
        fig.savefig(outdir / "example_stamps.png", dpi=80, bbox_inches="tight")
        plt.close(fig)


def main(argv=None):
    p = S.base_parser(NAME, __doc__)
    p.add_argument("--npos", type=int, default=34, help="positions along the spine (34)")
    p.add_argument("--spacing", type=int, default=60,
                   help="px between positions (default 60: 34 positions ~ one 2k CCD side)")
    p.add_argument("--radius", type=int, default=5, help="hidden radius in px (5)")
    p.add_argument("--samples", type=int, nargs="+", default=[14, 16], choices=[14, 16],
                   help="log2 of the number of covariance samples (default: 14 16)")
    args = p.parse_args(argv)
    res = run(args)
    f14 = res["summary"]["fraction_at_snr1p4_aspect0_2p14"] or {}
    txt = ", ".join(f"{k} {v:.3f}" for k, v in f14.items())
    print(f"{NAME}: {res['seconds']['total']:.0f} s; fraction of height at SNR 1.4, 2^14 "
          f"samples, aspect 0: {txt} (paper > 0.8); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
