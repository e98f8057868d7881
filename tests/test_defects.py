"""Defect finders (cloudcov.defects): synthetic hot/dead/stuck pixels and cosmic-ray tracks at
known places, star cores, the real HorseHead plate, bit planes, bad input."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from cloudcov import defects as D
from cloudcov.defects import DEFECT_BITS

SKY = 200.0     # ADU
GAIN = 2.0      # e-/ADU
RN = 8.0        # e-


def star_field(rng, shape=(160, 200), nstars=40, fwhm=2.2, seed_pos=None, shift=(0.0, 0.0),
               noise=True):
    """Sky + Gaussian stars (peaks 30-3000 sigma-ish) + Poisson/read noise, float64 ADU.

    Returns the image (noisy) and the star centres (row, col) in this frame.
    """
    prng = np.random.default_rng(seed_pos if seed_pos is not None else 1)
    rows = prng.uniform(6, shape[0] - 6, nstars) + shift[0]
    cols = prng.uniform(6, shape[1] - 6, nstars) + shift[1]
    flux = 10 ** prng.uniform(2.5, 5.0, nstars)
    s = fwhm / 2.3548
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]]
    img = np.full(shape, SKY)
    for r, c, f in zip(rows, cols, flux):
        m = (np.abs(rr - r) < 8) & (np.abs(cc - c) < 8)
        img[m] += f / (2 * np.pi * s * s) * np.exp(-((rr[m] - r) ** 2 + (cc[m] - c) ** 2) / (2 * s * s))
    if noise:
        e = rng.poisson(img * GAIN).astype(np.float64) + rng.normal(0, RN, shape)
        img = e / GAIN
    return img, np.stack([rows, cols], 1)


def star_zone(shape, centres, radius=2.5):
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]]
    z = np.zeros(shape, bool)
    for r, c in centres:
        z |= (rr - r) ** 2 + (cc - c) ** 2 <= radius ** 2
    return z


def place(rng, shape, n, avoid, margin=3):
    """n distinct positions away from ``avoid`` (and from each other by >= 3 px)."""
    out = []
    while len(out) < n:
        r, c = rng.integers(margin, shape[0] - margin), rng.integers(margin, shape[1] - margin)
        if avoid[max(r - 3, 0):r + 4, max(c - 3, 0):c + 4].any():
            continue
        if any(abs(r - a) < 3 and abs(c - b) < 3 for a, b in out):
            continue
        out.append((r, c))
    return np.array(out)


@pytest.fixture(scope="module")
def field():
    """Sharp stars (FWHM 2.2 px sampled at pixel centres): the hard case for a star guard."""
    rng = np.random.default_rng(7)
    img, centres = star_field(rng)
    return img, centres


@pytest.fixture(scope="module")
def wide_field():
    """Stars of FWHM 3 px: LACosmic's domain (it flags the cores of sharper faint stars
    unless objlim is raised)."""
    rng = np.random.default_rng(8)
    return star_field(rng, fwhm=3.0)


SIG = np.sqrt(SKY / GAIN + (RN / GAIN) ** 2)   # background noise, ADU


# ------------------------------------------------------------------------------ hot / dead

def test_hot_and_dead_recall_and_false_positives(field):
    rng = np.random.default_rng(11)
    img, centres = field
    img = img.copy()
    stars = star_zone(img.shape, centres, 4)
    pos = place(rng, img.shape, 40, stars)
    hot, dead = pos[:20], pos[20:]
    img[hot[:, 0], hot[:, 1]] += SIG * rng.uniform(9, 60, 20)
    img[dead[:, 0], dead[:, 1]] -= SIG * rng.uniform(9, 20, 20)
    h = D.find_hot_pixels(img, gain=GAIN)
    d = D.find_dead_pixels(img, gain=GAIN)
    assert h[hot[:, 0], hot[:, 1]].all()
    assert d[dead[:, 0], dead[:, 1]].all()
    truth_h = np.zeros(img.shape, bool)
    truth_h[hot[:, 0], hot[:, 1]] = True
    truth_d = np.zeros(img.shape, bool)
    truth_d[dead[:, 0], dead[:, 1]] = True
    # false positives: at most 2 in 32,000 pixels (6 sigma on Gaussian noise: ~0)
    assert (h & ~truth_h).sum() <= 2
    assert (d & ~truth_d).sum() <= 2
    # dead pixels at the floor (value 0) too
    img2 = img.copy()
    img2[dead[:5, 0], dead[:5, 1]] = 0.0
    assert D.find_dead_pixels(img2)[dead[:5, 0], dead[:5, 1]].all()


def test_star_cores_not_flagged_but_naive_test_flags_them(field):
    img, centres = field
    core = star_zone(img.shape, centres, 2.5)
    h = D.find_hot_pixels(img, gain=GAIN)
    d = D.find_dead_pixels(img, gain=GAIN)
    assert not (h & core).any()
    assert not (d & star_zone(img.shape, centres, 5)).any()
    # without the guard (the plain median test, even with the Poisson noise model) star
    # cores are flagged: the guard is what protects them
    naive = D.find_hot_pixels(img, gain=GAIN, guard=None)
    assert (naive & core).sum() >= 5


def test_hot_pixel_next_to_a_star_is_found(field):
    img, centres = field
    img = img.copy()
    r, c = np.rint(centres[np.argsort(centres[:, 0])[10]]).astype(int)
    img[r + 3, c] += 200 * SIG
    assert D.find_hot_pixels(img, gain=GAIN)[r + 3, c]


def test_hot_dead_on_horsehead_plate_false_positives(real_dir):
    from astropy.io import fits
    hh = fits.getdata(real_dir / "HorseHead.fits").astype(np.float64)
    n = hh.size
    h = D.find_hot_pixels(hh)
    d = D.find_dead_pixels(hh)
    assert (h | d).sum() / n < 5e-4          # target < 0.05 %
    # the naive 8-neighbour-style test (no guard) flags the plate's sharp stars
    assert D.find_hot_pixels(hh, guard=None).sum() > 20 * max(h.sum(), 1)


def test_nan_pixels_never_flagged_and_do_not_create_defects(field):
    img, _ = field
    img = img.copy()
    img[50, 50:53] = np.nan
    img[90, 90] = np.inf
    h = D.find_hot_pixels(img, gain=GAIN)
    d = D.find_dead_pixels(img, gain=GAIN)
    assert not h[50, 50:53].any() and not d[50, 50:53].any() and not h[90, 90]
    # neighbours of the NaN pixels are not flagged either
    assert not (h | d)[47:54, 47:56].any()


def test_mask_excludes_pixels(field):
    img, centres = field
    img = img.copy()
    img[20, 20] += 100 * SIG
    m = np.zeros(img.shape, bool)
    m[20, 20] = True
    assert D.find_hot_pixels(img)[20, 20]
    assert not D.find_hot_pixels(img, mask=m)[20, 20]


def test_saturation_excludes_hot(field):
    img, _ = field
    img = img.copy()
    img[30, 30] = 60000.0
    assert D.find_hot_pixels(img)[30, 30]
    assert not D.find_hot_pixels(img, saturation=50000.0)[30, 30]


# ------------------------------------------------------------------------------ persistent

def _stack(n=4, dither=True, integer=False, seed=3):
    rng = np.random.default_rng(seed)
    frames, cents = [], []
    for k in range(n):
        sh = (2.7 * k, -3.1 * k) if dither else (0.0, 0.0)
        img, c = star_field(rng, seed_pos=5, shift=sh)
        frames.append(img)
        cents.append(c)
    stars = np.zeros(frames[0].shape, bool)
    for c in cents:
        stars |= star_zone(frames[0].shape, c, 4)
    pos = place(np.random.default_rng(seed + 100), frames[0].shape, 46, stars)
    hot, dead, stuck, trans = pos[:12], pos[12:24], pos[24:30], pos[30:]
    for k, f in enumerate(frames):
        f[hot[:, 0], hot[:, 1]] += 8 * SIG       # modest: 8 sigma in each frame
        f[dead[:, 0], dead[:, 1]] -= 8 * SIG
        f[stuck[:, 0], stuck[:, 1]] = SKY + 7.0   # stuck at a normal-looking value
        # transient outliers: each frame at different places
        t = trans[k::n]
        f[t[:, 0], t[:, 1]] += 40 * SIG
    if integer:
        frames = [np.rint(f).astype(np.int32) for f in frames]
    return frames, hot, dead, stuck, trans


@pytest.mark.parametrize("dither", [True, False])
def test_persistent_hot_dead_stuck(dither):
    frames, hot, dead, stuck, trans = _stack(dither=dither)
    bits = D.find_persistent_defects(frames, gain=GAIN)
    dec = D.decode_defects(bits)
    assert dec["hot"][hot[:, 0], hot[:, 1]].all()
    assert dec["dead"][dead[:, 0], dead[:, 1]].all()
    assert dec["stuck"][stuck[:, 0], stuck[:, 1]].all()   # float data: equality is never chance
    truth = np.zeros(bits.shape, bool)
    for p in (hot, dead, stuck):
        truth[p[:, 0], p[:, 1]] = True
    assert (dec["any"] & ~truth).sum() <= 1                # transients and stars not persistent
    assert not dec["any"][trans[:, 0], trans[:, 1]].any()
    assert np.array_equal(dec["persistent"], dec["any"])


def test_persistent_integer_frames_stuck_needs_deviation():
    frames, hot, dead, stuck, _ = _stack(integer=True)
    rng = np.random.default_rng(0)
    # a stuck pixel at a deviant value (0) is found in quantised data; one at a normal value
    # is not: with 4 frames of 10 ADU noise equal values happen by chance (P ~ 3e-5)
    for f in frames:
        f[stuck[0, 0], stuck[0, 1]] = 0
    bits = D.find_persistent_defects(frames, gain=GAIN)
    dec = D.decode_defects(bits)
    assert dec["stuck"][stuck[0, 0], stuck[0, 1]] and dec["dead"][stuck[0, 0], stuck[0, 1]]
    assert dec["hot"][hot[:, 0], hot[:, 1]].all()
    assert rng is not None and dec["stuck"].sum() <= 2


def test_persistent_threshold_rises_with_heavy_tails():
    """Many transient outliers (a heavy tail) must not make chance 'persistent' pixels."""
    rng = np.random.default_rng(5)
    frames = []
    for _ in range(3):
        f = SKY + SIG * rng.standard_normal((150, 150))
        bad = rng.random(f.shape) < 0.02
        f[bad] -= SIG * rng.uniform(4, 7, bad.sum())
        frames.append(f)
    bits, info = D._persistent(frames)
    # 2 % of pixels at 4-7 sigma in each frame: 3 * 0.02**2 * 22500 ~ 27 coincidences at 4 sigma
    assert info["nsigma_dead"] > 4.0
    assert D.decode_defects(bits)["dead"].sum() <= 3


def test_persistent_bad_input():
    a = np.zeros((20, 20))
    with pytest.raises(ValueError, match="at least 2 frames"):
        D.find_persistent_defects([a])
    with pytest.raises(ValueError, match=r"frames\[1\]: shape \(20, 21\) != frames\[0\]"):
        D.find_persistent_defects([a, np.zeros((20, 21)), a])
    with pytest.raises(ValueError, match="min_frames"):
        D.find_persistent_defects([a, a], min_frames=3)
    with pytest.raises(TypeError, match=r"frames\[0\]"):
        D.find_persistent_defects([np.array([["a"]]), a])


# ------------------------------------------------------------------------------ cosmic rays

def _tracks(rng, shape, avoid, n=12):
    """Cosmic-ray tracks: straight lines of 2-7 pixels, 30-300 sigma, at known places."""
    out = np.zeros(shape, bool)
    vals = np.zeros(shape)
    starts = place(rng, shape, n, avoid, margin=10)
    for r, c in starts:
        length = rng.integers(2, 8)
        ang = rng.uniform(0, np.pi)
        for t in range(length):
            rr, cc = int(round(r + t * np.sin(ang))), int(round(c + t * np.cos(ang)))
            out[rr, cc] = True
            vals[rr, cc] = SIG * rng.uniform(30, 300)
    return out, vals


def test_cosmic_rays_recall_false_positives_and_star_cores(wide_field):
    img, centres = wide_field
    rng = np.random.default_rng(21)
    stars = star_zone(img.shape, centres, 4)
    tr, vals = _tracks(rng, img.shape, stars)
    x = img + vals
    cr = D.find_cosmic_rays(x, GAIN, RN)
    assert (cr & tr).sum() >= 0.9 * tr.sum()
    assert (cr & ~tr & ~D.grow_mask(tr, 1)).sum() <= 3
    assert not (cr & star_zone(img.shape, centres, 2.5)).any()
    # growth: wings are the ring around the detection only
    wing = D.grow_mask(cr, 1)
    assert not (wing & cr).any() and (wing | cr).sum() > cr.sum()


def test_cosmic_rays_bias_and_units(wide_field):
    img, _ = wide_field
    rng = np.random.default_rng(22)
    tr, vals = _tracks(rng, img.shape, np.zeros(img.shape, bool), n=6)
    x = img + vals
    a = D.find_cosmic_rays(x, GAIN, RN)
    b = D.find_cosmic_rays(x + 1000.0, GAIN, RN, bias=1000.0)
    assert np.array_equal(a, b)
    m, clean = D.find_cosmic_rays(x, GAIN, RN, return_clean=True, cleantype="medmask")
    assert np.allclose(clean[~m], x[~m], rtol=1e-6, atol=1e-3)   # ADU, not electrons
    assert np.all(np.abs(clean[m & tr] - SKY) < 10 * SIG)


def test_cosmic_rays_next_to_negative_pixels_rejected(wide_field):
    """LACosmic flags the neighbours of deep negative pixels; the peak test removes them."""
    img, centres = wide_field
    rng = np.random.default_rng(23)
    x = img.copy()
    pos = place(rng, x.shape, 40, star_zone(x.shape, centres, 4))
    x[pos[:, 0], pos[:, 1]] -= 30 * SIG
    raw = D.find_cosmic_rays(x, GAIN, RN, peak_nsigma=None)
    kept = D.find_cosmic_rays(x, GAIN, RN)
    assert raw.sum() >= 10
    assert kept.sum() <= 2


def test_cosmic_rays_missing_gain_and_bad_input(field):
    img, _ = field
    with pytest.raises(ValueError, match="gain: required"):
        D.find_cosmic_rays(img, None, RN)
    with pytest.raises(ValueError, match="gain: must be > 0"):
        D.find_cosmic_rays(img, 0.0, RN)
    with pytest.raises(ValueError, match="readnoise"):
        D.find_cosmic_rays(img, GAIN, -1.0)
    with pytest.raises(ValueError, match="method"):
        D.find_cosmic_rays(img, GAIN, RN, method="sobel")
    with pytest.raises(ValueError, match="mask: shape"):
        D.find_cosmic_rays(img, GAIN, RN, mask=np.zeros((3, 3), bool))
    x = img.copy()
    x[10, 10] = np.nan
    assert not D.find_cosmic_rays(x, GAIN, RN)[10, 10]


def test_deepcr_missing_raises_importerror(field, monkeypatch):
    monkeypatch.setattr(D, "_deepcr_available", lambda: False)
    with pytest.raises(ImportError, match="deepCR"):
        D.find_cosmic_rays(field[0], GAIN, RN, method="deepcr")


def test_deepcr_glue_with_a_stand_in_model(field, monkeypatch):
    """The deepCR path (no torch needed): electrons in, threshold passed, mask & exclusions."""
    img, _ = field
    seen = {}

    class FakeDeepCR:
        def __init__(self, mask, device):
            seen["model"], seen["device"] = mask, device

        def clean(self, im, threshold=0.5, inpaint=False):
            seen["median"], seen["threshold"], seen["inpaint"] = float(np.median(im)), threshold, inpaint
            m = np.zeros(im.shape)
            m[40, 40:43] = 1.0
            m[5, 5] = 1.0
            return m

    monkeypatch.setitem(sys.modules, "deepCR", types.SimpleNamespace(deepCR=FakeDeepCR))
    monkeypatch.setattr(D, "_deepcr_available", lambda: True)
    x = img.copy()
    x[40, 40:43] += 100 * SIG
    x[5, 5] = np.nan
    m = D.find_cosmic_rays(x + 50.0, GAIN, RN, method="deepcr", bias=50.0, threshold=0.3)
    assert seen["model"] == D.DEEPCR_DEFAULT_MODEL and seen["threshold"] == 0.3
    assert seen["inpaint"] is False
    assert abs(seen["median"] - np.nanmedian(img) * GAIN) < 5 * GAIN   # electrons, bias removed
    assert m[40, 40:43].all() and not m[5, 5] and m.sum() == 3


def test_deepcr_real_model(wide_field):
    pytest.importorskip("deepCR")
    img, _ = wide_field
    rng = np.random.default_rng(24)
    tr, vals = _tracks(rng, img.shape, np.zeros(img.shape, bool), n=6)
    m = D.find_cosmic_rays(img + vals, GAIN, RN, method="deepcr")
    assert m.shape == img.shape and (m & tr).sum() >= 0.5 * tr.sum()


# ------------------------------------------------------------------------------ bit planes

def test_bits_combine_decode_names_counts():
    assert sorted(DEFECT_BITS.values()) == [1, 2, 4, 8, 16, 32, 64, 128]
    a = np.zeros((2, 3), bool)
    a[0, 0] = True
    b = np.zeros((2, 3), bool)
    b[0, 0] = b[1, 2] = True
    m = D.combine_defects(hot=a, cosmic_ray=b, dq=None)
    assert m.dtype == np.uint8
    assert m[0, 0] == 1 | 8 and m[1, 2] == 8 and m.sum() == 9 + 8
    m2 = D.combine_defects(bits=m, persistent=a)
    assert m2[0, 0] == 1 | 8 | 32
    dec = D.decode_defects(m2)
    assert dec["hot"].sum() == 1 and dec["cosmic_ray"].sum() == 2 and dec["any"].sum() == 2
    assert D.defect_names(1 | 8 | 32) == ["hot", "cosmic_ray", "persistent"]
    assert D.defect_names(255) == list(DEFECT_BITS)
    c = D.defect_counts(m2)
    assert c["cosmic_ray"] == 2 and c["persistent"] == 1 and c["any"] == 2
    with pytest.raises(ValueError, match="not a defect class"):
        D.combine_defects(hott=a)
    with pytest.raises(ValueError, match="shape"):
        D.combine_defects(hot=a, dead=np.zeros((3, 3), bool))
    with pytest.raises(TypeError):
        D.decode_defects(np.array([1.5]))
    with pytest.raises(ValueError):
        D.decode_defects(np.array([256]))


def test_grow_mask():
    m = np.zeros((7, 7), bool)
    m[3, 3] = True
    assert D.grow_mask(m, 1).sum() == 8
    assert D.grow_mask(m, 1, connectivity=1).sum() == 4
    assert D.grow_mask(m, 2).sum() == 24
    assert D.grow_mask(m, 0).sum() == 0
    with pytest.raises(ValueError):
        D.grow_mask(m, -1)


def test_finder_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        D.find_hot_pixels(np.zeros(10))
    with pytest.raises(ValueError, match="size"):
        D.find_hot_pixels(np.zeros((10, 10)), size=4)
    with pytest.raises(ValueError, match="guard"):
        D.find_dead_pixels(np.zeros((10, 10)), guard=1.5)
    with pytest.raises(ValueError, match="nsigma"):
        D.find_hot_pixels(np.zeros((10, 10)), nsigma=0)
    with pytest.raises(ValueError, match="mask: shape"):
        D.find_hot_pixels(np.zeros((10, 10)), mask=np.zeros((9, 10), bool))
    with pytest.raises(ValueError, match="usable"):
        D.find_hot_pixels(np.full((10, 10), np.nan))
    with pytest.raises(TypeError, match="image"):
        D.find_hot_pixels(np.array([["x"] * 5] * 5))
    with pytest.raises(ValueError, match="gain"):
        D.find_hot_pixels(np.zeros((10, 10)), gain=-1.0)
