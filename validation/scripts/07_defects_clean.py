"""Defect detection and end-to-end cleaning on real frames (issue 10, items 3 and 4).

Detection (item 3). The three M13 frames (Orion SSDSI, 5 s, same pointing) are checked for
relative shifts (phase cross-correlation, 1/20 px) and aligned if needed; for each frame the
mean of the two others ("median of the other frames") is the truth T for *transient* defects:
D = x - T with noise sigma_D (robust scatter of D over the frame, plus source Poisson noise
from the photon-transfer gain). Truth defects are |D| > 6 sigma_D; pixels where the two other
frames disagree with each other by > 6 sigma (a defect in one of them) are undetermined and
left out. For each finder we report the flagged pixels, the fraction of positive (hot / cosmic
ray) and negative (dead) truth defects it recovers, and the flagged pixels the truth does not
support (|D| < 3 sigma_D). On the HorseHead plate (no defects, sharp stars) every flagged
pixel is a false positive.

Imputation (item 4, astrofix sec. 5.1 protocol, with the scenarios, noise model and scores of
05_imputation.py, imported from it). On M13 frame 1 and HorseHead, good pixels are hidden
(1 % random pixels, 3 x 3 blocks, 1 x 5 lines; ~1 % of the image each) on top of the defects
cloudcov.clean finds; each method imputes them and we report mean |imputed - true| / noise on
all hidden pixels and those >= 3/5/10 sigma above the local background, the spread of
Z = (true - imputed) / std (IQR / 1.349, methods with a std), and the run time per frame.
astroscrappy's cleaning runs only on pixels it detects, so the hidden pixels are turned into
+1e6 e- spikes and detect_cosmics (objlim 0) cleans what it finds (coverage reported).

    python validation/scripts/07_defects_clean.py            # full run, ~5-10 min on 2 cores
    python validation/scripts/07_defects_clean.py --quick    # cut-outs, ~20 s (tests)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synth import REPO, base_parser, environment, write_json  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "real"
M13 = [REAL / f"M13_blue_000{k}.fits" for k in (1, 2, 3)]
HORSEHEAD = REAL / "HorseHead.fits"
QUICK_M13 = (slice(400, 600), slice(550, 850))   # cluster core and its outskirts
QUICK_HH = (slice(300, 500), slice(300, 500))
PT_REGION = (slice(300, 700), slice(450, 950))


# ------------------------------------------------------------------------------ inputs

def provenance():
    """05_imputation.py's provenance (version, git commit) plus the detection packages."""
    from importlib import metadata
    env = dict(environment())
    env.update(_v05().provenance())
    for pkg in ("astroscrappy", "scikit-image", "scipy", "astropy", "deepCR", "torch"):
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = None
    return env


def load_m13(quick):
    from astropy.io import fits

    frames, headers = [], []
    for p in M13:
        with fits.open(p) as h:
            d = np.asarray(h[0].data)
            headers.append(h[0].header.copy())
        frames.append(d[QUICK_M13] if quick else d)
    bias = -float(headers[0].get("PEDESTAL", 0.0))
    return frames, headers, bias


def load_hh(quick):
    from astropy.io import fits

    d = np.asarray(fits.getdata(HORSEHEAD)).astype(np.float64)
    return d[QUICK_HH] if quick else d


def measure_shifts(frames):
    """Shift of each frame relative to frame 0 (rows, cols), phase cross-correlation."""
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    def prep(a):
        a = np.asarray(a, np.float64)
        a = np.clip(a - np.median(a), -3 * _robust(a), 30 * _robust(a))
        return ndimage.gaussian_filter(a, 1.5)

    ref = prep(frames[0])
    return [tuple(float(v) for v in phase_cross_correlation(ref, prep(f), upsample_factor=20)[0])
            for f in frames]


def _robust(a):
    from astropy.stats import mad_std
    return float(mad_std(np.asarray(a, np.float64)))


def align(frames, shifts):
    from scipy import ndimage
    out = []
    for f, s in zip(frames, shifts):
        f = np.asarray(f, np.float64)
        out.append(f if max(abs(s[0]), abs(s[1])) < 0.05 else ndimage.shift(f, s, order=3, mode="nearest"))
    return out


def photon_transfer(frames, bias):
    """Gain (e-/ADU) and read noise (e-) from the variance of frame differences vs signal.

    var((x1 - x2) / sqrt(2)) = rn_adu**2 + S / gain, S the signal above the pedestal (mean of
    the frames, 5 x 5 smoothed). Robust variance: (IQR / 1.349)**2 with interpolated
    quantiles of the 0.5 ADU-quantised differences, in signal bins; straight-line fit.
    """
    from scipy import ndimage
    a = [np.asarray(f, np.float64) for f in frames]
    s = ndimage.uniform_filter(np.mean(a, axis=0), 5) - bias
    d = (a[0] - a[1]) / np.sqrt(2.0)
    d = d + np.random.default_rng(0).uniform(-0.5, 0.5, d.shape) / np.sqrt(2.0)  # dequantise
    edges = np.percentile(s, [1, 10, 30, 50, 70, 90, 97, 99, 99.7, 99.95])
    xs, vs, ns = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (s >= lo) & (s < hi)
        if m.sum() < 200:
            continue
        q1, q3 = np.percentile(d[m], [25, 75])
        xs.append(float(np.median(s[m])))
        vs.append(float(((q3 - q1) / 1.349) ** 2) - 1.0 / 12.0)
        ns.append(int(m.sum()))
    slope, icpt = np.polyfit(xs, vs, 1, w=np.sqrt(ns))
    gain = 1.0 / slope if slope > 0 else float("nan")
    rn_adu = float(np.sqrt(max(icpt, 0.0)))
    return dict(gain=gain, readnoise_e=rn_adu * gain, readnoise_adu=rn_adu,
                bins=dict(signal=xs, variance=vs, n=ns))


# ------------------------------------------------------------------------------ truth

def transient_truth(aligned, k, gain):
    """Deviations of frame ``k`` from each other frame, in units of their noise.

    ``z_j = (x_k - x_j) / sigma_pair`` with ``sigma_pair**2 = 2 sigma0**2 + 2 S / gain``
    (sigma0 the robust scatter of the frame differences / sqrt 2, S the signal above the sky
    of the other frames' median). A pixel is a transient defect of frame ``k`` when it
    deviates from *every* other frame by > 6 sigma with the same sign (the median of the other
    frames, made robust to a defect in one of them: with two other frames their median is
    their mean, which a dead pixel in one of them drags down); it is consistent with the truth
    when it agrees with every other frame within 3 sigma.
    """
    from astropy.stats import mad_std
    x = aligned[k]
    others = [a for j, a in enumerate(aligned) if j != k]
    truth = np.median(others, axis=0)
    sky = np.median(truth)
    s0 = float(np.median([mad_std(x - o) for o in others])) / np.sqrt(2.0)
    sig_pair = np.sqrt(2 * s0 ** 2 + 2 * np.maximum(truth - sky, 0.0) / gain)
    zs = np.stack([(x - o) / sig_pair for o in others])
    zmin = zs.min(axis=0)
    zmax = zs.max(axis=0)
    zabs = np.abs(zs).max(axis=0)
    return dict(zmin=zmin, zmax=zmax, zabs=zabs, truth=truth, sigma0=s0, sigma_pair=sig_pair,
                D=x - truth)


# ------------------------------------------------------------------------------ finders

def finders_for_frame(frames, k, gain, rn, bias, quick):
    """Every finder's masks for frame ``k``: dict name -> (pos_mask, neg_mask)."""
    import astroscrappy

    import cloudcov
    from cloudcov import defects as D

    x = frames[k]
    xf = np.asarray(x, np.float64)
    out, secs = {}, {}
    t = time.perf_counter()
    hot = D.find_hot_pixels(xf, gain=gain)
    dead = D.find_dead_pixels(xf, gain=gain)
    secs["cloudcov hot+dead"] = time.perf_counter() - t
    out["cloudcov hot (6 sigma, guard)"] = (hot, None)
    out["cloudcov dead (6 sigma, guard)"] = (None, dead)
    out["cloudcov hot/dead, no guard"] = (D.find_hot_pixels(xf, gain=gain, guard=None),
                                         D.find_dead_pixels(xf, gain=gain, guard=None))
    t = time.perf_counter()
    cr = D.find_cosmic_rays(xf, gain, rn, bias=bias, mask=dead)
    secs["cloudcov cosmic rays"] = time.perf_counter() - t
    out["cloudcov cosmic rays (LACosmic, dead masked)"] = (cr, None)
    t = time.perf_counter()
    res = cloudcov.clean(x, frames=[f for j, f in enumerate(frames) if j != k], gain=gain,
                         readnoise=rn, bias=bias, cr_grow=0, method="median")
    secs["cloudcov.clean (all finders + median impute)"] = time.perf_counter() - t
    dec = D.decode_defects(res.defects)
    out["cloudcov.clean all classes"] = (dec["hot"] | dec["cosmic_ray"] | dec["stuck"],
                                         dec["dead"])
    t = time.perf_counter()
    cr_def, _ = astroscrappy.detect_cosmics(np.asarray(x, np.float32))
    secs["astroscrappy defaults"] = time.perf_counter() - t
    out["astroscrappy defaults"] = (np.asarray(cr_def, bool), None)
    cr_m, _ = astroscrappy.detect_cosmics(np.asarray(xf - bias, np.float32), gain=gain, readnoise=rn,
                                          satlevel=np.inf)
    out["astroscrappy, measured gain/noise"] = (np.asarray(cr_m, bool), None)
    t = time.perf_counter()
    b_hot, b_dead = blog_median(xf)
    secs["blog median filter"] = time.perf_counter() - t
    out["blog median filter (3x3, 3 std)"] = (b_hot, b_dead)
    return out, secs, res


def blog_median(img, kernel_size=3, k=3.0):
    """The plain median-filter test of shared/papers/003 sec. 4 (3 x 3, +-3 np.std)."""
    from scipy import ndimage
    diff = img - ndimage.median_filter(img, size=kernel_size)
    sigma = np.std(diff)
    return diff > k * sigma, diff < -k * sigma


def score(pos, neg, tr, nsig=6.0, nsup=3.0):
    tpos = tr["zmin"] > nsig
    tneg = tr["zmax"] < -nsig
    consistent = tr["zabs"] < nsup
    flag = np.zeros(tpos.shape, bool)
    r = {}
    if pos is not None:
        flag |= pos
        r["n_pos"] = int(pos.sum())
        r["recall_pos"] = float((pos & tpos).sum() / max(tpos.sum(), 1))
    if neg is not None:
        flag |= neg
        r["n_neg"] = int(neg.sum())
        r["recall_neg"] = float((neg & tneg).sum() / max(tneg.sum(), 1))
    r["n_flagged"] = int(flag.sum())
    r["unsupported"] = int((flag & consistent).sum())
    r["confirmed"] = int((flag & (tpos | tneg)).sum())
    r["other"] = r["n_flagged"] - r["unsupported"] - r["confirmed"]
    return r


def horsehead_detection(hh):
    import astroscrappy
    from astropy.stats import mad_std
    from scipy import ndimage

    from cloudcov import defects as D

    s0 = float(mad_std(hh - ndimage.median_filter(hh, 5)))
    geff = float(np.median(hh) / s0 ** 2)   # photographic density: effective Poisson gain
    res = {"sigma_plate": s0, "effective_gain": geff}
    masks = {
        "cloudcov hot (6 sigma, guard)": D.find_hot_pixels(hh),
        "cloudcov dead (6 sigma, guard)": D.find_dead_pixels(hh),
        "cloudcov hot/dead, no guard": D.find_hot_pixels(hh, guard=None) | D.find_dead_pixels(hh, guard=None),
        "cloudcov cosmic rays (LACosmic, effective gain)": D.find_cosmic_rays(hh, geff, 0.0),
        "astroscrappy defaults": np.asarray(astroscrappy.detect_cosmics(hh.astype(np.float32))[0], bool),
        "blog median filter (3x3, 3 std)": np.logical_or(*blog_median(hh)),
    }
    masks["cloudcov.clean all classes"] = (masks["cloudcov hot (6 sigma, guard)"]
                                           | masks["cloudcov dead (6 sigma, guard)"]
                                           | masks["cloudcov cosmic rays (LACosmic, effective gain)"])
    for name, m in masks.items():
        res[name] = dict(n=int(m.sum()), fraction=float(m.mean()))
    return res, masks


# ------------------------------------------------------------------------------ imputation

def astroscrappy_fill(img_adu, hidden, known, gain, rn, bias, cleantype):
    """astroscrappy's cleaning of ``hidden``: spikes it detects and cleans (objlim 0)."""
    import astroscrappy
    x = np.asarray(img_adu, np.float64) - bias
    x = x.copy()
    x[hidden] += 1e6 / gain
    cr, cl = astroscrappy.detect_cosmics(x.astype(np.float32), inmask=known, gain=gain,
                                         readnoise=rn, satlevel=np.inf, objlim=0.0,
                                         cleantype=cleantype, niter=6)
    cr = np.asarray(cr, bool)
    return np.asarray(cl, np.float64) + bias, cr


def biharmonic(img, mask):
    from skimage.restoration import inpaint_biharmonic
    return inpaint_biharmonic(np.asarray(img, np.float64), mask)


def _v05():
    """h-impute's validation helpers (05_imputation.py): hide, score, white_sigma."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("v05", Path(__file__).resolve().parent / "05_imputation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def impute_benchmark(name, img, known, gain, rn, bias, rng, quick, figdata):
    """Every method on the three scenarios of 05_imputation.py for one image.

    Masks: the defects ``known`` (from cloudcov.clean) plus the hidden pixels; noise model and
    brightness levels as 05_imputation.py (one white sigma from row differences; levels =
    (true - 31 x 31 median) / sigma), so the numbers compare with its table.
    """
    from scipy import ndimage

    import cloudcov
    v05 = _v05()
    img = np.ascontiguousarray(img, np.float64)
    sigma = v05.white_sigma(img, known)
    level = (img - ndimage.median_filter(img, size=31, mode="reflect")) / sigma
    rows = []
    methods = ["median", "gaussian", "lpi", "gpr", "astroscrappy medmask", "astroscrappy idw",
               "skimage biharmonic", "deepCR inpaint"]
    if quick:
        methods = ["median", "gaussian", "astroscrappy medmask", "skimage biharmonic"]
    for sc in v05.SCENARIOS:
        hid = v05.hide(sc, known, rng)
        truth = img[hid]
        lev = level[hid]
        for meth in methods:
            t0 = time.perf_counter()
            std = None
            cover = None
            sel = np.ones(truth.size, bool)
            if meth in ("median", "gaussian", "lpi", "gpr"):
                r = cloudcov.impute(img, hid | known, method=meth, rng=0)
                est, std = r.image[hid], r.std[hid]
            elif meth.startswith("astroscrappy"):
                cl, cr = astroscrappy_fill(img, hid, known, gain, rn, bias, meth.split()[1])
                est = cl[hid]
                # pixels it did not find keep their spike: not scored, nor are cleaned pixels
                # with such a spike in their 5 x 5 cleaning window (it contaminates idw/mean)
                missed = hid & ~cr
                near = ndimage.binary_dilation(missed, structure=np.ones((5, 5), bool))
                sel = cr[hid] & ~near[hid]
                cover = float(cr[hid].mean())
            elif meth == "skimage biharmonic":
                est = biharmonic(img, hid | known)[hid]
            else:
                from cloudcov.defects import _deepcr_available
                if not _deepcr_available():
                    continue
                from deepCR import deepCR
                mdl = deepCR(mask="ACS-WFC-F606W-2-32", inpaint="ACS-WFC-F606W-2-32", device="CPU")
                est = np.asarray(mdl.inpaint(((img - bias) * gain).astype(np.float32),
                                             (hid | known).astype(np.float32))) / gain + bias
                est = est[hid]
            dt = time.perf_counter() - t0
            row = dict(image=name, scenario=sc, method=meth, seconds=dt, sigma=sigma,
                       **v05.score(truth[sel], est[sel], None if std is None else std[sel], lev[sel], sigma))
            if cover is not None:
                row["astroscrappy_coverage"] = cover
                row["n_scored"] = int(sel.sum())
            if std is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    z = (truth - est) / std
                figdata.setdefault((name, sc), {})[meth] = z[np.isfinite(z)]
            rows.append(row)
            print(f"  {name:10s} {sc:9s} {meth:22s} mae {row['mae']:.3f}  >=5 {row['mae_ge5']}"
                  f"  >=10 {row['mae_ge10']}  z_iqr {row.get('z_iqr')}  cover {cover}  {dt:.2f} s",
                  flush=True)
    return rows


# ------------------------------------------------------------------------------ figures

def fig_cutouts(path, frame, cleaned, truth, defects, D, sigma, n=6):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cloudcov.defects import defect_names
    z = np.where(defects != 0, np.abs(D / sigma), 0)
    order = np.argsort(z.ravel())[::-1]
    picks = []
    for idx in order:
        r, c = np.unravel_index(idx, z.shape)
        if r < 8 or c < 8 or r > z.shape[0] - 9 or c > z.shape[1] - 9:
            continue
        if all(abs(r - a) > 10 or abs(c - b) > 10 for a, b in picks):
            picks.append((r, c))
        if len(picks) == n:
            break
    fig, axes = plt.subplots(len(picks), 4, figsize=(8.5, 2.1 * len(picks)))
    for i, (r, c) in enumerate(picks):
        sl = (slice(r - 7, r + 8), slice(c - 7, c + 8))
        lo, hi = np.percentile(truth[sl], [2, 98])
        lo, hi = lo - 2 * np.median(sigma), hi + 2 * np.median(sigma)
        for j, (im, title) in enumerate(((frame[sl], "frame"), (defects[sl] != 0, "defect mask"),
                                         (cleaned[sl], "cleaned (median)"),
                                         (truth[sl], "other frames (truth)"))):
            ax = axes[i, j]
            if j == 1:
                ax.imshow(im, cmap="gray_r", vmin=0, vmax=1, origin="lower")
            else:
                ax.imshow(im, cmap="gray", vmin=lo, vmax=hi, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
        axes[i, 0].set_ylabel(f"({r},{c})\n{'+'.join(defect_names(defects[r, c]))}\n"
                              f"D={D[r, c] / sigma[r, c]:+.0f} sigma", fontsize=7)
    fig.suptitle("M13 frame 1: the most deviant flagged pixels before / after cloudcov clean", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fig_zhist(path, figdata):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = sorted(figdata)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.0), squeeze=False)
    bins = np.linspace(-6, 6, 61)
    g = np.exp(-0.5 * ((bins[:-1] + bins[1:]) / 2) ** 2) / np.sqrt(2 * np.pi)
    for ax, key in zip(axes[0], keys):
        for meth, z in figdata[key].items():
            ax.hist(np.clip(z, -6, 6), bins=bins, density=True, histtype="step", label=meth)
        ax.plot((bins[:-1] + bins[1:]) / 2, g, "k:", lw=1, label="N(0,1)")
        ax.set_title(f"{key[0]}: {key[1]}", fontsize=8)
        ax.set_xlabel("Z = (true - imputed) / std")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------ tables

def markdown_tables(data):
    """Detection and imputation tables (markdown) from the JSON of a run."""
    det = data["detection"]
    lines = ["### Detection on the M13 frames (truth: the other two frames)", "",
             "| finder | frame | flagged | recall of > 6 sigma negative | recall of > 6 sigma positive "
             "| confirmed | unsupported (< 3 sigma from every other frame) |",
             "|---|---|---|---|---|---|---|"]
    for fk, fr in det["frames"].items():
        t = fr["truth"]
        lines.append(f"| *truth* | {fk} | | {t['n_neg']} pixels | {t['n_pos']} pixels | | |")
        for name, sc in fr["finders"].items():
            rn = sc.get("recall_neg")
            rp = sc.get("recall_pos")
            lines.append(f"| {name} | {fk} | {sc['n_flagged']} | "
                         f"{'' if rn is None else f'{rn:.3f}'} | {'' if rp is None else f'{rp:.3f}'} | "
                         f"{sc['confirmed']} | {sc['unsupported']} |")
    hh = det["horsehead"]
    lines += ["", "### False positives on the HorseHead plate (no defects)", "",
              "| finder | flagged pixels | fraction |", "|---|---|---|"]
    for name, v in hh.items():
        if isinstance(v, dict):
            lines.append(f"| {name} | {v['n']} | {100 * v['fraction']:.4f} % |")
    rows = data.get("imputation") or []
    if rows:
        lines += ["", "### Imputation (hidden good pixels on top of the cloudcov.clean defects)", "",
                  "mae = mean abs(imputed - true) / noise; >= k: hidden pixels at least k noise sigma "
                  "above the local background (n in brackets); z_iqr = IQR/1.349 of (true - imputed)/std.",
                  "", "| image | scenario | method | mae | mae >= 3 | mae >= 5 | mae >= 10 | z_iqr | s/frame | note |",
                  "|---|---|---|---|---|---|---|---|---|---|"]

        def f(v, d=3):
            return "" if v is None else f"{v:.{d}f}"
        for r in rows:
            note = ""
            if "astroscrappy_coverage" in r:
                note = f"found {100 * r['astroscrappy_coverage']:.1f} %, scored {r.get('n_scored')}"
            lines.append(f"| {r['image']} | {r['scenario']} | {r['method']} | {f(r['mae'])} | "
                         f"{f(r.get('mae_ge3'))} ({r.get('n_ge3')}) | {f(r.get('mae_ge5'))} ({r.get('n_ge5')}) | "
                         f"{f(r.get('mae_ge10'))} ({r.get('n_ge10')}) | {f(r.get('z_iqr'))} | "
                         f"{f(r['seconds'], 2)} | {note} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ main

def main(argv=None):
    p = base_parser("07_defects_clean", __doc__)
    p.add_argument("--skip-imputation", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    prov = provenance()  # at the start: the commit that makes the numbers
    frames, headers, bias = load_m13(args.quick)
    shifts = measure_shifts(frames)
    aligned = align(frames, [tuple(-v for v in s) for s in shifts])
    # photon transfer on the cluster (where there is signal); the quick cut-out is inside it
    pt = photon_transfer(frames if args.quick else [f[PT_REGION] for f in frames], bias)
    gain, rn = pt["gain"], pt["readnoise_e"]
    print(f"M13: shifts vs frame 1 {shifts}; photon transfer gain {gain:.3f} e-/ADU, "
          f"read noise {rn:.2f} e- ({pt['readnoise_adu']:.1f} ADU); bias {bias}", flush=True)
    det = {"shifts": shifts, "photon_transfer": pt, "bias": bias, "frames": {}}
    cleaned0 = None
    for k in range(1 if args.quick else len(frames)):
        tr = transient_truth(aligned, k, gain)
        masks, secs, res = finders_for_frame(frames, k, gain, rn, bias, args.quick)
        fr = {"truth": dict(n_pos=int((tr["zmin"] > 6).sum()), n_neg=int((tr["zmax"] < -6).sum()),
                            n_consistent=int((tr["zabs"] < 3).sum()), sigma0=tr["sigma0"]),
              "clean_counts": res.counts, "persistent_info": res.params.get("persistent_info"),
              "seconds": secs, "finders": {}}
        for name, (pos, neg) in masks.items():
            fr["finders"][name] = score(pos, neg, tr)
        det["frames"][f"frame{k + 1}"] = fr
        print(f"frame {k + 1}: truth +{fr['truth']['n_pos']} / -{fr['truth']['n_neg']} "
              f"(noise {tr['sigma0']:.1f} ADU)", flush=True)
        for name, s in fr["finders"].items():
            print(f"  {name:45s} flagged {s['n_flagged']:6d}  recall+ {s.get('recall_pos', float('nan')):.3f}"
                  f"  recall- {s.get('recall_neg', float('nan')):.3f}  confirmed {s['confirmed']}"
                  f"  unsupported {s['unsupported']}",
                  flush=True)
        if k == 0:
            cleaned0, tr0, res0 = res.image, tr, res
    hh = load_hh(args.quick)
    hh_res, hh_masks = horsehead_detection(hh)
    det["horsehead"] = hh_res
    print("HorseHead false positives: " + ", ".join(
        f"{k} {v['n']} ({100 * v['fraction']:.4f}%)" for k, v in hh_res.items() if isinstance(v, dict)),
        flush=True)
    if not args.no_figures:
        fig_cutouts(out / "defects_cutouts_m13.png", np.asarray(frames[0], np.float64), cleaned0,
                    tr0["truth"], res0.defects, tr0["D"], tr0["sigma_pair"] / np.sqrt(1.5))
    imp_rows = []
    clean_counts = None
    if not args.skip_imputation:
        import cloudcov
        rng = np.random.default_rng(args.seed)
        figdata = {}
        x0 = np.asarray(frames[0], np.float64)
        r0 = cloudcov.clean(frames[0], frames=frames[1:], gain=gain, readnoise=rn, bias=bias)
        imp_rows += impute_benchmark("M13 frame1", x0, r0.defects != 0, gain, rn, bias, rng,
                                     args.quick, figdata)
        geff = hh_res["effective_gain"]
        rh = cloudcov.clean(hh, gain=geff, readnoise=0.0)
        imp_rows += impute_benchmark("HorseHead", hh, rh.defects != 0, geff, 0.0, 0.0, rng,
                                     args.quick, figdata)
        clean_counts = {"M13 frame1": r0.counts, "HorseHead": rh.counts}
        if not args.no_figures:
            fig_zhist(out / "impute_z_hist.png", figdata)
    data = dict(quick=args.quick, seed=args.seed, provenance=prov,
                command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                detection=det, imputation=imp_rows,
                imputation_masks=clean_counts if not args.skip_imputation else None,
                seconds_total=time.perf_counter() - t_start)
    write_json(out / "defects_clean.json", data)
    (out / "defects_clean_tables.md").write_text(markdown_tables(data))
    print(f"wrote {out / 'defects_clean.json'} in {data['seconds_total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
